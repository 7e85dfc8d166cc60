/* GET /registry with a WebSocket upgrade (SPEC 3.1): streams every change to the registry's
 * view, optionally of one service, as text frames {"action":"...","service":{...}}. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "util/alloc.h"
#include "util/error.h"
#include "ws/session.h"

#define REGISTRY_ID "go.micro.registry"

struct watcher {
    struct mc_api *api;
    struct mc_ws_session *session;
    int watch_id; /* 0 until watching */
};

static void on_change(void *ctx, enum mc_registry_action action, const struct mc_service *svc)
{
    struct watcher *w = ctx;
    json_t *event = json_object();
    json_object_set_new(event, "action", json_string(mc_registry_action_name(action)));
    json_object_set_new(event, "service", mc_service_to_json(svc, 1));
    char *text = json_dumps(event, JSON_COMPACT);
    json_decref(event);
    if (text)
        mc_ws_session_send(w->session, 1, text, strlen(text)); /* may end the session */
    free(text);
}

static void on_session_end(struct mc_ws_session *s, uint16_t code)
{
    (void)code;
    struct watcher *w = mc_ws_session_data(s);
    if (w->watch_id > 0)
        mc_registry_unwatch(w->api->registry, w->watch_id);
    mc_free(w);
}

void mc_api_registry_watch(struct mc_http_request *req, struct mc_api *api)
{
    char *service;
    if (mc_http_query_param(req, "service", &service) == MC_EINVAL) {
        mc_http_respond_error(req, 400, REGISTRY_ID, "invalid service: contains a NUL (%00)");
        return;
    }
    struct watcher *w = mc_calloc(1, sizeof *w);
    w->api = api;
    const struct mc_ws_session_config cfg = {.on_close = on_session_end, .data = w};
    w->session = mc_ws_session_accept(req, api->ws_hub, &cfg, REGISTRY_ID);
    if (!w->session) {
        mc_free(w);
        mc_free(service);
        return;
    }
    w->watch_id =
        mc_registry_watch(api->registry, service && *service ? service : NULL, on_change, w);
    mc_free(service);
    mc_ws_session_start(w->session);
}
