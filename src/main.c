/* micro: wiring only. Flags -> the command -> its module. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "sidecar/sidecar.h"
#include "util/log.h"
#include "version.h"

extern char **environ;

/* Runs the parsed command line; returns the exit status (SPEC 1: 2 for usage errors). */
static int run(const struct mc_config *cfg)
{
    if (cfg->version || (cfg->command && strcmp(cfg->command, "version") == 0 && !cfg->help)) {
        printf("micro version %s\n", MC_VERSION);
        return 0;
    }
    const char *help_for = cfg->command;
    if (cfg->command && strcmp(cfg->command, "help") == 0)
        help_for = cfg->arg_count ? cfg->args[0] : NULL;
    else if (!cfg->help && !cfg->command) {
        mc_config_print_help(stderr, NULL);
        return 2;
    }
    const struct mc_command *cmd = help_for ? mc_command_find(help_for) : NULL;
    if (help_for && !cmd) {
        fprintf(stderr, "micro: unknown command \"%s\" (try micro --help)\n", help_for);
        return 2;
    }
    const struct mc_command *given = mc_command_find(cfg->command ? cfg->command : "help");
    if (given && cfg->arg_count > given->max_args) {
        fprintf(stderr, "micro: unexpected argument \"%s\" for command %s (try micro %s --help)\n",
                cfg->args[given->max_args], given->name, given->name);
        /* Commands without arguments keep SPEC 1's one-line error; the others show theirs. */
        if (given->max_args > 0)
            mc_command_print_usage(stderr, given);
        return 2;
    }
    if (cfg->help || strcmp(cfg->command, "help") == 0) {
        mc_config_print_help(stdout, help_for);
        return 0;
    }
    if (strcmp(cfg->command, "man") == 0) {
        mc_config_print_man(stdout, MC_VERSION);
        return 0;
    }
    if (cfg->arg_count < given->min_args) {
        fprintf(stderr, "micro: %s needs %zu argument%s (try micro %s --help)\n", given->name,
                given->min_args, given->min_args == 1 ? "" : "s", given->name);
        mc_command_print_usage(stderr, given);
        return 2;
    }
    mc_log_set_level(cfg->log_level);
    if (strcmp(cfg->command, "sidecar") == 0)
        return mc_sidecar_run(cfg);
    return mc_cli_run(cfg, given);
}

int main(int argc, char **argv)
{
    struct mc_config cfg;
    mc_config_init(&cfg);
    char err[512];
    int code = 2;
    if (mc_config_parse(&cfg, argc, argv, environ, err, sizeof err) < 0)
        fprintf(stderr, "%s\n", err);
    else
        code = run(&cfg);
    mc_config_close(&cfg);
    return code;
}
