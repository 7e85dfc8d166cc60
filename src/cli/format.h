/* The CLI's pure formatting (SPEC 10): aligned tables, node metadata as k=v,k2=v2, the
 * `get service` page and query-string escaping. No I/O: everything is appended to a buffer,
 * so tests check the exact bytes. */
#ifndef MC_CLI_FORMAT_H
#define MC_CLI_FORMAT_H

#include <stddef.h>

#include <jansson.h>

#include "util/buf.h"

/* Appends rows x cols cells (row-major, NULL taken as "") as aligned lines: each column padded
 * to its widest cell (in bytes) and separated by two spaces, the last column unpadded, so no
 * line ends in a space. Nothing is appended for 0 rows. */
void mc_cli_table(struct mc_buf *out, const char *const *cells, size_t rows, size_t cols);

/* Appends a node's metadata object as "k=v,k2=v2", keys sorted (bytewise) so the output does
 * not depend on the order the registry kept; "-" for NULL, a non-object or an empty object.
 * A value that is not a string is written as its compact JSON. */
void mc_cli_metadata(struct mc_buf *out, const json_t *metadata);

/* Appends `micro get service` for the answer of GET /registry?service=NAME (an array, one
 * element per version): "service  NAME", then for each version a blank line,
 * "version  V" ("-" when empty), a blank line and the "Id  Address  Port  Metadata" table of
 * its nodes. name is printed when the array is empty or carries no name. */
void mc_cli_service_page(struct mc_buf *out, const char *name, const json_t *versions);

/* Appends s percent-encoded for a query-string value (RFC 3986 unreserved bytes kept). */
void mc_cli_query_escape(struct mc_buf *out, const char *s);

/* Appends "host:port" for a node, bracketing an IPv6 host ("[::1]:9090"). */
void mc_cli_node_address(struct mc_buf *out, const char *host, long long port);

#endif
