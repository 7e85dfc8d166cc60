/* The regression half of the fuzz targets: every file of tests/data/<target>/ (the seeds, and
 * each input a fuzzing run ever crashed on, kept there once fixed) replayed through the
 * target's entry in the normal unit pass, under the same assertions, so a finding stays fixed.
 * A test file includes one target (defining FUZZ_ENTRY as fuzz_entry) and then this, with
 * REPLAY_TARGET naming the folder and REPLAY_EXTRA an optional second folder and suffix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

#ifndef REPLAY_DATA
#define REPLAY_DATA "tests/data"
#endif

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file of dir whose name ends with suffix; returns how many. */
static size_t replay_dir(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char *names[4096];
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(d)) && count < sizeof names / sizeof names[0]) {
        size_t len = strlen(de->d_name), sl = strlen(suffix);
        if (de->d_name[0] == '.' || len < sl || strcmp(de->d_name + len - sl, suffix) != 0)
            continue;
        names[count++] = mc_strdup(de->d_name);
    }
    closedir(d);
    qsort(names, count, sizeof names[0], name_cmp);
    for (size_t i = 0; i < count; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        struct mc_buf b;
        mc_buf_init(&b);
        char tmp[4096];
        size_t n;
        while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
            mc_buf_append(&b, tmp, n);
        fclose(f);
        /* A copy of exactly the file's size, so a read past the end is caught as in fuzzing. */
        uint8_t *data = mc_malloc(b.len ? b.len : 1);
        if (b.len)
            memcpy(data, b.data, b.len);
        fuzz_entry(data, b.len);
        mc_free(data);
        mc_buf_close(&b);
        mc_free(names[i]);
    }
    return count;
}

static void test_replay(void **state)
{
    (void)state;
    size_t n = replay_dir(REPLAY_DATA "/" REPLAY_TARGET, "");
#ifdef REPLAY_EXTRA_DIR
    n += replay_dir(REPLAY_EXTRA_DIR, REPLAY_EXTRA_SUFFIX);
#endif
    print_message("replayed %zu inputs through %s\n", n, REPLAY_TARGET);
    assert_true(n > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_replay)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
