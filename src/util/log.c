/* Leveled logging to stderr. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum mc_log_level current_level = MC_LOG_INFO;
const char *const mc_log_level_names[] = {"error", "warn", "info", "debug", NULL};

void mc_log_set_level(enum mc_log_level level)
{
    current_level = level;
}

void mc_log(enum mc_log_level level, const char *fmt, ...)
{
    if (level > current_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    char line[2048];
    int n = snprintf(line, sizeof line, "%s.%03dZ %-5s ", stamp, (int)(tv.tv_usec / 1000),
                     mc_log_level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
