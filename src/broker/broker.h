/* The pub/sub broker: an immutable, reference-counted message that carries its wire JSON
 * (encoded once, fanned out as-is), the public publish/subscribe API, and the ops table that
 * backends (memory, nats: one row each in a table) implement. Single-threaded: call it from
 * the loop thread; a backend whose client runs threads hands messages in through the inbox
 * (broker/inbox.h). */
#ifndef MC_BROKER_BROKER_H
#define MC_BROKER_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "util/backend_state.h"

struct uv_loop_s;
struct mc_broker;

/* ---- Messages ------------------------------------------------------------------------- */

/* One message header, borrowed for the duration of mc_broker_message_new(). */
struct mc_broker_header {
    const char *key;
    const char *value;
};

/* Opaque; immutable once built. Holds the topic and the JSON text
 * {"Header":{"k":"v",...},"Body":"<standard base64 of the body>"} that subscribers receive
 * (one WebSocket text frame, one NATS payload). */
struct mc_broker_message;

/* Builds a message on topic (non-empty) from header_count key/value pairs, emitted in the
 * given order (duplicates are kept as given; the caller decides whether that is wanted), and
 * body_len bytes of body (may be NULL when body_len is 0). Keys and values are JSON-escaped;
 * bytes that are not valid UTF-8 become U+FFFD, as Go's encoder does, so the JSON is always
 * valid UTF-8 (a WebSocket text frame must be). Copies everything; borrows nothing.
 * Returns a message holding one reference for the caller (release with
 * mc_broker_message_unref), or NULL only when an argument is invalid (NULL/empty topic, NULL
 * key or value, NULL body with body_len > 0). */
struct mc_broker_message *mc_broker_message_new(const char *topic,
                                                const struct mc_broker_header *headers,
                                                size_t header_count, const void *body,
                                                size_t body_len);

/* Wraps JSON that is already in wire form (e.g. a NATS payload) as a message on topic,
 * keeping len bytes of json exactly as given. Returns one reference for the caller, or NULL
 * when topic is NULL/empty or json is not one valid (UTF-8) JSON object. */
struct mc_broker_message *mc_broker_message_from_json(const char *topic, const char *json,
                                                      size_t len);

/* Takes one more reference; returns msg. Reference counts are atomic, so a message may be
 * built on another thread (a NATS callback) and handed to the loop thread. */
struct mc_broker_message *mc_broker_message_ref(struct mc_broker_message *msg);
/* Drops one reference, freeing the message with the last one. NULL is a no-op. */
void mc_broker_message_unref(struct mc_broker_message *msg);

/* The wire JSON (NUL-terminated for convenience; *len, when len is not NULL, excludes the
 * NUL) and the topic. Both live as long as the message. */
const char *mc_broker_message_json(const struct mc_broker_message *msg, size_t *len);
const char *mc_broker_message_topic(const struct mc_broker_message *msg);

/* ---- The broker ------------------------------------------------------------------------ */

/* Called once per message for a subscription. msg is borrowed for the call: take a reference
 * (mc_broker_message_ref) to keep it. The callback may publish, subscribe, unsubscribe any
 * subscription (itself included) while it runs; it must not free the broker. */
typedef void (*mc_broker_deliver_cb)(void *ctx, struct mc_broker_message *msg);

/* A subscription, as backends see it. The core allocates, owns and frees it; a backend
 * indexes it from subscribe until unsubscribe returns and must not touch it afterwards. */
struct mc_broker_subscription {
    uint64_t id; /* unique per broker, never 0 */
    char *topic; /* owned, non-empty */
    char *queue; /* owned; NULL for a plain subscriber */
    mc_broker_deliver_cb cb;
    void *ctx;
    void *backend_data;                     /* the backend's, untouched by the core */
    struct mc_broker_subscription *id_next; /* core-private: id hash chain */
};

/* A backend's settings, from the flags. Copied by mc_broker_new (strings too). */
struct mc_broker_settings {
    const char *address;         /* --broker_address: comma list of URLs; NULL for none */
    uint64_t max_message;        /* largest message in bytes; 0: no bound of our own */
    uint64_t reconnect_wait_ms;  /* pause between two reconnect rounds; 0: 1 s */
    uint64_t connect_timeout_ms; /* bound of one connect attempt to one server; 0: 2 s */
};

/* A backend. Every hook runs on the loop thread. */
struct mc_broker_ops {
    const char *name; /* "memory", "nats": as --broker spells it */
    /* Creates the backend's state (mc_broker_set_backend) and starts connecting if it has
     * anything to connect to (mc_broker_settings_of gives the settings, mc_broker_loop the
     * loop). An unreachable server is not an error: the backend reports it through
     * mc_broker_set_state and retries on its own. Returns 0 or negative. */
    int (*start)(struct mc_broker *b);
    /* Routes msg (borrowed; take refs to keep it) to the subscriptions on its topic, through
     * mc_broker_deliver(). Returns 0, MC_EUNAVAIL when the backend cannot take it now (the
     * publisher must be told; nothing is dropped silently), or negative. */
    int (*publish)(struct mc_broker *b, struct mc_broker_message *msg);
    /* Starts routing sub's topic (and queue group) to sub. Returns 0 or negative. */
    int (*subscribe)(struct mc_broker *b, struct mc_broker_subscription *sub);
    /* Stops routing to sub at once, even in the middle of a publish; sub is freed after. */
    void (*unsubscribe)(struct mc_broker *b, struct mc_broker_subscription *sub);
    /* Frees the backend's state; every subscription has been unsubscribed already. */
    void (*close)(struct mc_broker *b);
    /* Topics with at least one subscription, for /metrics. */
    size_t (*topic_count)(const struct mc_broker *b);
};

