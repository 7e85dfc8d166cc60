/* Backend state: the one place a backend's reachability is recorded and logged. */
#include "util/backend_state.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

static void copy_error(struct mc_backend_state *s, const char *error)
{
    snprintf(s->error, sizeof s->error, "%s", error ? error : "");
}

void mc_backend_state_init(struct mc_backend_state *s, const char *kind, const char *backend,
                           enum mc_backend_status status, const char *error)
{
    s->kind = kind;
    s->backend = backend;
    s->status = status;
    copy_error(s, error);
    s->since = unix_now();
}

int mc_backend_state_set(struct mc_backend_state *s, enum mc_backend_status status,
                         const char *error)
{
    const char *e = error ? error : "";
    if (status == s->status && strncmp(e, s->error, sizeof s->error - 1) == 0)
        return 0;
    if (status != s->status)
        s->since = unix_now();
    s->status = status;
    copy_error(s, status == MC_BACKEND_CONNECTED ? NULL : error);
    if (status == MC_BACKEND_CONNECTED)
        mc_log_info("%s %s: connected", s->kind, s->backend);
    else
        mc_log_warn("%s %s: retrying: %s", s->kind, s->backend, s->error[0] ? s->error : "?");
    return 1;
}

const char *mc_backend_status_name(enum mc_backend_status status)
{
    return status == MC_BACKEND_CONNECTED ? "connected" : "retrying";
}

char *mc_backend_state_since(const struct mc_backend_state *s, char *out, unsigned len)
{
    time_t t = (time_t)s->since;
    struct tm tm;
    if (len == 0)
        return out;
    if (!gmtime_r(&t, &tm) || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        out[0] = '\0';
    return out;
}
