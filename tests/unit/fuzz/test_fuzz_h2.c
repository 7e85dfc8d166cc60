/* tests/data/fuzz_h2/ replayed through the fuzz_h2 target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_h2.c"

#define REPLAY_TARGET "fuzz_h2"
#include "unit/fuzz/replay.h"
