/* The transport contract, through the TCP transport on a real loopback pair: init, accept and
 * connect through the type, bytes both ways, peer address, no pending bytes and no certificate
 * for TCP, a shutdown that waits for the queue, and a close that reports once. Then the output
 * queue's two ways out: written at once (no write request; on_drain later, from the flush
 * pass, never inside mc_conn_flush) or partly, the rest through a write request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "net/conn.h"
#include "util/buf.h"

static uv_loop_t loop;
static struct mc_net net;
static uv_tcp_t listener;

struct end {
    struct mc_conn conn;
    struct mc_buf got;
    int eof, closed, connected;
};
static struct end server_end, client_end;

static void on_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct end *e = c->data;
    if (nread < 0) {
        e->eof = 1;
        return;
    }
    mc_buf_append(&e->got, data, (size_t)nread);
}

static void on_closed(struct mc_conn *c)
{
    ((struct end *)c->data)->closed++;
}

static void end_init(struct end *e)
{
    memset(e, 0, sizeof *e);
    mc_buf_init(&e->got);
    /* NULL: the default transport, TCP */
    assert_int_equal(mc_conn_init(&e->conn, &net, NULL), 0);
    assert_ptr_equal(e->conn.type, &mc_conn_tcp_type);
    e->conn.data = e;
    e->conn.on_read = on_read;
    e->conn.on_close = on_closed;
}

static void on_connection(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    assert_int_equal(mc_conn_accept(&server_end.conn, l), 0);
    assert_int_equal(mc_conn_read_start(&server_end.conn), 0);
}

static void on_connected(struct mc_conn *c, int status)
{
    assert_int_equal(status, 0);
    ((struct end *)c->data)->connected = 1;
    mc_conn_read_start(c);
}

static void run_until(int *flag)
{
    for (int i = 0; i < 1000 && !*flag; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static void test_tcp_transport(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    memset(&net, 0, sizeof net);
    net.loop = &loop;
    struct sockaddr_storage addr;
    assert_int_equal(mc_net_parse_address("127.0.0.1:0", &addr), 0);
    uv_tcp_init(&loop, &listener);
    assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 8, on_connection), 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&addr, &len);

    end_init(&server_end);
    end_init(&client_end);
    assert_int_equal(mc_conn_connect(&client_end.conn, (struct sockaddr *)&addr, on_connected), 0);
    run_until(&client_end.connected);

    /* client -> server, then a shutdown queued behind the bytes: they arrive, then EOF */
    mc_conn_write_copy(&client_end.conn, "hello", 5);
    mc_conn_flush(&client_end.conn); /* in flight: the shutdown must wait for it */
    mc_conn_shutdown(&client_end.conn);
    run_until(&server_end.eof);
    assert_int_equal(server_end.got.len, 5);
    assert_memory_equal(server_end.got.data, "hello", 5);

    /* the half-closed client still reads */
    mc_conn_write_copy(&server_end.conn, "world", 5);
    mc_conn_flush(&server_end.conn);
    while (client_end.got.len < 5)
        uv_run(&loop, UV_RUN_ONCE);
    assert_memory_equal(client_end.got.data, "world", 5);

    char peer[64];
    mc_conn_peer_name(&server_end.conn, peer, sizeof peer);
    assert_string_equal(peer, "127.0.0.1");
    assert_int_equal(mc_conn_transport_pending(&server_end.conn), 0);
    assert_null(mc_conn_peer_cert(&server_end.conn));

    mc_conn_close(&server_end.conn, 0);
    mc_conn_close(&client_end.conn, 1);
    mc_conn_close(&client_end.conn, 1); /* idempotent */
    uv_close((uv_handle_t *)&listener, NULL);
    mc_net_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(server_end.closed, 1);
    assert_int_equal(client_end.closed, 1);
    mc_buf_close(&server_end.got);
    mc_buf_close(&client_end.got);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- output written at once, or partly ---- */

static int drains;
static unsigned drain_passes[4];
static int drain_again; /* on_drain asks once for another, a pass later */

static void on_drain(struct mc_conn *c)
{
    if (drains < 4)
        drain_passes[drains] = c->net->flush_pass;
    drains++;
    if (drain_again) {
        drain_again = 0;
        mc_conn_drain_later(c);
    }
}

static void pair_open(void)
{
    uv_loop_init(&loop);
    memset(&net, 0, sizeof net);
    net.loop = &loop;
    struct sockaddr_storage addr;
    assert_int_equal(mc_net_parse_address("127.0.0.1:0", &addr), 0);
    uv_tcp_init(&loop, &listener);
    assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 8, on_connection), 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&addr, &len);
    end_init(&server_end);
    end_init(&client_end);
    assert_int_equal(mc_conn_connect(&client_end.conn, (struct sockaddr *)&addr, on_connected), 0);
    run_until(&client_end.connected);
    while (!server_end.conn.reading)
        uv_run(&loop, UV_RUN_ONCE);
}

