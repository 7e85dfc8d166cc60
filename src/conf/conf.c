/* The flag table and everything derived from it: defaults, command-line and environment
 * parsing, validation and --help. Adding a flag means adding one row to `flags` (and its field
 * to struct mc_config); nothing else changes. */
#include "conf/conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/conn.h"
#include "util/alloc.h"
#include "util/units.h"
#include "util/error.h"

/* The target of a row, checked at compile time: _Generic has no match (a compile error) when
 * the field's type is not the one the row's kind stores, so a table row cannot write a
 * uint64_t into an int. */
#define FIELD(f, type) _Generic(((struct mc_config *)0)->f, type : offsetof(struct mc_config, f))

#define ROW(name_, alias_, env_, type_, ctype_, field_, default_, min_, choices_, help_)           \
    {                                                                                              \
        .name = name_, .alias = alias_, .env = env_, .type = type_, .default_text = default_,      \
        .help = help_, .offset = FIELD(field_, ctype_), .min = min_, .choices = choices_           \
    }
#define STRING(n, a, e, f, d, h) ROW(n, a, e, MC_CONF_STRING, char *, f, d, 0, NULL, h)
#define BOOL(n, a, e, f, d, h) ROW(n, a, e, MC_CONF_BOOL, int, f, d, 0, NULL, h)
#define INT(n, a, e, f, d, min, h) ROW(n, a, e, MC_CONF_INT, int, f, d, min, NULL, h)
#define DURATION(n, a, e, f, d, min, h) ROW(n, a, e, MC_CONF_DURATION, uint64_t, f, d, min, NULL, h)
#define SIZE(n, a, e, f, d, min, h) ROW(n, a, e, MC_CONF_SIZE, uint64_t, f, d, min, NULL, h)
#define CHOICE(n, a, e, f, d, c, h) ROW(n, a, e, MC_CONF_CHOICE, char *, f, d, 0, c, h)
#define ADDRESS(n, a, e, f, d, h) ROW(n, a, e, MC_CONF_ADDRESS, char *, f, d, 0, NULL, h)
#define LISTEN(n, a, e, f, d, h) ROW(n, a, e, MC_CONF_LISTEN, char *, f, d, 0, NULL, h)

static const char *const registry_choices[] = {"memory", "etcd", NULL};
static const char *const broker_choices[] = {"memory", "nats", NULL};
static const char *const selector_choices[] = {"random", "roundrobin", "p2c", NULL};
static const char *const handler_choices[] = {"rpc", "proxy", "auto", NULL};
static const char *const output_choices[] = {"text", "json", NULL};

/* The one table (STYLE habit 14). Minimums: counts that make no sense below 1, and periods
 * or timeouts where 0 would mean a busy loop or an instant failure, are rejected here rather
 * than discovered at run time; --drain_timeout 0 (do not wait) stays legal. */
