/* The registry's data model and its JSON mapping (go-micro's registry.Service over HTTP). */
#include "registry/service.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "registry/node_index.h"
#include "net/conn.h"
#include "util/alloc.h"
#include "util/error.h"

void mc_service_init(struct mc_service *s)
{
    memset(s, 0, sizeof(*s));
}

static void node_close(struct mc_node *n)
{
    mc_free(n->id);
    n->id = NULL;
    mc_free(n->address);
    n->address = NULL;
    if (n->metadata)
        json_decref(n->metadata);
    n->metadata = NULL;
}

void mc_service_close(struct mc_service *s)
{
    for (size_t i = 0; i < s->node_count; i++)
        node_close(&s->nodes[i]);
    mc_free(s->nodes);
    mc_free(s->name);
    mc_free(s->version);
    if (s->metadata)
        json_decref(s->metadata);
    if (s->endpoints)
        json_decref(s->endpoints);
    mc_service_init(s);
}

json_t *mc_json_copy(const json_t *j)
{
    if (!j)
        return NULL;
    json_t *c = json_deep_copy(j);
    if (!c) {
        fprintf(stderr, "micro: out of memory copying JSON\n");
        abort();
    }
    return c;
}

static char *dup_or_empty(const char *s)
{
    return mc_strdup(s ? s : "");
}

static void node_copy(struct mc_node *dst, const struct mc_node *src)
{
    dst->id = dup_or_empty(src->id);
    dst->address = dup_or_empty(src->address);
    dst->port = src->port;
    dst->metadata = mc_json_copy(src->metadata);
    dst->expires_at_ms = src->expires_at_ms;
}

void mc_service_copy(struct mc_service *dst, const struct mc_service *src)
{
    mc_service_init(dst);
    dst->name = src->name ? mc_strdup(src->name) : NULL;
    dst->version = dup_or_empty(src->version);
    dst->metadata = mc_json_copy(src->metadata);
    dst->endpoints = mc_json_copy(src->endpoints);
    if (src->node_count) {
        dst->nodes = mc_calloc(src->node_count, sizeof(*dst->nodes));
        for (size_t i = 0; i < src->node_count; i++)
            node_copy(&dst->nodes[i], &src->nodes[i]);
        dst->node_count = src->node_count;
    }
}

struct mc_node *mc_service_add_node(struct mc_service *s, const char *id, const char *address,
                                    int port)
{
    s->nodes = mc_realloc(s->nodes, (s->node_count + 1) * sizeof(*s->nodes));
    struct mc_node *n = &s->nodes[s->node_count++];
    memset(n, 0, sizeof(*n));
    n->id = dup_or_empty(id);
    n->address = dup_or_empty(address);
    n->port = port;
    return n;
}

/* ---- JSON -> service ---- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return MC_EINVAL;
}

/* Case-insensitive lookup with "last one wins", as Go's encoding/json assigns a struct field
 * once per matching key in document order. JSON null reads as absent. */
static json_t *get_key(const json_t *obj, const char *key)
{
    const char *k;
    json_t *v;
    json_t *found = NULL;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (strcasecmp(k, key) == 0)
            found = v;
    }
    return json_is_null(found) ? NULL : found;
}

/* go-micro's metadata is map[string]string: accept an object of strings (or null). */
static int metadata_from_json(const json_t *j, json_t **out)
{
    *out = NULL;
    if (!j)
        return 0;
    if (!json_is_object(j))
        return -1;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        if (!json_is_string(v))
            return -2;
    }
    *out = mc_json_copy(j);
    return 0;
}

/* A port is an integer in 0..65535, or the same as a string of 1..5 decimal digits ("9091"),
 * which some clients send. Returns 0 and sets *port, or -1. */
static int port_from_json(const json_t *j, int *port)
{
    *port = 0;
    if (!j)
        return 0;
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if (v < 0 || v > 65535)
            return -1;
        *port = (int)v;
        return 0;
    }
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        size_t len = json_string_length(j);
        if (len == 0 || len > 5)
            return -1;
        int v = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            v = v * 10 + (s[i] - '0');
        }
        if (v > 65535)
            return -1;
        *port = v;
        return 0;
    }
    return -1;
}

