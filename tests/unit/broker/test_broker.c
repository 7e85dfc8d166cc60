/* Unit tests for src/broker: message encoding, the memory backend's fan-out, queue groups,
 * re-entrancy (unsubscribe/subscribe/publish from callbacks) and reference counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "broker/broker.h"
#include "util/error.h"

/* ---- A log of deliveries, in the order the callbacks ran ------------------------------- */

struct ev {
    int who;
    struct mc_broker_message *msg; /* referenced, released by log_reset */
};

#define MAX_EVENTS 512
static struct ev events[MAX_EVENTS];
static size_t nevents;

static void log_reset(void)
{
    for (size_t i = 0; i < nevents; i++)
        mc_broker_message_unref(events[i].msg);
    nevents = 0;
}

struct sub;
typedef void (*action_fn)(struct sub *self, struct mc_broker_message *msg);

/* One test subscriber: who it is, its id, and what it does on its first delivery(ies). */
struct sub {
    int who;
    uint64_t id;
    struct mc_broker *b;
    action_fn action;
    int action_left; /* how many deliveries still run the action */
    struct sub *other;
    struct mc_broker_message *to_publish;
    struct sub *to_add;
    const char *topic;
};

static void on_msg(void *ctx, struct mc_broker_message *msg)
{
    struct sub *s = ctx;
    assert_true(nevents < MAX_EVENTS);
    events[nevents].who = s->who;
    events[nevents].msg = mc_broker_message_ref(msg);
    nevents++;
    if (s->action && s->action_left > 0) {
        s->action_left--;
        s->action(s, msg);
    }
}

static void sub_add(struct mc_broker *b, struct sub *s, int who, const char *topic,
                    const char *queue)
{
    s->who = who;
    s->b = b;
    assert_int_equal(mc_broker_subscribe(b, topic, queue, on_msg, s, &s->id), 0);
    assert_true(s->id != 0);
}

/* Counts the deliveries to who, and checks they carried msgs[0..n) in order. */
static void expect_seq(int who, struct mc_broker_message **msgs, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < nevents; i++) {
        if (events[i].who != who)
            continue;
        assert_true(k < n);
        assert_ptr_equal(events[i].msg, msgs[k]);
        k++;
    }
    assert_int_equal(k, n);
}

static struct mc_broker_message *text_msg(const char *topic, const char *body)
{
    struct mc_broker_header h = {"Content-Type", "text/plain"};
    struct mc_broker_message *m = mc_broker_message_new(topic, &h, 1, body, strlen(body));
    assert_non_null(m);
    return m;
}

static struct mc_broker *started_broker(void)
{
    struct mc_broker *b = mc_broker_new(&mc_broker_memory_ops, NULL, NULL);
    assert_int_equal(mc_broker_start(b), 0);
    return b;
}

static int teardown_log(void **state)
{
    (void)state;
    log_reset();
    return 0;
}

/* ---- Messages ------------------------------------------------------------------------- */

static void test_message_json_exact(void **state)
{
    (void)state;
    struct mc_broker_message *m = text_msg("greetings", "hello world");
    size_t len = 0;
    const char *json = mc_broker_message_json(m, &len);
    const char *want =
        "{\"Header\":{\"Content-Type\":\"text/plain\"},\"Body\":\"aGVsbG8gd29ybGQ=\"}";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(json, want, len);
    assert_int_equal(json[len], '\0');
    assert_string_equal(mc_broker_message_topic(m), "greetings");
    mc_broker_message_unref(m);

    /* Headers stay in the given order; no headers and no body are legal. */
    struct mc_broker_header hs[] = {{"Content-Type", "application/json"}, {"X-Micro-A", "1"}};
    m = mc_broker_message_new("t", hs, 2, "{}", 2);
    assert_string_equal(mc_broker_message_json(m, NULL),
                        "{\"Header\":{\"Content-Type\":\"application/json\",\"X-Micro-A\":\"1\"},"
                        "\"Body\":\"e30=\"}");
    mc_broker_message_unref(m);
    m = mc_broker_message_new("t", NULL, 0, NULL, 0);
    assert_string_equal(mc_broker_message_json(m, &len), "{\"Header\":{},\"Body\":\"\"}");
    assert_int_equal(len, strlen("{\"Header\":{},\"Body\":\"\"}"));
    mc_broker_message_unref(m);

    /* Binary bodies (NULs, high bytes) go through base64 untouched. */
    const unsigned char bin[] = {0x00, 0xff, 0xfe, 0x00};
    m = mc_broker_message_new("t", NULL, 0, bin, sizeof(bin));
    assert_string_equal(mc_broker_message_json(m, NULL), "{\"Header\":{},\"Body\":\"AP/+AA==\"}");
    mc_broker_message_unref(m);
}

