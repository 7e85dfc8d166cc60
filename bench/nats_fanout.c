/* bench/nats_fanout: the nats-server side of the broker fan-out benchmark, the counterpart of
 * ws_fanout. Opens N subscriber connections (one subscription each) and one publisher
 * connection through the NATS C client, publishes M messages and measures the messages
 * delivered per second across the subscribers.
 *
 * The payload is the JSON envelope {"Header":{"Content-Type":"text/plain"},"Body":"<base64>"}
 * of a SIZE-byte body, the same bytes the sidecar sends per delivery and what go-micro's NATS
 * broker puts on the wire, so both servers move the same data. The same window as ws_fanout
 * keeps the publisher at most WINDOW messages ahead of the slowest subscriber. Every
 * subscription is delivered by one shared delivery thread (global message delivery, pool of
 * one), the closest libnats gets to ws_fanout's single loop.
 *
 * Usage: nats_fanout -p PORT [-s SUBS] [-m MESSAGES] [-b SIZE] [-w WINDOW] [-t SECONDS]
 * Prints one line of key=value results; exits 0 when every subscriber got every message. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#define FANOUT_MAX_SUBS 10000
#define FANOUT_MAX_BODY (1024 * 1024)

struct nats_sub {
    natsConnection *nc;
    natsSubscription *sub;
    _Atomic uint64_t received;
};

static _Atomic uint64_t bad_len;
static size_t expected_len;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "nats_fanout: out of memory\n");
        abort();
    }
    return p;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    struct nats_sub *s = closure;
    if ((size_t)natsMsg_GetDataLength(msg) != expected_len)
        atomic_fetch_add_explicit(&bad_len, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->received, 1, memory_order_release);
    natsMsg_Destroy(msg);
}

static uint64_t min_received(struct nats_sub *subs, int n)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < n; i++) {
        uint64_t r = atomic_load_explicit(&subs[i].received, memory_order_acquire);
        if (r < m)
            m = r;
    }
    return m;
}

/* The envelope the sidecar would deliver for a body of `size` bytes ('a'..'z' repeated). */
static char *build_payload(size_t size, size_t *out_len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char *body = xmalloc(size);
    for (size_t i = 0; i < size; i++)
        body[i] = (unsigned char)('a' + i % 26);
    static const char head[] = "{\"Header\":{\"Content-Type\":\"text/plain\"},\"Body\":\"";
    static const char tail[] = "\"}";
    size_t b64 = 4 * ((size + 2) / 3);
    size_t len = sizeof head - 1 + b64 + sizeof tail - 1;
    char *out = xmalloc(len + 1);
    char *o = out;
    memcpy(o, head, sizeof head - 1);
    o += sizeof head - 1;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)body[i] << 16;
        if (i + 1 < size)
            v |= (uint32_t)body[i + 1] << 8;
        if (i + 2 < size)
            v |= body[i + 2];
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < size ? tbl[v >> 6 & 63] : '=';
        *o++ = i + 2 < size ? tbl[v & 63] : '=';
    }
    memcpy(o, tail, sizeof tail - 1);
    out[len] = '\0';
    free(body);
    *out_len = len;
    return out;
}

