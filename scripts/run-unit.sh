#!/usr/bin/env bash
# Runs every unit-test binary under BUILD (default build) and prints cmocka's output.
# Exit status: number of failing binaries (capped), 0 when all pass.
set -u
build=${1:-build}
fail=0
for t in $(find "$build/tests/unit" -type f -name 'test_*' -perm -u+x 2>/dev/null | sort); do
    echo "== $t"
    if ! "$t"; then
        fail=$((fail + 1))
    fi
done
exit $((fail > 100 ? 100 : fail))
