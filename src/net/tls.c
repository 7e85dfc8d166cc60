/* The TLS transport: an SSL object per connection over two memory BIOs, on a libuv TCP stream.
 * Ciphertext read from the socket is written into the read BIO, the handshake is advanced, and
 * decrypted records are read into the loop's one read buffer and given to on_read; plaintext
 * written by the owner is encrypted into the write BIO and its ciphertext written on the same
 * stream. OpenSSL never touches the socket, so the loop stays the only one doing I/O.
 *
 * Per connection: the SSL (with its BIOs) and one timer, which bounds the handshake and, once
 * the handshake is over, resumes delivery of records already decrypted when the owner starts
 * reading again (the socket will not signal them twice). */
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util/alloc.h"
#include "util/log.h"

/* Mozilla's "intermediate" configuration (TLS 1.2 ciphers; TLS 1.3's three suites are all
 * AEAD and stay OpenSSL's default). */
#define INTERMEDIATE_CIPHERS                                                                       \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:prime256v1:secp384r1"

struct mc_tls {
    struct mc_conn_type type; /* first: a connection's type leads back to its mc_tls */
    SSL_CTX *ctx;             /* the current one; connections hold a reference to theirs */
    int server;
    char *cert_file, *key_file, *client_ca_file, *ca_file;
    const char *cert_flag, *key_flag, *client_ca_flag, *ca_flag;
    int client_h2; /* a client that offers h2 alone by ALPN (the gRPC client) */
};

/* A connection's TLS state (c->tstate). */
struct tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio;         /* owned by ssl */
    uv_timer_t timer;         /* handshake deadline, then delivery resumption */
    uv_check_t written_check; /* reports an owner's write sent at once, after this loop turn */
    int handles_open;         /* the stream, the timer and the check, until their close ran */
    int err; /* the error the owner is told once reading (UV_EOF, UV_EPROTO, ...) */
    unsigned handshaken : 1, app_reading : 1, sock_reading : 1, delivering : 1, err_delivered : 1,
        client : 1, closing : 1, ssl_failed : 1, write_done : 1;
};

/* The write of one run of ciphertext; app marks the one that carries an owner's write, whose
 * completion is the owner's. */
struct tls_wreq {
    uv_write_t req;
    struct mc_conn *c;
    int app;
    char data[];
};

static struct mc_tls *tls_of(const struct mc_conn *c)
{
    return (struct mc_tls *)c->type; /* type is mc_tls's first member */
}

/* ---- the files ---- */

static void clear_errors(void)
{
    ERR_clear_error();
}

/* OpenSSL's most recent reason, for an error line ("" when it has none). */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "";
}

/* A file every TLS flag names must be a readable, non-empty regular file: said here, in
 * words, rather than as an OpenSSL error stack. */
static int check_file(const char *flag, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "invalid value \"%s\" for flag --%s: %s", path, flag,
                 strerror(errno));
        return -1;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) < 0)
        why = strerror(errno);
    else if (S_ISDIR(st.st_mode))
        why = "is a directory, expected a PEM file";
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file, expected a PEM file";
    else if (st.st_size == 0)
        why = "empty file, expected PEM";
    close(fd);
    if (why) {
        snprintf(err, errlen, "invalid value \"%s\" for flag --%s: %s", path, flag, why);
        return -1;
    }
    return 0;
}

/* Loads the certificate chain and key into ctx, and checks that they belong together. */
static int load_pair(struct mc_tls *t, SSL_CTX *ctx, char *err, size_t errlen)
{
    if (check_file(t->cert_flag, t->cert_file, err, errlen) < 0 ||
        check_file(t->key_flag, t->key_file, err, errlen) < 0)
        return -1;
    clear_errors();
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
        snprintf(err, errlen, "invalid value \"%s\" for flag --%s: not a PEM certificate (%s)",
                 t->cert_file, t->cert_flag, ssl_reason());
        return -1;
    }
    BIO *b = BIO_new_file(t->key_file, "r");
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!key) {
        snprintf(err, errlen, "invalid value \"%s\" for flag --%s: not a PEM private key (%s)",
                 t->key_file, t->key_flag, ssl_reason());
        return -1;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok) {
        snprintf(err, errlen,
                 "invalid value \"%s\" for flag --%s: the key does not match the certificate "
                 "in %s",
                 t->key_file, t->key_flag, t->cert_file);
        return -1;
    }
    return 0;
}

