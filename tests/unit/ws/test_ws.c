/* Tests for the WebSocket codec (src/ws/ws.c): frame sequences from a table, each replayed
 * whole, split at every byte and one byte at a time (STYLE habit 16), then the send path,
 * the close handshake we start, fan-out headers and re-entrancy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "unit/ws/ws_frames.h"
#include "util/buf.h"
#include "util/error.h"
#include "ws/ws.h"

/* ---- what a codec did, as strings ---- */

struct rec {
    struct mc_buf events; /* "T:<text>;" "B:<hex>;" "T#<len>;" "C:<code>:<reason>;" */
    struct mc_buf wire;   /* raw bytes written */
    struct mc_ws *ws;
    int echo;        /* on_message sends the message back */
    int free_in_msg; /* on_message frees the codec */
    int closes;
};

static void rec_message(void *ctx, int is_text, const uint8_t *data, size_t len)
{
    struct rec *r = ctx;
    assert_non_null(data);
    if (len > 32)
        mc_buf_appendf(&r->events, "%c#%zu;", is_text ? 'T' : 'B', len);
    else if (is_text)
        mc_buf_appendf(&r->events, "T:%.*s;", (int)len, (const char *)data);
    else {
        mc_buf_append_str(&r->events, "B:");
        test_hex(&r->events, data, len);
        mc_buf_append_str(&r->events, ";");
    }
    if (r->echo)
        assert_int_equal(mc_ws_send(r->ws, is_text, data, len), 0);
    if (r->free_in_msg) {
        mc_ws_free(r->ws);
        r->ws = NULL;
    }
}

static void rec_close(void *ctx, uint16_t code, const char *reason, size_t len)
{
    struct rec *r = ctx;
    r->closes++;
    mc_buf_appendf(&r->events, "C:%u:%.*s;", code, (int)len, reason);
}

static void rec_write(void *ctx, const void *data, size_t len)
{
    struct rec *r = ctx;
    mc_buf_append(&r->wire, data, len);
}

static const struct mc_ws_callbacks rec_cbs = {rec_message, rec_close, rec_write};

static void rec_init(struct rec *r, uint64_t max)
{
    memset(r, 0, sizeof(*r));
    mc_buf_init(&r->events);
    mc_buf_init(&r->wire);
    struct mc_ws_limits limits = {.max_message = max};
    r->ws = mc_ws_new(&rec_cbs, r, max ? &limits : NULL);
}

static void rec_close_all(struct rec *r)
{
    mc_ws_free(r->ws);
    mc_buf_close(&r->events);
    mc_buf_close(&r->wire);
}

/* The wire bytes described as frames; fails the test on a malformed server frame. */
static char *rec_out(struct rec *r, struct mc_buf *tmp)
{
    mc_buf_reset(tmp);
    mc_buf_append_str(tmp, "");
    assert_int_equal(test_describe_frames(tmp, (const uint8_t *)r->wire.data, r->wire.len), 0);
    return tmp->data;
}

/* ---- the table ---- */

#define MAXF 6
#define F_MASKED 0
#define F_UNMASKED 1

struct fspec {
    uint8_t b0;
    int unmasked;
    const char *text; /* payload as text, or */
    const char *hex;  /* payload as hex, or */
    size_t fill;      /* payload of this many 'a' bytes */
    int code;         /* > 0: close payload starts with this 16-bit code */
    const char *raw;  /* instead of all the above: these bytes (hex) verbatim */
};

struct wscase {
    const char *name;
    uint64_t max; /* 0: default */
    struct fspec f[MAXF];
    const char *events; /* expected callbacks */
    const char *out;    /* expected server frames */
    int want_close;
    int rc; /* expected mc_ws_feed() result (errors are sticky, so the last call's) */
};

#define TXT 0x81
#define BIN 0x82
#define CONT 0x80
#define TXT_MORE 0x01
#define BIN_MORE 0x02
#define CONT_MORE 0x00
#define CLOSE 0x88
#define PING 0x89
#define PONG 0x8A
#define A10 "aaaaaaaaaa"
#define A123 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 "aaa"
#define ERR(code) "C:" #code ":;", "8:" #code ":;", 1

