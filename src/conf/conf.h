/* The command line: one table of flags (name, alias, env var, type, default, help, target
 * field) from which parsing, environment lookup, defaults and --help are all derived
 * (SPEC section 1). */
#ifndef MC_CONF_CONF_H
#define MC_CONF_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/log.h"

/* One key=value pair of --server_metadata; both strings owned by the config. */
struct mc_metadata_pair {
    char *key;
    char *value;
};

/* Everything the command line and environment decide. Strings are owned by the config and
 * NULL when unset and without a default; durations are milliseconds, sizes bytes. */
struct mc_config {
    char *sidecar_address;
    char *server_name;
    char *server_address;
    char *server_advertise;
    char *server_version;
    struct mc_metadata_pair *server_metadata;
    size_t server_metadata_count;
    char *healthcheck_url;
    uint64_t healthcheck_interval_ms;
    uint64_t healthcheck_timeout_ms;
    int healthcheck_rise;
    int healthcheck_fall;
    uint64_t register_ttl_ms;
    uint64_t register_interval_ms;
    char *registry;         /* "memory" or "etcd" */
    char *registry_address; /* --registry=etcd: "host:port[,host:port...]" */
    char *broker;           /* "memory" or "nats" */
    char *broker_address;   /* --broker=nats: comma list of nats://host:port */
    char *selector;         /* "random", "roundrobin" or "p2c" */
    char *handler;          /* "rpc", "proxy" or "auto" */
    char *namespace;
    uint64_t request_timeout_ms;
    uint64_t dial_timeout_ms;
    uint64_t proxy_idle_timeout_ms;
    int retries;
    char *cors;
    int max_connections;
    uint64_t max_body_size;
    uint64_t body_timeout_ms; /* a request body's grace and longest silence */
    uint64_t body_min_rate;   /* bytes/s a request body must average after its grace; 0: off */
    uint64_t broker_max_message;
    int enable_tls;           /* serve the API over TLS */
    char *tls_cert_file;      /* --enable_tls: PEM certificate (chain) */
    char *tls_key_file;       /* --enable_tls: PEM key of tls_cert_file */
    char *tls_client_ca_file; /* --enable_tls: CAs client certificates must chain to (mTLS) */
    uint64_t drain_timeout_ms;
    char *access_log; /* NULL = off, "-" = stderr, else a path */
    enum mc_log_level log_level;
    int enable_stats;    /* serve /stats (the JSON counters and the dashboard) */
    char *proxy_address; /* CLI: the sidecar to talk to, [http://]host:port */
    char *output;        /* CLI: "text" or "json" */
    char *tls_ca_file;   /* CLI, https://: CAs that verify the sidecar; NULL: the system's */
    char *queue;         /* subscribe: the queue group, NULL for none */
    int count;           /* subscribe: stop after this many messages, 0 for never */
    int help;
    int version;
    char *command;    /* the first non-flag argument, NULL when there is none */
    char **args;      /* later non-flag arguments, in order */
    size_t arg_count; /* number of entries in args */
};

/* The kinds of value a flag takes. */
enum mc_conf_type {
    MC_CONF_STRING,    /* char * */
    MC_CONF_BOOL,      /* int, 0 or 1 */
    MC_CONF_INT,       /* int */
    MC_CONF_DURATION,  /* uint64_t milliseconds */
    MC_CONF_SIZE,      /* uint64_t bytes */
    MC_CONF_LOG_LEVEL, /* enum mc_log_level */
    MC_CONF_CHOICE,    /* char *, one of the row's choices */
    MC_CONF_METADATA,  /* struct mc_metadata_pair * plus a size_t count */
    MC_CONF_ADDRESS,   /* char *, "host:port" (any host, may be empty) */
    MC_CONF_LISTEN, /* char *, "host:port" the sidecar can bind: numeric host, empty or localhost */
    MC_CONF_ADDRESS_LIST, /* char *, "host:port[,host:port...]" (each as MC_CONF_ADDRESS) */
};

