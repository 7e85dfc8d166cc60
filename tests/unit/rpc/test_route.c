/* Unit tests for src/rpc/route: go-micro's path rules, as a table of rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/route.h"
#include "util/alloc.h"
#include "util/error.h"

struct call_row {
    const char *path;
    const char *service; /* NULL: MC_ENOTFOUND expected */
    const char *method;
};

static const struct call_row call_rows[] = {
    {"/foo", "go.micro.srv.foo", "Foo.Call"},
    {"/foo/bar", "go.micro.srv.foo", "Foo.Bar"},
    {"/foo/bar/baz", "go.micro.srv.foo", "Bar.Baz"},
    {"/v1/foo/bar", "go.micro.srv.v1.foo", "Foo.Bar"},
    {"/v1/foo/bar/baz", "go.micro.srv.v1.foo", "Bar.Baz"},
    {"/v1/foo", "go.micro.srv.v1", "V1.Foo"},
    {"/vx/foo/bar", "go.micro.srv.vx", "Foo.Bar"},
    {"/v/foo/bar", "go.micro.srv.v", "Foo.Bar"},
    {"/a/b/c/d", "go.micro.srv.a.b", "C.D"},
    {"/foo/bar?x=1&y=/z/w", "go.micro.srv.foo", "Foo.Bar"},
    {"/foo/bar#frag", "go.micro.srv.foo", "Foo.Bar"},
    {"/foo/bar/", "go.micro.srv.foo", "Foo.Bar"},
    {"//foo//bar", "go.micro.srv.foo", "Foo.Bar"},
    {"/foo/./bar", "go.micro.srv.foo", "Foo.Bar"},
    {"/foo/x/../bar", "go.micro.srv.foo", "Foo.Bar"},
    {"/../foo/bar", "go.micro.srv.foo", "Foo.Bar"},
    {"/greeter/say-hello", "go.micro.srv.greeter", "Greeter.SayHello"},
    {"/my-svc/get-user-info/by-id", "go.micro.srv.my-svc", "GetUserInfo.ById"},
    {"/Foo/Bar", "go.micro.srv.Foo", "Foo.Bar"},
    {"/foo/bar_baz", "go.micro.srv.foo", "Foo.Bar_baz"},
    {"/foo/2fa", "go.micro.srv.foo", "Foo.2fa"},
    {"", NULL, NULL},
    {"/", NULL, NULL},
    {"///", NULL, NULL},
    {"/?service=foo", NULL, NULL},
    {"/..", NULL, NULL},
    {"/foo/-", NULL, NULL},
};

static void test_path_to_call_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof call_rows / sizeof call_rows[0]; i++) {
        const struct call_row *r = &call_rows[i];
        char *svc = (char *)1, *method = (char *)1;
        int rc = mc_route_path_to_call(r->path, strlen(r->path), "go.micro.srv", &svc, &method);
        if (!r->service) {
            assert_int_equal(rc, MC_ENOTFOUND);
            assert_null(svc);
            assert_null(method);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(svc, r->service);
        assert_string_equal(method, r->method);
        mc_free(svc);
        mc_free(method);
    }
}

static void test_path_to_call_len_bounded(void **state)
{
    (void)state;
    /* Only len bytes are read: the path need not be NUL-terminated there. */
    const char *target = "/foo/bar/baz";
    char *svc, *method;
    assert_int_equal(mc_route_path_to_call(target, 8, "ns", &svc, &method), 0);
    assert_string_equal(svc, "ns.foo");
    assert_string_equal(method, "Foo.Bar");
    mc_free(svc);
    mc_free(method);
    assert_int_equal(mc_route_path_to_call("/foo/bar", 8, "", &svc, &method), 0);
    assert_string_equal(svc, "foo");
    assert_string_equal(method, "Foo.Bar");
    mc_free(svc);
    mc_free(method);
}

struct service_row {
    const char *path;
    const char *service; /* NULL: MC_ENOTFOUND expected */
};