static const struct wscase cases[] = {
    /* messages */
    {"text", 0, {{TXT, .text = "Hello"}}, "T:Hello;", "", 0, 0},
    {"binary", 0, {{BIN, .hex = "00ff10"}}, "B:00ff10;", "", 0, 0},
    {"empty text", 0, {{TXT, .text = ""}}, "T:;", "", 0, 0},
    {"two messages", 0, {{TXT, .text = "a"}, {BIN, .hex = "01"}}, "T:a;B:01;", "", 0, 0},
    {"16-bit length", 0, {{BIN, .fill = 300}}, "B#300;", "", 0, 0},
    {"64-bit length", 100000, {{TXT, .fill = 70000}}, "T#70000;", "", 0, 0},
    {"multibyte text",
     0,
     {{TXT, .hex = "cebae1bdb9cf83cebcceb5"}},
     "T:\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5;",
     "",
     0,
     0},
    {"4-byte utf8",
     0,
     {{TXT, .hex = "f09f9880f48fbfbf"}},
     "T:\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf;",
     "",
     0,
     0},
    {"exactly max", 16, {{BIN, .fill = 16}}, "B:61616161616161616161616161616161;", "", 0, 0},
    /* fragmentation, control frames in between */
    {"fragmented with ping",
     0,
     {{TXT_MORE, .text = "Hel"},
      {PING, .text = "p"},
      {CONT_MORE, .text = "lo "},
      {CONT, .text = "World"}},
     "T:Hello World;",
     "A:70;",
     0,
     0},
    {"fragmented binary with pong",
     0,
     {{BIN_MORE, .hex = "01"}, {PONG, .text = ""}, {CONT, .hex = "02"}},
     "B:0102;",
     "",
     0,
     0},
    {"utf8 split across fragments",
     0,
     {{TXT_MORE, .hex = "e2"}, {CONT_MORE, .hex = "82"}, {CONT, .hex = "ac"}},
     "T:€;",
     "",
     0,
     0},
    {"empty fragments", 0, {{TXT_MORE, .text = ""}, {CONT, .text = ""}}, "T:;", "", 0, 0},
    {"fragmented at max",
     16,
     {{BIN_MORE, .fill = 8}, {CONT, .fill = 8}},
     "B:61616161616161616161616161616161;",
     "",
     0,
     0},
    {"ping", 0, {{PING, .text = "abc"}}, "", "A:616263;", 0, 0},
    {"empty ping", 0, {{PING, .text = ""}}, "", "A:;", 0, 0},
    {"ping 125", 0, {{PING, .fill = 125}}, "", "A:#125;", 0, 0},
    {"unsolicited pong", 0, {{PONG, .text = "x"}, {TXT, .text = "y"}}, "T:y;", "", 0, 0},
    /* the close handshake started by the peer */
    {"close 1000", 0, {{CLOSE, .code = 1000, .text = "bye"}}, "C:1000:bye;", "8:1000:bye;", 1, 0},
    {"close empty", 0, {{CLOSE, .text = ""}}, "C:1005:;", "8:;", 1, 0},
    {"close then data",
     0,
     {{CLOSE, .code = 1001}, {TXT, .text = "x"}},
     "C:1001:;",
     "8:1001:;",
     1,
     0},
    {"message then close",
     0,
     {{TXT, .text = "m"}, {CLOSE, .code = 1000}},
     "T:m;C:1000:;",
     "8:1000:;",
     1,
     0},
    {"close reason multibyte",
     0,
     {{CLOSE, .code = 1000, .hex = "e282ace282ac"}},
     "C:1000:\xe2\x82\xac\xe2\x82\xac;",
     "8:1000:\xe2\x82\xac\xe2\x82\xac;",
     1,
     0},
    {"close longest reason",
     0,
     {{CLOSE, .code = 1000, .fill = 123}},
     "C:1000:" A123 ";",
     "8:1000:" A123 ";",
     1,
     0},
    {"close after big frame",
     0,
     {{BIN, .fill = 5000}, {PING, .text = ""}, {CLOSE, .code = 1000}, {TXT, .text = "x"}},
     "B#5000;C:1000:;",
     "A:;8:1000:;",
     1,
     0},
    {"close 1003", 0, {{CLOSE, .code = 1003}}, "C:1003:;", "8:1003:;", 1, 0},
    {"close 1007", 0, {{CLOSE, .code = 1007}}, "C:1007:;", "8:1007:;", 1, 0},
    {"close 1011", 0, {{CLOSE, .code = 1011}}, "C:1011:;", "8:1011:;", 1, 0},
    {"close 1012", 0, {{CLOSE, .code = 1012}}, "C:1012:;", "8:1012:;", 1, 0},
    {"close 1014", 0, {{CLOSE, .code = 1014}}, "C:1014:;", "8:1014:;", 1, 0},
    {"close 3000", 0, {{CLOSE, .code = 3000}}, "C:3000:;", "8:3000:;", 1, 0},
    {"close 4999", 0, {{CLOSE, .code = 4999}}, "C:4999:;", "8:4999:;", 1, 0},
    {"close in fragmented message",
     0,
     {{TXT_MORE, .text = "a"}, {CLOSE, .code = 1000}},
     "C:1000:;",
     "8:1000:;",
     1,
     0},
    /* protocol errors: 1002 */
    {"unmasked", 0, {{TXT, F_UNMASKED, .text = "x"}}, ERR(1002), MC_EPROTO},
    {"message then unmasked",
     0,
     {{TXT, .text = "a"}, {TXT, F_UNMASKED, .text = "b"}},
     "T:a;C:1002:;",
     "8:1002:;",
     1,
     MC_EPROTO},
    {"unmasked ping", 0, {{PING, F_UNMASKED, .text = ""}}, ERR(1002), MC_EPROTO},
    {"rsv1", 0, {{0xC1, .text = "x"}}, ERR(1002), MC_EPROTO},
    {"rsv2", 0, {{0xA1, .text = "x"}}, ERR(1002), MC_EPROTO},
    {"rsv3", 0, {{0x91, .text = "x"}}, ERR(1002), MC_EPROTO},
    {"unmasked close", 0, {{CLOSE, F_UNMASKED, .code = 1000}}, ERR(1002), MC_EPROTO},
    {"rsv on close", 0, {{0xC8, .code = 1000}}, ERR(1002), MC_EPROTO},
    {"rsv on ping", 0, {{0xC9, .text = ""}}, ERR(1002), MC_EPROTO},
    {"opcode 3", 0, {{0x83, .text = ""}}, ERR(1002), MC_EPROTO},
    {"opcode 4", 0, {{0x84, .text = "x"}}, ERR(1002), MC_EPROTO},
    {"opcode 5", 0, {{0x85, .text = ""}}, ERR(1002), MC_EPROTO},
    {"opcode 6", 0, {{0x86, .text = ""}}, ERR(1002), MC_EPROTO},
    {"opcode 7", 0, {{0x87, .text = ""}}, ERR(1002), MC_EPROTO},
    {"opcode B", 0, {{0x8B, .text = ""}}, ERR(1002), MC_EPROTO},
    {"opcode C", 0, {{0x8C, .text = "x"}}, ERR(1002), MC_EPROTO},
    {"opcode D", 0, {{0x8D, .text = ""}}, ERR(1002), MC_EPROTO},
    {"opcode E", 0, {{0x8E, .text = ""}}, ERR(1002), MC_EPROTO},
    {"opcode F", 0, {{0x8F, .text = ""}}, ERR(1002), MC_EPROTO},
    {"reserved opcode in fragment",
     0,
     {{TXT_MORE, .text = "a"}, {0x83, .text = ""}},
     ERR(1002),
     MC_EPROTO},
    {"ping 126", 0, {{PING, .fill = 126}}, ERR(1002), MC_EPROTO},
    {"close 126", 0, {{CLOSE, .code = 1000, .fill = 124}}, ERR(1002), MC_EPROTO},
    {"fragmented ping", 0, {{0x09, .text = "a"}, {CONT, .text = "b"}}, ERR(1002), MC_EPROTO},
    {"fragmented close", 0, {{0x08, .text = ""}}, ERR(1002), MC_EPROTO},
    {"close 1 byte", 0, {{CLOSE, .hex = "03"}}, ERR(1002), MC_EPROTO},
    {"close code 0", 0, {{CLOSE, .hex = "0000"}}, ERR(1002), MC_EPROTO},
    {"close code 999", 0, {{CLOSE, .code = 999}}, ERR(1002), MC_EPROTO},
    {"close code 1004", 0, {{CLOSE, .code = 1004}}, ERR(1002), MC_EPROTO},
    {"close code 1005", 0, {{CLOSE, .code = 1005}}, ERR(1002), MC_EPROTO},
    {"close code 1006", 0, {{CLOSE, .code = 1006}}, ERR(1002), MC_EPROTO},
    {"close code 1015", 0, {{CLOSE, .code = 1015}}, ERR(1002), MC_EPROTO},
    {"close code 1016", 0, {{CLOSE, .code = 1016}}, ERR(1002), MC_EPROTO},
    {"close code 2999", 0, {{CLOSE, .code = 2999}}, ERR(1002), MC_EPROTO},
    {"close code 5000", 0, {{CLOSE, .code = 5000}}, ERR(1002), MC_EPROTO},
    {"close code 65535", 0, {{CLOSE, .code = 65535}}, ERR(1002), MC_EPROTO},
    {"16-bit length not minimal",
     0,
     {{.raw = "82fe0005"
              "37fa213d"
              "0102030405"}},
     ERR(1002),
     MC_EPROTO},
    {"64-bit length not minimal",
     0,
     {{.raw = "82ff0000000000000005"
              "37fa213d"
              "0102030405"}},
     ERR(1002),
     MC_EPROTO},
    {"64-bit length top bit",
     0,
     {{.raw = "82ff8000000000000001"
              "37fa213d"
              "00"}},
     ERR(1002),
     MC_EPROTO},
    {"continuation without start", 0, {{CONT, .text = "a"}}, ERR(1002), MC_EPROTO},
    {"unfinished continuation without start", 0, {{CONT_MORE, .text = "a"}}, ERR(1002), MC_EPROTO},
    {"continuation after whole message",
     0,
     {{TXT, .text = "a"}, {CONT, .text = "b"}},
     "T:a;C:1002:;",
     "8:1002:;",
     1,
     MC_EPROTO},
    {"text during fragmented message",
     0,
     {{TXT_MORE, .text = "a"}, {TXT, .text = "b"}},
     ERR(1002),
     MC_EPROTO},
    {"binary during fragmented message",
     0,
     {{BIN_MORE, .hex = "01"}, {PING, .text = ""}, {BIN, .hex = "02"}},
     "C:1002:;",
     "A:;8:1002:;",
     1,
     MC_EPROTO},
    /* too big: 1009 */
    {"over max", 16, {{BIN, .fill = 17}}, "C:1009:;", "8:1009:;", 1, MC_ETOOBIG},
    {"over max fragmented",
     16,
     {{TXT_MORE, .fill = 10}, {CONT, .fill = 10}},
     "C:1009:;",
     "8:1009:;",
     1,
     MC_ETOOBIG},
    {"over default max",
     0,
     {{BIN, .fill = MC_WS_DEFAULT_MAX_MESSAGE + 1}},
     "C:1009:;",
     "8:1009:;",
     1,
     MC_ETOOBIG},
    /* bad UTF-8: 1007 */
    {"surrogate in text",
     0,
     {{TXT, .hex = "cebae1bdb9cf83cebcceb5eda080656469746564"}},
     ERR(1007),
     MC_EPROTO},
    {"overlong in text", 0, {{TXT, .hex = "c0af"}}, ERR(1007), MC_EPROTO},
    {"over U+10FFFF", 0, {{TXT, .hex = "f4908080"}}, ERR(1007), MC_EPROTO},
    {"text ends mid-character", 0, {{TXT, .hex = "41e282"}}, ERR(1007), MC_EPROTO},
    {"bad utf8 across fragments",
     0,
     {{TXT_MORE, .hex = "ce"}, {CONT, .hex = "41"}},
     ERR(1007),
     MC_EPROTO},
    {"bad utf8 in last fragment",
     0,
     {{TXT_MORE, .text = "ok"}, {PING, .text = ""}, {CONT, .hex = "ff"}},
     "C:1007:;",
     "A:;8:1007:;",
     1,
     MC_EPROTO},
    {"fragmented text ends mid-character",
     0,
     {{TXT_MORE, .hex = "f0"}, {CONT, .hex = "9f98"}},
     ERR(1007),
     MC_EPROTO},
    {"binary is not utf8 checked", 0, {{BIN, .hex = "ff"}}, "B:ff;", "", 0, 0},
    {"bad utf8 in close reason", 0, {{CLOSE, .code = 1000, .hex = "ff"}}, ERR(1007), MC_EPROTO},
};

