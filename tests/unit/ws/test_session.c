/* WebSocket sessions and the hub over a real loopback connection on this test's own loop,
 * with short timers: echo, pings, the idle cut, the 1008 cut of a reader that stops reading,
 * the shared-frame release, the bounded close, and the hub's close_all and free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/server.h"
#include "util/alloc.h"
#include "util/error.h"
#include "ws/hub.h"
#include "ws/session.h"
#include "ws/ws.h"

#define MAX_QUEUE (64 * 1024)

static uv_loop_t loop;
static struct mc_net net;
static struct mc_http_server *server;
static struct mc_ws_hub *hub;
static int port;

/* What the server side saw. */
static struct mc_ws_session *last_session;
static int closes;
static uint16_t close_code;
static int drained;
static int messages;
/* The session timers; a test that counts every byte queued sets them out of its way. */
static uint64_t ping_ms, idle_ms;
/* The close timeout; tests whose client reads a long queue back raise it, so that a slow run
 * (valgrind) cannot drop the queue before the client has read it. */
static uint64_t close_ms;
/* The session's queue bound and backlog threshold (0: MAX_QUEUE and the default). */
static size_t max_queue, direct_max;

static void on_message(struct mc_ws_session *s, int is_text, const uint8_t *data, size_t len)
{
    messages++;
    mc_ws_session_send(s, is_text, data, len); /* echo */
}

static void on_close(struct mc_ws_session *s, uint16_t code)
{
    if (s == last_session)
        last_session = NULL;
    closes++;
    close_code = code;
}

static void ws_handler(struct mc_http_request *req, void *ctx)
{
    (void)ctx;
    const struct mc_ws_session_config cfg = {
        .max_queue = max_queue ? max_queue : MAX_QUEUE,
        .direct_max = direct_max,
        .ping_interval_ms = ping_ms,
        .idle_timeout_ms = idle_ms,
        .close_timeout_ms = close_ms,
        .on_message = on_message,
        .on_close = on_close,
    };
    struct mc_ws_session *s = mc_ws_session_accept(req, hub, &cfg, "go.micro.test");
    if (s) {
        last_session = s;
        mc_ws_session_start(s);
    }
}

static const struct mc_http_route routes[] = {
    {"/ws", MC_HTTP_GET, 0, ws_handler, NULL},
};

static void pump(int ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)ms;
    do {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&loop);
    } while (uv_now(&loop) < end);
}

static int setup(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    net.loop = &loop;
    struct mc_http_server_config cfg = {
        .address = "127.0.0.1:0",
        .routes = routes,
        .route_count = 1,
        .max_body_size = 1024,
        .max_connections = 100,
        .cors = "*",
    };
    server = mc_http_server_new(&net, &cfg);
    char err[256];
    assert_int_equal(mc_http_server_listen(server, err, sizeof err), 0);
    port = mc_http_server_port(server);
    hub = mc_ws_hub_new(&loop);
    last_session = NULL;
    closes = 0;
    close_code = 0;
    drained = 0;
    messages = 0;
    ping_ms = 100;
    idle_ms = 400;
    close_ms = 200;
    max_queue = direct_max = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mc_ws_hub_free(hub);
    mc_http_server_free(server);
    mc_net_close(&net);
    pump(20);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* ---- a tiny client ---- */

struct client {
    int fd;
    uint8_t buf[1 << 20];
    size_t len;
    int eof;
};

static void client_fill(struct client *c, int ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)ms;
    do {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
        if (n > 0) {
            c->len += (size_t)n;
            return;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->eof = 1;
            return;
        }
        usleep(1000);
        uv_update_time(&loop);
    } while (uv_now(&loop) < end);
}

static void client_connect(struct client *c, int rcvbuf)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n";
    assert_int_equal(send(c->fd, req, strlen(req), 0), (ssize_t)strlen(req));
    char *end = NULL;
    for (int i = 0; i < 2000 && !end && !c->eof; i++) {
        client_fill(c, 5);
        c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = 0;
        end = strstr((char *)c->buf, "\r\n\r\n");
    }
    assert_non_null(end);
    assert_memory_equal(c->buf, "HTTP/1.1 101", 12);
    size_t head = (size_t)(end + 4 - (char *)c->buf);
    memmove(c->buf, c->buf + head, c->len - head);
    c->len -= head;
}

