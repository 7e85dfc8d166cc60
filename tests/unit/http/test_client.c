/* Loop tests for src/http/client: a real libuv loop, a tiny canned-answer TCP server on
 * 127.0.0.1:0 written with plain libuv below, and the client under test talking to it. Every
 * loop run is bounded by a guard timer so a bug fails a test instead of hanging it. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "http/client.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/error.h"

/* ---- The canned server ------------------------------------------------------------------ */

struct tsrv;

struct sconn {
    uv_tcp_t tcp;
    struct tsrv *srv;
    struct mc_buf in;
    int served; /* requests seen on this connection */
    int closing;
    struct sconn *next;
};

struct tsrv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    int accepts, requests, eofs;
    const char *const *responses; /* response i answers request i (the last one repeats) */
    size_t nresponses;
    int close_after_response; /* close each connection once its answer is written */
    int silent;               /* read requests, never answer */
    int drop_second;          /* close a connection at its 2nd request, unanswered */
    struct mc_buf received;   /* every request byte, in arrival order */
    struct sconn *conns;
};

struct wreq {
    uv_write_t req;
    struct sconn *sc;
    char *data;
    int close_after;
};

static void sconn_closed(uv_handle_t *h)
{
    struct sconn *sc = h->data;
    struct tsrv *srv = sc->srv;
    for (struct sconn **pp = &srv->conns; *pp; pp = &(*pp)->next) {
        if (*pp == sc) {
            *pp = sc->next;
            break;
        }
    }
    mc_buf_close(&sc->in);
    free(sc);
}

static void sconn_close(struct sconn *sc)
{
    if (sc->closing)
        return;
    sc->closing = 1;
    uv_close((uv_handle_t *)&sc->tcp, sconn_closed);
}

static void srv_write_done(uv_write_t *req, int status)
{
    (void)status;
    struct wreq *w = (struct wreq *)req;
    if (w->close_after)
        sconn_close(w->sc);
    free(w->data);
    free(w);
}

static void srv_send(struct sconn *sc, const char *data, size_t len, int close_after)
{
    struct wreq *w = calloc(1, sizeof *w);
    w->sc = sc;
    w->data = malloc(len ? len : 1);
    memcpy(w->data, data, len);
    w->close_after = close_after;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&sc->tcp, &b, 1, srv_write_done) < 0) {
        free(w->data);
        free(w);
        sconn_close(sc);
    }
}

static const char *find_ci(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* Length of the first complete request in buf (head + body), or 0 when incomplete. */
static size_t request_len(const char *buf, size_t len)
{
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    }
    if (!end)
        return 0;
    size_t head = (size_t)(end - buf);
    if (find_ci(buf, head, "transfer-encoding: chunked")) {
        /* The client sends nothing after its last chunk, so only the tail needs a look
         * (scanning the whole buffer on every read would be quadratic on big uploads). */
        if (len >= head + 5 && memcmp(buf + len - 5, "0\r\n\r\n", 5) == 0 &&
            (len - 5 == head || buf[len - 6] == '\n'))
            return len;
        return 0;
    }
    const char *cl = find_ci(buf, head, "content-length:");
    size_t body = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
    return len - head >= body ? head + body : 0;
}

static void srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void srv_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn *sc = s->data;
    struct tsrv *srv = sc->srv;
    if (nread < 0) {
        srv->eofs++;
        sconn_close(sc);
    } else if (nread > 0) {
        mc_buf_append(&srv->received, buf->base, (size_t)nread);
        mc_buf_append(&sc->in, buf->base, (size_t)nread);
        size_t n;
        while (!sc->closing && (n = request_len(sc->in.data, sc->in.len)) > 0) {
            mc_buf_consume(&sc->in, n);
            sc->served++;
            if (srv->drop_second && sc->served == 2) {
                sconn_close(sc);
                break;
            }
            size_t i = (size_t)srv->requests++;
            if (srv->silent || srv->nresponses == 0)
                continue;
            const char *r = srv->responses[i < srv->nresponses ? i : srv->nresponses - 1];
            srv_send(sc, r, strlen(r), srv->close_after_response);
        }
    }
    free(buf->base);
}

static void srv_accept(uv_stream_t *l, int status)
{
    struct tsrv *srv = l->data;
    assert_int_equal(status, 0);
    struct sconn *sc = calloc(1, sizeof *sc);
    sc->srv = srv;
    mc_buf_init(&sc->in);
    uv_tcp_init(srv->loop, &sc->tcp);
    sc->tcp.data = sc;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&sc->tcp), 0);
    sc->next = srv->conns;
    srv->conns = sc;
    srv->accepts++;
    uv_read_start((uv_stream_t *)&sc->tcp, srv_alloc, srv_read);
}

