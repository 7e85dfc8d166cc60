/* The HTTP/1.1 client: one request at a time per connection, llhttp for responses, a per-address
 * pool of idle keep-alive connections that keeps reading so a node's close evicts them, and one
 * timer per call for the dial and total deadlines. Memory of calls and connections is released
 * only in libuv close callbacks, so a flag check after every user callback is always safe. */
#include "http/client.h"

#include <assert.h>
#include <llhttp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/head.h"
#include "util/alloc.h"
#include "util/error.h"

#define DEFAULT_MAX_IDLE 16
#define DEFAULT_IDLE_TIMEOUT_MS 60000
/* Finished calls kept for reuse (their parser, buffers and timer warm): a steady stream of
 * calls allocates nothing. Beyond this many, a finished call is freed. */
#define MAX_FREE_CALLS 64
/* A call's timer is never set further ahead than this: the next call on the same object then
 * finds it due no later than its own deadline and leaves it alone (lazy re-arm, as nginx and
 * HAProxy do), instead of moving it in the timer heap every call. */
#define CALL_TIMER_GRANULE_MS 1000

enum call_state {
    CALL_CONNECTING, /* dialing a new connection; the request waits in its queue */
    CALL_ACTIVE,     /* connected: sending the request, reading the response */
    CALL_FAILING,    /* an early error waits for the next loop turn to be reported */
    CALL_DEAD,       /* done, cancelled or taken: no callback runs any more */
};

struct pool_host;

/* A client connection. conn comes first: mc_conn_free frees the whole block from the mc_conn. */
struct cconn {
    struct mc_conn conn;
    struct mc_http_client *client; /* NULL once taken by an upgrade */
    struct mc_http_call *call;     /* the call using it; NULL while idle */
    struct pool_host *host;        /* set while idle in the pool */
    struct cconn *host_next, *host_prev;
    struct cconn *lru_next, *lru_prev; /* client-wide idle list, oldest first */
    uint64_t idle_since;
};

/* Idle connections to one address, most recently used first. An empty one is kept (the next
 * call to the address puts its connection back there: no allocation per call), up to
 * MAX_EMPTY_HOSTS of them; beyond that an entry goes as it empties. */
#define MAX_EMPTY_HOSTS 64
struct pool_host {
    char *address;
    struct cconn *idle;
    unsigned idle_count;
    struct pool_host *next;
};

struct mc_http_client {
    struct mc_net *net;
    const struct mc_conn_type *transport; /* how connections to nodes are made */
    unsigned max_idle_per_host;
    uint64_t idle_timeout_ms;
    struct pool_host *hosts;
    unsigned empty_hosts; /* entries of hosts with no idle connection */
    struct cconn *lru_head, *lru_tail;
    uv_timer_t idle_timer;
    uint64_t idle_due;          /* loop ms the idle timer fires at; 0: not running */
    struct mc_http_call *calls; /* live calls, for mc_http_client_free */
    /* Finished calls: released this loop turn (a callback of theirs may still be on the
     * stack), moved at the turn's end by reclaim_check to the free list, reused from there. */
    struct mc_http_call *released, *free_calls;
    unsigned free_count;
    uv_check_t reclaim_check;
    struct mc_buf scratch; /* request heads are built here, then copied to the conn */
    size_t refs;           /* idle timer + calls + connections not yet closed */
    int freeing;
};

#define CALL_ADDRESS_INLINE 64

struct mc_http_call {
    /* Kept when the call is reused (call_new): the timer (perhaps still running) and the
     * buffers, emptied. */
    uv_timer_t timer;
    uint64_t timer_due; /* loop ms the running timer fires at; 0: not running */
    struct mc_buf raw;  /* response header names and values, NUL-separated */
    size_t *offsets;    /* per header: name offset, value offset */
    size_t offsets_cap;
    struct mc_buf stash; /* bytes received while paused, not parsed yet */
    struct mc_buf body;
    struct mc_http_header *fields; /* the head's fields as on_head sees them */
    size_t fields_cap;

    /* Everything from here on is zeroed for each call. */
    struct mc_http_client *client;
    struct mc_http_call *next, *prev;
    enum call_state state;
    int timeout_to_head;
    char *address; /* address_inline, or a copy of a long one (freed with the call) */
    char address_inline[CALL_ADDRESS_INLINE];
    int is_head;
    int request_close; /* the caller sent Connection: close */
    int chunked_upload;
    int ended;                        /* the request body is complete */
    uint64_t dial_deadline, deadline; /* loop ms; 0: none */
    uint64_t head_timeout_ms;         /* timeout_to_head: the bound, re-counted per upload write */
    uint64_t idle_timeout_ms;         /* after the head: silence allowed between body bytes */
    int buffer_body;
    uint64_t max_body;
    mc_http_call_head_cb on_head;
    mc_http_call_body_cb on_body;
    mc_http_call_done_cb on_done;
    void (*on_drain)(struct mc_http_call *, void *);
    void *ctx;
    struct cconn *cc;
    int pending_err; /* CALL_FAILING */

