/* Unit tests for src/lb: selectors, peak-EWMA, outlier ejection, pick filtering, pruning.
 * Seeded RNG and a fake clock make every run identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <math.h>

#include "lb/lb.h"

struct fake_clock {
    uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
    return ((struct fake_clock *)ctx)->now;
}

static struct fake_clock fc;
static const struct mc_clock test_clock = {fake_now, &fc};

static const char *const abc[] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"};
static const char *const abcd[] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"};

static struct mc_lb *new_lb(const struct mc_lb_selector_ops *ops)
{
    fc.now = 1000000;
    return mc_lb_new(ops, &test_clock, 42);
}

/* Picks target among addrs by excluding every other address, as a retry would. */
static struct mc_lb_endpoint *pick_only(struct mc_lb *lb, const char *svc, const char *const *addrs,
                                        size_t n, const char *target)
{
    const char *others[8];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(addrs[i], target) != 0)
            others[k++] = addrs[i];
    enum mc_lb_status st;
    struct mc_lb_endpoint *ep = mc_lb_pick(lb, svc, addrs, n, others, k, &st);
    assert_non_null(ep);
    assert_int_equal(st, MC_LB_PICKED);
    assert_string_equal(mc_lb_endpoint_address(ep), target);
    return ep;
}

static void call(struct mc_lb_endpoint *ep, int ok, uint64_t latency_us)
{
    mc_lb_call_start(ep);
    mc_lb_call_done(ep, ok, latency_us);
}

static void fail_times(struct mc_lb *lb, const char *const *addrs, size_t n, const char *target,
                       int times)
{
    for (int i = 0; i < times; i++)
        call(pick_only(lb, "svc", addrs, n, target), 0, 1000);
}

static size_t index_of(const struct mc_lb_endpoint *ep, const char *const *addrs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(mc_lb_endpoint_address(ep), addrs[i]) == 0)
            return i;
    fail_msg("picked an address not in the list");
    return 0;
}

static void test_selector_find(void **state)
{
    (void)state;
    assert_ptr_equal(mc_lb_selector_find("random"), &mc_lb_random_ops);
    assert_ptr_equal(mc_lb_selector_find("roundrobin"), &mc_lb_roundrobin_ops);
    assert_ptr_equal(mc_lb_selector_find("p2c"), &mc_lb_p2c_ops);
    assert_null(mc_lb_selector_find("leastconn"));
    assert_null(mc_lb_selector_find(""));
}

static void test_random_spread(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_random_ops);
    size_t count[3] = {0};
    for (int i = 0; i < 3000; i++)
        count[index_of(mc_lb_pick(lb, "svc", abc, 3, NULL, 0, NULL), abc, 3)]++;
    for (int i = 0; i < 3; i++) {
        assert_in_range(count[i], 900, 1100);
    }
    mc_lb_free(lb);
}

static void test_random_is_seeded(void **state)
{
    (void)state;
    struct mc_lb *a = new_lb(&mc_lb_random_ops);
    struct mc_lb *b = new_lb(&mc_lb_random_ops);
    struct mc_lb *c = mc_lb_new(&mc_lb_random_ops, &test_clock, 7);
    int differs = 0;
    for (int i = 0; i < 64; i++) {
        uint64_t x = mc_lb_random(a);
        assert_true(x == mc_lb_random(b));
        differs |= x != mc_lb_random(c);
        assert_true(mc_lb_random_below(a, 5) < 5);
        mc_lb_random_below(b, 5);
    }
    assert_true(differs);
    mc_lb_free(a);
    mc_lb_free(b);
    mc_lb_free(c);
}

static void test_roundrobin_cycles(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_roundrobin_ops);
    static const char *const xy[] = {"10.9.0.1:1", "10.9.0.2:1"};
    for (int i = 0; i < 9; i++) {
        /* The caller rebuilds the list on every call from the registry view. */
        const char *view[3] = {abc[0], abc[1], abc[2]};
        struct mc_lb_endpoint *ep = mc_lb_pick(lb, "svc", view, 3, NULL, 0, NULL);
        assert_string_equal(mc_lb_endpoint_address(ep), abc[i % 3]);
        /* Another service interleaved keeps its own position. */
        ep = mc_lb_pick(lb, "other", xy, 2, NULL, 0, NULL);
        assert_string_equal(mc_lb_endpoint_address(ep), xy[i % 2]);
    }
    mc_lb_free(lb);
}

