/* bench/ws_fanout: WebSocket fan-out load client for the sidecar's /broker (SPEC 3.4). Opens
 * N subscribers and one publisher on ws://HOST:PORT/broker?topic=T, publishes M messages of
 * SIZE bytes and measures the messages delivered per second across the subscribers.
 *
 * One libuv loop, raw RFC 6455 framing: client frames are masked by hand, server frames are
 * parsed by a small streaming parser that counts complete messages and checks that every frame
 * has the length of the first (the JSON envelope of a fixed-size body has a fixed length). The
 * publisher keeps at most WINDOW messages ahead of the slowest subscriber, so the run measures
 * throughput and never trips the sidecar's slow-consumer cut (8 MiB queue per subscriber).
 *
 * Across sidecars (a broker shared through NATS): -p takes a comma list of ports the
 * subscribers are spread over (round-robin), -P the publisher's port, and -d a settle pause
 * after the last upgrade so every sidecar's NATS subscription has reached the server before
 * the first publish.
 *
 * Usage: ws_fanout -p PORT[,PORT...] [-P PUBPORT] [-d SETTLE_MS] [-s SUBS] [-m MESSAGES]
 *                  [-b SIZE] [-w WINDOW] [-t SECONDS] [-T TOPIC]
 * Prints one line of key=value results; exits 0 when every subscriber got every message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#define FANOUT_READ_CHUNK (64 * 1024)
#define FANOUT_MAX_HEAD 4096
#define FANOUT_MAX_SUBS 10000
#define FANOUT_MAX_BODY (1024 * 1024)
#define FANOUT_FIRST_KEEP 64 /* bytes of the first message kept to check its shape */

struct peer {
    uv_tcp_t tcp;
    int port;
    uv_connect_t connect;
    struct fanout *f;
    int is_pub;
    int upgraded;
    char head[FANOUT_MAX_HEAD];
    size_t head_len;
    /* streaming frame parser */
    unsigned char hdr[14];
    size_t hdr_len;
    size_t hdr_need;
    uint64_t payload_left;
    int opcode;    /* opcode of the frame being read */
    int msg_start; /* first frame's opcode of the message being read (text/binary) */
    int fin;
    uint64_t frame_len;
    uint64_t received;  /* complete data messages */
    uint64_t first_len; /* length of the first data frame: every later one must match */
    char first[FANOUT_FIRST_KEEP];
    size_t first_kept;
};

struct fanout {
    uv_loop_t *loop;
    const char *host;
    int port;          /* the publisher's */
    int sub_ports[16]; /* subscribers are spread over these */
    int nsub_ports;
    uint64_t settle_ms; /* pause between the last upgrade and the first publish */
    int settled;
    uv_timer_t settle;
    const char *topic;
    int nsubs;
    uint64_t messages;
    size_t size;
    uint64_t window;
    double timeout_s;
    struct peer *subs;
    struct peer pub;
    int connected; /* upgraded peers */
    int closed;    /* peers whose handle closed */
    int errors;    /* handshake failures, closes, malformed frames */
    uint64_t bad_len;
    uint64_t published;
    int pub_writing;      /* publisher writes in flight */
    unsigned char *frame; /* one masked text frame, written `published` times */
    size_t frame_len;
    uint64_t t0_ns, t1_ns;
    int finished;
    uv_timer_t deadline;
    char rbuf[FANOUT_READ_CHUNK];
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "ws_fanout: out of memory\n");
        abort();
    }
    return p;
}

static void finish(struct fanout *f);

static void on_closed(uv_handle_t *h)
{
    struct peer *p = h->data;
    p->f->closed++;
}

static void peer_close(struct peer *p)
{
    if (!uv_is_closing((uv_handle_t *)&p->tcp))
        uv_close((uv_handle_t *)&p->tcp, on_closed);
}

static uint64_t min_received(const struct fanout *f)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < f->nsubs; i++)
        if (f->subs[i].received < m)
            m = f->subs[i].received;
    return m;
}

static void on_pub_written(uv_write_t *req, int status)
{
    struct fanout *f = req->data;
    free(((uv_buf_t *)(req + 1))->base);
    free(req);
    f->pub_writing--;
    if (status < 0) {
        fprintf(stderr, "ws_fanout: publish write failed: %s\n", uv_strerror(status));
        f->errors++;
        finish(f);
    }
}

/* Publishes as many messages as the window allows, all in one write: the sidecar then reads
 * a batch per loop turn, as it would from a busy real publisher. */
static void on_settled(uv_timer_t *t);