static const struct mc_flag flags[] = {
    LISTEN("sidecar_address", "address", "MICRO_SIDECAR_ADDRESS", sidecar_address, ":8081",
           "listen address of the HTTP API"),
    STRING("server_name", NULL, "MICRO_SERVER_NAME", server_name, NULL,
           "name of the app to register (needs --server_address)"),
    ADDRESS("server_address", NULL, "MICRO_SERVER_ADDRESS", server_address, NULL,
            "host:port of the app to register (needs --server_name)"),
    ADDRESS("server_advertise", NULL, "MICRO_SERVER_ADVERTISE", server_advertise, NULL,
            "address to register instead of --server_address"),
    STRING("server_version", NULL, "MICRO_SERVER_VERSION", server_version, NULL,
           "version registered with the app"),
    {.name = "server_metadata",
     .env = "MICRO_SERVER_METADATA",
     .type = MC_CONF_METADATA,
     .help = "metadata registered with the app node, k=v,k2=v2 (repeatable)",
     .offset = FIELD(server_metadata, struct mc_metadata_pair *),
     .count_offset = FIELD(server_metadata_count, size_t)},
    STRING("healthcheck_url", NULL, "MICRO_HEALTHCHECK_URL", healthcheck_url, NULL,
           "the app's health URL, polled by the health checker and proxied by /health"),
    DURATION("healthcheck_interval", NULL, "MICRO_HEALTHCHECK_INTERVAL", healthcheck_interval_ms,
             "5s", 1, "time between two health checks"),
    DURATION("healthcheck_timeout", NULL, "MICRO_HEALTHCHECK_TIMEOUT", healthcheck_timeout_ms, "1s",
             1, "bound of one health check"),
    INT("healthcheck_rise", NULL, "MICRO_HEALTHCHECK_RISE", healthcheck_rise, "2", 1,
        "consecutive successes that register the app again"),
    INT("healthcheck_fall", NULL, "MICRO_HEALTHCHECK_FALL", healthcheck_fall, "3", 1,
        "consecutive failures that deregister the app"),
    DURATION("register_ttl", NULL, "MICRO_REGISTER_TTL", register_ttl_ms, "30s", 1,
             "TTL of every node this sidecar registers"),
    DURATION("register_interval", NULL, "MICRO_REGISTER_INTERVAL", register_interval_ms, "10s", 1,
             "how often registrations are renewed (etcd: lease keep-alives, at least every TTL/3)"),
    CHOICE("registry", NULL, "MICRO_REGISTRY", registry, "memory", registry_choices,
           "registry backend: memory (this process only) or etcd (shared across hosts)"),
    ROW("registry_address", NULL, "MICRO_REGISTRY_ADDRESS", MC_CONF_ADDRESS_LIST, char *,
        registry_address, NULL, 0, NULL, "--registry=etcd: etcd client endpoints, tried in turn"),
    CHOICE("broker", NULL, "MICRO_BROKER", broker, "memory", broker_choices, "broker backend"),
    STRING("broker_address", NULL, "MICRO_BROKER_ADDRESS", broker_address, NULL,
           "--broker=nats: the NATS servers, nats://host:port[,nats://host:port...]"),
    CHOICE("selector", NULL, "MICRO_SELECTOR", selector, "p2c", selector_choices,
           "load-balancing strategy"),
    CHOICE("handler", NULL, "MICRO_HANDLER", handler, "rpc", handler_choices,
           "what /{service}/... paths do: a JSON-RPC call, an HTTP reverse proxy, or auto (the "
           "proxy for services whose nodes have metadata protocol=http)"),
    STRING("namespace", NULL, "MICRO_NAMESPACE", namespace, "go.micro.srv",
           "namespace prefixed to service names taken from paths"),
    /* Both the daemon's calls and the CLI's requests to the sidecar are bounded by it. */
    {.name = "request_timeout",
     .env = "MICRO_REQUEST_TIMEOUT",
     .type = MC_CONF_DURATION,
     .default_text = "5s",
     .help = "bound of a call to a service, retries included",
     .offset = FIELD(request_timeout_ms, uint64_t),
     .min = 1,
     .scope = MC_SCOPE_SIDECAR | MC_SCOPE_CLIENT},
    DURATION("dial_timeout", NULL, "MICRO_DIAL_TIMEOUT", dial_timeout_ms, "2s", 1,
             "bound of one connection attempt to a node"),
    DURATION("proxy_idle_timeout", NULL, "MICRO_PROXY_IDLE_TIMEOUT", proxy_idle_timeout_ms, "60s",
             1,
             "--handler=proxy: longest silence of a node mid-response, or of a tunnel both ways"),
    INT("retries", NULL, "MICRO_RETRIES", retries, "2", 0,
        "extra attempts on another node after a connection failure"),
    STRING("cors", "sidecar_cors", "MICRO_CORS", cors, "*",
           "comma list of allowed browser origins, * for any"),
    INT("max_connections", NULL, "MICRO_MAX_CONNECTIONS", max_connections, "10000", 1,
        "connections served at once; more are closed"),
    SIZE("max_body_size", NULL, "MICRO_MAX_BODY_SIZE", max_body_size, "4MiB", 1,
         "largest request body the sidecar reads itself"),
    DURATION("body_timeout", NULL, "MICRO_BODY_TIMEOUT", body_timeout_ms, "20s", 1,
             "a request body silent this long, or past it slower than --body_min_rate, is a 408"),
    SIZE("body_min_rate", NULL, "MICRO_BODY_MIN_RATE", body_min_rate, "500", 0,
         "bytes per second a request body must average from its start (0: no rate rule)"),
    SIZE("broker_max_message", NULL, "MICRO_BROKER_MAX_MESSAGE", broker_max_message, "1MiB", 1,
         "largest broker message"),
    /* TLS (SPEC 8): HTTPS and WSS on the one API port; SIGHUP reloads the pair. */
    BOOL("enable_tls", NULL, "MICRO_ENABLE_TLS", enable_tls, "false",
         "serve the API over TLS 1.2/1.3 (needs --tls_cert_file and --tls_key_file)"),
    /* The pair is also the CLI's client certificate, for a sidecar that requires one. */
    {.name = "tls_cert_file",
     .env = "MICRO_TLS_CERT_FILE",
     .type = MC_CONF_STRING,
     .help = "the certificate (chain), PEM: the sidecar's with --enable_tls; the CLI's client "
             "certificate over https://",
     .offset = FIELD(tls_cert_file, char *),
     .scope = MC_SCOPE_SIDECAR | MC_SCOPE_CLIENT},
    {.name = "tls_key_file",
     .env = "MICRO_TLS_KEY_FILE",
     .type = MC_CONF_STRING,
     .help = "the private key of --tls_cert_file, PEM",
     .offset = FIELD(tls_key_file, char *),
     .scope = MC_SCOPE_SIDECAR | MC_SCOPE_CLIENT},
    STRING("tls_client_ca_file", NULL, "MICRO_TLS_CLIENT_CA_FILE", tls_client_ca_file, NULL,
           "--enable_tls: require client certificates signed by these CAs (mTLS), PEM"),
    DURATION("drain_timeout", NULL, "MICRO_DRAIN_TIMEOUT", drain_timeout_ms, "5s", 0,
             "graceful shutdown bound"),
    STRING("access_log", NULL, "MICRO_ACCESS_LOG", access_log, NULL,
           "access log: - for stderr or a file path (off when unset)"),
    ROW("log_level", NULL, "MICRO_LOG_LEVEL", MC_CONF_LOG_LEVEL, enum mc_log_level, log_level,
        "info", 0, mc_log_level_names, "most verbose log level printed"),
    BOOL("enable_stats", NULL, "MICRO_ENABLE_STATS", enable_stats, "false",
         "serve /stats: the JSON counters and the dashboard page (/metrics is always on)"),
    /* No env var for these two: MICRO_HELP or MICRO_VERSION in an environment would turn every
     * start into a printout. */
    /* The CLI's flags (SPEC 10): only the commands that talk to a sidecar list them. */
    {.name = "proxy_address",
     .env = "MICRO_PROXY_ADDRESS",
     .type = MC_CONF_STRING,
     .default_text = "127.0.0.1:8081",
     .help = "the sidecar the CLI commands talk to, [http://|https://]host:port",
     .offset = FIELD(proxy_address, char *),
     .scope = MC_SCOPE_CLIENT},
    {.name = "tls_ca_file",
     .env = "MICRO_TLS_CA_FILE",
     .type = MC_CONF_STRING,
     .help = "https:// --proxy_address: the CAs that sign the sidecar's certificate, PEM "
             "(default: the system's)",
     .offset = FIELD(tls_ca_file, char *),
     .scope = MC_SCOPE_CLIENT},
    {.name = "output",
     .alias = "o",
     .env = "MICRO_OUTPUT",
     .type = MC_CONF_CHOICE,
     .default_text = "text",
     .help = "what the CLI prints: text for people, json for scripts (the sidecar's JSON answers)",
     .offset = FIELD(output, char *),
     .choices = output_choices,
     .scope = MC_SCOPE_CLIENT},
    {.name = "queue",
     .env = "MICRO_QUEUE",
     .type = MC_CONF_STRING,
     .help = "subscribe: join this queue group (each message goes to one of its members)",
     .offset = FIELD(queue, char *),
     .scope = MC_SCOPE_SUBSCRIBE},
    {.name = "count",
     .env = "MICRO_COUNT",
     .type = MC_CONF_INT,
     .default_text = "0",
     .help = "subscribe: exit after this many messages (0: until Ctrl-C)",
     .offset = FIELD(count, int),
     .scope = MC_SCOPE_SUBSCRIBE},
    {.name = "help",
     .alias = "h",
     .type = MC_CONF_BOOL,
     .default_text = "false",
     .help = "print this help and exit",
     .offset = FIELD(help, int),
     .scope = MC_SCOPE_ALL},
    {.name = "version",
     .type = MC_CONF_BOOL,
     .default_text = "false",
     .help = "print the version and exit",
     .offset = FIELD(version, int),
     .scope = MC_SCOPE_ALL},
};

