/* Unit tests for src/rpc/jsonrpc: request encoding, reply decoding (byte-exact result spans,
 * errors, strict rejection of malformed bodies) and go-micro error detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/jsonrpc.h"
#include "util/alloc.h"
#include "util/error.h"

static void assert_encodes(const char *method, const char *params, uint64_t id, const char *want)
{
    struct mc_buf b;
    mc_buf_init(&b);
    mc_buf_append_str(&b, "prefix:"); /* encoding appends */
    mc_jsonrpc_encode_request(&b, method, params, strlen(params), id);
    assert_int_equal(b.len, strlen("prefix:") + strlen(want));
    assert_memory_equal(b.data + strlen("prefix:"), want, strlen(want));
    mc_buf_close(&b);
}

static void test_encode_request(void **state)
{
    (void)state;
    assert_encodes("Example.Call", "{\"name\": \"John\", \"n\": 12345678901234567890123}", 7,
                   "{\"method\":\"Example.Call\",\"params\":[{\"name\": \"John\", \"n\": "
                   "12345678901234567890123}],\"id\":7}\n");
    assert_encodes("Example.Call", "", 0,
                   "{\"method\":\"Example.Call\",\"params\":[{}],\"id\":0}\n");
    assert_encodes("A\"b\\c\nd\x01\t", "[1]", UINT64_MAX,
                   "{\"method\":\"A\\\"b\\\\c\\nd\\u0001\\t\",\"params\":[[1]],"
                   "\"id\":18446744073709551615}\n");
    assert_encodes("Caf\xc3\xa9.Call", "null", 1,
                   "{\"method\":\"Caf\xc3\xa9.Call\",\"params\":[null],\"id\":1}\n");
}

/* Decodes body and checks the result span equals want_result byte for byte. */
static void assert_result(const char *body, const char *want_result)
{
    struct mc_jsonrpc_reply r;
    assert_int_equal(mc_jsonrpc_decode_reply(body, strlen(body), &r), 0);
    assert_int_equal(r.result_len, strlen(want_result));
    assert_memory_equal(body + r.result_start, want_result, r.result_len);
    assert_null(r.error);
    assert_int_equal(r.result_null, 0);
    mc_jsonrpc_reply_close(&r);
}

static void test_result_passes_through(void **state)
{
    (void)state;
    assert_result("{\"id\":1,\"result\":{\"big\":12345678901234567890123,\"f\":1.0e400},"
                  "\"error\":null}",
                  "{\"big\":12345678901234567890123,\"f\":1.0e400}");
    /* Key order and spacing untouched, keys in any order around it. */
    assert_result("{\"error\":null, \"result\" :  { \"z\" : 1 ,\"a\":[ 2, -0.5E-3 ]\n} ,\"id\":2}",
                  "{ \"z\" : 1 ,\"a\":[ 2, -0.5E-3 ]\n}");
    assert_result("  {\"result\":12345678901234567890123}\r\n", "12345678901234567890123");
    assert_result("{\"result\":\"s\\\"t\\u00e9\",\"id\":3}", "\"s\\\"t\\u00e9\"");
    assert_result("{\"result\":{\"a\":{\"b\":[[{\"c\":[true,false,null]}]],\"d\":{}},\"e\":[]},"
                  "\"x\":{\"ignored\":[1]}}",
                  "{\"a\":{\"b\":[[{\"c\":[true,false,null]}]],\"d\":{}},\"e\":[]}");
    assert_result("{\"result\":0}", "0");
    assert_result("{\"result\":false}", "false");
    /* A repeated key counts its last value, as Go's decoder does; keys match any case. */
    assert_result("{\"result\":1,\"Result\":[2]}", "[2]");
}

