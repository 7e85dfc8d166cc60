/* /broker (SPEC 3.4): a WebSocket upgrade subscribes the connection to a topic (optionally in
 * a queue group) and publishes every frame it sends; POST publishes the request body. Every
 * message goes out as one text frame holding its shared JSON, never copied per subscriber. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "broker/broker.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "ws/session.h"
#include "ws/ws.h"

#define BROKER_ID "go.micro.broker"
/* RFC 6455 7.4.1 "Try Again Later": what a WebSocket publisher gets while the broker backend
 * (NATS) is away, so its frame is never dropped without a word. */
#define WS_CLOSE_TRY_AGAIN 1013
#define DEFAULT_CONTENT_TYPE "text/plain"
#define MAX_MESSAGE_HEADERS 64

/* One WebSocket subscriber. */
struct broker_sub {
    struct mc_api *api;
    struct mc_ws_session *session;
    uint64_t sub_id; /* 0 until subscribed */
    char *topic;
    char *content_type;
};

static uint64_t max_message(const struct mc_api *api)
{
    uint64_t max = api->config ? api->config->broker_max_message : 0;
    return max ? max : MC_WS_DEFAULT_MAX_MESSAGE;
}

static void release_message(void *ctx)
{
    mc_broker_message_unref(ctx);
}

static void on_deliver(void *ctx, struct mc_broker_message *msg)
{
    struct broker_sub *sub = ctx;
    size_t len;
    const char *json = mc_broker_message_json(msg, &len);
    struct mc_ws_hub *hub = sub->api->ws_hub;
    /* The memory broker hands one message to every subscriber in a row: build its frame
     * header once and share header and JSON by reference. */
    struct mc_ws_shared_frame *f = mc_ws_hub_cached_frame(hub, json, len);
    if (f) {
        mc_ws_session_send_shared(sub->session, f);
        return;
    }
    f = mc_ws_shared_frame_new(MC_WS_OP_TEXT, json, len, release_message,
                               mc_broker_message_ref(msg));
    mc_ws_hub_cache_frame(hub, f);
    mc_ws_session_send_shared(sub->session, f); /* may end the session and free sub */
    mc_ws_shared_frame_unref(f);
}

static void on_client_message(struct mc_ws_session *s, int is_text, const uint8_t *data, size_t len)
{
    (void)is_text;
    struct broker_sub *sub = mc_ws_session_data(s);
    const struct mc_broker_header header = {"Content-Type", sub->content_type};
    struct mc_broker_message *msg = mc_broker_message_new(sub->topic, &header, 1, data, len);
    struct mc_broker *broker = sub->api->broker;
    int rc = msg ? mc_broker_publish(broker, msg) : MC_EINVAL;
    /* The publish may have ended this very session (self-delivery past the queue bound),
     * which frees sub: only msg is used from here on, except on MC_EUNAVAIL and MC_ETOOBIG,
     * where nothing was delivered (the backend refused before routing) and s is still ours. */
    if (rc == MC_EUNAVAIL) {
        mc_log_warn("broker: publish to %s refused: broker %s not connected; closing the "
                    "publisher with %d",
                    mc_broker_message_topic(msg), mc_broker_name(broker), WS_CLOSE_TRY_AGAIN);
        mc_ws_session_close(s, WS_CLOSE_TRY_AGAIN, "broker unavailable, try again later");
    } else if (rc == MC_ETOOBIG) {
        /* Under --broker_max_message but over what the backend carries (NATS's max_payload):
         * the publisher must hear it, as with a frame over our own bound. */
        mc_log_warn("broker: publish to %s refused: too large for broker %s; closing the "
                    "publisher with 1009",
                    mc_broker_message_topic(msg), mc_broker_name(broker));
        mc_ws_session_close(s, 1009, "message too large for the broker");
    } else if (rc < 0) {
        mc_log_warn("broker: publish to %s failed: %s", msg ? mc_broker_message_topic(msg) : "?",
                    mc_strerror(rc));
    }
    mc_broker_message_unref(msg);
}

static void on_session_end(struct mc_ws_session *s, uint16_t code)
{
    (void)code;
    struct broker_sub *sub = mc_ws_session_data(s);
    if (sub->sub_id)
        mc_broker_unsubscribe(sub->api->broker, sub->sub_id);
    mc_free(sub->topic);
    mc_free(sub->content_type);
    mc_free(sub);
}

