/* Leveled logging to stderr: one line per event, prefixed with time and level. */
#ifndef MC_UTIL_LOG_H
#define MC_UTIL_LOG_H

enum mc_log_level { MC_LOG_ERROR = 0, MC_LOG_WARN, MC_LOG_INFO, MC_LOG_DEBUG };

/* Sets the most verbose level printed (default MC_LOG_INFO). */
void mc_log_set_level(enum mc_log_level level);
enum mc_log_level mc_log_get_level(void);
/* Parses "error|warn|info|debug"; returns 0, or -1 for an unknown name. */
int mc_log_parse_level(const char *name, enum mc_log_level *out);
void mc_log(enum mc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mc_log_error(...) mc_log(MC_LOG_ERROR, __VA_ARGS__)
#define mc_log_warn(...) mc_log(MC_LOG_WARN, __VA_ARGS__)
#define mc_log_info(...) mc_log(MC_LOG_INFO, __VA_ARGS__)
#define mc_log_debug(...) mc_log(MC_LOG_DEBUG, __VA_ARGS__)

#endif