    /* Response parsing. */
    llhttp_t parser;
    size_t header_count;
    int in_field; /* inside a header name */
    size_t head_bytes;
    int got_byte;  /* any byte of the response arrived */
    int interim;   /* parsing a 1xx response that is skipped */
    int upgrading; /* a 101 with Upgrade: reported after the parser stops */
    int complete;  /* the final response ended */
    int keep_alive;
    int fail_err; /* set by a parser callback that stops with HPE_USER */
    int user_paused;
    int feeding;
    struct mc_buf leftover; /* bytes after a 101 head */
    struct {
        int status, http_major, http_minor, chunked, has_content_length;
        uint64_t content_length;
    } head;
};

/* ---------- client lifetime ---------- */

static void client_unref(struct mc_http_client *client)
{
    assert(client->refs > 0);
    if (--client->refs == 0 && client->freeing) {
        mc_buf_close(&client->scratch);
        mc_free(client);
    }
}

/* ---------- the pool ---------- */

static struct pool_host *host_find(struct mc_http_client *client, const char *address)
{
    for (struct pool_host *h = client->hosts; h; h = h->next)
        if (strcmp(h->address, address) == 0)
            return h;
    return NULL;
}

static void host_drop(struct mc_http_client *client, struct pool_host *host)
{
    for (struct pool_host **pp = &client->hosts; *pp; pp = &(*pp)->next) {
        if (*pp == host) {
            *pp = host->next;
            break;
        }
    }
    mc_free(host->address);
    mc_free(host);
}

/* Takes cc out of the idle lists (it is about to be used or closed). */
static void pool_remove(struct cconn *cc)
{
    struct pool_host *host = cc->host;
    struct mc_http_client *client = cc->client;
    if (!host)
        return;
    if (cc->host_prev)
        cc->host_prev->host_next = cc->host_next;
    else
        host->idle = cc->host_next;
    if (cc->host_next)
        cc->host_next->host_prev = cc->host_prev;
    if (cc->lru_prev)
        cc->lru_prev->lru_next = cc->lru_next;
    else
        client->lru_head = cc->lru_next;
    if (cc->lru_next)
        cc->lru_next->lru_prev = cc->lru_prev;
    else
        client->lru_tail = cc->lru_prev;
    cc->host_next = cc->host_prev = cc->lru_next = cc->lru_prev = NULL;
    cc->host = NULL;
    if (--host->idle_count == 0) {
        if (client->empty_hosts < MAX_EMPTY_HOSTS)
            client->empty_hosts++;
        else
            host_drop(client, host);
    }
}

static void idle_timer_fire(uv_timer_t *t);

/* Lazy, like the calls' timers: a connection taken from the pool and put back per call would
 * otherwise stop and start the timer twice per call. A running timer due no later than the
 * oldest idle connection's expiry is left alone; with the pool empty it fires and stops. */
static void rearm_idle_timer(struct mc_http_client *client)
{
    if (!client->lru_head)
        return;
    uint64_t due = client->lru_head->idle_since + client->idle_timeout_ms;
    if (client->idle_due && client->idle_due <= due)
        return;
    uint64_t now = uv_now(client->net->loop);
    client->idle_due = due > now ? due : now;
    uv_timer_start(&client->idle_timer, idle_timer_fire, due > now ? due - now : 0, 0);
}

static void idle_timer_fire(uv_timer_t *t)
{
    struct mc_http_client *client = t->data;
    client->idle_due = 0;
    uint64_t now = uv_now(client->net->loop);
    /* The list is in idle order and the timeout is uniform: expired ones are at the head. */
    while (client->lru_head && client->lru_head->idle_since + client->idle_timeout_ms <= now) {
        struct cconn *cc = client->lru_head;
        pool_remove(cc);
        mc_conn_close(&cc->conn, 1);
    }
    rearm_idle_timer(client);
}

/* Puts cc (no call attached) in the pool for address, or closes it when the host is full. */
static void pool_put(struct cconn *cc, const char *address)
{
    struct mc_http_client *client = cc->client;
    struct pool_host *host = host_find(client, address);
    if (host && host->idle_count >= client->max_idle_per_host) {
        mc_conn_close(&cc->conn, 1);
        return;
    }
    if (host && host->idle_count == 0)
        client->empty_hosts--;
    if (!host) {
        host = mc_calloc(1, sizeof *host);
        host->address = mc_strdup(address);
        host->next = client->hosts;
        client->hosts = host;
    }
    cc->host = host;
    cc->host_next = host->idle;
    if (host->idle)
        host->idle->host_prev = cc;
    host->idle = cc;
    host->idle_count++;
    cc->lru_prev = client->lru_tail;
    if (client->lru_tail)
        client->lru_tail->lru_next = cc;
    else
        client->lru_head = cc;
    client->lru_tail = cc;
    cc->idle_since = uv_now(client->net->loop);
    cc->conn.on_drain = NULL;
    /* Keep reading: an EOF from the node evicts the connection before anyone reuses it. */
    mc_conn_read_start(&cc->conn);
    if (client->lru_head == cc)
        rearm_idle_timer(client);
}

static struct cconn *pool_get(struct mc_http_client *client, const char *address)
{
    struct pool_host *host = host_find(client, address);
    if (!host || !host->idle)
        return NULL;
    struct cconn *cc = host->idle;
    int was_oldest = client->lru_head == cc;
    pool_remove(cc);
    if (was_oldest)
        rearm_idle_timer(client);
    return cc;
}

