/* Splits http:// and https:// URLs into what the client needs, and decodes the
 * application/x-www-form-urlencoded pairs of query strings and form bodies. */
#ifndef MC_HTTP_URL_H
#define MC_HTTP_URL_H

#include <stddef.h>

struct mc_url {
    int tls;       /* https */
    char *address; /* "host:port", port defaulted (80/443); [v6] kept bracketed */
    char *host;    /* for the Host header: host[:port] as written */
    char *target;  /* path and query, "/" when absent */
};

/* Parses text ("http://" assumed when there is no scheme). 0 or MC_EINVAL; out's strings are
 * owned by out, released with mc_url_close. */
int mc_url_parse(const char *text, struct mc_url *out);
void mc_url_close(struct mc_url *url);

/* The one decoder of form pairs ("a=1&b=x+y%21"): finds the first pair whose decoded name is
 * exactly name in text[0..len) and decodes its value ('+' is a space, %XX a byte, a malformed
 * escape is kept as written; no '=' is an empty value) into *value, a new string the caller
 * mc_free()s. Returns 0; MC_ENOTFOUND when no pair has that name; MC_EINVAL when the value
 * decodes to a NUL (%00), which a C string would end at, turning "s%00junk" into another name
 * ("s"): the caller refuses it (400). *value is NULL unless 0 is returned. A name holding %00
 * matches nothing. */
int mc_url_form_value(const char *text, size_t len, const char *name, char **value);

#endif