static void hex_decode(struct mc_buf *b, const char *hex)
{
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
        unsigned v;
        assert_int_equal(sscanf(hex + i, "%2x", &v), 1);
        uint8_t c = (uint8_t)v;
        mc_buf_append(b, &c, 1);
    }
}

/* Unused table slots are all zero; every used one has an opcode byte or a payload. */
static int fspec_used(const struct fspec *f)
{
    return f->b0 != 0 || f->raw != NULL || f->text != NULL || f->hex != NULL || f->fill != 0 ||
           f->code != 0;
}

static void build_input(const struct wscase *c, struct mc_buf *in)
{
    struct mc_buf p;
    mc_buf_init(&p);
    for (int i = 0; i < MAXF && fspec_used(&c->f[i]); i++) {
        const struct fspec *f = &c->f[i];
        if (f->raw != NULL) {
            hex_decode(in, f->raw);
            continue;
        }
        mc_buf_reset(&p);
        mc_buf_append_str(&p, "");
        if (f->code > 0) {
            uint8_t cb[2] = {(uint8_t)(f->code >> 8), (uint8_t)f->code};
            mc_buf_append(&p, cb, 2);
        }
        if (f->text)
            mc_buf_append_str(&p, f->text);
        if (f->hex)
            hex_decode(&p, f->hex);
        for (size_t k = 0; k < f->fill; k++)
            mc_buf_append(&p, "a", 1);
        test_frame(in, f->b0, f->unmasked, (const uint8_t *)p.data, p.len);
    }
    mc_buf_close(&p);
}