/* ---------- finishing a call ---------- */

static void call_closed(uv_handle_t *h);

/* End of the loop turn: the calls released during it are kept for reuse (up to
 * MAX_FREE_CALLS, with their buffers up to KEPT_BUF_MAX each: larger ones are let go, so the
 * list holds at most a few hundred KiB) or freed. */
#define KEPT_BUF_MAX 4096
static void reclaim_calls(uv_check_t *h)
{
    struct mc_http_client *client = h->data;
    uv_check_stop(h);
    while (client->released) {
        struct mc_http_call *call = client->released;
        client->released = call->next;
        if (client->free_count >= MAX_FREE_CALLS) {
            uv_close((uv_handle_t *)&call->timer, call_closed);
            continue;
        }
        if (call->body.cap > KEPT_BUF_MAX)
            mc_buf_close(&call->body);
        if (call->stash.cap > KEPT_BUF_MAX)
            mc_buf_close(&call->stash);
        if (call->raw.cap > KEPT_BUF_MAX)
            mc_buf_close(&call->raw);
        if (call->offsets_cap > 256) {
            mc_free(call->offsets);
            call->offsets = NULL;
            call->offsets_cap = 0;
        }
        if (call->fields_cap > 128) {
            mc_free(call->fields);
            call->fields = NULL;
            call->fields_cap = 0;
        }
        mc_buf_close(&call->leftover);
        if (call->address != call->address_inline)
            mc_free(call->address);
        call->address = NULL;
        call->next = client->free_calls;
        client->free_calls = call;
        client->free_count++;
    }
}

static void call_closed(uv_handle_t *h)
{
    struct mc_http_call *call = h->data;
    struct mc_http_client *client = call->client;
    if (call->address != call->address_inline)
        mc_free(call->address);
    mc_buf_close(&call->raw);
    mc_free(call->offsets);
    mc_free(call->fields);
    mc_buf_close(&call->stash);
    mc_buf_close(&call->leftover);
    mc_buf_close(&call->body);
    mc_free(call);
    client_unref(client);
}

/* Marks the call dead, detaches its connection (pooling or closing it) and unlinks it. The
 * memory stays valid until the timer's close callback. */
static struct cconn *call_kill(struct mc_http_call *call)
{
    struct mc_http_client *client = call->client;
    call->state = CALL_DEAD; /* its timer may run on: it finds the call dead and stops */
    if (call->prev)
        call->prev->next = call->next;
    else
        client->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->next = call->prev = NULL;
    struct cconn *cc = call->cc;
    call->cc = NULL;
    if (cc)
        cc->call = NULL;
    return cc;
}

/* The call's memory stays valid until the end of this loop turn, when reclaim_check makes it
 * reusable (a callback of the call may still be on the stack: it checks the state it finds). */
static void call_release(struct mc_http_call *call)
{
    struct mc_http_client *client = call->client;
    if (client->freeing) {
        uv_close((uv_handle_t *)&call->timer, call_closed);
        return;
    }
    call->next = client->released;
    client->released = call;
    uv_check_start(&client->reclaim_check, reclaim_calls);
}

static void call_finish(struct mc_http_call *call, int err, int retryable, int poolable)
{
    if (call->state == CALL_DEAD)
        return;
    struct cconn *cc = call_kill(call);
    if (cc) {
        if (poolable && !call->client->freeing)
            pool_put(cc, call->address);
        else
            mc_conn_close(&cc->conn, 1);
    }
    call->on_done(call, err, retryable, call->ctx);
    call_release(call);
}

/* The request is fully on the wire (nothing left to produce, nothing queued). */
static int request_sent(const struct mc_http_call *call)
{
    return call->ended && call->cc && mc_conn_pending(&call->cc->conn) == 0;
}

/* ---------- response parsing ---------- */

static struct mc_http_call *call_of(llhttp_t *p)
{
    return p->data;
}

static int parse_fail(struct mc_http_call *call, int err)
{
    call->fail_err = err;
    return HPE_USER;
}