/* One row of the flag table. */
struct mc_flag {
    const char *name;           /* without dashes, e.g. "sidecar_address" */
    const char *alias;          /* another accepted name, or NULL */
    const char *env;            /* environment variable, or NULL when there is none */
    enum mc_conf_type type;     /* what the value is and how it is stored */
    const char *default_text;   /* the default as it would be typed, or NULL for none */
    const char *help;           /* one line, no trailing period */
    size_t offset;              /* of the target field in struct mc_config */
    size_t count_offset;        /* MC_CONF_METADATA only: offset of the size_t pair count */
    long long min;              /* INT, DURATION (ms), SIZE: smallest accepted value */
    const char *const *choices; /* MC_CONF_CHOICE: accepted values, NULL-terminated */
    unsigned scope;             /* MC_SCOPE_* bits: the commands whose help lists the flag;
                                   0 means MC_SCOPE_SIDECAR. Every flag is still accepted
                                   anywhere (the help only filters). */
};

/* Which commands a flag belongs to, for `micro COMMAND --help` (the global --help lists all). */
#define MC_SCOPE_SIDECAR 1u   /* the daemon */
#define MC_SCOPE_CLIENT 2u    /* every command that talks to a sidecar */
#define MC_SCOPE_SUBSCRIBE 4u /* subscribe only */
#define MC_SCOPE_ALL (~0u)

/* Fills cfg with every default of the flag table; cfg's previous contents are ignored (not
 * freed). Release with mc_config_close(). */
void mc_config_init(struct mc_config *cfg);

/* Applies argv[1..argc-1], then the MICRO_* variables of envp for flags the command line did
 * not set, on top of what cfg holds (normally mc_config_init()'s defaults). argv[0] is the
 * program name; envp is a NULL-terminated "NAME=value" array, or NULL for no environment.
 * Returns 0, or MC_EINVAL after writing one line (no newline) into err (errlen bytes, may be
 * NULL/0). On failure cfg may be partly updated but stays valid for mc_config_close(). With
 * --help set, the --server_name/--server_address companion check is skipped so that help can
 * always be printed. Strings put into cfg are copies owned by cfg. */
int mc_config_parse(struct mc_config *cfg, int argc, char *const argv[], char *const envp[],
                    char *err, size_t errlen);

/* Frees every string and array cfg owns and zeroes it; accepts a zeroed cfg. */
void mc_config_close(struct mc_config *cfg);

/* Writes the usage line, the commands (for the global usage) and one line per flag (names,
 * type, default, env var, help) to out. command is the command the help is for (e.g.
 * "sidecar": its usage line from the command table, and only the flags of its scope), or NULL
 * for the global usage (every flag). */
void mc_config_print_help(FILE *out, const char *command);

/* Writes the manual page micro(1) in roff, from the same command and flag tables as --help;
 * version goes into its header. */
void mc_config_print_man(FILE *out, const char *version);

/* One command of the `micro` binary: its name, how many arguments it takes (at least, at
 * most), one line of help, its usage (the command and its arguments, e.g. "list services"),
 * and the MC_SCOPE_* bits of the flags its help lists (0: every flag). */
struct mc_command {
    const char *name;
    size_t max_args;
    const char *help;
    size_t min_args;
    const char *usage;
    unsigned scope;
};

/* The command table (what --help lists and main dispatches on); *count receives the number of
 * rows. NULL when name is not a command (for mc_command_find). */
const struct mc_command *mc_commands(size_t *count);
const struct mc_command *mc_command_find(const char *name);

/* Writes "Usage: micro [global flags] USAGE [flags]" for cmd, one line, to out. */
void mc_command_print_usage(FILE *out, const struct mc_command *cmd);

/* Parses a Go duration ("500ms", "10s", "1m30s", "1.5h"; units h, m, s, ms, us, ns) or a bare
 * integer meaning seconds into milliseconds, rounding a fraction of a millisecond up so a
 * non-zero duration never becomes 0. Returns 0, or MC_EINVAL for negative, empty, overflowing
 * or malformed text (out untouched). */
int mc_parse_duration_ms(const char *text, uint64_t *out);

/* Parses a byte size: an integer, optionally followed by B, K/KiB, M/MiB, G/GiB, T/TiB
 * (powers of 1024) or KB, MB, GB, TB (powers of 1000), case-insensitive ("4MiB", "64k",
 * "10MB", "4096"). Returns 0, or MC_EINVAL for malformed or overflowing text (out untouched). */
int mc_parse_size(const char *text, uint64_t *out);

/* The flag table, for tools that document it (the README's flag table); *count receives the
 * number of rows. The table is static and must not be modified. */
const struct mc_flag *mc_conf_flags(size_t *count);

/* A static lowercase name for type ("string", "duration", ...); never NULL. */
const char *mc_conf_type_name(enum mc_conf_type type);

#endif