#define CLIENT MC_SCOPE_CLIENT

/* name, most arguments, help, fewest arguments, usage, the scope of the flags it lists. */
static const struct mc_command commands[] = {
    {"sidecar", 0, "run the sidecar daemon", 0, "sidecar", MC_SCOPE_SIDECAR},
    {"list", 1, "list the registered services, one a line", 1, "list services", CLIENT},
    {"get", 2, "show a service: its versions and their nodes", 2, "get service NAME", CLIENT},
    {"register", 2, "register the service in JSON (as POST /registry)", 2, "register service JSON",
     CLIENT},
    {"deregister", 2, "deregister the nodes named in JSON (as DELETE /registry)", 2,
     "deregister service JSON", CLIENT},
    {"query", 3, "call METHOD of SERVICE with the JSON request ({} when absent)", 2,
     "query SERVICE METHOD [JSON]", CLIENT},
    {"call", 3, "the same as query", 2, "call SERVICE METHOD [JSON]", CLIENT},
    {"health", 1, "Debug.Health of every node of SERVICE", 1, "health SERVICE", CLIENT},
    {"publish", 2, "publish MESSAGE on TOPIC", 2, "publish TOPIC MESSAGE", CLIENT},
    {"subscribe", 1, "print every message on TOPIC, one a line, until Ctrl-C or --count", 1,
     "subscribe TOPIC [--queue Q] [--count N]", CLIENT | MC_SCOPE_SUBSCRIBE},
    {"version", 0, "print the version", 0, "version", 0},
    {"help", 1, "print help, for COMMAND when one is given", 0, "help [COMMAND]", 0},
    {"man", 0, "print this manual page in roff (make install installs it as micro.1)", 0, "man", 0},
};

#undef CLIENT

void mc_command_print_usage(FILE *out, const struct mc_command *cmd)
{
    fprintf(out, "Usage: micro [global flags] %s [flags]\n", cmd->usage);
}

/* Whether `micro COMMAND --help` lists f (command NULL: the global help lists every flag). */
static bool flag_shown(const struct mc_flag *f, const struct mc_command *cmd)
{
    if (!cmd || cmd->scope == 0)
        return true;
    return ((f->scope ? f->scope : MC_SCOPE_SIDECAR) & cmd->scope) != 0;
}

const struct mc_command *mc_commands(size_t *count)
{
    *count = sizeof commands / sizeof commands[0];
    return commands;
}

const struct mc_command *mc_command_find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

#define FLAG_COUNT (sizeof flags / sizeof flags[0])

static const char *const type_names[] = {
    [MC_CONF_STRING] = "string",
    [MC_CONF_BOOL] = "bool",
    [MC_CONF_INT] = "int",
    [MC_CONF_DURATION] = "duration",
    [MC_CONF_SIZE] = "size",
    [MC_CONF_LOG_LEVEL] = "level",
    [MC_CONF_CHOICE] = "choice",
    [MC_CONF_METADATA] = "k=v,...",
    [MC_CONF_ADDRESS] = "host:port",
    [MC_CONF_LISTEN] = "host:port",
    [MC_CONF_ADDRESS_LIST] = "host:port,...",
};

const struct mc_flag *mc_conf_flags(size_t *count)
{
    if (count)
        *count = FLAG_COUNT;
    return flags;
}

const char *mc_conf_type_name(enum mc_conf_type type)
{
    if ((size_t)type < sizeof type_names / sizeof type_names[0] && type_names[type])
        return type_names[type];
    return "unknown";
}

/* ---- value parsers ---- */

