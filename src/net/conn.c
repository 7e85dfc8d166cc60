/* Connections: the batched output queue and the bounded linger every transport shares. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

#define OWNED_SEG_MIN 4096
#define MAX_IOV 64

/* Owned segments of the minimum size are kept, one per connection, for the next write: a
 * request/response connection then allocates nothing per message once warmed up. */
static void release_seg(struct mc_conn *c, struct mc_conn_seg *s)
{
    if (s->release)
        s->release(s->release_ctx);
    else if (!c->spare && s->cap == OWNED_SEG_MIN)
        c->spare = (char *)s->base;
    else
        mc_free((void *)s->base);
    s->base = NULL;
}

static void release_all(struct mc_conn *c, struct mc_conn_seg *segs, size_t *len)
{
    for (size_t i = 0; i < *len; i++)
        release_seg(c, &segs[i]);
    *len = 0;
}

static struct mc_conn_seg *push_seg(struct mc_conn *c)
{
    if (c->queue_len == c->queue_cap) {
        c->queue_cap = c->queue_cap ? c->queue_cap * 2 : 8;
        c->queue = mc_realloc(c->queue, c->queue_cap * sizeof *c->queue);
    }
    struct mc_conn_seg *s = &c->queue[c->queue_len++];
    memset(s, 0, sizeof *s);
    return s;
}

void mc_conn_write_copy(struct mc_conn *c, const void *data, size_t len)
{
    if (c->closing || len == 0)
        return;
    c->queued_bytes += len;
    if (c->queue_len > 0) {
        struct mc_conn_seg *last = &c->queue[c->queue_len - 1];
        if (!last->release && last->cap - last->len >= len) {
            memcpy((char *)last->base + last->len, data, len);
            last->len += len;
            return;
        }
    }
    struct mc_conn_seg *s = push_seg(c);
    s->cap = len < OWNED_SEG_MIN ? OWNED_SEG_MIN : len;
    char *base;
    if (s->cap == OWNED_SEG_MIN && c->spare) {
        base = c->spare;
        c->spare = NULL;
    } else {
        base = mc_malloc(s->cap);
    }
    memcpy(base, data, len);
    s->base = base;
    s->len = len;
}

void mc_conn_write_ref(struct mc_conn *c, const void *data, size_t len, mc_conn_release_cb release,
                       void *ctx)
{
    if (c->closing || len == 0) {
        release(ctx);
        return;
    }
    c->queued_bytes += len;
    struct mc_conn_seg *s = push_seg(c);
    s->base = data;
    s->len = len;
    s->release = release;
    s->release_ctx = ctx;
}

static void finish_close(struct mc_conn *c);

void mc_conn_transport_written(struct mc_conn *c, int status)
{
    for (size_t i = 0; i < c->inflight_len; i++)
        c->queued_bytes -= c->inflight[i].len;
    release_all(c, c->inflight, &c->inflight_len);
    c->writing = 0;
    if (c->closing) {
        finish_close(c);
        return;
    }
    if (status < 0) {
        /* The peer is gone; let the reader learn it through its own error path. */
        mc_conn_close(c, 1);
        return;
    }
    if (c->queue_len > 0) {
        mc_conn_flush(c);
    } else if (c->close_when_flushed) {
        mc_conn_close(c, 1);
    } else if (c->shutdown_when_flushed) {
        c->shutdown_when_flushed = 0;
        c->type->shutdown(c);
        if (c->on_drain)
            c->on_drain(c);
    } else if (c->on_drain) {
        c->on_drain(c);
    }
}

static void flush_link(struct mc_conn *c);

/* The queue went out whole inside mc_conn_flush (no write request, so no completion): what
 * mc_conn_transport_written would do next, except that on_drain, the owner's callback, is left
 * to the end of the loop turn (on_flush_check), as a completion would be: no owner sees its
 * callback run inside its own call to mc_conn_flush. */
static void written_now(struct mc_conn *c)
{
    if (c->close_when_flushed) {
        mc_conn_close(c, 1);
        return;
    }
    if (c->shutdown_when_flushed) {
        c->shutdown_when_flushed = 0;
        c->type->shutdown(c);
    }
    if (c->on_drain) {
        c->drain_due = 1;
        flush_link(c);
    }
}

