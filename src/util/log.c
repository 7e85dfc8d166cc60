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

int mc_log_limit_take(struct mc_log_limit *limit, unsigned long long now_ms)
{
    if (limit->printed == 0 || now_ms - limit->window_start_ms >= MC_LOG_LIMIT_WINDOW_MS) {
        if (limit->suppressed)
            mc_log(MC_LOG_WARN, "%u similar lines suppressed in the last %ds", limit->suppressed,
                   MC_LOG_LIMIT_WINDOW_MS / 1000);
        limit->window_start_ms = now_ms;
        limit->printed = 0;
        limit->suppressed = 0;
    }
    if (limit->printed >= MC_LOG_LIMIT_BURST) {
        limit->suppressed++;
        return 0;
    }
    limit->printed++;
    return 1;
}
