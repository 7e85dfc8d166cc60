/* The plain TCP transport: libuv's TCP stream, no state of its own, no certificate. */
#include <string.h>

#include "net/conn.h"
#include "util/alloc.h"

static int tcp_init(struct mc_conn *c)
{
    int rc = uv_tcp_init(c->net->loop, &c->io.tcp);
    if (rc == 0)
        c->io.handle.data = c;
    return rc;
}

static int tcp_accept(struct mc_conn *c, uv_stream_t *listener)
{
    int rc = uv_accept(listener, &c->io.stream);
    if (rc == 0)
        uv_tcp_nodelay(&c->io.tcp, 1);
    return rc;
}

static void tcp_connected(uv_connect_t *req, int status)
{
    struct mc_conn *c = req->data;
    if (status == 0)
        uv_tcp_nodelay(&c->io.tcp, 1);
    mc_conn_transport_connected(c, status);
}

static int tcp_connect(struct mc_conn *c, const struct sockaddr *addr)
{
    c->connect_req.data = c;
    return uv_tcp_connect(&c->connect_req, &c->io.tcp, addr, tcp_connected);
}

/* Every connection of a loop reads into the loop's one buffer: bytes are consumed or copied
 * synchronously in the read callback. */
static void tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct mc_conn *c = h->data;
    if (c->net->read_buf_busy) {
        /* Re-entrant read on another connection during a callback: should not happen
         * with libuv's single-threaded dispatch; refuse the read rather than corrupt. */
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    c->net->read_buf_busy = 1;
    *buf = uv_buf_init(c->net->read_buf, sizeof c->net->read_buf);
}

static void tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct mc_conn *c = s->data;
    if (buf->base == c->net->read_buf)
        c->net->read_buf_busy = 0;
    if (nread == 0 || c->closing)
        return;
    c->on_read(c, buf->base, nread);
}

static int tcp_read_start(struct mc_conn *c)
{
    return uv_read_start(&c->io.stream, tcp_alloc, tcp_read);
}

static int tcp_read_stop(struct mc_conn *c)
{
    return uv_read_stop(&c->io.stream);
}

static void tcp_written(uv_write_t *req, int status)
{
    mc_conn_transport_written(req->data, status);
}

static int tcp_write(struct mc_conn *c, const uv_buf_t *bufs, unsigned count)
{
    c->write_req.data = c;
    return uv_write(&c->write_req, &c->io.stream, bufs, count, tcp_written);
}

/* Straight to the socket (write or writev): UV_EAGAIN when it is full or a write request is
 * still queued, so bytes never overtake each other. */
static int tcp_try_write(struct mc_conn *c, const uv_buf_t *bufs, unsigned count)
{
    return uv_try_write(&c->io.stream, bufs, count);
}

static void tcp_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status; /* a failed FIN shows up to the reader as an error or EOF */
    mc_free(req);
}

/* Rare (a half-close), so its request is allocated rather than kept in every connection. */
static int tcp_shutdown(struct mc_conn *c)
{
    uv_shutdown_t *req = mc_malloc(sizeof *req);
    int rc = uv_shutdown(req, &c->io.stream, tcp_shutdown_done);
    if (rc < 0)
        mc_free(req);
    return rc;
}

static void tcp_closed(uv_handle_t *h)
{
    mc_conn_transport_closed(h->data);
}

static void tcp_close(struct mc_conn *c)
{
    if (!uv_is_closing(&c->io.handle))
        uv_close(&c->io.handle, tcp_closed);
}

static int tcp_peer_addr(struct mc_conn *c, struct sockaddr_storage *out)
{
    int len = sizeof *out;
    return uv_tcp_getpeername(&c->io.tcp, (struct sockaddr *)out, &len);
}

static size_t tcp_pending(const struct mc_conn *c)
{
    (void)c;
    return 0; /* the kernel holds whatever is unread, and the socket signals it */
}

static const void *tcp_peer_cert(struct mc_conn *c)
{
    (void)c;
    return NULL;
}

const struct mc_conn_type mc_conn_tcp_type = {
    .name = "tcp",
    .init = tcp_init,
    .accept = tcp_accept,
    .connect = tcp_connect,
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .write = tcp_write,
    .try_write = tcp_try_write,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .peer_addr = tcp_peer_addr,
    .pending = tcp_pending,
    .peer_cert = tcp_peer_cert,
};