void mc_conn_flush(struct mc_conn *c)
{
    while (!c->writing && !c->closing && c->queue_len > 0) {
        /* Swap the queue into flight: everything produced this turn goes out in one writev. */
        size_t n = c->queue_len < MAX_IOV ? c->queue_len : MAX_IOV;
        if (c->inflight_cap < n) {
            c->inflight_cap = c->queue_cap;
            c->inflight = mc_realloc(c->inflight, c->inflight_cap * sizeof *c->inflight);
        }
        memcpy(c->inflight, c->queue, n * sizeof *c->queue);
        c->inflight_len = n;
        memmove(c->queue, c->queue + n, (c->queue_len - n) * sizeof *c->queue);
        c->queue_len -= n;
        uv_buf_t bufs[MAX_IOV];
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            bufs[i] = uv_buf_init((char *)c->inflight[i].base, (unsigned)c->inflight[i].len);
            total += c->inflight[i].len;
        }
        /* First what the socket takes at once (a request or response usually fits): written
         * whole, it needs no write request. libuv stops polling for POLLOUT after every
         * completed request, which queues an epoll_ctl even when POLLOUT was never on: two
         * system calls per proxied request that this path does not make. */
        size_t first = 0;
        if (c->type->try_write) {
            int w = c->type->try_write(c, bufs, (unsigned)n);
            if (w < 0 && w != UV_EAGAIN) {
                /* The peer is gone (a reset, or EPIPE): as a failed write request would, close
                 * and let the reader learn it; writing again would only raise SIGPIPE. */
                for (size_t i = 0; i < c->inflight_len; i++)
                    c->queued_bytes -= c->inflight[i].len;
                release_all(c, c->inflight, &c->inflight_len);
                mc_conn_close(c, 1);
                return;
            }
            size_t done = w > 0 ? (size_t)w : 0;
            if (done == total) {
                c->queued_bytes -= total;
                release_all(c, c->inflight, &c->inflight_len);
                if (c->queue_len == 0)
                    written_now(c);
                continue;
            }
            /* Partly taken: the rest goes through a write request (the written segments stay
             * in flight, released with the rest when it completes). */
            while (done >= bufs[first].len) {
                done -= bufs[first].len;
                first++;
            }
            bufs[first].base += done;
            bufs[first].len -= (unsigned)done;
        }
        c->writing = 1;
        int rc = c->type->write(c, bufs + first, (unsigned)(n - first));
        if (rc < 0) {
            c->writing = 0;
            for (size_t i = 0; i < c->inflight_len; i++)
                c->queued_bytes -= c->inflight[i].len;
            release_all(c, c->inflight, &c->inflight_len);
            mc_conn_close(c, 1);
        }
    }
}

static void flush_unlink(struct mc_conn *c)
{
    if (!c->flush_queued)
        return;
    if (c->flush_prev)
        c->flush_prev->flush_next = c->flush_next;
    else
        c->net->flush_list = c->flush_next;
    if (c->flush_next)
        c->flush_next->flush_prev = c->flush_prev;
    c->flush_prev = c->flush_next = NULL;
    c->flush_queued = 0;
}

static void on_drain_idle(uv_idle_t *h)
{
    uv_idle_stop(h); /* it only kept the loop from waiting for I/O */
}

static void on_flush_check(uv_check_t *h)
{
    struct mc_net *net = h->data;
    struct mc_conn *later = NULL; /* a second on_drain in this pass: the next pass runs it */
    net->flush_pass++;
    net->in_flush_check = 1;
    while (net->flush_list) {
        struct mc_conn *c = net->flush_list;
        flush_unlink(c);
        mc_conn_flush(c); /* may link c again, for its on_drain */
        if (!c->drain_due || c->flush_queued)
            continue;
        if (c->drain_pass == net->flush_pass) {
            c->flush_next = later;
            later = c;
            continue;
        }
        c->drain_due = 0;
        c->drain_pass = net->flush_pass;
        if (c->on_drain && !c->closing && !c->writing && c->queue_len == 0)
            c->on_drain(c);
    }
    net->in_flush_check = 0;
    uv_check_stop(h);
    if (!later)
        return;
    while (later) {
        struct mc_conn *c = later;
        later = c->flush_next;
        c->flush_next = NULL;
        if (!c->closing) /* (a closing one is freed after this turn: not kept on a list) */
            flush_link(c);
    }
    if (!net->drain_idle_ready) {
        uv_idle_init(net->loop, &net->drain_idle);
        net->drain_idle_ready = 1;
    }
    uv_idle_start(&net->drain_idle, on_drain_idle);
}