static void pump(struct fanout *f)
{
    if (f->finished || f->published >= f->messages || f->connected < f->nsubs + 1 || !f->settled)
        return;
    uint64_t low = min_received(f);
    uint64_t limit = low + f->window;
    if (limit > f->messages)
        limit = f->messages;
    if (limit <= f->published)
        return;
    uint64_t n = limit - f->published;
    /* Wait for a quarter window of room unless the end is near: fewer, larger writes. */
    if (n < f->window / 4 && limit < f->messages && f->pub_writing)
        return;
    size_t len = (size_t)n * f->frame_len;
    char *data = xmalloc(len);
    for (uint64_t i = 0; i < n; i++)
        memcpy(data + i * f->frame_len, f->frame, f->frame_len);
    uv_write_t *req = xmalloc(sizeof *req + sizeof(uv_buf_t));
    uv_buf_t *b = (uv_buf_t *)(req + 1);
    *b = uv_buf_init(data, (unsigned)len);
    req->data = f;
    if (uv_write(req, (uv_stream_t *)&f->pub.tcp, b, 1, on_pub_written) < 0) {
        free(data);
        free(req);
        f->errors++;
        finish(f);
        return;
    }
    f->pub_writing++;
    f->published = limit;
}

static void check_done(struct fanout *f)
{
    if (f->finished || f->published < f->messages)
        return;
    if (min_received(f) >= f->messages)
        finish(f);
}