/* ALPN: h2 when the client offers it, else http/1.1; otherwise no protocol is named. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char protos[] = "\x02h2\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, protos, sizeof protos - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* A new SSL_CTX with the protocol policy and t's files; NULL with err written. */
static SSL_CTX *build_ctx(struct mc_tls *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(t->server ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS: cannot create a context (%s)", ssl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle connections hold no record buffers */
    if (SSL_CTX_set_cipher_list(ctx, INTERMEDIATE_CIPHERS) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1 ||
        SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) {
        snprintf(err, errlen, "TLS: cannot set the cipher policy (%s)", ssl_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (t->server) {
        SSL_CTX_set_dh_auto(ctx, 1);
        /* Resumption: stateless tickets (the default), with the id context client
         * verification needs for a resumed session to be accepted. No server-side store:
         * OpenSSL would keep every TLS 1.2 session (up to 20480, ~1 KiB each) for session-id
         * resumption, which the tickets make unnecessary (nginx's default too). */
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"micro", 5);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        /* One TLS 1.3 ticket per handshake, not OpenSSL's two (as Go's server): each costs
         * ~180k instructions (the session serialised, encrypted and MACed), 6 % of a full
         * handshake, and a client resuming uses one; every full handshake brings another. */
        SSL_CTX_set_num_tickets(ctx, 1);
    } else {
        static const unsigned char protos[] = "\x08http/1.1", h2[] = "\x02h2";
        if (t->client_h2)
            SSL_CTX_set_alpn_protos(ctx, h2, sizeof h2 - 1);
        else
            SSL_CTX_set_alpn_protos(ctx, protos, sizeof protos - 1);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    int rc = 0;
    if (t->cert_file && t->key_file)
        rc = load_pair(t, ctx, err, errlen);
    const char *ca = t->server ? t->client_ca_file : t->ca_file;
    const char *ca_flag = t->server ? t->client_ca_flag : t->ca_flag;
    if (rc == 0 && ca) {
        rc = check_file(ca_flag, ca, err, errlen);
        clear_errors();
        STACK_OF(X509_NAME) *names = rc == 0 ? SSL_load_client_CA_file(ca) : NULL;
        if (rc == 0 && (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 || !names)) {
            snprintf(err, errlen, "invalid value \"%s\" for flag --%s: not a PEM certificate (%s)",
                     ca, ca_flag, ssl_reason());
            rc = -1;
        }
        if (rc == 0 && t->server) {
            SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
            names = NULL;
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
        sk_X509_NAME_pop_free(names, X509_NAME_free);
    } else if (rc == 0 && !t->server) {
        SSL_CTX_set_default_verify_paths(ctx);
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- the connection ---- */

static void on_timer_closed(uv_handle_t *h);
static void on_stream_closed(uv_handle_t *h);

static void release(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    if (--t->handles_open > 0)
        return;
    SSL_free(t->ssl);
    mc_free(t);
    c->tstate = NULL;
    mc_conn_transport_closed(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    release(h->data);
}

/* An owner's write whose completion was still to be reported is cancelled by the close, as a
 * uv_write in flight would be. */
static void on_check_closed(uv_handle_t *h)
{
    struct mc_conn *c = h->data;
    struct tls_conn *t = c->tstate;
    if (t->write_done) {
        t->write_done = 0;
        mc_conn_transport_written(c, UV_ECANCELED);
    }
    release(c);
}

static void on_written_check(uv_check_t *h)
{
    struct mc_conn *c = h->data;
    struct tls_conn *t = c->tstate;
    uv_check_stop(h);
    if (t->write_done) {
        t->write_done = 0;
        mc_conn_transport_written(c, 0);
    }
}

static void on_stream_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_wreq_done(uv_write_t *req, int status)
{
    struct tls_wreq *w = req->data;
    struct mc_conn *c = w->c;
    int app = w->app;
    mc_free(w);
    if (app)
        mc_conn_transport_written(c, status);
}

/* Takes n bytes out of the write BIO (they were sent). */
static void discard_out(BIO *wbio, size_t n)
{
    char sink[4096];
    while (n > 0) {
        int k = BIO_read(wbio, sink, (int)(n < sizeof sink ? n : sizeof sink));
        if (k <= 0)
            return;
        n -= (size_t)k;
    }
}

/* Writes whatever ciphertext the write BIO holds (app: this write carries the owner's bytes and
 * reports to mc_conn_transport_written, on a later step of the loop). 0 or a libuv error.
 *
 * Straight to the socket (uv_try_write) when nothing is queued on it, the common case: an
 * answer fits the socket buffer. That spares a write request, its copy of the ciphertext and
 * an epoll_ctl, which libuv issues after every completed uv_write (its POLLOUT watcher is
 * stopped and the fd modified again): one syscall in eight of a keep-alive request. What the
 * socket does not take is copied into a write request. */
static int flush_out(struct mc_conn *c, int app)
{
    struct tls_conn *t = c->tstate;
    char *data = NULL;
    long pending = BIO_get_mem_data(t->wbio, &data);
    size_t n = pending > 0 ? (size_t)pending : 0;
    if (n == 0 && !app)
        return 0;
    size_t sent = 0;
    if (n > 0 && uv_stream_get_write_queue_size(&c->io.stream) == 0) {
        uv_buf_t b = uv_buf_init(data, (unsigned)n);
        int k = uv_try_write(&c->io.stream, &b, 1); /* an error: uv_write below reports it */
        if (k > 0)
            sent = (size_t)k;
    }
    if (sent)
        discard_out(t->wbio, sent);
    size_t rest = n - sent;
    if (rest == 0) {
        if (app) {
            t->write_done = 1;
            uv_check_start(&t->written_check, on_written_check);
        }
        return 0;
    }
    struct tls_wreq *w = mc_malloc(sizeof *w + rest);
    BIO_read(t->wbio, w->data, (int)rest);
    w->c = c;
    w->app = app;
    w->req.data = w;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
    int rc = uv_write(&w->req, &c->io.stream, &b, 1, on_wreq_done);
    if (rc < 0)
        mc_free(w);
    return rc;
}

static void on_sock_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void sock_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct mc_conn *c = h->data;
    if (c->net->read_buf_busy) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    c->net->read_buf_busy = 1;
    *buf = uv_buf_init(c->net->read_buf, sizeof c->net->read_buf);
}

/* The socket is read while the handshake runs (whatever the owner wants), while the owner
 * reads, and while it is paused until the socket brings something: a paused owner holds at
 * most one socket read (read_buf) besides what OpenSSL already took. Not stopping the socket
 * when the owner pauses for each request (HTTP does, until its answer is written) spares an
 * epoll_ctl per request: the client sends nothing while it waits for the answer. */
static void update_sock_reading(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    int want = !t->closing && !t->err &&
               (!t->handshaken || t->app_reading ||
                (!SSL_has_pending(t->ssl) && BIO_ctrl_pending(t->rbio) == 0));
    if (want && !t->sock_reading) {
        if (uv_read_start(&c->io.stream, sock_alloc, on_sock_read) == 0)
            t->sock_reading = 1;
    } else if (!want && t->sock_reading) {
        uv_read_stop(&c->io.stream);
        t->sock_reading = 0;
    }
}

/* Gives the owner every decrypted byte while it reads, then the pending error (EOF) once. */
static void deliver(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    if (t->delivering)
        return;
    t->delivering = 1;
    while (t->app_reading && !c->closing && !t->err_delivered) {
        if (!t->ssl_failed && !SSL_has_pending(t->ssl) && BIO_ctrl_pending(t->rbio) == 0) {
            /* Nothing left to decrypt. SSL_read would only say WANT_READ, after allocating
             * and freeing its 16 KiB record buffer (SSL_MODE_RELEASE_BUFFERS): a third of
             * the record layer's cost of a small request. */
            if (!t->err)
                break;
        } else if (!t->ssl_failed) {
            int n = SSL_read(t->ssl, c->net->read_buf, sizeof c->net->read_buf);
            if (n > 0) {
                flush_out(c, 0); /* a read may answer (a key update) */
                c->on_read(c, c->net->read_buf, n);
                continue;
            }
            int e = SSL_get_error(t->ssl, n);
            flush_out(c, 0);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                if (!t->err)
                    break; /* more records to come; a socket EOF (t->err) ends it here */
            } else {
                t->ssl_failed = 1;
                if (!t->err)
                    t->err = e == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO;
                clear_errors();
            }
        }
        t->err_delivered = 1;
        update_sock_reading(c);
        c->on_read(c, NULL, t->err);
    }
    t->delivering = 0;
}

/* A plain-HTTP request on the TLS port gets a 400 it can read (as nginx does), not silence. */
static void answer_plain_http(struct mc_conn *c)
{
    static const char body[] = "{\"id\":\"go.micro.client\",\"code\":400,\"detail\":\"a plain HTTP "
                               "request was sent to the TLS port: use https://\",\"status\":"
                               "\"Bad Request\"}";
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    uv_buf_t b = uv_buf_init(msg, (unsigned)n);
    uv_try_write(&c->io.stream, &b, 1); /* best effort: the connection is failing anyway */
}

/* The handshake failed (err): a client learns it as its connect outcome, a server's owner as a
 * read error; the socket is read no more. */
static void handshake_failed(struct mc_conn *c, int err)
{
    struct tls_conn *t = c->tstate;
    unsigned long e = ERR_peek_last_error();
    if (!t->client && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST)
        answer_plain_http(c);
    else
        flush_out(c, 0); /* the alert, when OpenSSL wrote one */
    mc_log_debug("TLS handshake failed: %s", e ? ERR_reason_error_string(e) : uv_strerror(err));
    clear_errors();
    uv_timer_stop(&t->timer);
    t->err = err;
    t->ssl_failed = 1;
    update_sock_reading(c);
    if (t->client)
        mc_conn_transport_connected(c, err);
    else
        deliver(c);
}

static void advance(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    if (!t->handshaken) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                flush_out(c, 0);
                return;
            }
            handshake_failed(c, UV_EPROTO);
            return;
        }
        flush_out(c, 0);
        t->handshaken = 1;
        uv_timer_stop(&t->timer);
        update_sock_reading(c);
        if (t->client) {
            mc_conn_transport_connected(c, 0);
            if (c->closing)
                return;
        }
    }
    deliver(c);
}

static void on_sock_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct mc_conn *c = s->data;
    struct tls_conn *t = c->tstate;
    if (buf->base == c->net->read_buf)
        c->net->read_buf_busy = 0;
    if (nread == 0 || c->closing || t->closing)
        return;
    if (nread < 0) {
        if (!t->handshaken) {
            handshake_failed(c, (int)nread);
            return;
        }
        /* A socket EOF without close_notify ends the stream all the same (as browsers and
         * curl treat it); records before it are delivered first. */
        t->err = (int)nread;
        update_sock_reading(c);
        deliver(c);
        return;
    }
    BIO_write(t->rbio, buf->base, (int)nread); /* a memory BIO copies: read_buf is free again */
    advance(c);
    if (!c->closing && !t->closing && !t->app_reading)
        update_sock_reading(c); /* a paused owner: what came is held, the socket waits */
}

static void on_timer(uv_timer_t *timer)
{
    struct mc_conn *c = timer->data;
    struct tls_conn *t = c->tstate;
    if (c->closing || t->closing)
        return;
    if (!t->handshaken)
        handshake_failed(c, UV_ETIMEDOUT);
    else
        deliver(c); /* resumed: records decrypted before the owner paused */
}

static int tls_init(struct mc_conn *c)
{
    struct mc_tls *tls = tls_of(c);
    struct tls_conn *t = mc_calloc(1, sizeof *t);
    t->ssl = SSL_new(tls->ctx); /* holds a reference: a reload does not pull it away */
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        mc_free(t);
        return UV_ENOMEM;
    }
    BIO_set_mem_eof_return(t->rbio, -1); /* empty means "wait for more", not EOF */
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    int rc = uv_tcp_init(c->net->loop, &c->io.tcp);
    if (rc < 0) {
        SSL_free(t->ssl);
        mc_free(t);
        return rc;
    }
    uv_timer_init(c->net->loop, &t->timer);
    uv_check_init(c->net->loop, &t->written_check);
    c->io.handle.data = c;
    t->timer.data = c;
    t->written_check.data = c;
    t->handles_open = 3;
    c->tstate = t;
    return 0;
}