static int count_head(struct mc_http_call *call, size_t len)
{
    call->head_bytes += len;
    if (call->head_bytes > MC_HTTP_CLIENT_MAX_HEAD)
        return parse_fail(call, MC_EPROTO);
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct mc_http_call *call = call_of(p);
    mc_buf_reset(&call->raw);
    call->header_count = 0;
    call->in_field = 0;
    call->head_bytes = 0;
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    return count_head(call_of(p), len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct mc_http_call *call = call_of(p);
    if (!call->in_field) {
        if (call->header_count >= MC_HTTP_CLIENT_MAX_HEADERS)
            return parse_fail(call, MC_EPROTO);
        if ((call->header_count + 1) * 2 > call->offsets_cap) {
            call->offsets_cap = call->offsets_cap ? call->offsets_cap * 2 : 32;
            call->offsets = mc_realloc(call->offsets, call->offsets_cap * sizeof(size_t));
        }
        call->offsets[call->header_count * 2] = call->raw.len;
        call->header_count++;
        call->in_field = 1;
    }
    mc_buf_append(&call->raw, at, len);
    return count_head(call, len);
}

/* The complete callbacks run even for empty values, so every header gets both strings. */
static int on_header_field_complete(llhttp_t *p)
{
    struct mc_http_call *call = call_of(p);
    mc_buf_append(&call->raw, "", 1);
    call->offsets[(call->header_count - 1) * 2 + 1] = call->raw.len;
    call->in_field = 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct mc_http_call *call = call_of(p);
    mc_buf_append(&call->raw, at, len);
    return count_head(call, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    mc_buf_append(&call_of(p)->raw, "", 1);
    return 0;
}

/* Builds the head the callers see; headers point into call->raw. */
static void fill_head(struct mc_http_call *call, struct mc_http_response_head *head)
{
    memset(head, 0, sizeof *head);
    head->status = call->head.status;
    head->http_major = call->head.http_major;
    head->http_minor = call->head.http_minor;
    head->keep_alive = call->keep_alive;
    head->chunked = call->head.chunked;
    head->has_content_length = call->head.has_content_length;
    head->content_length = call->head.content_length;
    head->upgrade = call->upgrading;
    if (call->header_count + 1 > call->fields_cap) {
        call->fields_cap = call->header_count + 1 < 32 ? 32 : call->header_count + 1;
        mc_free(call->fields);
        call->fields = mc_malloc(call->fields_cap * sizeof *call->fields);
    }
    head->headers = call->fields;
    head->headers[call->header_count].name = head->headers[call->header_count].value = NULL;
    head->header_count = call->header_count;
    for (size_t i = 0; i < call->header_count; i++) {
        head->headers[i].name = call->raw.data + call->offsets[i * 2];
        head->headers[i].value = call->raw.data + call->offsets[i * 2 + 1];
    }
}

static void arm_call_timer(struct mc_http_call *call);

static void report_head(struct mc_http_call *call)
{
    if (call->timeout_to_head) {
        call->deadline =
            call->idle_timeout_ms ? uv_now(call->client->net->loop) + call->idle_timeout_ms : 0;
        arm_call_timer(call);
    }
    if (!call->on_head)
        return;
    struct mc_http_response_head head;
    fill_head(call, &head);
    call->on_head(call, &head, call->ctx);
}

static int on_headers_complete(llhttp_t *p)
{
    struct mc_http_call *call = call_of(p);
    if (call->raw.len == 0)
        mc_buf_append(&call->raw, "", 1); /* so raw.data is never NULL */
    call->head.status = p->status_code;
    call->head.http_major = p->http_major;
    call->head.http_minor = p->http_minor;
    call->head.chunked = (p->flags & F_CHUNKED) != 0;
    call->head.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
    call->head.content_length = call->head.has_content_length ? p->content_length : 0;
    call->keep_alive = llhttp_should_keep_alive(p);
    /* 1xx, 204 and 304 heads end their message whatever length they claim (RFC 9112 6.3);
     * bytes a node sends after one are not a body: after a 101 they belong to the new
     * protocol, else they are garbage that keeps the connection out of the pool. F_SKIPBODY
     * is what returning 1 does, but still lets us pause below. */
    /* llhttp takes one to three digits: a status outside 100-599 ("HTTP/1.1 1 OK", 999) is
     * not HTTP, and passed on it would frame an invalid status line to the proxy's client
     * (fuzz_client found "1" reaching on_head). */
    if (p->status_code < 100 || p->status_code > 599)
        return parse_fail(call, MC_EPROTO);
    if (p->upgrade) {
        /* Reported once the parser stops, when the bytes after the head are known. */
        call->upgrading = 1;
        p->flags |= F_SKIPBODY;
        return 0;
    }
    if (p->status_code == 101)
        return parse_fail(call, MC_EPROTO); /* a switch to no named protocol: not HTTP now */
    if (p->status_code >= 100 && p->status_code < 200) {
        call->interim = 1; /* 100 Continue, 103 Early Hints: the real answer follows */
        p->flags |= F_SKIPBODY;
        return 0;
    }
    if (call->is_head || p->status_code == 204 || p->status_code == 304)
        p->flags |= F_SKIPBODY;
    report_head(call);
    if (call->state == CALL_DEAD)
        return HPE_PAUSED;
    if (call->buffer_body && call->max_body && call->head.has_content_length &&
        call->head.content_length > call->max_body && !call->is_head)
        return parse_fail(call, MC_ETOOBIG);
    return call->user_paused ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct mc_http_call *call = call_of(p);
    if (call->idle_timeout_ms) /* moves the deadline; the timer re-reads it when it fires */
        call->deadline = uv_now(call->client->net->loop) + call->idle_timeout_ms;
    if (call->buffer_body) {
        if (call->max_body && call->body.len + len > call->max_body)
            return parse_fail(call, MC_ETOOBIG);
        mc_buf_append(&call->body, at, len);
        return 0;
    }
    if (call->on_body) {
        call->on_body(call, at, len, call->ctx);
        if (call->state == CALL_DEAD)
            return HPE_PAUSED;
    }
    return call->user_paused ? HPE_PAUSED : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct mc_http_call *call = call_of(p);
    if (call->interim) {
        call->interim = 0;
        return 0;
    }
    if (call->upgrading)
        return 0; /* llhttp stops with HPE_PAUSED_UPGRADE right after */
    call->complete = 1;
    return HPE_PAUSED;
}

/* Built at compile time and never written: every loop's clients may share it (no lazily
 * initialised global on the hot path). The unnamed callbacks stay NULL, as
 * llhttp_settings_init leaves them. */
static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void finish_complete(struct mc_http_call *call, size_t extra)
{
    /* Bytes after the response would be an unrequested answer: such a node is not reused. */
    int poolable = call->keep_alive && !call->request_close && extra == 0 && request_sent(call);
    call_finish(call, 0, 0, poolable);
}

static void finish_upgrade(struct mc_http_call *call, const char *rest, size_t len)
{
    mc_buf_append(&call->leftover, rest, len);
    report_head(call);
    if (call->state == CALL_DEAD)
        return; /* taken (or cancelled) inside on_head */
    /* Nobody took the connection: it speaks another protocol now, so it cannot be reused. */
    call_finish(call, 0, 0, 0);
}

/* Parses bytes of the response. The call may be dead afterwards. */
static void call_feed(struct mc_http_call *call, const char *data, size_t len)
{
    if (len > 0)
        call->got_byte = 1;
    call->feeding = 1;
    enum llhttp_errno e = llhttp_execute(&call->parser, data, len);
    call->feeding = 0;
    if (call->state == CALL_DEAD || e == HPE_OK)
        return;
    size_t used = len;
    const char *pos = llhttp_get_error_pos(&call->parser);
    if (pos && pos >= data && pos <= data + len)
        used = (size_t)(pos - data);
    if (e == HPE_PAUSED) {
        if (call->complete) {
            finish_complete(call, len - used);
        } else if (call->user_paused) {
            mc_buf_append(&call->stash, data + used, len - used);
            if (call->cc)
                mc_conn_read_stop(&call->cc->conn);
        }
        return;
    }
    if (e == HPE_PAUSED_UPGRADE) {
        finish_upgrade(call, data + used, len - used);
        return;
    }
    call_finish(call, call->fail_err ? call->fail_err : MC_EPROTO, 0, 0);
}

/* The connection ended (EOF or error) while the call was reading. */
static void call_eof(struct mc_http_call *call, ssize_t nread)
{
    if (!call->got_byte) {
        /* Nothing of a reply: the node never processed the request (or dropped a pooled
         * connection just as we reused it), so another node may be tried. */
        call_finish(call, nread == UV_EOF ? MC_ECLOSED : (int)nread, 1, 0);
        return;
    }
    if (nread == UV_EOF) {
        /* A body delimited by the close ends here; anything else was cut short. */
        llhttp_finish(&call->parser);
        if (call->state == CALL_DEAD)
            return;
        call_finish(call, call->complete ? 0 : MC_ECLOSED, 0, 0);
        return;
    }
    call_finish(call, (int)nread, 0, 0);
}

/* ---------- connections ---------- */

static void cconn_read(struct mc_conn *c, const char *data, ssize_t nread)
{
    struct cconn *cc = (struct cconn *)c;
    struct mc_http_call *call = cc->call;
    if (!call) {
        /* Idle: the node closed it, or sent bytes nobody asked for. Either way it is done. */
        pool_remove(cc);
        mc_conn_close(c, 1);
        return;
    }
    if (nread < 0) {
        call_eof(call, nread);
        return;
    }
    call_feed(call, data, (size_t)nread);
}

static void cconn_drain(struct mc_conn *c)
{
    struct cconn *cc = (struct cconn *)c;
    struct mc_http_call *call = cc->call;
    if (!call || !call->on_drain)
        return;
    void (*cb)(struct mc_http_call *, void *) = call->on_drain;
    call->on_drain = NULL;
    cb(call, call->ctx);
}

static void cconn_closed(struct mc_conn *c)
{
    struct cconn *cc = (struct cconn *)c;
    struct mc_http_client *client = cc->client;
    pool_remove(cc);
    struct mc_http_call *call = cc->call;
    if (call) {
        /* mc_conn closed itself (a failed write): the reader never saw an error. */
        cc->call = NULL;
        call->cc = NULL;
        call_finish(call, MC_ECLOSED, !call->got_byte, 0);
    }
    mc_free(cc);
    client_unref(client);
}

static struct cconn *cconn_new(struct mc_http_client *client, int *err)
{
    struct cconn *cc = mc_calloc(1, sizeof *cc);
    *err = mc_conn_init(&cc->conn, client->net, client->transport);
    if (*err < 0) {
        mc_free(cc);
        return NULL;
    }
    cc->client = client;
    cc->conn.data = cc;
    cc->conn.on_read = cconn_read;
    cc->conn.on_drain = cconn_drain;
    cc->conn.on_close = cconn_closed;
    client->refs++;
    return cc;
}

/* ---------- calls ---------- */

static void call_timer_fire(uv_timer_t *t);

/* The call's next deadline (loop ms), 0 when none. */
static uint64_t call_due(const struct mc_http_call *call)
{
    uint64_t due = call->deadline;
    if (call->state == CALL_CONNECTING && call->dial_deadline &&
        (!due || call->dial_deadline < due))
        due = call->dial_deadline;
    return due;
}

/* Lazy: a running timer due no later than the deadline is left alone (it fires early and
 * re-arms); a deadline gone is left to the timer to find. */
static void arm_call_timer(struct mc_http_call *call)
{
    uint64_t due = call_due(call);
    if (!due || (call->timer_due && call->timer_due <= due))
        return;
    uint64_t now = uv_now(call->client->net->loop);
    uint64_t in = due > now ? due - now : 0;
    if (in > CALL_TIMER_GRANULE_MS)
        in = CALL_TIMER_GRANULE_MS;
    call->timer_due = now + in;
    uv_timer_start(&call->timer, call_timer_fire, in, 0);
}

static void call_timer_fire(uv_timer_t *t)
{
    struct mc_http_call *call = t->data;
    call->timer_due = 0;
    uv_unref((uv_handle_t *)&call->timer); /* held only while a failure waited to be told */
    if (call->state == CALL_DEAD)
        return; /* finished (or kept for reuse) since the timer was set */
    if (call->state == CALL_FAILING) {
        /* a bad address or head would be as bad on any other node: not retryable */
        int err = call->pending_err;
        call_finish(call, err, err != MC_EINVAL && err != MC_EHEADER, 0);
        return;
    }
    uint64_t now = uv_now(call->client->net->loop);
    /* Reading a body: the deadline moved with every piece, and time the caller held the call
     * paused (a slow client downstream) is not the node's silence. */
    if (call->idle_timeout_ms && call->head.status && call->user_paused)
        call->deadline = now + call->idle_timeout_ms;
    uint64_t due = call_due(call);
    if (!due)
        return;
    if (due > now) {
        arm_call_timer(call);
        return;
    }
    /* Still dialing: the request never left, so another node may be tried. */
    call_finish(call, MC_ETIMEDOUT, call->state == CALL_CONNECTING, 0);
}

/* Reports err on the next loop turn, so on_done never runs inside mc_http_call_start. */
static void call_fail_later(struct mc_http_call *call, int err)
{
    call->state = CALL_FAILING;
    call->pending_err = err;
    /* The calls' timers do not keep the loop alive (a connection does, while one is in use);
     * this one must, until the error is reported. */
    uv_ref((uv_handle_t *)&call->timer);
    call->timer_due = uv_now(call->client->net->loop);
    uv_timer_start(&call->timer, call_timer_fire, 0, 0);
}

static void on_connected(struct mc_conn *c, int status)
{
    struct cconn *cc = (struct cconn *)c;
    struct mc_http_call *call = cc->call;
    if (!call)
        return;
    if (status < 0) {
        call_finish(call, status, 1, 0);
        return;
    }
    call->state = CALL_ACTIVE;
    arm_call_timer(call);
    if (!call->user_paused)
        mc_conn_read_start(c);
    mc_conn_flush(c);
}

/* Whether a Connection header value lists "close" (comma-separated, any case). */
static int has_close_token(const char *value)
{
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == 5 && strncasecmp(p, "close", 5) == 0)
            return 1;
        p += n;
    }
    return 0;
}

