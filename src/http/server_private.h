/* What a codec's connections share with the server that accepted them (http/server.c, for
 * http/h1.c and later codecs): the settings, and the three events a connection reports. */
#ifndef MC_HTTP_SERVER_PRIVATE_H
#define MC_HTTP_SERVER_PRIVATE_H

#include <stdio.h>

#include "http/server.h"

/* A connection's place in its server's list (embedded in the codec's connection). */
struct mc_http_server_link {
    struct mc_http_server_link *prev, *next;
    void *conn; /* the codec's connection */
    int counted;
    int h2; /* spoken by http/h2.c (else http/h1.c) */
};

struct mc_http_server {
    struct mc_net *net;
    const struct mc_conn_type *transport; /* what accepted connections speak (NULL: TCP) */
    uv_tcp_t listener;
    int listening;
    char *address;
    const struct mc_http_route *routes;
    size_t route_count;
    uint64_t max_body_size;
    char max_body_text[48];   /* "--max_body_size=4MiB" for the 413 detail */
    uint64_t body_timeout_ms; /* a request body's grace and longest silence */
    uint64_t body_min_rate;   /* bytes/s it must average from its start; 0: no rate rule */
    unsigned max_connections;
    struct mc_cors cors;
    FILE *access_log;
    mc_http_observer_cb observer;
    void *observer_ctx;
    struct mc_http_server_link *conns;
    size_t conn_count;     /* HTTP connections (not upgraded) */
    struct mc_buf scratch; /* response heads are built here, then copied to the conn */
    /* The HTTP/2 codec's session callbacks and options (http/h2.c), made with its first
     * connection and freed with the server (mc_h2_server_close). */
    struct nghttp2_session_callbacks *h2_callbacks;
    struct nghttp2_option *h2_options;
    size_t open_count; /* every connection still holding memory */
    int draining, freeing;
    void (*drained)(void *ctx);
    void *drained_ctx;
    int port;
};

/* A request is finished (answered, or upgraded): the observer and the access log see it.
 * peer is read only when there is an access log. */
void mc_http_server_report(struct mc_http_server *s, const struct mc_http_request *req,
                           const char *peer);
static inline int mc_http_server_reports(const struct mc_http_server *s)
{
    return s->observer || s->access_log; /* checked inline: most requests have neither */
}
/* The connection stops being served (closed or upgraded): out of the list and the count; may
 * finish a drain. */
void mc_http_server_unlink(struct mc_http_server *s, struct mc_http_server_link *link);
/* The connection's memory is gone: may finish a free. */
void mc_http_server_conn_released(struct mc_http_server *s);

#endif
