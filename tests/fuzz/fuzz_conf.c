/* libFuzzer target: arbitrary command lines and environments into the flag parser (the one
 * flag table: every type, aliases, --flag=value and --flag value, MICRO_* variables) and the
 * duration and size parsers. The input is lines: argv words until an empty line, then
 * NAME=value environment entries. A parse that succeeds must leave a config whose strings are
 * NUL-terminated copies; a failure must say why; nothing may crash or leak. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "util/alloc.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int FUZZ_ENTRY(const uint8_t *data, size_t size);

#define MAX_WORDS 64

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    char *text = mc_malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[MAX_WORDS + 2], *envp[MAX_WORDS + 1];
    int argc = 0, envc = 0, in_env = 0;
    argv[argc++] = "micro";
    for (char *line = text; line && argc <= MAX_WORDS && envc < MAX_WORDS;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (!in_env && !*line)
            in_env = 1;
        else if (in_env)
            envp[envc++] = line;
        else
            argv[argc++] = line;
        line = nl ? nl + 1 : NULL;
    }
    argv[argc] = NULL;
    envp[envc] = NULL;

    struct mc_config cfg;
    mc_config_init(&cfg);
    char err[512] = "";
    int rc = mc_config_parse(&cfg, argc, argv, envp, err, sizeof err);
    if (rc != 0)
        assert(err[0]); /* a refusal names its reason */
    else {
        assert(cfg.registry && cfg.broker && cfg.selector && cfg.handler);
        for (size_t i = 0; i < cfg.server_metadata_count; i++)
            assert(cfg.server_metadata[i].key && cfg.server_metadata[i].value);
        for (size_t i = 0; i < cfg.arg_count; i++)
            assert(cfg.args[i]);
    }
    mc_config_close(&cfg);

    /* Each word also as a duration and a size. */
    for (int i = 1; i < argc; i++) {
        uint64_t v;
        mc_parse_duration_ms(argv[i], &v);
        mc_parse_size(argv[i], &v);
    }
    mc_free(text);
    return 0;
}
