/* tests/data/fuzz_json/ replayed through the fuzz_json target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_json.c"

#define REPLAY_TARGET "fuzz_json"
#include "unit/fuzz/replay.h"