static void test_p2c_prefers_fast(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_p2c_ops);
    const uint64_t lat[3] = {1000, 20000, 20000}; /* a is 20x faster */
    size_t count[3] = {0};
    for (int i = 0; i < 3000; i++) {
        struct mc_lb_endpoint *ep = mc_lb_pick(lb, "svc", abc, 3, NULL, 0, NULL);
        size_t k = index_of(ep, abc, 3);
        count[k]++;
        call(ep, 1, lat[k]);
        fc.now += 1;
    }
    /* p2c takes a whenever a is one of the two draws (2 of 3 pairs), after the warm-up. */
    assert_true(count[0] > 1900);
    assert_true(count[1] > 100 && count[2] > 100);
    mc_lb_free(lb);
}

static void test_p2c_under_load(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_p2c_ops);
    static const char *const ab[] = {"10.0.0.1:80", "10.0.0.2:80"};
    call(pick_only(lb, "svc", ab, 2, ab[0]), 1, 1000);
    call(pick_only(lb, "svc", ab, 2, ab[1]), 1, 5000);
    /* Calls pile up on the fast node while its load, 1 ms x (k + 1), is under the slow one's
     * 5 ms x 1: four picks go to a. */
    struct mc_lb_endpoint *a = mc_lb_endpoint_find(lb, ab[0]);
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(mc_lb_pick(lb, "svc", ab, 2, NULL, 0, NULL), a);
        mc_lb_call_start(a);
    }
    assert_int_equal(mc_lb_endpoint_inflight(a), 4);
    assert_true(fabs(mc_lb_endpoint_load(a) - 5000.0) < 1e-6); /* a tie: either may win */
    mc_lb_call_start(a);
    /* Now 6 ms against 5 ms: the slow idle node wins, every time. */
    struct mc_lb_endpoint *b = mc_lb_endpoint_find(lb, ab[1]);
    for (int i = 0; i < 20; i++)
        assert_ptr_equal(mc_lb_pick(lb, "svc", ab, 2, NULL, 0, NULL), b);
    for (int i = 0; i < 5; i++)
        mc_lb_call_done(a, 1, 1000);
    assert_int_equal(mc_lb_endpoint_inflight(a), 0);
    assert_ptr_equal(mc_lb_pick(lb, "svc", ab, 2, NULL, 0, NULL), a);
    mc_lb_free(lb);
}

static void test_p2c_inflight_penalty_same_latency(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_p2c_ops);
    static const char *const ab[] = {"10.0.0.1:80", "10.0.0.2:80"};
    struct mc_lb_endpoint *a = pick_only(lb, "svc", ab, 2, ab[0]);
    struct mc_lb_endpoint *b = pick_only(lb, "svc", ab, 2, ab[1]);
    call(a, 1, 10000);
    call(b, 1, 10000);
    mc_lb_call_start(a);
    for (int i = 0; i < 50; i++)
        assert_ptr_equal(mc_lb_pick(lb, "svc", ab, 2, NULL, 0, NULL), b);
    assert_true(mc_lb_endpoint_load(a) > mc_lb_endpoint_load(b));
    mc_lb_call_done(a, 1, 10000);
    mc_lb_free(lb);
}

static void test_p2c_new_node_tried_but_penalised(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_p2c_ops);
    static const char *const ab[] = {"10.0.0.1:80", "10.0.0.2:80"};
    struct mc_lb_endpoint *a = pick_only(lb, "svc", ab, 2, ab[0]);
    call(a, 1, 1000);
    /* b has no sample: cost 0, so it wins against a known 1 ms node... */
    struct mc_lb_endpoint *b = mc_lb_pick(lb, "svc", ab, 2, NULL, 0, NULL);
    assert_string_equal(mc_lb_endpoint_address(b), ab[1]);
    assert_true(mc_lb_endpoint_load(b) == 0.0);
    /* ...but while its first call is in flight it is the worst choice. */
    mc_lb_call_start(b);
    assert_true(mc_lb_endpoint_load(b) >= MC_LB_PENALTY_US);
    for (int i = 0; i < 20; i++)
        assert_ptr_equal(mc_lb_pick(lb, "svc", ab, 2, NULL, 0, NULL), a);
    mc_lb_call_done(b, 1, 3000);
    assert_true(fabs(mc_lb_endpoint_load(b) - 3000.0) < 1e-6);
    mc_lb_free(lb);
}

