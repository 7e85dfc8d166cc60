/* TLS as a transport (struct mc_conn_type) beside TCP: OpenSSL 3 over two memory BIOs on a
 * libuv TCP stream, so the HTTP server, the WebSocket layer and the client see plaintext and
 * nothing above the connection layer knows TLS is there. A `struct mc_tls` is one TLS
 * configuration (a server's certificate and key, or a client's trust) and carries the
 * connection type its connections are made with; its SSL_CTX can be replaced (SIGHUP) while
 * connections made with the old one live on. */
#ifndef MC_NET_TLS_H
#define MC_NET_TLS_H

#include <stddef.h>

#include "net/conn.h"

/* Bound of one TLS handshake, from accept (or connect) to the handshake's end: a peer that
 * does not finish (a plain-HTTP client waiting for an answer, a stalled one) is failed. */
#define MC_TLS_HANDSHAKE_TIMEOUT_MS 10000

struct mc_tls;

/* What a TLS configuration reads. Paths are copied. */
struct mc_tls_config {
    const char *cert_file;      /* PEM certificate (chain); server: required */
    const char *key_file;       /* PEM private key of cert_file; server: required */
    const char *client_ca_file; /* server: clients must present a certificate it signed */
    const char *ca_file;        /* client: the CAs that verify the server (NULL: system) */
    /* Names the flags in error messages ("tls_cert_file", ...); NULL: the defaults. */
    const char *cert_flag, *key_flag, *client_ca_flag, *ca_flag;
    int alpn_h2; /* client: offer h2 (alone) by ALPN instead of http/1.1 (the HTTP/2 client) */
};

/* A server configuration: TLS 1.2 and 1.3 only, the Mozilla "intermediate" ciphers, no
 * renegotiation, no compression, session tickets, ALPN http/1.1, client certificates when
 * client_ca_file is set. Reads and checks every file now. NULL after writing one line naming
 * the flag and file into err (missing, unreadable, not PEM, a key that does not match). */
struct mc_tls *mc_tls_server_new(const struct mc_tls_config *config, char *err, size_t errlen);

/* A client configuration: verifies the server against ca_file (or the system's CAs) and the
 * address dialled; cert_file/key_file, when both set, are the client's certificate (mTLS). */
struct mc_tls *mc_tls_client_new(const struct mc_tls_config *config, char *err, size_t errlen);

/* The connection type of tls (for mc_conn_init or a server/client config's `transport`);
 * valid until mc_tls_free. */
const struct mc_conn_type *mc_tls_type(struct mc_tls *tls);

/* Reads the certificate and key files again. New connections use the new pair; connections
 * already open keep theirs. On failure (0 is success) the old pair stays and err says why. */
int mc_tls_reload(struct mc_tls *tls, char *err, size_t errlen);

/* Frees tls; every connection made with its type must be closed (their close callbacks run)
 * first. Accepts NULL. */
void mc_tls_free(struct mc_tls *tls);

/* Whether c is a TLS connection that negotiated ALPN protocol proto ("h2", "http/1.1"). */
int mc_tls_alpn_is(struct mc_conn *c, const char *proto);

#endif