/* Puts c on the list the check handle works through at the end of this loop turn. */
static void flush_link(struct mc_conn *c)
{
    struct mc_net *net = c->net;
    if (c->flush_queued)
        return;
    if (!net->flush_ready) {
        uv_check_init(net->loop, &net->flush_check);
        net->flush_check.data = net;
        net->flush_ready = 1;
    }
    c->flush_next = net->flush_list;
    c->flush_prev = NULL;
    if (net->flush_list)
        net->flush_list->flush_prev = c;
    net->flush_list = c;
    c->flush_queued = 1;
    uv_check_start(&net->flush_check, on_flush_check);
}

void mc_conn_drain_later(struct mc_conn *c)
{
    if (c->closing)
        return;
    c->drain_due = 1;
    c->drain_pass = c->net->flush_pass; /* inside a pass: not this one */
    flush_link(c);
}

void mc_conn_flush_soon(struct mc_conn *c)
{
    if (c->closing || c->queue_len == 0)
        return;
    flush_link(c);
}

void mc_net_close(struct mc_net *net)
{
    if (net->flush_ready && !uv_is_closing((uv_handle_t *)&net->flush_check))
        uv_close((uv_handle_t *)&net->flush_check, NULL);
    if (net->drain_idle_ready && !uv_is_closing((uv_handle_t *)&net->drain_idle))
        uv_close((uv_handle_t *)&net->drain_idle, NULL);
    if (net->linger_ready && !uv_is_closing((uv_handle_t *)&net->linger_timer))
        uv_close((uv_handle_t *)&net->linger_timer, NULL);
}

static void linger_unlink(struct mc_conn *c)
{
    if (!c->lingering)
        return;
    if (c->linger_prev)
        c->linger_prev->linger_next = c->linger_next;
    else
        c->net->linger_list = c->linger_next;
    if (c->linger_next)
        c->linger_next->linger_prev = c->linger_prev;
    c->linger_prev = c->linger_next = NULL;
    c->lingering = 0;
    if (!c->net->linger_list)
        uv_timer_stop(&c->net->linger_timer);
}

/* Once a second while anything lingers: a connection whose peer has not taken its output by
 * the deadline is closed at once, its queue dropped. */
static void on_linger_timer(uv_timer_t *t)
{
    struct mc_net *net = t->data;
    uint64_t now = uv_now(net->loop);
    struct mc_conn *c = net->linger_list;
    while (c) {
        struct mc_conn *next = c->linger_next;
        if (now >= c->linger_deadline_ms)
            mc_conn_close(c, 1); /* unlinks it */
        c = next;
    }
}

static void linger_start(struct mc_conn *c)
{
    struct mc_net *net = c->net;
    if (c->lingering)
        return;
    if (!net->linger_ready) {
        uv_timer_init(net->loop, &net->linger_timer);
        net->linger_timer.data = net;
        net->linger_ready = 1;
    }
    c->linger_deadline_ms = uv_now(net->loop) + MC_CONN_LINGER_MS;
    c->linger_prev = NULL;
    c->linger_next = net->linger_list;
    if (net->linger_list)
        net->linger_list->linger_prev = c;
    else
        uv_timer_start(&net->linger_timer, on_linger_timer, 1000, 1000);
    net->linger_list = c;
    c->lingering = 1;
}

void mc_conn_transport_closed(struct mc_conn *c)
{
    release_all(c, c->queue, &c->queue_len);
    mc_free(c->queue);
    c->queue = NULL;
    mc_free(c->inflight);
    c->inflight = NULL;
    mc_free(c->spare);
    c->spare = NULL;
    if (c->on_close)
        c->on_close(c);
}

