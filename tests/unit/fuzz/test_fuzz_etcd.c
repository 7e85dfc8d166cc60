/* tests/data/fuzz_etcd/ replayed through the fuzz_etcd target (see replay.h). */
#define FUZZ_ENTRY fuzz_entry
#include "fuzz/fuzz_etcd.c"

#define REPLAY_TARGET "fuzz_etcd"
#include "unit/fuzz/replay.h"
