/* The CLI's request-answer commands (SPEC 10) and their dispatch: each builds one request
 * (health: one per node), sends it through the session and prints the answer as text for
 * people or, with --output json, the sidecar's JSON as received. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/format.h"
#include "cli/session.h"
#include "util/alloc.h"

/* Exit statuses (SPEC 1 and 10). */
enum { OK = 0, FAILED = 1, USAGE = 2 };

static int usage(const struct mc_command *cmd, const char *why)
{
    fprintf(stderr, "micro: %s\n", why);
    mc_command_print_usage(stderr, cmd);
    return USAGE;
}

/* The fixed word of "list services", "get service NAME", "register service JSON". */
static int expect_word(const struct mc_command *cmd, const char *arg, const char *word)
{
    if (strcmp(arg, word) == 0)
        return OK;
    char why[160];
    snprintf(why, sizeof why, "%s what? expected \"%s\", not \"%.60s\"", cmd->name, word, arg);
    return usage(cmd, why);
}

/* A JSON argument is checked here, so a typo gets jansson's line and column rather than a
 * round trip; exit 2 as for any bad value on the command line. */
static int check_json(const struct mc_command *cmd, const char *text)
{
    json_error_t error;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &error);
    if (v) {
        json_decref(v);
        return OK;
    }
    char why[300];
    snprintf(why, sizeof why, "the JSON argument is not valid JSON: %s (line %d, column %d)",
             error.text, error.line, error.column);
    return usage(cmd, why);
}

/* Prints the answer body as received, one line (for --output json). */
static void print_raw(const struct mc_cli_reply *reply)
{
    if (reply->body.len == 0)
        return;
    fwrite(reply->body.data, 1, reply->body.len, stdout);
    if (reply->body.data[reply->body.len - 1] != '\n')
        fputc('\n', stdout);
}

static json_t *parse_reply(const struct mc_cli_reply *reply)
{
    return reply->body.len ? json_loadb(reply->body.data, reply->body.len, JSON_DECODE_ANY, NULL)
                           : NULL;
}

static int bad_answer(const struct mc_cli *cli, const char *what)
{
    fprintf(stderr, "micro: the sidecar at %s answered %s that is not the expected JSON\n",
            cli->address, what);
    return FAILED;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmd_list(struct mc_cli *cli, const struct mc_config *cfg, const struct mc_command *cmd)
{
    if (expect_word(cmd, cfg->args[0], "services") != OK)
        return USAGE;
    struct mc_cli_reply reply;
    mc_cli_request(cli, "GET", "/registry", NULL, NULL, 0, &reply);
    int code = mc_cli_check(cli, &reply) ? FAILED : OK;
    if (code == OK && cli->json) {
        print_raw(&reply);
    } else if (code == OK) {
        json_t *list = parse_reply(&reply);
        if (!json_is_array(list) && !json_is_null(list)) {
            code = bad_answer(cli, "a service list");
        } else {
            size_t n = json_array_size(list), k = 0;
            const char **names = mc_calloc(n + 1, sizeof *names);
            for (size_t i = 0; i < n; i++) {
                const char *name =
                    json_string_value(json_object_get(json_array_get(list, i), "name"));
                if (name)
                    names[k++] = name;
            }
            qsort(names, k, sizeof *names, compare_strings);
            for (size_t i = 0; i < k; i++)
                if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
                    printf("%s\n", names[i]);
            mc_free(names);
        }
        json_decref(list);
    }
    mc_cli_reply_close(&reply);
    return code;
}

/* GET /registry?service=NAME into reply; 0 or FAILED (printed). */
static int lookup(struct mc_cli *cli, const char *name, struct mc_cli_reply *reply)
{
    struct mc_buf path;
    mc_buf_init(&path);
    mc_buf_append_str(&path, "/registry?service=");
    mc_cli_query_escape(&path, name);
    mc_cli_request(cli, "GET", path.data, NULL, NULL, 0, reply);
    mc_buf_close(&path);
    return mc_cli_check(cli, reply) ? FAILED : OK;
}

static int cmd_get(struct mc_cli *cli, const struct mc_config *cfg, const struct mc_command *cmd)
{
    if (expect_word(cmd, cfg->args[0], "service") != OK)
        return USAGE;
    struct mc_cli_reply reply;
    int code = lookup(cli, cfg->args[1], &reply);
    if (code == OK && cli->json) {
        print_raw(&reply);
    } else if (code == OK) {
        json_t *versions = parse_reply(&reply);
        if (!json_is_array(versions)) {
            code = bad_answer(cli, "a service");
        } else {
            struct mc_buf out;
            mc_buf_init(&out);
            mc_cli_service_page(&out, cfg->args[1], versions);
            fwrite(out.data, 1, out.len, stdout);
            mc_buf_close(&out);
        }
        json_decref(versions);
    }
    mc_cli_reply_close(&reply);
    return code;
}

/* register / deregister: the JSON goes as it was typed. */
static int cmd_registry(struct mc_cli *cli, const struct mc_config *cfg,
                        const struct mc_command *cmd, const char *method)
{
    if (expect_word(cmd, cfg->args[0], "service") != OK || check_json(cmd, cfg->args[1]) != OK)
        return USAGE;
    struct mc_cli_reply reply;
    mc_cli_request(cli, method, "/registry", "application/json", cfg->args[1], strlen(cfg->args[1]),
                   &reply);
    int code = mc_cli_check(cli, &reply) ? FAILED : OK;
    if (code == OK && cli->json)
        print_raw(&reply);
    mc_cli_reply_close(&reply);
    return code;
}

/* The /rpc body: service, method (and address) escaped, request spliced in as typed so its
 * bytes (big numbers, key order) reach the service unchanged. */
static void rpc_body(struct mc_buf *body, const char *service, const char *method,
                     const char *request, const char *address)
{
    mc_buf_append_str(body, "{\"service\":\"");
    mc_buf_append_json_escaped(body, service);
    mc_buf_append_str(body, "\",\"method\":\"");
    mc_buf_append_json_escaped(body, method);
    if (address) {
        mc_buf_append_str(body, "\",\"address\":\"");
        mc_buf_append_json_escaped(body, address);
    }
    mc_buf_appendf(body, "\",\"request\":%s}", request);
}

/* Pretty-prints JSON text (2 spaces, key order kept); text jansson cannot hold (a number
 * past 64 bits) is printed as received rather than refused. */
static void print_pretty(const char *text, size_t len)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    char *pretty = v ? json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
    if (pretty)
        printf("%s\n", pretty);
    else if (len)
        printf("%.*s%s", (int)len, text, text[len - 1] == '\n' ? "" : "\n");
    free(pretty);
    json_decref(v);
}

