/* tests/data/fuzz_conf/ replayed through the fuzz_conf target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_conf.c"

#define REPLAY_TARGET "fuzz_conf"
#include "unit/fuzz/replay.h"