static void test_message_header_escaping(void **state)
{
    (void)state;
    struct mc_broker_header h[] = {
        {"X-\"Q\"", "a\\b\"c\n\r\t\b\f\x01\x1f/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
        {"X-Bad", "\xff\xc3(\xed\xa0\x80\xc0\xaf!"},
    };
    struct mc_broker_message *m = mc_broker_message_new("t", h, 2, "x", 1);
    assert_non_null(m);
    size_t len = 0;
    const char *json = mc_broker_message_json(m, &len);
    const char *want =
        "{\"Header\":{\"X-\\\"Q\\\"\":\"a\\\\b\\\"c\\n\\r\\t\\b\\f\\u0001\\u001f/"
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
        /* 0xff, a lone lead byte, a surrogate (3 bytes) and an overlong "/" (2 bytes): every
         * invalid byte is one U+FFFD, the valid "(" and "!" stay. */
        "\"X-Bad\":\"\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd!\"},\"Body\":\"eA==\"}";
    assert_string_equal(json, want);

    /* And a JSON parser reads the original strings back. */
    json_error_t err;
    json_t *root = json_loadb(json, len, 0, &err);
    assert_non_null(root);
    json_t *hdr = json_object_get(root, "Header");
    assert_string_equal(json_string_value(json_object_get(hdr, "X-\"Q\"")), h[0].value);
    assert_string_equal(json_string_value(json_object_get(root, "Body")), "eA==");
    json_decref(root);
    mc_broker_message_unref(m);
}

static void test_message_invalid_args(void **state)
{
    (void)state;
    struct mc_broker_header nokey = {NULL, "v"}, noval = {"k", NULL};
    assert_null(mc_broker_message_new(NULL, NULL, 0, "x", 1));
    assert_null(mc_broker_message_new("", NULL, 0, "x", 1));
    assert_null(mc_broker_message_new("t", &nokey, 1, "x", 1));
    assert_null(mc_broker_message_new("t", &noval, 1, "x", 1));
    assert_null(mc_broker_message_new("t", NULL, 0, NULL, 1));
    assert_null(mc_broker_message_new("t", NULL, 1, "x", 1));
}

static void test_message_from_json(void **state)
{
    (void)state;
    const char *in = " {\"Header\": {\"Content-Type\":\"text/plain\"}, \"Body\":\"aGk=\"}\n";
    struct mc_broker_message *m = mc_broker_message_from_json("subj", in, strlen(in));
    assert_non_null(m);
    size_t len = 0;
    const char *json = mc_broker_message_json(m, &len);
    assert_int_equal(len, strlen(in));
    assert_memory_equal(json, in, len); /* kept byte for byte, not re-encoded */
    assert_string_equal(mc_broker_message_topic(m), "subj");
    mc_broker_message_unref(m);

    static const char *bad[] = {
        "[1,2]", "\"str\"", "42", "{", "{\"a\":1} x", "{\"a\":\"\xff\"}", "", "{\"a\":1}{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(mc_broker_message_from_json("t", bad[i], strlen(bad[i])));
    /* A NUL inside the bytes is not JSON. */
    assert_null(mc_broker_message_from_json("t", "{\"a\":\"\0\"}", 9));
    assert_null(mc_broker_message_from_json("", "{}", 2));
    assert_null(mc_broker_message_from_json(NULL, "{}", 2));
}

static void test_message_refcount(void **state)
{
    (void)state;
    struct mc_broker_message *m = text_msg("t", "abc");
    assert_ptr_equal(mc_broker_message_ref(m), m);
    mc_broker_message_unref(m);
    /* Still alive with the first reference: reading it must be clean under ASan. */
    assert_string_equal(mc_broker_message_topic(m), "t");
    mc_broker_message_unref(m);
    mc_broker_message_unref(NULL);
}

/* ---- Fan-out ------------------------------------------------------------------------- */

static void test_fanout_in_order(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    assert_string_equal(mc_broker_name(b), "memory");
    struct sub s[5] = {0};
    for (int i = 0; i < 5; i++)
        sub_add(b, &s[i], i, "t", i % 2 ? "" : NULL); /* "" is a plain subscriber too */
    struct mc_broker_message *m[3] = {text_msg("t", "1"), text_msg("t", "2"), text_msg("t", "3")};
    for (int i = 0; i < 3; i++)
        assert_int_equal(mc_broker_publish(b, m[i]), 0);

    assert_int_equal(nevents, 15);
    /* Each message reaches every subscriber, in subscription order, before the next. */
    for (size_t i = 0; i < 15; i++) {
        assert_int_equal(events[i].who, (int)(i % 5));
        assert_ptr_equal(events[i].msg, m[i / 5]);
    }
    for (int i = 0; i < 5; i++)
        expect_seq(i, m, 3);

    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.published, 3);
    assert_int_equal(st.delivered, 15);
    assert_int_equal(st.subscribers, 5);
    assert_int_equal(st.topics, 1);

    log_reset();
    for (int i = 0; i < 3; i++)
        mc_broker_message_unref(m[i]);
    mc_broker_free(b);
}

static void test_topic_isolation(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub a = {0}, a2 = {0}, bb = {0};
    sub_add(b, &a, 1, "alpha", NULL);
    sub_add(b, &a2, 2, "alpha", "g");
    sub_add(b, &bb, 3, "beta", "g"); /* same group name, other topic: another group */
    struct mc_broker_message *ma = text_msg("alpha", "a");
    struct mc_broker_message *mb = text_msg("beta", "b");
    struct mc_broker_message *mc = text_msg("gamma", "c");
    struct mc_broker_message *mp = text_msg("alph", "p"); /* a prefix is another topic */
    assert_int_equal(mc_broker_publish(b, ma), 0);
    assert_int_equal(mc_broker_publish(b, mb), 0);
    assert_int_equal(mc_broker_publish(b, mc), 0); /* nobody listens: fine */
    assert_int_equal(mc_broker_publish(b, mp), 0);
    expect_seq(1, &ma, 1);
    expect_seq(2, &ma, 1);
    expect_seq(3, &mb, 1);
    assert_int_equal(nevents, 3);
    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.topics, 2);
    assert_int_equal(st.published, 4);
    log_reset();
    mc_broker_message_unref(ma);
    mc_broker_message_unref(mb);
    mc_broker_message_unref(mc);
    mc_broker_message_unref(mp);
    mc_broker_free(b);
}

