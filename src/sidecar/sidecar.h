/* The `micro sidecar` daemon: owns the loop and every module, registers this sidecar and its
 * app, runs the health checker, and shuts down gracefully on SIGTERM/SIGINT (SPEC 5, 9). */
#ifndef MC_SIDECAR_SIDECAR_H
#define MC_SIDECAR_SIDECAR_H

#include "conf/conf.h"

/* Runs the daemon until a signal stops it. Returns the process exit status: 0 after a
 * graceful shutdown, 1 for a start-up failure (printed to stderr), 2 for a bad flag value
 * found only now (e.g. an --server_address without a port). cfg is only read. */
int mc_sidecar_run(const struct mc_config *cfg);

#endif
