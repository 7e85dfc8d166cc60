/* tests/data/fuzz_h1/ replayed through the fuzz_h1 target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_h1.c"

#define REPLAY_TARGET "fuzz_h1"
#define REPLAY_EXTRA_DIR "tests/data/http/cases"
#define REPLAY_EXTRA_SUFFIX ".http"
#include "unit/fuzz/replay.h"
