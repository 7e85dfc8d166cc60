/* The broker core: message encoding (once per message, shared by every subscriber), the
 * subscription registry by id, and the thin publish/subscribe layer over a backend's ops. */
#include "broker/broker.h"

#include <jansson.h>
#include <stdatomic.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/base64.h"
#include "util/error.h"

/* ---- Messages ------------------------------------------------------------------------- */

struct mc_broker_message {
    atomic_uint refs;
    const char *topic; /* points into data, after the JSON's NUL */
    size_t json_len;
    char data[]; /* JSON, NUL, topic, NUL: one allocation per message */
};

static struct mc_broker_message *message_alloc(const char *topic, size_t json_len)
{
    size_t topic_len = strlen(topic);
    struct mc_broker_message *m = mc_malloc(sizeof(*m) + json_len + 1 + topic_len + 1);
    atomic_init(&m->refs, 1);
    m->json_len = json_len;
    m->data[json_len] = '\0';
    char *t = m->data + json_len + 1;
    memcpy(t, topic, topic_len + 1);
    m->topic = t;
    return m;
}

static const char json_head[] = "{\"Header\":{";
static const char json_mid[] = "},\"Body\":\"";
static const char json_tail[] = "\"}";

struct mc_broker_message *mc_broker_message_new(const char *topic,
                                                const struct mc_broker_header *headers,
                                                size_t header_count, const void *body,
                                                size_t body_len)
{
    if (!topic || !*topic || (!body && body_len > 0) || (!headers && header_count > 0))
        return NULL;
    /* The headers are escaped once into a scratch buffer (invalid UTF-8 becomes U+FFFD, so
     * the frame stays valid text), then the message is one exact allocation. */
    struct mc_buf hdr;
    mc_buf_init(&hdr);
    for (size_t i = 0; i < header_count; i++) {
        if (!headers[i].key || !headers[i].value) {
            mc_buf_close(&hdr);
            return NULL;
        }
        mc_buf_append_str(&hdr, i > 0 ? ",\"" : "\"");
        mc_buf_append_json_escaped(&hdr, headers[i].key);
        mc_buf_append_str(&hdr, "\":\"");
        mc_buf_append_json_escaped(&hdr, headers[i].value);
        mc_buf_append_str(&hdr, "\"");
    }
    size_t len = sizeof(json_head) - 1 + hdr.len + sizeof(json_mid) - 1 + sizeof(json_tail) - 1;
    size_t b64 = mc_base64_encoded_len(body_len);
    if (body_len > 0 && (b64 == 0 || b64 > SIZE_MAX / 2 - len)) {
        mc_buf_close(&hdr);
        return NULL;
    }
    len += b64;

    struct mc_broker_message *m = message_alloc(topic, len);
    char *w = m->data;
    memcpy(w, json_head, sizeof(json_head) - 1);
    w += sizeof(json_head) - 1;
    if (hdr.len)
        memcpy(w, hdr.data, hdr.len);
    w += hdr.len;
    mc_buf_close(&hdr);
    memcpy(w, json_mid, sizeof(json_mid) - 1);
    w += sizeof(json_mid) - 1;
    w += mc_base64_encode(w, body, body_len);
    memcpy(w, json_tail, sizeof(json_tail) - 1);
    return m;
}

struct mc_broker_message *mc_broker_message_from_json(const char *topic, const char *json,
                                                      size_t len)
{
    if (!topic || !*topic || !json)
        return NULL;
    /* jansson rejects invalid UTF-8, NUL bytes and trailing garbage, which is what a
     * WebSocket text frame needs; we only keep its verdict, not its tree. */
    json_error_t err;
    json_t *root = json_loadb(json, len, 0, &err);
    int ok = root && json_is_object(root);
    json_decref(root);
    if (!ok)
        return NULL;
    struct mc_broker_message *m = message_alloc(topic, len);
    memcpy(m->data, json, len);
    return m;
}