static void test_result_null_or_absent(void **state)
{
    (void)state;
    struct mc_jsonrpc_reply r;
    const char *body = "{\"id\":9,\"result\":null,\"error\":null}";
    assert_int_equal(mc_jsonrpc_decode_reply(body, strlen(body), &r), 0);
    assert_int_equal(r.result_len, 0);
    assert_int_equal(r.result_null, 1);
    assert_int_equal(r.has_id, 1);
    assert_int_equal(r.id, 9);
    assert_null(r.error);
    mc_jsonrpc_reply_close(&r);

    body = "{\"id\":18446744073709551615,\"error\":null}";
    assert_int_equal(mc_jsonrpc_decode_reply(body, strlen(body), &r), 0);
    assert_int_equal(r.result_len, 0);
    assert_int_equal(r.result_null, 0);
    assert_true(r.id == UINT64_MAX);
    mc_jsonrpc_reply_close(&r);

    body = "{}";
    assert_int_equal(mc_jsonrpc_decode_reply(body, strlen(body), &r), 0);
    assert_int_equal(r.result_len, 0);
    assert_int_equal(r.has_id, 0);
    assert_null(r.error);
    mc_jsonrpc_reply_close(&r);
    mc_jsonrpc_reply_close(&r); /* twice is fine */
}

static void assert_error(const char *body, const char *want_error, size_t want_len)
{
    struct mc_jsonrpc_reply r;
    assert_int_equal(mc_jsonrpc_decode_reply(body, strlen(body), &r), 0);
    assert_non_null(r.error);
    assert_memory_equal(r.error, want_error, want_len + 1);
    /* the length is carried: a \u0000 inside does not end the string */
    assert_int_equal(r.error_len, want_len);
    mc_jsonrpc_reply_close(&r);
    assert_null(r.error);
}

