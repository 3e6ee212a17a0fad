#!/bin/bash
# Runs every unit test binary given on the command line, then every integration script
# (tests/integration/*.sh, sorted), then the training smoke test and a bounded fuzz run.
# Each one runs even when an earlier one fails; the last line is
# "N passed, N failed, N skipped". A test that exits 77 was skipped (a prerequisite is
# missing); a skip fails the run unless the test is named in ALLOWED_SKIPS, so a test that
# must run in CI cannot pass there by skipping.
# Environment: BUILD (build dir), PYTHON, SKIP (space-separated names not to run, for local
# use; counted as skipped and allowed), ALLOWED_SKIPS (names that may exit 77 in this build,
# e.g. `make asan` allows capture_vm, which runs in the plain build only).
set -u
BUILD=${BUILD:-build}
export BUILD PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
passed=0 failed=0 skipped=0 failed_names=() skipped_names=()

run_one() {   # name, command...
    local name=$1; shift
    case " ${SKIP:-} " in *" $name "*)
        skipped=$((skipped + 1)); skipped_names+=("$name"); echo "=== $name: SKIPPED (SKIP)"; return;;
    esac
    echo "=== $name"
    local t0=$(date +%s%N) rc=0
    timeout --foreground -k 10 ${TEST_TIMEOUT:-900} "$@" || rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); echo "=== $name: PASS ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
    elif [ $rc -eq 77 ]; then
        skipped=$((skipped + 1)); skipped_names+=("$name")
        case " ${ALLOWED_SKIPS:-} " in
        *" $name "*) echo "=== $name: SKIPPED (allowed in this build)";;
        *) failed=$((failed + 1)); failed_names+=("$name")
           echo "=== $name: SKIPPED, which fails the run (not in ALLOWED_SKIPS)";;
        esac
    else
        failed=$((failed + 1)); failed_names+=("$name"); echo "=== $name: FAIL (exit $rc)"
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
[ ${#skipped_names[@]} -gt 0 ] && echo "skipped: ${skipped_names[*]}"
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
