/* The command-line contract (SPEC section 1): flag positions and forms, environment, defaults,
 * value syntaxes, every error message, and the help page generated from the flag table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "net/conn.h"
#include "util/error.h"

#define NO_ENV ((const char *const[]){NULL})

/* Runs mc_config_parse on a NULL-terminated argument list (without "micro", which is added
 * as argv[0]) and environment; cfg is initialised first. */
static int parse_env(struct mc_config *cfg, char *err, size_t errlen, const char *const *args,
                     const char *const *env)
{
    const char *argv[64];
    int argc = 0;
    argv[argc++] = "micro";
    for (size_t i = 0; args[i]; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    mc_config_init(cfg);
    return mc_config_parse(cfg, argc, (char *const *)argv, (char *const *)env, err, errlen);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})

static int parse(struct mc_config *cfg, char *err, const char *const *args)
{
    return parse_env(cfg, err, 256, args, NO_ENV);
}

/* Parses args and asserts it fails with exactly `expected` as the message. */
static void expect_error_env(const char *const *args, const char *const *env, const char *expected)
{
    struct mc_config cfg;
    char err[256];
    memset(err, 'x', sizeof err);
    assert_int_equal(parse_env(&cfg, err, sizeof err, args, env), MC_EINVAL);
    assert_string_equal(err, expected);
    assert_null(strchr(err, '\n'));
    mc_config_close(&cfg);
}

static void expect_error(const char *const *args, const char *expected)
{
    expect_error_env(args, NO_ENV, expected);
}

static void test_defaults(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256] = "";
    assert_int_equal(parse(&cfg, err, ARGS("sidecar")), 0);
    assert_string_equal(err, "");
    assert_string_equal(cfg.sidecar_address, ":8081");
    assert_null(cfg.server_name);
    assert_null(cfg.server_address);
    assert_null(cfg.server_advertise);
    assert_null(cfg.server_version);
    assert_null(cfg.server_metadata);
    assert_int_equal(cfg.server_metadata_count, 0);
    assert_null(cfg.healthcheck_url);
    assert_int_equal(cfg.healthcheck_interval_ms, 5000);
    assert_int_equal(cfg.healthcheck_timeout_ms, 1000);
    assert_int_equal(cfg.healthcheck_rise, 2);
    assert_int_equal(cfg.healthcheck_fall, 3);
    assert_int_equal(cfg.register_ttl_ms, 30000);
    assert_int_equal(cfg.register_interval_ms, 10000);
    assert_string_equal(cfg.registry, "memory");
    assert_string_equal(cfg.broker, "memory");
    assert_string_equal(cfg.selector, "p2c");
    assert_string_equal(cfg.handler, "rpc");
    assert_string_equal(cfg.namespace, "go.micro.srv");
    assert_int_equal(cfg.request_timeout_ms, 5000);
    assert_int_equal(cfg.dial_timeout_ms, 2000);
    assert_int_equal(cfg.retries, 2);
    assert_string_equal(cfg.cors, "*");
    assert_int_equal(cfg.max_connections, 10000);
    assert_int_equal(cfg.max_body_size, 4 * 1024 * 1024);
    assert_int_equal(cfg.broker_max_message, 1024 * 1024);
    assert_int_equal(cfg.drain_timeout_ms, 5000);
    assert_null(cfg.access_log);
    assert_int_equal(cfg.log_level, MC_LOG_INFO);
    assert_int_equal(cfg.help, 0);
    assert_string_equal(cfg.command, "sidecar");
    assert_int_equal(cfg.arg_count, 0);
    mc_config_close(&cfg);
}

static void test_init_alone_and_close(void **state)
{
    (void)state;
    struct mc_config cfg;
    mc_config_init(&cfg);
    assert_string_equal(cfg.sidecar_address, ":8081");
    assert_null(cfg.command);
    mc_config_close(&cfg);
    /* close zeroes, so a second close and a re-init are safe */
    assert_null(cfg.sidecar_address);
    assert_null(cfg.selector);
    mc_config_close(&cfg);
    mc_config_init(&cfg);
    mc_config_close(&cfg);
}

static void test_no_arguments(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, (const char *const[]){NULL}), 0);
    assert_null(cfg.command);
    assert_int_equal(cfg.arg_count, 0);
    mc_config_close(&cfg);
}

static void test_flag_before_and_after_command(void **state)
{
    (void)state;
    struct mc_config a, b, c;
    char err[256];
    assert_int_equal(parse(&a, err, ARGS("--register_ttl", "50s", "sidecar")), 0);
    assert_int_equal(parse(&b, err, ARGS("sidecar", "--register_ttl=50s")), 0);
    assert_int_equal(parse(&c, err, ARGS("sidecar", "--register_ttl", "50s")), 0);
    assert_int_equal(a.register_ttl_ms, 50000);
    assert_int_equal(b.register_ttl_ms, 50000);
    assert_int_equal(c.register_ttl_ms, 50000);
    assert_string_equal(a.command, "sidecar");
    assert_string_equal(b.command, "sidecar");
    assert_string_equal(c.command, "sidecar");
    assert_int_equal(a.arg_count, 0);
    assert_int_equal(b.arg_count, 0);
    assert_int_equal(c.arg_count, 0);
    mc_config_close(&a);
    mc_config_close(&b);
    mc_config_close(&c);
}

static void test_space_and_equals_forms(void **state)
{
    (void)state;
    struct mc_config a, b;
    char err[256];
    assert_int_equal(
        parse(&a, err,
              ARGS("--sidecar_address", ":9000", "--healthcheck_rise", "4", "--max_body_size",
                   "64k", "--selector", "random", "--log_level", "debug", "--server_metadata",
                   "a=1", "--server_name", "foo", "--server_address", "127.0.0.1:9090")),
        0);
    assert_int_equal(
        parse(&b, err,
              ARGS("--sidecar_address=:9000", "--healthcheck_rise=4", "--max_body_size=64k",
                   "--selector=random", "--log_level=debug", "--server_metadata=a=1",
                   "--server_name=foo", "--server_address=127.0.0.1:9090")),
        0);
    struct mc_config *both[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        struct mc_config *c = both[i];
        assert_string_equal(c->sidecar_address, ":9000");
        assert_int_equal(c->healthcheck_rise, 4);
        assert_int_equal(c->max_body_size, 65536);
        assert_string_equal(c->selector, "random");
        assert_int_equal(c->log_level, MC_LOG_DEBUG);
        assert_int_equal(c->server_metadata_count, 1);
        assert_string_equal(c->server_metadata[0].key, "a");
        assert_string_equal(c->server_metadata[0].value, "1");
        assert_string_equal(c->server_name, "foo");
        assert_string_equal(c->server_address, "127.0.0.1:9090");
        assert_null(c->command);
        mc_config_close(c);
    }
}