static int parse_u64_digits(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return MC_EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return MC_EINVAL;
        v = v * 10 + d;
    }
    *pp = p;
    *out = v;
    return 0;
}

struct unit {
    const char *name;
    uint64_t scale;
};

/* Longer names first where one is a prefix of another ("ms" before "m"). */
static const struct unit duration_units[] = {
    {"ns", 1ULL},
    {"us", 1000ULL},
    {"\xc2\xb5s", 1000ULL}, /* U+00B5 micro sign, which Go accepts */
    {"\xce\xbcs", 1000ULL}, /* U+03BC Greek mu, likewise */
    {"ms", 1000000ULL},
    {"s", 1000000000ULL},
    {"m", 60ULL * 1000000000ULL},
    {"h", 3600ULL * 1000000000ULL},
};

int mc_parse_duration_ms(const char *text, uint64_t *out)
{
    if (!text || !*text)
        return MC_EINVAL;
    const char *p = text;
    bool bare = true;
    for (const char *q = text; *q; q++)
        if (!isdigit((unsigned char)*q))
            bare = false;

    /* Sum in nanoseconds, as Go does, so "1m30s" and "1.5ms" are exact before rounding. */
    uint64_t total_ns = 0;
    while (*p) {
        uint64_t whole = 0;
        bool digits = false;
        if (isdigit((unsigned char)*p)) {
            if (parse_u64_digits(&p, &whole) != 0)
                return MC_EINVAL;
            digits = true;
        }
        double frac = 0, frac_scale = 1;
        if (*p == '.') {
            p++;
            for (; isdigit((unsigned char)*p); p++) {
                digits = true;
                if (frac_scale < 1e18) { /* further digits are below a nanosecond */
                    frac = frac * 10 + (*p - '0');
                    frac_scale *= 10;
                }
            }
        }
        if (!digits)
            return MC_EINVAL;
        uint64_t scale = 0;
        if (bare) {
            scale = 1000000000ULL;
        } else {
            for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
                size_t n = strlen(duration_units[i].name);
                if (strncmp(p, duration_units[i].name, n) == 0) {
                    scale = duration_units[i].scale;
                    p += n;
                    break;
                }
            }
            if (scale == 0)
                return MC_EINVAL; /* missing or unknown unit */
        }
        if (whole > UINT64_MAX / scale)
            return MC_EINVAL;
        uint64_t v = whole * scale;
        double extra = frac / frac_scale * (double)scale + 0.5;
        if (extra >= 18446744073709551616.0 || v > UINT64_MAX - (uint64_t)extra)
            return MC_EINVAL;
        v += (uint64_t)extra;
        if (total_ns > UINT64_MAX - v)
            return MC_EINVAL;
        total_ns += v;
    }
    /* Round up: a timeout is never shorter than asked, and "250us" does not become 0. */
    *out = total_ns / 1000000ULL + (total_ns % 1000000ULL != 0);
    return 0;
}

static const struct unit size_units[] = {
    {"", 1ULL},
    {"b", 1ULL},
    {"k", 1ULL << 10},
    {"kib", 1ULL << 10},
    {"kb", 1000ULL},
    {"m", 1ULL << 20},
    {"mib", 1ULL << 20},
    {"mb", 1000000ULL},
    {"g", 1ULL << 30},
    {"gib", 1ULL << 30},
    {"gb", 1000000000ULL},
    {"t", 1ULL << 40},
    {"tib", 1ULL << 40},
    {"tb", 1000000000000ULL},
};

int mc_parse_size(const char *text, uint64_t *out)
{
    if (!text)
        return MC_EINVAL;
    const char *p = text;
    uint64_t v;
    if (parse_u64_digits(&p, &v) != 0)
        return MC_EINVAL;
    for (size_t i = 0; i < sizeof size_units / sizeof size_units[0]; i++) {
        if (strcasecmp(p, size_units[i].name) == 0) {
            if (v > UINT64_MAX / size_units[i].scale)
                return MC_EINVAL;
            *out = v * size_units[i].scale;
            return 0;
        }
    }
    return MC_EINVAL;
}

/* Go's strconv.ParseBool set. */
static int parse_bool(const char *text, int *out)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return MC_EINVAL;
}

static int parse_int(const char *text, int *out)
{
    /* strtoll alone would accept leading blanks and a '+'. */
    const char *digits = text[0] == '-' ? text + 1 : text;
    if (!isdigit((unsigned char)*digits))
        return MC_EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < INT_MIN || v > INT_MAX)
        return MC_EINVAL;
    *out = (int)v;
    return 0;
}

static int choice_index(const char *const *choices, const char *text)
{
    for (int i = 0; choices[i]; i++)
        if (strcmp(choices[i], text) == 0)
            return i;
    return -1;
}

static void free_metadata(struct mc_metadata_pair *pairs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        mc_free(pairs[i].key);
        mc_free(pairs[i].value);
    }
    mc_free(pairs);
}

/* Parses "k=v,k2=v2" into *pairs and *count (which the caller frees); "" is no pairs. A later
 * duplicate key replaces the earlier value, as it would in the registered metadata map. */
static int parse_metadata(const char *text, struct mc_metadata_pair **pairs, size_t *count)
{
    struct mc_metadata_pair *out = NULL;
    size_t n = 0;
    const char *p = text;
    while (*text) { /* left by the break after the last pair; "" never enters */
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            goto fail;
        char *key = mc_strndup(p, (size_t)(eq - p));
        char *value = mc_strndup(eq + 1, len - (size_t)(eq - p) - 1);
        size_t i;
        for (i = 0; i < n && strcmp(out[i].key, key) != 0; i++)
            ;
        if (i < n) {
            mc_free(key);
            mc_free(out[i].value);
            out[i].value = value;
        } else {
            out = mc_realloc(out, (n + 1) * sizeof *out);
            out[n].key = key;
            out[n].value = value;
            n++;
        }
        if (!end)
            break;
        p = end + 1;
    }
    *pairs = out;
    *count = n;
    return 0;
fail:
    free_metadata(out, n);
    return MC_EINVAL;
}

