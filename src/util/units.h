/* Durations and sizes as a user types them in a flag, for messages that name a limit
 * ("--request_timeout=5s", "--max_body_size=4MiB"). */
#ifndef MC_UTIL_UNITS_H
#define MC_UTIL_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds: whole seconds as "10s", anything else as "1500ms". Into out (len bytes,
 * always NUL-terminated). */
void mc_duration_text(char *out, size_t len, uint64_t ms);
/* Bytes: exact multiples of 1 GiB, 1 MiB or 1 KiB as "4MiB", anything else as "1000B". */
void mc_size_text(char *out, size_t len, uint64_t bytes);

#endif
