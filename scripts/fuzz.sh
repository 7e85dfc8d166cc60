#!/usr/bin/env bash
# make fuzz: builds the libFuzzer targets of tests/fuzz with clang (ASan+UBSan, coverage) and
# runs each for FUZZ_SECONDS [30], seeded from the test data (tests/data/ws/cases for the
# WebSocket codec). Corpora grow in build-fuzz/corpus/<target>; a crash leaves its input in
# build-fuzz/crashes/ and fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
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
make --no-print-directory -j2 FUZZ=1 fuzz-bins || exit 1

out=build-fuzz
mkdir -p "$out/crashes"
# Seeds: the WebSocket data cases as raw client bytes; a few JSON shapes for the others.
mkdir -p "$out/corpus/fuzz_ws" "$out/corpus/fuzz_json" "$out/corpus/fuzz_service"
/usr/bin/python3 - "$out/corpus/fuzz_ws" <<'PY'
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
printf '{"id":1,"result":{"a":[1,2.5e3,"x\\u00e9"]},"error":null}' >"$out/corpus/fuzz_json/reply"
printf '{"service":"s","Method":"M.C","request":{"n":1}}' >"$out/corpus/fuzz_json/call"
printf '{"id":"go.micro.x","code":404,"detail":"d","status":"Not Found"}' >"$out/corpus/fuzz_json/err"
printf '{"Name":"foo","Nodes":[{"Id":"a","Address":"127.0.0.1","Port":9091,"Metadata":{"k":"v"}}]}' \
    >"$out/corpus/fuzz_service/register"

passed=0 failed=0
for bin in "$out"/tests/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    echo "== $name (${SECONDS_EACH}s)"
    if "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/crashes/$name-" "$out/corpus/$name" 2>"$out/$name.log"; then
        passed=$((passed + 1))
        tail -n 1 "$out/$name.log"
    else
        failed=$((failed + 1))
        tail -n 30 "$out/$name.log"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
