/* The HTTP/2 codec: one connection handed over by the HTTP/1 codec (the h2c connection preface
 * on its first bytes, "h2" chosen by ALPN over TLS, or an "Upgrade: h2c" request), spoken with
 * nghttp2 (framing, HPACK, flow control), each stream turned into the same protocol-neutral
 * request (http/request.h) the routes take, under the limits of SPEC section 12. The response
 * API maps to nghttp2: a data provider per stream that defers while the handler has produced
 * nothing, trailers by nghttp2_submit_trailer, a cut body by RST_STREAM. Flow control is the
 * back-pressure of the request API: a paused stream stops being consumed (its window stays
 * shut), and a stream's unsent output is its pending_output. */
#ifndef MC_HTTP_H2_H
#define MC_HTTP_H2_H

#include <stddef.h>

#include "http/server_private.h"

/* The connection preface a client speaking h2c by prior knowledge starts with. */
#define MC_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define MC_H2_PREFACE_LEN 24

/* Whether buf[0..len) begins the connection preface: 1 (all 24 bytes are there and match),
 * 0 (what is there matches, more is needed), -1 (it is not the preface). */
int mc_h2_preface_match(const char *buf, size_t len);

/* Serves conn (an accepted connection of s, already detached from the HTTP/1 codec and out of
 * s's list) as HTTP/2 from its first byte: data[0..len) are the bytes read so far (the
 * preface; copied). The connection owns itself from now on, as an HTTP/1 one does, and is
 * counted in s's connections. */
void mc_h2_serve(struct mc_http_server *s, struct mc_conn *conn, const char *data, size_t len);

/* An HTTP/1.1 request asking for "Upgrade: h2c" with an HTTP2-Settings header: when it can be
 * taken (plain TCP, no request body, a valid settings payload), answers 101, takes the
 * connection over (mc_http_upgrade: req is freed) and serves the request again as stream 1
 * of a new HTTP/2 connection; returns 1. Returns 0, touching nothing, when it cannot: the
 * request is then served over HTTP/1.1 (RFC 9110 7.8: an upgrade not taken is ignored). */
int mc_h2_upgrade(struct mc_http_server *s, struct mc_http_request *req);

/* For http/server.c: the connection of link (one whose link.h2 is set) stops taking new
 * streams (GOAWAY) and closes once its streams are done. */
void mc_h2_drain(struct mc_http_server_link *link);
/* Closes the connection of link now (streams aborted). */
void mc_h2_close(struct mc_http_server_link *link);
/* For http/server.c, when s is freed (every connection gone): frees what the codec made for
 * s's connections (nghttp2's callback table and options). */
void mc_h2_server_close(struct mc_http_server *s);

#endif
