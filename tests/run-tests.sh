#!/bin/bash
# Runs every unit test binary given on the command line, then every integration script
# (tests/integration/*.sh, sorted), then the training smoke test and a bounded fuzz run.
# Each one runs even when an earlier one fails; the last line is "N passed, N failed".
# Environment: BUILD (build dir), PYTHON, SKIP (space-separated names to skip, for local use).
set -u
BUILD=${BUILD:-build}
export BUILD PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
passed=0 failed=0 failed_names=()

run_one() {   # name, command...
    local name=$1; shift
    case " ${SKIP:-} " in *" $name "*) echo "=== $name: skipped (SKIP)"; return;; esac
    echo "=== $name"
    local t0=$(date +%s%N)
    if timeout --foreground -k 10 ${TEST_TIMEOUT:-900} "$@"; then
        passed=$((passed + 1)); echo "=== $name: PASS ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
    else
        failed=$((failed + 1)); failed_names+=("$name"); echo "=== $name: FAIL"
    fi
}

for t in "$@"; do run_one "$(basename "$t")" "$t"; done
for s in tests/integration/*.sh; do
    [ -e "$s" ] && run_one "$(basename "$s" .sh)" bash "$s"
done
if [ -x tools/train/smoke_test.sh ]; then
    run_one train-smoke tools/train/smoke_test.sh
fi
# Fuzzers carry their own sanitizers; under `make asan` they would only repeat themselves.
if [ -z "${SAN:-}" ] && ls tests/fuzz/fuzz_*.c >/dev/null 2>&1; then
    run_one fuzz make --no-print-directory fuzz-check
fi
echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
