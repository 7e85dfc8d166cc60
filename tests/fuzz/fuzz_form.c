/* libFuzzer target: the /rpc inputs that are not JSON and the strings every route derives from
 * a client's request: urlencoded form pairs (the /rpc form body and query), request paths
 * mapped to a service and method (--handler=rpc and proxy), URLs (--healthcheck_url, the
 * CLI's --proxy_address) and host:port text (registrations, /rpc's address). Decoded values
 * must never hold a NUL (a C string would end early and name something else); nothing may
 * crash, leak or read out of bounds. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/url.h"
#include "net/conn.h"
#include "rpc/route.h"
#include "util/alloc.h"
#include "util/error.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    /* Form pairs: the names /rpc reads, each decoded from the same bytes. */
    static const char *const names[] = {"service", "method", "address", "request", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *value = NULL;
        int rc = mc_url_form_value(text, size, names[i], &value);
        if (rc == 0) {
            assert(value);
            mc_free(value);
        } else {
            assert(value == NULL && (rc == MC_ENOTFOUND || rc == MC_EINVAL));
        }
    }
    /* Paths: the rpc and proxy mappings, of what llhttp lets into a target: no raw NUL. */
    size_t plen = strnlen(text, size);
    char *service = NULL, *method = NULL;
    if (mc_route_path_to_call(text, plen, "go.micro.srv", &service, &method) == 0) {
        /* Pure string work: control characters are refused by the callers (rpc_api, the
         * caller's checked head), since llhttp never lets one into a path anyway. */
        assert(service && method && *service && *method);
        assert(strncmp(service, "go.micro.srv.", 13) == 0);
    } else {
        assert(!service && !method);
    }
    mc_free(service);
    mc_free(method);
    service = NULL;
    if (mc_route_path_to_service(text, plen, "", &service) == 0)
        assert(service && !strpbrk(service, "\r\n /?"));
    mc_free(service);

    /* The same bytes as C text: a URL and a host:port. */
    char *s = mc_malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    struct mc_url url;
    if (mc_url_parse(s, &url) == 0) {
        assert(url.address && url.host && url.target && url.target[0] == '/');
        mc_url_close(&url);
    }
    char host[256];
    int port = -1;
    if (mc_net_split_host_port(s, host, sizeof host, &port) == 0)
        assert(port >= 0 && port <= 65535 && strlen(host) < sizeof host);
    struct sockaddr_storage ss;
    mc_net_parse_address(s, &ss);
    mc_free(s);
    return 0;
}
