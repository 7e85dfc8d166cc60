/* tests/data/fuzz_form/ replayed through the fuzz_form target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_form.c"

#define REPLAY_TARGET "fuzz_form"
#include "unit/fuzz/replay.h"