static void srv_start(struct tsrv *srv, uv_loop_t *loop)
{
    srv->loop = loop;
    mc_buf_init(&srv->received);
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&srv->listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 64, srv_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
    srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_stop(struct tsrv *srv)
{
    for (struct sconn *sc = srv->conns; sc; sc = sc->next)
        sconn_close(sc);
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, NULL);
}

/* ---- Fixture: loop, net, client, server, guard timer ------------------------------------- */

struct fx {
    uv_loop_t loop;
    struct mc_net *net;
    struct mc_http_client *client;
    struct tsrv srv;
    char address[64];
    uv_timer_t guard;
    int guard_fired;
};

static void guard_fire(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->guard_fired = 1;
}

/* Runs the loop until *flag is set, at most ms. Returns 1 when the flag was set. */
static int run_until(struct fx *f, const int *flag, uint64_t ms)
{
    f->guard_fired = 0;
    uv_timer_start(&f->guard, guard_fire, ms, 0);
    while (!(flag && *flag) && !f->guard_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    return flag && *flag;
}

static void run_for(struct fx *f, uint64_t ms)
{
    run_until(f, NULL, ms);
}

static struct fx *fx_new(const struct mc_http_client_config *config)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->net = calloc(1, sizeof *f->net);
    f->net->loop = &f->loop;
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    srv_start(&f->srv, &f->loop);
    snprintf(f->address, sizeof f->address, "127.0.0.1:%d", f->srv.port);
    f->client = mc_http_client_new(f->net, config);
    return f;
}

/* Frees everything and checks that every handle was closed (uv_loop_close fails otherwise). */
static void fx_free(struct fx *f)
{
    mc_http_client_free(f->client);
    srv_stop(&f->srv);
    mc_net_close(f->net); /* the handles the connections' output queue made */
    uv_close((uv_handle_t *)&f->guard, NULL);
    for (int i = 0; i < 1000 && uv_loop_alive(&f->loop); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    mc_buf_close(&f->srv.received);
    free(f->net);
    free(f);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* writes to a closed peer must fail, not kill the test */
    return 0;
}

/* ---- A call recorder --------------------------------------------------------------------- */

enum action { ACT_NONE, ACT_CANCEL_IN_HEAD, ACT_PAUSE_IN_BODY, ACT_TAKE_CONN, ACT_CANCEL_IN_BODY };

struct res {
    struct fx *f;
    struct mc_http_call *call;
    enum action action;
    int done, err, retryable;
    int heads, status, keep_alive, chunked, upgrade;
    int bodies; /* on_body calls */
    struct mc_buf body;
    char xa[64];
    int has_empty;
    int paused;
    int drained;
    uint64_t done_at;
    /* upgrade */
    struct mc_buf leftover;
    struct mc_conn *taken;
    int taken_closed;
    /* chained call from on_done */
    void (*then)(struct res *r);
    struct res *next;
};

static void res_init(struct res *r, struct fx *f)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    mc_buf_init(&r->body);
    mc_buf_init(&r->leftover);
}

static void res_close(struct res *r)
{
    mc_buf_close(&r->body);
    mc_buf_close(&r->leftover);
}

static void taken_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    (void)c;
    (void)data;
    (void)nread;
}

static void taken_closed(struct mc_conn *c)
{
    struct res *r = c->data;
    r->taken_closed = 1;
    mc_conn_free(c);
}

static void on_head(struct mc_http_call *call, const struct mc_http_response_head *head, void *ctx)
{
    struct res *r = ctx;
    assert_ptr_equal(call, r->call);
    r->heads++;
    r->status = head->status;
    r->keep_alive = head->keep_alive;
    r->chunked = head->chunked;
    r->upgrade = head->upgrade;
    for (size_t i = 0; i < head->header_count; i++) {
        if (strcasecmp(head->headers[i].name, "X-A") == 0)
            snprintf(r->xa, sizeof r->xa, "%s", head->headers[i].value);
        if (strcasecmp(head->headers[i].name, "X-Empty") == 0 && head->headers[i].value[0] == 0)
            r->has_empty = 1;
    }
    if (r->action == ACT_CANCEL_IN_HEAD)
        mc_http_call_cancel(call);
    if (r->action == ACT_TAKE_CONN && head->upgrade) {
        r->taken = mc_http_call_take_conn(call, &r->leftover);
        assert_non_null(r->taken);
        r->taken->data = r;
        r->taken->on_read = taken_read;
        r->taken->on_close = taken_closed;
        mc_conn_close(r->taken, 1);
    }
}

