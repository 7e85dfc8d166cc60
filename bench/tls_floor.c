/* bench/tls_floor.c: the memory floor of TLS with Debian's shared OpenSSL 3.
 *
 * A process that does nothing but what any TLS server must before its first connection: build
 * an OpenSSL server context with the sidecar's policy (src/net/tls.c) and load a certificate and
 * its key. Then it completes one TLS 1.3 handshake and one record each way, in memory (a client
 * and a server SSL over memory BIOs, no socket), as the sidecar does for its first request.
 * It prints its RSS and Pss (KiB) after each step, so bench/tls.sh can put the sidecar's idle
 * RSS with TLS beside the least any process linking these libraries reaches.
 *
 * Usage: tls_floor CERT KEY   (prints "context RSS PSS" and "handshake RSS PSS" lines) */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

/* The first "KEY: value" of a /proc file, KiB; -1 when missing. */
static long proc_kib(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && sscanf(line + n, " %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static void report(const char *step)
{
    printf("%s %ld %ld\n", step, proc_kib("/proc/self/status", "VmRSS:"),
           proc_kib("/proc/self/smaps_rollup", "Pss:"));
}

/* Moves what one side wrote to the other's read BIO; returns the bytes moved. */
static int pump(SSL *from, SSL *to)
{
    char buf[16384];
    int moved = 0, n;
    while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof buf)) > 0) {
        BIO_write(SSL_get_rbio(to), buf, n);
        moved += n;
    }
    return moved;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tls_floor CERT KEY\n");
        return 2;
    }
    SSL_CTX *server = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(server, TLS1_2_VERSION);
    SSL_CTX_set_options(server, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(server, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(server, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-"
                                        "SHA256:ECDHE-ECDSA-AES256-GCM-SHA384") != 1 ||
        SSL_CTX_set1_groups_list(server, "X25519:prime256v1:secp384r1") != 1 ||
        SSL_CTX_use_certificate_chain_file(server, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(server, argv[2], SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(server) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    report("context");

    SSL_CTX *client = SSL_CTX_new(TLS_client_method());
    SSL *s = SSL_new(server), *c = SSL_new(client);
    SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_bio(c, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (int i = 0; i < 10 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c)); i++) {
        SSL_do_handshake(c);
        pump(c, s);
        SSL_do_handshake(s);
        pump(s, c);
    }
    char buf[64];
    if (!SSL_is_init_finished(s) || SSL_write(c, "GET / HTTP/1.1\r\n\r\n", 18) != 18 ||
        pump(c, s) <= 0 || SSL_read(s, buf, sizeof buf) != 18 || SSL_write(s, "ok", 2) != 2 ||
        pump(s, c) <= 0 || SSL_read(c, buf, sizeof buf) != 2) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    report("handshake");
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(client);
    SSL_CTX_free(server);
    return 0;
}
