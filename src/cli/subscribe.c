/* `micro subscribe TOPIC`: a client-side WebSocket over http's client. The upgrade is an
 * ordinary call whose 101 hands over the raw connection (mc_http_call_take_conn); wslay's
 * event API in client mode then does the framing and masking. Ends on --count messages
 * (close 1000, exit 0), SIGINT (close 1000, exit 0), or the sidecar's close or silence
 * (exit 1 with the reason). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>
#include <wslay/wslay.h>

#include "cli/format.h"
#include "cli/session.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/units.h"
#include "ws/handshake.h"

/* We ping the sidecar this often, and give up when it has said nothing for MC_CLI_WS_DEAD_MS
 * (it pings every 54 s itself and answers our pings at once): a sidecar that vanished
 * without a FIN does not hold the CLI for ever. */
#define MC_CLI_WS_PING_MS 20000
#define MC_CLI_WS_DEAD_MS 70000

struct sub {
    struct mc_cli *cli;
    struct mc_http_call *call; /* until the 101 (or the failure) */
    struct mc_conn *conn;      /* after the 101 */
    wslay_event_context_ptr ws;
    const uint8_t *in; /* the bytes being fed to wslay */
    size_t in_len;
    char key[25];
    uv_signal_t sigint;
    uv_timer_t ping;
    uint64_t last_heard;
    int count, got;
    int finished;              /* the loop may stop */
    int code;                  /* exit status */
    int stopping;              /* our close is queued: ignore what still arrives */
    struct mc_buf why;         /* the failure to print, when code != 0 */
    struct mc_cli_reply reply; /* a refused upgrade's answer */
};

static void finish(struct sub *s, int code)
{
    if (s->finished)
        return;
    s->code = code;
    s->finished = 1;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct sub *s = user;
    if (s->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < s->in_len ? len : s->in_len;
    memcpy(buf, s->in, n);
    s->in += n;
    s->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)ctx;
    (void)flags;
    struct sub *s = user;
    mc_conn_write_copy(s->conn, data, len);
    return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    /* RFC 6455 10.3: masks must be unpredictable. */
    return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

/* Our close 1000, then the connection closes once it is written. */
static void stop(struct sub *s, int code)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->code = code;
    wslay_event_queue_close(s->ws, 1000, NULL, 0);
    wslay_event_send(s->ws);
    mc_conn_close(s->conn, 0);
}

/* One message: {"Header":{...},"Body":"<base64>"}; prints the body (or, with --output json,
 * the message as received), one a line. */
static void on_message(struct sub *s, const uint8_t *data, size_t len)
{
    if (s->cli->json) {
        fwrite(data, 1, len, stdout);
        fputc('\n', stdout);
    } else {
        json_t *m = json_loadb((const char *)data, len, 0, NULL);
        const char *b64 = json_string_value(json_object_get(m, "Body"));
        size_t blen = b64 ? strlen(b64) : 0, out_len = 0;
        char *body = mc_calloc(1, mc_base64_decoded_max(blen) + 1);
        if (b64 && mc_base64_decode(body, &out_len, b64, blen) == 0) {
            fwrite(body, 1, out_len, stdout);
            fputc('\n', stdout);
        } else {
            /* Not a broker message: show it rather than lose it. */
            fwrite(data, 1, len, stdout);
            fputc('\n', stdout);
        }
        mc_free(body);
        json_decref(m);
    }
    /* Flushed per message: a pipe reader sees each one as it comes. A reader that went away
     * (EPIPE) ends the subscription quietly, as `| head -n 3` expects. */
    if (fflush(stdout) != 0) {
        stop(s, errno == EPIPE ? 0 : 1);
        return;
    }
    if (s->count > 0 && ++s->got >= s->count)
        stop(s, 0);
}

static void on_msg_recv_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    struct sub *s = user;
    if (s->stopping)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        on_message(s, arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        mc_buf_appendf(&s->why, "the sidecar closed the subscription (%u%s%.*s)",
                       (unsigned)arg->status_code, arg->msg_length > 2 ? ": " : "",
                       arg->msg_length > 2 ? (int)(arg->msg_length - 2) : 0,
                       arg->msg_length > 2 ? (const char *)arg->msg + 2 : "");
        s->code = 1;
    }
}