static int tls_accept(struct mc_conn *c, uv_stream_t *listener)
{
    struct tls_conn *t = c->tstate;
    int rc = uv_accept(listener, &c->io.stream);
    if (rc < 0)
        return rc;
    uv_tcp_nodelay(&c->io.tcp, 1);
    SSL_set_accept_state(t->ssl);
    uv_timer_start(&t->timer, on_timer, MC_TLS_HANDSHAKE_TIMEOUT_MS, 0);
    update_sock_reading(c);
    return 0;
}

static void on_tcp_connected(uv_connect_t *req, int status)
{
    struct mc_conn *c = req->data;
    struct tls_conn *t = c->tstate;
    if (status < 0 || c->closing) {
        mc_conn_transport_connected(c, status);
        return;
    }
    uv_tcp_nodelay(&c->io.tcp, 1);
    uv_timer_start(&t->timer, on_timer, MC_TLS_HANDSHAKE_TIMEOUT_MS, 0);
    update_sock_reading(c);
    advance(c); /* the ClientHello */
}

static int tls_connect(struct mc_conn *c, const struct sockaddr *addr)
{
    struct tls_conn *t = c->tstate;
    t->client = 1;
    SSL_set_connect_state(t->ssl);
    /* The server's certificate must name the address dialled (every address the sidecar and
     * the CLI dial is numeric). */
    char ip[64] = "";
    if (addr->sa_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)addr, ip, sizeof ip);
    else if (addr->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)addr, ip, sizeof ip);
    if (ip[0])
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), ip);
    c->connect_req.data = c;
    return uv_tcp_connect(&c->connect_req, &c->io.tcp, addr, on_tcp_connected);
}