static void pair_close(void)
{
    mc_conn_close(&server_end.conn, 1);
    mc_conn_close(&client_end.conn, 1);
    uv_close((uv_handle_t *)&listener, NULL);
    mc_net_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(server_end.closed, 1);
    assert_int_equal(client_end.closed, 1);
    mc_buf_close(&server_end.got);
    mc_buf_close(&client_end.got);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_written_at_once(void **state)
{
    (void)state;
    pair_open();
    drains = 0;
    client_end.conn.on_drain = on_drain;
    mc_conn_write_copy(&client_end.conn, "abc", 3);
    mc_conn_flush(&client_end.conn);
    /* the socket took it: nothing pending, no write request, and no callback inside the call */
    assert_int_equal(mc_conn_pending(&client_end.conn), 0);
    assert_false(client_end.conn.writing);
    assert_int_equal(drains, 0);
    for (int i = 0; i < 1000 && drains == 0; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(drains, 1);
    while (server_end.got.len < 3)
        uv_run(&loop, UV_RUN_ONCE);
    assert_memory_equal(server_end.got.data, "abc", 3);

    /* an owner that asks for on_drain again gets it in a later pass, without I/O to wake it */
    drain_again = 1;
    mc_conn_write_copy(&client_end.conn, "d", 1);
    mc_conn_flush(&client_end.conn);
    for (int i = 0; i < 1000 && drains < 3; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(drains, 3);
    assert_true(drain_passes[2] > drain_passes[1]);
    pair_close();
}

static void test_written_partly(void **state)
{
    (void)state;
    pair_open();
    drains = 0;
    client_end.conn.on_drain = on_drain;
    /* The server does not read: 16 MiB cannot all go at once. */
    mc_conn_read_stop(&server_end.conn);
    const size_t total = 16u << 20;
    struct mc_buf big;
    mc_buf_init(&big);
    for (size_t i = 0; i < total / 4; i++) {
        unsigned v = (unsigned)i;
        mc_buf_append(&big, &v, 4);
    }
    mc_conn_write_copy(&client_end.conn, big.data, 4096); /* two segments: the second is big */
    mc_conn_write_copy(&client_end.conn, big.data + 4096, total - 4096);
    mc_conn_flush(&client_end.conn);
    assert_true(client_end.conn.writing); /* the rest went to a write request */
    assert_true(mc_conn_pending(&client_end.conn) > 0);
    assert_int_equal(drains, 0);
    mc_conn_read_start(&server_end.conn);
    for (int i = 0; i < 100000 && (server_end.got.len < total || drains == 0); i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(server_end.got.len, total);
    assert_memory_equal(server_end.got.data, big.data, total); /* whole and in order */
    assert_int_equal(mc_conn_pending(&client_end.conn), 0);
    assert_int_equal(drains, 1);
    mc_buf_close(&big);
    pair_close();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_transport),
        cmocka_unit_test(test_written_at_once),
        cmocka_unit_test(test_written_partly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
