/* The WebSocket hub: the list of live sessions, the once-per-turn flush of their output (as
 * Redis's beforeSleep), the fan-out frame cache, and shutdown. */
#include "ws/hub.h"

#include "util/alloc.h"
#include "ws/hub_private.h"

/* How long close_all gives each peer to answer our close before cutting it. */
#define MC_WS_HUB_CLOSE_BOUND_MS 2000

static void on_flush(uv_prepare_t *p)
{
    struct mc_ws_hub *hub = p->data;
    while (hub->dirty) {
        struct mc_ws_session *s = hub->dirty;
        hub->dirty = s->dirty_next;
        if (hub->dirty)
            hub->dirty->dirty_prev = NULL;
        s->dirty_next = s->dirty_prev = NULL;
        s->dirty = 0;
        mc_ws_session_flush(s);
    }
    /* The turn's fan-out is over: let the last message go. */
    mc_ws_shared_frame_unref(hub->cached);
    hub->cached = NULL;
    uv_prepare_stop(p);
}

static void want_flush(struct mc_ws_hub *hub)
{
    if (!hub->freeing && !uv_is_active((uv_handle_t *)&hub->flush))
        uv_prepare_start(&hub->flush, on_flush);
}

struct mc_ws_hub *mc_ws_hub_new(uv_loop_t *loop)
{
    struct mc_ws_hub *hub = mc_calloc(1, sizeof *hub);
    hub->loop = loop;
    uv_prepare_init(loop, &hub->flush);
    hub->flush.data = hub;
    hub->handles_open = 1;
    return hub;
}

static void maybe_free(struct mc_ws_hub *hub)
{
    if (hub->freeing && hub->handles_open == 0 && hub->count == 0)
        mc_free(hub);
}

static void finish_drain(struct mc_ws_hub *hub)
{
    void (*done)(void *ctx) = hub->drain_done;
    hub->drain_done = NULL;
    if (done)
        done(hub->drain_ctx);
}

void mc_ws_hub_close_all(struct mc_ws_hub *hub, unsigned short code, void (*done)(void *ctx),
                         void *ctx)
{
    hub->draining = 1;
    hub->drain_done = done;
    hub->drain_ctx = ctx;
    if (hub->count == 0) {
        finish_drain(hub);
        return;
    }
    /* Sessions leave the list only from close callbacks, never during this walk. */
    for (struct mc_ws_session *s = hub->sessions; s; s = s->next)
        mc_ws_session_shutdown(s, code, MC_WS_HUB_CLOSE_BOUND_MS);
}

static void on_hub_handle_closed(uv_handle_t *h)
{
    struct mc_ws_hub *hub = h->data;
    hub->handles_open--;
    maybe_free(hub);
}

void mc_ws_hub_free(struct mc_ws_hub *hub)
{
    if (!hub || hub->freeing)
        return;
    hub->freeing = 1;
    hub->drain_done = NULL;
    for (struct mc_ws_session *s = hub->sessions; s; s = s->next)
        mc_ws_session_abort(s);
    mc_ws_shared_frame_unref(hub->cached);
    hub->cached = NULL;
    uv_close((uv_handle_t *)&hub->flush, on_hub_handle_closed);
}

size_t mc_ws_hub_count(const struct mc_ws_hub *hub)
{
    return hub->count;
}

uint64_t mc_ws_hub_slow_closes(const struct mc_ws_hub *hub)
{
    return hub->slow_closes;
}

struct mc_ws_shared_frame *mc_ws_hub_cached_frame(struct mc_ws_hub *hub, const void *payload,
                                                  size_t len)
{
    struct mc_ws_shared_frame *f = hub->cached;
    if (f && f->payload == payload && f->len == len)
        return f;
    return NULL;
}

void mc_ws_hub_cache_frame(struct mc_ws_hub *hub, struct mc_ws_shared_frame *f)
{
    mc_ws_shared_frame_ref(f);
    mc_ws_shared_frame_unref(hub->cached);
    hub->cached = f;
    want_flush(hub);
}

/* ---- for session.c ---- */

void mc_ws_hub_add(struct mc_ws_hub *hub, struct mc_ws_session *s)
{
    s->prev = NULL;
    s->next = hub->sessions;
    if (hub->sessions)
        hub->sessions->prev = s;
    hub->sessions = s;
    hub->count++;
}

void mc_ws_hub_mark_dirty(struct mc_ws_hub *hub, struct mc_ws_session *s)
{
    if (s->dirty)
        return;
    s->dirty = 1;
    s->dirty_prev = NULL;
    s->dirty_next = hub->dirty;
    if (hub->dirty)
        hub->dirty->dirty_prev = s;
    hub->dirty = s;
    want_flush(hub);
}

void mc_ws_hub_remove(struct mc_ws_hub *hub, struct mc_ws_session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        hub->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->dirty) {
        if (s->dirty_prev)
            s->dirty_prev->dirty_next = s->dirty_next;
        else
            hub->dirty = s->dirty_next;
        if (s->dirty_next)
            s->dirty_next->dirty_prev = s->dirty_prev;
        s->dirty = 0;
    }
    hub->count--;
    if (hub->draining && hub->count == 0)
        finish_drain(hub); /* may call mc_ws_hub_free(): its memory outlives this call */
    maybe_free(hub);
}