/* Whether name, of length len, is want (lower case, of length len too): the length and
 * first letter rule out most headers before any comparison. */
static int name_is(const char *name, int len, const char *want, int want_len)
{
    return len == want_len && mc_http_name_eq(name, want, (size_t)len);
}

/* Builds the request head into the client's scratch buffer (reused: no allocation per
 * request). Every line goes through the checked head writer, whatever the caller passes: a
 * method, target or header that would split the head is MC_EHEADER, found before anything is
 * dialed or sent. The headers the client itself cares about are noticed in the same pass. */
static int build_head(struct mc_http_call *call, const struct mc_http_call_options *o)
{
    struct mc_buf *head = &call->client->scratch;
    mc_buf_reset(head);
    int rc = mc_http_head_request_line(head, o->method, o->target && *o->target ? o->target : "/");
    if (rc < 0)
        return rc;
    int host = 0, te = 0, cl = 0;
    for (size_t i = 0; i < o->header_count; i++) {
        const char *name = o->headers[i].name;
        int n = mc_http_head_append(head, name, o->headers[i].value);
        if (n < 0)
            return n;
        host |= name_is(name, n, "host", 4);
        te |= name_is(name, n, "transfer-encoding", 17);
        cl |= name_is(name, n, "content-length", 14);
        if (name_is(name, n, "connection", 10) && has_close_token(o->headers[i].value))
            call->request_close = 1;
    }
    if (!host && (rc = mc_http_head_append(head, "Host", o->address)) < 0)
        return rc;
    if (o->stream_body) {
        call->chunked_upload = !cl;
        if (!cl && !te)
            mc_buf_append_str(head, "Transfer-Encoding: chunked\r\n");
    } else if (!cl && !te &&
               (o->body_len > 0 || (o->method[0] == 'P' && (strcmp(o->method, "POST") == 0 ||
                                                            strcmp(o->method, "PUT") == 0 ||
                                                            strcmp(o->method, "PATCH") == 0)))) {
        mc_buf_append_str(head, "Content-Length: ");
        mc_buf_append_uint(head, o->body_len);
        mc_buf_append_str(head, "\r\n");
    }
    mc_buf_append_str(head, "\r\n");
    return 0;
}

