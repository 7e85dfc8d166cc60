/* libFuzzer target: arbitrary node frames into the HTTP/2 client (src/http/h2_client.c: the
 * path every gRPC call takes), over the in-memory transport: the input is what the node sends
 * on one h2c connection, its SETTINGS first as a real node's would be. Two streams run on it at
 * once, as the gRPC proxy opens them: one uploading a body with trailers and pausing and
 * resuming its response as a slow reader does, one with no body, cancelled when its head
 * comes when the input asks. Each stream must end exactly once (or be cancelled), a head
 * must carry a valid status and every field a name and a value, and nothing may crash or
 * leak. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_client.h"
#include "mem_transport.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

struct probe {
    struct mc_h2_call *call;
    int heads, done, cancel_on_head, cancelled;
    size_t received;
};

static void on_head(struct mc_h2_call *s, const struct mc_h2_response_head *head, void *ctx)
{
    struct probe *p = ctx;
    assert(!p->done && !p->cancelled);
    p->heads++;
    assert(head->status >= 200 && head->status <= 999); /* a final head, a 3-digit status */
    for (size_t i = 0; i < head->header_count; i++)
        assert(head->headers[i].name && head->headers[i].value && head->headers[i].name[0] != ':');
    if (p->cancel_on_head) {
        p->cancelled = 1;
        mc_h2_call_cancel(s);
    }
}

static void on_data(struct mc_h2_call *s, const char *data, size_t len, void *ctx)
{
    struct probe *p = ctx;
    (void)data;
    assert(!p->done && !p->cancelled && p->heads == 1);
    p->received += len;
    /* Back-pressure inside a callback, as the gRPC proxy does for a slow client. */
    mc_h2_call_pause(s);
    mc_h2_call_resume(s);
}

static void on_done(struct mc_h2_call *s, const struct mc_h2_done *d, void *ctx)
{
    struct probe *p = ctx;
    (void)s;
    assert(!p->done && !p->cancelled);
    p->done = 1;
    if (d->err == 0)
        assert(p->heads == 1);
    for (size_t i = 0; i < d->trailer_count; i++)
        assert(d->trailers[i].name && d->trailers[i].value);
    p->call = NULL;
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

    struct mc_h2_client_config cfg = {.transport = &mem_type, .max_conns_per_host = 1};
    struct mc_h2_client *client = mc_h2_client_new(&net, &cfg);
    static const struct mc_http_header hdrs[] = {
        {"content-type", "application/grpc"}, {"te", "trailers"}, {"grpc-timeout", "5S"}};
    struct probe a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    b.cancel_on_head = size > 0 && (data[size - 1] & 1);
    struct mc_h2_call_options o = {
        .address = "127.0.0.1:9",
        .method = "POST",
        .authority = "node",
        .path = "/pkg.Svc/Method",
        .headers = hdrs,
        .header_count = 3,
        .on_head = on_head,
        .on_data = on_data,
        .on_done = on_done,
        .ctx = &a,
    };
    a.call = mc_h2_call_start(client, &o);
    static const char msg[] = "\0\0\0\0\3\n\1x";
    mc_h2_call_write(a.call, msg, sizeof msg - 1);
    static const struct mc_http_header trailers[] = {{"x-end", "1"}};
    mc_h2_call_end(a.call, trailers, 1);
    o.method = "GET";
    o.path = "/b";
    o.end_stream = 1;
    o.ctx = &b;
    b.call = mc_h2_call_start(client, &o);
    mem_pump(&loop, 100000);
    if (getenv("FUZZ_PRINT")) /* what a seed exercises: FUZZ_PRINT=1 fuzz_h2_client FILE */
        fprintf(stderr, "a: heads %d done %d received %zu; b: heads %d done %d cancelled %d\n",
                a.heads, a.done, a.received, b.heads, b.done, b.cancelled);
    if (a.call && !a.done)
        mc_h2_call_cancel(a.call);
    if (b.call && !b.done && !b.cancelled)
        mc_h2_call_cancel(b.call);
    /* The client spoke HTTP/2 (its own preface), never anything the node sent. */
    if (mem_out.len)
        assert(mem_out.len >= 24 &&
               memcmp(mem_out.data, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24) == 0);

    mc_h2_client_free(client);
    mem_pump(&loop, 1000);
    mc_net_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    assert(closed == 0);
    assert(mem_conn_count == 0);
    mc_buf_close(&mem_out);
    return 0;
}