static void on_body(struct mc_http_call *call, const char *data, size_t len, void *ctx)
{
    struct res *r = ctx;
    assert_false(r->paused); /* nothing may arrive between pause and resume */
    r->bodies++;
    mc_buf_append(&r->body, data, len);
    if (r->action == ACT_PAUSE_IN_BODY && r->bodies == 1) {
        r->paused = 1;
        mc_http_call_pause(call);
    }
    if (r->action == ACT_CANCEL_IN_BODY)
        mc_http_call_cancel(call);
}

static void on_done(struct mc_http_call *call, int err, int retryable, void *ctx)
{
    struct res *r = ctx;
    assert_ptr_equal(call, r->call);
    assert_int_equal(r->done, 0); /* exactly once */
    r->done = 1;
    r->err = err;
    r->retryable = retryable;
    r->done_at = uv_now(&r->f->loop);
    const struct mc_buf *b = mc_http_call_body(call);
    if (b->len)
        mc_buf_append(&r->body, b->data, b->len);
    if (r->then)
        r->then(r);
}

static struct mc_http_call_options opts(struct res *r, const char *method)
{
    struct mc_http_call_options o = {
        .address = r->f->address,
        .method = method,
        .target = "/path?q=1",
        .dial_timeout_ms = 2000,
        .timeout_ms = 3000,
        .on_head = on_head,
        .on_body = on_body,
        .on_done = on_done,
        .ctx = r,
    };
    return o;
}

static void start(struct res *r, const char *method)
{
    struct mc_http_call_options o = opts(r, method);
    r->call = mc_http_call_start(r->f->client, &o);
}

static void start_buffered(struct res *r, uint64_t max_body)
{
    struct mc_http_call_options o = opts(r, "GET");
    o.buffer_body = 1;
    o.max_body = max_body;
    r->call = mc_http_call_start(r->f->client, &o);
}

#define BODY_IS(r, text)                                                                           \
    do {                                                                                           \
        assert_int_equal((r)->body.len, strlen(text));                                             \
        assert_memory_equal((r)->body.data, text, strlen(text));                                   \
    } while (0)

/* ---- Framing ----------------------------------------------------------------------------- */

static void test_content_length(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b c\r\nX-Empty:\r\n\r\nhello"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    start(&r, "GET");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.heads, 1);
    assert_true(r.keep_alive);
    assert_string_equal(r.xa, "b c");
    assert_true(r.has_empty);
    BODY_IS(&r, "hello");
    /* The request line, and the Host header the client adds. */
    char host[96];
    snprintf(host, sizeof host, "\r\nHost: %s\r\n", f->address);
    assert_non_null(strstr(f->srv.received.data, "GET /path?q=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(f->srv.received.data, host));
    assert_null(find_ci(f->srv.received.data, f->srv.received.len, "content-length"));
    res_close(&r);
    fx_free(f);
}

static void test_chunked(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    start_buffered(&r, 0);
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    assert_true(r.chunked);
    assert_int_equal(r.bodies, 0); /* buffered: on_body is not called */
    BODY_IS(&r, "hello world");
    res_close(&r);
    fx_free(f);
}

static void test_close_delimited(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    f->srv.close_after_response = 1;
    struct res r, r2;
    res_init(&r, f);
    res_init(&r2, f);
    start(&r, "GET");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    assert_false(r.keep_alive);
    BODY_IS(&r, "until the end");
    /* Not pooled: the next call dials again. */
    start(&r2, "GET");
    assert_true(run_until(f, &r2.done, 2000));
    assert_int_equal(r2.err, 0);
    assert_int_equal(f->srv.accepts, 2);
    res_close(&r);
    res_close(&r2);
    fx_free(f);
}

static void test_truncated_body(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    f->srv.close_after_response = 1;
    struct res r;
    res_init(&r, f);
    start(&r, "GET");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, MC_ECLOSED);
    assert_int_equal(r.retryable, 0); /* part of the reply arrived: the node saw the call */
    res_close(&r);
    fx_free(f);
}

static void test_continue_skipped(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    start(&r, "POST");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.status, 201);
    BODY_IS(&r, "ok");
    /* A POST without a body still says so. */
    assert_non_null(find_ci(f->srv.received.data, f->srv.received.len, "content-length: 0\r\n"));
    res_close(&r);
    fx_free(f);
}

