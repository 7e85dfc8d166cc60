/* The CLI's blocking requests over http's client: one loop per run, each request driven to
 * its end (bounded by --request_timeout), and the error text SPEC 10 asks for. */
#include "cli/session.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "http/url.h"
#include "net/tls.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/units.h"

/* https://: the client side of the TLS transport, verifying the sidecar against --tls_ca_file
 * (or the system's CAs) and presenting --tls_cert_file/--tls_key_file when both are set. */
static int open_tls(struct mc_cli *cli, const struct mc_config *cfg)
{
    if ((cfg->tls_cert_file != NULL) != (cfg->tls_key_file != NULL)) {
        fprintf(stderr, "micro: a client certificate needs both --tls_cert_file and "
                        "--tls_key_file\n");
        return 1;
    }
    struct mc_tls_config tcfg = {.ca_file = cfg->tls_ca_file,
                                 .cert_file = cfg->tls_cert_file,
                                 .key_file = cfg->tls_key_file};
    char err[512];
    cli->tls = mc_tls_client_new(&tcfg, err, sizeof err);
    if (!cli->tls) {
        fprintf(stderr, "micro: %s\n", err);
        return 1;
    }
    return 0;
}

int mc_cli_open(struct mc_cli *cli, const struct mc_config *cfg)
{
    memset(cli, 0, sizeof *cli);
    cli->cfg = cfg;
    cli->json = cfg->output && strcmp(cfg->output, "json") == 0;
    cli->timeout_ms = cfg->request_timeout_ms;
    /* A sidecar that goes away mid-write must be an error we report, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&cli->loop);
    cli->net.loop = &cli->loop;

    struct mc_url url;
    const char *text = cfg->proxy_address ? cfg->proxy_address : "";
    if (mc_url_parse(text, &url) != 0) {
        fprintf(stderr,
                "micro: invalid --proxy_address \"%s\": expected [http://]host:port, e.g. "
                "127.0.0.1:8081\n",
                text);
        return 1;
    }
    if (url.tls && open_tls(cli, cfg) != 0) {
        mc_url_close(&url);
        return 1;
    }
    struct sockaddr_storage ss;
    if (mc_net_parse_address(url.address, &ss) != 0) {
        fprintf(stderr,
                "micro: invalid --proxy_address \"%s\": the host must be an IP address or "
                "localhost\n",
                text);
        mc_url_close(&url);
        return 1;
    }
    cli->address = mc_strdup(url.address);
    size_t n = strlen(url.target);
    while (n > 0 && url.target[n - 1] == '/')
        n--;
    cli->prefix = mc_strndup(url.target, n);
    mc_url_close(&url);
    struct mc_http_client_config ccfg = {.max_idle_per_host = 1,
                                         .idle_timeout_ms = 0,
                                         .transport = cli->tls ? mc_tls_type(cli->tls) : NULL};
    cli->client = mc_http_client_new(&cli->net, &ccfg);
    return 0;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void mc_cli_close(struct mc_cli *cli)
{
    mc_http_client_free(cli->client);
    cli->client = NULL;
    mc_net_close(&cli->net);
    uv_run(&cli->loop, UV_RUN_DEFAULT);
    uv_walk(&cli->loop, close_walk_cb, NULL);
    uv_run(&cli->loop, UV_RUN_DEFAULT);
    uv_loop_close(&cli->loop);
    mc_tls_free(cli->tls); /* its connections closed with the loop */
    cli->tls = NULL;
    mc_free(cli->address);
    mc_free(cli->prefix);
    cli->address = cli->prefix = NULL;
}

static void on_head(struct mc_http_call *call, const struct mc_http_response_head *head, void *ctx)
{
    (void)call;
    struct mc_cli_reply *reply = ctx;
    reply->status = head->status;
}

