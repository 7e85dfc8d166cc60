/* tests/data/fuzz_service/ replayed through the fuzz_service target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_service.c"

#define REPLAY_TARGET "fuzz_service"
#include "unit/fuzz/replay.h"
