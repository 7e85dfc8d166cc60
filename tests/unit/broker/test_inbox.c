/* Unit tests for src/broker/inbox.c: messages handed in from another thread reach the loop in
 * order, batched (one wake-up carries many), delivered by subscription id so an unsubscribe
 * made while messages are queued is safe; the byte bound drops and counts; events interleave
 * with messages in push order. Run under ASan/UBSan by `make SANITIZE=1 test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "broker/broker.h"
#include "broker/inbox.h"
#include "util/alloc.h"
#include "util/error.h"

#define THREAD_MESSAGES 20000

/* A subscriber that counts, checks order, and poisons itself when unsubscribed so a delivery
 * after the unsubscribe would be caught. */
struct counter {
    uint64_t id;
    uint64_t received;
    long last_seq;
    int alive;
};

static void on_deliver(void *ctx, struct mc_broker_message *msg)
{
    struct counter *c = ctx;
    assert_true(c->alive);
    size_t len;
    const char *json = mc_broker_message_json(msg, &len);
    /* Body is base64 of the decimal sequence number; the topic carries it in clear. */
    (void)json;
    long seq = strtol(mc_broker_message_topic(msg) + 2, NULL, 10);
    assert_true(seq > c->last_seq);
    c->last_seq = seq;
    c->received++;
}

struct fixture {
    uv_loop_t loop;
    struct mc_broker *b;
    struct mc_broker_inbox *in;
    uint64_t delivered, missed;
    int events[8];
    size_t nevents;
    char last_text[64];
};

static void inbox_message(void *ctx, uint64_t key, struct mc_broker_message *msg)
{
    struct fixture *f = ctx;
    if (mc_broker_deliver_id(f->b, key, msg) == 0)
        f->delivered++;
    else
        f->missed++;
}

static void inbox_event(void *ctx, int event, const char *text)
{
    struct fixture *f = ctx;
    if (f->nevents < 8)
        f->events[f->nevents++] = event;
    snprintf(f->last_text, sizeof f->last_text, "%s", text ? text : "");
}

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->b = mc_broker_new(&mc_broker_memory_ops, &f->loop, NULL);
    assert_int_equal(mc_broker_start(f->b), 0);
    f->in = mc_broker_inbox_new(&f->loop, inbox_message, inbox_event, f);
}

