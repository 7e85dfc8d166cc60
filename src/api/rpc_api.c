/* /rpc and --handler=rpc path calls (SPEC 3.2, 3.3): decode the caller's input, then hand
 * the call to the caller module and relay its answer. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "http/url.h"
#include "rpc/caller.h"
#include "rpc/jsonrpc.h"
#include "rpc/route.h"
#include "util/alloc.h"
#include "util/error.h"

#define RPC_ID "go.micro.rpc"

/* The call's ctx is the request; the request's handler_data is the call, once started. */
static void rpc_done(void *ctx, const struct mc_call_answer *a)
{
    struct mc_http_request *req = ctx;
    req->on_abort = NULL;
    req->handler_data = NULL;
    mc_http_request_set_upstream(req, a->node);
    mc_http_respond(req, a->status, "application/json", NULL, 0, a->body, a->len);
}

static void rpc_abort(struct mc_http_request *req)
{
    struct mc_call *call = req->handler_data;
    req->handler_data = NULL;
    if (call)
        mc_call_cancel(call);
}

/* Whether s holds a control character (below 0x20, or DEL). None belongs in a service name,
 * method or address, and these values travel into the node's request head (X-Micro-Service,
 * X-Micro-Method) where a CR or LF would end a line and start a request of the caller's
 * choosing. */