static void test_malformed_status(void **state)
{
    (void)state;
    const char *cases[] = {
        "HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        "garbage\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fx *f = fx_new(NULL);
        f->srv.responses = &cases[i];
        f->srv.nresponses = 1;
        struct res r;
        res_init(&r, f);
        start(&r, "GET");
        assert_true(run_until(f, &r.done, 2000));
        assert_int_equal(r.err, MC_EPROTO);
        assert_int_equal(r.retryable, 0);
        assert_int_equal(r.heads, 0);
        res_close(&r);
        fx_free(f);
    }
}

/* Chunked framing is checked (llhttp in strict mode): chunk data not followed by CRLF, a
 * chunk-size line or the trailer section ending in CR without LF are protocol errors (the
 * proxy answers 502), never bytes silently skipped into the body or the next response. */
static void test_malformed_chunked(void **state)
{
    (void)state;
    const char *cases[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\rXhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\rX",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int buffered = 0; buffered < 2; buffered++) {
            struct fx *f = fx_new(NULL);
            f->srv.responses = &cases[i];
            f->srv.nresponses = 1;
            struct res r;
            res_init(&r, f);
            if (buffered)
                start_buffered(&r, 0);
            else
                start(&r, "GET");
            assert_true(run_until(f, &r.done, 2000));
            if (r.err != MC_EPROTO)
                fail_msg("case %zu (%s): err %d, want MC_EPROTO", i,
                         buffered ? "buffered" : "streamed", r.err);
            assert_int_equal(r.retryable, 0);
            res_close(&r);
            fx_free(f);
        }
    }
}

/* Chunk extensions (one per chunk, a bare name, a quoted value) and trailers stay valid. */
static void test_chunk_extensions(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5;name=value\r\nhello\r\n6;q=\"a b\"\r\n world\r\n1;flag\r\n!\r\n"
                          "0;last\r\nX-T: 1\r\n\r\n"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    start_buffered(&r, 0);
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    BODY_IS(&r, "hello world!");
    res_close(&r);
    fx_free(f);
}

static void test_head_over_limit(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct mc_buf big;
    mc_buf_init(&big);
    mc_buf_append_str(&big, "HTTP/1.1 200 OK\r\nX-Big: ");
    for (size_t i = 0; i < MC_HTTP_CLIENT_MAX_HEAD + 10; i++)
        mc_buf_append(&big, "a", 1);
    mc_buf_append_str(&big, "\r\nContent-Length: 0\r\n\r\n");
    const char *resp[] = {big.data};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    start(&r, "GET");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, MC_EPROTO);
    assert_int_equal(r.heads, 0);
    res_close(&r);
    fx_free(f);
    mc_buf_close(&big);
}

static void test_head_request_has_no_body(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"};
    f->srv.responses = resp;
    f->srv.nresponses = 2;
    struct res r, r2;
    res_init(&r, f);
    res_init(&r2, f);
    start(&r, "HEAD");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.body.len, 0);
    start(&r2, "GET");
    assert_true(run_until(f, &r2.done, 2000));
    assert_int_equal(r2.err, 0);
    BODY_IS(&r2, "abc");
    assert_int_equal(f->srv.accepts, 1); /* the HEAD's connection was reused intact */
    res_close(&r);
    res_close(&r2);
    fx_free(f);
}

/* ---- Keep-alive pool --------------------------------------------------------------------- */

static void start_next(struct res *r)
{
    start(r->next, "GET");
}

static void test_keep_alive_reuse(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3"};
    f->srv.responses = resp;
    f->srv.nresponses = 3;
    struct res r1, r2, r3;
    res_init(&r1, f);
    res_init(&r2, f);
    res_init(&r3, f);
    r1.then = start_next; /* the second call starts from on_done of the first */
    r1.next = &r2;
    start(&r1, "GET");
    assert_true(run_until(f, &r2.done, 2000));
    assert_int_equal(r1.err, 0);
    assert_int_equal(r2.err, 0);
    BODY_IS(&r1, "1");
    BODY_IS(&r2, "2");
    run_for(f, 20);
    start(&r3, "GET");
    assert_true(run_until(f, &r3.done, 2000));
    BODY_IS(&r3, "3");
    assert_int_equal(f->srv.accepts, 1);
    assert_int_equal(f->srv.requests, 3);
    res_close(&r1);
    res_close(&r2);
    res_close(&r3);
    fx_free(f);
}