int mc_service_has_control_char(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

/* A name, version, node id or address: a string (absent = "") without control characters,
 * which would split the HTTP heads these values are copied into (an embedded NUL would also cut
 * the value short silently). Returns 0, -1 (not a string) or -2 (a control character). */
static int text_from_json(const json_t *j, char **out)
{
    if (!j) {
        *out = mc_strdup("");
        return 0;
    }
    if (!json_is_string(j))
        return -1;
    if (mc_service_has_control_char(json_string_value(j), json_string_length(j)))
        return -2;
    *out = mc_strdup(json_string_value(j));
    return 0;
}

/* go-micro keeps a node's host and port apart, and every caller dials address:port. An address
 * that carries its own port ("10.0.0.1:9090", "[::1]:9090"; a bare IPv6 address has several
 * colons and no brackets, and stays whole) is split when "port" is absent or names the same
 * port, so a registration that would make every call fail is repaired, not stored. Returns 0,
 * or -1 when the two ports differ. */
static int split_address_port(struct mc_node *n, int has_port)
{
    const char *a = n->address, *colon = strrchr(a, ':');
    if (!colon || (a[0] != '[' && strchr(a, ':') != colon))
        return 0;
    char host[256];
    int port;
    if (mc_net_split_host_port(a, host, sizeof host, &port) < 0)
        return 0; /* not host:port after all: kept as given */
    if (has_port && port != n->port)
        return -1;
    n->port = port;
    mc_free(n->address);
    n->address = mc_strdup(host);
    return 0;
}

static int node_from_json(const json_t *j, size_t idx, struct mc_node *n, char *err, size_t errlen)
{
    memset(n, 0, sizeof(*n));
    if (!json_is_object(j))
        return fail(err, errlen, "nodes[%zu] must be an object", idx);
    json_t *id = get_key(j, "id");
    if (!id)
        return fail(err, errlen, "nodes[%zu]: node id is required", idx);
    int rc = text_from_json(id, &n->id);
    if (rc < 0)
        return fail(err, errlen, "nodes[%zu]: node id %s", idx,
                    rc == -1 ? "must be a string" : "contains a control character");
    if (n->id[0] == '\0')
        return fail(err, errlen, "nodes[%zu]: node id is required", idx);
    rc = text_from_json(get_key(j, "address"), &n->address);
    if (rc < 0)
        return fail(err, errlen, "nodes[%zu]: node address %s", idx,
                    rc == -1 ? "must be a string" : "contains a control character");
    json_t *port = get_key(j, "port");
    if (port_from_json(port, &n->port) < 0)
        return fail(err, errlen, "nodes[%zu]: node port must be an integer in 0..65535", idx);
    if (split_address_port(n, port != NULL) < 0)
        return fail(err, errlen,
                    "nodes[%zu]: node address \"%s\" carries a port other than \"port\" (%d): "
                    "give the host in \"address\" and the port in \"port\"",
                    idx, n->address, n->port);
    rc = metadata_from_json(get_key(j, "metadata"), &n->metadata);
    if (rc == -1)
        return fail(err, errlen, "nodes[%zu]: node metadata must be an object", idx);
    if (rc == -2)
        return fail(err, errlen, "nodes[%zu]: node metadata values must be strings", idx);
    return 0;
}

void mc_service_merge_duplicate_nodes(struct mc_service *s)
{
    if (s->node_count < 2)
        return;
    struct mc_node_index seen;
    mc_node_index_init(&seen);
    size_t kept = 0;
    for (size_t i = 0; i < s->node_count; i++) {
        struct mc_node *n = &s->nodes[i];
        struct mc_node_slot *slot = mc_node_index_find(&seen, NULL, n->id);
        if (!slot) {
            if (kept != i)
                s->nodes[kept] = *n;
            /* The index borrows the id string, which stays with the kept node. */
            slot = mc_node_index_insert(&seen, NULL, s->nodes[kept].id);
            slot->pos = kept++;
            continue;
        }
        /* The first position keeps its id; everything else becomes the later node's. */
        struct mc_node *first = &s->nodes[slot->pos];
        mc_free(first->address);
        if (first->metadata)
            json_decref(first->metadata);
        first->address = n->address;
        first->port = n->port;
        first->metadata = n->metadata;
        first->expires_at_ms = n->expires_at_ms;
        mc_free(n->id);
    }
    mc_node_index_close(&seen);
    s->node_count = kept;
}

static int nodes_from_json(const json_t *arr, struct mc_service *out, char *err, size_t errlen)
{
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return fail(err, errlen, "service nodes must be an array");
    size_t n = json_array_size(arr);
    if (n == 0)
        return 0;
    out->nodes = mc_calloc(n, sizeof(*out->nodes));
    for (size_t i = 0; i < n; i++) {
        struct mc_node node;
        int rc = node_from_json(json_array_get(arr, i), i, &node, err, errlen);
        if (rc < 0) {
            node_close(&node);
            return rc;
        }
        out->nodes[out->node_count++] = node;
    }
    mc_service_merge_duplicate_nodes(out);
    return 0;
}

int mc_service_from_json(const json_t *json, unsigned flags, struct mc_service *out, char *err,
                         size_t errlen)
{
    int rc;
    mc_service_init(out);
    if (err && errlen)
        err[0] = '\0';
    if (!json_is_object(json))
        return fail(err, errlen, "request body must be a JSON object");

    json_t *name = get_key(json, "name");
    if (!name) {
        rc = fail(err, errlen, "service name is required");
        goto fail;
    }
    rc = text_from_json(name, &out->name);
    if (rc < 0) {
        rc = fail(err, errlen, "service name %s",
                  rc == -1 ? "must be a string" : "contains a control character");
        goto fail;
    }
    if (out->name[0] == '\0') {
        rc = fail(err, errlen, "service name is required");
        goto fail;
    }
    rc = text_from_json(get_key(json, "version"), &out->version);
    if (rc < 0) {
        rc = fail(err, errlen, "service version %s",
                  rc == -1 ? "must be a string" : "contains a control character");
        goto fail;
    }
    rc = metadata_from_json(get_key(json, "metadata"), &out->metadata);
    if (rc < 0) {
        rc = fail(err, errlen,
                  rc == -1 ? "service metadata must be an object"
                           : "service metadata values must be strings");
        goto fail;
    }
    out->endpoints = mc_json_copy(get_key(json, "endpoints"));
    rc = nodes_from_json(get_key(json, "nodes"), out, err, errlen);
    if (rc < 0)
        goto fail;
    if ((flags & MC_SERVICE_REQUIRE_NODES) && out->node_count == 0) {
        rc = fail(err, errlen, "service has no nodes: at least one node is required");
        goto fail;
    }
    return 0;

fail:
    mc_service_close(out);
    return rc;
}

/* ---- service -> JSON ---- */

/* jansson returns NULL from its constructors only when out of memory. */
static json_t *must(json_t *j)
{
    if (!j) {
        fprintf(stderr, "micro: out of memory building JSON\n");
        abort();
    }
    return j;
}

static void set(json_t *obj, const char *key, json_t *value)
{
    if (json_object_set_new(obj, key, must(value)) < 0) {
        fprintf(stderr, "micro: out of memory building JSON\n");
        abort();
    }
}

static json_t *copy_or_json_null(const json_t *j)
{
    return j ? mc_json_copy(j) : json_null();
}

/* Strings parsed from JSON are valid UTF-8, but one set by hand (a command-line flag) may not
 * be; json_string() refuses those, and a string jansson could not dump would fail the whole
 * response, so replace the non-ASCII bytes of such a string with '?' instead. */
static json_t *str(const char *s)
{
    if (!s)
        s = "";
    json_t *j = json_string(s);
    if (j)
        return j;
    char *ascii = mc_strdup(s);
    for (char *p = ascii; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(ascii);
    mc_free(ascii);
    return j;
}

json_t *mc_service_to_json(const struct mc_service *s, int include_nodes)
{
    json_t *obj = must(json_object());
    set(obj, "name", str(s->name));
    set(obj, "version", str(s->version));
    set(obj, "metadata", copy_or_json_null(s->metadata));
    set(obj, "endpoints", copy_or_json_null(s->endpoints));
    /* go-micro marshals a nil slice as null; an empty node list is one. */
    if (!include_nodes || s->node_count == 0) {
        set(obj, "nodes", json_null());
        return obj;
    }
    json_t *nodes = must(json_array());
    for (size_t i = 0; i < s->node_count; i++) {
        const struct mc_node *n = &s->nodes[i];
        json_t *node = must(json_object());
        set(node, "id", str(n->id));
        set(node, "address", str(n->address));
        set(node, "port", json_integer(n->port));
        set(node, "metadata", copy_or_json_null(n->metadata));
        if (json_array_append_new(nodes, node) < 0) {
            fprintf(stderr, "micro: out of memory building JSON\n");
            abort();
        }
    }
    set(obj, "nodes", nodes);
    return obj;
}
