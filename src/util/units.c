/* Flag-style durations and sizes for messages. */
#include "util/units.h"

#include <stdio.h>

void mc_duration_text(char *out, size_t len, uint64_t ms)
{
    if (ms % 1000 == 0)
        snprintf(out, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, len, "%llums", (unsigned long long)ms);
}

void mc_size_text(char *out, size_t len, uint64_t bytes)
{
    static const char *const units[] = {"GiB", "MiB", "KiB"};
    for (int i = 0; i < 3; i++) {
        uint64_t unit = 1ull << (10 * (3 - i));
        if (bytes && bytes % unit == 0) {
            snprintf(out, len, "%llu%s", (unsigned long long)(bytes / unit), units[i]);
            return;
        }
    }
    snprintf(out, len, "%lluB", (unsigned long long)bytes);
}
