/* URL splitting. */
#include "http/url.h"

#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/error.h"

int mc_url_parse(const char *text, struct mc_url *out)
{
    memset(out, 0, sizeof *out);
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