static void test_pooled_closed_by_server(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    /* The server says keep-alive but closes anyway: the idle connection must be evicted. */
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"};
    f->srv.responses = resp;
    f->srv.nresponses = 2;
    f->srv.close_after_response = 1;
    struct res r1, r2;
    res_init(&r1, f);
    res_init(&r2, f);
    start(&r1, "GET");
    assert_true(run_until(f, &r1.done, 2000));
    assert_int_equal(r1.err, 0);
    assert_true(r1.keep_alive);
    run_for(f, 50);
    start(&r2, "GET");
    assert_true(run_until(f, &r2.done, 2000));
    assert_int_equal(r2.err, 0);
    BODY_IS(&r2, "2");
    assert_int_equal(f->srv.accepts, 2);
    res_close(&r1);
    res_close(&r2);
    fx_free(f);
}

static void test_pooled_dead_on_reuse_is_retryable(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    /* The node drops the kept-alive connection just as the second request arrives. */
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    f->srv.drop_second = 1;
    struct res r1, r2, r3;
    res_init(&r1, f);
    res_init(&r2, f);
    res_init(&r3, f);
    start(&r1, "GET");
    assert_true(run_until(f, &r1.done, 2000));
    assert_int_equal(r1.err, 0);
    start(&r2, "GET");
    assert_true(run_until(f, &r2.done, 2000));
    assert_true(r2.err < 0);
    assert_int_equal(r2.retryable, 1);
    assert_int_equal(f->srv.accepts, 1); /* it really was the pooled connection */
    /* The retry dials afresh and succeeds. */
    start(&r3, "GET");
    assert_true(run_until(f, &r3.done, 2000));
    assert_int_equal(r3.err, 0);
    assert_int_equal(f->srv.accepts, 2);
    res_close(&r1);
    res_close(&r2);
    res_close(&r3);
    fx_free(f);
}

static void test_request_connection_close_not_pooled(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r1, r2;
    res_init(&r1, f);
    res_init(&r2, f);
    struct mc_http_header h[] = {{"Connection", "keep-alive, Close"}};
    struct mc_http_call_options o = opts(&r1, "GET");
    o.headers = h;
    o.header_count = 1;
    r1.call = mc_http_call_start(f->client, &o);
    assert_true(run_until(f, &r1.done, 2000));
    assert_int_equal(r1.err, 0);
    assert_true(r1.keep_alive); /* the node would allow it, the caller asked not to */
    start(&r2, "GET");
    assert_true(run_until(f, &r2.done, 2000));
    assert_int_equal(r2.err, 0);
    assert_int_equal(f->srv.accepts, 2);
    res_close(&r1);
    res_close(&r2);
    fx_free(f);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct mc_http_client_config cfg = {.idle_timeout_ms = 50};
    struct fx *f = fx_new(&cfg);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    start(&r, "GET");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(f->srv.eofs, 0);
    /* The client closes its idle connection: the server reads EOF. */
    assert_true(run_until(f, &f->srv.eofs, 2000));
    assert_true(uv_now(&f->loop) - r.done_at >= 45);
    res_close(&r);
    fx_free(f);
}

static void test_max_idle_per_host(void **state)
{
    (void)state;
    struct mc_http_client_config cfg = {.max_idle_per_host = 1};
    struct fx *f = fx_new(&cfg);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r1, r2, r3;
    res_init(&r1, f);
    res_init(&r2, f);
    res_init(&r3, f);
    start(&r1, "GET");
    start(&r2, "GET"); /* concurrent: a second connection */
    assert_true(run_until(f, &r1.done, 2000));
    assert_true(run_until(f, &r2.done, 2000));
    assert_int_equal(f->srv.accepts, 2);
    /* Only one fits in the pool: the other is closed. */
    assert_true(run_until(f, &f->srv.eofs, 2000));
    run_for(f, 20);
    assert_int_equal(f->srv.eofs, 1);
    start(&r3, "GET");
    assert_true(run_until(f, &r3.done, 2000));
    assert_int_equal(r3.err, 0);
    assert_int_equal(f->srv.accepts, 2);
    res_close(&r1);
    res_close(&r2);
    res_close(&r3);
    fx_free(f);
}

/* ---- Failures and timeouts --------------------------------------------------------------- */