/* Adds pairs to cfg's list (replace = drop what was there first), merging duplicate keys;
 * takes ownership of pairs. */
static void merge_metadata(struct mc_metadata_pair **list, size_t *count,
                           struct mc_metadata_pair *pairs, size_t n, bool replace)
{
    if (replace) {
        free_metadata(*list, *count);
        *list = NULL;
        *count = 0;
    }
    for (size_t j = 0; j < n; j++) {
        size_t i;
        for (i = 0; i < *count && strcmp((*list)[i].key, pairs[j].key) != 0; i++)
            ;
        if (i < *count) {
            mc_free((*list)[i].value);
            (*list)[i].value = pairs[j].value;
            mc_free(pairs[j].key);
        } else {
            *list = mc_realloc(*list, (*count + 1) * sizeof **list);
            (*list)[*count] = pairs[j];
            (*count)++;
        }
    }
    mc_free(pairs);
}

static void join_choices(char *out, size_t outlen, const char *const *choices)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; choices[i] && used < outlen; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "", choices[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* An address flag's value: host:port through the one host:port parser; a listen address also
 * has to resolve without DNS (the listener binds it). A bare port, the commonest slip, gets a
 * hint. Writes why and returns false when the text does not fit. */
static bool address_ok(enum mc_conf_type type, const char *text, char *why, size_t whylen)
{
    char host[256];
    int port;
    struct sockaddr_storage ss;
    /* An empty app address means unset, as everywhere (the companion rule reports it). */
    bool ok = type == MC_CONF_LISTEN
                  ? mc_net_parse_address(text, &ss) == 0
                  : !*text || mc_net_split_host_port(text, host, sizeof host, &port) == 0;
    if (ok)
        return true;
    if (*text && strspn(text, "0123456789") == strlen(text) && strlen(text) <= 5)
        snprintf(why, whylen, "expected host:port (did you mean :%s?)", text);
    else if (type == MC_CONF_LISTEN)
        snprintf(
            why, whylen,
            "expected host:port with a numeric host, e.g. :8081, 127.0.0.1:8081 or [::1]:8081");
    else
        snprintf(why, whylen, "expected host:port, e.g. 127.0.0.1:9090");
    return false;
}

/* Walks a comma-separated list: check(entry, ctx) for each entry, copied NUL-terminated. An
 * empty entry (",," or a trailing comma) or one of 300 bytes or more fails as a typo, not "no
 * endpoint". Returns true, or false with the failing entry at *bad (*badlen bytes of text). */
static bool each_list_entry(const char *text, bool (*check)(const char *entry, void *ctx),
                            void *ctx, const char **bad, size_t *badlen)
{
    char entry[300];
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        bool ok = len > 0 && len < sizeof entry;
        if (ok) {
            memcpy(entry, p, len);
            entry[len] = '\0';
            ok = check(entry, ctx);
        }
        if (!ok) {
            *bad = p;
            *badlen = len;
            return false;
        }
        if (p[len] == '\0')
            return true;
        p += len + 1;
    }
}

struct why_buf {
    char *why;
    size_t whylen;
};

static bool address_entry_ok(const char *entry, void *ctx)
{
    struct why_buf *w = ctx;
    return address_ok(MC_CONF_ADDRESS, entry, w->why, w->whylen);
}

/* A comma-separated list of host:port entries, each checked as an address flag. */
static bool address_list_ok(const char *text, char *why, size_t whylen)
{
    struct why_buf w = {why, whylen};
    const char *bad;
    size_t badlen;
    why[0] = '\0';
    if (each_list_entry(text, address_entry_ok, &w, &bad, &badlen))
        return true;
    if (!why[0]) /* empty or overlong: address_ok did not see it */
        snprintf(why, whylen, "expected host:port[,host:port...], e.g. 127.0.0.1:2379");
    return false;
}

/* Stores text into the row's field. append: an earlier value of the same source is kept
 * (only --server_metadata accumulates; every other kind is last-one-wins). On a bad value
 * returns MC_EINVAL and writes why into why[whylen], leaving the field untouched. */