static void test_ewma_peak_and_decay(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_p2c_ops);
    static const char *const a1[] = {"10.0.0.1:80"};
    struct mc_lb_endpoint *a = mc_lb_pick(lb, "svc", a1, 1, NULL, 0, NULL);
    assert_true(mc_lb_endpoint_ewma_us(a) == 0.0);
    call(a, 1, 10000);
    assert_true(fabs(mc_lb_endpoint_ewma_us(a) - 10000.0) < 1e-6);
    /* A higher sample is a peak: taken at once. */
    call(a, 1, 1000000);
    assert_true(fabs(mc_lb_endpoint_ewma_us(a) - 1000000.0) < 1e-6);
    /* A lower sample one tau later: w = e^-1. */
    fc.now += MC_LB_EWMA_TAU_MS;
    call(a, 1, 10000);
    double want = 1000000.0 * exp(-1.0) + 10000.0 * (1.0 - exp(-1.0));
    assert_true(fabs(mc_lb_endpoint_ewma_us(a) - want) < 1e-3);
    /* With no sample it decays toward 0 as time passes, and reading does not change it. */
    fc.now += 2 * MC_LB_EWMA_TAU_MS;
    assert_true(fabs(mc_lb_endpoint_ewma_us(a) - want * exp(-2.0)) < 1e-3);
    assert_true(fabs(mc_lb_endpoint_ewma_us(a) - want * exp(-2.0)) < 1e-3);
    mc_lb_free(lb);
}

static void test_p2c_spiked_node_tried_again_later(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_p2c_ops);
    static const char *const ab[] = {"10.0.0.1:80", "10.0.0.2:80"};
    struct mc_lb_endpoint *a = pick_only(lb, "svc", ab, 2, ab[0]);
    struct mc_lb_endpoint *b = pick_only(lb, "svc", ab, 2, ab[1]);
    call(a, 1, 2000);
    call(b, 1, 1000000); /* one 1 s spike */
    int got_b = 0;
    for (int i = 0; i < 200 && !got_b; i++) {
        struct mc_lb_endpoint *ep = mc_lb_pick(lb, "svc", ab, 2, NULL, 0, NULL);
        if (ep == b) {
            got_b = 1;
            break;
        }
        call(ep, 1, 2000); /* a keeps answering in 2 ms, so its estimate stays fresh */
        fc.now += 1000;
    }
    /* 1 s x e^(-t/10 s) falls under 2 ms after ~62 s: b is tried again then, not before. */
    assert_true(got_b);
    assert_true(fc.now - 1000000 > 55000);
    assert_true(fc.now - 1000000 < 70000);
    mc_lb_free(lb);
}

static void test_failure_latency_only_raises(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_p2c_ops);
    static const char *const a1[] = {"10.0.0.1:80"};
    struct mc_lb_endpoint *a = mc_lb_pick(lb, "svc", a1, 1, NULL, 0, NULL);
    call(a, 1, 50000);
    fc.now += MC_LB_EWMA_TAU_MS;
    double before = mc_lb_endpoint_ewma_us(a);
    call(a, 0, 100); /* fast "connection refused" */
    assert_true(fabs(mc_lb_endpoint_ewma_us(a) - before) < 1e-6);
    call(a, 0, 5000000); /* a timeout is a peak */
    assert_true(fabs(mc_lb_endpoint_ewma_us(a) - 5000000.0) < 1e-6);
    mc_lb_free(lb);
}

static void test_eject_after_five_not_four(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_random_ops);
    fail_times(lb, abc, 3, abc[0], 4);
    struct mc_lb_endpoint *a = mc_lb_endpoint_find(lb, abc[0]);
    assert_int_equal(mc_lb_endpoint_failures(a), 4);
    assert_int_equal(mc_lb_endpoint_ejected_ms(a), 0);
    pick_only(lb, "svc", abc, 3, abc[0]); /* still eligible */
    fail_times(lb, abc, 3, abc[0], 1);
    assert_int_equal(mc_lb_endpoint_ejected_ms(a), MC_LB_EJECT_BASE_MS);
    assert_int_equal(mc_lb_endpoint_times_ejected(a), 1);
    for (int i = 0; i < 300; i++)
        assert_ptr_not_equal(mc_lb_pick(lb, "svc", abc, 3, NULL, 0, NULL), a);
    mc_lb_free(lb);
}

