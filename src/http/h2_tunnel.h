/* A WebSocket over HTTP/2 (RFC 8441): the DATA frames of one extended-CONNECT stream as the
 * byte stream of a struct mc_conn, a transport like TCP or TLS, so the WebSocket session
 * (ws/session.c) runs over it unchanged. Reads are the stream's DATA (its window reopens as
 * they are read: a reader that stops holds at most one window); writes become DATA frames,
 * complete once nghttp2 has taken them; shutdown is END_STREAM; close resets the stream. */
#ifndef MC_HTTP_H2_TUNNEL_H
#define MC_HTTP_H2_TUNNEL_H

#include <stddef.h>

#include "net/conn.h"

struct mc_h2_stream;
struct mc_h2_tunnel;

/* For http/h2.c: a tunnel over stream st. Its connection (mc_h2_tunnel_conn, a heap block the
 * owner frees with mc_conn_free from on_close) is what mc_http_upgrade returns. */
struct mc_h2_tunnel *mc_h2_tunnel_new(struct mc_net *net, struct mc_h2_stream *st);
struct mc_conn *mc_h2_tunnel_conn(struct mc_h2_tunnel *t);
/* The stream's DATA (not yet consumed: the tunnel consumes it as its reader takes it). */
void mc_h2_tunnel_data(struct mc_h2_tunnel *t, const char *data, size_t len);
/* The client ended its side (END_STREAM): EOF to the reader after the data. */
void mc_h2_tunnel_eof(struct mc_h2_tunnel *t);
/* nghttp2 took what was queued: a write in flight completes. */
void mc_h2_tunnel_drained(struct mc_h2_tunnel *t);
/* The stream is gone (reset, or its connection closed): the reader sees a reset. */
void mc_h2_tunnel_detach(struct mc_h2_tunnel *t);

/* For http/h2_tunnel.c, implemented by http/h2.c on the stream. */
void mc_h2_stream_write(struct mc_h2_stream *st, const void *data, size_t len);
size_t mc_h2_stream_pending(const struct mc_h2_stream *st);
/* reset: RST_STREAM CANCEL and the stream forgets the tunnel; else END_STREAM after the data. */
void mc_h2_stream_end(struct mc_h2_stream *st, int reset);
void mc_h2_stream_consume(struct mc_h2_stream *st, size_t len);
int mc_h2_stream_peer_addr(struct mc_h2_stream *st, struct sockaddr_storage *out);

#endif