static int set_value(struct mc_config *cfg, const struct mc_flag *f, const char *text, bool append,
                     char *why, size_t whylen)
{
    void *field = (char *)cfg + f->offset;
    uint64_t u;
    int i;
    char list[128];

    switch (f->type) {
    case MC_CONF_ADDRESS_LIST:
        if (!address_list_ok(text, why, whylen))
            return MC_EINVAL;
        mc_free(*(char **)field);
        *(char **)field = mc_strdup(text);
        return 0;
    case MC_CONF_ADDRESS:
    case MC_CONF_LISTEN:
        if (!address_ok(f->type, text, why, whylen))
            return MC_EINVAL;
        /* fall through */
    case MC_CONF_STRING:
        mc_free(*(char **)field);
        *(char **)field = mc_strdup(text);
        return 0;
    case MC_CONF_BOOL:
        if (parse_bool(text, &i) != 0) {
            snprintf(why, whylen, "expected true or false");
            return MC_EINVAL;
        }
        *(int *)field = i;
        return 0;
    case MC_CONF_INT:
        if (parse_int(text, &i) != 0) {
            snprintf(why, whylen, "expected an integer");
            return MC_EINVAL;
        }
        if (i < f->min) {
            snprintf(why, whylen, "must be at least %lld", f->min);
            return MC_EINVAL;
        }
        *(int *)field = i;
        return 0;
    case MC_CONF_DURATION:
    case MC_CONF_SIZE:
        if (f->type == MC_CONF_DURATION ? mc_parse_duration_ms(text, &u) != 0
                                        : mc_parse_size(text, &u) != 0) {
            snprintf(why, whylen, "%s",
                     f->type == MC_CONF_DURATION
                         ? "expected a duration such as 500ms, 10s or 1m30s"
                         : "expected a size such as 4096, 64k, 512KiB, 4MiB or 1GB");
            return MC_EINVAL;
        }
        if (f->min > 0 && u < (uint64_t)f->min) {
            if (f->min == 1)
                snprintf(why, whylen, "must be greater than zero");
            else
                snprintf(why, whylen, "must be at least %lld%s", f->min,
                         f->type == MC_CONF_DURATION ? "ms" : " bytes");
            return MC_EINVAL;
        }
        *(uint64_t *)field = u;
        return 0;
    case MC_CONF_LOG_LEVEL:
    case MC_CONF_CHOICE:
        i = choice_index(f->choices, text);
        if (i < 0) {
            join_choices(list, sizeof list, f->choices);
            snprintf(why, whylen, "expected one of %s", list);
            return MC_EINVAL;
        }
        if (f->type == MC_CONF_LOG_LEVEL) {
            *(enum mc_log_level *)field = (enum mc_log_level)i;
        } else {
            mc_free(*(char **)field);
            *(char **)field = mc_strdup(f->choices[i]);
        }
        return 0;
    case MC_CONF_METADATA: {
        struct mc_metadata_pair *pairs;
        size_t n;
        if (parse_metadata(text, &pairs, &n) != 0) {
            snprintf(why, whylen, "expected key=value pairs separated by commas");
            return MC_EINVAL;
        }
        merge_metadata(field, (size_t *)((char *)cfg + f->count_offset), pairs, n, !append);
        return 0;
    }
    }
    snprintf(why, whylen, "unsupported flag type");
    return MC_EINVAL;
}

/* ---- lifecycle ---- */

void mc_config_init(struct mc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        char why[160];
        if (flags[i].default_text &&
            set_value(cfg, &flags[i], flags[i].default_text, false, why, sizeof why) != 0) {
            /* A bad default is a bug in the table, caught by the first test run. */
            fprintf(stderr, "micro: bad default %s for --%s: %s\n", flags[i].default_text,
                    flags[i].name, why);
            abort();
        }
    }
}

void mc_config_close(struct mc_config *cfg)
{
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        void *field = (char *)cfg + flags[i].offset;
        enum mc_conf_type t = flags[i].type;
        if (t == MC_CONF_STRING || t == MC_CONF_CHOICE || t == MC_CONF_ADDRESS ||
            t == MC_CONF_LISTEN || t == MC_CONF_ADDRESS_LIST) {
            mc_free(*(char **)field);
            *(char **)field = NULL;
        } else if (flags[i].type == MC_CONF_METADATA) {
            size_t *count = (size_t *)((char *)cfg + flags[i].count_offset);
            free_metadata(*(struct mc_metadata_pair **)field, *count);
            *(struct mc_metadata_pair **)field = NULL;
            *count = 0;
        }
    }
    mc_free(cfg->command);
    for (size_t i = 0; i < cfg->arg_count; i++)
        mc_free(cfg->args[i]);
    mc_free(cfg->args);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- parsing ---- */

static void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    int n = snprintf(err, errlen, "micro: ");
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Copies text for an error message: at most 64 bytes, control characters shown as '?', so
 * the message stays one readable line whatever the user typed. */
static void printable(char *out, size_t outlen, const char *text)
{
    size_t n = 0, max = outlen - 4;
    for (; *text && n < max; text++)
        out[n++] = iscntrl((unsigned char)*text) ? '?' : *text;
    if (*text) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static const struct mc_flag *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const char *alias = flags[i].alias;
        if ((strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0) ||
            (alias && strlen(alias) == len && strncmp(alias, name, len) == 0))
            return &flags[i];
    }
    return NULL;
}

static const char *env_lookup(char *const envp[], const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; envp[i]; i++)
        if (strncmp(envp[i], name, len) == 0 && envp[i][len] == '=')
            return envp[i] + len + 1;
    return NULL;
}

static void add_positional(struct mc_config *cfg, const char *arg)
{
    if (!cfg->command) {
        cfg->command = mc_strdup(arg);
        return;
    }
    cfg->args = mc_realloc(cfg->args, (cfg->arg_count + 1) * sizeof *cfg->args);
    cfg->args[cfg->arg_count++] = mc_strdup(arg);
}

static bool present(const char *s)
{
    return s && *s;
}

/* A nats://host:port entry with a host and a port (the one host:port parser). */
static bool nats_entry_ok(const char *entry, void *ctx)
{
    (void)ctx;
    static const char scheme[] = "nats://";
    char host[256];
    int port = 0;
    return strncmp(entry, scheme, sizeof scheme - 1) == 0 &&
           mc_net_split_host_port(entry + sizeof scheme - 1, host, sizeof host, &port) == 0 &&
           host[0] && port > 0;
}

