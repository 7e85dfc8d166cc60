/* libFuzzer target: arbitrary node bytes into the HTTP client's response parser (the path
 * every /rpc call, proxied request, health check and etcd call reads), over the in-memory
 * transport: the input is what the node sends on one keep-alive connection. Two calls run on
 * it in turn (the second reuses the pooled connection when the first left it reusable), the
 * first buffering its body, the second streaming it with a pause and a resume. Each call must
 * end exactly once; a complete buffered answer must agree with its own framing; nothing may
 * crash or leak. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/client.h"
#include "mem_transport.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

struct probe {
    int done, err, heads, head_status, chunked, has_cl, method_head;
    uint64_t content_length;
    size_t streamed;
    struct mc_http_call *call;
    size_t body_len;
};

static void on_head(struct mc_http_call *call, const struct mc_http_response_head *head, void *ctx)
{
    struct probe *p = ctx;
    p->heads++;
    p->head_status = head->status;
    p->chunked = head->chunked;
    p->has_cl = head->has_content_length;
    p->content_length = head->content_length;
    assert(head->status >= 100 && head->status <= 599); /* never an invalid status line */
    for (size_t i = 0; i < head->header_count; i++)
        assert(head->headers[i].name && head->headers[i].value);
    (void)call;
}

static void on_body(struct mc_http_call *call, const char *data, size_t len, void *ctx)
{
    struct probe *p = ctx;
    (void)data;
    p->streamed += len;
    /* Backpressure inside a callback, as the proxy does. */
    mc_http_call_pause(call);
    mc_http_call_resume(call);
}

static void on_done(struct mc_http_call *call, int err, int retryable, void *ctx)
{
    struct probe *p = ctx;
    (void)retryable;
    assert(!p->done);
    p->done = 1;
    p->err = err;
    if (err == 0) {
        assert(p->heads >= 1);
        const struct mc_buf *body = mc_http_call_body(call);
        p->body_len = body ? body->len : 0;
        if (p->has_cl && !p->chunked && !p->method_head && p->head_status >= 200 &&
            p->head_status != 204 && p->head_status != 304)
            assert(p->body_len + p->streamed == p->content_length);
    }
    p->call = NULL;
}

static void start(struct mc_http_client *client, struct probe *p, int buffer, int head)
{
    static const struct mc_http_header hdrs[] = {{"X-Test", "1"}};
    struct mc_http_call_options o = {
        .address = "127.0.0.1:9",
        .method = head ? "HEAD" : "POST",
        .target = "/x?y=1",
        .headers = hdrs,
        .header_count = 1,
        .body = "{}",
        .body_len = 2,
        .timeout_ms = 5000,
        .buffer_body = buffer,
        .max_body = 1 << 20,
        .on_head = on_head,
        .on_body = buffer ? NULL : on_body,
        .on_done = on_done,
        .ctx = p,
    };
    memset(p, 0, sizeof *p);
    p->method_head = head;
    p->call = mc_http_call_start(client, &o);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mc_net net;
    memset(&net, 0, sizeof net);
    net.loop = &loop;
    mc_buf_init(&mem_out);
    mem_out_total = 0;
    mem_refuse_dials = 0;
    mem_dial_script = mem_script_of(data, size);
    int head_first = size > 0 && (data[size - 1] & 1);

    struct mc_http_client_config ccfg = {.transport = &mem_type, .max_idle_per_host = 2};
    struct mc_http_client *client = mc_http_client_new(&net, &ccfg);
    struct probe a, b;
    start(client, &a, 1, head_first);
    mem_pump(&loop, 100000);
    if (a.done && a.err == 0) {
        start(client, &b, 0, 0);
        mem_pump(&loop, 100000);
        if (!b.done)
            mc_http_call_cancel(b.call);
    }
    if (!a.done)
        mc_http_call_cancel(a.call);
    /* The request went out as HTTP/1.1 (the client's own framing, never the node's bytes). */
    if (mem_out.len)
        assert(memcmp(mem_out.data,
                      head_first ? "HEAD /x?y=1 HTTP/1.1\r\n" : "POST /x?y=1 HTTP/1.1\r\n",
                      22) == 0);

    mc_http_client_free(client);
    mem_pump(&loop, 1000);
    mc_net_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    assert(closed == 0);
    assert(mem_conn_count == 0);
    mc_buf_close(&mem_out);
    return 0;
}