static void test_single_dash(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(
        parse(&cfg, err, ARGS("-register_ttl", "7s", "sidecar", "-selector=roundrobin", "-help")),
        0);
    assert_int_equal(cfg.register_ttl_ms, 7000);
    assert_string_equal(cfg.selector, "roundrobin");
    assert_int_equal(cfg.help, 1);
    assert_string_equal(cfg.command, "sidecar");
    mc_config_close(&cfg);
}

static void test_value_may_start_with_dash(void **state)
{
    (void)state;
    /* As Go's flag package: "--flag value" takes the next argument whatever it looks like. */
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, ARGS("--access_log", "-", "sidecar")), 0);
    assert_string_equal(cfg.access_log, "-");
    assert_string_equal(cfg.command, "sidecar");
    mc_config_close(&cfg);
}

static void test_bool_does_not_eat_next_argument(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, ARGS("--help", "sidecar", "extra")), 0);
    assert_int_equal(cfg.help, 1);
    assert_string_equal(cfg.command, "sidecar");
    assert_int_equal(cfg.arg_count, 1);
    assert_string_equal(cfg.args[0], "extra");
    mc_config_close(&cfg);

    /* "false" after a bare bool is an argument, not the bool's value */
    assert_int_equal(parse(&cfg, err, ARGS("sidecar", "--help", "false")), 0);
    assert_int_equal(cfg.help, 1);
    assert_int_equal(cfg.arg_count, 1);
    assert_string_equal(cfg.args[0], "false");
    mc_config_close(&cfg);
}

static void test_bool_values(void **state)
{
    (void)state;
    static const struct {
        const char *arg;
        int want;
    } cases[] = {
        {"--help=true", 1},  {"--help=1", 1},     {"--help=t", 1}, {"--help=TRUE", 1},
        {"--help=True", 1},  {"--help=false", 0}, {"--help=0", 0}, {"--help=f", 0},
        {"--help=FALSE", 0}, {"--help=False", 0}, {"--help", 1},   {"-help=false", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mc_config cfg;
        char err[256];
        assert_int_equal(parse(&cfg, err, ARGS(cases[i].arg)), 0);
        assert_int_equal(cfg.help, cases[i].want);
        mc_config_close(&cfg);
    }
    /* the last occurrence wins */
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, ARGS("--help", "--help=false")), 0);
    assert_int_equal(cfg.help, 0);
    mc_config_close(&cfg);

    expect_error(ARGS("--help=yes"),
                 "micro: invalid value \"yes\" for flag --help: expected true or false");
    expect_error(ARGS("--help="), "micro: invalid value \"\" for flag --help: expected true or "
                                  "false");
}

static void test_help_flag_and_alias(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, ARGS("-h")), 0);
    assert_int_equal(cfg.help, 1);
    assert_null(cfg.command);
    mc_config_close(&cfg);
    assert_int_equal(parse(&cfg, err, ARGS("sidecar", "--help")), 0);
    assert_int_equal(cfg.help, 1);
    assert_string_equal(cfg.command, "sidecar");
    mc_config_close(&cfg);
    /* help is reachable even from a command line that breaks the companion rule */
    assert_int_equal(parse(&cfg, err, ARGS("sidecar", "--server_name", "foo", "--help")), 0);
    assert_int_equal(cfg.help, 1);
    mc_config_close(&cfg);
}

static void test_env_used(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(
        parse_env(&cfg, err, sizeof err, ARGS("sidecar"),
                  ENV("PATH=/bin", "MICRO_SIDECAR_ADDRESS=:7000", "MICRO_SERVER_NAME=foo",
                      "MICRO_SERVER_ADDRESS=10.0.0.1:80", "MICRO_REGISTER_TTL=70",
                      "MICRO_MAX_BODY_SIZE=1MiB", "MICRO_SELECTOR=roundrobin",
                      "MICRO_LOG_LEVEL=warn", "MICRO_SERVER_METADATA=a=1,b=2", "MICRO_RETRIES=0",
                      "MICRO_CORS=http://a.example", "MICRO_ACCESS_LOG=-",
                      "MICRO_UNRELATED=whatever")),
        0);
    assert_string_equal(cfg.sidecar_address, ":7000");
    assert_string_equal(cfg.server_name, "foo");
    assert_string_equal(cfg.server_address, "10.0.0.1:80");
    assert_int_equal(cfg.register_ttl_ms, 70000);
    assert_int_equal(cfg.max_body_size, 1048576);
    assert_string_equal(cfg.selector, "roundrobin");
    assert_int_equal(cfg.log_level, MC_LOG_WARN);
    assert_int_equal(cfg.server_metadata_count, 2);
    assert_string_equal(cfg.server_metadata[1].key, "b");
    assert_string_equal(cfg.server_metadata[1].value, "2");
    assert_int_equal(cfg.retries, 0);
    assert_string_equal(cfg.cors, "http://a.example");
    assert_string_equal(cfg.access_log, "-");
    mc_config_close(&cfg);
}