static void test_connection_refused(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    /* A port that was just free: bind, read it, close. */
    uv_tcp_t tmp;
    uv_tcp_init(&f->loop, &tmp);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&tmp, (const struct sockaddr *)&a, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&tmp, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&tmp, NULL);
    run_for(f, 1);
    snprintf(f->address, sizeof f->address, "127.0.0.1:%d", port);
    struct res r;
    res_init(&r, f);
    start(&r, "GET");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, UV_ECONNREFUSED);
    assert_int_equal(r.retryable, 1);
    res_close(&r);
    fx_free(f);
}

static void test_bad_address(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    snprintf(f->address, sizeof f->address, "no-port-here");
    struct res r;
    res_init(&r, f);
    start(&r, "GET");
    assert_int_equal(r.done, 0); /* never inside mc_http_call_start */
    assert_int_equal(mc_http_call_write(r.call, "x", 1), MC_ECLOSED);
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, MC_EINVAL);
    assert_int_equal(r.retryable, 0);
    res_close(&r);
    fx_free(f);
}

static void test_total_timeout(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    f->srv.silent = 1;
    struct res r;
    res_init(&r, f);
    struct mc_http_call_options o = opts(&r, "GET");
    o.timeout_ms = 100;
    uint64_t t0 = uv_now(&f->loop);
    r.call = mc_http_call_start(f->client, &o);
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, MC_ETIMEDOUT);
    assert_int_equal(r.retryable, 0); /* the request was sent */
    assert_true(r.done_at - t0 >= 95);
    assert_true(r.done_at - t0 < 1000);
    /* The connection is closed, not pooled. */
    assert_true(run_until(f, &f->srv.eofs, 2000));
    res_close(&r);
    fx_free(f);
}

static void test_dial_timeout(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    /* A listener that never accepts, with its accept queue filled by our own dials: the
     * kernel drops further SYNs, so the client's connect hangs until its dial timeout. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 0), 0);
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    int fillers[4];
    for (int i = 0; i < 4; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof a);
    }
    run_for(f, 50); /* let the handshakes that fit complete */
    snprintf(f->address, sizeof f->address, "127.0.0.1:%d", ntohs(a.sin_port));
    struct res r;
    res_init(&r, f);
    struct mc_http_call_options o = opts(&r, "GET");
    o.dial_timeout_ms = 100;
    o.timeout_ms = 5000;
    uint64_t t0 = uv_now(&f->loop);
    r.call = mc_http_call_start(f->client, &o);
    assert_true(run_until(f, &r.done, 3000));
    assert_int_equal(r.err, MC_ETIMEDOUT);
    assert_int_equal(r.retryable, 1); /* nothing was sent */
    assert_true(r.done_at - t0 >= 95);
    assert_true(r.done_at - t0 < 1000);
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(lfd);
    res_close(&r);
    fx_free(f);
}

static void test_cancel_in_head(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct mc_buf big;
    mc_buf_init(&big);
    mc_buf_append_str(&big, "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n");
    for (int i = 0; i < 200000; i++)
        mc_buf_append(&big, "b", 1);
    const char *resp[] = {big.data};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    r.action = ACT_CANCEL_IN_HEAD;
    start(&r, "GET");
    assert_true(run_until(f, &r.heads, 2000));
    /* The connection is closed: the server sees it go, and no callback ever runs again. */
    assert_true(run_until(f, &f->srv.eofs, 2000));
    run_for(f, 20);
    assert_int_equal(r.done, 0);
    assert_int_equal(r.bodies, 0);
    assert_int_equal(r.heads, 1);
    res_close(&r);
    fx_free(f);
    mc_buf_close(&big);
}

static void test_cancel_in_body_and_outside(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r, r2;
    res_init(&r, f);
    res_init(&r2, f);
    r.action = ACT_CANCEL_IN_BODY;
    start(&r, "GET");
    assert_true(run_until(f, &r.bodies, 2000));
    run_for(f, 30);
    assert_int_equal(r.bodies, 1);
    assert_int_equal(r.done, 0);
    /* From outside, while the server sits on the request. */
    f->srv.silent = 1;
    start(&r2, "GET");
    run_for(f, 30);
    mc_http_call_cancel(r2.call);
    assert_true(run_until(f, &f->srv.eofs, 2000));
    run_for(f, 20);
    assert_int_equal(r2.done, 0);
    res_close(&r);
    res_close(&r2);
    fx_free(f);
}

static void test_free_client_with_calls_in_flight(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r1, r2;
    res_init(&r1, f);
    res_init(&r2, f);
    start(&r1, "GET"); /* completes and is pooled */
    assert_true(run_until(f, &r1.done, 2000));
    f->srv.silent = 1;
    start(&r2, "GET"); /* in flight */
    run_for(f, 20);
    mc_http_client_free(f->client);
    f->client = NULL;
    run_for(f, 50);
    assert_int_equal(r2.done, 0);
    res_close(&r1);
    res_close(&r2);
    fx_free(f); /* uv_loop_close proves every handle was closed */
}

