/* Path-based calls (SPEC 3.3): how a request path names a service and method, following
 * go-micro's API gateway rules, for --handler=rpc and --handler=proxy. Pure string work. */
#ifndef MC_RPC_ROUTE_H
#define MC_RPC_ROUTE_H

#include <stddef.h>

/* Maps the request target path[0..len) (a query string or fragment is ignored; "//", "." and
 * ".." are cleaned as Go's path.Clean does) to a JSON-RPC call, for --handler=rpc:
 *   /foo          -> <ns>.foo,      Foo.Call
 *   /foo/bar      -> <ns>.foo,      Foo.Bar
 *   /foo/bar/baz  -> <ns>.foo,      Bar.Baz   (service: all but the last two segments)
 *   /v1/foo/bar   -> <ns>.v1.foo,   Foo.Bar   (a vN first segment of three is a version)
 * Method parts are title-cased and dashes join words (get-user -> GetUser), as go-micro did.
 * namespace_ is the --namespace (an empty one adds no prefix). On success returns 0 and sets
 * *service_out and *method_out to new strings the caller mc_free()s. Returns MC_ENOTFOUND (outs
 * set to NULL) when the path names nothing: empty, "/", or a method part that is empty. */
int mc_route_path_to_call(const char *path, size_t len, const char *namespace_, char **service_out,
                          char **method_out);

/* Maps path[0..len) to the service to reverse-proxy to, for --handler=proxy: <ns>.<first
 * segment>, or <ns>.vN.<second> when the first segment is a version vN and a second follows
 * (go-micro's proxy rule). The name segment must be letters and digits in dash-separated words.
 * Returns 0 and a new string in *service_out (caller mc_free()s), or MC_ENOTFOUND (NULL out). */
int mc_route_path_to_service(const char *path, size_t len, const char *namespace_,
                             char **service_out);
/* The same into the caller's out[0..cap) (out may be NULL when cap is 0), allocating nothing:
 * for the proxy's hot path. Sets *need to the bytes the name takes with its NUL whenever the
 * path names a service, and returns 0 (out holds the name), MC_ETOOBIG (it needs more than
 * cap: nothing usable in out; call again with *need bytes) or MC_ENOTFOUND (*need untouched). */
int mc_route_service_into(const char *path, size_t len, const char *namespace_, char *out,
                          size_t cap, size_t *need);
/* The same into buf[0..cap) when the name fits there (nothing allocated: the hot paths' way),
 * else into a new string; NULL when the path names no service. The caller mc_free()s a
 * result other than buf. */
char *mc_route_service_in(const char *path, size_t len, const char *namespace_, char *buf,
                          size_t cap);

#endif