static void test_env_name_must_match_exactly(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    /* a prefix, a longer name, the alias and a lowercase name are all other variables */
    assert_int_equal(
        parse_env(&cfg, err, sizeof err, ARGS("sidecar"),
                  ENV("MICRO_SIDECAR_ADDRESSX=:1", "MICRO_SIDECAR_ADDRES=:2", "MICRO_ADDRESS=:3",
                      "micro_sidecar_address=:4", "MICRO_SIDECAR_CORS=nope", "MICRO_HELP=1")),
        0);
    assert_string_equal(cfg.sidecar_address, ":8081");
    assert_string_equal(cfg.cors, "*");
    assert_int_equal(cfg.help, 0);
    mc_config_close(&cfg);
}

static void test_cli_beats_env(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    const char *const *env = ENV("MICRO_REGISTER_TTL=70s", "MICRO_SELECTOR=random",
                                 "MICRO_SERVER_METADATA=a=1", "MICRO_HEALTHCHECK_RISE=9");
    assert_int_equal(parse_env(&cfg, err, sizeof err,
                               ARGS("sidecar", "--register_ttl", "90s", "--address=:1",
                                    "--server_metadata", "b=2"),
                               env),
                     0);
    assert_int_equal(cfg.register_ttl_ms, 90000);
    assert_string_equal(cfg.selector, "random"); /* env still beats the default */
    assert_int_equal(cfg.healthcheck_rise, 9);
    assert_string_equal(cfg.sidecar_address, ":1");
    /* the command line's metadata replaces the environment's, it does not add to it */
    assert_int_equal(cfg.server_metadata_count, 1);
    assert_string_equal(cfg.server_metadata[0].key, "b");
    mc_config_close(&cfg);

    /* a bad env value is not reported when the command line overrides it */
    assert_int_equal(parse_env(&cfg, err, sizeof err, ARGS("--register_ttl=11s"),
                               ENV("MICRO_REGISTER_TTL=garbage")),
                     0);
    assert_int_equal(cfg.register_ttl_ms, 11000);
    mc_config_close(&cfg);
}

static void test_env_empty_and_null(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse_env(&cfg, err, sizeof err, ARGS("sidecar"),
                               ENV("MICRO_REGISTER_TTL=", "MICRO_SIDECAR_ADDRESS=")),
                     0);
    assert_int_equal(cfg.register_ttl_ms, 30000);
    assert_string_equal(cfg.sidecar_address, ":8081");
    mc_config_close(&cfg);

    assert_int_equal(parse_env(&cfg, err, sizeof err, ARGS("sidecar"), NULL), 0);
    assert_int_equal(cfg.register_ttl_ms, 30000);
    mc_config_close(&cfg);
}

static void test_env_errors(void **state)
{
    (void)state;
    expect_error_env(ARGS("sidecar"), ENV("MICRO_REGISTER_TTL=abc"),
                     "micro: invalid value \"abc\" for MICRO_REGISTER_TTL (flag --register_ttl): "
                     "expected a duration such as 500ms, 10s or 1m30s");
    expect_error_env(ARGS("sidecar"), ENV("MICRO_SELECTOR=fastest"),
                     "micro: invalid value \"fastest\" for MICRO_SELECTOR (flag --selector): "
                     "expected one of random, roundrobin, p2c");
    expect_error_env(ARGS("sidecar"), ENV("MICRO_SERVER_NAME=foo"),
                     "micro: --server_name requires --server_address");
    /* the companion may come from the other source */
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse_env(&cfg, err, sizeof err, ARGS("--server_name", "foo"),
                               ENV("MICRO_SERVER_ADDRESS=:9")),
                     0);
    mc_config_close(&cfg);
}

/* TLS (SPEC 8): --enable_tls needs both files, from flags or the environment; the files alone
 * are fine (the CLI's client certificate), and the CLI commands skip the daemon's rule. */
static void test_tls_rule(void **state)
{
    (void)state;
    const char *msg = "micro: --enable_tls requires --tls_cert_file and --tls_key_file";
    expect_error(ARGS("--enable_tls"), msg);
    expect_error(ARGS("sidecar", "--enable_tls", "--tls_cert_file=c.pem"), msg);
    expect_error(ARGS("sidecar", "--enable_tls", "--tls_key_file=k.pem"), msg);
    expect_error(ARGS("sidecar", "--enable_tls", "--tls_cert_file=", "--tls_key_file=k"), msg);
    expect_error_env(ARGS("sidecar"), ENV("MICRO_ENABLE_TLS=true", "MICRO_TLS_CERT_FILE=c"), msg);
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse_env(&cfg, err, sizeof err,
                               ARGS("--enable_tls", "--tls_cert_file=c", "sidecar"),
                               ENV("MICRO_TLS_KEY_FILE=k", "MICRO_TLS_CLIENT_CA_FILE=ca")),
                     0);
    assert_int_equal(cfg.enable_tls, 1);
    assert_string_equal(cfg.tls_cert_file, "c");
    assert_string_equal(cfg.tls_key_file, "k");
    assert_string_equal(cfg.tls_client_ca_file, "ca");
    mc_config_close(&cfg);
    assert_int_equal(parse(&cfg, err, ARGS("--tls_cert_file=c", "--tls_key_file=k", "sidecar")), 0);
    assert_int_equal(cfg.enable_tls, 0);
    mc_config_close(&cfg);
    assert_int_equal(parse(&cfg, err, ARGS("--tls_ca_file=ca", "list", "services")), 0);
    assert_string_equal(cfg.tls_ca_file, "ca");
    mc_config_close(&cfg);
}

static void test_aliases(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, ARGS("--address", ":9999", "sidecar")), 0);
    assert_string_equal(cfg.sidecar_address, ":9999");
    mc_config_close(&cfg);
    assert_int_equal(parse(&cfg, err, ARGS("sidecar", "-address=:1", "--sidecar_cors=a,b")), 0);
    assert_string_equal(cfg.sidecar_address, ":1");
    assert_string_equal(cfg.cors, "a,b");
    mc_config_close(&cfg);
    /* name and alias write one field: the last one wins */
    assert_int_equal(parse(&cfg, err, ARGS("--address=:1", "--sidecar_address=:2")), 0);
    assert_string_equal(cfg.sidecar_address, ":2");
    mc_config_close(&cfg);
    /* the alias is named as typed in errors */
    expect_error(ARGS("--address"), "micro: flag needs an argument: --address");
}