static int tls_read_start(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    t->app_reading = 1;
    update_sock_reading(c);
    /* Records decrypted (or read and not yet decrypted) before a pause: the socket will not
     * signal them again, so the timer delivers them on the next loop turn. */
    if (t->handshaken && !t->delivering &&
        (SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0 || (t->err && !t->err_delivered)))
        uv_timer_start(&t->timer, on_timer, 0, 0);
    return 0;
}

static int tls_read_stop(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    t->app_reading = 0;
    update_sock_reading(c);
    return 0;
}

static int tls_write(struct mc_conn *c, const uv_buf_t *bufs, unsigned count)
{
    struct tls_conn *t = c->tstate;
    if (!t->handshaken || t->err)
        return UV_EPIPE; /* nothing can be sent before the handshake, or after a failure */
    for (unsigned i = 0; i < count; i++) {
        if (bufs[i].len == 0)
            continue;
        /* A memory BIO takes everything: one call writes every record of the buffer. */
        if (SSL_write(t->ssl, bufs[i].base, (int)bufs[i].len) <= 0) {
            clear_errors();
            return UV_EPROTO;
        }
    }
    return flush_out(c, 1);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status;
    mc_free(req);
}

static int tls_shutdown(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    if (t->handshaken && !t->err) {
        SSL_shutdown(t->ssl); /* close_notify, written ahead of the FIN */
        flush_out(c, 0);
    }
    uv_shutdown_t *req = mc_malloc(sizeof *req);
    int rc = uv_shutdown(req, &c->io.stream, on_shutdown_done);
    if (rc < 0)
        mc_free(req);
    return rc;
}