static void client_send(struct client *c, int opcode, const void *data, size_t len)
{
    uint8_t frame[256];
    assert_true(len < 126);
    const uint8_t mask[4] = {1, 2, 3, 4};
    frame[0] = (uint8_t)(0x80 | opcode);
    frame[1] = (uint8_t)(0x80 | len);
    memcpy(frame + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        frame[6 + i] = ((const uint8_t *)data)[i] ^ mask[i % 4];
    assert_int_equal(send(c->fd, frame, 6 + len, 0), (ssize_t)(6 + len));
}

/* Reads the next server frame into payload (up to cap bytes); returns its opcode, or -1 on
 * EOF or after ms milliseconds. */
static int client_frame(struct client *c, uint8_t *payload, size_t cap, size_t *len, int ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)ms;
    for (;;) {
        if (c->len >= 2) {
            size_t n = c->buf[1] & 0x7f, hdr = 2;
            if (n == 126 && c->len >= 4) {
                n = (size_t)c->buf[2] << 8 | c->buf[3];
                hdr = 4;
            } else if (n == 127 && c->len >= 10) {
                n = 0;
                for (int i = 2; i < 10; i++)
                    n = n << 8 | c->buf[i];
                hdr = 10;
            }
            if ((c->buf[1] & 0x7f) < 126 || hdr > 2) {
                if (c->len >= hdr + n) {
                    int op = c->buf[0] & 0x0f;
                    *len = n;
                    if (payload)
                        memcpy(payload, c->buf + hdr, n < cap ? n : cap);
                    memmove(c->buf, c->buf + hdr + n, c->len - hdr - n);
                    c->len -= hdr + n;
                    return op;
                }
            }
        }
        if (c->eof || uv_now(&loop) >= end)
            return -1;
        client_fill(c, 5);
    }
}

static void client_close(struct client *c)
{
    close(c->fd);
    c->fd = -1;
}

/* ---- tests ---- */

static void test_echo_and_ping(void **state)
{
    (void)state;
    struct client c;
    client_connect(&c, 0);
    assert_non_null(last_session);
    assert_int_equal(mc_ws_hub_count(hub), 1);
    client_send(&c, MC_WS_OP_TEXT, "abc", 3);
    uint8_t p[64];
    size_t n;
    int op;
    /* A slow run (valgrind) may see a ping of the 100 ms interval before the echo. */
    while ((op = client_frame(&c, p, sizeof p, &n, 1000)) == MC_WS_OP_PING)
        ;
    assert_int_equal(op, MC_WS_OP_TEXT);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "abc", 3);
    /* Nothing sent for longer than the ping interval: a ping arrives. */
    assert_int_equal(client_frame(&c, p, sizeof p, &n, 1000), MC_WS_OP_PING);
    /* Staying active (pongs count) keeps the session past the idle timeout. */
    for (int i = 0; i < 6; i++) {
        client_send(&c, MC_WS_OP_PONG, "", 0);
        pump(100);
    }
    assert_int_equal(closes, 0);
    client_close(&c);
    pump(50);
    assert_int_equal(closes, 1);
    assert_int_equal(close_code, MC_WS_CLOSE_ABNORMAL);
    assert_int_equal(mc_ws_hub_count(hub), 0);
}

static void test_idle_cut(void **state)
{
    (void)state;
    struct client c;
    client_connect(&c, 0);
    uint8_t p[64];
    size_t n;
    int op, pings = 0;
    while ((op = client_frame(&c, p, sizeof p, &n, 2000)) == MC_WS_OP_PING)
        pings++;
    assert_true(pings >= 2);
    assert_int_equal(op, MC_WS_OP_CLOSE);
    assert_int_equal(p[0] << 8 | p[1], MC_WS_SESSION_CLOSE_IDLE);
    assert_int_equal(client_frame(&c, p, sizeof p, &n, 1000), -1); /* then TCP closes */
    assert_true(c.eof);
    pump(20);
    assert_int_equal(closes, 1);
    assert_int_equal(close_code, MC_WS_SESSION_CLOSE_IDLE);
    assert_int_equal(mc_ws_hub_count(hub), 0);
    client_close(&c);
}

