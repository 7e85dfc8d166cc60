/* Unit tests for src/http/body_clock: the request body's bound (mod_reqtimeout's
 * body=T,MinRate=R), a trickle cut after about T, a steady upload never cut, a stall cut,
 * paused time not counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/body_clock.h"

#define T 20000
#define RATE 500

static void test_stopped_has_no_deadline(void **state)
{
    (void)state;
    struct mc_http_body_clock c = {0};
    assert_int_equal(mc_http_body_clock_deadline(&c, T, RATE), 0);
    assert_int_equal(mc_http_body_clock_check(&c, 1000000, T, RATE), MC_HTTP_BODY_OK);
    mc_http_body_clock_start(&c, 0); /* loop time 0 still runs */
    assert_true(mc_http_body_clock_running(&c));
    mc_http_body_clock_stop(&c);
    assert_false(mc_http_body_clock_running(&c));
}

static void test_trickle_is_cut_after_the_grace(void **state)
{
    (void)state;
    struct mc_http_body_clock c;
    uint64_t now = 5000;
    mc_http_body_clock_start(&c, now);
    assert_int_equal(mc_http_body_clock_deadline(&c, T, RATE), 5000 + T);
    /* one byte a second: never silent for T, but far under 500 bytes/s */
    int cut = 0;
    for (int i = 1; i <= 60 && !cut; i++) {
        now += 1000;
        mc_http_body_clock_add(&c, now, 1);
        if (mc_http_body_clock_check(&c, now, T, RATE) == MC_HTTP_BODY_SLOW)
            cut = i;
    }
    /* credit: 1 byte = 2 ms; cut once start + T + 2 ms/byte is behind us: at 21 s */
    assert_int_equal(cut, 21);
}

static void test_steady_upload_is_never_cut(void **state)
{
    (void)state;
    struct mc_http_body_clock c;
    uint64_t now = 1;
    mc_http_body_clock_start(&c, now);
    /* 600 bytes/s for an hour, in 100 ms pieces */
    for (int i = 0; i < 36000; i++) {
        now += 100;
        mc_http_body_clock_add(&c, now, 60);
        assert_int_equal(mc_http_body_clock_check(&c, now, T, RATE), MC_HTTP_BODY_OK);
    }
    /* and a burst before a pause within T is fine as well */
    now += T - 1;
    assert_int_equal(mc_http_body_clock_check(&c, now, T, RATE), MC_HTTP_BODY_OK);
}

static void test_stall_after_a_fast_start_is_cut(void **state)
{
    (void)state;
    struct mc_http_body_clock c;
    mc_http_body_clock_start(&c, 1000);
    mc_http_body_clock_add(&c, 1100, 100 * 1000 * 1000); /* 100 MB: 200,000 s of rate credit */
    assert_int_equal(mc_http_body_clock_deadline(&c, T, RATE), 1100 + T);
    assert_int_equal(mc_http_body_clock_check(&c, 1100 + T - 1, T, RATE), MC_HTTP_BODY_OK);
    assert_int_equal(mc_http_body_clock_check(&c, 1100 + T, T, RATE), MC_HTTP_BODY_STALLED);
}

static void test_no_rate_rule(void **state)
{
    (void)state;
    struct mc_http_body_clock c;
    mc_http_body_clock_start(&c, 1000);
    for (uint64_t now = 2000; now < 1000000; now += 1000)
        mc_http_body_clock_add(&c, now, 1);
    assert_int_equal(mc_http_body_clock_check(&c, 999500, T, 0), MC_HTTP_BODY_OK);
    assert_int_equal(mc_http_body_clock_deadline(&c, T, 0), 999000 + T);
}

static void test_paused_time_is_not_counted(void **state)
{
    (void)state;
    struct mc_http_body_clock c;
    mc_http_body_clock_start(&c, 1000);
    mc_http_body_clock_add(&c, 2000, 1000); /* 2 s of credit */
    mc_http_body_clock_pause(&c, 2000);
    assert_int_equal(mc_http_body_clock_deadline(&c, T, RATE), 0);
    assert_int_equal(mc_http_body_clock_check(&c, 500000, T, RATE), MC_HTTP_BODY_OK);
    mc_http_body_clock_pause(&c, 300000); /* a second pause does not move the first */
    mc_http_body_clock_resume(&c, 500000);
    /* 498 s held: start 499000, last 500000; the silence bound is the nearer */
    assert_int_equal(mc_http_body_clock_deadline(&c, T, RATE), 500000 + T);
    assert_int_equal(mc_http_body_clock_check(&c, 500000 + T - 1, T, RATE), MC_HTTP_BODY_OK);
    mc_http_body_clock_resume(&c, 600000); /* not paused: nothing moves */
    assert_int_equal(mc_http_body_clock_deadline(&c, T, RATE), 500000 + T);
    mc_http_body_clock_add(&c, 510000, 0); /* a zero-length frame is progress, no credit */
    assert_int_equal(mc_http_body_clock_deadline(&c, T, RATE), 499000 + T + 2000);
}

static void test_huge_counts_do_not_overflow(void **state)
{
    (void)state;
    struct mc_http_body_clock c;
    mc_http_body_clock_start(&c, 1000);
    mc_http_body_clock_add(&c, 1000, UINT64_MAX / 500);
    assert_int_equal(mc_http_body_clock_deadline(&c, T, RATE), 1000 + T);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stopped_has_no_deadline),
        cmocka_unit_test(test_trickle_is_cut_after_the_grace),
        cmocka_unit_test(test_steady_upload_is_never_cut),
        cmocka_unit_test(test_stall_after_a_fast_start_is_cut),
        cmocka_unit_test(test_no_rate_rule),
        cmocka_unit_test(test_paused_time_is_not_counted),
        cmocka_unit_test(test_huge_counts_do_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
