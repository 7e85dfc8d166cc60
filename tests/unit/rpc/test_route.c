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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_to_call_table),
        cmocka_unit_test(test_path_to_call_len_bounded),
        cmocka_unit_test(test_path_to_service_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
