/* The HTTP server replayed against data files (tests/data/http/cases/NAME.http, with the
 * expected statuses and whether the connection stays open in NAME.expect): each request is
 * sent whole, split in two at every byte, and one byte at a time, through a real loopback
 * connection to a server on this test's own loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/server.h"
#include "util/alloc.h"
#include "util/buf.h"

#ifndef DATA_DIR
#define DATA_DIR "tests/data/http/cases"
#endif
#define SMALL_CASE 2048 /* every-byte splits only for cases up to this size */

static uv_loop_t loop;
static struct mc_net net;
static struct mc_http_server *server;
static int port;

static void echo_handler(struct mc_http_request *req, void *ctx)
{
    (void)ctx;
    char body[64];
    int n = snprintf(body, sizeof body, "%zu", req->body.len);
    mc_http_respond(req, 200, "text/plain", NULL, 0, body, (size_t)n);
}

/* Backpressure probes: how many requests were dispatched, and the most output that was still
 * unsent to the client when one was. */
static unsigned dispatched;
static size_t max_pending_at_dispatch;
#define BIG_ANSWER (100 * 1024)

static void count_handler(struct mc_http_request *req, void *ctx)
{
    (void)ctx;
    dispatched++;
    size_t pending = mc_http_request_pending_output(req);
    if (pending > max_pending_at_dispatch)
        max_pending_at_dispatch = pending;
    static char big[BIG_ANSWER];
    if (req->path_len == 4 && memcmp(req->path, "/big", 4) == 0)
        mc_http_respond(req, 200, "text/plain", NULL, 0, big, sizeof big);
    else
        mc_http_respond(req, 200, "text/plain", NULL, 0, "ok", 2);
}

static const struct mc_http_route routes[] = {
    {"/echo", MC_HTTP_GET | MC_HTTP_POST, 0, echo_handler, NULL},
    {"/count", MC_HTTP_GET, 0, count_handler, NULL},
    {"/big", MC_HTTP_GET, 0, count_handler, NULL},
};

static int setup(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    net.loop = &loop;
    struct mc_http_server_config cfg = {
        .address = "127.0.0.1:0",
        .routes = routes,
        .route_count = sizeof routes / sizeof routes[0],
        .max_body_size = 1024,
        .max_connections = 100,
        .cors = "*",
    };
    server = mc_http_server_new(&net, &cfg);
    char err[256];
    assert_int_equal(mc_http_server_listen(server, err, sizeof err), 0);
    port = mc_http_server_port(server);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mc_http_server_free(server);
    mc_net_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct mc_buf b;
    mc_buf_init(&b);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        mc_buf_append(&b, tmp, n);
    fclose(f);
    return mc_buf_steal(&b, len);
}

static int client_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* connect() to loopback completes once the server's backlog has it; the loop accepts it. */
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void pump(int rounds)
{
    for (int i = 0; i < rounds; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pump(1);
            continue;
        }
        if (n < 0)
            return; /* the server closed: the statuses tell whether that was right */
        p += n;
        len -= (size_t)n;
    }
}

/* Collects what the server answers until it closes or `want` final statuses came and the
 * connection stayed quiet for a few loop turns. Returns 1 when the server closed. */
static int collect(int fd, struct mc_buf *out, int want)
{
    int quiet = 0;
    for (int i = 0; i < 20000; i++) {
        pump(1);
        char buf[8192];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            mc_buf_append(out, buf, (size_t)n);
            quiet = 0;
            continue;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return 1;
        int finals = 0;
        for (const char *p = out->data; p && (p = strstr(p, "HTTP/1.1 ")); p += 9)
            if (strncmp(p + 9, "100 ", 4) != 0)
                finals++;
        if (finals >= want && ++quiet > 50)
            return 0;
        usleep(finals >= want ? 100 : 20);
    }
    fail_msg("no answer in time (%zu bytes so far)", out->len);
    return 0;
}

static void check_case(const char *name, const char *req, size_t len, const char *expect,
                       const size_t *cuts, size_t ncuts)
{
    int want[8], nwant = 0;
    char close_word[16] = "";
    const char *p = expect;
    int consumed;
    while (nwant < 8 && sscanf(p, "%d%n", &want[nwant], &consumed) == 1) {
        nwant++;
        p += consumed;
    }
    sscanf(p, "%15s", close_word);
    int fd = client_connect();
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        send_all(fd, req + prev, end - prev);
        pump(3);
        prev = end;
    }
    struct mc_buf out;
    mc_buf_init(&out);
    int closed = collect(fd, &out, nwant);
    close(fd);
    int got = 0;
    for (const char *q = out.data; q && (q = strstr(q, "HTTP/1.1 ")); q += 9) {
        int status = atoi(q + 9);
        if (status == 100)
            continue;
        if (got >= nwant || status != want[got])
            fail_msg("%s: response %d is %d, want %d\n%s", name, got, status,
                     got < nwant ? want[got] : -1, out.data);
        got++;
    }
    if (got != nwant)
        fail_msg("%s: %d responses, want %d\n%s", name, got, nwant, out.data ? out.data : "");
    if ((strcmp(close_word, "close") == 0) != closed)
        fail_msg("%s: connection %s, want %s (cut %zu)", name, closed ? "closed" : "open",
                 close_word, ncuts ? cuts[0] : 0);
    mc_buf_close(&out);
}