/* Runs fn with stderr captured; returns what it printed (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp);
    char *text = calloc(1, (size_t)n + 1);
    rewind(tmp);
    assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

static void eject_and_return(void)
{
    fc.now = 1000;
    struct mc_lb *lb = new_lb(&mc_lb_random_ops);
    fail_times(lb, abc, 3, abc[0], 5);
    mc_lb_pick(lb, "svc", abc, 3, NULL, 0, NULL); /* still ejected: nothing said */
    fc.now += MC_LB_EJECT_BASE_MS;
    mc_lb_pick(lb, "svc", abc, 3, NULL, 0, NULL); /* back */
    mc_lb_pick(lb, "svc", abc, 3, NULL, 0, NULL); /* said once */
    mc_lb_free(lb);
}

static void test_ejection_and_return_are_logged_once(void **state)
{
    (void)state;
    char *text = capture_stderr(eject_and_return);
    const char *eject = "node 10.0.0.1:80 of svc ejected for 30s after 5 consecutive failures";
    const char *back = "node 10.0.0.1:80 of svc back in rotation after its ejection";
    char *at = strstr(text, eject);
    assert_non_null(at);
    assert_null(strstr(at + 1, eject));
    at = strstr(text, back);
    assert_non_null(at);
    assert_null(strstr(at + 1, back));
    assert_true(strstr(text, eject) < strstr(text, back));
    free(text);
}

static void test_success_resets_failures(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_random_ops);
    fail_times(lb, abc, 3, abc[0], 4);
    call(pick_only(lb, "svc", abc, 3, abc[0]), 1, 1000);
    struct mc_lb_endpoint *a = mc_lb_endpoint_find(lb, abc[0]);
    assert_int_equal(mc_lb_endpoint_failures(a), 0);
    fail_times(lb, abc, 3, abc[0], 4);
    assert_int_equal(mc_lb_endpoint_ejected_ms(a), 0);
    fail_times(lb, abc, 3, abc[0], 1);
    assert_true(mc_lb_endpoint_ejected_ms(a) > 0);
    mc_lb_free(lb);
}

static void test_backoff_grows_and_caps(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_random_ops);
    const uint64_t want[] = {30000,  60000,  90000,  120000, 150000, 180000,
                             210000, 240000, 270000, 300000, 300000, 300000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        fail_times(lb, abc, 3, abc[0], 5);
        struct mc_lb_endpoint *a = mc_lb_endpoint_find(lb, abc[0]);
        assert_int_equal(mc_lb_endpoint_ejected_ms(a), want[i]);
        /* Ejection expires by time, not before. */
        fc.now += want[i] - 1;
        assert_int_equal(mc_lb_endpoint_ejected_ms(a), 1);
        fc.now += 1;
        assert_int_equal(mc_lb_endpoint_ejected_ms(a), 0);
    }
    /* A node that behaves for the longest ejection starts its backoff over. */
    struct mc_lb_endpoint *a = mc_lb_endpoint_find(lb, abc[0]);
    fc.now += MC_LB_EJECT_MAX_MS / 2;
    call(pick_only(lb, "svc", abc, 3, abc[0]), 1, 1000);
    fc.now += MC_LB_EJECT_MAX_MS / 2;
    fail_times(lb, abc, 3, abc[0], 5);
    assert_ptr_equal(mc_lb_endpoint_find(lb, abc[0]), a); /* same state, not a pruned one */
    assert_int_equal(mc_lb_endpoint_times_ejected(a), 1);
    assert_int_equal(mc_lb_endpoint_ejected_ms(a), MC_LB_EJECT_BASE_MS);
    mc_lb_free(lb);
}

