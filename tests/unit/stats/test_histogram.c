/* Unit tests for src/stats/histogram: bucket edges, exact `le` counts, quantiles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "stats/histogram.h"

static void test_bucket_edges(void **state)
{
    (void)state;
    /* 0 and 1 share the first bucket; each bucket is closed above */
    assert_int_equal(mc_histogram_bucket_of(0), 0);
    assert_int_equal(mc_histogram_bucket_of(1), 0);
    assert_int_equal(mc_histogram_bucket_of(2), 1);
    assert_int_equal(mc_histogram_bucket_of(10), 9);
    assert_int_equal(mc_histogram_bucket_of(11), 10);
    assert_int_equal(mc_histogram_bucket_of(20), 10);
    assert_int_equal(mc_histogram_bucket_of(21), 11);
    assert_int_equal(mc_histogram_bucket_of(100), 18);
    assert_int_equal(mc_histogram_bucket_of(101), 19);
    assert_int_equal(mc_histogram_bucket_of(100000000), MC_HISTOGRAM_BUCKETS - 2);
    assert_int_equal(mc_histogram_bucket_of(100000001), MC_HISTOGRAM_BUCKETS - 1);
    assert_int_equal(mc_histogram_bucket_of(UINT64_MAX), MC_HISTOGRAM_BUCKETS - 1);
    assert_true(mc_histogram_upper_us(MC_HISTOGRAM_BUCKETS - 1) == UINT64_MAX);
    /* every value lies in (upper(i-1), upper(i)] of its bucket, and edges grow */
    for (uint64_t v = 0; v < 3000000; v += v < 2000 ? 1 : 997) {
        size_t i = mc_histogram_bucket_of(v);
        assert_true(v <= mc_histogram_upper_us(i));
        if (i > 0)
            assert_true(v > mc_histogram_upper_us(i - 1));
    }
    for (size_t i = 1; i + 1 < MC_HISTOGRAM_BUCKETS; i++)
        assert_true(mc_histogram_upper_us(i) > mc_histogram_upper_us(i - 1));
    /* log-linear: no bucket above 10 µs is wider than its lower edge */
    for (size_t i = 10; i + 1 < MC_HISTOGRAM_BUCKETS; i++)
        assert_true(mc_histogram_upper_us(i) - mc_histogram_upper_us(i - 1) <=
                    mc_histogram_upper_us(i - 1));
}

static void test_count_le_is_exact_at_edges(void **state)
{
    (void)state;
    struct mc_histogram h;
    memset(&h, 0, sizeof h);
    const uint64_t values[] = {0, 1, 999, 1000, 1001, 2000, 2001, 5000, 250000, 7000000};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        mc_histogram_record(&h, values[i]);
    assert_int_equal(h.count, 10);
    assert_int_equal(h.max_us, 7000000);
    assert_int_equal(h.sum_us, 0 + 1 + 999 + 1000 + 1001 + 2000 + 2001 + 5000 + 250000 + 7000000);
    assert_int_equal(mc_histogram_count_le(&h, 1), 2);
    assert_int_equal(mc_histogram_count_le(&h, 1000), 4); /* le is inclusive */
    assert_int_equal(mc_histogram_count_le(&h, 2000), 6);
    assert_int_equal(mc_histogram_count_le(&h, 5000), 8);
    assert_int_equal(mc_histogram_count_le(&h, 200000), 8);
    assert_int_equal(mc_histogram_count_le(&h, 500000), 9);
    assert_int_equal(mc_histogram_count_le(&h, 10000000), 10);
}

static void test_quantiles(void **state)
{
    (void)state;
    struct mc_histogram h;
    memset(&h, 0, sizeof h);
    assert_int_equal(mc_histogram_quantile(&h, 0.5), 0); /* empty */
    /* 1..1000 µs, one each: every quantile within one bucket's width of the true value */
    for (uint64_t v = 1; v <= 1000; v++)
        mc_histogram_record(&h, v);
    const double qs[] = {0.5, 0.9, 0.99};
    for (size_t i = 0; i < 3; i++) {
        uint64_t got = mc_histogram_quantile(&h, qs[i]);
        uint64_t truth = (uint64_t)(qs[i] * 1000);
        assert_true(got >= truth - truth / 10 && got <= truth + truth / 10);
    }
    assert_int_equal(mc_histogram_quantile(&h, 1.0), 1000);
    /* never above the largest value, even when its bucket's edge is */
    struct mc_histogram one;
    memset(&one, 0, sizeof one);
    mc_histogram_record(&one, 47800);
    assert_int_equal(mc_histogram_quantile(&one, 0.5), 47800);
    assert_int_equal(mc_histogram_quantile(&one, 0.99), 47800);
    /* monotonic in q */
    uint64_t prev = 0;
    for (double q = 0.01; q <= 1.0; q += 0.01) {
        uint64_t v = mc_histogram_quantile(&h, q);
        assert_true(v >= prev);
        prev = v;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_count_le_is_exact_at_edges),
        cmocka_unit_test(test_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