static void test_error_strings(void **state)
{
    (void)state;
    assert_error("{\"id\":1,\"result\":null,\"error\":\"boom\"}", "boom", 4);
    assert_error("{\"error\":\"\"}", "", 0);
    assert_error("{\"error\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}", "a\"b\\c/d\b\f\n\r\t", 12);
    assert_error("{\"error\":\"caf\\u00e9 \\u20ac \\ud83d\\ude00 raw\xc3\xa9\"}",
                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 raw\xc3\xa9", 20);
    /* Lone surrogates become U+FFFD, as in Go. */
    assert_error("{\"error\":\"x\\ud800y\\udc00\"}", "x\xef\xbf\xbdy\xef\xbf\xbd", 8);
    assert_error("{\"error\":\"\\ud800\\u0041\"}",
                 "\xef\xbf\xbd"
                 "A",
                 4);
    assert_error("{\"error\":\"nul\\u0000in\"}", "nul\0in", 6);
    /* Last one wins, and an earlier string is not leaked. */
    assert_error("{\"error\":\"first\",\"error\":\"second\"}", "second", 6);
    struct mc_jsonrpc_reply r;
    const char *body = "{\"error\":\"first\",\"ERROR\":null}";
    assert_int_equal(mc_jsonrpc_decode_reply(body, strlen(body), &r), 0);
    assert_null(r.error);
    mc_jsonrpc_reply_close(&r);
}

static void test_micro_error(void **state)
{
    (void)state;
    const char *err = "{\"id\":\"go.micro.srv.example\",\"code\":408,\"detail\":\"too slow\","
                      "\"status\":\"Request Timeout\"}";
    struct mc_jsonrpc_reply r;
    struct mc_buf body;
    mc_buf_init(&body);
    /* As it arrives: a JSON string holding the error JSON. */
    mc_buf_append_str(&body, "{\"id\":1,\"result\":null,\"error\":\"");
    for (const char *p = err; *p; p++) {
        if (*p == '"')
            mc_buf_append_str(&body, "\\");
        mc_buf_append(&body, p, 1);
    }
    mc_buf_append_str(&body, "\"}");
    assert_int_equal(mc_jsonrpc_decode_reply(body.data, body.len, &r), 0);
    assert_string_equal(r.error, err);
    int code = 0;
    assert_int_equal(mc_jsonrpc_micro_error(r.error, strlen(r.error), &code), 1);
    assert_int_equal(code, 408);
    mc_jsonrpc_reply_close(&r);
    mc_buf_close(&body);

    static const struct {
        const char *text;
        int status; /* 0: not go-micro error JSON */
    } rows[] = {
        {"{\"code\":404}", 404},
        {" {\"detail\":\"x\",\"code\":500,\"extra\":[1]} ", 500},
        {"{\"id\":null,\"code\":599,\"detail\":null,\"status\":null}", 599},
        {"{\"Code\":400}", 400},
        {"{\"code\":200}", 200},
        {"{\"code\":206}", 206},
        /* codes no error JSON can be answered with (no status, a status without a body, or
         * one announcing another response) are 500: never invalid HTTP framing */
        {"{\"code\":101}", 500},
        {"{\"code\":100}", 500},
        {"{\"code\":199}", 500},
        {"{\"code\":204}", 500},
        {"{\"code\":205}", 500},
        {"{\"code\":304}", 500},
        {"{\"code\":99}", 500},
        {"{\"code\":600}", 500},
        {"{\"code\":0}", 500},
        {"{\"code\":4294967696}", 500},
        {"boom", 0},
        {"", 0},
        {"{}", 0},
        {"{\"id\":\"x\",\"detail\":\"no code\"}", 0},
        {"{\"code\":\"404\"}", 0},
        {"{\"code\":404.0}", 0},
        {"{\"code\":-404}", 0},
        {"{\"code\":99999999999999999999999}", 0},
        {"{\"code\":404,\"detail\":5}", 0},
        {"{\"code\":404,\"status\":{}}", 0},
        {"{\"code\":404", 0},
        {"{\"code\":404} x", 0},
        {"[{\"code\":404}]", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        code = -1;
        int is = mc_jsonrpc_micro_error(rows[i].text, strlen(rows[i].text), &code);
        assert_int_equal(is, rows[i].status != 0);
        assert_int_equal(code, rows[i].status ? rows[i].status : -1);
    }
}

static void test_error_status(void **state)
{
    (void)state;
    for (uint64_t c = 0; c < 1000; c++) {
        int st = mc_jsonrpc_error_status(c);
        int usable = c >= 200 && c <= 599 && c != 204 && c != 205 && c != 304;
        assert_int_equal(st, usable ? (int)c : 500);
    }
    assert_int_equal(mc_jsonrpc_error_status(UINT64_MAX), 500);
    assert_int_equal(mc_jsonrpc_error_status(4294967296ull + 404), 500);
}

static const char *const malformed[] = {
    "",
    "   ",
    "null",
    "[]",
    "\"result\"",
    "42",
    "{\"result\":1}{}",
    "{\"result\":1} x",
    "{\"result\":1},",
    "{\"result\":1",
    "{\"result\":",
    "{\"result\"",
    "{\"res",
    "{",
    "}",
    "{\"result\":1,}",
    "{,\"result\":1}",
    "{\"result\" 1}",
    "{result:1}",
    "{'result':1}",
    "{\"result\":[1,2,]}",
    "{\"result\":[1 2]}",
    "{\"result\":{\"a\"}}",
    "{\"result\":{\"a\":1,,\"b\":2}}",
    "{\"result\":01}",
    "{\"result\":1.}",
    "{\"result\":.5}",
    "{\"result\":-}",
    "{\"result\":+1}",
    "{\"result\":1e}",
    "{\"result\":1e+}",
    "{\"result\":0x10}",
    "{\"result\":NaN}",
    "{\"result\":tru}",
    "{\"result\":True}",
    "{\"result\":nul}",
    "{\"result\":\"bad \\x escape\"}",
    "{\"result\":\"bad \\u12G4\"}",
    "{\"result\":\"short \\u12\"}",
    "{\"result\":\"tab\tinside\"}",
    "{\"result\":\"nl\ninside\"}",
    "{\"result\":\"unterminated}",
    "{\"error\":\"bad \\q\"}",
    "{\"error\":\"\\ud800\\u12\"}",
    "{\"error\":404}",
    "{\"error\":{\"code\":404}}",
    "{\"error\":false}",
    "{\"id\":\"1\"}",
    "{\"id\":-1}",
    "{\"id\":1.5}",
    "{\"id\":1e3}",
    "{\"id\":18446744073709551616}",
    "{\"id\":[1]}",
};

static void test_malformed_rejected(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        struct mc_jsonrpc_reply r;
        int rc = mc_jsonrpc_decode_reply(malformed[i], strlen(malformed[i]), &r);
        if (rc != MC_EPROTO)
            fail_msg("accepted malformed body #%zu: %s", i, malformed[i]);
        assert_null(r.error);
        mc_jsonrpc_reply_close(&r);
    }
}

static void test_every_truncation_rejected(void **state)
{
    (void)state;
    const char *body = "{\"id\":12,\"result\":{\"a\":[1,-2.5e+3,\"x\\u00e9\\n\",true,null,{}]},"
                       "\"error\":\"e\\\"r\"}";
    size_t len = strlen(body);
    struct mc_jsonrpc_reply r;
    assert_int_equal(mc_jsonrpc_decode_reply(body, len, &r), 0);
    assert_string_equal(r.error, "e\"r");
    mc_jsonrpc_reply_close(&r);
    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes, so any read past the end is a sanitizer report. */
        char *part = mc_malloc(n ? n : 1);
        memcpy(part, body, n);
        assert_int_equal(mc_jsonrpc_decode_reply(part, n, &r), MC_EPROTO);
        mc_free(part);
    }
}