/* Queues the head build_head left in scratch, then a whole body. */
static void write_request(struct mc_http_call *call, const struct mc_http_call_options *o)
{
    const struct mc_buf *head = &call->client->scratch;
    mc_conn_write_copy(&call->cc->conn, head->data, head->len);
    if (!o->stream_body && o->body_len > 0)
        mc_conn_write_copy(&call->cc->conn, o->body, o->body_len);
}

/* A call from the free list, reset to a fresh one with its buffers (emptied) and its timer
 * (perhaps still running: it finds the call's new deadlines when it fires) kept; or a new one. */
static struct mc_http_call *call_new(struct mc_http_client *client)
{
    struct mc_http_call *call = client->free_calls;
    if (call) {
        client->free_calls = call->next;
        client->free_count--;
        memset(&call->client, 0, sizeof *call - offsetof(struct mc_http_call, client));
        mc_buf_reset(&call->raw);
        mc_buf_reset(&call->stash);
        mc_buf_reset(&call->body);
    } else {
        call = mc_calloc(1, sizeof *call);
        uv_timer_init(client->net->loop, &call->timer);
        uv_unref((uv_handle_t *)&call->timer);
        call->timer.data = call;
        client->refs++;
    }
    call->client = client;
    llhttp_init(&call->parser, HTTP_RESPONSE, &parser_settings);
    call->parser.data = call;
    return call;
}

