# Sourced by tests/integration/daemon_*.sh: a temp dir, a config written there, start/stop
# of basisnetd, and a Python helper for socket clients. Each test owns everything it uses.
set -euo pipefail
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BND=$ROOT/$BUILD/basisnetd
CTL=$ROOT/$BUILD/basisnetctl
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d /tmp/bnd-test.XXXXXX)
SOCK=$T/d.sock
export BASISNET_SOCKET=$SOCK
DPID=

fail() { echo "FAIL: $*" >&2; [ -f "$T/daemon.log" ] && tail -20 "$T/daemon.log" >&2; exit 1; }
ok() { echo "ok: $*"; }

cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then kill -KILL "$DPID" 2>/dev/null || true; fi
    rm -rf "$T"
}
trap cleanup EXIT

# Model: the trained one when it exists, else the random fixture (labels still flow).
# BN_TEST_MODEL overrides (e.g. an interim export while training runs).
MODEL=${BN_TEST_MODEL:-$ROOT/models/fmnist-basisnet.bnm}
[ -f "$MODEL" ] || MODEL=$ROOT/tests/fixtures/random-tiny.bnm

# write_config FILE [extra YAML appended]
write_config() {
    local f=$1; shift
    cat > "$f" <<EOC
camera: itest
model: $MODEL
log_level: info
source:
  kind: test
  pattern: ball
  width: 160
  height: 120
  fps: ${FPS:-30}
publish:
  socket: $SOCK
  mode: 0666
  max_clients: ${MAX_CLIENTS:-80}
  queue: ${QUEUE:-256}
  change_frames: 3
${1:-}
EOC
}

# start_daemon CONFIG [args...]: waits until the socket answers ping.
start_daemon() {
    local cfg=$1; shift
    "$BND" --config "$cfg" "$@" >"$T/daemon.out" 2>"$T/daemon.log" &
    DPID=$!
    for _ in $(seq 1 100); do
        "$CTL" --timeout 1 ping >/dev/null 2>&1 && return 0
        kill -0 "$DPID" 2>/dev/null || fail "daemon exited at start"
        sleep 0.05
    done
    fail "daemon did not answer within 5 s"
}

# stop_daemon [SIGNAL]: SIGTERM (or SIGNAL), sets STOP_MS, fails past 2 s or on a non-zero exit.
stop_daemon() {
    local t0=$(date +%s%N)
    kill -"${1:-TERM}" "$DPID"
    local rc=0
    wait "$DPID" || rc=$?
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    DPID=
    [ "$rc" -eq 0 ] || fail "daemon exit status $rc after SIGTERM"
    [ "$ms" -lt 2000 ] || fail "stop took $ms ms (limit 2000)"
    STOP_MS=$ms
}

stat_field() {   # stat_field PYTHON-EXPR-ON-s  (s = stats object)
    "$CTL" stats | "$PY" -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

# frames_advance SECONDS MESSAGE: fails with MESSAGE unless the frames published (classified,
# or reused by the gate) grow within SECONDS (the daemon still answers frames).
frames_advance() {
    local e="s['frames']['classified'] + s['frames']['gate_reused']" f0
    f0=$(stat_field "$e"); sleep "$1"
    [ "$(stat_field "$e")" -gt "$f0" ] || fail "$2"
}

# record_socket OUT: a raw subscriber in the background that writes everything the daemon
# sends on $SOCK to OUT until the daemon closes the connection; sets SUB to its pid.
record_socket() {
    "$PY" - "$SOCK" "$1" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
with open(sys.argv[2], 'wb', buffering=0) as out:
    while True:
        d = s.recv(65536)
        if not d: break
        out.write(d)
PY
    SUB=$!
}
