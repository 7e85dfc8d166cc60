/* tests/data/fuzz_h2_client/ replayed through the fuzz_h2_client target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_h2_client.c"

#define REPLAY_TARGET "fuzz_h2_client"
#include "unit/fuzz/replay.h"
