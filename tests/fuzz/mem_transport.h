/* An in-memory transport (struct mc_conn_type) for the fuzz targets and their replay tests:
 * the real HTTP server, client and WebSocket code run unchanged over it, bytes in and bytes out,
 * with no socket and no timing. Included by one target per binary (static state).
 *
 * Accepted connections (the server side) read the script given to mem_serve; dialled ones (the
 * client side) either are refused or read the script given to mem_dial_script. mem_pump stands
 * in for the kernel: it completes connects and writes and hands the script to on_read in the
 * chunks chosen, then UV_EOF (a half-close) when asked, running the loop one turn between steps
 * so timers of zero delay, flush checks and close callbacks run as they would. */
#ifndef MC_FUZZ_MEM_TRANSPORT_H
#define MC_FUZZ_MEM_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "net/conn.h"
#include "util/alloc.h"
#include "util/buf.h"

#define MEM_MAX_CONNS 64
#define MEM_MAX_OUT (4u << 20) /* output kept per run: past this it is counted, not kept */

struct mem_script {
    const uint8_t *data;
    size_t len;
    size_t chunk; /* bytes per read; 0: all at once */
    int eof;      /* deliver UV_EOF after the script */
};

struct mem_state {
    struct mc_conn *c;
    int accepted; /* server side: reads the serve script */
    int connect_pending, connect_status;
    int reading, write_pending, eof_sent, shut;
    size_t pos;
    struct mem_script script;
};

static struct mem_state *mem_conns[MEM_MAX_CONNS];
static size_t mem_conn_count;
static struct mem_script mem_serve_script; /* for the next accepted connection */
static struct mem_script mem_dial_script;  /* for each dialled connection */
static int mem_refuse_dials = 1;
/* When set, each dial reads the script this returns instead of mem_dial_script. */
static struct mem_script (*mem_dial_next)(void);
static struct mc_buf mem_out; /* every byte written, by every connection, in order */
static size_t mem_out_total;

static int mem_init(struct mc_conn *c)
{
    /* An unconnected TCP handle: only so that close has a real handle to close. */
    int rc = uv_tcp_init(c->net->loop, &c->io.tcp);
    if (rc < 0)
        return rc;
    if (mem_conn_count == MEM_MAX_CONNS) {
        uv_close(&c->io.handle, NULL);
        return UV_EMFILE;
    }
    c->io.handle.data = c;
    struct mem_state *m = mc_calloc(1, sizeof *m);
    m->c = c;
    c->tstate = m;
    mem_conns[mem_conn_count++] = m;
    return 0;
}

static int mem_accept(struct mc_conn *c, uv_stream_t *listener)
{
    (void)listener;
    struct mem_state *m = c->tstate;
    m->accepted = 1;
    m->script = mem_serve_script;
    return 0;
}

static int mem_connect(struct mc_conn *c, const struct sockaddr *addr)
{
    (void)addr;
    struct mem_state *m = c->tstate;
    m->connect_pending = 1;
    m->connect_status = mem_refuse_dials ? UV_ECONNREFUSED : 0;
    m->script = mem_dial_next ? mem_dial_next() : mem_dial_script;
    return 0;
}

static int mem_read_start(struct mc_conn *c)
{
    ((struct mem_state *)c->tstate)->reading = 1;
    return 0;
}

static int mem_read_stop(struct mc_conn *c)
{
    ((struct mem_state *)c->tstate)->reading = 0;
    return 0;
}

static int mem_write(struct mc_conn *c, const uv_buf_t *bufs, unsigned count)
{
    struct mem_state *m = c->tstate;
    for (unsigned i = 0; i < count; i++) {
        mem_out_total += bufs[i].len;
        if (mem_out.len + bufs[i].len <= MEM_MAX_OUT)
            mc_buf_append(&mem_out, bufs[i].base, bufs[i].len);
    }
    m->write_pending = 1;
    return 0;
}

static int mem_shutdown(struct mc_conn *c)
{
    ((struct mem_state *)c->tstate)->shut = 1;
    return 0;
}

