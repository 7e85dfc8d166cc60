/* libFuzzer target: arbitrary bytes as a /registry body: jansson parses, the mapping validates
 * (case-insensitive keys, ports, metadata), and whatever it accepts must encode back. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "registry/service.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!body)
        return 0;
    struct mc_service svc;
    char err[256];
    if (mc_service_from_json(body, MC_SERVICE_REQUIRE_NODES, &svc, err, sizeof err) == 0) {
        assert(svc.name && svc.name[0] && svc.node_count > 0);
        json_t *back = mc_service_to_json(&svc, 1);
        char *text = json_dumps(back, JSON_COMPACT);
        assert(text);
        free(text);
        json_decref(back);
        mc_service_close(&svc);
    }
    json_decref(body);
    return 0;
}