static int has_control_char(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

/* Every call, /rpc or path, starts here: the one check of the names it sends on. clean has
 * bit i set when name i (service, method, address) is known to hold no control character
 * (the JSON decoder says so as it decodes): only the others are looked at. */
static void start_call(struct mc_http_request *req, struct mc_api *api,
                       const struct mc_call_request *creq, unsigned clean)
{
    const char *const fields[] = {"service", "method", "address"};
    const char *const values[] = {creq->service, creq->method, creq->address};
    unsigned present = (values[0] ? 1u : 0) | (values[1] ? 2u : 0) | (values[2] ? 4u : 0);
    for (int i = 0; (clean & present) != present && i < 3; i++) {
        if (values[i] && !(clean & (1u << i)) && has_control_char(values[i])) {
            char detail[64];
            snprintf(detail, sizeof detail, "invalid %s: contains a control character", fields[i]);
            mc_http_respond_error(req, 400, RPC_ID, detail);
            return;
        }
    }
    req->handler_data = NULL;
    req->on_abort = rpc_abort;
    /* NULL means rpc_done already ran: an answer known at once (req may be finished, even
     * reused by the next request of its connection: not touched then). */
    struct mc_call *call = mc_call_start(api->caller, creq, rpc_done, req);
    if (call)
        req->handler_data = call;
}

/* Validating only: jansson refuses integers beyond 64 bits ("too big integer"), yet go-micro
 * services use uint64 ids and bigger numbers that the sidecar merely passes on. Decoding
 * integers as reals accepts them, and nothing validated here is ever re-encoded: the text goes
 * to the node verbatim. */
#define LENIENT_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

/* "request" given as a JSON string: its text is the request (validated, passed verbatim). */
static int request_from_string(struct mc_http_request *req, const char *text, size_t tl, char **out,
                               size_t *len)
{
    *out = NULL;
    *len = 0;
    if (tl == 0)
        return 0;
    json_error_t jerr;
    json_t *parsed = json_loadb(text, tl, LENIENT_FLAGS, &jerr);
    if (!parsed) {
        char detail[300];
        snprintf(detail, sizeof detail, "error decoding request string: %s", jerr.text);
        mc_http_respond_error(req, 400, RPC_ID, detail);
        return -1;
    }
    json_decref(parsed);
    *out = mc_strndup(text, tl);
    *len = tl;
    return 0;
}

/* The request of a JSON body: an object (or any non-string value) passed on byte for byte
 * (*view points into body, nothing is copied), a string holding JSON text (*out, a new
 * string), or absent/null for {}. */
static int request_from_member(struct mc_http_request *req, const char *body,
                               const struct mc_json_member *m, char **out, const char **view,
                               size_t *len)
{
    *out = NULL;
    *view = NULL;
    *len = 0;
    if (!m->found || body[m->start] == 'n')
        return 0;
    if (body[m->start] != '"') {
        *view = body + m->start;
        *len = m->len;
        return 0;
    }
    char *text = mc_json_string_decode(body + m->start, m->len);
    if (!text) {
        mc_http_respond_error(req, 400, RPC_ID, "error decoding request string: NUL in string");
        return -1;
    }
    int rc = request_from_string(req, text, strlen(text), out, len);
    mc_free(text);
    return rc;
}

/* The 400 for a body the strict scanner refused: jansson's words for what is wrong. */
static void respond_bad_body(struct mc_http_request *req, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *v = json_loadb(text, len, LENIENT_FLAGS, &jerr);
    if (v && !json_is_object(v)) {
        mc_http_respond_error(req, 400, RPC_ID, "request body must be a JSON object");
    } else {
        char detail[256];
        if (v)
            snprintf(detail, sizeof detail, "invalid JSON");
        else
            snprintf(detail, sizeof detail, "invalid JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
        mc_http_respond_error(req, 400, RPC_ID, detail);
    }
    json_decref(v);
}

/* The 400 for a field whose decoded value holds a NUL (JSON \u0000 or form %00). */
static void respond_nul(struct mc_http_request *req, const char *field)
{
    char detail[64];
    snprintf(detail, sizeof detail, "invalid %s: contains a NUL", field);
    mc_http_respond_error(req, 400, RPC_ID, detail);
}

/* A member that must be a string: its value as mc_json_members decoded it into m->buf (no
 * allocation for the usual names; *len its length, and bit of *clean set when it holds no
 * control character), else (too long for it) a new string in *heap (*len 0: unknown); NULL
 * when absent, not a string or holding a NUL. */
static const char *string_member(const char *body, const struct mc_json_member *m, char **heap,
                                 size_t *len, unsigned *clean, unsigned bit)
{
    *len = 0;
    if (!m->found)
        return NULL;
    if (m->decoded) {
        *len = m->decoded_len;
        if (!m->ctl)
            *clean |= bit;
        return m->buf;
    }
    return *heap = mc_json_string_decode(body + m->start, m->len);
}

/* Whether the Content-Type value ct is application/json, but for ASCII case, before any
 * parameters (";...", spaces allowed before them). Word compares: OR-ing 0x20 folds exactly
 * the letters onto the literal's; its one other byte, '/', is compared exactly. */
static int is_json_content(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strlen(ct);
    if (n < 16 || ct[11] != '/')
        return 0;
    uint64_t a, b;
    memcpy(&a, ct, 8);
    memcpy(&b, ct + 8, 8);
    uint64_t la, lb;
    memcpy(&la, "applicat", 8);
    memcpy(&lb, "ion/json", 8);
    const uint64_t fold = 0x2020202020202020u;
    if ((a | fold) != la || (b | fold) != (lb | fold))
        return 0;
    const char *p = ct + 16;
    while (*p == ' ')
        p++;
    return *p == '\0' || *p == ';';
}

/* The 400 for a call without a service. The commonest cause is a JSON body posted without
 * a JSON Content-Type (curl -d sends a form type), which then reads as form fields: say so. */
static void respond_no_service(struct mc_http_request *req)
{
    const char *ct = req->content_type;
    size_t i = 0;
    while (i < req->body.len && (req->body.data[i] == ' ' || req->body.data[i] == '\t' ||
                                 req->body.data[i] == '\r' || req->body.data[i] == '\n'))
        i++;
    if (is_json_content(ct) || i == req->body.len || req->body.data[i] != '{') {
        mc_http_respond_error(req, 400, RPC_ID, "invalid service");
        return;
    }
    /* The error JSON escapes whatever the header holds; %.64s keeps the line short. */
    char detail[256];
    snprintf(detail, sizeof detail,
             "invalid service: the body looks like JSON but its Content-Type is %s%.64s%s, so it "
             "was read as form fields; send Content-Type: application/json",
             ct ? "\"" : "", ct ? ct : "missing", ct ? "\"" : "");
    mc_http_respond_error(req, 400, RPC_ID, detail);
}

void mc_api_rpc(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    const char *service = NULL, *method = NULL, *address = NULL;
    char *owned[3] = {NULL, NULL, NULL}; /* service, method, address when on the heap */
    char name_buf[3][128];               /* the decoded names that fit, on the stack */
    char *params = NULL;
    const char *params_view = NULL; /* the request's bytes in the body, when not copied */
    size_t params_len = 0;
    size_t lens[3] = {0, 0, 0}; /* the names' lengths when the decoder gave them */
    unsigned clean = 0;         /* start_call's: the names known free of control characters */
    if (is_json_content(req->content_type)) {
        /* One strict pass over the body, no tree: the call's strings are decoded, the
         * request is passed on as the bytes the caller sent. */
        const char *text = req->body.data ? req->body.data : "";
        /* set field by field: what mc_json_members reads (a whole initialiser would zero
         * four structs on every call) */
        struct mc_json_member m[4];
        static const char *const keys[4] = {"service", "method", "address", "request"};
        static const size_t key_lens[4] = {7, 6, 7, 7};
        for (int i = 0; i < 4; i++) {
            m[i].key = keys[i];
            m[i].key_len = key_lens[i];
            m[i].buf = i < 3 ? name_buf[i] : NULL;
            m[i].cap = i < 3 ? sizeof name_buf[i] : 0;
        }
        if (mc_json_members(text, req->body.len, m, 4) < 0) {
            respond_bad_body(req, text, req->body.len);
            return;
        }
        service = string_member(text, &m[0], &owned[0], &lens[0], &clean, 1);
        method = string_member(text, &m[1], &owned[1], &lens[1], &clean, 2);
        address = string_member(text, &m[2], &owned[2], &lens[2], &clean, 4);
        const char *decoded[3] = {service, method, address};
        for (int i = 0; i < 3; i++) {
            /* a string that did not decode holds a \u0000: refused, never cut short or
             * taken for absent */
            if (!decoded[i] && m[i].found && text[m[i].start] == '"') {
                respond_nul(req, m[i].key);
                goto out;
            }
        }
        if (service && *service && method && *method &&
            request_from_member(req, text, &m[3], &params, &params_view, &params_len) < 0)
            goto out;
    } else {
        /* Form fields, from an urlencoded body or the query string (the seed's curl -d). */
        const char *names[] = {"service", "method", "address", "request"};
        char *values[4] = {NULL, NULL, NULL, NULL};
        int rc = 0;
        for (int i = 0; i < 4 && rc != MC_EINVAL; i++) {
            rc = MC_ENOTFOUND;
            if (req->body.len)
                rc = mc_url_form_value(req->body.data, req->body.len, names[i], &values[i]);
            if (rc == MC_ENOTFOUND)
                rc = mc_http_query_param(req, names[i], &values[i]);
            if (rc == MC_EINVAL)
                respond_nul(req, names[i]);
        }
        service = owned[0] = values[0];
        method = owned[1] = values[1];
        address = owned[2] = values[2];
        if (rc == MC_EINVAL) {
            mc_free(values[3]);
            goto out;
        }
        if (service && *service && method && *method && values[3] &&
            request_from_string(req, values[3], strlen(values[3]), &params, &params_len) < 0) {
            mc_free(values[3]);
            goto out;
        }
        mc_free(values[3]);
    }
    if (!service || !*service) {
        respond_no_service(req);
        goto out;
    }
    if (!method || !*method) {
        mc_http_respond_error(req, 400, RPC_ID, "invalid method");
        goto out;
    }
    struct mc_call_request creq = {
        .service = service,
        .method = method,
        .address = address,
        .service_len = lens[0],
        .method_len = lens[1],
        .address_len = lens[2],
        .params = params_view ? params_view : params,
        .params_len = params_len,
        .headers = req->headers,
        .header_count = req->header_count,
    };
    start_call(req, api, &creq, clean);
out:
    /* the usual call owns nothing here: no call to free(NULL) four times */
    for (int i = 0; i < 3; i++)
        if (owned[i])
            mc_free(owned[i]);
    if (params)
        mc_free(params);
}

/* --handler=rpc: /foo/bar -> <namespace>.foo Foo.Bar, the body is the request. */
void mc_api_path_rpc(struct mc_http_request *req, struct mc_api *api)
{
    char *service, *method;
    if (mc_route_path_to_call(req->path, req->path_len, api->config->namespace, &service, &method) <
        0) {
        mc_http_respond_error(req, 404, "go.micro.sidecar", "not found");
        return;
    }
    const char *params = NULL;
    size_t params_len = 0;
    if (req->body.len) {
        json_error_t jerr;
        json_t *v = json_loadb(req->body.data, req->body.len, LENIENT_FLAGS, &jerr);
        if (!v) {
            char detail[300];
            snprintf(detail, sizeof detail, "error decoding request: %s", jerr.text);
            mc_http_respond_error(req, 400, RPC_ID, detail);
            mc_free(service);
            mc_free(method);
            return;
        }
        json_decref(v);
        params = req->body.data;
        params_len = req->body.len;
    }
    struct mc_call_request creq = {
        .service = service,
        .method = method,
        .params = params,
        .params_len = params_len,
        .headers = req->headers,
        .header_count = req->header_count,
    };
    start_call(req, api, &creq, 0);
    mc_free(service);
    mc_free(method);
}
