/* The CLI's output shapes, kept free of I/O so tests/unit/cli checks them byte for byte. */
#include "cli/format.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

void mc_cli_table(struct mc_buf *out, const char *const *cells, size_t rows, size_t cols)
{
    if (rows == 0 || cols == 0)
        return;
    size_t *width = mc_calloc(cols, sizeof *width);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            const char *cell = cells[r * cols + c];
            size_t n = cell ? strlen(cell) : 0;
            width[c] = n > width[c] ? n : width[c];
        }
    for (size_t r = 0; r < rows; r++) {
        size_t line_start = out->len;
        for (size_t c = 0; c < cols; c++) {
            const char *cell = cells[r * cols + c] ? cells[r * cols + c] : "";
            size_t n = strlen(cell);
            mc_buf_append(out, cell, n);
            if (c + 1 < cols)
                for (size_t pad = n; pad < width[c] + 2; pad++)
                    mc_buf_append(out, " ", 1);
        }
        /* An empty last cell would leave the padding of the one before it. */
        while (out->len > line_start && out->data[out->len - 1] == ' ')
            out->len--;
        mc_buf_append(out, "\n", 1);
    }
    mc_free(width);
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void mc_cli_metadata(struct mc_buf *out, const json_t *metadata)
{
    size_t n = json_is_object(metadata) ? json_object_size(metadata) : 0;
    if (n == 0) {
        mc_buf_append_str(out, "-");
        return;
    }
    const char **keys = mc_calloc(n, sizeof *keys);
    size_t k = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)metadata, key, value) keys[k++] = key;
    qsort(keys, k, sizeof *keys, compare_keys);
    for (size_t i = 0; i < k; i++) {
        const json_t *v = json_object_get(metadata, keys[i]);
        mc_buf_appendf(out, "%s%s=", i ? "," : "", keys[i]);
        if (json_is_string(v)) {
            mc_buf_append_str(out, json_string_value(v));
        } else {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            mc_buf_append_str(out, text ? text : "?");
            free(text);
        }
    }
    mc_free(keys);
}

static const char *string_or(const json_t *object, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(object, key));
    return s && *s ? s : fallback;
}

void mc_cli_node_address(struct mc_buf *out, const char *host, long long port)
{
    if (strchr(host, ':'))
        mc_buf_appendf(out, "[%s]:%lld", host, port);
    else
        mc_buf_appendf(out, "%s:%lld", host, port);
}

/* The node table of one version: a header row, then one row per node. */
static void node_table(struct mc_buf *out, const json_t *nodes)
{
    size_t n = json_is_array(nodes) ? json_array_size(nodes) : 0;
    size_t rows = n + 1;
    const char **cells = mc_calloc(rows * 4, sizeof *cells);
    struct mc_buf *text = mc_calloc(n * 2 + 1, sizeof *text); /* port and metadata per node */
    cells[0] = "Id", cells[1] = "Address", cells[2] = "Port", cells[3] = "Metadata";
    for (size_t i = 0; i < n; i++) {
        const json_t *node = json_array_get(nodes, i);
        struct mc_buf *port = &text[2 * i], *meta = &text[2 * i + 1];
        mc_buf_init(port);
        mc_buf_init(meta);
        mc_buf_appendf(port, "%lld", (long long)json_integer_value(json_object_get(node, "port")));
        mc_cli_metadata(meta, json_object_get(node, "metadata"));
        const char **row = &cells[(i + 1) * 4];
        row[0] = string_or(node, "id", "-");
        row[1] = string_or(node, "address", "-");
        row[2] = port->data;
        row[3] = meta->data;
    }
    mc_cli_table(out, cells, rows, 4);
    for (size_t i = 0; i < n * 2; i++)
        mc_buf_close(&text[i]);
    mc_free(text);
    mc_free(cells);
}

void mc_cli_service_page(struct mc_buf *out, const char *name, const json_t *versions)
{
    size_t n = json_is_array(versions) ? json_array_size(versions) : 0;
    const char *shown = n ? string_or(json_array_get(versions, 0), "name", name) : name;
    mc_buf_appendf(out, "service  %s\n", shown);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(versions, i);
        mc_buf_appendf(out, "\nversion  %s\n\n", string_or(v, "version", "-"));
        node_table(out, json_object_get(v, "nodes"));
    }
}

void mc_cli_query_escape(struct mc_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            mc_buf_append(out, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            mc_buf_append(out, e, 3);
        }
    }
}
