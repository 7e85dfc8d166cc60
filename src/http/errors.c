/* go-micro error JSON and reason phrases. */
#include "http/errors.h"

#include <string.h>

const char *mc_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static void json_string(struct mc_buf *out, const char *s)
{
    mc_buf_append(out, "\"", 1);
    mc_buf_append_json_escaped(out, s);
    mc_buf_append(out, "\"", 1);
}

void mc_http_error_json(struct mc_buf *out, const char *id, int code, const char *detail)
{
    mc_http_error_json_n(out, id, code, detail ? detail : "", detail ? strlen(detail) : 0);
}

void mc_http_error_json_n(struct mc_buf *out, const char *id, int code, const char *detail,
                          size_t detail_len)
{
    mc_buf_append_str(out, "{\"id\":");
    json_string(out, id);
    mc_buf_appendf(out, ",\"code\":%d,\"detail\":\"", code);
    mc_buf_append_json_escaped_n(out, detail, detail_len);
    mc_buf_append_str(out, "\",\"status\":");
    json_string(out, mc_http_reason(code));
    mc_buf_append_str(out, "}");
}

void mc_http_respond_error(struct mc_http_request *req, int status, const char *id,
                           const char *detail)
{
    struct mc_buf body;
    mc_buf_init(&body);
    mc_http_error_json(&body, id, status, detail);
    mc_http_respond(req, status, "application/json", NULL, 0, body.data, body.len);
    mc_buf_close(&body);
}