static void on_conn_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct sub *s = c->data;
    if (nread < 0) {
        if (!s->stopping && s->why.len == 0)
            mc_buf_appendf(&s->why, "the sidecar at %s closed the subscription (%s)",
                           s->cli->address, mc_strerror((int)nread));
        if (!s->stopping)
            s->code = 1;
        mc_conn_close(c, 1);
        return;
    }
    s->last_heard = uv_now(&s->cli->loop);
    s->in = (const uint8_t *)data;
    s->in_len = (size_t)nread;
    int r = wslay_event_recv(s->ws);
    s->in_len = 0;
    wslay_event_send(s->ws);
    if (r != 0 && !s->stopping && s->why.len == 0) {
        mc_buf_appendf(&s->why, "bad WebSocket data from the sidecar at %s", s->cli->address);
        s->code = 1;
    }
    /* Closed both ways (the sidecar's close echoed), or broken: the socket goes too. */
    if (r != 0 || (wslay_event_get_close_received(s->ws) && !wslay_event_want_write(s->ws)))
        mc_conn_close(c, 0);
    else
        mc_conn_flush(c);
}

static void on_conn_close(struct mc_conn *c)
{
    struct sub *s = c->data;
    s->conn = NULL;
    mc_conn_free(c);
    finish(s, s->code);
}

static void on_ping_timer(uv_timer_t *t)
{
    struct sub *s = t->data;
    if (!s->conn || s->stopping)
        return;
    if (uv_now(&s->cli->loop) - s->last_heard >= MC_CLI_WS_DEAD_MS) {
        mc_buf_appendf(&s->why, "the sidecar at %s stopped answering the subscription",
                       s->cli->address);
        s->code = 1;
        mc_conn_close(s->conn, 1);
        return;
    }
    struct wslay_event_msg ping = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
    wslay_event_queue_msg(s->ws, &ping);
    wslay_event_send(s->ws);
    mc_conn_flush(s->conn);
}

static const char *header_value(const struct mc_http_response_head *head, const char *name)
{
    for (size_t i = 0; i < head->header_count; i++)
        if (strcasecmp(head->headers[i].name, name) == 0)
            return head->headers[i].value;
    return NULL;
}

static void on_head(struct mc_http_call *call, const struct mc_http_response_head *head, void *ctx)
{
    struct sub *s = ctx;
    s->reply.status = head->status;
    if (!head->upgrade || head->status != 101)
        return; /* an error answer: its body arrives in on_done */
    char want[MC_WS_ACCEPT_LEN];
    const char *accept = header_value(head, "Sec-WebSocket-Accept");
    int ok =
        mc_ws_accept_key(s->key, strlen(s->key), want) == 0 && accept && strcmp(accept, want) == 0;
    struct mc_buf leftover;
    s->conn = mc_http_call_take_conn(call, &leftover);
    s->call = NULL;
    if (!s->conn) {
        mc_buf_close(&leftover);
        mc_buf_appendf(&s->why, "the sidecar at %s did not hand over the WebSocket",
                       s->cli->address);
        finish(s, 1);
        return;
    }
    s->conn->data = s;
    s->conn->on_read = on_conn_read;
    s->conn->on_close = on_conn_close;
    if (!ok) {
        mc_buf_appendf(&s->why, "the sidecar at %s answered a bad Sec-WebSocket-Accept",
                       s->cli->address);
        s->code = 1;
        s->stopping = 1;
        mc_conn_close(s->conn, 1);
        mc_buf_close(&leftover);
        return;
    }
    struct wslay_event_callbacks cbs = {.recv_callback = recv_cb,
                                        .send_callback = send_cb,
                                        .genmask_callback = genmask_cb,
                                        .on_msg_recv_callback = on_msg_recv_cb};
    if (wslay_event_context_client_init(&s->ws, &cbs, s) != 0)
        abort(); /* out of memory, as everywhere else */
    wslay_event_config_set_max_recv_msg_length(s->ws, MC_CLI_MAX_REPLY);
    s->last_heard = uv_now(&s->cli->loop);
    uv_timer_start(&s->ping, on_ping_timer, MC_CLI_WS_PING_MS, MC_CLI_WS_PING_MS);
    /* The sidecar has registered the subscription by now: say so on stderr, so a script (or a
     * test) knows that publishing from here on reaches this subscriber. */
    fprintf(stderr, "micro: subscribed to %s at %s (Ctrl-C to stop)\n", s->cli->cfg->args[0],
            s->cli->address);
    if (leftover.len)
        on_conn_read(s->conn, leftover.data, (ssize_t)leftover.len);
    mc_buf_close(&leftover);
}