static const struct service_row service_rows[] = {
    {"/foo", "go.micro.srv.foo"},
    {"/foo/anything?q=1", "go.micro.srv.foo"},
    {"/foo/a/b/c/", "go.micro.srv.foo"},
    {"/my-svc/x", "go.micro.srv.my-svc"},
    {"/v1/foo/bar", "go.micro.srv.v1.foo"},
    {"/v1/foo", "go.micro.srv.v1.foo"},
    {"/v1", "go.micro.srv.v1"},
    {"/foo?x=/bar", "go.micro.srv.foo"},
    {"", NULL},
    {"/", NULL},
    {"/?q", NULL},
    {"/foo.bar/x", NULL},
    {"/-foo/x", NULL},
    {"/foo-/x", NULL},
    {"/foo--bar/x", NULL},
    {"/foo_bar/x", NULL},
    {"/v1/foo.bar", NULL},
};

static void test_path_to_service_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof service_rows / sizeof service_rows[0]; i++) {
        const struct service_row *r = &service_rows[i];
        char *svc = (char *)1;
        int rc = mc_route_path_to_service(r->path, strlen(r->path), "go.micro.srv", &svc);
        if (!r->service) {
            assert_int_equal(rc, MC_ENOTFOUND);
            assert_null(svc);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(svc, r->service);
        mc_free(svc);
    }
}

/* The allocation-free variant: the same names as the table, into a buffer just big enough, and
 * MC_ETOOBIG with the size needed when it is one byte short. */
static void test_service_into(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof service_rows / sizeof service_rows[0]; i++) {
        const struct service_row *r = &service_rows[i];
        char out[64];
        size_t need = 12345;
        int rc =
            mc_route_service_into(r->path, strlen(r->path), "go.micro.srv", out, sizeof out, &need);
        if (!r->service) {
            assert_int_equal(rc, MC_ENOTFOUND);
            assert_int_equal(need, 12345);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(out, r->service);
        assert_int_equal(need, strlen(r->service) + 1);
        char exact[64];
        assert_int_equal(
            mc_route_service_into(r->path, strlen(r->path), "go.micro.srv", exact, need, &need), 0);
        assert_string_equal(exact, r->service);
        memset(exact, 'x', sizeof exact);
        assert_int_equal(
            mc_route_service_into(r->path, strlen(r->path), "go.micro.srv", exact, need - 1, &need),
            MC_ETOOBIG);
        assert_int_equal(need, strlen(r->service) + 1);
        assert_int_equal(exact[need - 1], 'x'); /* nothing written past the capacity */
    }
    /* no namespace: no leading dot */
    char out[16];
    size_t need;
    assert_int_equal(mc_route_service_into("/v2/foo/x", 9, "", out, sizeof out, &need), 0);
    assert_string_equal(out, "v2.foo");
}

/* Cleaning with more segments than the stack keeps (16), ".." popping back into the kept ones,
 * for both mappings. */
static void test_many_segments(void **state)
{
    (void)state;
    const char *path = "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/../../../../../../../../../../../"
                       "../../../../../../../x/y";
    char *svc, *method;
    assert_int_equal(mc_route_path_to_call(path, strlen(path), "ns", &svc, &method), 0);
    assert_string_equal(svc, "ns.a.b"); /* a/b/x/y */
    assert_string_equal(method, "X.Y");
    mc_free(svc);
    mc_free(method);
    assert_int_equal(mc_route_path_to_service(path, strlen(path), "ns", &svc), 0);
    assert_string_equal(svc, "ns.a");
    mc_free(svc);
    const char *up = "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/../../../../../../../../../../../"
                     "../../../../../../../../../v3/z"; /* past the root */
    char out[32];
    size_t need;
    assert_int_equal(mc_route_service_into(up, strlen(up), "ns", out, sizeof out, &need), 0);
    assert_string_equal(out, "ns.v3.z");
    assert_int_equal(mc_route_path_to_call(up, strlen(up), "ns", &svc, &method), 0);
    assert_string_equal(svc, "ns.v3");
    assert_string_equal(method, "V3.Z");
    mc_free(svc);
    mc_free(method);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_to_call_table),
        cmocka_unit_test(test_path_to_call_len_bounded),
        cmocka_unit_test(test_path_to_service_table),
        cmocka_unit_test(test_service_into),
        cmocka_unit_test(test_many_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
