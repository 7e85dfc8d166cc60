/* The HTTP server: listener, connection accounting, drain and free. Connections are accepted
 * by the HTTP/1 codec (http/h1.c), which hands HTTP/2 ones (preface, ALPN "h2", Upgrade: h2c)
 * to the HTTP/2 codec (http/h2.c). */
#include "http/server.h"

#include <string.h>

#include "http/access_log.h"
#include "http/h1.h"
#include "http/h2.h"
#include "http/server_private.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "util/units.h"

/* The last step of freeing: every connection and the listener are closed. */
static void server_release(struct mc_http_server *s)
{
    mc_h2_server_close(s);
    mc_buf_close(&s->scratch);
    mc_free(s);
}

void mc_http_server_report(struct mc_http_server *s, const struct mc_http_request *req,
                           const char *peer)
{
    if (s->observer)
        s->observer(s->observer_ctx, req);
    if (s->access_log)
        mc_http_access_log_write(s->access_log, req, peer, uv_now(s->net->loop));
}

static void check_drained(struct mc_http_server *s)
{
    if (s->draining && s->conn_count == 0 && s->drained) {
        void (*done)(void *) = s->drained;
        s->drained = NULL;
        done(s->drained_ctx);
    }
}

void mc_http_server_unlink(struct mc_http_server *s, struct mc_http_server_link *link)
{
    if (link->prev)
        link->prev->next = link->next;
    else if (s->conns == link)
        s->conns = link->next;
    if (link->next)
        link->next->prev = link->prev;
    link->prev = link->next = NULL;
    if (link->counted) {
        link->counted = 0;
        s->conn_count--;
    }
    check_drained(s);
}

void mc_http_server_conn_released(struct mc_http_server *s)
{
    s->open_count--;
    if (s->freeing && s->open_count == 0 && !s->listening)
        server_release(s);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct mc_http_server *s = listener->data;
    if (status < 0) {
        mc_log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    mc_h1_accept(s, listener);
}

struct mc_http_server *mc_http_server_new(struct mc_net *net,
                                          const struct mc_http_server_config *config)
{
    struct mc_http_server *s = mc_calloc(1, sizeof *s);
    if (mc_cors_parse(&s->cors, config->cors) < 0) {
        mc_free(s);
        return NULL;
    }
    s->net = net;
    s->transport = config->transport;
    s->address = mc_strdup(config->address);
    s->routes = config->routes;
    s->route_count = config->route_count;
    s->max_body_size = config->max_body_size;
    char size[24];
    mc_size_text(size, sizeof size, s->max_body_size);
    snprintf(s->max_body_text, sizeof s->max_body_text, "--max_body_size=%s", size);
    s->max_connections = config->max_connections ? config->max_connections : 10000;
    s->body_timeout_ms =
        config->body_timeout_ms ? config->body_timeout_ms : MC_HTTP_BODY_TIMEOUT_MS;
    s->body_min_rate = config->body_rate_off   ? 0
                       : config->body_min_rate ? config->body_min_rate
                                               : MC_HTTP_BODY_MIN_RATE;
    s->access_log = config->access_log;
    s->observer = config->observer;
    s->observer_ctx = config->observer_ctx;
    return s;
}

int mc_http_server_listen(struct mc_http_server *s, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    if (mc_net_parse_address(s->address, &addr) < 0) {
        snprintf(err, errlen, "invalid listen address %s", s->address);
        return MC_EINVAL;
    }
    uv_tcp_init(s->net->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->address, uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

int mc_http_server_port(const struct mc_http_server *s)
{
    return s->port;
}

size_t mc_http_server_connections(const struct mc_http_server *s)
{
    return s->conn_count;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct mc_http_server *s = h->data;
    s->listening = 0;
    if (s->freeing && s->open_count == 0)
        server_release(s);
}

static void close_listener(struct mc_http_server *s)
{
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

void mc_http_server_drain(struct mc_http_server *s, void (*done)(void *ctx), void *ctx)
{
    s->draining = 1;
    s->drained = done;
    s->drained_ctx = ctx;
    close_listener(s);
    struct mc_http_server_link *l = s->conns;
    while (l) {
        struct mc_http_server_link *next = l->next;
        if (l->h2)
            mc_h2_drain(l); /* GOAWAY: its streams finish, then it closes */
        else if (mc_h1_idle(l))
            mc_h1_close(l, 0);
        l = next;
    }
    check_drained(s);
}

void mc_http_server_free(struct mc_http_server *s)
{
    if (!s)
        return;
    s->drained = NULL;
    while (s->conns) {
        if (s->conns->h2)
            mc_h2_close(s->conns);
        else
            mc_h1_close(s->conns, 1);
    }
    mc_cors_close(&s->cors);
    mc_free(s->address);
    s->address = NULL;
    s->freeing = 1;
    close_listener(s);
    if (!s->listening && s->open_count == 0)
        server_release(s);
}