static void test_repeated_string_flag_last_wins(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err,
                           ARGS("--namespace", "a", "--namespace", "b", "sidecar", "--namespace=c",
                                "--handler=proxy", "--handler", "rpc")),
                     0);
    assert_string_equal(cfg.namespace, "c");
    assert_string_equal(cfg.handler, "rpc");
    mc_config_close(&cfg);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        {"500ms", 500},
        {"10s", 10000},
        {"1m30s", 90000},
        {"1h", 3600000},
        {"7", 7000},
        {"0", 0},
        {"0s", 0},
        {"1h2m3s4ms", 3723004},
        {"1.5s", 1500},
        {"1.5h", 5400000},
        {".5s", 500},
        {"2.m", 120000},
        {"250us", 1}, /* rounded up: never 0 */
        {"1500us", 2},
        {"2000us", 2},
        {"999999ns", 1},
        {"1000000ns", 1},
        {"3\xc2\xb5s", 1},
        {"3\xce\xbcs", 1},
        {"1s500ms", 1500},
        {"90m", 5400000},
        {"18446744073s", 18446744073000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t out = 12345;
        if (mc_parse_duration_ms(good[i].text, &out) != 0)
            fail_msg("duration \"%s\" rejected", good[i].text);
        if (out != good[i].ms)
            fail_msg("duration \"%s\": got %llu want %llu", good[i].text, (unsigned long long)out,
                     (unsigned long long)good[i].ms);
    }
    static const char *const bad[] = {
        "",
        "abc",
        "-5s",
        "-1",
        "+5s",
        "5x",
        "s",
        "ms",
        "10 s",
        " 10s",
        "10s ",
        "1.5",
        "5sms",
        "1m30",
        "1d",
        "1S",
        "10MS",
        ".s",
        ".",
        "1..5s",
        "0x10",
        "1e3s",
        "5s5",
        "99999999999999999999",
        "18446744074s",
        "600000000h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t out = 12345;
        if (mc_parse_duration_ms(bad[i], &out) != MC_EINVAL)
            fail_msg("duration \"%s\" accepted as %llu", bad[i], (unsigned long long)out);
        assert_int_equal(out, 12345);
    }
    uint64_t out;
    assert_int_equal(mc_parse_duration_ms(NULL, &out), MC_EINVAL);

    /* through the flag: bare integers are seconds */
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err,
                           ARGS("--healthcheck_interval", "7", "--drain_timeout=0",
                                "--dial_timeout=250ms", "--request_timeout=1m30s")),
                     0);
    assert_int_equal(cfg.healthcheck_interval_ms, 7000);
    assert_int_equal(cfg.drain_timeout_ms, 0);
    assert_int_equal(cfg.dial_timeout_ms, 250);
    assert_int_equal(cfg.request_timeout_ms, 90000);
    mc_config_close(&cfg);
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"4096", 4096},
        {"0", 0},
        {"4MiB", 4194304},
        {"1MiB", 1048576},
        {"512KiB", 524288},
        {"10MB", 10000000},
        {"1GB", 1000000000},
        {"64k", 65536},
        {"64K", 65536},
        {"2m", 2097152},
        {"1g", 1073741824},
        {"1GiB", 1073741824},
        {"1TiB", 1099511627776ULL},
        {"1TB", 1000000000000ULL},
        {"3kb", 3000},
        {"3KB", 3000},
        {"4mib", 4194304},
        {"100B", 100},
        {"100b", 100},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t out = 12345;
        if (mc_parse_size(good[i].text, &out) != 0)
            fail_msg("size \"%s\" rejected", good[i].text);
        if (out != good[i].bytes)
            fail_msg("size \"%s\": got %llu want %llu", good[i].text, (unsigned long long)out,
                     (unsigned long long)good[i].bytes);
    }
    static const char *const bad[] = {
        "",
        "abc",
        "-1",
        "+4",
        "4 MiB",
        " 4",
        "4MiBs",
        "MiB",
        "1.5MiB",
        "4Mi",
        "4xB",
        "0x10",
        "1e3",
        "4PB",
        "18446744073709551616",
        "17179869184GiB",
        "4096 ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t out = 12345;
        if (mc_parse_size(bad[i], &out) != MC_EINVAL)
            fail_msg("size \"%s\" accepted as %llu", bad[i], (unsigned long long)out);
        assert_int_equal(out, 12345);
    }
    uint64_t out;
    assert_int_equal(mc_parse_size(NULL, &out), MC_EINVAL);

    struct mc_config cfg;
    char err[256];
    assert_int_equal(
        parse(&cfg, err, ARGS("--max_body_size", "512KiB", "--broker_max_message=64k")), 0);
    assert_int_equal(cfg.max_body_size, 524288);
    assert_int_equal(cfg.broker_max_message, 65536);
    mc_config_close(&cfg);
}

static void test_metadata(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, ARGS("--server_metadata", "version=1.0.0,zone=eu-1,url=a=b")),
                     0);
    assert_int_equal(cfg.server_metadata_count, 3);
    assert_string_equal(cfg.server_metadata[0].key, "version");
    assert_string_equal(cfg.server_metadata[0].value, "1.0.0");
    assert_string_equal(cfg.server_metadata[1].key, "zone");
    assert_string_equal(cfg.server_metadata[1].value, "eu-1");
    /* only the first '=' splits */
    assert_string_equal(cfg.server_metadata[2].key, "url");
    assert_string_equal(cfg.server_metadata[2].value, "a=b");
    mc_config_close(&cfg);

    /* repeated flags accumulate (go-micro's was a string slice); a later key replaces */
    assert_int_equal(parse(&cfg, err,
                           ARGS("--server_metadata", "a=1", "sidecar", "--server_metadata=b=2,a=3",
                                "--server_metadata", "c=")),
                     0);
    assert_int_equal(cfg.server_metadata_count, 3);
    assert_string_equal(cfg.server_metadata[0].key, "a");
    assert_string_equal(cfg.server_metadata[0].value, "3");
    assert_string_equal(cfg.server_metadata[1].key, "b");
    assert_string_equal(cfg.server_metadata[1].value, "2");
    assert_string_equal(cfg.server_metadata[2].key, "c");
    assert_string_equal(cfg.server_metadata[2].value, "");
    mc_config_close(&cfg);

    /* an empty list is no pairs */
    assert_int_equal(parse(&cfg, err, ARGS("--server_metadata=")), 0);
    assert_int_equal(cfg.server_metadata_count, 0);
    mc_config_close(&cfg);

    static const char *const bad[] = {"novalue", "a=1,novalue", "=1", "a=1,,b=2", "a=1,", ","};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[256];
        snprintf(want, sizeof want,
                 "micro: invalid value \"%s\" for flag --server_metadata: expected key=value "
                 "pairs separated by commas",
                 bad[i]);
        expect_error(ARGS("--server_metadata", bad[i]), want);
    }
}