/* --broker_address: every comma-separated entry is nats://host:port, so a typo is exit 2 now
 * rather than a sidecar retrying a server that cannot exist. Returns true, or false with the
 * bad entry (printable) in why. */
static bool nats_addresses_ok(const char *list, char *why, size_t whylen)
{
    const char *p;
    size_t len;
    if (each_list_entry(list, nats_entry_ok, NULL, &p, &len))
        return true;
    char *bad = mc_strndup(p, len);
    char shown[68];
    printable(shown, sizeof shown, bad);
    mc_free(bad);
    snprintf(why, whylen,
             "invalid value \"%s\" for flag --broker_address: expected "
             "nats://host:port[,nats://host:port...], e.g. nats://127.0.0.1:4222",
             shown);
    return false;
}

int mc_config_parse(struct mc_config *cfg, int argc, char *const argv[], char *const envp[],
                    char *err, size_t errlen)
{
    bool seen[FLAG_COUNT] = {false};
    bool flags_done = false;
    char why[160], shown[68];

    if (err && errlen)
        err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!flags_done && strcmp(arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        /* "-" alone is an argument (conventionally stdin), as in Go's flag package. */
        if (flags_done || arg[0] != '-' || arg[1] == '\0') {
            add_positional(cfg, arg);
            continue;
        }
        const char *name = arg[1] == '-' ? arg + 2 : arg + 1;
        if (*name == '-' || *name == '=') {
            printable(shown, sizeof shown, arg);
            set_error(err, errlen, "bad flag syntax: %s", shown);
            return MC_EINVAL;
        }
        const char *eq = strchr(name, '=');
        int len = eq ? (int)(eq - name) : (int)strlen(name);
        const struct mc_flag *f = find_flag(name, (size_t)len);
        if (!f) {
            char *typed = mc_strndup(name, (size_t)len);
            printable(shown, sizeof shown, typed);
            mc_free(typed);
            set_error(err, errlen, "flag provided but not defined: --%s", shown);
            return MC_EINVAL;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (f->type == MC_CONF_BOOL) {
            value = "true"; /* never the next argument: "--help sidecar" keeps its command */
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            set_error(err, errlen, "flag needs an argument: --%.*s", len, name);
            return MC_EINVAL;
        }
        size_t idx = (size_t)(f - flags);
        if (set_value(cfg, f, value, seen[idx], why, sizeof why) != 0) {
            printable(shown, sizeof shown, value);
            set_error(err, errlen, "invalid value \"%s\" for flag --%.*s: %s", shown, len, name,
                      why);
            return MC_EINVAL;
        }
        seen[idx] = true;
    }

    /* The environment only fills what the command line left alone. An empty variable counts
     * as unset, as compose files and shells often export NAME= for "nothing". */
    for (size_t i = 0; envp && i < FLAG_COUNT; i++) {
        if (seen[i] || !flags[i].env)
            continue;
        const char *value = env_lookup(envp, flags[i].env);
        if (!present(value))
            continue;
        if (set_value(cfg, &flags[i], value, false, why, sizeof why) != 0) {
            printable(shown, sizeof shown, value);
            set_error(err, errlen, "invalid value \"%s\" for %s (flag --%s): %s", shown,
                      flags[i].env, flags[i].name, why);
            return MC_EINVAL;
        }
    }

    /* The daemon's cross-flag rules; skipped for --help so help is reachable from any half-typed
     * command, and for the CLI commands, which often run where a sidecar's MICRO_* variables
     * are set (a pod, a unit's environment) and use none of those flags. */
    if (!cfg->help && !cfg->version && (!cfg->command || strcmp(cfg->command, "sidecar") == 0)) {
        if (present(cfg->server_name) && !present(cfg->server_address)) {
            set_error(err, errlen, "--server_name requires --server_address");
            return MC_EINVAL;
        }
        if (present(cfg->server_address) && !present(cfg->server_name)) {
            set_error(err, errlen, "--server_address requires --server_name");
            return MC_EINVAL;
        }
        if (cfg->enable_tls && (!present(cfg->tls_cert_file) || !present(cfg->tls_key_file))) {
            set_error(err, errlen, "--enable_tls requires --tls_cert_file and --tls_key_file");
            return MC_EINVAL;
        }
        if (strcmp(cfg->broker, "nats") == 0 && !present(cfg->broker_address)) {
            set_error(err, errlen,
                      "--broker=nats requires --broker_address (nats://host:port[,...])");
            return MC_EINVAL;
        }
        char bad[320];
        if (present(cfg->broker_address) &&
            !nats_addresses_ok(cfg->broker_address, bad, sizeof bad)) {
            set_error(err, errlen, "%s", bad);
            return MC_EINVAL;
        }
        if (strcmp(cfg->registry, "etcd") == 0 && !present(cfg->registry_address)) {
            set_error(err, errlen, "--registry=etcd requires --registry_address");
            return MC_EINVAL;
        }
        /* A TTL no longer than the renewal period lets every node expire between two renewals:
         * it disappears and reappears for ever. */
        if (cfg->register_ttl_ms <= cfg->register_interval_ms) {
            char ttl[32], interval[32];
            mc_duration_text(ttl, sizeof ttl, cfg->register_ttl_ms);
            mc_duration_text(interval, sizeof interval, cfg->register_interval_ms);
            set_error(err, errlen,
                      "--register_ttl (%s) must be longer than --register_interval (%s), or nodes "
                      "expire between renewals",
                      ttl, interval);
            return MC_EINVAL;
        }
    }
    return 0;
}

/* ---- help ---- */

static void flag_names(char *out, size_t outlen, const struct mc_flag *f)
{
    if (f->alias)
        snprintf(out, outlen, "--%s (%s%s)", f->name, strlen(f->alias) == 1 ? "-" : "--", f->alias);
    else
        snprintf(out, outlen, "--%s", f->name);
}

static void flag_default(char *out, size_t outlen, const struct mc_flag *f)
{
    if (f->default_text)
        snprintf(out, outlen, "default \"%s\"", f->default_text);
    else
        snprintf(out, outlen, "no default");
}

void mc_config_print_help(FILE *out, const char *command)
{
    char names[96], def[64], list[128];
    int wname = 0, wtype = 0, wdef = 0, wenv = 0;
    const struct mc_command *cmd = command && *command ? mc_command_find(command) : NULL;

    /* Columns sized over the flags shown, so one command's help is not widened by another's. */
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        if (!flag_shown(&flags[i], cmd))
            continue;
        flag_names(names, sizeof names, &flags[i]);
        flag_default(def, sizeof def, &flags[i]);
        int n = (int)strlen(names), t = (int)strlen(mc_conf_type_name(flags[i].type));
        int d = (int)strlen(def), e = flags[i].env ? (int)strlen(flags[i].env) + 1 : 0;
        wname = n > wname ? n : wname;
        wtype = t > wtype ? t : wtype;
        wdef = d > wdef ? d : wdef;
        wenv = e > wenv ? e : wenv;
    }

    if (cmd) {
        mc_command_print_usage(out, cmd);
        fprintf(out, "\n%s.\n", cmd->help);
    } else if (command && *command) {
        fprintf(out, "Usage: micro [global flags] %s [flags] [args]\n", command);
    } else {
        fprintf(out, "Usage: micro [global flags] COMMAND [command flags] [args]\n\nCommands:\n");
        int wusage = 0;
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
            int n = (int)strlen(commands[i].usage);
            wusage = n > wusage ? n : wusage;
        }
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            fprintf(out, "  %-*s  %s\n", wusage, commands[i].usage, commands[i].help);
    }
    fprintf(out, "\nEvery flag is accepted before or after the command, as --flag=value or "
                 "--flag value,\nand from its environment variable; the command line wins.\n"
                 "Durations: 500ms, 10s, 1m30s or bare seconds. Sizes: 4096, 64k, 512KiB, "
                 "4MiB, 1GB.\n\nFlags:\n");
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const struct mc_flag *f = &flags[i];
        char env[64];
        if (!flag_shown(f, cmd))
            continue;
        flag_names(names, sizeof names, f);
        flag_default(def, sizeof def, f);
        snprintf(env, sizeof env, "%s%s", f->env ? "$" : "", f->env ? f->env : "");
        fprintf(out, "  %-*s  %-*s  %-*s  %-*s  %s", wname, names, wtype,
                mc_conf_type_name(f->type), wdef, def, wenv, env, f->help);
        if (f->choices) {
            join_choices(list, sizeof list, f->choices);
            fprintf(out, " (one of: %s)", list);
        }
        fputc('\n', out);
    }
}