static void on_done(struct mc_http_call *call, int err, int retryable, void *ctx)
{
    (void)retryable;
    struct mc_cli_reply *reply = ctx;
    reply->err = err;
    const struct mc_buf *body = mc_http_call_body(call);
    if (err == 0 && body && body->len)
        mc_buf_append(&reply->body, body->data, body->len);
    reply->done = 1;
}

void mc_cli_request(struct mc_cli *cli, const char *method, const char *path,
                    const char *content_type, const void *body, size_t body_len,
                    struct mc_cli_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    mc_buf_init(&reply->body);
    struct mc_buf target;
    mc_buf_init(&target);
    mc_buf_appendf(&target, "%s%s", cli->prefix, path);
    struct mc_http_header headers[1] = {{"Content-Type", content_type}};
    struct mc_http_call_options o = {
        .address = cli->address,
        .method = method,
        .target = target.data,
        .headers = headers,
        .header_count = content_type ? 1 : 0,
        .body = body,
        .body_len = body_len,
        .dial_timeout_ms = cli->timeout_ms,
        .timeout_ms = cli->timeout_ms,
        .buffer_body = 1,
        .max_body = MC_CLI_MAX_REPLY,
        .on_head = on_head,
        .on_done = on_done,
        .ctx = reply,
    };
    mc_http_call_start(cli->client, &o);
    mc_buf_close(&target);
    /* The client may keep an idle connection (and its timer) alive: run until this answer. */
    while (!reply->done)
        uv_run(&cli->loop, UV_RUN_ONCE);
}

void mc_cli_reply_close(struct mc_cli_reply *reply)
{
    mc_buf_close(&reply->body);
}

void mc_cli_transport_error(const struct mc_cli *cli, int err, struct mc_buf *out)
{
    if (err == UV_ECONNREFUSED) {
        mc_buf_appendf(out,
                       "cannot reach the sidecar at %s (connection refused): is micro sidecar "
                       "running? (--proxy_address)",
                       cli->address);
    } else if (err == UV_EPROTO && cli->tls) {
        /* The handshake failed: one of the two ends refused the other's certificate. */
        mc_buf_appendf(out,
                       "TLS with the sidecar at %s failed: is its certificate signed by a CA of "
                       "--tls_ca_file and issued for this address? does it require a client "
                       "certificate (--tls_cert_file, --tls_key_file)?",
                       cli->address);
    } else if (err == MC_ETIMEDOUT) {
        char bound[32];
        mc_duration_text(bound, sizeof bound, cli->timeout_ms);
        mc_buf_appendf(out, "no answer from the sidecar at %s within %s (--request_timeout)",
                       cli->address, bound);
    } else {
        mc_buf_appendf(out, "cannot reach the sidecar at %s (%s) (--proxy_address)", cli->address,
                       mc_strerror(err));
    }
}

void mc_cli_reply_error(const struct mc_cli *cli, const struct mc_cli_reply *reply,
                        struct mc_buf *out)
{
    if (reply->err) {
        mc_cli_transport_error(cli, reply->err, out);
        return;
    }
    if (reply->status >= 200 && reply->status < 300)
        return;
    json_t *e = reply->body.len ? json_loadb(reply->body.data, reply->body.len, 0, NULL) : NULL;
    const char *detail = json_string_value(json_object_get(e, "detail"));
    if (detail && *detail) {
        mc_buf_append_str(out, detail);
    } else {
        size_t n = reply->body.len ? strcspn(reply->body.data, "\r\n") : 0;
        mc_buf_appendf(out, "the sidecar answered %d", reply->status);
        if (n)
            mc_buf_appendf(out, ": %.*s", (int)(n > 200 ? 200 : n), reply->body.data);
    }
    json_decref(e);
}

int mc_cli_check(const struct mc_cli *cli, const struct mc_cli_reply *reply)
{
    struct mc_buf why;
    mc_buf_init(&why);
    mc_cli_reply_error(cli, reply, &why);
    int failed = why.len > 0;
    if (failed)
        fprintf(stderr, "micro: %s\n", why.data);
    mc_buf_close(&why);
    return failed;
}
