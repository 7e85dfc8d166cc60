/* Splits http:// and https:// URLs into what the client needs. */
#ifndef MC_HTTP_URL_H
#define MC_HTTP_URL_H

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

#endif