static void test_depth_limit(void **state)
{
    (void)state;
    /* The top object is level 1, so a result nested to level 64 is fine and 65 is not. */
    for (int depth = MC_JSONRPC_MAX_DEPTH; depth <= MC_JSONRPC_MAX_DEPTH + 1; depth++) {
        struct mc_buf b;
        mc_buf_init(&b);
        mc_buf_append_str(&b, "{\"result\":");
        for (int i = 1; i < depth; i++)
            mc_buf_append_str(&b, i % 2 ? "[" : "{\"k\":");
        mc_buf_append_str(&b, "0");
        for (int i = depth - 1; i >= 1; i--)
            mc_buf_append_str(&b, i % 2 ? "]" : "}");
        mc_buf_append_str(&b, "}");
        struct mc_jsonrpc_reply r;
        int rc = mc_jsonrpc_decode_reply(b.data, b.len, &r);
        assert_int_equal(rc, depth <= MC_JSONRPC_MAX_DEPTH ? 0 : MC_EPROTO);
        mc_jsonrpc_reply_close(&r);
        mc_buf_close(&b);
    }
    /* Deep nesting far past the limit is refused without exhausting the stack. */
    struct mc_buf b;
    mc_buf_init(&b);
    mc_buf_append_str(&b, "{\"result\":");
    for (int i = 0; i < 100000; i++)
        mc_buf_append_str(&b, "[");
    struct mc_jsonrpc_reply r;
    assert_int_equal(mc_jsonrpc_decode_reply(b.data, b.len, &r), MC_EPROTO);
    mc_buf_close(&b);
}

