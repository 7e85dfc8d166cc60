/* go-micro API path rules: path -> (service, method) and path -> service. */
#include "rpc/route.h"

#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/error.h"

struct seg {
    const char *p;
    size_t n;
};

/* Splits the path part of the target into cleaned segments (no empty, ".", or ".." ones);
 * returns how many, in a new array *out the caller frees. */
static size_t split_path(const char *path, size_t len, struct seg **out)
{
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    q = memchr(path, '#', len);
    if (q)
        len = (size_t)(q - path);
    struct seg *segs = mc_malloc((len / 2 + 1) * sizeof *segs);
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        struct seg s = {path + i, j - i};
        if (s.n == 2 && memcmp(s.p, "..", 2) == 0) {
            if (k)
                k--;
        } else if (s.n && !(s.n == 1 && s.p[0] == '.')) {
            segs[k++] = s;
        }
        i = j + 1;
    }
    *out = segs;
    return k;
}

/* go-micro's versionRe: ^v[0-9]+$ */
static int is_version(struct seg s)
{
    if (s.n < 2 || s.p[0] != 'v')
        return 0;
    for (size_t i = 1; i < s.n; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return 0;
    return 1;
}

static int is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* go-micro's toCamel: split on '-', strings.Title each word, join. Title capitalises a letter
 * that follows a separator (ASCII other than letters, digits and '_'). Returns bytes added. */
static size_t append_camel(struct mc_buf *b, struct seg s)
{
    size_t before = b->len;
    int at_start = 1;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '-') {
            at_start = 1;
            continue;
        }
        char out = (char)(at_start && c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        mc_buf_append(b, &out, 1);
        at_start = c < 0x80 && !is_alnum(c) && c != '_';
    }
    return b->len - before;
}

static void append_service(struct mc_buf *b, const char *ns, const struct seg *segs, size_t n)
{
    mc_buf_append_str(b, ns);
    for (size_t i = 0; i < n; i++) {
        if (b->len)
            mc_buf_append(b, ".", 1);
        mc_buf_append(b, segs[i].p, segs[i].n);
    }
}

int mc_route_path_to_call(const char *path, size_t len, const char *namespace_, char **service_out,
                          char **method_out)
{
    *service_out = NULL;
    *method_out = NULL;
    struct seg *segs;
    size_t k = split_path(path, len, &segs);
    if (k == 0) {
        mc_free(segs);
        return MC_ENOTFOUND;
    }
    size_t svc_n, first_method;
    if (k <= 2) {
        svc_n = 1;
        first_method = 0;
    } else if (k == 3 && is_version(segs[0])) {
        svc_n = 2;
        first_method = 1;
    } else {
        svc_n = k - 2;
        first_method = k - 2;
    }
    struct mc_buf svc, method;
    mc_buf_init(&svc);
    mc_buf_init(&method);
    append_service(&svc, namespace_, segs, svc_n);
    int ok = 1;
    for (size_t i = first_method; i < k; i++) {
        if (i > first_method)
            mc_buf_append(&method, ".", 1);
        ok &= append_camel(&method, segs[i]) > 0;
    }
    if (k == 1)
        mc_buf_append_str(&method, ".Call"); /* /foo calls Foo.Call, the default handler */
    mc_free(segs);
    if (!ok) {
        mc_buf_close(&svc);
        mc_buf_close(&method);
        return MC_ENOTFOUND;
    }
    *service_out = mc_buf_steal(&svc, NULL);
    *method_out = mc_buf_steal(&method, NULL);
    return 0;
}

/* go-micro's proxyRe: ^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$ */
static int is_proxy_name(struct seg s)
{
    if (s.n == 0 || s.p[0] == '-' || s.p[s.n - 1] == '-')
        return 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (!is_alnum(c) && !(c == '-' && s.p[i - 1] != '-'))
            return 0;
    }
    return 1;
}

int mc_route_path_to_service(const char *path, size_t len, const char *namespace_,
                             char **service_out)
{
    *service_out = NULL;
    struct seg *segs;
    size_t k = split_path(path, len, &segs);
    size_t n = k >= 2 && is_version(segs[0]) ? 2 : 1;
    int rc = MC_ENOTFOUND;
    if (k > 0 && is_proxy_name(segs[n - 1])) {
        struct mc_buf svc;
        mc_buf_init(&svc);
        append_service(&svc, namespace_, segs, n);
        *service_out = mc_buf_steal(&svc, NULL);
        rc = 0;
    }
    mc_free(segs);
    return rc;
}
