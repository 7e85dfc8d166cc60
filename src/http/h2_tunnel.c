/* The extended-CONNECT stream as a transport. */
#include "http/h2_tunnel.h"

#include "util/alloc.h"
#include "util/buf.h"

struct mc_h2_tunnel {
    struct mc_conn *conn;
    struct mc_h2_stream *st; /* NULL once the stream is gone */
    struct mc_buf in;        /* DATA received while not reading (within the window) */
    uv_timer_t kick;         /* reports on a later turn: held reads, EOF, the close */
    struct sockaddr_storage peer;
    int peer_rc;
    unsigned writing : 1, eof : 1, reset : 1, eof_told : 1, closing : 1;
};

static struct mc_h2_tunnel *of(const struct mc_conn *c)
{
    return c->tstate;
}

static void on_kick(uv_timer_t *h);

static void kick(struct mc_h2_tunnel *t)
{
    if (!t->closing)
        uv_timer_start(&t->kick, on_kick, 0, 0);
}

/* Held bytes, then the end, to a reader that reads. */
static void on_kick(uv_timer_t *h)
{
    struct mc_h2_tunnel *t = h->data;
    struct mc_conn *c = t->conn;
    if (t->in.len && c->reading && !c->closing) {
        struct mc_buf in = t->in;
        mc_buf_init(&t->in);
        if (t->st)
            mc_h2_stream_consume(t->st, in.len);
        c->on_read(c, in.data, (ssize_t)in.len);
        mc_buf_close(&in);
    }
    if ((t->eof || t->reset) && !t->eof_told && t->in.len == 0 && c->reading && !c->closing) {
        t->eof_told = 1;
        c->on_read(c, NULL, t->reset ? UV_ECONNRESET : UV_EOF);
    }
}

static int tunnel_init(struct mc_conn *c)
{
    (void)c;
    return 0;
}

static int tunnel_accept(struct mc_conn *c, uv_stream_t *listener)
{
    (void)c;
    (void)listener;
    return UV_ENOTSUP;
}

static int tunnel_connect(struct mc_conn *c, const struct sockaddr *addr)
{
    (void)c;
    (void)addr;
    return UV_ENOTSUP;
}

static int tunnel_read_start(struct mc_conn *c)
{
    struct mc_h2_tunnel *t = of(c);
    if (t->in.len || t->eof || t->reset)
        kick(t);
    return 0;
}

static int tunnel_read_stop(struct mc_conn *c)
{
    (void)c;
    return 0;
}

static int tunnel_write(struct mc_conn *c, const uv_buf_t *bufs, unsigned count)
{
    struct mc_h2_tunnel *t = of(c);
    if (!t->st)
        return UV_EPIPE;
    for (unsigned i = 0; i < count; i++)
        mc_h2_stream_write(t->st, bufs[i].base, bufs[i].len);
    t->writing = 1; /* completes when nghttp2 has taken it (mc_h2_tunnel_drained) */
    return 0;
}

static int tunnel_shutdown(struct mc_conn *c)
{
    struct mc_h2_tunnel *t = of(c);
    if (t->st)
        mc_h2_stream_end(t->st, 0);
    return 0;
}

static void on_kick_closed(uv_handle_t *h)
{
    struct mc_h2_tunnel *t = h->data;
    struct mc_conn *c = t->conn;
    if (t->writing) {
        t->writing = 0;
        mc_conn_transport_written(c, UV_ECANCELED);
    }
    mc_buf_close(&t->in);
    mc_free(t);
    c->tstate = NULL;
    mc_conn_transport_closed(c);
}

static void tunnel_close(struct mc_conn *c)
{
    struct mc_h2_tunnel *t = of(c);
    if (t->closing)
        return;
    t->closing = 1;
    if (t->st) {
        mc_h2_stream_end(t->st, 1);
        t->st = NULL;
    }
    uv_close((uv_handle_t *)&t->kick, on_kick_closed);
}

static int tunnel_peer_addr(struct mc_conn *c, struct sockaddr_storage *out)
{
    struct mc_h2_tunnel *t = of(c);
    if (t->peer_rc == 0)
        *out = t->peer;
    return t->peer_rc;
}

static size_t tunnel_pending(const struct mc_conn *c)
{
    const struct mc_h2_tunnel *t = of(c);
    return t ? t->in.len : 0;
}

static const struct mc_conn_type tunnel_type = {
    .name = "h2-stream",
    .init = tunnel_init,
    .accept = tunnel_accept,
    .connect = tunnel_connect,
    .read_start = tunnel_read_start,
    .read_stop = tunnel_read_stop,
    .write = tunnel_write,
    .shutdown = tunnel_shutdown,
    .close = tunnel_close,
    .peer_addr = tunnel_peer_addr,
    .pending = tunnel_pending,
    .peer_cert = NULL,
};

struct mc_h2_tunnel *mc_h2_tunnel_new(struct mc_net *net, struct mc_h2_stream *st)
{
    struct mc_h2_tunnel *t = mc_calloc(1, sizeof *t);
    struct mc_conn *c = mc_calloc(1, sizeof *c);
    mc_conn_init(c, net, &tunnel_type);
    c->tstate = t;
    c->connected = 1;
    t->conn = c;
    t->st = st;
    mc_buf_init(&t->in);
    uv_timer_init(net->loop, &t->kick);
    t->kick.data = t;
    t->peer_rc = mc_h2_stream_peer_addr(st, &t->peer);
    return t;
}

struct mc_conn *mc_h2_tunnel_conn(struct mc_h2_tunnel *t)
{
    return t->conn;
}

void mc_h2_tunnel_data(struct mc_h2_tunnel *t, const char *data, size_t len)
{
    struct mc_conn *c = t->conn;
    if (t->in.len == 0 && c->reading && !c->closing) {
        mc_h2_stream_consume(t->st, len);
        c->on_read(c, data, (ssize_t)len);
        return;
    }
    mc_buf_append(&t->in, data, len); /* at most the stream's window: it is not consumed */
}

void mc_h2_tunnel_eof(struct mc_h2_tunnel *t)
{
    t->eof = 1;
    kick(t);
}

void mc_h2_tunnel_drained(struct mc_h2_tunnel *t)
{
    if (t->writing && t->st && mc_h2_stream_pending(t->st) == 0) {
        t->writing = 0;
        mc_conn_transport_written(t->conn, 0);
    }
}

void mc_h2_tunnel_detach(struct mc_h2_tunnel *t)
{
    t->st = NULL;
    t->reset = !t->eof;
    if (!t->reset)
        t->eof = 1;
    if (t->writing) {
        t->writing = 0;
        mc_conn_transport_written(t->conn, UV_EPIPE);
    }
    kick(t);
}