static void test_members(void **state)
{
    (void)state;
    const char *body =
        "{\"Service\":\"a\\u00e9\", \"REQUEST\" : {\"n\": 12345678901234567890123, \"s\":\"}\"} }";
    struct mc_json_member m[3] = {{.key = "service"}, {.key = "request"}, {.key = "address"}};
    assert_int_equal(mc_json_members(body, strlen(body), m, 3), 0);
    assert_true(m[0].found && m[1].found && !m[2].found);
    const char *want = "{\"n\": 12345678901234567890123, \"s\":\"}\"}";
    assert_int_equal(m[1].len, strlen(want));
    assert_memory_equal(body + m[1].start, want, m[1].len); /* byte for byte */
    char *service = mc_json_string_decode(body + m[0].start, m[0].len);
    assert_string_equal(service, "a\xc3\xa9");
    mc_free(service);
    assert_null(mc_json_string_decode(body + m[1].start, m[1].len)); /* not a string */
    assert_null(mc_json_string_decode("\"a\\u0000b\"", 10));         /* a NUL inside */
    const char *twice = "{\"request\":1,\"Request\":[2]}";
    struct mc_json_member r = {.key = "request"};
    assert_int_equal(mc_json_members(twice, strlen(twice), &r, 1), 0);
    assert_memory_equal(twice + r.start, "[2]", r.len); /* the last one wins */
    const char *bad[] = {"{\"request\":1", "[1]", "{\"request\":1} x", "{\"request\":tru}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mc_json_members(bad[i], strlen(bad[i]), &r, 1), MC_EPROTO);
}

/* Decodes text and asks whether it answers call id. */
static int answers(const char *text, uint64_t id)
{
    struct mc_jsonrpc_reply r;
    const char *why = NULL;
    assert_int_equal(mc_jsonrpc_decode_reply(text, strlen(text), &r), 0);
    int ok = mc_jsonrpc_reply_answers(&r, id, &why);
    assert_true(ok || (why && *why));
    mc_jsonrpc_reply_close(&r);
    return ok;
}

static void test_reply_must_answer_the_call(void **state)
{
    (void)state;
    assert_true(answers("{\"id\":7,\"result\":{},\"error\":null}", 7));
    assert_true(answers("{\"result\":null}", 7));
    assert_true(answers("{\"error\":\"boom\"}", 7));
    assert_true(answers("{\"id\":null,\"error\":null}", 7));
    assert_false(answers("{\"foo\":1}", 7));
    assert_false(answers("{}", 7));
    assert_false(answers("{\"id\":7}", 7));
    assert_false(answers("{\"id\":8,\"result\":1}", 7));
}

/* A string literal decoded (escapes, UTF-8) or refused (a NUL, a non-string, trailing bytes);
 * keys match case-insensitively only on letters. */
static void test_string_decode_and_keys(void **state)
{
    (void)state;
    const char *t = "\"a\\u00e9\\n\\\"\"";
    char *heap = mc_json_string_decode(t, strlen(t));
    assert_string_equal(heap, "a\xc3\xa9\n\"");
    mc_free(heap);
    assert_null(mc_json_string_decode("\"a\\u0000\"", 10));
    assert_null(mc_json_string_decode("12", 2));
    assert_null(mc_json_string_decode("\"a\" ", 4));
    assert_null(mc_json_string_decode("\"a", 2));
    /* "sErViCe" matches; "SE@VICE" (0x40 | 0x20 is '`', not 'r') and "service1" do not */
    const char *body = "{\"SE@VICE\":\"x\",\"sErViCe\":\"y\",\"service1\":\"z\"}";
    struct mc_json_member m = {.key = "service"};
    assert_int_equal(mc_json_members(body, strlen(body), &m, 1), 0);
    assert_true(m.found);
    assert_memory_equal(body + m.start, "\"y\"", m.len);

    /* decoded during the scan: a fitting string is, a long one, one holding a NUL, a
     * non-string and a string replaced by a later non-string are not */
    char b[4][8];
    struct mc_json_member d[4] = {{.key = "a", .buf = b[0], .cap = 8},
                                  {.key = "b", .buf = b[1], .cap = 8},
                                  {.key = "c", .buf = b[2], .cap = 8},
                                  {.key = "e", .buf = b[3], .cap = 8}};
    const char *doc = "{\"a\":\"x\\u00e9\",\"b\":\"12345678\",\"c\":\"n\\u0000\",\"e\":\"s\","
                      "\"e\":[1]}";
    assert_int_equal(mc_json_members(doc, strlen(doc), d, 4), 0);
    assert_true(d[0].found && d[0].decoded);
    assert_string_equal(b[0], "x\xc3\xa9");
    assert_true(d[1].found && !d[1].decoded); /* 8 bytes do not fit 8 with the NUL */
    char *longer = mc_json_string_decode(doc + d[1].start, d[1].len);
    assert_string_equal(longer, "12345678");
    mc_free(longer);
    assert_true(d[2].found && !d[2].decoded);
    assert_null(mc_json_string_decode(doc + d[2].start, d[2].len));
    assert_true(d[3].found && !d[3].decoded);
    assert_memory_equal(doc + d[3].start, "[1]", 3);
    /* a key at the very end of a truncated body: refused, nothing read past it */
    assert_int_equal(mc_json_members("{\"a\":", 5, d, 4), MC_EPROTO);
}

/* The id's digits at every length (two per division), and a method that needs the escaper
 * only from its middle on, or only at its end (the plain part is copied as it is). */
static void test_encode_ids_and_methods(void **state)
{
    (void)state;
    const uint64_t ids[] = {
        0, 9, 10, 99, 100, 101, 999, 1000, 12345, 4294967296u, 10000000000000000000u, UINT64_MAX};
    const char *want[] = {"0",
                          "9",
                          "10",
                          "99",
                          "100",
                          "101",
                          "999",
                          "1000",
                          "12345",
                          "4294967296",
                          "10000000000000000000",
                          "18446744073709551615"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char w[128];
        snprintf(w, sizeof w, "{\"method\":\"M\",\"params\":[{}],\"id\":%s}\n", want[i]);
        assert_encodes("M", "", ids[i], w);
    }
    assert_encodes("Svc.Call\"x", "1", 2,
                   "{\"method\":\"Svc.Call\\\"x\",\"params\":[1],\"id\":2}\n");
    assert_encodes("Svc.Call.Longer.Than.Sixteen\x7f", "1", 2,
                   "{\"method\":\"Svc.Call.Longer.Than.Sixteen\x7f\",\"params\":[1],\"id\":2}\n");
    assert_encodes("A\xff", "1", 3, "{\"method\":\"A\\ufffd\",\"params\":[1],\"id\":3}\n");
    /* a growable buffer that starts empty grows as needed */
    struct mc_buf b;
    mc_buf_init(&b);
    char method[300];
    memset(method, 'm', sizeof method - 1);
    method[sizeof method - 1] = '\0';
    method[150] = '\n';
    mc_jsonrpc_encode_request(&b, method, "", 0, 5);
    assert_int_equal(b.len, 11 + 298 + 2 + 12 + 2 + 7 + 1 + 2);
    assert_int_equal(b.data[b.len], '\0');
    mc_buf_close(&b);
}

/* Strings of every length up to 40 with one special byte at every position: the sixteen- and
 * eight-byte scans must find the same first byte a byte-by-byte scan does. */
static void test_string_runs_at_every_offset(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 40; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (int kind = 0; kind < 4; kind++) {
                char text[64], want[64];
                size_t n = 0, w = 0;
                text[n++] = '"';
                for (size_t i = 0; i < len; i++) {
                    if (i == at && kind == 0) { /* an escaped quote */
                        text[n++] = '\\';
                        text[n++] = '"';
                        want[w++] = '"';
                    } else if (i == at && kind == 1) { /* a raw DEL: plain text */
                        text[n++] = 0x7f;
                        want[w++] = 0x7f;
                    } else if (i == at && kind == 2) { /* a raw control: refused */
                        text[n++] = 0x1f;
                    } else {
                        char c = (char)('a' + i % 26);
                        text[n++] = i % 7 == 3 ? (char)0xc3 : c; /* bytes >= 0x80 are plain */
                        want[w++] = text[n - 1];
                    }
                }
                text[n++] = '"';
                char *d = mc_json_string_decode(text, n);
                if (kind == 2 && at < len) {
                    assert_null(d);
                } else {
                    assert_non_null(d);
                    assert_int_equal(strlen(d), w);
                    assert_memory_equal(d, want, w);
                    mc_free(d);
                }
                (void)kind;
            }
        }
    }
}