static int released;
static void count_release(void *ctx)
{
    (void)ctx;
    released++;
}

static void test_slow_reader_cut_and_shared_release(void **state)
{
    (void)state;
    struct client c;
    close_ms = 10000;
    client_connect(&c, 4096);
    struct mc_ws_session *s = last_session;
    static char payload[16 * 1024];
    memset(payload, 'x', sizeof payload);
    released = 0;
    struct mc_ws_shared_frame *f =
        mc_ws_shared_frame_new(MC_WS_OP_BINARY, payload, sizeof payload, count_release, NULL);
    int rc = 0, sent = 0;
    size_t max_pending = 0;
    /* The client never reads: the queue grows until the bound cuts it. */
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = mc_ws_session_send_shared(s, f);
        if (rc == 0)
            sent++;
        if (mc_ws_session_pending(s) > max_pending)
            max_pending = mc_ws_session_pending(s);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(rc, MC_ETOOBIG);
    assert_true(sent > 0);
    assert_true(max_pending <= MAX_QUEUE + sizeof payload + 16);
    assert_int_equal(mc_ws_hub_slow_closes(hub), 1);
    assert_int_equal(closes, 1);
    assert_int_equal(close_code, MC_WS_CLOSE_POLICY);
    assert_int_equal(mc_ws_session_send_shared(s, f), MC_ECLOSED); /* s lives until TCP closes */
    mc_ws_shared_frame_unref(f);
    assert_int_equal(released, 0); /* still queued */
    /* The reader wakes up: everything queued, then the 1008 close. */
    uint8_t p[64];
    size_t n;
    int op, frames = 0;
    /* Bounds generous enough for a run under valgrind (make memcheck), tens of times slower. */
    while ((op = client_frame(&c, p, sizeof p, &n, 10000)) == MC_WS_OP_BINARY) {
        assert_int_equal(n, sizeof payload);
        frames++;
    }
    assert_int_equal(op, MC_WS_OP_CLOSE);
    assert_int_equal(p[0] << 8 | p[1], MC_WS_CLOSE_POLICY);
    assert_true(frames > 0 && frames <= sent);
    client_send(&c, MC_WS_OP_CLOSE, p, 2);
    assert_int_equal(client_frame(&c, p, sizeof p, &n, 1000), -1);
    pump(20);
    assert_int_equal(released, 1); /* once, after the last segment let go */
    assert_int_equal(mc_ws_hub_count(hub), 0);
    client_close(&c);
}

/* Past direct_max of pending output, messages wait in the session's backlog; a reader cut with
 * 1008 then gets the close after at most that much (plus the kernel's buffers), not after the
 * whole queue: the backlog is dropped whole (copies and shared frames alike, the framing
 * intact), and the shared frame is released. */
