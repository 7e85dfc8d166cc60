/* libFuzzer target: arbitrary client bytes into the WebSocket codec, fed in two pieces (the
 * first byte picks the cut) so resumption is exercised too. Text messages it reports must be
 * valid UTF-8; nothing may crash, leak or read out of bounds. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "ws/utf8.h"
#include "ws/ws.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

static void on_message(void *ctx, int is_text, const uint8_t *p, size_t len)
{
    (void)ctx;
    assert(!is_text || mc_utf8_valid(p, len));
}

static void on_close(void *ctx, uint16_t code, const char *reason, size_t len)
{
    (void)ctx;
    (void)reason;
    (void)len;
    assert(code >= 1000 && code < 5000);
}

static void on_write(void *ctx, const void *p, size_t len)
{
    (void)ctx;
    (void)p;
    (void)len;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    static const struct mc_ws_callbacks cbs = {on_message, on_close, on_write, NULL};
    struct mc_ws_limits limits = {.max_message = 64 * 1024};
    struct mc_ws *ws = mc_ws_new(&cbs, NULL, &limits);
    size_t cut = size ? data[0] % (size + 1) : 0;
    if (mc_ws_feed(ws, data, cut) == 0)
        mc_ws_feed(ws, data + cut, size - cut);
    mc_ws_free(ws);
    return 0;
}