/* Feeds in[0..n) in pieces cut at cuts[0..ncuts) and checks the outcome. */
static int run_split(const struct wscase *c, const uint8_t *in, size_t n, const size_t *cuts,
                     size_t ncuts, const char *mode)
{
    struct rec r;
    struct mc_buf tmp;
    mc_buf_init(&tmp);
    rec_init(&r, c->max);
    int rc = 0;
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        rc = mc_ws_feed(r.ws, in + prev, end - prev);
        prev = end;
    }
    mc_buf_append_str(&r.events, "");
    const char *out = rec_out(&r, &tmp);
    int ok = strcmp(r.events.data, c->events) == 0 && strcmp(out, c->out) == 0 &&
             mc_ws_want_close_connection(r.ws) == c->want_close && rc == c->rc && r.closes <= 1;
    if (!ok)
        print_error("case '%s' (%s): events '%s' (want '%s'), out '%s' (want '%s'), "
                    "want_close %d, rc %d, closes %d\n",
                    c->name, mode, r.events.data, c->events, out, c->out,
                    mc_ws_want_close_connection(r.ws), rc, r.closes);
    rec_close_all(&r);
    mc_buf_close(&tmp);
    return ok;
}

static void test_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct wscase *c = &cases[i];
        struct mc_buf in;
        mc_buf_init(&in);
        build_input(c, &in);
        const uint8_t *p = (const uint8_t *)in.data;
        size_t n = in.len;
        failures += !run_split(c, p, n, NULL, 0, "whole");
        /* Split in two at every byte; for the big inputs, at a spread of points (every byte
         * of every header and a stride through the payload). */
        size_t stride = n > 4096 ? 509 : 1;
        for (size_t cut = 1; cut < n; cut += (cut < 64 || cut > n - 64) ? 1 : stride) {
            char mode[64];
            snprintf(mode, sizeof(mode), "split at %zu", cut);
            if (!run_split(c, p, n, &cut, 1, mode)) {
                failures++;
                break;
            }
        }
        if (n <= 100000) {
            size_t *cuts = test_malloc((n ? n : 1) * sizeof(size_t));
            for (size_t k = 0; k + 1 < n; k++)
                cuts[k] = k + 1;
            failures += !run_split(c, p, n, cuts, n ? n - 1 : 0, "byte at a time");
            test_free(cuts);
        }
        mc_buf_close(&in);
    }
    assert_int_equal(failures, 0);
}