/* The decoded names say whether they hold a control character (only an escape or a raw DEL
 * can put one there) and give their length; keys match by length, of any length up to 16,
 * escaped or not, and nothing longer matches. */
static void test_members_names_and_keys(void **state)
{
    (void)state;
    char b[3][32];
    struct mc_json_member m[3] = {{.key = "service", .buf = b[0], .cap = 32},
                                  {.key = "method", .key_len = 6, .buf = b[1], .cap = 32},
                                  {.key = "address", .buf = b[2], .cap = 32}};
    const char *plain = "{\"service\":\"go.micro.srv.example\",\"METHOD\":\"Svc.Call\"}";
    assert_int_equal(mc_json_members(plain, strlen(plain), m, 3), 0);
    assert_true(m[0].decoded && !m[0].ctl && m[0].decoded_len == 20);
    assert_string_equal(b[0], "go.micro.srv.example");
    assert_true(m[1].decoded && !m[1].ctl && m[1].decoded_len == 8);
    assert_false(m[2].found);
    assert_int_equal(m[0].key_len, 7); /* measured once */

    const char *ctl[] = {"\"a\\nb\"", "\"a\\u0001\"", "\"a\\u007f\"",
                         "\"a\x7f\"", "\"\\t\"",      "\"x\\u001F\""};
    for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
        char doc[64];
        snprintf(doc, sizeof doc, "{\"address\":%s}", ctl[i]);
        assert_int_equal(mc_json_members(doc, strlen(doc), m, 3), 0);
        assert_true(m[2].found && m[2].decoded);
        assert_true(m[2].ctl);
        assert_int_equal(m[2].decoded_len, strlen(b[2]));
    }
    const char *clean[] = {"\"a\\u00e9\"", "\"a\\/b\"", "\"\\u0020\"", "\"\\ud83d\\ude00\""};
    for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++) {
        char doc[64];
        snprintf(doc, sizeof doc, "{\"address\":%s}", clean[i]);
        assert_int_equal(mc_json_members(doc, strlen(doc), m, 3), 0);
        assert_true(m[2].found && m[2].decoded && !m[2].ctl);
        assert_int_equal(m[2].decoded_len, strlen(b[2]));
    }

    struct mc_json_member k[4] = {
        {.key = "a"}, {.key = "abcdefgh"}, {.key = "abcdefghi"}, {.key = "abcdefghijklmnop"}};
    const char *keys = "{\"A\":1,\"abcdefgH\":2,\"ABCDEFGHI\":3,\"abcdefghijklmnoP\":4,"
                       "\"abcdefghijklmnopq\":5,\"abcdefghijklmnoq\":6,\"abcdefgi\":7,\"b\":8}";
    assert_int_equal(mc_json_members(keys, strlen(keys), k, 4), 0);
    const char *want[] = {"1", "2", "3", "4"};
    for (int i = 0; i < 4; i++) {
        assert_true(k[i].found);
        assert_memory_equal(keys + k[i].start, want[i], 1);
    }
    /* an escaped key still matches; one too long for the key buffer matches nothing */
    struct mc_json_member e = {.key = "service"};
    const char *esc = "{\"\\u0073ervice\":1,\"\\u0073erviceserviceservice\":2}";
    assert_int_equal(mc_json_members(esc, strlen(esc), &e, 1), 0);
    assert_true(e.found);
    assert_memory_equal(esc + e.start, "1", 1);
    /* a name too long for its buffer is found but not decoded */
    char small[4];
    struct mc_json_member s = {.key = "service", .buf = small, .cap = sizeof small};
    const char *longer = "{\"service\":\"abcd\"}";
    assert_int_equal(mc_json_members(longer, strlen(longer), &s, 1), 0);
    assert_true(s.found && !s.decoded);
    const char *fits = "{\"service\":\"abc\"}";
    assert_int_equal(mc_json_members(fits, strlen(fits), &s, 1), 0);
    assert_true(s.found && s.decoded);
    assert_string_equal(small, "abc");
}

