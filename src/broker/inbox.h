/* The broker's inbox: how another thread (a NATS client's callback thread) hands messages and
 * backend events to the loop thread. A mutex-guarded queue plus one uv_async_t: a push only
 * wakes the loop when the queue was empty, and one wake-up drains every item queued so far,
 * so a burst of messages costs one wake-up. Items carry a key (the backend's route id, e.g.
 * one NATS subscription), never a pointer, so a route that went away in between is simply not
 * found when the item is delivered. */
#ifndef MC_BROKER_INBOX_H
#define MC_BROKER_INBOX_H

#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
struct mc_broker_message;
struct mc_broker_inbox;

/* Called on the loop thread for each queued message, in push order. msg is borrowed for the
 * call (take a reference to keep it). */
typedef void (*mc_broker_inbox_message_cb)(void *ctx, uint64_t key, struct mc_broker_message *msg);
/* Called on the loop thread for each queued event, in push order with the messages. text is
 * borrowed for the call (may be NULL). */
typedef void (*mc_broker_inbox_event_cb)(void *ctx, int event, const char *text);

/* Queued items past this many bytes of messages are dropped (and counted) rather than let
 * a loop that cannot keep up grow the process without bound: what NATS itself does to a slow
 * consumer. */
#define MC_BROKER_INBOX_MAX_BYTES (64u * 1024 * 1024)

/* Creates an inbox on loop (borrowed; must be running or run later for delivery). The
 * callbacks run on the loop thread with ctx. Returns the inbox; never NULL. Release with
 * mc_broker_inbox_free(). */
struct mc_broker_inbox *mc_broker_inbox_new(struct uv_loop_s *loop,
                                            mc_broker_inbox_message_cb on_message,
                                            mc_broker_inbox_event_cb on_event, void *ctx);

/* Any thread. Queues msg for key, taking over the caller's reference (released even when the
 * item is dropped). Returns 0, or MC_ETOOBIG when the queue is over its bound (msg dropped and
 * counted). */
int mc_broker_inbox_push(struct mc_broker_inbox *in, uint64_t key, struct mc_broker_message *msg);

/* Any thread. Queues an event (text copied; may be NULL). Events are never dropped. */
void mc_broker_inbox_push_event(struct mc_broker_inbox *in, int event, const char *text);

/* Messages dropped for the bound since the inbox was created (any thread). */
uint64_t mc_broker_inbox_dropped(struct mc_broker_inbox *in);

/* Loop thread. Delivers everything queued now, as a wake-up would (tests; shutdown). */
void mc_broker_inbox_drain(struct mc_broker_inbox *in);

/* Loop thread. Drops what is still queued, closes the async handle and frees the inbox in its
 * close callback (so the loop must run once more). No thread may push once this is called:
 * the owner stops its producer threads first. NULL is a no-op. */
void mc_broker_inbox_free(struct mc_broker_inbox *in);

#endif