static void test_never_more_than_half(void **state)
{
    (void)state;
    /* 1 node: never ejected. */
    struct mc_lb *lb = new_lb(&mc_lb_random_ops);
    fail_times(lb, abc, 1, abc[0], 20);
    assert_int_equal(mc_lb_endpoint_ejected_ms(mc_lb_endpoint_find(lb, abc[0])), 0);
    mc_lb_free(lb);

    /* 3 nodes: at most 1. */
    lb = new_lb(&mc_lb_random_ops);
    fail_times(lb, abc, 3, abc[0], 5);
    fail_times(lb, abc, 3, abc[1], 5);
    fail_times(lb, abc, 3, abc[2], 5);
    assert_true(mc_lb_endpoint_ejected_ms(mc_lb_endpoint_find(lb, abc[0])) > 0);
    assert_int_equal(mc_lb_endpoint_ejected_ms(mc_lb_endpoint_find(lb, abc[1])), 0);
    assert_int_equal(mc_lb_endpoint_ejected_ms(mc_lb_endpoint_find(lb, abc[2])), 0);
    /* Once a's ejection ends, b's next failure ejects it (failures stayed counted). */
    fc.now += MC_LB_EJECT_BASE_MS;
    fail_times(lb, abc, 3, abc[1], 1);
    assert_true(mc_lb_endpoint_ejected_ms(mc_lb_endpoint_find(lb, abc[1])) > 0);
    mc_lb_free(lb);

    /* 4 nodes: at most 2. */
    lb = new_lb(&mc_lb_random_ops);
    for (int i = 0; i < 4; i++)
        fail_times(lb, abcd, 4, abcd[i], 5);
    size_t ejected = 0;
    for (int i = 0; i < 4; i++)
        ejected += mc_lb_endpoint_ejected_ms(mc_lb_endpoint_find(lb, abcd[i])) > 0;
    assert_int_equal(ejected, 2);
    mc_lb_free(lb);
}

static void test_exclude_honored(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_random_ops);
    const char *tried[] = {abc[0], abc[2]};
    for (int i = 0; i < 100; i++) {
        struct mc_lb_endpoint *ep = mc_lb_pick(lb, "svc", abc, 3, tried, 2, NULL);
        assert_string_equal(mc_lb_endpoint_address(ep), abc[1]);
    }
    enum mc_lb_status st = MC_LB_PICKED;
    assert_null(mc_lb_pick(lb, "svc", abc, 3, abc, 3, &st));
    assert_int_equal(st, MC_LB_ALL_TRIED);
    mc_lb_free(lb);
}

static void test_nothing_eligible(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_p2c_ops);
    enum mc_lb_status st = MC_LB_PICKED;
    assert_null(mc_lb_pick(lb, "svc", NULL, 0, NULL, 0, &st));
    assert_int_equal(st, MC_LB_NO_NODES);
    assert_null(mc_lb_pick(lb, "svc", NULL, 0, NULL, 0, NULL));

    /* Eject half of four nodes, then the registry drops the healthy two: all ejected. */
    fail_times(lb, abcd, 4, abcd[0], 5);
    fail_times(lb, abcd, 4, abcd[1], 5);
    assert_null(mc_lb_pick(lb, "svc", abcd, 2, NULL, 0, &st));
    assert_int_equal(st, MC_LB_ALL_EJECTED);
    /* One tried, the rest ejected: the caller reports its attempt's error, not 503. */
    assert_null(mc_lb_pick(lb, "svc", abcd, 3, &abcd[2], 1, &st));
    assert_int_equal(st, MC_LB_ALL_TRIED);
    /* Ejection over: eligible again. */
    fc.now += MC_LB_EJECT_BASE_MS;
    assert_non_null(mc_lb_pick(lb, "svc", abcd, 2, NULL, 0, &st));
    assert_int_equal(st, MC_LB_PICKED);
    mc_lb_free(lb);
}

static void test_endpoint_table_and_prune(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_roundrobin_ops);
    static const char *const zyx[] = {"z:1", "y:1", "x:1"};
    mc_lb_pick(lb, "svc", zyx, 3, NULL, 0, NULL);
    assert_int_equal(mc_lb_endpoint_count(lb), 3);
    assert_string_equal(mc_lb_endpoint_address(mc_lb_endpoint_at(lb, 0)), "x:1");
    assert_string_equal(mc_lb_endpoint_address(mc_lb_endpoint_at(lb, 2)), "z:1");
    assert_null(mc_lb_endpoint_at(lb, 3));
    assert_null(mc_lb_endpoint_find(lb, "w:1"));
    struct mc_lb_endpoint *busy = mc_lb_endpoint_find(lb, "y:1");
    mc_lb_call_start(busy);

    /* Long unseen: only the endpoint with a call in flight survives the next pick. */
    fc.now += MC_LB_PRUNE_AFTER_MS;
    static const char *const other[] = {"o:1"};
    mc_lb_pick(lb, "other", other, 1, NULL, 0, NULL);
    assert_int_equal(mc_lb_endpoint_count(lb), 2);
    assert_null(mc_lb_endpoint_find(lb, "x:1"));
    assert_ptr_equal(mc_lb_endpoint_find(lb, "y:1"), busy);
    mc_lb_call_done(busy, 0, 10);
    assert_int_equal(mc_lb_endpoint_inflight(busy), 0);
    mc_lb_free(lb);
}