static int cmd_query(struct mc_cli *cli, const struct mc_config *cfg, const struct mc_command *cmd)
{
    const char *request = cfg->arg_count > 2 ? cfg->args[2] : "{}";
    if (check_json(cmd, request) != OK)
        return USAGE;
    struct mc_buf body;
    mc_buf_init(&body);
    rpc_body(&body, cfg->args[0], cfg->args[1], request, NULL);
    struct mc_cli_reply reply;
    mc_cli_request(cli, "POST", "/rpc", "application/json", body.data, body.len, &reply);
    mc_buf_close(&body);
    int code = mc_cli_check(cli, &reply) ? FAILED : OK;
    if (code == OK && cli->json)
        print_raw(&reply);
    else if (code == OK)
        print_pretty(reply.body.data, reply.body.len);
    mc_cli_reply_close(&reply);
    return code;
}

/* One node's Debug.Health: its status text (the result's "status", else the result as compact
 * JSON, else the error's detail) into status; for --output json, the node's object appended
 * to results. Returns 1 when the call failed. */
static int node_health(struct mc_cli *cli, const char *service, const char *id, const char *address,
                       struct mc_buf *status, json_t *results)
{
    struct mc_buf body;
    mc_buf_init(&body);
    rpc_body(&body, service, "Debug.Health", "{}", address);
    struct mc_cli_reply reply;
    mc_cli_request(cli, "POST", "/rpc", "application/json", body.data, body.len, &reply);
    mc_buf_close(&body);
    mc_cli_reply_error(cli, &reply, status);
    int failed = status->len > 0;
    json_t *answer = parse_reply(&reply);
    if (!failed) {
        const char *s = json_string_value(json_object_get(answer, "status"));
        if (s) {
            mc_buf_append_str(status, s);
        } else {
            char *text = answer ? json_dumps(answer, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            mc_buf_append_str(status, text ? text : "-");
            free(text);
        }
    }
    json_t *row = json_pack("{s:s, s:s, s:s}", "node", id, "address", address, "status",
                            status->data ? status->data : "");
    if (answer)
        json_object_set_new(row, failed ? "error" : "result", answer);
    json_array_append_new(results, row);
    mc_cli_reply_close(&reply);
    return failed;
}

static int cmd_health(struct mc_cli *cli, const struct mc_config *cfg)
{
    const char *service = cfg->args[0];
    struct mc_cli_reply reply;
    int code = lookup(cli, service, &reply);
    json_t *versions = code == OK ? parse_reply(&reply) : NULL;
    mc_cli_reply_close(&reply);
    if (code != OK)
        return code;
    if (!json_is_array(versions)) {
        json_decref(versions);
        return bad_answer(cli, "a service");
    }
    /* Rows of node, address:port, status; the strings live in bufs until printed. */
    size_t total = 0;
    for (size_t v = 0; v < json_array_size(versions); v++)
        total += json_array_size(json_object_get(json_array_get(versions, v), "nodes"));
    const char **cells = mc_calloc(total * 3 + 1, sizeof *cells);
    struct mc_buf *text = mc_calloc(total * 2 + 1, sizeof *text);
    json_t *results = json_array();
    size_t row = 0;
    for (size_t v = 0; v < json_array_size(versions); v++) {
        json_t *nodes = json_object_get(json_array_get(versions, v), "nodes");
        for (size_t i = 0; i < json_array_size(nodes) && row < total; i++, row++) {
            json_t *node = json_array_get(nodes, i);
            const char *id = json_string_value(json_object_get(node, "id"));
            const char *host = json_string_value(json_object_get(node, "address"));
            struct mc_buf *address = &text[2 * row], *status = &text[2 * row + 1];
            mc_buf_init(address);
            mc_buf_init(status);
            mc_cli_node_address(address, host ? host : "",
                                (long long)json_integer_value(json_object_get(node, "port")));
            if (node_health(cli, service, id ? id : "", address->data, status, results))
                code = FAILED;
            cells[3 * row] = id ? id : "-";
            cells[3 * row + 1] = address->data;
            cells[3 * row + 2] = status->data ? status->data : "";
        }
    }
    if (cli->json) {
        char *out = json_dumps(results, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", out);
        free(out);
    } else {
        struct mc_buf out;
        mc_buf_init(&out);
        mc_cli_table(&out, cells, row, 3);
        if (out.len)
            fwrite(out.data, 1, out.len, stdout);
        mc_buf_close(&out);
    }
    for (size_t i = 0; i < row * 2; i++)
        mc_buf_close(&text[i]);
    mc_free(text);
    mc_free(cells);
    json_decref(results);
    json_decref(versions);
    return code;
}

static int cmd_publish(struct mc_cli *cli, const struct mc_config *cfg)
{
    struct mc_buf path;
    mc_buf_init(&path);
    mc_buf_append_str(&path, "/broker?topic=");
    mc_cli_query_escape(&path, cfg->args[0]);
    struct mc_cli_reply reply;
    mc_cli_request(cli, "POST", path.data, NULL, cfg->args[1], strlen(cfg->args[1]), &reply);
    mc_buf_close(&path);
    int code = mc_cli_check(cli, &reply) ? FAILED : OK;
    if (code == OK && cli->json)
        print_raw(&reply);
    mc_cli_reply_close(&reply);
    return code;
}

int mc_cli_run(const struct mc_config *cfg, const struct mc_command *cmd)
{
    struct mc_cli cli;
    int code = mc_cli_open(&cli, cfg);
    if (code == OK) {
        const char *name = cmd->name;
        if (strcmp(name, "list") == 0)
            code = cmd_list(&cli, cfg, cmd);
        else if (strcmp(name, "get") == 0)
            code = cmd_get(&cli, cfg, cmd);
        else if (strcmp(name, "register") == 0)
            code = cmd_registry(&cli, cfg, cmd, "POST");
        else if (strcmp(name, "deregister") == 0)
            code = cmd_registry(&cli, cfg, cmd, "DELETE");
        else if (strcmp(name, "query") == 0 || strcmp(name, "call") == 0)
            code = cmd_query(&cli, cfg, cmd);
        else if (strcmp(name, "health") == 0)
            code = cmd_health(&cli, cfg);
        else if (strcmp(name, "publish") == 0)
            code = cmd_publish(&cli, cfg);
        else if (strcmp(name, "subscribe") == 0)
            code = mc_cli_subscribe(&cli, cfg->args[0]);
        else
            code = usage(cmd, "not a command that talks to a sidecar");
    }
    mc_cli_close(&cli);
    if (fflush(stdout) != 0 && code == OK)
        code = FAILED;
    return code;
}