static void test_queue_group_rotation(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub plain = {0}, q[3] = {{0}}, other = {0};
    sub_add(b, &q[0], 10, "t", "workers");
    sub_add(b, &plain, 1, "t", NULL);
    sub_add(b, &q[1], 11, "t", "workers");
    sub_add(b, &other, 20, "t", "audit"); /* a second group gets its own copy */
    sub_add(b, &q[2], 12, "t", "workers");
    struct mc_broker_message *m[9];
    char body[2] = "0";
    for (int i = 0; i < 9; i++) {
        body[0] = (char)('0' + i);
        m[i] = text_msg("t", body);
        assert_int_equal(mc_broker_publish(b, m[i]), 0);
    }
    expect_seq(1, m, 9);
    expect_seq(20, m, 9);
    for (int k = 0; k < 3; k++) {
        struct mc_broker_message *want[3] = {m[k], m[k + 3], m[k + 6]};
        expect_seq(10 + k, want, 3);
    }
    assert_int_equal(nevents, 9 * 3);
    log_reset();

    /* A member leaving mid-rotation: the next message goes to the next one still there. */
    mc_broker_unsubscribe(b, q[1].id);
    struct mc_broker_message *n[4];
    for (int i = 0; i < 4; i++) {
        n[i] = text_msg("t", "n");
        assert_int_equal(mc_broker_publish(b, n[i]), 0);
    }
    struct mc_broker_message *w0[2] = {n[0], n[2]}, *w2[2] = {n[1], n[3]};
    expect_seq(10, w0, 2);
    expect_seq(11, NULL, 0);
    expect_seq(12, w2, 2);
    log_reset();
    for (int i = 0; i < 9; i++)
        mc_broker_message_unref(m[i]);
    for (int i = 0; i < 4; i++)
        mc_broker_message_unref(n[i]);
    mc_broker_free(b);
}

