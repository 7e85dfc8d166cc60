/* libFuzzer target: arbitrary etcd gateway answers into the etcd registry backend (the JSON
 * decoding of lease grants, keep-alives, ranges, the watch stream and puts), over the HTTP
 * client and the in-memory transport. The input is a list of HTTP responses separated by
 * "\n--\n"; each connection the backend dials reads the next one (cycling), so the session's
 * steps (grant, range, watch, keep-alive, puts of a registration) each meet fuzzed answers.
 * Whatever the view holds afterwards must serialise; nothing may crash or leak. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http/client.h"
#include "mem_transport.h"
#include "registry/registry.h"
#include "util/log.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

#define MAX_PARTS 16
static struct mem_script parts[MAX_PARTS];
static size_t part_count, part_next, dials;

static struct mem_script next_part(void)
{
    dials++;
    struct mem_script s = parts[part_next];
    part_next = (part_next + 1) % part_count;
    return s;
}

static void on_done(void *ctx, int err)
{
    (void)err;
    ++*(int *)ctx;
}

static void on_closed(void *ctx)
{
    *(int *)ctx = 1;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    part_count = part_next = dials = 0;
    const uint8_t *p = data, *end = data + size;
    while (part_count < MAX_PARTS) {
        const uint8_t *sep = NULL;
        for (const uint8_t *q = p; q + 4 <= end; q++)
            if (memcmp(q, "\n--\n", 4) == 0) {
                sep = q;
                break;
            }
        const uint8_t *stop = sep ? sep : end;
        parts[part_count] = mem_script_of(p, (size_t)(stop - p));
        parts[part_count].eof = 1; /* a gateway answer ends with the connection, at worst */
        part_count++;
        if (!sep)
            break;
        p = sep + 4;
    }
    mc_log_set_level(MC_LOG_ERROR);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mc_net net;
    memset(&net, 0, sizeof net);
    net.loop = &loop;
    mc_buf_init(&mem_out);
    mem_out_total = 0;
    mem_refuse_dials = 0;
    mem_dial_next = next_part;

    struct mc_http_client_config ccfg = {.transport = &mem_type};
    struct mc_http_client *client = mc_http_client_new(&net, &ccfg);
    struct mc_registry_config rcfg = {.loop = &loop,
                                      .client = client,
                                      .address = "127.0.0.1:2379",
                                      .lease_ttl_ms = 30000,
                                      .close_timeout_ms = 1};
    char err[256];
    struct mc_registry *r =
        mc_registry_new(mc_registry_backend_find("etcd"), &rcfg, err, sizeof err);
    assert(r);
    mc_registry_start(r);
    mem_pump(&loop, 20000);

    /* A registration (one node on the sidecar's lease, one with its own TTL). */
    json_t *j =
        json_loads("{\"name\":\"go.micro.srv.f\",\"version\":\"1\",\"nodes\":[{\"id\":\"a\","
                   "\"address\":\"127.0.0.1\",\"port\":1}]}",
                   0, NULL);
    struct mc_service svc;
    int parsed = mc_service_from_json(j, MC_SERVICE_REQUIRE_NODES, &svc, err, sizeof err);
    assert(parsed == 0);
    int done = 0;
    mc_registry_register(r, &svc, 0, 0, on_done, &done);
    mc_registry_register(r, &svc, 10000, 0, on_done, &done);
    mem_pump(&loop, 20000);
    mc_registry_deregister(r, &svc, on_done, &done);
    mem_pump(&loop, 20000);
    mc_service_close(&svc);
    json_decref(j);

    json_t *list = mc_registry_list_json(r);
    assert(list);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *name = json_string_value(json_object_get(json_array_get(list, i), "name"));
        assert(name);
        json_t *got = mc_registry_get_json(r, name);
        char *text = got ? json_dumps(got, JSON_COMPACT) : NULL;
        free(text);
        json_decref(got);
    }
    json_decref(list);

    int registry_closed = 0;
    mc_registry_free(r, on_closed, &registry_closed);
    /* The close revokes leases, bounded by close_timeout_ms (1 ms): that timer is the next. */
    for (int i = 0; i < 100 && !registry_closed; i++) {
        mem_pump(&loop, 1000);
        if (!registry_closed)
            uv_run(&loop, UV_RUN_ONCE);
    }
    assert(registry_closed);
    mc_http_client_free(client);
    mem_pump(&loop, 1000);
    uv_walk(&loop, close_walk_cb, NULL);
    mc_net_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    assert(closed == 0);
    assert(done <= 3);
    mem_dial_next = NULL;
    mc_buf_close(&mem_out);
    return 0;
}