static void fixture_close(struct fixture *f)
{
    mc_broker_inbox_free(f->in);
    mc_broker_free(f->b);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the inbox's close callback frees it */
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static struct mc_broker_message *numbered(const char *prefix, long seq)
{
    char topic[32];
    snprintf(topic, sizeof topic, "%s%ld", prefix, seq);
    return mc_broker_message_new(topic, NULL, 0, "x", 1);
}

struct producer {
    struct mc_broker_inbox *in;
    uint64_t id_a, id_b;
    atomic_int pushed;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (long i = 1; i <= THREAD_MESSAGES; i++) {
        assert_int_equal(mc_broker_inbox_push(p->in, p->id_a, numbered("a.", i)), 0);
        assert_int_equal(mc_broker_inbox_push(p->in, p->id_b, numbered("b.", i)), 0);
        atomic_fetch_add(&p->pushed, 1);
    }
    mc_broker_inbox_push_event(p->in, 7, "done");
    return NULL;
}

/* A second thread pushes while the loop runs; half-way the loop unsubscribes b (freeing its
 * context). a gets everything in order; b gets nothing after its unsubscribe, and the items
 * still queued for it are counted as missed instead of touching freed memory. */
static void test_thread_push_and_unsubscribe(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    struct counter a = {.alive = 1}, *b = mc_calloc(1, sizeof *b);
    b->alive = 1;
    assert_int_equal(mc_broker_subscribe(f.b, "unused-a", NULL, on_deliver, &a, &a.id), 0);
    assert_int_equal(mc_broker_subscribe(f.b, "unused-b", NULL, on_deliver, b, &b->id), 0);
    struct producer p = {.in = f.in, .id_a = a.id, .id_b = b->id};
    atomic_init(&p.pushed, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, produce, &p), 0);

    int unsubscribed = 0;
    uint64_t b_at_unsubscribe = 0;
    while (f.nevents == 0) {
        uv_run(&f.loop, UV_RUN_ONCE);
        if (!unsubscribed && a.received >= THREAD_MESSAGES / 2) {
            mc_broker_unsubscribe(f.b, b->id);
            b_at_unsubscribe = b->received;
            b->alive = 0;
            mc_free(b); /* any later delivery to it would be a use-after-free under ASan */
            b = NULL;
            unsubscribed = 1;
        }
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(unsubscribed);
    assert_int_equal(a.received, THREAD_MESSAGES);
    assert_int_equal(f.delivered, THREAD_MESSAGES + b_at_unsubscribe);
    assert_int_equal(f.missed, THREAD_MESSAGES - b_at_unsubscribe);
    assert_int_equal(f.events[0], 7);
    assert_string_equal(f.last_text, "done");
    assert_int_equal(mc_broker_inbox_dropped(f.in), 0);
    mc_broker_unsubscribe(f.b, a.id);
    fixture_close(&f);
}

/* Pushed before the loop runs: one loop turn (one wake-up) delivers them all, in order, with
 * the event where it was pushed. */
static void test_one_wakeup_carries_many(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    struct counter a = {.alive = 1};
    assert_int_equal(mc_broker_subscribe(f.b, "t", NULL, on_deliver, &a, &a.id), 0);
    for (long i = 1; i <= 100; i++) {
        assert_int_equal(mc_broker_inbox_push(f.in, a.id, numbered("a.", i)), 0);
        if (i == 50)
            mc_broker_inbox_push_event(f.in, 3, NULL);
    }
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(a.received, 100);
    assert_int_equal(f.nevents, 1);
    assert_int_equal(f.events[0], 3);
    /* Unknown ids (never subscribed) are not delivered. */
    assert_int_equal(mc_broker_inbox_push(f.in, 999, numbered("a.", 101)), 0);
    mc_broker_inbox_drain(f.in);
    assert_int_equal(f.missed, 1);
    mc_broker_unsubscribe(f.b, a.id);
    fixture_close(&f);
}

/* Past MC_BROKER_INBOX_MAX_BYTES queued, a push is refused (MC_ETOOBIG), the message is
 * released, and the drop is counted; once drained, pushes are accepted again. Items still
 * queued at free are released (ASan's leak check). */
static void test_bound_drops_and_counts(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f);
    size_t big = 1024 * 1024;
    char *body = mc_malloc(big);
    memset(body, 'z', big);
    int refused = 0;
    for (int i = 0; i < 80; i++) {
        struct mc_broker_message *m = mc_broker_message_new("big", NULL, 0, body, big);
        if (mc_broker_inbox_push(f.in, 1, m) == MC_ETOOBIG)
            refused++;
    }
    assert_true(refused > 0);
    assert_int_equal(mc_broker_inbox_dropped(f.in), (uint64_t)refused);
    mc_broker_inbox_drain(f.in);
    assert_int_equal(f.missed, 80 - refused);
    assert_int_equal(
        mc_broker_inbox_push(f.in, 1, mc_broker_message_new("big", NULL, 0, body, big)), 0);
    mc_broker_inbox_push_event(f.in, 1, "left queued");
    mc_free(body);
    fixture_close(&f);
}

/* The backend table: one row per backend, found by --broker's spelling. */
static void test_backend_table(void **state)
{
    (void)state;
    assert_ptr_equal(mc_broker_backend_find("memory"), &mc_broker_memory_ops);
    assert_ptr_equal(mc_broker_backend_find("nats"), &mc_broker_nats_ops);
    assert_null(mc_broker_backend_find("kafka"));
    assert_null(mc_broker_backend_find(NULL));
    struct mc_broker *b = mc_broker_new(&mc_broker_memory_ops, NULL, NULL);
    const struct mc_backend_state *st = mc_broker_state(b);
    assert_int_equal(st->status, MC_BACKEND_CONNECTED);
    assert_string_equal(st->backend, "memory");
    mc_broker_set_state(b, MC_BACKEND_RETRYING, "gone");
    assert_int_equal(st->status, MC_BACKEND_RETRYING);
    assert_string_equal(st->error, "gone");
    mc_broker_set_state(b, MC_BACKEND_CONNECTED, NULL);
    assert_string_equal(st->error, "");
    mc_broker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_push_and_unsubscribe),
        cmocka_unit_test(test_one_wakeup_carries_many),
        cmocka_unit_test(test_bound_drops_and_counts),
        cmocka_unit_test(test_backend_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
