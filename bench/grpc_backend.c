/* bench/grpc_backend: the h2c gRPC backend of bench/grpc.sh, in C so the backend is not what
 * the benchmark measures. libuv + nghttp2, one loop. Every POST stream is answered, once its
 * request has ended, as a unary gRPC call: HEADERS (200, application/grpc), one framed
 * message, trailers grpc-status 0. The request's messages are read and dropped.
 *   grpc_backend PORT */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* A 5-byte gRPC frame header (uncompressed, length 11) and the message. */
static const char REPLY[] = "\0\0\0\0\x0bhello bench";
#define REPLY_LEN 16

struct conn {
    uv_tcp_t tcp;
    nghttp2_session *session;
    int closing;
};

struct wreq {
    uv_write_t req;
    uv_buf_t buf;
};

static nghttp2_session_callbacks *cbs;

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    nghttp2_session_del(c->session);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (!c->closing) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    struct wreq *w = (struct wreq *)req;
    free(w->buf.base);
    free(w);
}

/* Everything nghttp2 has to send, in one write. */
static void flush(struct conn *c)
{
    if (c->closing)
        return;
    size_t cap = 16384, len = 0;
    char *out = malloc(cap);
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            free(out);
            conn_close(c);
            return;
        }
        if (n == 0)
            break;
        if (len + (size_t)n > cap) {
            while (len + (size_t)n > cap)
                cap *= 2;
            out = realloc(out, cap);
        }
        memcpy(out + len, data, (size_t)n);
        len += (size_t)n;
    }
    if (len == 0) {
        free(out);
        if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
            conn_close(c);
        return;
    }
    struct wreq *w = malloc(sizeof *w);
    w->buf = uv_buf_init(out, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written) != 0) {
        free(out);
        free(w);
        conn_close(c);
    }
}

static ssize_t read_reply(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                          uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    (void)source;
    (void)user_data;
    size_t n = REPLY_LEN < length ? REPLY_LEN : length;
    memcpy(buf, REPLY, n);
    static const nghttp2_nv trailers[] = {
        {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE},
    };
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    nghttp2_submit_trailer(session, stream_id, trailers, 1);
    return (ssize_t)n;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        static const nghttp2_nv head[] = {
            {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
             NGHTTP2_NV_FLAG_NONE},
        };
        nghttp2_data_provider prd = {.read_callback = read_reply};
        nghttp2_submit_response(session, frame->hd.stream_id, head, 2, &prd);
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    static char slab[65536];
    (void)size;
    *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nghttp2_session_mem_recv(c->session, (const uint8_t *)buf->base, (size_t)nread) < 0) {
        conn_close(c);
        return;
    }
    flush(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    nghttp2_session_server_new(&c->session, cbs, c);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    flush(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: grpc_backend PORT\n");
        return 2;
    }
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&server, 4096, on_connection) != 0) {
        fprintf(stderr, "grpc_backend: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