static void subscribe(struct mc_http_request *req, struct mc_api *api, char *topic)
{
    if (!req->upgrade) {
        mc_http_respond_error(req, 400, BROKER_ID, "websocket upgrade required");
        mc_free(topic);
        return;
    }
    char *queue;
    if (mc_http_query_param(req, "queue", &queue) == MC_EINVAL) {
        mc_http_respond_error(req, 400, BROKER_ID, "invalid queue: contains a NUL (%00)");
        mc_free(topic);
        return;
    }
    const char *ct = req->content_type;
    struct broker_sub *sub = mc_calloc(1, sizeof *sub);
    sub->api = api;
    sub->topic = topic;
    sub->content_type = mc_strdup(ct && *ct ? ct : DEFAULT_CONTENT_TYPE);
    const struct mc_ws_session_config cfg = {
        .max_message = max_message(api),
        .on_message = on_client_message,
        .on_close = on_session_end,
        .data = sub,
    };
    struct mc_ws_session *session = mc_ws_session_accept(req, api->ws_hub, &cfg, BROKER_ID);
    if (!session) {
        mc_free(sub->topic);
        mc_free(sub->content_type);
        mc_free(sub);
        mc_free(queue);
        return;
    }
    sub->session = session;
    /* Subscribe before reading, so frames that came with the head are delivered back too. */
    int rc = mc_broker_subscribe(api->broker, topic, queue, on_deliver, sub, &sub->sub_id);
    mc_free(queue);
    if (rc < 0) {
        mc_log_warn("broker: subscribe to %s failed: %s", topic, mc_strerror(rc));
        mc_ws_session_close(session, 1011, "subscribe failed"); /* frees sub */
    }
    mc_ws_session_start(session);
}

/* Go's textproto.CanonicalMIMEHeaderKey, so keys read as go-micro clients saw them. */
static void canonical_key(char *key)
{
    int upper = 1;
    for (char *p = key; *p; p++) {
        *p = (char)(upper ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
        upper = *p == '-';
    }
}

static void publish(struct mc_http_request *req, struct mc_api *api, const char *topic)
{
    if (req->body.len > max_message(api)) {
        mc_http_respond_error(req, 413, BROKER_ID, "message too large");
        return;
    }
    struct mc_broker_header headers[MAX_MESSAGE_HEADERS] = {{0}};
    char *keys[MAX_MESSAGE_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < req->header_count && n < MAX_MESSAGE_HEADERS; i++) {
        const char *name = req->headers[i].name;
        if (strcasecmp(name, "Content-Type") != 0 && strncasecmp(name, "X-Micro-", 8) != 0)
            continue;
        keys[n] = mc_strdup(name);
        canonical_key(keys[n]);
        headers[n].key = keys[n];
        headers[n].value = req->headers[i].value;
        n++;
    }
    struct mc_broker_message *msg =
        mc_broker_message_new(topic, headers, n, req->body.data, req->body.len);
    int rc = msg ? mc_broker_publish(api->broker, msg) : MC_EINVAL;
    mc_broker_message_unref(msg);
    for (size_t i = 0; i < n; i++)
        mc_free(keys[i]);
    if (rc == MC_EUNAVAIL) {
        /* Nothing was published: say so, with the backend's own reason. */
        const struct mc_backend_state *st = mc_broker_state(api->broker);
        char text[MC_BACKEND_ERROR_MAX + 96];
        snprintf(text, sizeof text, "broker %s unavailable%s%s; try again later",
                 mc_broker_name(api->broker), st->error[0] ? ": " : "", st->error);
        mc_http_respond_error(req, 503, BROKER_ID, text);
        return;
    }
    if (rc < 0) {
        mc_http_respond_error(req,
                              rc == MC_EINVAL    ? 400
                              : rc == MC_ETOOBIG ? 413
                                                 : 500,
                              BROKER_ID, mc_strerror(rc));
        return;
    }
    mc_http_respond(req, 200, NULL, NULL, 0, NULL, 0);
}

void mc_api_broker(struct mc_http_request *req, void *ctx)
{
    struct mc_api *api = ctx;
    char *topic;
    if (mc_http_query_param(req, "topic", &topic) == MC_EINVAL) {
        /* a NUL would end the topic early: "a%00zzz" must not reach the subscribers of "a" */
        mc_http_respond_error(req, 400, BROKER_ID, "invalid topic: contains a NUL (%00)");
        return;
    }
    if (!topic || !*topic) {
        mc_free(topic);
        mc_http_respond_error(req, 400, BROKER_ID, "invalid topic");
        return;
    }
    if (strpbrk(topic, "\r\n")) {
        /* SPEC 11: the NATS backend writes the topic into a PUB/SUB protocol line, where a
         * CR or LF would end it and start another command (found by the outbound-head
         * family test: "t%0D%0A..." was published). */
        mc_free(topic);
        mc_http_respond_error(req, 400, BROKER_ID, "invalid topic: contains CR or LF");
        return;
    }
    if (req->method_bit == MC_HTTP_POST) {
        publish(req, api, topic);
        mc_free(topic);
        return;
    }
    subscribe(req, api, topic); /* takes topic */
}
