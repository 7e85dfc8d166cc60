/* The `micro` commands that talk to a running sidecar over its HTTP API (SPEC 10): list, get,
 * register, deregister, query/call, health, publish, subscribe. They use http's client on a
 * loop of their own and never the daemon's modules (registry, broker, sidecar). */
#ifndef MC_CLI_CLI_H
#define MC_CLI_CLI_H

#include "conf/conf.h"

/* Runs the client command cmd (a row of the command table, its argument count already
 * checked) with cfg's arguments and flags (--proxy_address, --output, --request_timeout,
 * --queue, --count). Prints the answer on stdout and errors on stderr. Returns the exit
 * status: 0, 1 for a failed request (the error's detail printed), 2 for a bad argument (the
 * usage printed). */
int mc_cli_run(const struct mc_config *cfg, const struct mc_command *cmd);

#endif
