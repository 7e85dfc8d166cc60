/* One CLI run's connection to the sidecar: its own libuv loop, a net context and an HTTP
 * client, and blocking request helpers (a CLI does one thing at a time). Internal to src/cli. */
#ifndef MC_CLI_SESSION_H
#define MC_CLI_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "conf/conf.h"
#include "http/client.h"
#include "net/conn.h"
#include "util/buf.h"

/* The largest answer the CLI reads (a whole registry listing fits). */
#define MC_CLI_MAX_REPLY (64u << 20)

struct mc_cli {
    uv_loop_t loop;
    struct mc_net net;
    struct mc_http_client *client;
    struct mc_tls *tls; /* https://: the client's TLS configuration; NULL for http:// */
    char *address;      /* "host:port" of the sidecar, for the client and for messages */
    char *prefix;       /* the path of --proxy_address without its trailing '/', often "" */
    uint64_t timeout_ms;
    int json; /* --output json */
    const struct mc_config *cfg;
};

/* A finished request: err is 0 or the transport error (a libuv code, MC_ETIMEDOUT, ...);
 * status and body are the answer's when err is 0. Release with mc_cli_reply_close. */
struct mc_cli_reply {
    int err;
    int status;
    struct mc_buf body;
    int done;
};

/* Sets cli up for cfg's --proxy_address. Returns 0, or 1 after printing why (an address the
 * client cannot dial; with https://, a CA or client certificate file that cannot be used).
 * mc_cli_close() frees what was set up either way. */
int mc_cli_open(struct mc_cli *cli, const struct mc_config *cfg);
void mc_cli_close(struct mc_cli *cli);

/* Sends method path (appended to the prefix) with body (may be NULL) and an optional
 * Content-Type, and runs the loop until the answer or an error, bounded by
 * --request_timeout. reply is initialized here. */
void mc_cli_request(struct mc_cli *cli, const char *method, const char *path,
                    const char *content_type, const void *body, size_t body_len,
                    struct mc_cli_reply *reply);
void mc_cli_reply_close(struct mc_cli_reply *reply);

/* Writes the reason a request failed into out: the transport error (connection refused names
 * the address and the sidecar that may not run; a timeout names --request_timeout), else the
 * detail of the error JSON, else the status and the body's first line. Empty for a 2xx. */
void mc_cli_reply_error(const struct mc_cli *cli, const struct mc_cli_reply *reply,
                        struct mc_buf *out);

/* Prints reply's failure to stderr as one "micro: ..." line and returns 1, or returns 0 for a
 * 2xx answer. */
int mc_cli_check(const struct mc_cli *cli, const struct mc_cli_reply *reply);

/* Writes the transport error err (as from a reply) into out. */
void mc_cli_transport_error(const struct mc_cli *cli, int err, struct mc_buf *out);

/* `micro subscribe TOPIC`: WebSocket /broker until --count messages, SIGINT or the sidecar's
 * close. Returns the exit status. */
int mc_cli_subscribe(struct mc_cli *cli, const char *topic);

#endif