static void usage(void)
{
    fprintf(stderr, "usage: nats_fanout -p PORT [-h HOST] [-s SUBS] [-m MESSAGES] [-b SIZE] "
                    "[-w WINDOW] [-t SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, nsubs = 100;
    uint64_t messages = 10000, window = 1000;
    size_t size = 64;
    double timeout_s = 30;
    int opt;
    while ((opt = getopt(argc, argv, "p:h:s:m:b:w:t:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'h':
            host = optarg;
            break;
        case 's':
            nsubs = atoi(optarg);
            break;
        case 'm':
            messages = strtoull(optarg, NULL, 10);
            break;
        case 'b':
            size = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            window = strtoull(optarg, NULL, 10);
            break;
        case 't':
            timeout_s = atof(optarg);
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || port > 65535 || nsubs <= 0 || nsubs > FANOUT_MAX_SUBS || messages == 0 ||
        size == 0 || size > FANOUT_MAX_BODY || window == 0 || timeout_s <= 0)
        usage();

    size_t payload_len;
    char *payload = build_payload(size, &payload_len);
    expected_len = payload_len;
    char url[300];
    snprintf(url, sizeof url, "nats://%s:%d", host, port);

    struct nats_sub *subs = calloc((size_t)nsubs, sizeof *subs);
    natsConnection *pub = NULL;
    natsOptions *opts = NULL;
    int errors = 0;
    uint64_t published = 0, t0 = 0, t1 = 0;
    natsStatus st = subs ? nats_SetMessageDeliveryPoolSize(1) : NATS_NO_MEMORY;
    if (st == NATS_OK)
        st = natsOptions_Create(&opts);
    if (st == NATS_OK)
        st = natsOptions_SetURL(opts, url);
    if (st == NATS_OK)
        st = natsOptions_UseGlobalMessageDelivery(opts, true);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(opts, 0);
    for (int i = 0; st == NATS_OK && i < nsubs; i++) {
        st = natsConnection_Connect(&subs[i].nc, opts);
        if (st == NATS_OK)
            st = natsConnection_Subscribe(&subs[i].sub, subs[i].nc, "bench", on_msg, &subs[i]);
        /* No client-side drop before the server's own limits: the window bounds memory. */
        if (st == NATS_OK)
            st = natsSubscription_SetPendingLimits(subs[i].sub, -1, -1);
        if (st == NATS_OK)
            st = natsConnection_Flush(subs[i].nc); /* the SUB is live on the server */
    }
    if (st == NATS_OK)
        st = natsConnection_Connect(&pub, opts);
    if (st != NATS_OK) {
        fprintf(stderr, "nats_fanout: setup against %s: %s\n", url, natsStatus_GetText(st));
        errors++;
        goto report;
    }

    t0 = now_ns();
    uint64_t deadline = t0 + (uint64_t)(timeout_s * 1e9);
    while (now_ns() < deadline) {
        uint64_t low = min_received(subs, nsubs);
        if (published >= messages && low >= messages)
            break;
        uint64_t limit = low + window;
        if (limit > messages)
            limit = messages;
        if (limit > published) {
            for (; published < limit; published++) {
                st = natsConnection_Publish(pub, "bench", payload, (int)payload_len);
                if (st != NATS_OK)
                    break;
            }
            if (st != NATS_OK) {
                fprintf(stderr, "nats_fanout: publish: %s\n", natsStatus_GetText(st));
                errors++;
                break;
            }
        } else {
            /* The slowest subscriber is a window behind: give the delivery thread the CPU. */
            struct timespec nap = {0, 50000};
            nanosleep(&nap, NULL);
        }
    }
    t1 = now_ns();

report:;
    uint64_t delivered = 0;
    for (int i = 0; subs && i < nsubs; i++)
        delivered += atomic_load(&subs[i].received);
    double secs = t0 && t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    uint64_t bad = atomic_load(&bad_len);
    int complete =
        errors == 0 && bad == 0 && published == messages && delivered == messages * (uint64_t)nsubs;
    printf("nats_fanout subscribers=%d messages=%llu size=%zu published=%llu delivered=%llu "
           "bad_frames=%llu seconds=%.3f msgs_per_s=%.0f complete=%d\n",
           nsubs, (unsigned long long)messages, size, (unsigned long long)published,
           (unsigned long long)delivered, (unsigned long long)bad, secs,
           secs > 0 ? (double)delivered / secs : 0.0, complete);
    for (int i = 0; subs && i < nsubs; i++) {
        natsSubscription_Destroy(subs[i].sub);
        natsConnection_Destroy(subs[i].nc);
    }
    natsConnection_Destroy(pub);
    natsOptions_Destroy(opts);
    free(subs);
    free(payload);
    nats_Close();
    return complete ? 0 : 1;
}