/* ---- the send path ---- */

static void test_send(void **state)
{
    (void)state;
    struct rec r;
    struct mc_buf tmp;
    mc_buf_init(&tmp);
    rec_init(&r, 0);
    assert_int_equal(mc_ws_send(r.ws, 1, "hi", 2), 0);
    assert_int_equal(mc_ws_send(r.ws, 0, "\x00\xff", 2), 0);
    assert_int_equal(mc_ws_send(r.ws, 1, "", 0), 0);
    assert_int_equal(mc_ws_ping(r.ws), 0);
    assert_string_equal(rec_out(&r, &tmp), "1:6869;2:00ff;1:;9:;");
    /* Text must be UTF-8; nothing is written for a refused message. */
    size_t before = r.wire.len;
    assert_int_equal(mc_ws_send(r.ws, 1, "\xc0\xaf", 2), MC_EINVAL);
    assert_int_equal(mc_ws_send(r.ws, 1, "\xe2\x82", 2), MC_EINVAL);
    assert_int_equal(r.wire.len, before);
    assert_int_equal(mc_ws_can_send(r.ws), 1);
    assert_int_equal(mc_ws_want_close_connection(r.ws), 0);
    rec_close_all(&r);
    mc_buf_close(&tmp);
}

static void test_send_large_matches_frame_header(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct rec r;
        rec_init(&r, 0);
        uint8_t *payload = test_malloc(sizes[i] + 1);
        memset(payload, 'z', sizes[i]);
        assert_int_equal(mc_ws_send(r.ws, 0, payload, sizes[i]), 0);
        /* The fan-out header must be byte-identical to what wslay itself frames. */
        uint8_t h[10];
        size_t hl = mc_ws_frame_header(h, MC_WS_OP_BINARY, sizes[i]);
        assert_int_equal(r.wire.len, hl + sizes[i]);
        assert_memory_equal(r.wire.data, h, hl);
        assert_memory_equal(r.wire.data + hl, payload, sizes[i]);
        test_free(payload);
        rec_close_all(&r);
    }
}

