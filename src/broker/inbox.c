/* The broker inbox: a mutex-guarded vector swapped out whole by the loop, so the lock is held
 * for a push or a pointer swap, never while delivering. */
#include "broker/inbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <uv.h>

#include "broker/broker.h"
#include "util/alloc.h"
#include "util/error.h"

struct inbox_item {
    uint64_t key;
    struct mc_broker_message *msg; /* NULL for an event */
    int event;
    char *text; /* events only; owned */
};

struct mc_broker_inbox {
    uv_async_t async;
    mc_broker_inbox_message_cb on_message;
    mc_broker_inbox_event_cb on_event;
    void *ctx;
    pthread_mutex_t lock;
    struct inbox_item *items; /* guarded by lock */
    size_t len, cap;          /* guarded by lock */
    size_t bytes;             /* message bytes queued; guarded by lock */
    /* The loop's batch, swapped with items on every drain and reused. */
    struct inbox_item *batch;
    size_t batch_cap;
    atomic_uint_fast64_t dropped;
};

static void drain(struct mc_broker_inbox *in)
{
    pthread_mutex_lock(&in->lock);
    struct inbox_item *items = in->items;
    size_t len = in->len, cap = in->cap;
    in->items = in->batch;
    in->cap = in->batch_cap;
    in->len = 0;
    in->bytes = 0;
    pthread_mutex_unlock(&in->lock);
    in->batch = items;
    in->batch_cap = cap;

    for (size_t i = 0; i < len; i++) {
        struct inbox_item *it = &items[i];
        if (it->msg) {
            in->on_message(in->ctx, it->key, it->msg);
            mc_broker_message_unref(it->msg);
        } else {
            in->on_event(in->ctx, it->event, it->text);
            mc_free(it->text);
        }
    }
}

static void on_async(uv_async_t *a)
{
    drain(a->data);
}

struct mc_broker_inbox *mc_broker_inbox_new(struct uv_loop_s *loop,
                                            mc_broker_inbox_message_cb on_message,
                                            mc_broker_inbox_event_cb on_event, void *ctx)
{
    struct mc_broker_inbox *in = mc_calloc(1, sizeof *in);
    in->on_message = on_message;
    in->on_event = on_event;
    in->ctx = ctx;
    pthread_mutex_init(&in->lock, NULL);
    atomic_init(&in->dropped, 0);
    uv_async_init(loop, &in->async, on_async);
    in->async.data = in;
    return in;
}

/* Appends under the lock; returns whether the queue was empty (the loop needs a wake-up). */
static int append_locked(struct mc_broker_inbox *in, const struct inbox_item *it)
{
    if (in->len == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 64;
        in->items = mc_realloc(in->items, in->cap * sizeof *in->items);
    }
    in->items[in->len++] = *it;
    return in->len == 1;
}

int mc_broker_inbox_push(struct mc_broker_inbox *in, uint64_t key, struct mc_broker_message *msg)
{
    size_t size;
    mc_broker_message_json(msg, &size);
    struct inbox_item it = {.key = key, .msg = msg};
    pthread_mutex_lock(&in->lock);
    if (in->bytes + size > MC_BROKER_INBOX_MAX_BYTES) {
        pthread_mutex_unlock(&in->lock);
        atomic_fetch_add_explicit(&in->dropped, 1, memory_order_relaxed);
        mc_broker_message_unref(msg);
        return MC_ETOOBIG;
    }
    in->bytes += size;
    int wake = append_locked(in, &it);
    pthread_mutex_unlock(&in->lock);
    /* Only the push that made the queue non-empty wakes the loop: until the loop swaps the
     * queue out, every later push rides on that one wake-up. */
    if (wake)
        uv_async_send(&in->async);
    return 0;
}

void mc_broker_inbox_push_event(struct mc_broker_inbox *in, int event, const char *text)
{
    struct inbox_item it = {.event = event, .text = text ? mc_strdup(text) : NULL};
    pthread_mutex_lock(&in->lock);
    int wake = append_locked(in, &it);
    pthread_mutex_unlock(&in->lock);
    if (wake)
        uv_async_send(&in->async);
}

uint64_t mc_broker_inbox_dropped(struct mc_broker_inbox *in)
{
    return atomic_load_explicit(&in->dropped, memory_order_relaxed);
}

void mc_broker_inbox_drain(struct mc_broker_inbox *in)
{
    drain(in);
}

static void free_items(struct inbox_item *items, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        mc_broker_message_unref(items[i].msg);
        mc_free(items[i].text);
    }
    mc_free(items);
}

static void on_closed(uv_handle_t *h)
{
    struct mc_broker_inbox *in = h->data;
    free_items(in->items, in->len);
    mc_free(in->batch);
    pthread_mutex_destroy(&in->lock);
    mc_free(in);
}

void mc_broker_inbox_free(struct mc_broker_inbox *in)
{
    if (!in)
        return;
    uv_close((uv_handle_t *)&in->async, on_closed);
}