/* Feeds server bytes to the peer's frame parser. Server frames are never masked. */
static int parse_frames(struct peer *p, const unsigned char *d, size_t n)
{
    struct fanout *f = p->f;
    while (n > 0) {
        if (p->hdr_need == 0 || p->hdr_len < p->hdr_need) {
            if (p->hdr_need == 0)
                p->hdr_need = 2;
            size_t take = p->hdr_need - p->hdr_len;
            if (take > n)
                take = n;
            memcpy(p->hdr + p->hdr_len, d, take);
            p->hdr_len += take;
            d += take;
            n -= take;
            if (p->hdr_len < p->hdr_need)
                return 0;
            if (p->hdr_need == 2) {
                if (p->hdr[1] & 0x80) {
                    fprintf(stderr, "ws_fanout: masked frame from the server\n");
                    return -1;
                }
                unsigned l7 = p->hdr[1] & 0x7f;
                size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
                if (need > 2) {
                    p->hdr_need = need;
                    continue;
                }
            }
            unsigned l7 = p->hdr[1] & 0x7f;
            uint64_t len = l7;
            if (l7 == 126)
                len = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
            else if (l7 == 127) {
                len = 0;
                for (int i = 2; i < 10; i++)
                    len = len << 8 | p->hdr[i];
            }
            p->opcode = p->hdr[0] & 0x0f;
            p->fin = (p->hdr[0] & 0x80) != 0;
            p->frame_len = len;
            p->payload_left = len;
            if (p->opcode == 1 || p->opcode == 2)
                p->msg_start = p->opcode;
            if (p->opcode == 8) {
                fprintf(stderr, "ws_fanout: server closed a %s connection\n",
                        p->is_pub ? "publisher" : "subscriber");
                return -1;
            }
        }
        size_t take = p->payload_left < n ? (size_t)p->payload_left : n;
        if (!p->is_pub && p->received == 0 && p->opcode == 1 && p->first_kept < FANOUT_FIRST_KEEP) {
            size_t keep = FANOUT_FIRST_KEEP - p->first_kept;
            if (keep > take)
                keep = take;
            memcpy(p->first + p->first_kept, d, keep);
            p->first_kept += keep;
        }
        p->payload_left -= take;
        d += take;
        n -= take;
        if (p->payload_left > 0)
            return 0;
        /* frame complete */
        int data_frame = p->opcode <= 2;
        if (data_frame && p->fin && !p->is_pub) {
            if (p->received == 0) {
                p->first_len = p->frame_len;
                if (p->first_kept < 10 || memcmp(p->first, "{\"Header\":", 10) != 0) {
                    fprintf(stderr, "ws_fanout: first message is not a broker envelope\n");
                    return -1;
                }
            } else if (p->frame_len != p->first_len) {
                f->bad_len++;
            }
            p->received++;
        }
        p->hdr_len = 0;
        p->hdr_need = 0;
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct peer *p = h->data;
    *buf = uv_buf_init(p->f->rbuf, sizeof p->f->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct peer *p = s->data;
    struct fanout *f = p->f;
    if (nread < 0) {
        if (!f->finished) {
            fprintf(stderr, "ws_fanout: connection lost: %s\n", uv_strerror((int)nread));
            f->errors++;
            finish(f);
        }
        return;
    }
    const unsigned char *d = (const unsigned char *)buf->base;
    size_t n = (size_t)nread;
    if (!p->upgraded) {
        size_t take = n;
        if (p->head_len + take >= sizeof p->head)
            take = sizeof p->head - 1 - p->head_len;
        memcpy(p->head + p->head_len, d, take);
        p->head_len += take;
        p->head[p->head_len] = '\0';
        char *eoh = strstr(p->head, "\r\n\r\n");
        if (!eoh) {
            if (p->head_len >= sizeof p->head - 1) {
                fprintf(stderr, "ws_fanout: handshake reply too long\n");
                f->errors++;
                finish(f);
            }
            return;
        }
        if (strncmp(p->head, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "ws_fanout: upgrade refused: %.*s\n", (int)strcspn(p->head, "\r"),
                    p->head);
            f->errors++;
            finish(f);
            return;
        }
        size_t used = (size_t)(eoh + 4 - p->head) - (p->head_len - take);
        d += used;
        n -= used;
        p->upgraded = 1;
        if (++f->connected == f->nsubs + 1) {
            if (f->settle_ms) {
                uv_timer_start(&f->settle, on_settled, f->settle_ms, 0);
            } else {
                f->settled = 1;
                f->t0_ns = uv_hrtime();
            }
        }
    }
    if (parse_frames(p, d, n) < 0) {
        f->errors++;
        finish(f);
        return;
    }
    pump(f);
    check_done(f);
}

static void on_settled(uv_timer_t *t)
{
    struct fanout *f = t->data;
    f->settled = 1;
    f->t0_ns = uv_hrtime();
    pump(f);
}

static void on_handshake_written(uv_write_t *req, int status)
{
    struct peer *p = req->data;
    free(req);
    if (status < 0) {
        fprintf(stderr, "ws_fanout: handshake write: %s\n", uv_strerror(status));
        p->f->errors++;
        finish(p->f);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct peer *p = req->data;
    struct fanout *f = p->f;
    if (status < 0) {
        fprintf(stderr, "ws_fanout: connect %s:%d: %s\n", f->host, p->port, uv_strerror(status));
        f->errors++;
        finish(f);
        return;
    }
    uv_tcp_nodelay(&p->tcp, 1);
    static char request[512];
    int len = snprintf(request, sizeof request,
                       "GET /broker?topic=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       f->topic, f->host, p->port);
    uv_write_t *w = xmalloc(sizeof *w);
    w->data = p;
    uv_buf_t b = uv_buf_init(request, (unsigned)len);
    uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
    if (uv_write(w, (uv_stream_t *)&p->tcp, &b, 1, on_handshake_written) < 0) {
        free(w);
        f->errors++;
        finish(f);
    }
}

static int peer_start(struct fanout *f, struct peer *p, int is_pub, int port)
{
    memset(p, 0, sizeof *p);
    p->f = f;
    p->is_pub = is_pub;
    p->port = port;
    uv_tcp_init(f->loop, &p->tcp);
    p->tcp.data = p;
    p->connect.data = p;
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(f->host, port, &addr);
    if (rc == 0)
        rc = uv_tcp_connect(&p->connect, &p->tcp, (const struct sockaddr *)&addr, on_connect);
    return rc;
}

static void finish(struct fanout *f)
{
    if (f->finished)
        return;
    f->finished = 1;
    f->t1_ns = uv_hrtime();
    uv_timer_stop(&f->deadline);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_close((uv_handle_t *)&f->settle, NULL);
    for (int i = 0; i < f->nsubs; i++)
        peer_close(&f->subs[i]);
    peer_close(&f->pub);
}

static void on_deadline(uv_timer_t *t)
{
    struct fanout *f = t->data;
    fprintf(stderr, "ws_fanout: time limit reached\n");
    finish(f);
}

/* Builds one masked text frame carrying a body of f->size bytes. The body is printable ASCII
 * so the sidecar's UTF-8 check passes; one fixed mask key is enough for a load client. */
static void build_frame(struct fanout *f)
{
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t hl = f->size < 126 ? 2 : f->size <= 0xffff ? 4 : 10;
    f->frame_len = hl + 4 + f->size;
    f->frame = xmalloc(f->frame_len);
    unsigned char *fr = f->frame;
    fr[0] = 0x81;
    if (hl == 2) {
        fr[1] = 0x80 | (unsigned char)f->size;
    } else if (hl == 4) {
        fr[1] = 0x80 | 126;
        fr[2] = (unsigned char)(f->size >> 8);
        fr[3] = (unsigned char)f->size;
    } else {
        fr[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            fr[2 + i] = (unsigned char)((uint64_t)f->size >> (56 - 8 * i));
    }
    memcpy(fr + hl, mask, 4);
    for (size_t i = 0; i < f->size; i++)
        fr[hl + 4 + i] = (unsigned char)('a' + i % 26) ^ mask[i % 4];
}

static void usage(void)
{
    fprintf(stderr, "usage: ws_fanout -p PORT[,PORT...] [-P PUBPORT] [-d SETTLE_MS] [-h HOST] "
                    "[-s SUBS] [-m MESSAGES] [-b SIZE] [-w WINDOW] [-t SECONDS] [-T TOPIC]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct fanout f;
    f.host = "127.0.0.1";
    f.topic = "bench";
    f.nsubs = 100;
    f.messages = 10000;
    f.size = 64;
    f.window = 1000;
    f.timeout_s = 30;
    int opt;
    while ((opt = getopt(argc, argv, "p:P:d:h:s:m:b:w:t:T:")) != -1) {
        switch (opt) {
        case 'p':
            for (char *q = optarg; *q && f.nsub_ports < 16; q++) {
                int port = atoi(q);
                if (port <= 0 || port > 65535)
                    usage();
                f.sub_ports[f.nsub_ports++] = port;
                q = strchr(q, ',');
                if (!q)
                    break;
            }
            break;
        case 'P':
            f.port = atoi(optarg);
            break;
        case 'd':
            f.settle_ms = strtoull(optarg, NULL, 10);
            break;
        case 'h':
            f.host = optarg;
            break;
        case 's':
            f.nsubs = atoi(optarg);
            break;
        case 'm':
            f.messages = strtoull(optarg, NULL, 10);
            break;
        case 'b':
            f.size = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            f.window = strtoull(optarg, NULL, 10);
            break;
        case 't':
            f.timeout_s = atof(optarg);
            break;
        case 'T':
            f.topic = optarg;
            break;
        default:
            usage();
        }
    }
    if (!f.port && f.nsub_ports)
        f.port = f.sub_ports[0];
    if (f.port <= 0 || f.port > 65535 || f.nsub_ports == 0 || f.nsubs <= 0 ||
        f.nsubs > FANOUT_MAX_SUBS || f.messages == 0 || f.size == 0 || f.size > FANOUT_MAX_BODY ||
        f.window == 0 || f.timeout_s <= 0)
        usage();
    f.loop = uv_default_loop();
    build_frame(&f);
    f.subs = calloc((size_t)f.nsubs, sizeof *f.subs);
    if (!f.subs)
        abort();
    uv_timer_init(f.loop, &f.deadline);
    f.deadline.data = &f;
    uv_timer_start(&f.deadline, on_deadline, (uint64_t)(f.timeout_s * 1000), 0);
    uv_timer_init(f.loop, &f.settle);
    f.settle.data = &f;
    int rc = 0;
    for (int i = 0; i < f.nsubs && rc == 0; i++)
        rc = peer_start(&f, &f.subs[i], 0, f.sub_ports[i % f.nsub_ports]);
    if (rc == 0)
        rc = peer_start(&f, &f.pub, 1, f.port);
    if (rc < 0) {
        fprintf(stderr, "ws_fanout: %s\n", uv_strerror(rc));
        f.errors++;
        finish(&f);
    }
    uv_run(f.loop, UV_RUN_DEFAULT);

    uint64_t delivered = 0;
    for (int i = 0; i < f.nsubs; i++)
        delivered += f.subs[i].received;
    double secs = f.t0_ns && f.t1_ns > f.t0_ns ? (double)(f.t1_ns - f.t0_ns) / 1e9 : 0;
    int complete = f.errors == 0 && f.bad_len == 0 && f.published == f.messages &&
                   delivered == f.messages * (uint64_t)f.nsubs;
    printf("ws_fanout subscribers=%d messages=%llu size=%zu published=%llu delivered=%llu "
           "bad_frames=%llu seconds=%.3f msgs_per_s=%.0f complete=%d\n",
           f.nsubs, (unsigned long long)f.messages, f.size, (unsigned long long)f.published,
           (unsigned long long)delivered, (unsigned long long)f.bad_len, secs,
           secs > 0 ? (double)delivered / secs : 0.0, complete);
    free(f.frame);
    free(f.subs);
    uv_loop_close(f.loop);
    return complete ? 0 : 1;
}