/* The reply's id: an unsigned integer of up to 20 digits that fits, nothing else. */
static void test_reply_ids(void **state)
{
    (void)state;
    struct {
        const char *id;
        int ok;
        uint64_t v;
    } cases[] = {{"0", 1, 0},
                 {"7", 1, 7},
                 {"1234567890123456789", 1, 1234567890123456789u},
                 {"18446744073709551615", 1, UINT64_MAX},
                 {"18446744073709551616", 0, 0},
                 {"99999999999999999999", 0, 0},
                 {"100000000000000000000", 0, 0},
                 {"01", 0, 0},
                 {"00", 0, 0},
                 {"1.0", 0, 0},
                 {"1e2", 0, 0},
                 {"-1", 0, 0},
                 {"\"1\"", 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"result\":1,\"id\":%s}", cases[i].id);
        struct mc_jsonrpc_reply r;
        int rc = mc_jsonrpc_decode_reply(body, strlen(body), &r);
        assert_int_equal(rc, cases[i].ok ? 0 : MC_EPROTO);
        if (cases[i].ok) {
            assert_true(r.has_id);
            assert_true(r.id == cases[i].v);
        }
        mc_jsonrpc_reply_close(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_request),
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_result_passes_through),
        cmocka_unit_test(test_result_null_or_absent),
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_micro_error),
        cmocka_unit_test(test_error_status),
        cmocka_unit_test(test_malformed_rejected),
        cmocka_unit_test(test_every_truncation_rejected),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_string_decode_and_keys),
        cmocka_unit_test(test_reply_must_answer_the_call),
        cmocka_unit_test(test_encode_ids_and_methods),
        cmocka_unit_test(test_string_runs_at_every_offset),
        cmocka_unit_test(test_members_names_and_keys),
        cmocka_unit_test(test_reply_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