static void test_slow_reader_cut_drops_the_backlog(void **state)
{
    (void)state;
    struct client c;
    close_ms = 10000;
    ping_ms = idle_ms = 600000;
    max_queue = 1 << 20;
    direct_max = 16 * 1024;
    client_connect(&c, 4096);
    struct mc_ws_session *s = last_session;
    static char shared[4000], copied[3000];
    memset(shared, 's', sizeof shared);
    memset(copied, 'c', sizeof copied);
    released = 0;
    struct mc_ws_shared_frame *f =
        mc_ws_shared_frame_new(MC_WS_OP_BINARY, shared, sizeof shared, count_release, NULL);
    int rc = 0, sent = 0;
    size_t sent_bytes = 0;
    for (int i = 0; i < 10000 && rc == 0; i++) {
        rc = i % 2 ? mc_ws_session_send(s, 0, copied, sizeof copied)
                   : mc_ws_session_send_shared(s, f);
        if (rc == 0) {
            sent++;
            sent_bytes += i % 2 ? sizeof copied : sizeof shared;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(rc, MC_ETOOBIG);
    assert_int_equal(close_code, MC_WS_CLOSE_POLICY);
    assert_true(sent > 200); /* about 1 MiB queued, and what the kernel took */
    mc_ws_shared_frame_unref(f);
    /* The reader wakes up: a little data, every frame whole, then the 1008 close. */
    uint8_t p[64];
    size_t n, got = 0;
    int op, frames = 0;
    while ((op = client_frame(&c, p, sizeof p, &n, 10000)) == MC_WS_OP_BINARY) {
        assert_true(n == sizeof shared || n == sizeof copied);
        assert_true(p[0] == (n == sizeof shared ? 's' : 'c'));
        got += n;
        frames++;
    }
    assert_int_equal(op, MC_WS_OP_CLOSE);
    assert_int_equal(p[0] << 8 | p[1], MC_WS_CLOSE_POLICY);
    assert_true(frames < sent);
    /* The kernel's buffers (megabytes on loopback) still reach the reader; what the session
     * held past direct_max went (the frame in the connection's queue may be up to 4000). */
    assert_true(sent_bytes - got >= max_queue - direct_max - 2 * sizeof shared);
    client_send(&c, MC_WS_OP_CLOSE, p, 2);
    assert_int_equal(client_frame(&c, p, sizeof p, &n, 1000), -1);
    pump(20);
    assert_int_equal(released, 1);
    assert_int_equal(mc_ws_hub_count(hub), 0);
    client_close(&c);
}

/* Queues 4 KiB messages on s for a client that does not read until at least target bytes
 * stay in the session's output (the kernel's buffers are full); returns what is pending. */
static size_t fill_until_stuck(struct mc_ws_session *s, size_t target)
{
    static char block[4096];
    for (int i = 0; i < 10000 && mc_ws_session_pending(s) < target; i++) {
        assert_int_equal(mc_ws_session_send(s, 0, block, sizeof block), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_true(mc_ws_session_pending(s) >= target);
    return mc_ws_session_pending(s);
}

static void ping_payload(uint8_t p[125], int i)
{
    memset(p, 'p', 125);
    snprintf((char *)p, 125, "%04d", i);
}

static void test_ping_flood_queues_one_pong(void **state)
{
    (void)state;
    ping_ms = idle_ms = 60000;
    struct client c;
    client_connect(&c, 4096);
    struct mc_ws_session *s = last_session;
    size_t before = fill_until_stuck(s, MAX_QUEUE / 2);
    /* Many pings, the output never drained: one pong goes into the queue, later pings only
     * replace the answer that follows it (RFC 6455 5.5.3), so the queue does not grow. */
    uint8_t p[125];
    enum { PINGS = 400 };
    for (int i = 0; i < PINGS; i++) {
        ping_payload(p, i);
        client_send(&c, MC_WS_OP_PING, p, sizeof p);
    }
    client_send(&c, MC_WS_OP_TEXT, "end", 3); /* read after the pings: all of them seen */
    for (int i = 0; i < 2000 && messages == 0; i++)
        pump(1);
    assert_int_equal(messages, 1);
    assert_int_equal(closes, 0);
    size_t one_pong = 2 + 125, echo = 2 + 3;
    assert_true(mc_ws_session_pending(s) <= before + one_pong + echo);
    /* The reader wakes up: the data, then two pongs (the one queued, then the one for the
     * latest ping), then the pong for a ping sent once the output has drained. */
    uint8_t got[128];
    size_t n;
    int op, pongs = 0, texts = 0;
    while ((op = client_frame(&c, got, sizeof got, &n, 2000)) != MC_WS_OP_PONG)
        if (op == MC_WS_OP_TEXT)
            texts++;
        else
            assert_int_equal(op, MC_WS_OP_BINARY);
    pongs++;
    ping_payload(p, 0);
    assert_int_equal(n, 125);
    assert_memory_equal(got, p, 125);
    ping_payload(p, PINGS);
    client_send(&c, MC_WS_OP_PING, p, sizeof p);
    for (;;) {
        op = client_frame(&c, got, sizeof got, &n, 2000);
        if (op == MC_WS_OP_TEXT) {
            texts++;
            continue;
        }
        assert_int_equal(op, MC_WS_OP_PONG);
        assert_int_equal(n, 125);
        if (memcmp(got, p, 125) == 0)
            break; /* the answer to the ping after the drain */
        pongs++;
        uint8_t latest[125];
        ping_payload(latest, PINGS - 1);
        assert_memory_equal(got, latest, 125);
    }
    assert_int_equal(texts, 1);
    assert_int_equal(pongs, 2);
    assert_int_equal(closes, 0);
    client_close(&c);
    pump(20);
    assert_int_equal(mc_ws_hub_count(hub), 0);
}

static void test_pong_past_the_bound_closes_1008(void **state)
{
    (void)state;
    ping_ms = idle_ms = 60000;
    close_ms = 10000;
    struct client c;
    client_connect(&c, 4096);
    struct mc_ws_session *s = last_session;
    size_t pending = fill_until_stuck(s, MAX_QUEUE / 2);
    /* Top the output up to 60 bytes under the bound (a 4-byte header for this size). */
    static char top[MAX_QUEUE];
    size_t len = MAX_QUEUE - pending - 64;
    assert_int_equal(mc_ws_session_send(s, 0, top, len), 0);
    assert_int_equal(mc_ws_session_pending(s), MAX_QUEUE - 60);
    /* A pong counts toward the bound like any frame: this one passes it. */
    uint8_t p[125];
    ping_payload(p, 1);
    client_send(&c, MC_WS_OP_PING, p, sizeof p);
    for (int i = 0; i < 2000 && closes == 0; i++)
        pump(1);
    assert_int_equal(closes, 1);
    assert_int_equal(close_code, MC_WS_CLOSE_POLICY);
    assert_int_equal(mc_ws_hub_slow_closes(hub), 1);
    assert_true(mc_ws_session_pending(s) <= MAX_QUEUE);
    /* The reader wakes up: the data, no pong (it did not fit), then the 1008 close. */
    uint8_t got[128];
    size_t n;
    int op;
    while ((op = client_frame(&c, got, sizeof got, &n, 10000)) == MC_WS_OP_BINARY)
        ;
    assert_int_equal(op, MC_WS_OP_CLOSE);
    assert_int_equal(got[0] << 8 | got[1], MC_WS_CLOSE_POLICY);
    /* Having read its output, the client is read again: its close answer ends the session. */
    client_send(&c, MC_WS_OP_CLOSE, got, 2);
    assert_int_equal(client_frame(&c, got, sizeof got, &n, 1000), -1);
    assert_true(c.eof);
    pump(20);
    assert_int_equal(mc_ws_hub_count(hub), 0);
    client_close(&c);
}

/* A peer that stops reading in the middle of a close, its output stuck in our queue: each way
 * into the close (ours, the peer's, the idle cut) is bounded by the close timer, which drops
 * the queue and frees the session. */
static void wait_gone(void)
{
    for (int i = 0; i < 3000 && mc_ws_hub_count(hub) > 0; i++)
        pump(1);
    assert_int_equal(mc_ws_hub_count(hub), 0);
}

static void test_our_close_to_a_peer_that_stopped_reading_is_bounded(void **state)
{
    (void)state;
    struct client c;
    client_connect(&c, 4096);
    fill_until_stuck(last_session, MAX_QUEUE / 2);
    assert_int_equal(mc_ws_session_close(last_session, 1000, NULL), 0);
    assert_int_equal(closes, 1);
    wait_gone();
    client_close(&c);
}

static void test_peer_close_while_not_reading_is_bounded(void **state)
{
    (void)state;
    struct client c;
    client_connect(&c, 4096);
    fill_until_stuck(last_session, MAX_QUEUE / 2);
    uint8_t code[2] = {0x0f, 0xa1}; /* 4001: our echo waits behind the stuck output */
    client_send(&c, MC_WS_OP_CLOSE, code, 2);
    for (int i = 0; i < 2000 && closes == 0; i++)
        pump(1);
    assert_int_equal(close_code, 4001);
    wait_gone();
    client_close(&c);
}

static void test_idle_cut_of_a_peer_that_stopped_reading_is_bounded(void **state)
{
    (void)state;
    ping_ms = 60000; /* only the idle cut */
    struct client c;
    client_connect(&c, 4096);
    fill_until_stuck(last_session, MAX_QUEUE / 2);
    for (int i = 0; i < 3000 && closes == 0; i++)
        pump(1);
    assert_int_equal(close_code, MC_WS_SESSION_CLOSE_IDLE);
    wait_gone();
    client_close(&c);
}

static void test_close_timeout_bounds_a_silent_peer(void **state)
{
    (void)state;
    struct client c;
    client_connect(&c, 0);
    assert_int_equal(mc_ws_session_close(last_session, 4001, "bye"), 0);
    assert_int_equal(closes, 1);
    assert_int_equal(close_code, 4001);
    uint8_t p[64];
    size_t n;
    assert_int_equal(client_frame(&c, p, sizeof p, &n, 1000), MC_WS_OP_CLOSE);
    assert_int_equal(p[0] << 8 | p[1], 4001);
    assert_memory_equal(p + 2, "bye", 3);
    /* We never answer: the session still goes away after the close timeout. */
    assert_int_equal(client_frame(&c, p, sizeof p, &n, 1000), -1);
    pump(20);
    assert_int_equal(mc_ws_hub_count(hub), 0);
    client_close(&c);
}

static void on_drained(void *ctx)
{
    (void)ctx;
    drained++;
}

static void test_close_all(void **state)
{
    (void)state;
    mc_ws_hub_close_all(hub, 1001, on_drained, NULL); /* empty: done at once */
    assert_int_equal(drained, 1);
    teardown(state);
    setup(state);
    /* static: two 1 MiB buffers on the stack look like a stack switch to valgrind */
    static struct client a, b;
    client_connect(&a, 0);
    client_connect(&b, 0);
    assert_int_equal(mc_ws_hub_count(hub), 2);
    mc_ws_hub_close_all(hub, 1001, on_drained, NULL);
    assert_int_equal(drained, 0);
    uint8_t p[64];
    size_t n;
    assert_int_equal(client_frame(&a, p, sizeof p, &n, 1000), MC_WS_OP_CLOSE);
    assert_int_equal(p[0] << 8 | p[1], 1001);
    client_send(&a, MC_WS_OP_CLOSE, p, 2); /* a answers; b stays silent */
    assert_int_equal(client_frame(&b, p, sizeof p, &n, 1000), MC_WS_OP_CLOSE);
    pump(100);
    assert_int_equal(mc_ws_hub_count(hub), 1);
    assert_int_equal(drained, 0);
    for (int i = 0; i < 300 && !drained; i++)
        pump(10);
    assert_int_equal(drained, 1);
    assert_int_equal(mc_ws_hub_count(hub), 0);
    assert_int_equal(closes, 2);
    client_close(&a);
    client_close(&b);
}

static void test_hub_free_with_live_sessions(void **state)
{
    (void)state;
    struct client a;
    client_connect(&a, 0);
    client_send(&a, MC_WS_OP_TEXT, "x", 1);
    uv_run(&loop, UV_RUN_NOWAIT);
    /* teardown frees the hub with the session still open: no leak, no use after free. */
    client_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_and_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_cut_and_shared_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_cut_drops_the_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_flood_queues_one_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pong_past_the_bound_closes_1008, setup, teardown),
        cmocka_unit_test_setup_teardown(test_our_close_to_a_peer_that_stopped_reading_is_bounded,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_while_not_reading_is_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_cut_of_a_peer_that_stopped_reading_is_bounded,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_timeout_bounds_a_silent_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hub_free_with_live_sessions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
