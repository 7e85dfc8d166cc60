/* bench/rpc_backend: the go-micro JSON-RPC service the /rpc benchmark calls (SPEC 4). A
 * single-threaded libuv server on 127.0.0.1 that answers every POST with
 * {"id":N,"result":{"ok":true},"error":null}, keep-alive and pipelining included, so the
 * sidecar's cost is what the benchmark sees, not the backend's.
 *
 * Usage: rpc_backend PORT. Runs until SIGINT/SIGTERM. Bench programs link only the system
 * libraries (not libmicro), so the parsing here is a minimal hand-rolled one: it reads the
 * head up to the blank line and then Content-Length bytes of body. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

/* Named limits: a head or body past these gets a 431/413 and the connection is closed. */
#define RPC_MAX_HEAD (64 * 1024)
#define RPC_MAX_BODY (1024 * 1024)
#define RPC_READ_CHUNK (64 * 1024)

struct rpc_conn {
    uv_tcp_t tcp;
    char *in;      /* unparsed request bytes */
    size_t in_len; /* bytes held in `in` */
    size_t in_cap; /* capacity of `in` */
    int closing;   /* set once uv_close was called */
    char rbuf[RPC_READ_CHUNK];
};

struct rpc_write {
    uv_write_t req;
    struct rpc_conn *conn;
    int close_after; /* close the connection once this reply is out */
    size_t len;
    char data[];
};

static uint64_t served;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "rpc_backend: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    if (!p) {
        fprintf(stderr, "rpc_backend: out of memory\n");
        abort();
    }
    return p;
}

static void on_closed(uv_handle_t *h)
{
    struct rpc_conn *c = h->data;
    free(c->in);
    free(c);
}

static void conn_close(struct rpc_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_written(uv_write_t *req, int status)
{
    struct rpc_write *w = (struct rpc_write *)req;
    if (status < 0 || w->close_after)
        conn_close(w->conn);
    free(w);
}

/* Case-insensitive search for a header named `name` inside [head, head+len); returns its
 * value (leading blanks skipped) or NULL. The request line is skipped. */
static const char *find_header(const char *head, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    const char *end = head + len;
    const char *p = memchr(head, '\n', len);
    while (p && p + 1 < end) {
        p++;
        if ((size_t)(end - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            return v;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return NULL;
}

/* Finds the raw text of the top-level "id" value in a go-micro JSON-RPC request body, so it
 * is echoed byte for byte (a big integer stays exact). Returns its length, 0 when absent or
 * malformed. The scan is textual: the requests this backend serves come from the sidecar's
 * encoder, which writes {"method":…,"params":[…],"id":N}. */
static size_t find_id(const char *body, size_t len, const char **id)
{
    const char *end = body + len;
    for (const char *p = body; p + 4 <= end; p++) {
        if (memcmp(p, "\"id\"", 4) != 0)
            continue;
        const char *v = p + 4;
        while (v < end && isspace((unsigned char)*v))
            v++;
        if (v >= end || *v != ':')
            continue;
        v++;
        while (v < end && isspace((unsigned char)*v))
            v++;
        const char *e = v;
        if (e < end && *e == '"') {
            for (e++; e < end && *e != '"'; e++)
                if (*e == '\\')
                    e++;
            if (e >= end)
                return 0;
            e++;
        } else {
            while (e < end && (isalnum((unsigned char)*e) || *e == '-' || *e == '+' || *e == '.'))
                e++;
        }
        *id = v;
        return (size_t)(e - v);
    }
    return 0;
}

/* Appends one HTTP reply to *out, echoing the request's id (see find_id); a body without one
 * gets id null and an error string, as a go-micro server would answer. */
static void append_reply(char **out, size_t *out_len, size_t *out_cap, const char *body,
                         size_t body_len)
{
    const char *id = NULL;
    size_t id_len = find_id(body, body_len, &id);
    char payload[256];
    int plen;
    if (id_len && id_len < 128)
        plen = snprintf(payload, sizeof payload,
                        "{\"id\":%.*s,\"result\":{\"ok\":true},\"error\":null}\n", (int)id_len, id);
    else
        plen = snprintf(payload, sizeof payload,
                        "{\"id\":null,\"result\":null,\"error\":\"bad request\"}\n");

    char head[160];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n",
                        plen);
    size_t need = *out_len + (size_t)hlen + (size_t)plen;
    if (need > *out_cap) {
        *out_cap = need * 2;
        *out = xrealloc(*out, *out_cap);
    }
    memcpy(*out + *out_len, head, (size_t)hlen);
    memcpy(*out + *out_len + hlen, payload, (size_t)plen);
    *out_len = need;
}

static void send_bytes(struct rpc_conn *c, const char *data, size_t len, int close_after)
{
    struct rpc_write *w = xmalloc(sizeof *w + len);
    w->conn = c;
    w->close_after = close_after;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        free(w);
        conn_close(c);
    }
}

static void send_error(struct rpc_conn *c, const char *status)
{
    char msg[128];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
    send_bytes(c, msg, (size_t)n, 1);
}

/* Answers every complete request in c->in; the replies of one read go out in one write. */
static void process(struct rpc_conn *c)
{
    char *out = NULL;
    size_t out_len = 0, out_cap = 0;
    size_t off = 0;
    const char *fail = NULL;
    for (;;) {
        const char *start = c->in + off;
        size_t avail = c->in_len - off;
        const char *eoh = NULL;
        for (size_t i = 0; i + 3 < avail; i++) {
            if (start[i] == '\r' && start[i + 1] == '\n' && start[i + 2] == '\r' &&
                start[i + 3] == '\n') {
                eoh = start + i;
                break;
            }
        }
        if (!eoh) {
            if (avail > RPC_MAX_HEAD)
                fail = "431 Request Header Fields Too Large";
            break;
        }
        size_t head_len = (size_t)(eoh - start) + 4;
        if (find_header(start, head_len, "Transfer-Encoding")) {
            fail = "411 Length Required";
            break;
        }
        const char *cl = find_header(start, head_len, "Content-Length");
        size_t body_len = 0;
        if (cl) {
            char *endp;
            errno = 0;
            unsigned long long v = strtoull(cl, &endp, 10);
            if (errno || endp == cl || !isspace((unsigned char)*endp)) {
                fail = "400 Bad Request";
                break;
            }
            if (v > RPC_MAX_BODY) {
                fail = "413 Payload Too Large";
                break;
            }
            body_len = (size_t)v;
        }
        if (avail < head_len + body_len)
            break;
        append_reply(&out, &out_len, &out_cap, start + head_len, body_len);
        served++;
        off += head_len + body_len;
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (out_len)
        send_bytes(c, out, out_len, 0);
    free(out);
    if (fail) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        send_error(c, fail);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct rpc_conn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct rpc_conn *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0)
        return;
    if (c->in_len + (size_t)n > c->in_cap) {
        c->in_cap = (c->in_len + (size_t)n) * 2;
        c->in = xrealloc(c->in, c->in_cap);
    }
    memcpy(c->in + c->in_len, buf->base, (size_t)n);
    c->in_len += (size_t)n;
    process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct rpc_conn *c = xmalloc(sizeof *c);
    memset(c, 0, offsetof(struct rpc_conn, rbuf));
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    fprintf(stderr, "rpc_backend: served %llu requests\n", (unsigned long long)served);
    uv_stop(sig->loop);
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: rpc_backend PORT\n");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, 1024, on_connection);
    if (rc < 0) {
        fprintf(stderr, "rpc_backend: listen on 127.0.0.1:%s: %s\n", argv[1], uv_strerror(rc));
        return 1;
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
