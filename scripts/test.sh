#!/usr/bin/env bash
# What `make test` runs: build, every unit test, the integration suite; then the same again
# under ASan+UBSan; then the unit binaries under valgrind memcheck (one pass per binary) and the
# fuzz smoke (every libFuzzer target FUZZ_SECONDS [30], two at a time: one pass per target),
# while the integration tests marked long_wait run against both builds in the background.
# Ends with exactly one line "N passed, N failed" (totals over every step; a step that does not
# build counts as one failure) and exits non-zero if anything failed.
#
#   bash scripts/test.sh            both passes (build/, then build-san/)
#   SANITIZE=1 bash scripts/test.sh only the sanitizer pass (what `make SANITIZE=1 test` does)
#   BUILD=dir                       build folder of the pass that runs (defaults as the Makefile)
#   SAN_BUILD=dir                   build folder of the sanitizer pass when both run
#   JOBS=n                          make parallelism (default 2)
#   RUN_MEMCHECK=0 / RUN_FUZZ=0     skip the memcheck / fuzz step (both run by default)
set -uo pipefail
cd "$(dirname "$0")/.."

san_only=0
[ "${SANITIZE:-0}" = 1 ] && san_only=1
normal_build=build
san_build=${SAN_BUILD:-build-san}
if [ -n "${BUILD:-}" ]; then
    if [ $san_only = 1 ]; then san_build=$BUILD; else normal_build=$BUILD; fi
fi
# Called from make, its command-line variables arrive in MAKEFLAGS and would override the
# explicit SANITIZE=/BUILD= given to each make below.
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL SANITIZE BUILD
JOBS=${JOBS:-2}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

fail_step() {
    echo "test.sh: FAILED: $*"
    failed=$((failed + 1))
}

