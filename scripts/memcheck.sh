#!/usr/bin/env bash
# make memcheck: every unit-test binary of BUILD [build] under valgrind memcheck; any error or
# definite/indirect leak fails it. Prints each binary's verdict, then "N passed, N failed"
# (one per binary). Valgrind's own report for a failing binary is left in BUILD/memcheck/.
# The verdict is valgrind's (an error, a definite or indirect leak, or a crash); a cmocka
# assertion that fails only because the run is tens of times slower (a test bounded by a
# 100 ms timer) is printed as a note: the normal and sanitizer passes judge behaviour.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-${BUILD:-build}}
mkdir -p "$build/memcheck"
passed=0 failed=0
for src in $(find tests/unit -name 'test_*.c' | sort); do
    bin=$build/${src%.c}
    name=$(basename "$bin")
    if [ ! -x "$bin" ]; then
        echo "memcheck: FAILED: $bin did not build"
        failed=$((failed + 1))
        continue
    fi
    log=$build/memcheck/$name.log
    start=$(date +%s)
    # The TLS tests' OpenSSL keeps its one-time tables reachable: only definite and indirect
    # leaks count, and "still reachable" is not reported.
    MC_MEMCHECK=1 timeout 900 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$log" \
        "$bin" >"$log.out" 2>&1
    rc=$?
    if [ $rc -ne 99 ] && [ $rc -lt 124 ] && [ ! -s "$log" ] && grep -q '^\[==========\]' "$log.out"; then
        passed=$((passed + 1))
        echo "memcheck: ok $bin ($(($(date +%s) - start)) s)"
        [ $rc -eq 0 ] || echo "memcheck: note: $bin: a test failed under valgrind" \
            "(no memory error): $(grep -h '^\[  FAILED  \] test_' "$log.out" | tr -s ' ' | tr '\n' ' ')"
    else
        failed=$((failed + 1))
        echo "memcheck: FAILED: $bin ($(($(date +%s) - start)) s, see $log)"
        head -n 40 "$log"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