/* A kept list (the same list_id): the endpoint table is reused, every rule still holds
 * (ejection, exclusion, the back-in-rotation log), and the endpoints of a service picked from
 * that way are not pruned as unseen. */
static void test_kept_list(void **state)
{
    (void)state;
    struct mc_lb *lb = new_lb(&mc_lb_roundrobin_ops);
    enum mc_lb_status st;
    struct mc_lb_endpoint *seen[3] = {0};
    for (int i = 0; i < 3; i++) {
        struct mc_lb_endpoint *ep = mc_lb_pick_list(lb, "svc", 7, abc, 3, NULL, 0, &st);
        assert_int_equal(st, MC_LB_PICKED);
        seen[i] = ep;
    }
    /* round robin over the kept table: each node once */
    assert_ptr_not_equal(seen[0], seen[1]);
    assert_ptr_not_equal(seen[1], seen[2]);
    assert_ptr_not_equal(seen[0], seen[2]);

    /* an ejected node is skipped though the list is the same */
    struct mc_lb_endpoint *a = mc_lb_endpoint_find(lb, abc[0]);
    for (int i = 0; i < MC_LB_EJECT_FAILURES; i++)
        call(a, 0, 10);
    assert_true(mc_lb_endpoint_ejected_ms(a) > 0);
    for (int i = 0; i < 6; i++)
        assert_ptr_not_equal(mc_lb_pick_list(lb, "svc", 7, abc, 3, NULL, 0, &st), a);
    /* exclusion as well */
    for (int i = 0; i < 4; i++)
        assert_string_equal(
            mc_lb_endpoint_address(mc_lb_pick_list(lb, "svc", 7, abc, 3, &abc[1], 1, &st)), abc[2]);
    /* after the ejection, a is a candidate again */
    fc.now += MC_LB_EJECT_BASE_MS;
    int got_a = 0;
    for (int i = 0; i < 3; i++)
        got_a += mc_lb_pick_list(lb, "svc", 7, abc, 3, NULL, 0, &st) == a;
    assert_int_equal(got_a, 1);

    /* picked from every minute by the kept list only: nothing is pruned */
    for (int i = 0; i < 12; i++) {
        fc.now += MC_LB_PRUNE_AFTER_MS / 10;
        assert_non_null(mc_lb_pick_list(lb, "svc", 7, abc, 3, NULL, 0, &st));
    }
    assert_int_equal(mc_lb_endpoint_count(lb), 3);
    assert_ptr_equal(mc_lb_endpoint_find(lb, abc[0]), a);
    assert_int_equal(mc_lb_endpoint_times_ejected(a), 1);

    /* a new list id is read again: a node that left is not picked */
    for (int i = 0; i < 4; i++)
        assert_string_not_equal(
            mc_lb_endpoint_address(mc_lb_pick_list(lb, "svc", 8, abc, 2, NULL, 0, &st)), abc[2]);
    mc_lb_free(lb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selector_find),
        cmocka_unit_test(test_random_spread),
        cmocka_unit_test(test_random_is_seeded),
        cmocka_unit_test(test_roundrobin_cycles),
        cmocka_unit_test(test_p2c_prefers_fast),
        cmocka_unit_test(test_p2c_under_load),
        cmocka_unit_test(test_p2c_inflight_penalty_same_latency),
        cmocka_unit_test(test_p2c_new_node_tried_but_penalised),
        cmocka_unit_test(test_ewma_peak_and_decay),
        cmocka_unit_test(test_p2c_spiked_node_tried_again_later),
        cmocka_unit_test(test_failure_latency_only_raises),
        cmocka_unit_test(test_eject_after_five_not_four),
        cmocka_unit_test(test_success_resets_failures),
        cmocka_unit_test(test_ejection_and_return_are_logged_once),
        cmocka_unit_test(test_backoff_grows_and_caps),
        cmocka_unit_test(test_never_more_than_half),
        cmocka_unit_test(test_exclude_honored),
        cmocka_unit_test(test_nothing_eligible),
        cmocka_unit_test(test_endpoint_table_and_prune),
        cmocka_unit_test(test_kept_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
