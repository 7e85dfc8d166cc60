/* micro: wiring only. Flags -> the command -> its module. */
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "sidecar/sidecar.h"
#include "util/log.h"

extern char **environ;

int main(int argc, char **argv)
{
    struct mc_config cfg;
    mc_config_init(&cfg);
    char err[512];
    if (mc_config_parse(&cfg, argc, argv, environ, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        mc_config_close(&cfg);
        return 2;
    }
    int code;
    if (cfg.help) {
        mc_config_print_help(stdout, cfg.command);
        code = 0;
    } else if (!cfg.command) {
        mc_config_print_help(stderr, NULL);
        code = 2;
    } else if (strcmp(cfg.command, "sidecar") == 0) {
        mc_log_set_level(cfg.log_level);
        code = mc_sidecar_run(&cfg);
    } else {
        fprintf(stderr, "micro: unknown command \"%s\" (try micro --help)\n", cfg.command);
        code = 2;
    }
    mc_config_close(&cfg);
    return code;
}
