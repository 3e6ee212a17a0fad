#!/bin/bash
# `make tsan`: the daemon's threaded unit tests and the integration tests that exercise
# subscribers, reload, `set`, MQTT and source loss, built with ThreadSanitizer (BUILD, default
# build-tsan). Every report goes to $BUILD/tsan-logs (one file per process); the run fails
# when a test fails or when any process wrote a report that tests/tsan.supp does not cover.
# The last lines give the counts. Not part of `make check` (ThreadSanitizer makes the daemon
# 5-15x slower; about 6 min on 2 cores).
set -u
BUILD=${BUILD:-build-tsan}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
LOGS=$BUILD/tsan-logs
rm -rf "$LOGS" && mkdir -p "$LOGS"
export TSAN_OPTIONS="ignore_noninstrumented_modules=1:suppressions=$ROOT/tests/tsan.supp:log_path=$ROOT/$LOGS/tsan:halt_on_error=0:second_deadlock_stack=1:history_size=4:print_suppressions=0"
export BUILD PYTHON=${PYTHON:-/usr/bin/python3} OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export FANOUT_FPS=${FANOUT_FPS:-25}  # daemon_fanout's source rate: the daemon is 5-15x slower
UNIT=${TSAN_UNIT:-test_daemon_infer test_daemon_picture test_daemon_event_store test_engine_pool test_engine_parity test_daemon_mqtt test_pipeline_capture test_pipeline_capture_errors}
INTEGRATION=${TSAN_INTEGRATION:-daemon_basic daemon_fanout daemon_reload daemon_reload_faults daemon_nosource daemon_source_file daemon_mqtt daemon_events}
passed=0 failed=0 failed_names=()
run_one() {   # name, command...
    local name=$1; shift
    echo "=== $name"
    local rc=0
    timeout --foreground -k 10 ${TEST_TIMEOUT:-900} "$@" || rc=$?
    if [ $rc -eq 0 ]; then passed=$((passed + 1)); echo "=== $name: PASS"
    else failed=$((failed + 1)); failed_names+=("$name"); echo "=== $name: FAIL (exit $rc)"; fi
}
for t in $UNIT; do run_one "$t" "$BUILD/tests/$t"; done
for s in $INTEGRATION; do run_one "$s" bash "tests/integration/$s.sh"; done
reports=$(cat "$LOGS"/tsan.* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer' || true)
echo
if [ "$reports" -gt 0 ]; then
    grep -h '^WARNING: ThreadSanitizer' "$LOGS"/tsan.* | sort | uniq -c
    echo "reports in: $(grep -l '^WARNING: ThreadSanitizer' "$LOGS"/tsan.* | tr '\n' ' ')"
fi
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "tsan: $passed passed, $failed failed, $reports unsuppressed reports"
[ "$failed" -eq 0 ] && [ "$reports" -eq 0 ]
