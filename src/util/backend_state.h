/* What a user can see of a remote backend (registry or broker): connected, or retrying with
 * the last error and since when. One small struct every backend reports through, logged on
 * every change and shown by GET /health?verbose=1. Loop thread only. */
#ifndef MC_UTIL_BACKEND_STATE_H
#define MC_UTIL_BACKEND_STATE_H

#include <stdint.h>

enum mc_backend_status {
    MC_BACKEND_CONNECTED = 0, /* reachable; nothing to report */
    MC_BACKEND_RETRYING,      /* not reachable: error says why, retried on its own */
};

#define MC_BACKEND_ERROR_MAX 256

struct mc_backend_state {
    const char *kind;    /* "broker", "registry": borrowed, for log lines */
    const char *backend; /* "memory", "nats", "etcd": borrowed */
    enum mc_backend_status status;
    char error[MC_BACKEND_ERROR_MAX]; /* the last error; "" when connected */
    int64_t since;                    /* unix seconds of the last status change */
};

/* Initialises *s (embedded storage; nothing to close) with status and error (NULL for none),
 * since now. kind and backend are borrowed and must outlive s. Logs nothing. */
void mc_backend_state_init(struct mc_backend_state *s, const char *kind, const char *backend,
                           enum mc_backend_status status, const char *error);

/* Records a new status and error (NULL for none; copied, truncated). A change of status
 * resets since and is logged (info when connected, warn when retrying); a new error while
 * retrying is logged too, without touching since. Returns 1 when anything changed, else 0. */
int mc_backend_state_set(struct mc_backend_state *s, enum mc_backend_status status,
                         const char *error);

/* "connected" or "retrying". */
const char *mc_backend_status_name(enum mc_backend_status status);

/* Writes since as RFC 3339 UTC ("2024-05-01T12:00:00Z") into out[len]; returns out. */
char *mc_backend_state_since(const struct mc_backend_state *s, char *out, unsigned len);

#endif
