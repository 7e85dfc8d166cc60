/* tests/data/fuzz_client/ replayed through the fuzz_client target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_client.c"

#define REPLAY_TARGET "fuzz_client"
#include "unit/fuzz/replay.h"