static void test_cases(void **state)
{
    (void)state;
    DIR *d = opendir(DATA_DIR);
    assert_non_null(d);
    struct dirent *e;
    int ran = 0;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl < 6 || strcmp(e->d_name + nl - 5, ".http") != 0)
            continue;
        char path[1024], expect_path[1024];
        snprintf(path, sizeof path, "%s/%s", DATA_DIR, e->d_name);
        snprintf(expect_path, sizeof expect_path, "%s/%.*s.expect", DATA_DIR, (int)(nl - 5),
                 e->d_name);
        size_t len, elen;
        char *req = read_file(path, &len);
        char *expect = read_file(expect_path, &elen);
        assert_non_null(req);
        assert_non_null(expect);
        /* whole */
        check_case(e->d_name, req, len, expect, NULL, 0);
        /* split in two at every byte (or at 64 spread points for big cases) */
        size_t step = len <= SMALL_CASE ? 1 : len / 64;
        for (size_t cut = 1; cut < len; cut += step)
            check_case(e->d_name, req, len, expect, &cut, 1);
        /* one byte at a time (in 97-byte pieces for big cases) */
        size_t piece = len <= SMALL_CASE ? 1 : 97;
        size_t ncuts = (len - 1) / piece;
        size_t *cuts = mc_calloc(ncuts + 1, sizeof *cuts);
        for (size_t i = 0; i < ncuts; i++)
            cuts[i] = (i + 1) * piece;
        check_case(e->d_name, req, len, expect, cuts, ncuts);
        mc_free(cuts);
        mc_free(req);
        mc_free(expect);
        ran++;
    }
    closedir(d);
    assert_true(ran >= 20);
}

/* n pipelined GETs of path in one buffer. */
static char *pipeline(const char *path, int n, size_t *len)
{
    struct mc_buf b;
    mc_buf_init(&b);
    for (int i = 0; i < n; i++)
        mc_buf_appendf(&b, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    return mc_buf_steal(&b, len);
}

/* A client that pipelines and does not read: big answers stop at the high-water mark of unsent
 * output (no request is dispatched above it), and nothing is lost once the client reads. */
static void test_pipeline_high_water(void **state)
{
    (void)state;
    int fd = client_connect();
    size_t len;
    char *reqs = pipeline("/big", 100, &len);
    dispatched = 0;
    max_pending_at_dispatch = 0;
    send_all(fd, reqs, len);
    pump(500);
    assert_true(dispatched > 0);
    assert_true(dispatched < 100); /* 10 MB of answers do not fit in the socket buffers */
    assert_true(max_pending_at_dispatch <= MC_HTTP_OUTPUT_HIGH_WATER);
    /* The client reads: every answer comes, in order. */
    size_t got = 0;
    char buf[65536];
    for (int i = 0; i < 200000 && dispatched < 100; i++) {
        pump(1);
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0)
            got += (size_t)n;
    }
    assert_int_equal(dispatched, 100);
    assert_true(max_pending_at_dispatch <= MC_HTTP_OUTPUT_HIGH_WATER);
    assert_true(got > 0);
    close(fd);
    pump(5);
    mc_free(reqs);
}

/* Small pipelined answers are produced in batches: at most MC_HTTP_PIPELINE_BATCH per loop turn
 * for one connection, so its pipeline cannot hold the loop; all are answered in the end. */
static void test_pipeline_batch_per_turn(void **state)
{
    (void)state;
    int fd = client_connect();
    size_t len;
    const unsigned total = 400;
    char *reqs = pipeline("/count", (int)total, &len);
    dispatched = 0;
    send_all(fd, reqs, len);
    unsigned most = 0;
    struct mc_buf out;
    mc_buf_init(&out);
    for (int i = 0; i < 200000 && dispatched < total; i++) {
        unsigned before = dispatched;
        uv_run(&loop, UV_RUN_NOWAIT);
        if (dispatched - before > most)
            most = dispatched - before;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0)
            mc_buf_append(&out, buf, (size_t)n);
    }
    assert_int_equal(dispatched, total);
    assert_true(most <= MC_HTTP_PIPELINE_BATCH);
    assert_int_equal(collect(fd, &out, (int)total), 0);
    unsigned answers = 0;
    for (const char *p = out.data; (p = strstr(p, "HTTP/1.1 200 ")); p++)
        answers++;
    assert_int_equal(answers, total);
    mc_buf_close(&out);
    close(fd);
    pump(5);
    mc_free(reqs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_pipeline_high_water),
        cmocka_unit_test(test_pipeline_batch_per_turn),
    };
    return cmocka_run_group_tests_name("http_server", tests, setup, teardown);
}
