/* RFC 6455 opening handshake: request validation and the 101 response. SHA-1 and base64
 * come from OpenSSL 3 (EVP), the one crypto library the project links. */
#include "ws/handshake.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "util/error.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* 16 bytes encode to 22 significant characters and "==" (RFC 6455 4.1: the nonce is 16
 * random bytes). The last significant character carries only 2 bits; we don't insist the
 * unused 4 are zero, as decoders don't either. */
static int key_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        if (!is_b64(key[i]))
            return 0;
    }
    return 1;
}

int mc_ws_accept_key(const char *client_key, size_t len, char out[MC_WS_ACCEPT_LEN])
{
    if (client_key == NULL || !key_valid(client_key, len))
        return MC_EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, client_key, len) == 1 &&
        EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) == 1 &&
        EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 20)
        ok = 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return MC_EINVAL;
    /* 20 bytes -> 28 characters and a NUL, exactly out's size. */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return 0;
}

/* 1 if the comma-separated list (RFC 9110 5.6.1, optional whitespace around items) holds
 * token, compared case-insensitively. */
static int list_has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == tlen && strncasecmp(p, token, tlen) == 0)
            return 1;
        p = end;
    }
    return 0;
}

int mc_ws_is_upgrade(const char *upgrade, const char *connection)
{
    return upgrade != NULL && connection != NULL && list_has_token(upgrade, "websocket") &&
           list_has_token(connection, "upgrade");
}

static int version_is_13(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncmp(v, "13", 2) != 0)
        return 0;
    v += 2;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0';
}

int mc_ws_check_upgrade(const struct mc_ws_upgrade_request *req, char accept[MC_WS_ACCEPT_LEN],
                        int *status)
{
    if (req->http_major == 2) {
        /* RFC 8441: an extended CONNECT whose :protocol is websocket (the HTTP/2 codec asks
         * nothing else to upgrade); no key, no accept, and the answer is a 200. */
        if (req->method == NULL || strcmp(req->method, "CONNECT") != 0) {
            *status = 405;
            return MC_EINVAL;
        }
        if (req->version == NULL || !version_is_13(req->version)) {
            *status = 426;
            return MC_EINVAL;
        }
        accept[0] = '\0';
        *status = 200;
        return 0;
    }
    if (req->method == NULL || strcmp(req->method, "GET") != 0) {
        *status = 405;
        return MC_EINVAL;
    }
    if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1) ||
        !mc_ws_is_upgrade(req->upgrade, req->connection)) {
        *status = 400;
        return MC_EINVAL;
    }
    /* The version is checked before the key so that a client speaking an older draft
     * learns which version to retry with (RFC 6455 4.4). */
    if (req->version == NULL || !version_is_13(req->version)) {
        *status = 426;
        return MC_EINVAL;
    }
    /* Header values may keep optional whitespace around them (RFC 9110 5.5). */
    const char *key = req->key;
    size_t klen = 0;
    if (key != NULL) {
        while (*key == ' ' || *key == '\t')
            key++;
        klen = strlen(key);
        while (klen > 0 && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
            klen--;
    }
    if (key == NULL || mc_ws_accept_key(key, klen, accept) != 0) {
        *status = 400;
        return MC_EINVAL;
    }
    *status = 101;
    return 0;
}
