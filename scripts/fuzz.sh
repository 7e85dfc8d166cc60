#!/usr/bin/env bash
# make fuzz (and a step of make test): builds every libFuzzer target tests/fuzz/fuzz_*.c with
# clang (ASan+UBSan, coverage) and runs each for FUZZ_SECONDS [30], FUZZ_JOBS [2] at a time.
# Adding a target is one file: tests/fuzz/fuzz_NAME.c defining LLVMFuzzerTestOneInput (through
# FUZZ_ENTRY, so the replay unit test can include it), seeded from tests/data/fuzz_NAME/ when
# that folder exists; extra seeds for a target come from seed_extra below.
#
# Corpora grow in build-fuzz/corpus/<target>. A finding fails the run and leaves its input in
# build-fuzz/crashes/<target>-crash-*: fix the bug, then copy the input to
# tests/data/<target>/ (the unit pass replays every file there through the target:
# tests/unit/fuzz/test_fuzz_replay.c). Prints one line per target, then "N passed, N failed".
#
#   FUZZ_SECONDS=n  seconds per target [30]
#   FUZZ_JOBS=n     targets run at once [2]
#   FUZZ_ONLY=name  run one target (fuzz_h1)
#
# Targets: fuzz_h1 (HTTP/1 server + API), fuzz_h2 (HTTP/2 frames after the preface + API, gRPC),
# fuzz_client (HTTP/1 responses), fuzz_h2_client (HTTP/2 node frames), fuzz_ws, fuzz_json,
# fuzz_service, fuzz_form, fuzz_etcd, fuzz_conf. The HTTP/2 seeds are built with python3-h2 by
# tests/fuzz/seeds_h2.py and seeds_h2_client.py.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
JOBS=${FUZZ_JOBS:-2}
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL SANITIZE BUILD
missing=()
for p in clang libclang-rt-14-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
out=build-fuzz
mkdir -p "$out"
if ! make --no-print-directory -j"$JOBS" FUZZ=1 fuzz-bins >"$out/make.log" 2>&1; then
    tail -n 40 "$out/make.log"
    echo "fuzz: FAILED: the targets did not build"
    echo "0 passed, 1 failed"
    exit 1
fi
mkdir -p "$out/crashes"

# Seeds beyond tests/data/<target>/ (data kept in another shape for other tests).
seed_extra() {
    local name=$1 dir=$2
    case $name in
    fuzz_h1) cp tests/data/http/cases/*.http "$dir"/ 2>/dev/null ;;
    fuzz_ws)
        # The WebSocket data cases as the raw client bytes they describe.
        /usr/bin/python3 - "$dir" <<'PY'
import glob, os, sys
for path in glob.glob("tests/data/ws/cases/*.case"):
    data = bytearray()
    for line in open(path):
        if line.startswith("in "):
            data += bytes.fromhex(line[3:].strip())
        elif line.startswith("rep "):
            _, count, pattern = line.split()
            data += bytes.fromhex(pattern) * int(count)
    if len(data) <= 8192:
        open(os.path.join(sys.argv[1], os.path.basename(path)), "wb").write(data)
PY
        ;;
    esac
}

# run_one NAME: prints one verdict line; the exit status is the verdict.
run_one() {
    local name=$1 bin=$out/tests/fuzz/$1 corpus=$out/corpus/$1 log=$out/$1.log
    mkdir -p "$corpus"
    [ -d "tests/data/$name" ] && cp tests/data/"$name"/* "$corpus"/ 2>/dev/null
    seed_extra "$name" "$corpus"
    if "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/crashes/$name-" "$corpus" >"$log" 2>&1; then
        echo "fuzz: ok $name ($(sed -n 's/^stat::number_of_executed_units: *//p' "$log") runs," \
            "$(ls "$corpus" | wc -l) in corpus)"
        return 0
    fi
    echo "fuzz: FAILED: $name (input in $out/crashes/$name-*; log $log)"
    grep -E 'ERROR|Assertion|SUMMARY|runtime error' "$log" | head -n 5
    return 1
}

names=()
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    [ -n "${FUZZ_ONLY:-}" ] && [ "$name" != "$FUZZ_ONLY" ] && continue
    names+=("$name")
done

# JOBS targets at a time; each writes its verdict to a file, read in order at the end.
rm -f "$out"/*.verdict
running=0
for name in "${names[@]}"; do
    (run_one "$name" >"$out/$name.verdict.tmp" && echo ok >>"$out/$name.verdict.tmp"
     mv "$out/$name.verdict.tmp" "$out/$name.verdict") &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

passed=0 failed=0
for name in "${names[@]}"; do
    if [ -f "$out/$name.verdict" ] && tail -n 1 "$out/$name.verdict" | grep -qx ok; then
        passed=$((passed + 1))
        sed '$d' "$out/$name.verdict"
    else
        failed=$((failed + 1))
        cat "$out/$name.verdict" 2>/dev/null || echo "fuzz: FAILED: $name (no verdict)"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