static void mem_closed(uv_handle_t *h)
{
    struct mc_conn *c = h->data;
    struct mem_state *m = c->tstate;
    for (size_t i = 0; i < mem_conn_count; i++) {
        if (mem_conns[i] == m) {
            mem_conns[i] = mem_conns[--mem_conn_count];
            break;
        }
    }
    c->tstate = NULL;
    int cancelled = m->write_pending;
    mc_free(m);
    /* As libuv does for TCP: a write in flight completes (cancelled) before the close. */
    if (cancelled)
        mc_conn_transport_written(c, UV_ECANCELED);
    mc_conn_transport_closed(c);
}

static void mem_close(struct mc_conn *c)
{
    if (!uv_is_closing(&c->io.handle))
        uv_close(&c->io.handle, mem_closed);
}

static int mem_peer_addr(struct mc_conn *c, struct sockaddr_storage *out)
{
    (void)c;
    memset(out, 0, sizeof *out);
    return uv_ip4_addr("127.0.0.1", 40000, (struct sockaddr_in *)out);
}

static size_t mem_pending(const struct mc_conn *c)
{
    (void)c;
    return 0;
}

static const struct mc_conn_type mem_type = {
    .name = "mem",
    .init = mem_init,
    .accept = mem_accept,
    .connect = mem_connect,
    .read_start = mem_read_start,
    .read_stop = mem_read_stop,
    .write = mem_write,
    .shutdown = mem_shutdown,
    .close = mem_close,
    .peer_addr = mem_peer_addr,
    .pending = mem_pending,
    .peer_cert = NULL,
};

/* One step for m; returns whether anything happened. m may be gone afterwards only through a
 * close callback, which runs in uv_run, never here. */
static int mem_step(struct mem_state *m)
{
    struct mc_conn *c = m->c;
    if (m->connect_pending) {
        m->connect_pending = 0;
        mc_conn_transport_connected(c, m->connect_status);
        return 1;
    }
    if (m->write_pending) {
        m->write_pending = 0;
        mc_conn_transport_written(c, 0);
        return 1;
    }
    if (!m->reading || c->closing || uv_is_closing(&c->io.handle))
        return 0;
    if (!m->accepted && m->connect_status != 0)
        return 0;
    if (m->pos < m->script.len) {
        size_t n = m->script.len - m->pos;
        if (m->script.chunk && n > m->script.chunk)
            n = m->script.chunk;
        const char *p = (const char *)m->script.data + m->pos;
        m->pos += n;
        c->on_read(c, p, (ssize_t)n);
        return 1;
    }
    if (m->script.eof && !m->eof_sent) {
        m->eof_sent = 1;
        c->on_read(c, NULL, UV_EOF);
        return 1;
    }
    return 0;
}

/* Runs until nothing moved for a few rounds (or max_rounds). Each round gives every connection
 * one step, then the loop one non-blocking turn. */
static void mem_pump(uv_loop_t *loop, int max_rounds)
{
    int idle = 0;
    for (int round = 0; round < max_rounds; round++) {
        int moved = 0;
        /* A step may add connections (a dial) or close others: walk a snapshot. */
        struct mem_state *snap[MEM_MAX_CONNS];
        size_t n = mem_conn_count;
        memcpy(snap, mem_conns, n * sizeof snap[0]);
        for (size_t i = 0; i < n; i++) {
            int live = 0;
            for (size_t j = 0; j < mem_conn_count; j++)
                live |= mem_conns[j] == snap[i];
            if (live)
                moved |= mem_step(snap[i]);
        }
        uv_run(loop, UV_RUN_NOWAIT);
        /* A few quiet turns let close callbacks and zero-delay timers run out. */
        idle = moved ? 0 : idle + 1;
        if (idle >= 3)
            break;
    }
}

/* Picks how a script is cut from its own bytes, so a seed file is just the bytes on the wire:
 * whole, or reads of 1, 2, 3, 7, 64 or 1000 bytes; the parity of the sum decides the EOF. */
static struct mem_script mem_script_of(const uint8_t *data, size_t len)
{
    static const size_t chunks[] = {0, 1, 2, 3, 7, 64, 1000};
    unsigned sum = 0;
    for (size_t i = 0; i < len && i < 64; i++)
        sum += data[i];
    struct mem_script s = {data, len, chunks[(sum + len) % 7], (int)((sum / 7) & 1)};
    if (len > 4096 && s.chunk && s.chunk < 64)
        s.chunk = 64; /* a big input a byte at a time would only be slow */
    return s;
}

#endif