/* Many members come and go (forcing compaction); rotation stays fair and exact. */
static void test_queue_group_churn(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub q[16] = {{0}};
    for (int i = 0; i < 16; i++)
        sub_add(b, &q[i], i, "t", "g");
    for (int i = 0; i < 16; i++)
        if (i % 4 != 0)
            mc_broker_unsubscribe(b, q[i].id); /* 0, 4, 8, 12 remain */
    struct mc_broker_message *m = text_msg("t", "x");
    for (int i = 0; i < 8; i++)
        assert_int_equal(mc_broker_publish(b, m), 0);
    assert_int_equal(nevents, 8);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(events[i].who, (int)(i % 4) * 4);
    log_reset();

    /* Compaction in mid-rotation keeps the turn: 6 members, 4 messages served 0..3, then
     * 1, 2, 3 leave (half the slots dead: compacted); the next turns are 4, 5, 0. */
    struct sub r[6] = {{0}};
    for (int i = 0; i < 6; i++)
        sub_add(b, &r[i], 100 + i, "u", "g");
    struct mc_broker_message *mu = text_msg("u", "y");
    for (int i = 0; i < 4; i++)
        mc_broker_publish(b, mu);
    for (int i = 1; i <= 3; i++)
        mc_broker_unsubscribe(b, r[i].id);
    for (int i = 0; i < 3; i++)
        mc_broker_publish(b, mu);
    static const int want[] = {100, 101, 102, 103, 104, 105, 100};
    assert_int_equal(nevents, 7);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(events[i].who, want[i]);
    log_reset();
    mc_broker_message_unref(mu);
    mc_broker_message_unref(m);
    mc_broker_free(b);
}

/* ---- Re-entrancy ----------------------------------------------------------------------- */

static void act_unsub_self(struct sub *self, struct mc_broker_message *msg)
{
    (void)msg;
    mc_broker_unsubscribe(self->b, self->id);
}

static void act_unsub_other(struct sub *self, struct mc_broker_message *msg)
{
    (void)msg;
    mc_broker_unsubscribe(self->b, self->other->id);
}

static void test_unsubscribe_self_during_delivery(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub s[3] = {{0}};
    sub_add(b, &s[0], 0, "t", NULL);
    sub_add(b, &s[1], 1, "t", NULL);
    sub_add(b, &s[2], 2, "t", NULL);
    s[1].action = act_unsub_self;
    s[1].action_left = 1;
    struct mc_broker_message *m[2] = {text_msg("t", "1"), text_msg("t", "2")};
    mc_broker_publish(b, m[0]);
    mc_broker_publish(b, m[1]);
    expect_seq(0, m, 2);
    expect_seq(1, m, 1);
    expect_seq(2, m, 2); /* not skipped although the slot before it died mid-loop */
    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.subscribers, 2);
    log_reset();
    mc_broker_message_unref(m[0]);
    mc_broker_message_unref(m[1]);
    mc_broker_free(b);
}

static void test_unsubscribe_other_during_delivery(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub s[4] = {{0}}, g[2] = {{0}};
    for (int i = 0; i < 4; i++)
        sub_add(b, &s[i], i, "t", NULL);
    sub_add(b, &g[0], 10, "t", "g");
    sub_add(b, &g[1], 11, "t", "g");
    /* 1 cuts 3 (not yet served) and 0 (already served); 2 cuts the group member whose turn
     * it is, so the group's copy must go to the other member instead of being lost. */
    s[1].action = act_unsub_other;
    s[1].action_left = 1;
    s[1].other = &s[3];
    s[2].action = act_unsub_other;
    s[2].action_left = 1;
    s[2].other = &g[0];
    struct sub cut0 = {.b = b, .other = &s[0]};
    struct mc_broker_message *m[2] = {text_msg("t", "1"), text_msg("t", "2")};
    mc_broker_publish(b, m[0]);
    act_unsub_other(&cut0, NULL);
    mc_broker_publish(b, m[1]);
    expect_seq(0, m, 1);
    expect_seq(1, m, 2);
    expect_seq(2, m, 2);
    expect_seq(3, NULL, 0);
    expect_seq(10, NULL, 0);
    expect_seq(11, m, 2);
    /* Unsubscribing twice, or an id that never existed, is harmless. */
    mc_broker_unsubscribe(b, s[3].id);
    mc_broker_unsubscribe(b, 0);
    mc_broker_unsubscribe(b, 987654);
    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.subscribers, 3);
    log_reset();
    mc_broker_message_unref(m[0]);
    mc_broker_message_unref(m[1]);
    mc_broker_free(b);
}