static void test_choices(void **state)
{
    (void)state;
    static const char *const selectors[] = {"random", "roundrobin", "p2c"};
    for (size_t i = 0; i < 3; i++) {
        struct mc_config cfg;
        char err[256];
        assert_int_equal(parse(&cfg, err, ARGS("--selector", selectors[i])), 0);
        assert_string_equal(cfg.selector, selectors[i]);
        mc_config_close(&cfg);
    }
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    static const enum mc_log_level want[] = {MC_LOG_ERROR, MC_LOG_WARN, MC_LOG_INFO, MC_LOG_DEBUG};
    for (size_t i = 0; i < 4; i++) {
        struct mc_config cfg;
        char err[256];
        assert_int_equal(parse(&cfg, err, ARGS("--log_level", levels[i])), 0);
        assert_int_equal(cfg.log_level, want[i]);
        mc_config_close(&cfg);
    }
    struct mc_config cfg;
    char err[256];
    assert_int_equal(
        parse(&cfg, err, ARGS("--handler=proxy", "--registry=memory", "--broker", "memory")), 0);
    assert_string_equal(cfg.handler, "proxy");
    assert_string_equal(cfg.registry, "memory");
    assert_string_equal(cfg.broker, "memory");
    mc_config_close(&cfg);

    expect_error(ARGS("--selector", "P2C"), "micro: invalid value \"P2C\" for flag --selector: "
                                            "expected one of random, roundrobin, p2c");
    expect_error(
        ARGS("--handler=api"),
        "micro: invalid value \"api\" for flag --handler: expected one of rpc, proxy, auto");
    expect_error(ARGS("--registry=consul"), "micro: invalid value \"consul\" for flag --registry: "
                                            "expected one of memory, etcd");
    /* etcd needs its endpoints, each a host:port */
    expect_error(ARGS("--registry=etcd"), "micro: --registry=etcd requires --registry_address");
    expect_error(ARGS("--registry=etcd", "--registry_address=127.0.0.1:2379,"),
                 "micro: invalid value \"127.0.0.1:2379,\" for flag --registry_address: expected "
                 "host:port[,host:port...], e.g. 127.0.0.1:2379");
    expect_error(ARGS("--registry=etcd", "--registry_address=127.0.0.1:2379,2379"),
                 "micro: invalid value \"127.0.0.1:2379,2379\" for flag --registry_address: "
                 "expected host:port (did you mean :2379?)");
    assert_int_equal(
        parse(&cfg, err, ARGS("--registry=etcd", "--registry_address=10.0.0.1:2379,[::1]:2379")),
        0);
    assert_string_equal(cfg.registry, "etcd");
    assert_string_equal(cfg.registry_address, "10.0.0.1:2379,[::1]:2379");
    mc_config_close(&cfg);
    expect_error(ARGS("--broker=kafka"),
                 "micro: invalid value \"kafka\" for flag --broker: expected one of memory, nats");
    expect_error(ARGS("--log_level=verbose"), "micro: invalid value \"verbose\" for flag "
                                              "--log_level: expected one of error, warn, info, "
                                              "debug");
}

static void test_bad_value_messages(void **state)
{
    (void)state;
    expect_error(ARGS("sidecar", "--register_ttl", "abc"),
                 "micro: invalid value \"abc\" for flag --register_ttl: expected a duration such "
                 "as 500ms, 10s or 1m30s");
    expect_error(ARGS("-register_ttl=-5s"),
                 "micro: invalid value \"-5s\" for flag --register_ttl: expected a duration such "
                 "as 500ms, 10s or 1m30s");
    expect_error(ARGS("--max_body_size=lots"),
                 "micro: invalid value \"lots\" for flag --max_body_size: expected a size such as "
                 "4096, 64k, 512KiB, 4MiB or 1GB");
    expect_error(ARGS("--retries=two"),
                 "micro: invalid value \"two\" for flag --retries: expected an integer");
    expect_error(ARGS("--retries=2.5"),
                 "micro: invalid value \"2.5\" for flag --retries: expected an integer");
    expect_error(ARGS("--retries= 2"),
                 "micro: invalid value \" 2\" for flag --retries: expected an integer");
    expect_error(ARGS("--max_connections=99999999999"),
                 "micro: invalid value \"99999999999\" for flag --max_connections: expected an "
                 "integer");
    expect_error(ARGS("--healthcheck_rise="),
                 "micro: invalid value \"\" for flag --healthcheck_rise: expected an integer");
}

