/* The WebSocket hub: every live WebSocket session of the sidecar (broker subscribers,
 * registry watchers), so that shutdown can close them all with 1001 and /metrics can count
 * them. Implemented in src/ws/hub.c beside the session glue. */
#ifndef MC_WS_HUB_H
#define MC_WS_HUB_H

#include <stddef.h>
#include <uv.h>

struct mc_ws_hub;

/* Creates an empty hub on loop. Never NULL. */
struct mc_ws_hub *mc_ws_hub_new(uv_loop_t *loop);
/* Sends a close frame with code to every session and closes each connection once its close
 * is written (or at once after a short bound); done(ctx) runs when none is left (at once when
 * the hub is empty). */
void mc_ws_hub_close_all(struct mc_ws_hub *hub, unsigned short code, void (*done)(void *ctx),
                         void *ctx);
/* Closes any session left without a handshake and frees the hub after their close callbacks
 * ran (the loop must run once more). */
void mc_ws_hub_free(struct mc_ws_hub *hub);
/* Live sessions. */
size_t mc_ws_hub_count(const struct mc_ws_hub *hub);

#endif