static void test_frame_header(void **state)
{
    (void)state;
    uint8_t h[10];
    assert_int_equal(mc_ws_frame_header(h, MC_WS_OP_TEXT, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(mc_ws_frame_header(h, MC_WS_OP_TEXT, 125), 2);
    assert_memory_equal(h, "\x81\x7d", 2);
    assert_int_equal(mc_ws_frame_header(h, MC_WS_OP_BINARY, 126), 4);
    assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);
    assert_int_equal(mc_ws_frame_header(h, MC_WS_OP_TEXT, 65535), 4);
    assert_memory_equal(h, "\x81\x7e\xff\xff", 4);
    assert_int_equal(mc_ws_frame_header(h, MC_WS_OP_TEXT, 65536), 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(mc_ws_frame_header(h, MC_WS_OP_PING, 0x0102030405060708ull), 10);
    assert_memory_equal(h, "\x89\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);
}

/* ---- the close handshake we start ---- */

static void feed_frame(struct rec *r, uint8_t b0, const void *p, size_t n, int expect_rc)
{
    struct mc_buf in;
    mc_buf_init(&in);
    test_frame(&in, b0, 0, p, n);
    assert_int_equal(mc_ws_feed(r->ws, (const uint8_t *)in.data, in.len), expect_rc);
    mc_buf_close(&in);
}

static void test_close_initiated(void **state)
{
    (void)state;
    struct rec r;
    struct mc_buf tmp;
    mc_buf_init(&tmp);
    rec_init(&r, 0);
    assert_int_equal(mc_ws_close(r.ws, 1001, "going away"), 0);
    assert_string_equal(rec_out(&r, &tmp), "8:1001:going away;");
    assert_int_equal(mc_ws_can_send(r.ws), 0);
    assert_int_equal(mc_ws_want_close_connection(r.ws), 0); /* wait for the peer's close */
    assert_int_equal(mc_ws_send(r.ws, 1, "late", 4), MC_ECLOSED);
    assert_int_equal(mc_ws_ping(r.ws), MC_ECLOSED);
    assert_int_equal(mc_ws_close(r.ws, 1000, NULL), MC_ECLOSED);
    /* Messages still in flight from the peer are delivered until its close. */
    feed_frame(&r, TXT, "x", 1, 0);
    assert_string_equal(r.events.data, "T:x;");
    assert_int_equal(r.closes, 0);
    /* The peer's reply completes the handshake; nothing more is written. */
    feed_frame(&r, CLOSE, "\x03\xe9", 2, 0);
    assert_string_equal(r.events.data, "T:x;C:1001:;");
    assert_string_equal(rec_out(&r, &tmp), "8:1001:going away;");
    assert_int_equal(mc_ws_want_close_connection(r.ws), 1);
    /* Anything after is ignored. */
    feed_frame(&r, TXT, "y", 1, 0);
    assert_int_equal(r.closes, 1);
    rec_close_all(&r);
    mc_buf_close(&tmp);
}

static void test_close_arguments(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 0);
    char longr[MC_WS_MAX_CLOSE_REASON + 2];
    memset(longr, 'r', sizeof(longr) - 1);
    longr[sizeof(longr) - 1] = '\0';
    assert_int_equal(mc_ws_close(r.ws, 1005, NULL), MC_EINVAL);
    assert_int_equal(mc_ws_close(r.ws, 999, NULL), MC_EINVAL);
    assert_int_equal(mc_ws_close(r.ws, 5000, NULL), MC_EINVAL);
    assert_int_equal(mc_ws_close(r.ws, 1000, longr), MC_EINVAL);
    assert_int_equal(mc_ws_close(r.ws, 1000, "\xff"), MC_EINVAL);
    assert_int_equal(r.wire.len, 0);
    longr[MC_WS_MAX_CLOSE_REASON] = '\0'; /* exactly the limit */
    assert_int_equal(mc_ws_close(r.ws, 1008, longr), 0);
    assert_int_equal(r.wire.len, 2 + 2 + MC_WS_MAX_CLOSE_REASON);
    rec_close_all(&r);
}

/* An unknown peer sends data after our failure: ignored, error stays. */
static void test_error_is_sticky(void **state)
{
    (void)state;
    struct rec r;
    struct mc_buf in;
    mc_buf_init(&in);
    rec_init(&r, 0);
    test_frame(&in, 0x83, 0, (const uint8_t *)"", 0);
    assert_int_equal(mc_ws_feed(r.ws, (const uint8_t *)in.data, in.len), MC_EPROTO);
    size_t written = r.wire.len;
    assert_int_equal(mc_ws_feed(r.ws, (const uint8_t *)in.data, in.len), MC_EPROTO);
    assert_int_equal(r.wire.len, written);
    assert_int_equal(r.closes, 1);
    assert_int_equal(mc_ws_send(r.ws, 1, "x", 1), MC_ECLOSED);
    assert_int_equal(mc_ws_can_send(r.ws), 0);
    mc_buf_close(&in);
    rec_close_all(&r);
}

/* ---- callbacks that call back in ---- */

static void test_echo_from_callback(void **state)
{
    (void)state;
    struct rec r;
    struct mc_buf tmp, in;
    mc_buf_init(&tmp);
    mc_buf_init(&in);
    rec_init(&r, 0);
    r.echo = 1;
    test_frame(&in, TXT, 0, (const uint8_t *)"one", 3);
    test_frame(&in, PING, 0, (const uint8_t *)"p", 1);
    test_frame(&in, BIN, 0, (const uint8_t *)"\x02", 1);
    assert_int_equal(mc_ws_feed(r.ws, (const uint8_t *)in.data, in.len), 0);
    assert_string_equal(r.events.data, "T:one;B:02;");
    assert_string_equal(rec_out(&r, &tmp), "1:6f6e65;A:70;2:02;");
    mc_buf_close(&in);
    mc_buf_close(&tmp);
    rec_close_all(&r);
}

static void test_free_from_callback(void **state)
{
    (void)state;
    struct rec r;
    struct mc_buf in;
    mc_buf_init(&in);
    rec_init(&r, 0);
    r.free_in_msg = 1;
    test_frame(&in, TXT, 0, (const uint8_t *)"a", 1);
    test_frame(&in, TXT, 0, (const uint8_t *)"b", 1);
    test_frame(&in, PING, 0, (const uint8_t *)"", 0);
    struct mc_ws *ws = r.ws;
    mc_ws_feed(ws, (const uint8_t *)in.data, in.len);
    /* Freed on return (the sanitizer build checks for leaks and use after free); no
     * callback after the free request. */
    assert_null(r.ws);
    assert_string_equal(r.events.data, "T:a;");
    assert_int_equal(r.wire.len, 0);
    mc_buf_close(&in);
    rec_close_all(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_send),
        cmocka_unit_test(test_send_large_matches_frame_header),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_close_initiated),
        cmocka_unit_test(test_close_arguments),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_echo_from_callback),
        cmocka_unit_test(test_free_from_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
