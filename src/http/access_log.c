/* The access log line. */
#include "http/access_log.h"

#include <time.h>

void mc_http_access_log_write(FILE *f, const struct mc_http_request *req, const char *peer,
                              uint64_t now_ms)
{
    if (!f)
        return;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[64];
    strftime(stamp, sizeof stamp, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    const char *referer = mc_http_request_header(req, "Referer");
    const char *ua = mc_http_request_header(req, "User-Agent");
    /* A refused head may end before start_ms was taken: no duration to speak of. */
    unsigned long long ms = req->start_ms && now_ms > req->start_ms ? now_ms - req->start_ms : 0;
    fprintf(f,
            "%s - - [%s] \"%s %s HTTP/%d.%d\" %d %llu \"%s\" \"%s\" upstream=%s duration=%llums\n",
            peer, stamp, req->method_name ? req->method_name : "-", req->url ? req->url : "-",
            req->http_major, req->http_minor, req->status, (unsigned long long)req->bytes_sent,
            referer ? referer : "-", ua ? ua : "-", req->upstream ? req->upstream : "-", ms);
    fflush(f);
}