/* ---- Bodies ------------------------------------------------------------------------------ */

static void test_buffer_over_max_body(void **state)
{
    (void)state;
    const char *cases[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fx *f = fx_new(NULL);
        f->srv.responses = &cases[i];
        f->srv.nresponses = 1;
        f->srv.close_after_response = i == 2;
        struct res r;
        res_init(&r, f);
        start_buffered(&r, 10);
        assert_true(run_until(f, &r.done, 2000));
        assert_int_equal(r.err, MC_ETOOBIG);
        assert_int_equal(r.retryable, 0);
        res_close(&r);
        fx_free(f);
    }
    /* Exactly at the bound is fine. */
    struct fx *f = fx_new(NULL);
    const char *ok[] = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"};
    f->srv.responses = ok;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    start_buffered(&r, 10);
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    BODY_IS(&r, "0123456789");
    res_close(&r);
    fx_free(f);
}

static void resume_fire(uv_timer_t *t)
{
    struct res *r = t->data;
    r->paused = 0;
    mc_http_call_resume(r->call);
}

static void test_pause_resume(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n3\r\ndef\r\n3\r\nghi\r\n0\r\n\r\n"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    r.action = ACT_PAUSE_IN_BODY;
    start(&r, "GET");
    assert_true(run_until(f, &r.bodies, 2000));
    run_for(f, 30);
    assert_int_equal(r.bodies, 1); /* on_body asserts nothing arrives while paused */
    assert_int_equal(r.done, 0);
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    t.data = &r;
    uv_timer_start(&t, resume_fire, 10, 0);
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    BODY_IS(&r, "abcdefghi");
    uv_close((uv_handle_t *)&t, NULL);
    res_close(&r);
    fx_free(f);
}

/* Extracts the de-chunked body of the first request in buf. */
static void dechunk(const char *buf, size_t len, struct mc_buf *out)
{
    const char *p = strstr(buf, "\r\n\r\n");
    assert_non_null(p);
    p += 4;
    const char *end = buf + len;
    for (;;) {
        char *e;
        unsigned long n = strtoul(p, &e, 16);
        assert_true(e[0] == '\r' && e[1] == '\n');
        p = e + 2;
        if (n == 0)
            break;
        assert_true(p + n + 2 <= end);
        mc_buf_append(out, p, n);
        p += n;
        assert_memory_equal(p, "\r\n", 2);
        p += 2;
    }
    assert_memory_equal(p, "\r\n", 2);
}

static void on_drained(struct mc_http_call *call, void *ctx)
{
    (void)call;
    struct res *r = ctx;
    r->drained++;
}

static void test_streamed_upload(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    struct mc_http_call_options o = opts(&r, "POST");
    o.stream_body = 1;
    o.timeout_ms = 30000; /* 8 MiB through a test server: slow under ASan on a busy machine */
    r.call = mc_http_call_start(f->client, &o);
    /* Written before the connection exists: queued, sent once connected. */
    assert_int_equal(mc_http_call_write(r.call, "hello", 5), 0);
    assert_int_equal(mc_http_call_write(r.call, "", 0), 0);
    run_for(f, 20);
    assert_int_equal(mc_http_call_write(r.call, " ", 1), 0);
    /* A big piece to see backpressure: pending, then drained. */
    size_t big_len = 8 * 1024 * 1024;
    char *big = malloc(big_len);
    memset(big, 'z', big_len);
    assert_int_equal(mc_http_call_write(r.call, big, big_len), 0);
    assert_true(mc_http_call_pending(r.call) > 0);
    mc_http_call_on_drain(r.call, on_drained);
    assert_int_equal(mc_http_call_write(r.call, "world", 5), 0);
    mc_http_call_end(r.call);
    assert_int_equal(mc_http_call_write(r.call, "late", 4), MC_ECLOSED);
    assert_true(run_until(f, &r.done, 5000));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.drained, 1);
    BODY_IS(&r, "ok");
    assert_non_null(find_ci(f->srv.received.data, 512, "\r\ntransfer-encoding: chunked\r\n"));
    struct mc_buf got;
    mc_buf_init(&got);
    dechunk(f->srv.received.data, f->srv.received.len, &got);
    assert_int_equal(got.len, 5 + 1 + big_len + 5);
    assert_memory_equal(got.data, "hello ", 6);
    assert_memory_equal(got.data + 6, big, big_len);
    assert_memory_equal(got.data + 6 + big_len, "world", 5);
    mc_buf_close(&got);
    free(big);
    /* Fully sent and answered: pooled. */
    struct res r2;
    res_init(&r2, f);
    start(&r2, "GET");
    assert_true(run_until(f, &r2.done, 2000));
    assert_int_equal(f->srv.accepts, 1);
    res_close(&r);
    res_close(&r2);
    fx_free(f);
}