/* The embedded backend: synchronous fan-out inside mc_broker_publish(). */
extern const struct mc_broker_ops mc_broker_memory_ops;
/* NATS through libnats (broker_nats.c): topic = subject, queue = queue group. */
extern const struct mc_broker_ops mc_broker_nats_ops;

/* The backend named name (as --broker spells it), or NULL. Adding a backend is one row. */
const struct mc_broker_ops *mc_broker_backend_find(const char *name);

/* Counters for /metrics and /stats. */
struct mc_broker_stats {
    uint64_t published;   /* messages accepted by mc_broker_publish */
    uint64_t delivered;   /* deliver callbacks made */
    uint64_t subscribers; /* live subscriptions */
    uint64_t topics;      /* topics with at least one subscription */
};

/* Creates a broker over ops (borrowed; static tables live forever) on loop (borrowed; the
 * memory backend ignores it and accepts NULL) with settings (copied; NULL for defaults).
 * Returns it; never NULL. Nothing routes until mc_broker_start(). Release with
 * mc_broker_free(). */
struct mc_broker *mc_broker_new(const struct mc_broker_ops *ops, struct uv_loop_s *loop,
                                const struct mc_broker_settings *settings);

/* Starts the backend (ops->start). Returns 0, MC_EEXIST when already started, or the
 * backend's error. */
int mc_broker_start(struct mc_broker *b);

/* Unsubscribes whatever is left, closes the backend and frees b. NULL is a no-op. Must not
 * be called from inside a deliver callback. A backend holding loop handles (nats) closes its
 * client here, bounded (a few seconds at worst), and its handles with uv_close: call this
 * while the loop is alive and run the loop afterwards so the close callbacks free them. */
void mc_broker_free(struct mc_broker *b);

/* The backend's reachability (connected / retrying + error + since), for /health?verbose=1.
 * Lives as long as b. */
const struct mc_backend_state *mc_broker_state(const struct mc_broker *b);

/* The backend's name (ops->name). */
const char *mc_broker_name(const struct mc_broker *b);

/* Publishes msg on its topic. Does not steal msg: the broker takes its own references for as
 * long as it needs them. Subscribers' callbacks may run before this returns: the memory
 * backend delivers synchronously, except that a publish made from inside a deliver callback
 * is queued and delivered right after the current message (before the outermost publish
 * returns), so every subscriber sees messages in publish order. Returns 0, MC_EINVAL before
 * start or with a NULL msg, or the backend's error. */
int mc_broker_publish(struct mc_broker *b, struct mc_broker_message *msg);

/* Subscribes cb(ctx, msg) to topic (non-empty; copied). queue NULL or "" makes a plain
 * subscriber (every message on topic); otherwise the subscription joins group (topic, queue)
 * and the group gets each message once. A subscription made during a publish does not get
 * that message. On success stores the subscription's id in *sub_id_out (if not NULL) and
 * returns 0; returns MC_EINVAL for bad arguments or before start, or the backend's error. */
int mc_broker_subscribe(struct mc_broker *b, const char *topic, const char *queue,
                        mc_broker_deliver_cb cb, void *ctx, uint64_t *sub_id_out);

/* Ends subscription sub_id at once: no callback for it after this returns, even within the
 * publish that is running. Unknown or already-ended ids are ignored. */
void mc_broker_unsubscribe(struct mc_broker *b, uint64_t sub_id);

/* Fills *out with the current counters. */
void mc_broker_get_stats(const struct mc_broker *b, struct mc_broker_stats *out);

/* ---- For backends ---------------------------------------------------------------------- */

/* The backend's state pointer, set by its start hook. */
void *mc_broker_backend(const struct mc_broker *b);
void mc_broker_set_backend(struct mc_broker *b, void *state);
/* The loop and settings given to mc_broker_new (borrowed from b). */
struct uv_loop_s *mc_broker_loop(const struct mc_broker *b);
const struct mc_broker_settings *mc_broker_settings_of(const struct mc_broker *b);
/* Records the backend's reachability (error copied; NULL for none); logged on change. */
void mc_broker_set_state(struct mc_broker *b, enum mc_backend_status status, const char *error);

/* Delivers msg (borrowed) to subscription sub_id if it still exists: what a backend uses for
 * messages that crossed a thread or waited in a queue, so an unsubscribe made in between is
 * safe. Returns 0 when delivered, MC_ENOTFOUND when the subscription has gone. */
int mc_broker_deliver_id(struct mc_broker *b, uint64_t sub_id, struct mc_broker_message *msg);

/* Hands msg (borrowed) to sub's callback and counts the delivery. sub may be unsubscribed
 * and freed by the time this returns: the caller must not touch it afterwards. */
void mc_broker_deliver(struct mc_broker *b, struct mc_broker_subscription *sub,
                       struct mc_broker_message *msg);

#endif