static void tls_close(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    if (t->closing)
        return;
    t->closing = 1;
    if (t->handshaken && !t->err && SSL_shutdown(t->ssl) >= 0) {
        /* close_notify, best effort: the stream is closing, nothing may wait on it. */
        char out[256];
        int n = BIO_read(t->wbio, out, sizeof out);
        if (n > 0) {
            uv_buf_t b = uv_buf_init(out, (unsigned)n);
            uv_try_write(&c->io.stream, &b, 1);
        }
    }
    clear_errors();
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
    uv_close((uv_handle_t *)&t->written_check, on_check_closed);
    uv_close(&c->io.handle, on_stream_closed);
}

static int tls_peer_addr(struct mc_conn *c, struct sockaddr_storage *out)
{
    int len = sizeof *out;
    return uv_tcp_getpeername(&c->io.tcp, (struct sockaddr *)out, &len);
}

static size_t tls_pending(const struct mc_conn *c)
{
    const struct tls_conn *t = c->tstate;
    return t ? (size_t)SSL_pending(t->ssl) + BIO_ctrl_pending(t->rbio) : 0;
}

static const void *tls_peer_cert(struct mc_conn *c)
{
    struct tls_conn *t = c->tstate;
    return t ? SSL_get0_peer_certificate(t->ssl) : NULL;
}

