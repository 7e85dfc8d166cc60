/* tests/data/fuzz_ws/ replayed through the fuzz_ws target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_ws.c"

#define REPLAY_TARGET "fuzz_ws"
#include "unit/fuzz/replay.h"
