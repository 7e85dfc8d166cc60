/* The one error table: every fallible function returns 0 or a negative code from here
 * (or a negative libuv code, which mc_strerror also names). */
#ifndef MC_UTIL_ERROR_H
#define MC_UTIL_ERROR_H

#define MC_ERROR_MAP(X)                                                                            \
    X(MC_EINVAL, -30001, "invalid argument")                                                       \
    X(MC_ENOTFOUND, -30002, "not found")                                                           \
    X(MC_ETIMEDOUT, -30003, "request timeout")                                                     \
    X(MC_EPROTO, -30004, "protocol error")                                                         \
    X(MC_ETOOBIG, -30005, "too large")                                                             \
    X(MC_EUNAVAIL, -30006, "service unavailable")                                                  \
    X(MC_ECLOSED, -30007, "connection closed")                                                     \
    X(MC_ECANCELED, -30008, "canceled")                                                            \
    X(MC_EEXIST, -30009, "already exists")                                                         \
    X(MC_EHEADER, -30010, "header not allowed (a control character, or a name that is no token)")

enum mc_error {
#define MC_ERROR_ENUM(name, value, text) name = value,
    MC_ERROR_MAP(MC_ERROR_ENUM)
#undef MC_ERROR_ENUM
};

/* A static string naming code (ours or libuv's); never NULL. */
const char *mc_strerror(int code);

#endif
