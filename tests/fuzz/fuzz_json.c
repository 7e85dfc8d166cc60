/* libFuzzer target: arbitrary bytes as a JSON-RPC reply, as an /rpc body and as a go-micro
 * error string: the strict scanner must never crash, and every span it reports must lie inside
 * the input. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/jsonrpc.h"
#include "util/alloc.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct mc_jsonrpc_reply reply;
    if (mc_jsonrpc_decode_reply(text, size, &reply) == 0)
        assert(reply.result_start + reply.result_len <= size);
    mc_jsonrpc_reply_close(&reply);

    struct mc_json_member m[4] = {
        {.key = "service"}, {.key = "method"}, {.key = "address"}, {.key = "request"}};
    if (mc_json_members(text, size, m, 4) == 0) {
        for (int i = 0; i < 4; i++) {
            if (!m[i].found)
                continue;
            assert(m[i].start + m[i].len <= size && m[i].len > 0);
            mc_free(mc_json_string_decode(text + m[i].start, m[i].len));
        }
    }
    int status; /* always one that can carry the error body (SPEC 11) */
    if (mc_jsonrpc_micro_error(text, size, &status))
        assert(status >= 200 && status <= 599 && status != 204 && status != 205 && status != 304);
    return 0;
}