struct mc_broker_message *mc_broker_message_ref(struct mc_broker_message *msg)
{
    atomic_fetch_add_explicit(&msg->refs, 1, memory_order_relaxed);
    return msg;
}

void mc_broker_message_unref(struct mc_broker_message *msg)
{
    if (!msg)
        return;
    if (atomic_fetch_sub_explicit(&msg->refs, 1, memory_order_acq_rel) == 1)
        mc_free(msg);
}

const char *mc_broker_message_json(const struct mc_broker_message *msg, size_t *len)
{
    if (len)
        *len = msg->json_len;
    return msg->data;
}

const char *mc_broker_message_topic(const struct mc_broker_message *msg)
{
    return msg->topic;
}

/* ---- The broker ------------------------------------------------------------------------ */

struct mc_broker {
    const struct mc_broker_ops *ops;
    struct uv_loop_s *loop;
    struct mc_broker_settings settings; /* address owned */
    struct mc_backend_state state;
    void *backend;
    int started;
    uint64_t last_id;
    /* Subscriptions by id, chained through sub->id_next; nbuckets is a power of two. */
    struct mc_broker_subscription **buckets;
    size_t nbuckets;
    size_t nsubs;
    uint64_t published;
    uint64_t delivered;
};

#define MC_BROKER_MIN_BUCKETS 16

static size_t id_bucket(uint64_t id, size_t nbuckets)
{
    /* Ids are sequential: a multiplicative mix spreads them over the high bits. */
    return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 32) & (nbuckets - 1);
}

static void id_table_grow(struct mc_broker *b)
{
    size_t n = b->nbuckets * 2;
    struct mc_broker_subscription **nb = mc_calloc(n, sizeof(*nb));
    for (size_t i = 0; i < b->nbuckets; i++) {
        struct mc_broker_subscription *s = b->buckets[i], *next;
        for (; s; s = next) {
            next = s->id_next;
            size_t k = id_bucket(s->id, n);
            s->id_next = nb[k];
            nb[k] = s;
        }
    }
    mc_free(b->buckets);
    b->buckets = nb;
    b->nbuckets = n;
}

/* Unlinks and returns the subscription with id, or NULL. */
static struct mc_broker_subscription *id_table_take(struct mc_broker *b, uint64_t id)
{
    struct mc_broker_subscription **pp = &b->buckets[id_bucket(id, b->nbuckets)];
    for (; *pp; pp = &(*pp)->id_next) {
        struct mc_broker_subscription *s = *pp;
        if (s->id == id) {
            *pp = s->id_next;
            s->id_next = NULL;
            b->nsubs--;
            return s;
        }
    }
    return NULL;
}

static void subscription_free(struct mc_broker_subscription *sub)
{
    mc_free(sub->topic);
    mc_free(sub->queue);
    mc_free(sub);
}

static const struct mc_broker_ops *const backends[] = {
    &mc_broker_memory_ops,
    &mc_broker_nats_ops,
};

const struct mc_broker_ops *mc_broker_backend_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

struct mc_broker *mc_broker_new(const struct mc_broker_ops *ops, struct uv_loop_s *loop,
                                const struct mc_broker_settings *settings)
{
    struct mc_broker *b = mc_calloc(1, sizeof(*b));
    b->ops = ops;
    b->loop = loop;
    if (settings) {
        b->settings = *settings;
        b->settings.address = settings->address ? mc_strdup(settings->address) : NULL;
    }
    /* Connected until the backend says otherwise: the memory backend never does. */
    mc_backend_state_init(&b->state, "broker", ops->name, MC_BACKEND_CONNECTED, NULL);
    b->nbuckets = MC_BROKER_MIN_BUCKETS;
    b->buckets = mc_calloc(b->nbuckets, sizeof(*b->buckets));
    return b;
}

int mc_broker_start(struct mc_broker *b)
{
    if (b->started)
        return MC_EEXIST;
    int rc = b->ops->start(b);
    if (rc == 0)
        b->started = 1;
    return rc;
}