/* A callback that cuts every subscriber of the topic, itself included: the topic is freed
 * once the publish ends, and a later publish finds nobody. */
static struct sub *cut_all_list;
static size_t cut_all_n;

static void act_cut_all(struct sub *self, struct mc_broker_message *msg)
{
    (void)msg;
    for (size_t i = 0; i < cut_all_n; i++)
        mc_broker_unsubscribe(self->b, cut_all_list[i].id);
}

static void test_cut_everyone_during_delivery(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub s[6] = {{0}};
    for (int i = 0; i < 6; i++)
        sub_add(b, &s[i], i, "t", i < 3 ? NULL : "g");
    cut_all_list = s;
    cut_all_n = 6;
    s[1].action = act_cut_all;
    s[1].action_left = 1;
    struct mc_broker_message *m = text_msg("t", "x");
    mc_broker_publish(b, m);
    assert_int_equal(nevents, 2); /* 0 and 1; everyone after was cut */
    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.subscribers, 0);
    assert_int_equal(st.topics, 0);
    mc_broker_publish(b, m);
    assert_int_equal(nevents, 2);
    log_reset();
    mc_broker_message_unref(m);
    mc_broker_free(b);
}

static void act_subscribe(struct sub *self, struct mc_broker_message *msg)
{
    (void)msg;
    sub_add(self->b, self->to_add, self->to_add->who, self->topic, NULL);
}

static void test_subscribe_during_delivery(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub a = {0}, c = {0}, d = {.who = 4}, e = {.who = 5};
    sub_add(b, &a, 1, "t", NULL);
    sub_add(b, &c, 3, "t", "g");
    a.action = act_subscribe;
    a.action_left = 1;
    a.to_add = &d;
    a.topic = "t";
    /* Subscribing to a brand-new topic grows nothing that the running loop holds. */
    c.action = act_subscribe;
    c.action_left = 1;
    c.to_add = &e;
    c.topic = "fresh";
    struct mc_broker_message *m[2] = {text_msg("t", "1"), text_msg("t", "2")};
    mc_broker_publish(b, m[0]);
    mc_broker_publish(b, m[1]);
    expect_seq(1, m, 2);
    expect_seq(3, m, 2);
    expect_seq(4, &m[1], 1); /* added during the first publish: only the second */
    expect_seq(5, NULL, 0);
    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.subscribers, 4);
    assert_int_equal(st.topics, 2);
    log_reset();
    mc_broker_message_unref(m[0]);
    mc_broker_message_unref(m[1]);
    mc_broker_free(b);
}

static void act_publish(struct sub *self, struct mc_broker_message *msg)
{
    (void)msg;
    assert_int_equal(mc_broker_publish(self->b, self->to_publish), 0);
}

