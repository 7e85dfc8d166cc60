/* go-micro's JSON-RPC over HTTP codec (SPEC 4): encodes a call's request body, and decodes a
 * reply by locating the "result" value's bytes without re-serialising them, so big integers,
 * key order and spacing reach the caller exactly as the service wrote them. I/O-free. */
#ifndef MC_RPC_JSONRPC_H
#define MC_RPC_JSONRPC_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define MC_JSONRPC_MAX_DEPTH 64 /* nesting of arrays/objects in a reply, the top object is 1 */

/* A decoded reply. Spans point into the body given to mc_jsonrpc_decode_reply. */
struct mc_jsonrpc_reply {
    size_t result_start; /* offset of the "result" value in the body */
    size_t result_len;   /* 0 when "result" is absent or null: the caller answers {} */
    int result_null;     /* 1 when "result" was present and null */
    int has_result;      /* 1 when "result" was present (null included) */
    int has_error;       /* 1 when "error" was present (null included) */
    char *error;         /* decoded "error" string (owned), NULL when absent or null; an empty
                            string is still an error (go-micro reports "unspecified error") */
    size_t error_len;    /* its length: a \u0000 in it is a NUL inside, not its end */
    uint64_t id;         /* the reply's id, valid when has_id */
    int has_id;          /* 0 when "id" is absent or null */
};

/* What a reply must be to answer the call with id: a JSON-RPC envelope that names its outcome
 * ("result" or "error" present, even as null) and, when it carries an id, the call's own. Any
 * other JSON object (a REST app's {"foo":1}) is not an answer: the caller says 502 instead of
 * passing on an empty result. Returns 1 when the reply answers id, else 0 with a reason for
 * the 502 detail (a static string). */
int mc_jsonrpc_reply_answers(const struct mc_jsonrpc_reply *reply, uint64_t id, const char **why);

/* Appends to out the request body {"method":"<method, JSON-escaped>","params":[<params>],
 * "id":<id>} and a newline. params_json[0..params_len) is copied verbatim and must already be
 * valid JSON (the caller validated it); params_len 0 sends {}, go-micro's empty request. */
void mc_jsonrpc_encode_request(struct mc_buf *out, const char *method, const char *params_json,
                               size_t params_len, uint64_t id);

/* Decodes the reply body[0..len) into *out (fully overwritten; call mc_jsonrpc_reply_close
 * afterwards whatever the result). The whole body must be exactly one well-formed JSON object
 * (RFC 8259, surrounding whitespace allowed, nesting up to MC_JSONRPC_MAX_DEPTH) whose keys come
 * in any order; "error" must be null or a string, "id" null or an unsigned integer; other keys
 * are ignored, and a repeated key counts its last value (as Go's decoder does). Returns 0, or
 * MC_EPROTO for anything else (the caller answers 502). */
int mc_jsonrpc_decode_reply(const char *body, size_t len, struct mc_jsonrpc_reply *out);
/* A top-level member of a JSON object looked up by mc_json_members: key in, the rest out. */
struct mc_json_member {
    const char *key; /* matched case-insensitively, as Go's decoder does; 16 bytes at most,
                        lowercase ASCII letters */
    size_t key_len;  /* strlen(key), or 0: mc_json_members measures it */
    int found;       /* a repeated key counts its last value */
    size_t start;    /* the value's bytes in the body, untouched (numbers, spacing, order) */
    size_t len;
    /* Optional (buf NULL: none): a string value is decoded into buf[0..cap) during the same
     * scan, NUL-terminated; decoded says it fit and holds no NUL (otherwise decode it from
     * start/len with mc_json_string_decode, which tells a NUL from a long string). */
    char *buf;
    size_t cap;
    int decoded;
    size_t decoded_len; /* when decoded: strlen(buf) */
    int ctl; /* when decoded: buf holds a control character (below 0x20, or DEL), which only
                an escape or a raw DEL can produce: the caller need not look for one */
};

/* Scans body[0..len) once, strictly (it must be exactly one well-formed JSON object), filling
 * members[0..count) so that values can be read, or passed on byte for byte, without building a
 * tree. Returns 0, or MC_EPROTO for anything but one JSON object. */
int mc_json_members(const char *body, size_t len, struct mc_json_member *members, size_t count);
/* Decodes the JSON string literal text[0..len) (quotes included) into a new NUL-terminated
 * string the caller mc_free()s; NULL when it is not exactly one string or holds a NUL. */
char *mc_json_string_decode(const char *text, size_t len);
/* Frees what a decoded reply owns (its error string) and clears it; safe to call twice. */
void mc_jsonrpc_reply_close(struct mc_jsonrpc_reply *reply);

/* Decides whether a service's error string err[0..len) is go-micro error JSON,
 * {"id":"…","code":N,"detail":"…","status":"…"}: a JSON object whose "code" is an unsigned
 * integer and whose "id", "detail" and "status", when present, are strings. Returns 1 and sets
 * *status to mc_jsonrpc_error_status(code) if so (the caller then answers err itself with that
 * status), else 0 (the caller answers 500 "error during request: <err>"). */
int mc_jsonrpc_micro_error(const char *err, size_t len, int *status);

/* The HTTP status that answers a service's error code: the code itself when it is a status
 * that may carry the error JSON as its body (200..599 except 204, 205 and 304), else 500. The
 * one rule for every status a node names, so none can produce invalid HTTP framing. */
int mc_jsonrpc_error_status(uint64_t code);

#endif