int mc_tls_alpn_is(struct mc_conn *c, const char *proto)
{
    if (c->type->init != tls_init || !c->tstate)
        return 0;
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(((struct tls_conn *)c->tstate)->ssl, &p, &len);
    return len == strlen(proto) && memcmp(p, proto, len) == 0;
}

/* ---- configurations ---- */

static char *dup_or_null(const char *s)
{
    return s ? mc_strdup(s) : NULL;
}

static struct mc_tls *tls_new(const struct mc_tls_config *cfg, int server, char *err, size_t errlen)
{
    struct mc_tls *t = mc_calloc(1, sizeof *t);
    t->type = (struct mc_conn_type){
        .name = "tls",
        .init = tls_init,
        .accept = tls_accept,
        .connect = tls_connect,
        .read_start = tls_read_start,
        .read_stop = tls_read_stop,
        .write = tls_write,
        .shutdown = tls_shutdown,
        .close = tls_close,
        .peer_addr = tls_peer_addr,
        .pending = tls_pending,
        .peer_cert = tls_peer_cert,
    };
    t->server = server;
    t->client_h2 = !server && cfg->alpn_h2;
    t->cert_file = dup_or_null(cfg->cert_file);
    t->key_file = dup_or_null(cfg->key_file);
    t->client_ca_file = dup_or_null(cfg->client_ca_file);
    t->ca_file = dup_or_null(cfg->ca_file);
    t->cert_flag = cfg->cert_flag ? cfg->cert_flag : "tls_cert_file";
    t->key_flag = cfg->key_flag ? cfg->key_flag : "tls_key_file";
    t->client_ca_flag = cfg->client_ca_flag ? cfg->client_ca_flag : "tls_client_ca_file";
    t->ca_flag = cfg->ca_flag ? cfg->ca_flag : "tls_ca_file";
    if (server && (!t->cert_file || !t->key_file)) {
        snprintf(err, errlen, "--enable_tls needs both --%s and --%s", t->cert_flag, t->key_flag);
        mc_tls_free(t);
        return NULL;
    }
    t->ctx = build_ctx(t, err, errlen);
    if (!t->ctx) {
        mc_tls_free(t);
        return NULL;
    }
    return t;
}

struct mc_tls *mc_tls_server_new(const struct mc_tls_config *config, char *err, size_t errlen)
{
    return tls_new(config, 1, err, errlen);
}

struct mc_tls *mc_tls_client_new(const struct mc_tls_config *config, char *err, size_t errlen)
{
    return tls_new(config, 0, err, errlen);
}

const struct mc_conn_type *mc_tls_type(struct mc_tls *tls)
{
    return &tls->type;
}

int mc_tls_reload(struct mc_tls *tls, char *err, size_t errlen)
{
    SSL_CTX *ctx = build_ctx(tls, err, errlen);
    if (!ctx)
        return -1;
    SSL_CTX_free(tls->ctx); /* open connections keep their own reference */
    tls->ctx = ctx;
    return 0;
}

void mc_tls_free(struct mc_tls *tls)
{
    if (!tls)
        return;
    SSL_CTX_free(tls->ctx);
    mc_free(tls->cert_file);
    mc_free(tls->key_file);
    mc_free(tls->client_ca_file);
    mc_free(tls->ca_file);
    mc_free(tls);
}