static void test_minimums(void **state)
{
    (void)state;
    expect_error(ARGS("--healthcheck_rise", "0"),
                 "micro: invalid value \"0\" for flag --healthcheck_rise: must be at least 1");
    expect_error(ARGS("--healthcheck_fall=0"),
                 "micro: invalid value \"0\" for flag --healthcheck_fall: must be at least 1");
    expect_error(ARGS("--healthcheck_fall=-3"),
                 "micro: invalid value \"-3\" for flag --healthcheck_fall: must be at least 1");
    expect_error(ARGS("--max_connections=0"),
                 "micro: invalid value \"0\" for flag --max_connections: must be at least 1");
    expect_error(ARGS("--retries=-1"),
                 "micro: invalid value \"-1\" for flag --retries: must be at least 0");
    expect_error(ARGS("--register_ttl=0"),
                 "micro: invalid value \"0\" for flag --register_ttl: must be greater than zero");
    expect_error(ARGS("--register_ttl=0s"),
                 "micro: invalid value \"0s\" for flag --register_ttl: must be greater than zero");
    expect_error(ARGS("--register_interval=0ms"), "micro: invalid value \"0ms\" for flag "
                                                  "--register_interval: must be greater than zero");
    expect_error(ARGS("--max_body_size=0"),
                 "micro: invalid value \"0\" for flag --max_body_size: must be greater than zero");

    /* the edges themselves are accepted */
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err,
                           ARGS("--healthcheck_rise=1", "--healthcheck_fall=1",
                                "--max_connections=1", "--retries=0", "--register_interval=1ms",
                                "--register_ttl=2ms", "--drain_timeout=0")),
                     0);
    assert_int_equal(cfg.healthcheck_rise, 1);
    assert_int_equal(cfg.retries, 0);
    assert_int_equal(cfg.register_interval_ms, 1);
    mc_config_close(&cfg);
}

static void test_unknown_and_syntax_errors(void **state)
{
    (void)state;
    expect_error(ARGS("--bogus"), "micro: flag provided but not defined: --bogus");
    expect_error(ARGS("sidecar", "-bogus=1"), "micro: flag provided but not defined: --bogus");
    expect_error(ARGS("--bogus", "value"), "micro: flag provided but not defined: --bogus");
    /* the later task's flags do not exist yet */
    /* names match whole and case-sensitively */
    expect_error(ARGS("--Help"), "micro: flag provided but not defined: --Help");
    expect_error(ARGS("--sidecar"), "micro: flag provided but not defined: --sidecar");
    expect_error(ARGS("--register_ttlx=1s"),
                 "micro: flag provided but not defined: --register_ttlx");
    expect_error(ARGS("---help"), "micro: bad flag syntax: ---help");
    expect_error(ARGS("--=1"), "micro: bad flag syntax: --=1");
    expect_error(ARGS("-=1"), "micro: bad flag syntax: -=1");
}

static void test_missing_value(void **state)
{
    (void)state;
    expect_error(ARGS("sidecar", "--register_ttl"),
                 "micro: flag needs an argument: --register_ttl");
    expect_error(ARGS("--server_name"), "micro: flag needs an argument: --server_name");
    expect_error(ARGS("-selector"), "micro: flag needs an argument: --selector");
    expect_error(ARGS("--server_metadata"), "micro: flag needs an argument: --server_metadata");
}

static void test_companion_rule(void **state)
{
    (void)state;
    expect_error(ARGS("sidecar", "--server_name", "foo"),
                 "micro: --server_name requires --server_address");
    expect_error(ARGS("sidecar", "--server_address", "127.0.0.1:9090"),
                 "micro: --server_address requires --server_name");
    expect_error(ARGS("--server_name=foo", "--server_address="),
                 "micro: --server_name requires --server_address");
    struct mc_config cfg;
    char err[256];
    assert_int_equal(
        parse(&cfg, err, ARGS("--server_address", ":9", "sidecar", "--server_name", "foo")), 0);
    mc_config_close(&cfg);
    /* neither is fine */
    assert_int_equal(parse(&cfg, err, ARGS("sidecar", "--server_version", "1")), 0);
    mc_config_close(&cfg);
}

static void test_positional_args(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err,
                           ARGS("--selector", "random", "query", "go.micro.srv.example",
                                "--retries=1", "Example.Call", "-", "{\"name\":\"x\"}")),
                     0);
    assert_string_equal(cfg.command, "query");
    assert_int_equal(cfg.arg_count, 4);
    assert_string_equal(cfg.args[0], "go.micro.srv.example");
    assert_string_equal(cfg.args[1], "Example.Call");
    assert_string_equal(cfg.args[2], "-");
    assert_string_equal(cfg.args[3], "{\"name\":\"x\"}");
    assert_int_equal(cfg.retries, 1);
    assert_string_equal(cfg.selector, "random");
    mc_config_close(&cfg);
}

static void test_double_dash_ends_flags(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, ARGS("--retries=1", "publish", "--", "--topic", "-x", "--")),
                     0);
    assert_string_equal(cfg.command, "publish");
    assert_int_equal(cfg.arg_count, 3);
    assert_string_equal(cfg.args[0], "--topic");
    assert_string_equal(cfg.args[1], "-x");
    assert_string_equal(cfg.args[2], "--");
    mc_config_close(&cfg);

    /* before any command, the first argument after -- is the command */
    assert_int_equal(parse(&cfg, err, ARGS("--", "--help")), 0);
    assert_string_equal(cfg.command, "--help");
    assert_int_equal(cfg.help, 0);
    mc_config_close(&cfg);
}

static void test_error_buffer_edges(void **state)
{
    (void)state;
    struct mc_config cfg;
    /* no buffer at all */
    assert_int_equal(parse_env(&cfg, NULL, 0, ARGS("--bogus"), NO_ENV), MC_EINVAL);
    mc_config_close(&cfg);
    /* a short buffer is truncated, still NUL-terminated */
    char small[12];
    memset(small, 'x', sizeof small);
    assert_int_equal(parse_env(&cfg, small, sizeof small, ARGS("--bogus"), NO_ENV), MC_EINVAL);
    assert_string_equal(small, "micro: flag");
    mc_config_close(&cfg);
    char tiny[3];
    assert_int_equal(parse_env(&cfg, tiny, sizeof tiny, ARGS("--bogus"), NO_ENV), MC_EINVAL);
    assert_string_equal(tiny, "mi");
    mc_config_close(&cfg);
    /* success clears a stale message */
    char err[64] = "stale";
    assert_int_equal(parse_env(&cfg, err, sizeof err, ARGS("sidecar"), NO_ENV), 0);
    assert_string_equal(err, "");
    mc_config_close(&cfg);
}