static void test_publish_from_callback(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub a = {0}, bb = {0}, o = {0};
    sub_add(b, &a, 1, "t", NULL);
    sub_add(b, &bb, 2, "t", NULL);
    sub_add(b, &o, 3, "other", NULL);
    struct mc_broker_message *m1 = text_msg("t", "1");
    struct mc_broker_message *m2 = text_msg("t", "2");
    struct mc_broker_message *m3 = text_msg("other", "3");
    /* a answers m1 with m2 on the same topic (it gets its own publication); bb answers with
     * m3 on another topic. */
    a.action = act_publish;
    a.action_left = 1;
    a.to_publish = m2;
    bb.action = act_publish;
    bb.action_left = 1;
    bb.to_publish = m3;
    assert_int_equal(mc_broker_publish(b, m1), 0);
    /* Every subscriber sees publish order: m1 reached everyone before m2 started. */
    assert_int_equal(nevents, 5);
    assert_int_equal(events[0].who, 1);
    assert_ptr_equal(events[0].msg, m1);
    assert_int_equal(events[1].who, 2);
    assert_ptr_equal(events[1].msg, m1);
    assert_int_equal(events[2].who, 1);
    assert_ptr_equal(events[2].msg, m2);
    assert_int_equal(events[3].who, 2);
    assert_ptr_equal(events[3].msg, m2);
    assert_int_equal(events[4].who, 3);
    assert_ptr_equal(events[4].msg, m3);
    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.published, 3);
    assert_int_equal(st.delivered, 5);
    log_reset();

    /* The queued copy holds its own reference: the publisher may drop its own at once. */
    struct mc_broker_message *tmp = text_msg("t", "tmp");
    a.action = act_publish;
    a.action_left = 1;
    a.to_publish = tmp;
    struct mc_broker_message *m4 = text_msg("t", "4");
    assert_int_equal(mc_broker_publish(b, m4), 0);
    mc_broker_message_unref(tmp);
    expect_seq(2, (struct mc_broker_message *[]){m4, tmp}, 2);
    log_reset();
    mc_broker_message_unref(m1);
    mc_broker_message_unref(m2);
    mc_broker_message_unref(m3);
    mc_broker_message_unref(m4);
    mc_broker_free(b);
}

/* A callback that unsubscribes itself from inside a nested, queued delivery while the
 * publisher drops its reference before the queue drains. */
static struct mc_broker_message *queued_only;

static void act_publish_owned(struct sub *self, struct mc_broker_message *msg)
{
    (void)msg;
    queued_only = text_msg("t", "owned");
    assert_int_equal(mc_broker_publish(self->b, queued_only), 0);
    mc_broker_message_unref(queued_only); /* the broker's queue keeps it alive */
    mc_broker_unsubscribe(self->b, self->id);
}

static void test_publish_then_drop_in_callback(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    struct sub a = {0}, bb = {0};
    sub_add(b, &a, 1, "t", NULL);
    sub_add(b, &bb, 2, "t", NULL);
    a.action = act_publish_owned;
    a.action_left = 1;
    struct mc_broker_message *m = text_msg("t", "1");
    mc_broker_publish(b, m);
    assert_int_equal(nevents, 3);
    assert_int_equal(events[2].who, 2);
    /* The log's reference is the last one: reading the JSON must be clean under ASan. */
    const char *json = mc_broker_message_json(events[2].msg, NULL);
    assert_string_equal(json,
                        "{\"Header\":{\"Content-Type\":\"text/plain\"},\"Body\":\"b3duZWQ=\"}");
    log_reset();
    mc_broker_message_unref(m);
    mc_broker_free(b);
}

/* ---- Lifetimes and limits ------------------------------------------------------------- */

static struct mc_broker_message *kept;

static void keep_cb(void *ctx, struct mc_broker_message *msg)
{
    (void)ctx;
    mc_broker_message_unref(kept);
    kept = mc_broker_message_ref(msg);
}

static void test_message_outlives_publish(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    uint64_t id;
    assert_int_equal(mc_broker_subscribe(b, "t", NULL, keep_cb, NULL, &id), 0);
    struct mc_broker_message *m = text_msg("t", "hello world");
    assert_int_equal(mc_broker_publish(b, m), 0);
    mc_broker_message_unref(m); /* the publisher is done; the subscriber still holds it */
    mc_broker_free(b);          /* so is the broker */
    assert_non_null(kept);
    assert_string_equal(
        mc_broker_message_json(kept, NULL),
        "{\"Header\":{\"Content-Type\":\"text/plain\"},\"Body\":\"aGVsbG8gd29ybGQ=\"}");
    mc_broker_message_unref(kept);
    kept = NULL;
}

