/* The TLS transport through the connection contract, on a real loopback pair: a handshake
 * (ALPN, the peer's certificate, the client verifying the address it dialled), bytes both ways
 * across many records, an owner that pauses with decrypted records held and resumes, a
 * shutdown that the peer reads as EOF, a close that reports once, client certificates
 * required and refused, every bad file, and a reload that keeps the old pair on failure. The
 * certificates are made here with OpenSSL (an EC key, self-signed, for IP 127.0.0.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "net/conn.h"
#include "net/tls.h"
#include "util/buf.h"

static char dir[] = "/tmp/mc-test-tls-XXXXXX";
static char path_buf[8][256];

static const char *path(int i, const char *name)
{
    snprintf(path_buf[i], sizeof path_buf[i], "%s/%s", dir, name);
    return path_buf[i];
}

/* A self-signed certificate for IP 127.0.0.1 (its own CA) into NAME.crt and NAME.key. */
static void make_cert(const char *name)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext;
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    char p[256];
    snprintf(p, sizeof p, "%s/%s.crt", dir, name);
    FILE *f = fopen(p, "w");
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(p, sizeof p, "%s/%s.key", dir, name);
    f = fopen(p, "w");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    make_cert("a");
    make_cert("b");
    write_file(path(0, "empty.pem"), "");
    write_file(path(0, "garbage.pem"), "not a certificate\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"a.crt", "a.key", "b.crt", "b.key", "empty.pem", "garbage.pem"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unlink(path(0, names[i]));
    rmdir(dir);
    return 0;
}

/* ---- a loopback pair ---- */

static uv_loop_t loop;
static struct mc_net net;
static uv_tcp_t listener;

struct end {
    struct mc_conn conn;
    struct mc_buf got;
    int err, closed, connected, connect_status, pause_after_first;
};
static struct end server_end, client_end;

static void on_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct end *e = c->data;
    if (nread < 0) {
        e->err = (int)nread;
        return;
    }
    mc_buf_append(&e->got, data, (size_t)nread);
    if (e->pause_after_first) {
        e->pause_after_first = 0;
        mc_conn_read_stop(c);
    }
}

static void noop_release(void *ctx)
{
    (void)ctx;
}

static void on_closed(struct mc_conn *c)
{
    ((struct end *)c->data)->closed++;
}

static void end_init(struct end *e, struct mc_tls *tls)
{
    memset(e, 0, sizeof *e);
    mc_buf_init(&e->got);
    assert_int_equal(mc_conn_init(&e->conn, &net, mc_tls_type(tls)), 0);
    e->conn.data = e;
    e->conn.on_read = on_read;
    e->conn.on_close = on_closed;
}

static void on_connection(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    assert_int_equal(mc_conn_accept(&server_end.conn, l), 0);
    assert_int_equal(mc_conn_read_start(&server_end.conn), 0);
}

static void on_connected(struct mc_conn *c, int status)
{
    struct end *e = c->data;
    e->connected = 1;
    e->connect_status = status;
    if (status == 0)
        mc_conn_read_start(c);
}

static void run_until(int *flag)
{
    for (int i = 0; i < 2000 && !*flag; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static void run_until_len(struct end *e, size_t len)
{
    for (int i = 0; i < 2000 && e->got.len < len && !e->err; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(e->got.len, len);
}

static struct sockaddr_storage listen_addr;
/* Keeps UV_RUN_ONCE from blocking for ever, so a missing delivery fails a bounded wait. */
static uv_timer_t tick;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void pair_open(struct mc_tls *server, struct mc_tls *client)
{
    uv_loop_init(&loop);
    memset(&net, 0, sizeof net);
    net.loop = &loop;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    assert_int_equal(mc_net_parse_address("127.0.0.1:0", &listen_addr), 0);
    uv_tcp_init(&loop, &listener);
    assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&listen_addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 8, on_connection), 0);
    int len = sizeof listen_addr;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&listen_addr, &len);
    end_init(&server_end, server);
    end_init(&client_end, client);
    assert_int_equal(
        mc_conn_connect(&client_end.conn, (struct sockaddr *)&listen_addr, on_connected), 0);
    run_until(&client_end.connected);
}

