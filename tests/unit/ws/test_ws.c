/* Tests for the WebSocket codec (src/ws/ws.c): frame sequences from data files (tests/data/ws/
 * cases), each replayed whole, split at every byte and one byte at a time (STYLE habit 16), then
 * the send path, the close handshake we start, fan-out headers and re-entrancy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdlib.h>

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

static const struct mc_ws_callbacks rec_cbs = {rec_message, rec_close, rec_write, NULL};

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

/* ---- the cases: data files ---- */

#define TXT 0x81
#define BIN 0x82
#define CLOSE 0x88
#define PING 0x89

#ifndef WS_CASES_DIR
#define WS_CASES_DIR "tests/data/ws/cases"
#endif

/* One data file, tests/data/ws/cases/NNN-name.case: "# name", optional "max N" (the message
 * limit), the client's bytes as "in <hex>" lines and "rep COUNT <4-byte hex>" runs (a masked
 * fill), then the expected "events" (callbacks: "T:<text>;" "B:<hex>;" "T#<len>;"
 * "C:<code>:<reason>;"), "out" (server frames: "op:payload;"), "close" (the codec wants the
 * connection closed) and "rc" (mc_ws_feed's last result). events and out escape bytes outside
 * printable ASCII, and backslash, as \xNN. */
struct wscase {
    char name[160];
    uint64_t max; /* 0: default */
    struct mc_buf in;
    struct mc_buf events, out;
    int want_close;
    int rc;
};

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void hex_decode(struct mc_buf *b, const char *hex)
{
    for (; hex[0] && hex[1] && hexval(hex[0]) >= 0 && hexval(hex[1]) >= 0; hex += 2) {
        uint8_t v = (uint8_t)(hexval(hex[0]) * 16 + hexval(hex[1]));
        mc_buf_append(b, &v, 1);
    }
}

static void unescape(struct mc_buf *b, const char *s)
{
    mc_buf_append_str(b, "");
    while (*s) {
        if (s[0] == '\\' && s[1] == 'x' && hexval(s[2]) >= 0 && hexval(s[3]) >= 0) {
            char v = (char)(hexval(s[2]) * 16 + hexval(s[3]));
            mc_buf_append(b, &v, 1);
            s += 4;
        } else {
            mc_buf_append(b, s++, 1);
        }
    }
}

static int load_case(const char *path, struct wscase *c)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    memset(c, 0, sizeof *c);
    mc_buf_init(&c->in);
    mc_buf_init(&c->events);
    mc_buf_init(&c->out);
    unescape(&c->events, "");
    unescape(&c->out, "");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (strncmp(line, "# ", 2) == 0)
            snprintf(c->name, sizeof c->name, "%s", line + 2);
        else if (strncmp(line, "max ", 4) == 0)
            c->max = strtoull(line + 4, NULL, 10);
        else if (strncmp(line, "in ", 3) == 0)
            hex_decode(&c->in, line + 3);
        else if (strncmp(line, "rep ", 4) == 0) {
            char *pattern;
            unsigned long count = strtoul(line + 4, &pattern, 10);
            struct mc_buf one;
            mc_buf_init(&one);
            hex_decode(&one, pattern + 1);
            for (unsigned long k = 0; k < count; k++)
                mc_buf_append(&c->in, one.data, one.len);
            mc_buf_close(&one);
        } else if (strncmp(line, "events ", 7) == 0 || strcmp(line, "events") == 0)
            unescape(&c->events, line + (n > 6 ? 7 : 6));
        else if (strncmp(line, "out ", 4) == 0 || strcmp(line, "out") == 0)
            unescape(&c->out, line + (n > 3 ? 4 : 3));
        else if (strncmp(line, "close ", 6) == 0)
            c->want_close = atoi(line + 6);
        else if (strncmp(line, "rc ", 3) == 0)
            c->rc = atoi(line + 3);
    }
    free(line);
    fclose(f);
    return 0;
}

static void case_close(struct wscase *c)
{
    mc_buf_close(&c->in);
    mc_buf_close(&c->events);
    mc_buf_close(&c->out);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
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
    int ok = strcmp(r.events.data, c->events.data) == 0 && strcmp(out, c->out.data) == 0 &&
             mc_ws_want_close_connection(r.ws) == c->want_close && rc == c->rc && r.closes <= 1;
    if (!ok)
        print_error("case '%s' (%s): events '%s' (want '%s'), out '%s' (want '%s'), "
                    "want_close %d, rc %d, closes %d\n",
                    c->name, mode, r.events.data, c->events.data, out, c->out.data,
                    mc_ws_want_close_connection(r.ws), rc, r.closes);
    rec_close_all(&r);
    mc_buf_close(&tmp);
    return ok;
}

static void test_table(void **state)
{
    (void)state;
    DIR *d = opendir(WS_CASES_DIR);
    assert_non_null(d);
    char **names = NULL;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl > 5 && strcmp(e->d_name + nl - 5, ".case") == 0) {
            names = realloc(names, (count + 1) * sizeof *names);
            names[count++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, count, sizeof *names, by_name);
    assert_true(count >= 80);
    int failures = 0;
    for (size_t i = 0; i < count; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", WS_CASES_DIR, names[i]);
        struct wscase c;
        assert_int_equal(load_case(path, &c), 0);
        const uint8_t *p = (const uint8_t *)c.in.data;
        size_t n = c.in.len;
        failures += !run_split(&c, p, n, NULL, 0, "whole");
        /* Split in two at every byte; for the big inputs, at a spread of points (every byte
         * of every header and a stride through the payload). */
        size_t stride = n > 4096 ? 509 : 1;
        for (size_t cut = 1; cut < n; cut += (cut < 64 || cut > n - 64) ? 1 : stride) {
            char mode[64];
            snprintf(mode, sizeof(mode), "split at %zu", cut);
            if (!run_split(&c, p, n, &cut, 1, mode)) {
                failures++;
                break;
            }
        }
        if (n <= 100000) {
            size_t *cuts = test_malloc((n ? n : 1) * sizeof(size_t));
            for (size_t k = 0; k + 1 < n; k++)
                cuts[k] = k + 1;
            failures += !run_split(&c, p, n, cuts, n ? n - 1 : 0, "byte at a time");
            test_free(cuts);
        }
        case_close(&c);
        free(names[i]);
    }
    free(names);
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
