/* The node index: (name, id) -> (owner, pos), checked against a plain array under random
 * inserts and removes (backward-shift deletion must never lose a key of a probe run). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry/node_index.h"

static void test_insert_find_remove(void **state)
{
    (void)state;
    struct mc_node_index ix;
    mc_node_index_init(&ix);
    assert_null(mc_node_index_find(&ix, "svc", "a"));
    assert_int_equal(mc_node_index_remove(&ix, "svc", "a"), 0);

    int owner1, owner2;
    struct mc_node_slot *s = mc_node_index_insert(&ix, "svc", "a");
    s->owner = &owner1;
    s->pos = 7;
    /* The same id under another name is another key; NULL and "" are the same name. */
    s = mc_node_index_insert(&ix, "other", "a");
    s->owner = &owner2;
    s->pos = 1;
    s = mc_node_index_insert(&ix, NULL, "a");
    s->pos = 99;
    assert_int_equal(ix.count, 3);

    s = mc_node_index_find(&ix, "svc", "a");
    assert_non_null(s);
    assert_ptr_equal(s->owner, &owner1);
    assert_int_equal(s->pos, 7);
    assert_ptr_equal(mc_node_index_find(&ix, "other", "a")->owner, &owner2);
    assert_int_equal(mc_node_index_find(&ix, "", "a")->pos, 99);
    /* "sv" + "ca" must not meet "svc" + "a": the name ends before the id starts. */
    assert_null(mc_node_index_find(&ix, "sv", "ca"));
    assert_null(mc_node_index_find(&ix, "svc", "b"));

    /* Updated in place through the slot (a node moving to another position). */
    mc_node_index_find(&ix, "svc", "a")->pos = 8;
    assert_int_equal(mc_node_index_find(&ix, "svc", "a")->pos, 8);

    assert_int_equal(mc_node_index_remove(&ix, "svc", "a"), 1);
    assert_int_equal(mc_node_index_remove(&ix, "svc", "a"), 0);
    assert_null(mc_node_index_find(&ix, "svc", "a"));
    assert_non_null(mc_node_index_find(&ix, "other", "a"));
    assert_int_equal(ix.count, 2);
    mc_node_index_close(&ix);
    assert_int_equal(ix.count, 0);
    assert_null(mc_node_index_find(&ix, "other", "a"));
    mc_node_index_close(&ix); /* twice is fine */
}

/* 20,000 random inserts and removes over 3,000 keys, compared with a presence array after
 * every step for the touched key and in full every 1,000 steps. */
static void test_random_against_reference(void **state)
{
    (void)state;
    enum { KEYS = 3000, STEPS = 20000 };
    static char ids[KEYS][24];
    static int present[KEYS];
    for (int i = 0; i < KEYS; i++)
        snprintf(ids[i], sizeof ids[i], "node-%d", i);
    memset(present, 0, sizeof present);
    struct mc_node_index ix;
    mc_node_index_init(&ix);
    srand(7);
    size_t count = 0;
    for (int step = 0; step < STEPS; step++) {
        int k = rand() % KEYS;
        if (present[k]) {
            assert_int_equal(mc_node_index_remove(&ix, "svc", ids[k]), 1);
            present[k] = 0;
            count--;
        } else {
            struct mc_node_slot *s = mc_node_index_insert(&ix, "svc", ids[k]);
            s->pos = (size_t)k;
            present[k] = 1;
            count++;
        }
        assert_int_equal(ix.count, count);
        if (step % 1000 != 999)
            continue;
        for (int i = 0; i < KEYS; i++) {
            struct mc_node_slot *s = mc_node_index_find(&ix, "svc", ids[i]);
            if (!present[i]) {
                assert_null(s);
                continue;
            }
            assert_non_null(s);
            assert_int_equal(s->pos, (size_t)i);
        }
    }
    /* At most half full, whatever the history. */
    assert_true(ix.count * 2 <= ix.cap);
    mc_node_index_close(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
