/* URL splitting and form decoding. */
#include "http/url.h"

#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/error.h"

int mc_url_parse(const char *text, struct mc_url *out)
{
    memset(out, 0, sizeof *out);
    /* A URL holds no control character or space (RFC 3986): refused here, at the flag, rather
     * than by the checked head writer on every health check, which left a sidecar that never
     * saw its app healthy (found by the outbound-head family test). */
    for (const char *c = text; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return MC_EINVAL;
    const char *p = text;
    if (strncasecmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strncasecmp(p, "https://", 8) == 0) {
        out->tls = 1;
        p += 8;
    } else if (strstr(p, "://")) {
        return MC_EINVAL;
    }
    size_t host_len = strcspn(p, "/?#");
    if (host_len == 0)
        return MC_EINVAL;
    out->host = mc_strndup(p, host_len);
    const char *port_colon = NULL;
    if (out->host[0] == '[') {
        char *close = strchr(out->host, ']');
        if (!close) {
            mc_url_close(out);
            return MC_EINVAL;
        }
        if (close[1] == ':')
            port_colon = close + 1;
        else if (close[1] != '\0') {
            mc_url_close(out);
            return MC_EINVAL;
        }
    } else {
        port_colon = strchr(out->host, ':');
    }
    if (port_colon)
        out->address = mc_strdup(out->host);
    else
        out->address = mc_sprintf("%s:%d", out->host, out->tls ? 443 : 80);
    const char *rest = p + host_len;
    size_t target_len = strcspn(rest, "#");
    if (target_len == 0 || rest[0] != '/')
        out->target = rest[0] == '?' ? mc_sprintf("/%.*s", (int)target_len, rest) : mc_strdup("/");
    else
        out->target = mc_strndup(rest, target_len);
    return 0;
}

void mc_url_close(struct mc_url *url)
{
    mc_free(url->address);
    mc_free(url->host);
    mc_free(url->target);
    memset(url, 0, sizeof *url);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes s[0..len) into out (room for len bytes: decoding never grows); returns the decoded
 * length. NULs are written like any byte: callers check for them. */
static size_t form_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
                   (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

int mc_url_form_value(const char *text, size_t len, const char *name, char **value)
{
    *value = NULL;
    size_t name_len = strlen(name);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq ? eq : pair_end;
        size_t kl = (size_t)(key_end - p);
        /* decoding never grows a key: a shorter one cannot match */
        if (kl >= name_len) {
            char *key = mc_malloc(kl + 1);
            int match = form_decode(p, kl, key) == name_len && memcmp(key, name, name_len) == 0;
            mc_free(key);
            if (match) {
                size_t vl = eq ? (size_t)(pair_end - eq - 1) : 0;
                char *v = mc_malloc(vl + 1);
                size_t n = eq ? form_decode(eq + 1, vl, v) : 0;
                v[n] = '\0';
                if (memchr(v, '\0', n)) {
                    mc_free(v);
                    return MC_EINVAL;
                }
                *value = v;
                return 0;
            }
        }
        p = pair_end + (amp ? 1 : 0);
    }
    return MC_ENOTFOUND;
}