void mc_broker_free(struct mc_broker *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nbuckets; i++) {
        while (b->buckets[i])
            mc_broker_unsubscribe(b, b->buckets[i]->id);
    }
    if (b->started)
        b->ops->close(b);
    mc_free(b->buckets);
    mc_free((char *)b->settings.address);
    mc_free(b);
}

const char *mc_broker_name(const struct mc_broker *b)
{
    return b->ops->name;
}

int mc_broker_publish(struct mc_broker *b, struct mc_broker_message *msg)
{
    if (!b->started || !msg)
        return MC_EINVAL;
    /* Our own reference: a callback may drop the caller's last one (it should not, but a
     * publish must not be the place where that turns into a use-after-free). */
    mc_broker_message_ref(msg);
    int rc = b->ops->publish(b, msg);
    if (rc == 0)
        b->published++;
    mc_broker_message_unref(msg);
    return rc;
}

int mc_broker_subscribe(struct mc_broker *b, const char *topic, const char *queue,
                        mc_broker_deliver_cb cb, void *ctx, uint64_t *sub_id_out)
{
    if (!b->started || !topic || !*topic || !cb)
        return MC_EINVAL;
    struct mc_broker_subscription *sub = mc_calloc(1, sizeof(*sub));
    sub->id = ++b->last_id;
    sub->topic = mc_strdup(topic);
    sub->queue = queue && *queue ? mc_strdup(queue) : NULL;
    sub->cb = cb;
    sub->ctx = ctx;
    int rc = b->ops->subscribe(b, sub);
    if (rc < 0) {
        subscription_free(sub);
        return rc;
    }
    if (b->nsubs >= b->nbuckets)
        id_table_grow(b);
    size_t k = id_bucket(sub->id, b->nbuckets);
    sub->id_next = b->buckets[k];
    b->buckets[k] = sub;
    b->nsubs++;
    if (sub_id_out)
        *sub_id_out = sub->id;
    return 0;
}

void mc_broker_unsubscribe(struct mc_broker *b, uint64_t sub_id)
{
    struct mc_broker_subscription *sub = id_table_take(b, sub_id);
    if (!sub)
        return;
    b->ops->unsubscribe(b, sub);
    subscription_free(sub);
}

void mc_broker_get_stats(const struct mc_broker *b, struct mc_broker_stats *out)
{
    out->published = b->published;
    out->delivered = b->delivered;
    out->subscribers = b->nsubs;
    out->topics = b->started && b->ops->topic_count ? b->ops->topic_count(b) : 0;
}

void *mc_broker_backend(const struct mc_broker *b)
{
    return b->backend;
}

void mc_broker_set_backend(struct mc_broker *b, void *state)
{
    b->backend = state;
}

struct uv_loop_s *mc_broker_loop(const struct mc_broker *b)
{
    return b->loop;
}

const struct mc_broker_settings *mc_broker_settings_of(const struct mc_broker *b)
{
    return &b->settings;
}

const struct mc_backend_state *mc_broker_state(const struct mc_broker *b)
{
    return &b->state;
}

void mc_broker_set_state(struct mc_broker *b, enum mc_backend_status status, const char *error)
{
    mc_backend_state_set(&b->state, status, error);
}

int mc_broker_deliver_id(struct mc_broker *b, uint64_t sub_id, struct mc_broker_message *msg)
{
    struct mc_broker_subscription *s = b->buckets[id_bucket(sub_id, b->nbuckets)];
    while (s && s->id != sub_id)
        s = s->id_next;
    if (!s)
        return MC_ENOTFOUND;
    mc_broker_deliver(b, s, msg);
    return 0;
}

void mc_broker_deliver(struct mc_broker *b, struct mc_broker_subscription *sub,
                       struct mc_broker_message *msg)
{
    b->delivered++;
    sub->cb(sub->ctx, msg);
}