static void finish_close(struct mc_conn *c)
{
    if (c->transport_closing)
        return;
    c->transport_closing = 1;
    c->type->close(c);
}

void mc_conn_close(struct mc_conn *c, int now)
{
    if (c->closing)
        return;
    if (!now && (c->writing || c->queue_len > 0)) {
        c->close_when_flushed = 1;
        mc_conn_read_stop(c);
        linger_start(c);
        mc_conn_flush(c);
        return;
    }
    c->closing = 1;
    flush_unlink(c);
    linger_unlink(c);
    mc_conn_read_stop(c);
    release_all(c, c->queue, &c->queue_len);
    c->queued_bytes = 0;
    /* A write in flight still references its segments: the transport cancels it during close
     * and mc_conn_transport_written releases them before on_handle_closed runs. */
    finish_close(c);
}

int mc_conn_read_start(struct mc_conn *c)
{
    if (c->reading || c->closing)
        return 0;
    int rc = c->type->read_start(c);
    if (rc == 0)
        c->reading = 1;
    return rc;
}

int mc_conn_read_stop(struct mc_conn *c)
{
    if (!c->reading)
        return 0;
    c->reading = 0;
    return c->type->read_stop(c);
}

int mc_conn_init(struct mc_conn *c, struct mc_net *net, const struct mc_conn_type *type)
{
    memset(c, 0, sizeof *c);
    c->net = net;
    c->type = type ? type : &mc_conn_tcp_type;
    return c->type->init(c);
}

int mc_conn_accept(struct mc_conn *c, uv_stream_t *listener)
{
    int rc = c->type->accept(c, listener);
    if (rc == 0)
        c->connected = 1;
    return rc;
}

void mc_conn_transport_connected(struct mc_conn *c, int status)
{
    if (status == 0)
        c->connected = 1;
    if (status == UV_ECANCELED || c->closing)
        return;
    c->connect_cb(c, status);
}

int mc_conn_connect(struct mc_conn *c, const struct sockaddr *addr,
                    void (*cb)(struct mc_conn *c, int status))
{
    c->connect_cb = cb;
    return c->type->connect(c, addr);
}

void mc_conn_shutdown(struct mc_conn *c)
{
    if (c->closing || c->close_when_flushed)
        return;
    if (c->writing || c->queue_len > 0)
        c->shutdown_when_flushed = 1;
    else
        c->type->shutdown(c);
}

void mc_conn_peer_name(struct mc_conn *c, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    if (c->type->peer_addr(c, &ss) == 0) {
        if (ss.ss_family == AF_INET && uv_ip4_name((struct sockaddr_in *)&ss, buf, len) == 0)
            return;
        if (ss.ss_family == AF_INET6 && uv_ip6_name((struct sockaddr_in6 *)&ss, buf, len) == 0)
            return;
    }
    snprintf(buf, len, "-");
}

const void *mc_conn_peer_cert(struct mc_conn *c)
{
    return c->type->peer_cert ? c->type->peer_cert(c) : NULL;
}

int mc_net_split_host_port(const char *text, char *host, size_t host_len, int *port)
{
    const char *h = text, *port_str;
    size_t hl;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':')
            return MC_EINVAL;
        h = text + 1;
        hl = (size_t)(end - h);
        port_str = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon)
            return MC_EINVAL;
        hl = (size_t)(colon - text);
        port_str = colon + 1;
    }
    if (hl >= host_len || *port_str < '0' || *port_str > '9')
        return MC_EINVAL;
    char *end;
    long p = strtol(port_str, &end, 10);
    if (*end != '\0' || p > 65535)
        return MC_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int mc_net_parse_address(const char *text, struct sockaddr_storage *out)
{
    char host[256];
    int port;
    if (mc_net_split_host_port(text, host, sizeof host, &port) < 0)
        return MC_EINVAL;
    memset(out, 0, sizeof *out);
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0) {
        return uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)out) < 0 ? MC_EINVAL : 0;
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return MC_EINVAL;
}

void mc_conn_free(struct mc_conn *c)
{
    mc_free(c);
}
