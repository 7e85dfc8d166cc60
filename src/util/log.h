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

#define mc_log_error(...) mc_log(MC_LOG_ERROR, __VA_ARGS__)
#define mc_log_warn(...) mc_log(MC_LOG_WARN, __VA_ARGS__)
#define mc_log_info(...) mc_log(MC_LOG_INFO, __VA_ARGS__)
#define mc_log_debug(...) mc_log(MC_LOG_DEBUG, __VA_ARGS__)

#endif