/* Writes s with roff's special characters escaped (backslash, and a leading dot or quote). */
static void roff_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

void mc_config_print_man(FILE *out, const char *version)
{
    char list[128], def[64];
    fprintf(out, ".TH MICRO 1 \"\" \"micro %s\" \"User Commands\"\n", version);
    fputs(".SH NAME\nmicro \\- a service sidecar: registry, discovery, health checks, "
          "load-balanced calls and pub/sub over HTTP and WebSockets\n"
          ".SH SYNOPSIS\n.B micro\n[\\fIglobal flags\\fR] \\fICOMMAND\\fR [\\fIcommand "
          "flags\\fR] [\\fIargs\\fR]\n.SH DESCRIPTION\nEvery flag is accepted before or after "
          "the command, as \\fB\\-\\-flag=value\\fR or \\fB\\-\\-flag value\\fR, and from its "
          "environment variable; the command line wins. Durations: 500ms, 10s, 1m30s or bare "
          "seconds. Sizes: 4096, 64k, 512KiB, 4MiB, 1GB. A bad flag or value exits 2, a "
          "start-up failure 1.\n.SH COMMANDS\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(out, ".TP\n.B %s\n", commands[i].name);
        if (strcmp(commands[i].usage, commands[i].name) != 0) {
            fputs("\\fBmicro ", out);
            roff_text(out, commands[i].usage);
            fputs("\\fR: ", out);
        }
        roff_text(out, commands[i].help);
        fputc('\n', out);
    }
    fputs(".SH OPTIONS\n", out);
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const struct mc_flag *f = &flags[i];
        fprintf(out, ".TP\n.BR \\-\\-%s", f->name);
        if (f->alias)
            fprintf(out, " \", \" %s%s", strlen(f->alias) == 1 ? "\\-" : "\\-\\-", f->alias);
        fprintf(out, " \" \" \\fI%s\\fR\n", mc_conf_type_name(f->type));
        roff_text(out, f->help);
        if (f->choices) {
            join_choices(list, sizeof list, f->choices);
            fputs(" (one of: ", out);
            roff_text(out, list);
            fputc(')', out);
        }
        fputs(".\n", out);
        flag_default(def, sizeof def, f);
        fputs(".br\n", out);
        roff_text(out, def);
        if (f->env)
            fprintf(out, "; environment \\fB%s\\fR", f->env);
        fputc('\n', out);
    }
    fputs(".SH SEE ALSO\nThe README of the micro repository: routes, the service protocol, "
          "errors and limits.\n",
          out);
}
