/* The server side of the RFC 6455 opening handshake, I/O-free: the HTTP layer passes the
 * request's header values as plain strings and gets back a verdict, the accept key and the
 * 101 response bytes. */
#ifndef MC_WS_HANDSHAKE_H
#define MC_WS_HANDSHAKE_H

#include <stddef.h>

#include "util/buf.h"

/* Size of an accept key: 28 base64 characters and a NUL. */
#define MC_WS_ACCEPT_LEN 29

/* The header a 426 (Upgrade Required) answer must carry (RFC 6455 4.4). */
#define MC_WS_VERSION_HEADER "Sec-WebSocket-Version: 13\r\n"

/* The upgrade-relevant parts of a request. Strings are borrowed for the call; NULL means
 * the header is absent. Repeated headers are passed joined with ", " (RFC 9110 5.3). */
struct mc_ws_upgrade_request {
    const char *method;     /* "GET" */
    int http_major;         /* 1 */
    int http_minor;         /* 1 */
    const char *upgrade;    /* Upgrade: token list containing "websocket" */
    const char *connection; /* Connection: token list containing "upgrade" */
    const char *version;    /* Sec-WebSocket-Version: "13" */
    const char *key;        /* Sec-WebSocket-Key: 24 base64 chars */
};

/* Computes Sec-WebSocket-Accept for client_key (len bytes, not NUL-terminated necessarily):
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), RFC 6455 4.2.2, written to out
 * as 28 characters plus a NUL. Returns 0, or MC_EINVAL (out untouched) when the key is not
 * 24 base64 characters that decode to 16 bytes. */
int mc_ws_accept_key(const char *client_key, size_t len, char out[MC_WS_ACCEPT_LEN]);

/* Returns 1 if the request asks for a WebSocket upgrade at all (Upgrade lists "websocket"
 * and Connection lists "upgrade", both case-insensitive), else 0. Lets a router tell an
 * upgrade attempt from a plain GET before validating it. Either argument may be NULL. */
int mc_ws_is_upgrade(const char *upgrade, const char *connection);

/* Validates an upgrade request. On success returns 0 and writes the accept key to accept.
 * Otherwise returns MC_EINVAL and sets *status to the HTTP answer: 405 for a method other
 * than GET, 400 for HTTP older than 1.1, a missing upgrade, or a missing or malformed key,
 * 426 for a Sec-WebSocket-Version other than 13 (the answer must then carry
 * MC_WS_VERSION_HEADER). *status is 101 on success. An HTTP/2 request (http_major 2) is the
 * extended CONNECT of RFC 8441: method CONNECT, version 13, no key; accept is left empty and
 * *status is 200 on success. */
int mc_ws_check_upgrade(const struct mc_ws_upgrade_request *req, char accept[MC_WS_ACCEPT_LEN],
                        int *status);

#endif