static void test_streamed_upload_with_length(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    struct mc_http_header h[] = {{"Content-Length", "6"}};
    struct mc_http_call_options o = opts(&r, "PUT");
    o.headers = h;
    o.header_count = 1;
    o.stream_body = 1;
    r.call = mc_http_call_start(f->client, &o);
    mc_http_call_write(r.call, "abc", 3);
    mc_http_call_write(r.call, "def", 3);
    mc_http_call_end(r.call);
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    const char *body = strstr(f->srv.received.data, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "abcdef");
    assert_null(find_ci(f->srv.received.data, f->srv.received.len, "transfer-encoding"));
    res_close(&r);
    fx_free(f);
}

static void test_whole_body_and_headers(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    struct mc_http_header h[] = {{"Host", "svc"}, {"Content-Type", "application/json"}};
    struct mc_http_call_options o = opts(&r, "POST");
    o.headers = h;
    o.header_count = 2;
    o.body = "{\"a\":1}\n";
    o.body_len = 8;
    r.call = mc_http_call_start(f->client, &o);
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    const char *got = f->srv.received.data;
    assert_non_null(strstr(got, "\r\nHost: svc\r\n"));
    assert_null(strstr(strstr(got, "Host: svc") + 1, "Host:")); /* not added twice */
    assert_non_null(strstr(got, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(got, "\r\nContent-Length: 8\r\n\r\n{\"a\":1}\n"));
    res_close(&r);
    fx_free(f);
}

static void test_upgrade_take_conn(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\n\r\nLEFTOVER"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    r.action = ACT_TAKE_CONN;
    struct mc_http_header h[] = {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}};
    struct mc_http_call_options o = opts(&r, "GET");
    o.headers = h;
    o.header_count = 2;
    r.call = mc_http_call_start(f->client, &o);
    assert_true(run_until(f, &r.taken_closed, 2000));
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.status, 101);
    assert_true(r.upgrade);
    assert_int_equal(r.leftover.len, 8);
    assert_memory_equal(r.leftover.data, "LEFTOVER", 8);
    run_for(f, 20);
    assert_int_equal(r.done, 0);
    res_close(&r);
    fx_free(f);
}

static void test_upgrade_not_taken(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    const char *resp[] = {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\n\r\n"};
    f->srv.responses = resp;
    f->srv.nresponses = 1;
    struct res r;
    res_init(&r, f);
    start(&r, "GET");
    assert_true(run_until(f, &r.done, 2000));
    assert_int_equal(r.err, 0);
    assert_true(r.upgrade);
    /* The connection speaks something else now: closed, not pooled. */
    assert_true(run_until(f, &f->srv.eofs, 2000));
    res_close(&r);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_close_delimited),
        cmocka_unit_test(test_truncated_body),
        cmocka_unit_test(test_continue_skipped),
        cmocka_unit_test(test_malformed_status),
        cmocka_unit_test(test_malformed_chunked),
        cmocka_unit_test(test_chunk_extensions),
        cmocka_unit_test(test_head_over_limit),
        cmocka_unit_test(test_head_request_has_no_body),
        cmocka_unit_test(test_keep_alive_reuse),
        cmocka_unit_test(test_pooled_closed_by_server),
        cmocka_unit_test(test_pooled_dead_on_reuse_is_retryable),
        cmocka_unit_test(test_request_connection_close_not_pooled),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_max_idle_per_host),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_total_timeout),
        cmocka_unit_test(test_dial_timeout),
        cmocka_unit_test(test_cancel_in_head),
        cmocka_unit_test(test_cancel_in_body_and_outside),
        cmocka_unit_test(test_free_client_with_calls_in_flight),
        cmocka_unit_test(test_buffer_over_max_body),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_streamed_upload),
        cmocka_unit_test(test_streamed_upload_with_length),
        cmocka_unit_test(test_whole_body_and_headers),
        cmocka_unit_test(test_upgrade_take_conn),
        cmocka_unit_test(test_upgrade_not_taken),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