static void on_done(struct mc_http_call *call, int err, int retryable, void *ctx)
{
    (void)retryable;
    struct sub *s = ctx;
    s->call = NULL;
    s->reply.err = err;
    const struct mc_buf *body = mc_http_call_body(call);
    if (err == 0 && body && body->len)
        mc_buf_append(&s->reply.body, body->data, body->len);
    mc_cli_reply_error(s->cli, &s->reply, &s->why);
    if (s->why.len == 0)
        mc_buf_appendf(&s->why, "the sidecar at %s did not upgrade to a WebSocket (%d)",
                       s->cli->address, s->reply.status);
    finish(s, 1);
}

static void on_sigint(uv_signal_t *h, int signum)
{
    (void)signum;
    struct sub *s = h->data;
    /* Ctrl-C is how a subscription is meant to end: exit 0. */
    if (s->conn) {
        stop(s, 0);
    } else if (s->call) {
        mc_http_call_cancel(s->call);
        s->call = NULL;
        finish(s, 0);
    } else {
        finish(s, 0);
    }
}

int mc_cli_subscribe(struct mc_cli *cli, const char *topic)
{
    struct sub s = {.cli = cli, .count = cli->cfg->count};
    mc_buf_init(&s.why);
    mc_buf_init(&s.reply.body);
    uint8_t nonce[16];
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        abort();
    mc_base64_encode(s.key, nonce, sizeof nonce);
    s.key[24] = '\0';

    struct mc_buf path;
    mc_buf_init(&path);
    mc_buf_appendf(&path, "%s/broker?topic=", cli->prefix);
    mc_cli_query_escape(&path, topic);
    if (cli->cfg->queue && *cli->cfg->queue) {
        mc_buf_append_str(&path, "&queue=");
        mc_cli_query_escape(&path, cli->cfg->queue);
    }
    const struct mc_http_header headers[] = {
        {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},
        {"Sec-WebSocket-Version", "13"},
        {"Sec-WebSocket-Key", s.key},
    };
    struct mc_http_call_options o = {
        .address = cli->address,
        .method = "GET",
        .target = path.data,
        .headers = headers,
        .header_count = sizeof headers / sizeof headers[0],
        .dial_timeout_ms = cli->timeout_ms,
        .timeout_ms = cli->timeout_ms, /* bounds the handshake; the call ends at the 101 */
        .buffer_body = 1,
        .max_body = MC_CLI_MAX_REPLY,
        .on_head = on_head,
        .on_done = on_done,
        .ctx = &s,
    };
    uv_signal_init(&cli->loop, &s.sigint);
    s.sigint.data = &s;
    uv_signal_start(&s.sigint, on_sigint, SIGINT);
    uv_timer_init(&cli->loop, &s.ping);
    s.ping.data = &s;
    s.call = mc_http_call_start(cli->client, &o);
    mc_buf_close(&path);
    while (!s.finished)
        uv_run(&cli->loop, UV_RUN_ONCE);
    if (s.code != 0 && s.why.len)
        fprintf(stderr, "micro: %s\n", s.why.data);
    uv_close((uv_handle_t *)&s.sigint, NULL);
    uv_close((uv_handle_t *)&s.ping, NULL);
    uv_run(&cli->loop, UV_RUN_NOWAIT);
    if (s.ws)
        wslay_event_context_free(s.ws);
    mc_buf_close(&s.why);
    mc_buf_close(&s.reply.body);
    return s.code;
}