static void test_error_value_is_one_line(void **state)
{
    (void)state;
    /* control characters cannot split the message, and huge values are cut */
    expect_error(ARGS("--register_ttl=1\n2"),
                 "micro: invalid value \"1?2\" for flag --register_ttl: expected a duration such "
                 "as 500ms, 10s or 1m30s");
    char longval[200];
    memset(longval, 'a', sizeof longval - 1);
    longval[sizeof longval - 1] = '\0';
    char want[256];
    snprintf(want, sizeof want,
             "micro: invalid value \"%.64s...\" for flag --retries: expected an integer", longval);
    expect_error(ARGS("--retries", longval), want);
    char longflag[200] = "--";
    memset(longflag + 2, 'b', 150);
    longflag[152] = '\0';
    snprintf(want, sizeof want, "micro: flag provided but not defined: --%.64s...", longflag + 2);
    expect_error(ARGS(longflag), want);
}

static void test_failed_parse_still_closes(void **state)
{
    (void)state;
    /* values set before the error are owned by cfg and freed by close (ASan checks) */
    expect_error(ARGS("--server_name=a", "--server_metadata=k=v", "query", "x", "--bogus"),
                 "micro: flag provided but not defined: --bogus");
}

static void test_table_is_consistent(void **state)
{
    (void)state;
    size_t count = 0;
    const struct mc_flag *flags = mc_conf_flags(&count);
    assert_non_null(flags);
    assert_true(count >= 29);
    struct mc_config cfg;
    mc_config_init(&cfg);
    for (size_t i = 0; i < count; i++) {
        const struct mc_flag *f = &flags[i];
        assert_non_null(f->name);
        assert_non_null(f->help);
        assert_true(f->help[0] != '\0');
        assert_true(f->offset < sizeof(struct mc_config));
        assert_string_not_equal(mc_conf_type_name(f->type), "unknown");
        /* env var is MICRO_ + the primary name in upper case (only --help and --version have
         * none: either in an environment would turn every start into a printout) */
        if (strcmp(f->name, "help") == 0 || strcmp(f->name, "version") == 0) {
            assert_null(f->env);
        } else {
            char want[128] = "MICRO_";
            for (size_t k = 0; f->name[k]; k++)
                want[6 + k] = (char)toupper((unsigned char)f->name[k]);
            want[6 + strlen(f->name)] = '\0';
            assert_non_null(f->env);
            assert_string_equal(f->env, want);
        }
        if (f->type == MC_CONF_CHOICE || f->type == MC_CONF_LOG_LEVEL)
            assert_non_null(f->choices);
        /* no name or alias is used twice */
        for (size_t j = 0; j < count; j++) {
            if (j == i)
                continue;
            assert_string_not_equal(f->name, flags[j].name);
            if (flags[j].alias)
                assert_string_not_equal(f->name, flags[j].alias);
            if (f->alias && flags[j].alias)
                assert_string_not_equal(f->alias, flags[j].alias);
        }
        /* every default is a value the flag accepts on the command line */
        if (f->default_text) {
            char arg[160];
            snprintf(arg, sizeof arg, "--%s=%s", f->name, f->default_text);
            struct mc_config tmp;
            char err[256];
            assert_int_equal(parse(&tmp, err, ARGS(arg)), 0);
            mc_config_close(&tmp);
        }
    }
    mc_config_close(&cfg);
    size_t again;
    assert_ptr_equal(mc_conf_flags(&again), flags);
    assert_int_equal(again, count);
    assert_non_null(mc_conf_flags(NULL));
    assert_string_equal(mc_conf_type_name(MC_CONF_DURATION), "duration");
    assert_string_equal(mc_conf_type_name((enum mc_conf_type)99), "unknown");
}

static char *help_text(const char *command)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    mc_config_print_help(out, command);
    fclose(out);
    return text;
}

static const char *find_line(const char *text, const char *start)
{
    for (const char *line = text; line && *line;) {
        if (strncmp(line, start, strlen(start)) == 0)
            return line;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

static void test_help_output(void **state)
{
    (void)state;
    char *text = help_text(NULL);
    assert_true(strncmp(text, "Usage: micro [global flags] COMMAND", 35) == 0);
    size_t count;
    const struct mc_flag *flags = mc_conf_flags(&count);
    for (size_t i = 0; i < count; i++) {
        char start[96];
        snprintf(start, sizeof start, "  --%s ", flags[i].name);
        const char *line = find_line(text, start);
        if (!line)
            fail_msg("--%s missing from help", flags[i].name);
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        char *one = strndup(line, (size_t)(eol - line));
        assert_non_null(strstr(one, flags[i].help));
        assert_non_null(strstr(one, mc_conf_type_name(flags[i].type)));
        if (flags[i].env)
            assert_non_null(strstr(one, flags[i].env));
        if (flags[i].default_text) {
            char def[64];
            snprintf(def, sizeof def, "\"%s\"", flags[i].default_text);
            assert_non_null(strstr(one, def));
        }
        if (flags[i].alias)
            assert_non_null(strstr(one, flags[i].alias));
        free(one);
    }
    /* spot checks of the rendered rows */
    const char *line = find_line(text, "  --sidecar_address (--address) ");
    assert_non_null(line);
    assert_non_null(strstr(line, "\":8081\""));
    assert_non_null(strstr(line, "$MICRO_SIDECAR_ADDRESS"));
    line = find_line(text, "  --selector ");
    assert_non_null(strstr(line, "(one of: random, roundrobin, p2c)"));
    line = find_line(text, "  --help (-h) ");
    assert_non_null(line);
    free(text);

    text = help_text("sidecar");
    assert_true(strncmp(text, "Usage: micro [global flags] sidecar", 35) == 0);
    assert_non_null(strstr(text, "--register_ttl"));
    free(text);
}

static void test_addresses(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err,
                           ARGS("sidecar", "--sidecar_address=[::1]:0", "--server_name=a",
                                "--server_address=app.local:9090", "--server_advertise=:7000")),
                     0);
    assert_string_equal(cfg.server_address, "app.local:9090");
    mc_config_close(&cfg);
    expect_error(ARGS("sidecar", "--sidecar_address=20150"),
                 "micro: invalid value \"20150\" for flag --sidecar_address: expected host:port "
                 "(did you mean :20150?)");
    expect_error(ARGS("sidecar", "--sidecar_address=localhost:99999"),
                 "micro: invalid value \"localhost:99999\" for flag --sidecar_address: expected "
                 "host:port with a numeric host, e.g. :8081, 127.0.0.1:8081 or [::1]:8081");
    expect_error(ARGS("sidecar", "--server_name=a", "--server_address=127.0.0.1"),
                 "micro: invalid value \"127.0.0.1\" for flag --server_address: expected "
                 "host:port, e.g. 127.0.0.1:9090");
    expect_error_env(ARGS("sidecar"), ENV("MICRO_SIDECAR_ADDRESS=8081"),
                     "micro: invalid value \"8081\" for MICRO_SIDECAR_ADDRESS (flag "
                     "--sidecar_address): expected host:port (did you mean :8081?)");
}