static void pair_close(void)
{
    mc_conn_close(&server_end.conn, 1);
    mc_conn_close(&client_end.conn, 1);
    mc_conn_close(&client_end.conn, 1); /* idempotent */
    uv_close((uv_handle_t *)&listener, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    mc_net_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(server_end.closed, 1);
    assert_int_equal(client_end.closed, 1);
    mc_buf_close(&server_end.got);
    mc_buf_close(&client_end.got);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static struct mc_tls *server_tls(const char *cert, const char *key, const char *client_ca)
{
    char err[512] = "";
    struct mc_tls_config cfg = {.cert_file = cert, .key_file = key, .client_ca_file = client_ca};
    struct mc_tls *t = mc_tls_server_new(&cfg, err, sizeof err);
    if (!t)
        fail_msg("server: %s", err);
    return t;
}

static struct mc_tls *client_tls(const char *ca, const char *cert, const char *key)
{
    char err[512] = "";
    struct mc_tls_config cfg = {.ca_file = ca, .cert_file = cert, .key_file = key};
    struct mc_tls *t = mc_tls_client_new(&cfg, err, sizeof err);
    if (!t)
        fail_msg("client: %s", err);
    return t;
}

/* ---- tests ---- */

static void test_bytes_both_ways_pause_resume_and_shutdown(void **state)
{
    (void)state;
    struct mc_tls *s = server_tls(path(1, "a.crt"), path(2, "a.key"), NULL);
    struct mc_tls *c = client_tls(path(3, "a.crt"), NULL, NULL);
    pair_open(s, c);
    assert_int_equal(client_end.connect_status, 0);
    assert_true(mc_tls_alpn_is(&client_end.conn, "http/1.1"));
    assert_false(mc_tls_alpn_is(&client_end.conn, "h2"));
    assert_non_null(mc_conn_peer_cert(&client_end.conn)); /* the server's */
    assert_string_equal(client_end.conn.type->name, "tls");

    mc_conn_write_copy(&client_end.conn, "hello", 5);
    mc_conn_flush(&client_end.conn);
    run_until_len(&server_end, 5);
    assert_memory_equal(server_end.got.data, "hello", 5);
    assert_null(mc_conn_peer_cert(&server_end.conn)); /* no client certificate asked */
    char peer[64];
    mc_conn_peer_name(&server_end.conn, peer, sizeof peer);
    assert_string_equal(peer, "127.0.0.1");

    /* 300 KB: many records; the client pauses after its first chunk with records held by
     * the transport, and gets every byte once it reads again. */
    enum { BIG = 300 * 1024 };
    char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)('a' + i % 26);
    client_end.pause_after_first = 1;
    mc_conn_write_copy(&server_end.conn, big, BIG);
    mc_conn_flush(&server_end.conn);
    for (int i = 0; i < 2000 && client_end.got.len == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(client_end.got.len > 0 && client_end.got.len < BIG);
    for (int i = 0; i < 200; i++)
        uv_run(&loop, UV_RUN_NOWAIT); /* paused: nothing more arrives */
    size_t held = client_end.got.len;
    assert_true(held < BIG);
    mc_conn_read_start(&client_end.conn);
    run_until_len(&client_end, BIG);
    assert_memory_equal(client_end.got.data, big, BIG);
    free(big);

    /* Two records in one write (two segments: one SSL_write each) arrive in one socket read;
     * the client pauses after the first. The second is held by the transport, and the socket
     * will not signal it again: resuming must deliver it all the same (mc_conn_type.pending). */
    mc_buf_reset(&client_end.got);
    client_end.pause_after_first = 1;
    mc_conn_write_ref(&server_end.conn, "first", 5, noop_release, NULL);
    mc_conn_write_ref(&server_end.conn, "second", 6, noop_release, NULL);
    mc_conn_flush(&server_end.conn);
    run_until_len(&client_end, 5);
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(client_end.got.len, 5);
    assert_true(mc_conn_transport_pending(&client_end.conn) > 0);
    mc_conn_read_start(&client_end.conn);
    run_until_len(&client_end, 11);
    assert_memory_equal(client_end.got.data, "firstsecond", 11);

    /* A shutdown (close_notify, then FIN) is the peer's EOF. */
    mc_conn_shutdown(&client_end.conn);
    run_until(&server_end.err);
    assert_int_equal(server_end.err, UV_EOF);
    pair_close();
    mc_tls_free(s);
    mc_tls_free(c);
}

static void test_client_verifies_the_server(void **state)
{
    (void)state;
    struct mc_tls *s = server_tls(path(1, "a.crt"), path(2, "a.key"), NULL);
    struct mc_tls *c = client_tls(path(3, "b.crt"), NULL, NULL); /* trusts another CA */
    pair_open(s, c);
    assert_int_equal(client_end.connect_status, UV_EPROTO);
    pair_close();
    mc_tls_free(s);
    mc_tls_free(c);
}

static void test_client_certificates(void **state)
{
    (void)state;
    struct mc_tls *s = server_tls(path(1, "a.crt"), path(2, "a.key"), path(3, "b.crt"));
    /* Signed by b (itself): accepted, and the server sees it. */
    struct mc_tls *good = client_tls(path(4, "a.crt"), path(5, "b.crt"), path(6, "b.key"));
    pair_open(s, good);
    assert_int_equal(client_end.connect_status, 0);
    mc_conn_write_copy(&client_end.conn, "x", 1);
    mc_conn_flush(&client_end.conn);
    run_until_len(&server_end, 1);
    assert_non_null(mc_conn_peer_cert(&server_end.conn));
    pair_close();
    /* None: refused (TLS 1.3 tells the client after its handshake, on its first read). */
    struct mc_tls *none = client_tls(path(4, "a.crt"), NULL, NULL);
    pair_open(s, none);
    if (client_end.connect_status == 0)
        run_until(&client_end.err);
    run_until(&server_end.err);
    assert_int_equal(server_end.got.len, 0);
    pair_close();
    /* Signed by a, which the server does not trust for clients: refused. */
    struct mc_tls *foreign = client_tls(path(4, "a.crt"), path(5, "a.crt"), path(6, "a.key"));
    pair_open(s, foreign);
    run_until(&server_end.err);
    assert_int_equal(server_end.got.len, 0);
    pair_close();
    mc_tls_free(s);
    mc_tls_free(good);
    mc_tls_free(none);
    mc_tls_free(foreign);
}

static void expect_bad(const char *cert, const char *key, const char *ca, const char *flag,
                       const char *named)
{
    char err[512] = "";
    struct mc_tls_config cfg = {.cert_file = cert, .key_file = key, .client_ca_file = ca};
    struct mc_tls *t = mc_tls_server_new(&cfg, err, sizeof err);
    assert_null(t);
    if (!strstr(err, flag) || !strstr(err, named))
        fail_msg("\"%s\" does not name %s and %s", err, flag, named);
}

static void test_bad_files(void **state)
{
    (void)state;
    const char *crt = path(1, "a.crt"), *key = path(2, "a.key");
    expect_bad(path(3, "missing.crt"), key, NULL, "--tls_cert_file", path(3, "missing.crt"));
    expect_bad(crt, path(3, "missing.key"), NULL, "--tls_key_file", path(3, "missing.key"));
    expect_bad(dir, key, NULL, "--tls_cert_file", dir);
    expect_bad(path(3, "empty.pem"), key, NULL, "--tls_cert_file", "empty.pem");
    expect_bad(path(3, "garbage.pem"), key, NULL, "--tls_cert_file", "garbage.pem");
    expect_bad(crt, path(3, "garbage.pem"), NULL, "--tls_key_file", "garbage.pem");
    expect_bad(crt, path(3, "b.key"), NULL, "--tls_key_file", "b.key"); /* not a's key */
    expect_bad(crt, key, path(3, "garbage.pem"), "--tls_client_ca_file", "garbage.pem");
    expect_bad(NULL, key, NULL, "--tls_cert_file", "--tls_key_file");
}

static void test_reload_keeps_the_old_pair_on_failure(void **state)
{
    (void)state;
    char live_crt[300], live_key[300];
    snprintf(live_crt, sizeof live_crt, "%s/live.crt", dir);
    snprintf(live_key, sizeof live_key, "%s/live.key", dir);
    assert_int_equal(link(path(1, "a.crt"), live_crt), 0);
    assert_int_equal(link(path(1, "a.key"), live_key), 0);
    struct mc_tls *s = server_tls(live_crt, live_key, NULL);
    char err[512] = "";
    unlink(live_key);
    assert_int_equal(link(path(1, "b.key"), live_key), 0); /* does not match a.crt */
    assert_int_equal(mc_tls_reload(s, err, sizeof err), -1);
    assert_non_null(strstr(err, "--tls_key_file"));
    /* Still a's pair: a client trusting a connects. */
    struct mc_tls *c = client_tls(path(3, "a.crt"), NULL, NULL);
    pair_open(s, c);
    assert_int_equal(client_end.connect_status, 0);
    pair_close();
    /* The good new pair: b's; a client trusting only b connects now. */
    unlink(live_crt);
    assert_int_equal(link(path(1, "b.crt"), live_crt), 0);
    assert_int_equal(mc_tls_reload(s, err, sizeof err), 0);
    struct mc_tls *cb = client_tls(path(3, "b.crt"), NULL, NULL);
    pair_open(s, cb);
    assert_int_equal(client_end.connect_status, 0);
    pair_close();
    unlink(live_crt);
    unlink(live_key);
    mc_tls_free(s);
    mc_tls_free(c);
    mc_tls_free(cb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_both_ways_pause_resume_and_shutdown),
        cmocka_unit_test(test_client_verifies_the_server),
        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_reload_keeps_the_old_pair_on_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
