/* Leveled logging to stderr: one line per event, prefixed with time and level. */
#ifndef MC_UTIL_LOG_H
#define MC_UTIL_LOG_H

enum mc_log_level { MC_LOG_ERROR = 0, MC_LOG_WARN, MC_LOG_INFO, MC_LOG_DEBUG };

/* The level names in enum order ("error", "warn", "info", "debug"), NULL-terminated: the
 * --log_level choices. */
extern const char *const mc_log_level_names[];
/* Sets the most verbose level printed (default MC_LOG_INFO). */
void mc_log_set_level(enum mc_log_level level);
void mc_log(enum mc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A rate limit for one family of log lines (failed calls, retries), so that a storm cannot
 * flood the log: at most MC_LOG_LIMIT_BURST lines per MC_LOG_LIMIT_WINDOW_MS. Embed one per
 * family in the object that logs (zeroed = fresh); no global state. */
#define MC_LOG_LIMIT_BURST 20
#define MC_LOG_LIMIT_WINDOW_MS 10000
struct mc_log_limit {
    unsigned long long window_start_ms;
    unsigned printed, suppressed;
};
/* Returns 1 when a line may be printed at now_ms, else 0 (and counts it). At the first line of
 * a new window, a line saying how many were suppressed in the last one is printed first. */
int mc_log_limit_take(struct mc_log_limit *limit, unsigned long long now_ms);

#define mc_log_error(...) mc_log(MC_LOG_ERROR, __VA_ARGS__)
#define mc_log_warn(...) mc_log(MC_LOG_WARN, __VA_ARGS__)
#define mc_log_info(...) mc_log(MC_LOG_INFO, __VA_ARGS__)
#define mc_log_debug(...) mc_log(MC_LOG_DEBUG, __VA_ARGS__)

#endif