static void test_split_host_port(void **state)
{
    (void)state;
    char host[16];
    int port = -1;
    assert_int_equal(mc_net_split_host_port(":8081", host, sizeof host, &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 8081);
    assert_int_equal(mc_net_split_host_port("[::1]:0", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(mc_net_split_host_port("a.b:65535", host, sizeof host, &port), 0);
    assert_string_equal(host, "a.b");
    const char *bad[] = {
        "8081", "a:", "a:-1", "a:+1", "a:65536", "a:1x", "[::1]8081", "[::1", "0123456789abcdef:1",
        ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mc_net_split_host_port(bad[i], host, sizeof host, &port), MC_EINVAL);
}

static void test_ttl_must_exceed_interval(void **state)
{
    (void)state;
    expect_error(ARGS("sidecar", "--register_ttl=10s"),
                 "micro: --register_ttl (10s) must be longer than --register_interval (10s), or "
                 "nodes expire between renewals");
    expect_error(ARGS("sidecar", "--register_ttl=1500ms", "--register_interval=2s"),
                 "micro: --register_ttl (1500ms) must be longer than --register_interval (2s), "
                 "or nodes expire between renewals");
    struct mc_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, ARGS("sidecar", "--register_ttl=10s", "--help")), 0);
    mc_config_close(&cfg);
}

/* --broker=nats needs --broker_address, and every entry of it is nats://host:port, checked
 * at parse time (exit 2) whichever source gave it. */
static void test_broker_address(void **state)
{
    (void)state;
    struct mc_config cfg;
    char err[256];
    assert_int_equal(
        parse(&cfg, err,
              ARGS("--broker=nats", "--broker_address=nats://127.0.0.1:4222,nats://[::1]:4223")),
        0);
    assert_string_equal(cfg.broker, "nats");
    assert_string_equal(cfg.broker_address, "nats://127.0.0.1:4222,nats://[::1]:4223");
    mc_config_close(&cfg);
    assert_int_equal(parse_env(&cfg, err, sizeof err, ARGS("--broker=nats"),
                               ENV("MICRO_BROKER_ADDRESS=nats://nats.local:4222")),
                     0);
    assert_string_equal(cfg.broker_address, "nats://nats.local:4222");
    mc_config_close(&cfg);

    expect_error(ARGS("--broker=nats"),
                 "micro: --broker=nats requires --broker_address (nats://host:port[,...])");
    static const char *const bad[] = {
        "127.0.0.1:4222", "nats://",       "nats://:4222",   "nats://h",
        "nats://h:0",     "http://h:4222", "nats://h:4222,", "nats://h:4222,h:4223"};
    static const char *const shown[] = {
        "127.0.0.1:4222", "nats://", "nats://:4222", "nats://h", "nats://h:0",
        "http://h:4222",  "",        "h:4223"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char arg[64], want[256];
        snprintf(arg, sizeof arg, "--broker_address=%s", bad[i]);
        snprintf(want, sizeof want,
                 "micro: invalid value \"%s\" for flag --broker_address: expected "
                 "nats://host:port[,nats://host:port...], e.g. nats://127.0.0.1:4222",
                 shown[i]);
        expect_error(ARGS("--broker=nats", arg), want);
    }
}

static void test_commands_table(void **state)
{
    (void)state;
    size_t n;
    const struct mc_command *cmds = mc_commands(&n);
    assert_true(n >= 3);
    assert_ptr_equal(mc_command_find("sidecar"), &cmds[0]);
    assert_int_equal(mc_command_find("sidecar")->max_args, 0);
    assert_int_equal(mc_command_find("help")->max_args, 1);
    assert_null(mc_command_find("sidekick"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_init_alone_and_close),
        cmocka_unit_test(test_no_arguments),
        cmocka_unit_test(test_flag_before_and_after_command),
        cmocka_unit_test(test_space_and_equals_forms),
        cmocka_unit_test(test_single_dash),
        cmocka_unit_test(test_value_may_start_with_dash),
        cmocka_unit_test(test_bool_does_not_eat_next_argument),
        cmocka_unit_test(test_bool_values),
        cmocka_unit_test(test_help_flag_and_alias),
        cmocka_unit_test(test_env_used),
        cmocka_unit_test(test_env_name_must_match_exactly),
        cmocka_unit_test(test_cli_beats_env),
        cmocka_unit_test(test_env_empty_and_null),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_repeated_string_flag_last_wins),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_broker_address),
        cmocka_unit_test(test_bad_value_messages),
        cmocka_unit_test(test_minimums),
        cmocka_unit_test(test_unknown_and_syntax_errors),
        cmocka_unit_test(test_missing_value),
        cmocka_unit_test(test_companion_rule),
        cmocka_unit_test(test_tls_rule),
        cmocka_unit_test(test_positional_args),
        cmocka_unit_test(test_double_dash_ends_flags),
        cmocka_unit_test(test_error_buffer_edges),
        cmocka_unit_test(test_error_value_is_one_line),
        cmocka_unit_test(test_failed_parse_still_closes),
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_help_output),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_split_host_port),
        cmocka_unit_test(test_ttl_must_exceed_interval),
        cmocka_unit_test(test_commands_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