struct mc_http_call *mc_http_call_start(struct mc_http_client *client,
                                        const struct mc_http_call_options *o)
{
    assert(o->on_done && o->method && o->address);
    struct mc_http_call *call = call_new(client);
    size_t address_len = strlen(o->address);
    if (address_len < CALL_ADDRESS_INLINE) {
        memcpy(call->address_inline, o->address, address_len + 1);
        call->address = call->address_inline;
    } else {
        call->address = mc_strdup(o->address);
    }
    call->is_head = strcmp(o->method, "HEAD") == 0;
    call->ended = !o->stream_body;
    call->buffer_body = o->buffer_body;
    call->max_body = o->max_body;
    call->on_head = o->on_head;
    call->on_body = o->on_body;
    call->on_done = o->on_done;
    call->ctx = o->ctx;
    call->next = client->calls;
    if (client->calls)
        client->calls->prev = call;
    client->calls = call;

    uint64_t now = uv_now(client->net->loop);
    call->deadline = o->timeout_ms ? now + o->timeout_ms : 0;
    call->timeout_to_head = o->timeout_to_head;
    call->head_timeout_ms = o->timeout_to_head ? o->timeout_ms : 0;
    call->idle_timeout_ms = o->idle_timeout_ms;
    call->dial_deadline = o->dial_timeout_ms ? now + o->dial_timeout_ms : 0;

    int rc = build_head(call, o);
    if (rc < 0) {
        call_fail_later(call, rc);
        return call;
    }
    /* A pooled connection needs no address parsing: only a dial does. */
    struct cconn *cc = client->freeing ? NULL : pool_get(client, o->address);
    struct sockaddr_storage addr;
    if (!cc && mc_net_parse_address(o->address, &addr) < 0) {
        call_fail_later(call, MC_EINVAL);
        return call;
    }
    if (cc) {
        cc->call = call;
        cc->conn.on_drain = cconn_drain;
        call->cc = cc;
        call->state = CALL_ACTIVE;
        write_request(call, o);
        mc_conn_flush(&cc->conn);
        arm_call_timer(call);
        return call;
    }
    int err = 0;
    cc = cconn_new(client, &err);
    if (!cc) {
        call_fail_later(call, err);
        return call;
    }
    cc->call = call;
    call->cc = cc;
    call->state = CALL_CONNECTING;
    write_request(call, o); /* queued; flushed once connected */
    err = mc_conn_connect(&cc->conn, (const struct sockaddr *)&addr, on_connected);
    if (err < 0) {
        cc->call = NULL;
        call->cc = NULL;
        mc_conn_close(&cc->conn, 1);
        call_fail_later(call, err);
        return call;
    }
    arm_call_timer(call);
    return call;
}

static int call_writable(const struct mc_http_call *call)
{
    return call->state != CALL_DEAD && call->state != CALL_FAILING && call->cc && !call->ended;
}

static void call_flush(struct mc_http_call *call)
{
    if (call->state == CALL_ACTIVE)
        mc_conn_flush(&call->cc->conn);
}

/* An upload in progress is the caller's time, not the node's: with timeout_to_head the wait
 * for the head is counted from the last body byte handed over. */
static void upload_progress(struct mc_http_call *call)
{
    if (call->head_timeout_ms && call->deadline) {
        call->deadline = uv_now(call->client->net->loop) + call->head_timeout_ms;
        arm_call_timer(call);
    }
}

int mc_http_call_write(struct mc_http_call *call, const void *data, size_t len)
{
    if (!call_writable(call))
        return MC_ECLOSED;
    upload_progress(call);
    if (len == 0)
        return 0; /* an empty chunk would end the body */
    struct mc_conn *c = &call->cc->conn;
    if (call->chunked_upload) {
        char size[32];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        mc_conn_write_copy(c, size, (size_t)n);
        mc_conn_write_copy(c, data, len);
        mc_conn_write_copy(c, "\r\n", 2);
    } else {
        mc_conn_write_copy(c, data, len);
    }
    call_flush(call);
    return 0;
}

