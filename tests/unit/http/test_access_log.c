/* Unit tests for src/http/access_log: the combined format, then upstream= and duration=. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/access_log.h"
#include "util/alloc.h"

static char *line_of(const struct mc_http_request *req, uint64_t now_ms)
{
    static char line[1024];
    FILE *f = tmpfile();
    assert_non_null(f);
    mc_http_access_log_write(f, req, "10.0.0.7", now_ms);
    rewind(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    return line;
}

static void test_line(void **state)
{
    (void)state;
    struct mc_http_header headers[] = {{"User-Agent", "curl/8"}, {"Referer", "http://r/"}};
    struct mc_http_request req = {.method_name = "GET",
                                  .url = "/foo/bar?x=1",
                                  .http_major = 1,
                                  .http_minor = 1,
                                  .headers = headers,
                                  .header_count = 2,
                                  .start_ms = 1000,
                                  .status = 200,
                                  .bytes_sent = 42};
    mc_http_request_set_upstream(&req, "127.0.0.1:9090");
    char *l = line_of(&req, 1250);
    /* the timestamp is the wall clock's: compare around it */
    assert_true(strncmp(l, "10.0.0.7 - - [", 14) == 0);
    const char *rest = strchr(l, ']');
    assert_non_null(rest);
    assert_string_equal(rest, "] \"GET /foo/bar?x=1 HTTP/1.1\" 200 42 \"http://r/\" \"curl/8\" "
                              "upstream=127.0.0.1:9090 duration=250ms\n");
    mc_http_request_set_upstream(&req, NULL); /* frees the copy */

    /* no node, a refused head (no method or url yet) */
    struct mc_http_request bad = {.http_major = 1, .http_minor = 1, .status = 400};
    rest = strchr(line_of(&bad, 5), ']');
    assert_string_equal(rest, "] \"- - HTTP/1.1\" 400 0 \"-\" \"-\" upstream=- duration=0ms\n");
}

static void test_upstream_owned(void **state)
{
    (void)state;
    struct mc_http_request req = {0};
    mc_http_request_set_upstream(&req, "10.0.0.1:80");
    assert_string_equal(req.upstream, "10.0.0.1:80");
    mc_http_request_give_upstream(&req, mc_strdup("[::1]:8080")); /* replaces, frees the old */
    assert_string_equal(req.upstream, "[::1]:8080");
    mc_http_request_set_upstream(&req, NULL);
    assert_null(req.upstream);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_upstream_owned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
