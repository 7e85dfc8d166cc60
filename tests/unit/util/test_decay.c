/* mc_exp_neg against libm's exp (the test links libm; the sidecar does not). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "util/decay.h"

static void test_matches_exp(void **state)
{
    (void)state;
    for (double x = 0; x < 700; x += x < 4 ? 0.001 : 0.37) {
        double want = exp(-x), got = mc_exp_neg(x);
        assert_true(fabs(got - want) <= 1e-12 * want);
    }
}

static void test_edges(void **state)
{
    (void)state;
    assert_true(mc_exp_neg(0) == 1.0);
    assert_true(mc_exp_neg(-3) == 1.0);
    assert_true(mc_exp_neg(NAN) == 1.0);
    assert_true(mc_exp_neg(746) == 0.0);
    assert_true(mc_exp_neg(INFINITY) == 0.0);
    assert_true(mc_exp_neg(744) > 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_exp),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