static void test_many_topics_freed(void **state)
{
    (void)state;
    struct mc_broker *b = started_broker();
    enum { N = 300 };
    static struct sub s[N];
    char topic[32];
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "topic.%d", i / 2); /* two subscribers per topic */
        memset(&s[i], 0, sizeof(s[i]));
        sub_add(b, &s[i], i, topic, i % 2 ? "q" : NULL);
    }
    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.topics, N / 2);
    assert_int_equal(st.subscribers, N);
    /* Every topic is still found after the table has grown. */
    for (int t = 0; t < N / 2; t++) {
        snprintf(topic, sizeof(topic), "topic.%d", t);
        struct mc_broker_message *m = text_msg(topic, "x");
        size_t before = nevents;
        mc_broker_publish(b, m);
        assert_int_equal(nevents - before, 2);
        assert_int_equal(events[before].who, 2 * t);
        assert_int_equal(events[before + 1].who, 2 * t + 1);
        mc_broker_message_unref(m);
        log_reset();
    }
    for (int i = 0; i < N; i += 2)
        mc_broker_unsubscribe(b, s[i].id);
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.topics, N / 2); /* each still has its group member */
    for (int i = 1; i < N; i += 2)
        mc_broker_unsubscribe(b, s[i].id);
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.topics, 0);
    assert_int_equal(st.subscribers, 0);
    mc_broker_free(b);
}

static void test_errors(void **state)
{
    (void)state;
    struct mc_broker *b = mc_broker_new(&mc_broker_memory_ops, NULL, NULL);
    struct mc_broker_message *m = text_msg("t", "x");
    uint64_t id = 0;
    /* Nothing routes before start. */
    assert_int_equal(mc_broker_subscribe(b, "t", NULL, on_msg, NULL, &id), MC_EINVAL);
    assert_int_equal(mc_broker_publish(b, m), MC_EINVAL);
    struct mc_broker_stats st;
    mc_broker_get_stats(b, &st);
    assert_int_equal(st.topics, 0);
    assert_int_equal(mc_broker_start(b), 0);
    assert_int_equal(mc_broker_start(b), MC_EEXIST);
    assert_int_equal(mc_broker_publish(b, NULL), MC_EINVAL);
    assert_int_equal(mc_broker_subscribe(b, "", NULL, on_msg, NULL, &id), MC_EINVAL);
    assert_int_equal(mc_broker_subscribe(b, NULL, NULL, on_msg, NULL, &id), MC_EINVAL);
    assert_int_equal(mc_broker_subscribe(b, "t", NULL, NULL, NULL, &id), MC_EINVAL);
    assert_int_equal(id, 0);
    /* sub_id_out is optional; ids are distinct. */
    struct sub x = {.who = 1, .b = b};
    assert_int_equal(mc_broker_subscribe(b, "t", NULL, on_msg, &x, NULL), 0);
    uint64_t id2 = 0, id3 = 0;
    assert_int_equal(mc_broker_subscribe(b, "t", NULL, on_msg, &x, &id2), 0);
    assert_int_equal(mc_broker_subscribe(b, "t", NULL, on_msg, &x, &id3), 0);
    assert_true(id2 != 0 && id3 != 0 && id2 != id3);
    /* Freed with live subscriptions: no leak (sanitizer build). */
    mc_broker_message_unref(m);
    mc_broker_free(b);
    mc_broker_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_json_exact),
        cmocka_unit_test(test_message_header_escaping),
        cmocka_unit_test(test_message_invalid_args),
        cmocka_unit_test(test_message_from_json),
        cmocka_unit_test(test_message_refcount),
        cmocka_unit_test_teardown(test_fanout_in_order, teardown_log),
        cmocka_unit_test_teardown(test_topic_isolation, teardown_log),
        cmocka_unit_test_teardown(test_queue_group_rotation, teardown_log),
        cmocka_unit_test_teardown(test_queue_group_churn, teardown_log),
        cmocka_unit_test_teardown(test_unsubscribe_self_during_delivery, teardown_log),
        cmocka_unit_test_teardown(test_unsubscribe_other_during_delivery, teardown_log),
        cmocka_unit_test_teardown(test_cut_everyone_during_delivery, teardown_log),
        cmocka_unit_test_teardown(test_subscribe_during_delivery, teardown_log),
        cmocka_unit_test_teardown(test_publish_from_callback, teardown_log),
        cmocka_unit_test_teardown(test_publish_then_drop_in_callback, teardown_log),
        cmocka_unit_test(test_message_outlives_publish),
        cmocka_unit_test_teardown(test_many_topics_freed, teardown_log),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