void mc_http_call_end(struct mc_http_call *call)
{
    if (!call_writable(call))
        return;
    upload_progress(call);
    call->ended = 1;
    if (call->chunked_upload)
        mc_conn_write_copy(&call->cc->conn, "0\r\n\r\n", 5);
    call_flush(call);
}

size_t mc_http_call_pending(const struct mc_http_call *call)
{
    return call->cc ? mc_conn_pending(&call->cc->conn) : 0;
}

void mc_http_call_on_drain(struct mc_http_call *call, void (*cb)(struct mc_http_call *, void *))
{
    call->on_drain = cb;
}

void mc_http_call_pause(struct mc_http_call *call)
{
    if (call->state == CALL_DEAD || call->user_paused)
        return;
    call->user_paused = 1;
    /* Inside a parser callback the callback itself stops llhttp and stops reading. */
    if (!call->feeding && call->cc)
        mc_conn_read_stop(&call->cc->conn);
}

void mc_http_call_resume(struct mc_http_call *call)
{
    if (call->state == CALL_DEAD || !call->user_paused)
        return;
    call->user_paused = 0;
    if (call->idle_timeout_ms && call->deadline && call->head.status) /* silence from now */
        call->deadline = uv_now(call->client->net->loop) + call->idle_timeout_ms;
    if (call->feeding)
        return; /* paused and resumed within one callback: nothing stopped */
    if (llhttp_get_errno(&call->parser) == HPE_PAUSED) {
        llhttp_resume(&call->parser);
        size_t len;
        char *rest = mc_buf_steal(&call->stash, &len);
        call_feed(call, rest ? rest : "", len);
        mc_free(rest);
        if (call->state == CALL_DEAD || call->user_paused)
            return;
    }
    if (call->cc && call->state == CALL_ACTIVE)
        mc_conn_read_start(&call->cc->conn);
}

const struct mc_buf *mc_http_call_body(const struct mc_http_call *call)
{
    return &call->body;
}

void mc_http_call_cancel(struct mc_http_call *call)
{
    if (call->state == CALL_DEAD)
        return;
    struct cconn *cc = call_kill(call);
    if (cc)
        mc_conn_close(&cc->conn, 1);
    call_release(call);
}

struct mc_conn *mc_http_call_take_conn(struct mc_http_call *call, struct mc_buf *leftover)
{
    mc_buf_init(leftover);
    if (call->state == CALL_DEAD || !call->upgrading || !call->cc)
        return NULL;
    struct mc_http_client *client = call->client;
    struct cconn *cc = call_kill(call);
    *leftover = call->leftover;
    mc_buf_init(&call->leftover);
    cc->client = NULL;
    cc->conn.data = NULL;
    cc->conn.on_read = NULL;
    cc->conn.on_drain = NULL;
    cc->conn.on_close = NULL;
    call_release(call);
    client_unref(client);
    return &cc->conn;
}

/* ---------- the client ---------- */

static void client_timer_closed(uv_handle_t *h)
{
    client_unref(h->data);
}

struct mc_http_client *mc_http_client_new(struct mc_net *net,
                                          const struct mc_http_client_config *config)
{
    struct mc_http_client *client = mc_calloc(1, sizeof *client);
    client->net = net;
    client->transport = config && config->transport ? config->transport : &mc_conn_tcp_type;
    client->max_idle_per_host =
        config && config->max_idle_per_host ? config->max_idle_per_host : DEFAULT_MAX_IDLE;
    client->idle_timeout_ms =
        config && config->idle_timeout_ms ? config->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
    uv_timer_init(net->loop, &client->idle_timer);
    /* Idle pooled connections keep the loop alive (they read); their timer need not. */
    uv_unref((uv_handle_t *)&client->idle_timer);
    client->idle_timer.data = client;
    uv_check_init(net->loop, &client->reclaim_check);
    client->reclaim_check.data = client;
    client->refs = 2; /* the idle timer and the reclaim check */
    return client;
}

void mc_http_client_free(struct mc_http_client *client)
{
    if (!client || client->freeing)
        return;
    client->freeing = 1;
    client->refs++; /* held while cancelling so no close callback frees us mid-loop */
    while (client->calls)
        mc_http_call_cancel(client->calls);
    while (client->lru_head) {
        struct cconn *cc = client->lru_head;
        pool_remove(cc);
        mc_conn_close(&cc->conn, 1);
    }
    while (client->hosts) /* the empty entries kept for reuse */
        host_drop(client, client->hosts);
    uv_close((uv_handle_t *)&client->idle_timer, client_timer_closed);
    uv_close((uv_handle_t *)&client->reclaim_check, client_timer_closed);
    /* The finished calls kept for reuse: their timers close, then their memory goes. */
    struct mc_http_call *lists[2] = {client->released, client->free_calls};
    client->released = client->free_calls = NULL;
    for (int i = 0; i < 2; i++) {
        while (lists[i]) {
            struct mc_http_call *call = lists[i];
            lists[i] = call->next;
            uv_close((uv_handle_t *)&call->timer, call_closed);
        }
    }
    client_unref(client);
}