# run_counted LABEL COMMAND...: a step whose output ends with "N passed, N failed".
run_counted() {
    local label=$1 out=$tmp/counted.out p f
    shift
    echo "== $label"
    "$@" 2>&1 | tee "$out"
    read -r p f < <(sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$out" | tail -n 1)
    if [ -z "${p:-}" ]; then
        fail_step "$label printed no summary"
        return
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

# Sums every "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" line of a cmocka output.
cmocka_count() {
    sed -n "s/^\[  $1  \] \([0-9][0-9]*\) test(s).*/\1/p" "$2" | awk '{s += $1} END {print s + 0}'
}

# run_units BUILD SANITIZE: builds every tests/unit/**/test_*.c (keeping going past one that
# does not compile) and runs each binary; a binary that crashes, reports a sanitizer error or
# prints no cmocka summary counts as one failure.
run_units() {
    local build=$1 san=$2 src bin out rc p f
    echo "== unit tests ($build)"
    # Binaries left from an earlier build must not pass for ones that no longer compile.
    for src in $(find tests/unit -name 'test_*.c' 2>/dev/null | sort); do
        rm -f "$build/${src%.c}"
    done
    make -k -j"$JOBS" --no-print-directory SANITIZE="$san" BUILD="$build" unit-bins || true
    for src in $(find tests/unit -name 'test_*.c' 2>/dev/null | sort); do
        bin=$build/${src%.c}
        if [ ! -x "$bin" ]; then
            fail_step "$bin did not build"
            continue
        fi
        echo "-- $bin"
        out=$tmp/unit.out
        timeout 300 "$bin" >"$out" 2>&1
        rc=$?
        cat "$out"
        p=$(cmocka_count PASSED "$out")
        f=$(cmocka_count FAILED "$out")
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$f" -eq 0 ]; then
            if [ $rc -ne 0 ]; then
                fail_step "$bin exited with status $rc"
            elif ! grep -q '^\[==========\]' "$out"; then
                fail_step "$bin printed no cmocka summary"
            elif grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$out"; then
                fail_step "$bin: sanitizer report"
            fi
        fi
    done
}

# count_junit FILE: "passed failed" of a pytest JUnit XML (a test that fails and also errors
# in teardown counts once).
count_junit() {
    /usr/bin/python3 - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
p = f = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        f += 1
    elif "skipped" not in tags:
        p += 1
print(p, f)
EOF
}

# Tests marked long_wait (tests/integration/conftest.py) wait out a fixed bound of 10 s or more
# with little CPU. When both passes run, each pass's foreground suite leaves them out and they
# run in the background for both builds at once, beside memcheck and the fuzz smoke.
if [ $san_only = 0 ]; then
    FOREGROUND_ARGS=(-m "not long_wait")
else
    FOREGROUND_ARGS=()
fi

# count_report JUNIT LABEL STATUS: adds a pytest run's JUnit counts to the totals.
count_report() {
    local junit=$1 label=$2 rc=$3 p f
    if [ ! -s "$junit" ]; then
        fail_step "integration ($label): pytest wrote no report (status $rc)"
        return
    fi
    read -r p f < <(count_junit "$junit")
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -eq 0 ] && [ "$rc" -ne 0 ]; then
        fail_step "integration ($label): pytest exited with status $rc"
    fi
}

# run_integration BINARY LABEL [PYTEST ARGS]: the pytest suite against BINARY, counted from
# its JUnit XML.
run_integration() {
    local bin=$1 label=$2 rc
    shift 2
    echo "== integration tests ($bin)"
    MICRO_BIN=$PWD/$bin timeout 1200 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
        --junitxml="$tmp/junit-$label.xml" "$@" tests/integration
    rc=$?
    count_report "$tmp/junit-$label.xml" "$label" $rc
}

# start_long_waits BINARY LABEL: the long_wait tests against BINARY in the background; their
# output waits in $tmp until finish_long_waits prints and counts it.
background_pids=()
background_labels=()
start_long_waits() {
    local bin=$1 label=$2
    echo "== long_wait tests ($bin, in the background)"
    (
        MICRO_BIN=$PWD/$bin timeout 900 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
            --junitxml="$tmp/junit-$label.xml" -m long_wait tests/integration \
            >"$tmp/$label.out" 2>&1
        echo $? >"$tmp/$label.rc"
    ) &
    background_pids+=($!)
    background_labels+=("$label")
}

finish_long_waits() {
    local i label
    for i in "${!background_pids[@]}"; do
        wait "${background_pids[$i]}"
        label=${background_labels[$i]}
        echo "== long_wait tests ($label, result)"
        cat "$tmp/$label.out"
        count_report "$tmp/junit-$label.xml" "$label" "$(cat "$tmp/$label.rc" 2>/dev/null || echo 1)"
    done
}

# run_pass BUILD SANITIZE LABEL
run_pass() {
    local build=$1 san=$2 label=$3
    echo "== build ($label: make SANITIZE=$san BUILD=$build)"
    if make -j"$JOBS" --no-print-directory SANITIZE="$san" BUILD="$build" all; then
        touch "$tmp/built-$label" # its long_wait tests may run: the binary is this tree's
        run_units "$build" "$san"
        run_integration "$build/micro" "$label" "${FOREGROUND_ARGS[@]}"
    else
        fail_step "$label build"
        # Unit tests need only the library; run those that still build.
        run_units "$build" "$san"
    fi
}

# node's `ws` client for the integration tests, from the npm registry (pinned by the lock file).
if [ ! -d tests/integration/node/node_modules/ws ]; then
    echo "== npm ci (tests/integration/node)"
    npm ci --prefix tests/integration/node --no-audit --no-fund || fail_step "npm ci"
fi

if [ $san_only = 0 ]; then
    run_pass "$normal_build" 0 normal
fi
# The fuzz targets build (clang, one job) while the sanitizer pass runs: its integration tests
# mostly wait on sockets and timers, and the fuzz smoke then starts at once.
if [ "${RUN_FUZZ:-1}" != 0 ]; then
    mkdir -p build-fuzz
    make --no-print-directory -j1 FUZZ=1 fuzz-bins >build-fuzz/make-early.log 2>&1 &
    fuzz_build_pid=$!
fi
(
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
    export UBSAN_OPTIONS=print_stacktrace=1
    run_pass "$san_build" 1 sanitize
    echo "$passed $failed" >"$tmp/san-counts"
)
if [ -s "$tmp/san-counts" ]; then
    read -r passed failed <"$tmp/san-counts"
else
    fail_step "sanitizer pass did not finish"
fi

if [ $san_only = 0 ]; then
    if [ -e "$tmp/built-normal" ]; then
        start_long_waits "$normal_build/micro" long-normal
    fi
    if [ -e "$tmp/built-sanitize" ]; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
            start_long_waits "$san_build/micro" long-sanitize
    fi
fi
# valgrind over the normal build's unit binaries (about 2 minutes on two cores).
if [ $san_only = 0 ] && [ "${RUN_MEMCHECK:-1}" != 0 ]; then
    run_counted "memcheck ($normal_build)" bash scripts/memcheck.sh "$normal_build"
fi
# The fuzz smoke: each target 30 s under ASan+UBSan, two at a time (about 3 minutes). A failed
# early build is left to fuzz.sh, which builds again and reports it.
if [ "${RUN_FUZZ:-1}" != 0 ]; then
    wait "$fuzz_build_pid" || true
    run_counted "fuzz smoke (${FUZZ_SECONDS:-30} s per target)" env FUZZ_SECONDS="${FUZZ_SECONDS:-30}" \
        bash scripts/fuzz.sh
fi
finish_long_waits

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
