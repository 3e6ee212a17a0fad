#!/bin/bash
# RTSP source against a real RTSP server (gst-rtsp-server, tests/integration/rtsp_server.py)
# on a loopback port: the server is absent at start (the daemon waits and connects when it
# appears), killed mid-stream (source lost) and restarted (source recovered); H.264 over TCP
# and MJPEG over UDP; credentials from the URL and from a file never appear in the log, in
# hello, stats or events; wrong credentials and a host that does not resolve give clear errors.
source "$(dirname "$0")/daemon_common.bash"
SRV="$PY $ROOT/tests/integration/rtsp_server.py"
PW='s3cr:t%pw'                          # ':' and '%' must survive the URL and the file
PW_URL='s3cr%3At%25pw'
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RPID=
stop_server() { if [ -n "$RPID" ]; then kill "$RPID" 2>/dev/null || true; wait "$RPID" 2>/dev/null || true; RPID=; fi; }
trap 'stop_server; cleanup' EXIT
# start_server [args]: returns once it listens
start_server() {
    $SRV --port "$PORT" "$@" >"$T/srv.out" 2>"$T/srv.log" &
    RPID=$!
    for _ in $(seq 100); do grep -q '^ready' "$T/srv.out" 2>/dev/null && return 0; sleep 0.05; done
    cat "$T/srv.log" >&2; fail "RTSP server did not start"
}
# rtsp_config URL [transport] [extra source lines]
rtsp_config() {
    write_config "$T/d.yaml"
    sed -i "s|^  kind: test|  kind: rtsp\n  url: $1\n  transport: ${2:-tcp}\n  latency_ms: 100${3:-}|; /^  pattern:/d" "$T/d.yaml"
}
# wait_for PYTHON-EXPR-ON-s [tries of 0.1 s]
wait_for() {
    for _ in $(seq "${2:-150}"); do [ "$(stat_field "$1")" = True ] && return 0; sleep 0.1; done
    return 1
}
no_secret() {   # no_secret FILE...: the password appears nowhere
    for f in "$@"; do
        ! grep -a -q -e 's3cr' "$f" || fail "password printed in $(basename "$f")"
    done
}

# 1. H.264 over TCP, credentials in the URL; the server appears after the daemon started.
rtsp_config "rtsp://cam:$PW_URL@127.0.0.1:$PORT/cam" tcp
start_daemon "$T/d.yaml"
record_socket "$T/sub.jsonl"
wait_for "s['source']['state'] == 'lost'" || fail "no server: source not lost"
grep -q 'cannot connect to the RTSP server' "$T/daemon.log" || fail "no clear connect error"
start_server --user cam --password "$PW"
wait_for "s['source']['state'] == 'running' and s['frames']['classified'] > 5" \
    || fail "did not connect when the server appeared"
ok "server absent at start: waited, connected when it appeared (H.264/TCP)"

# 2. The server dies mid-stream and comes back on the same port.
kill -KILL "$RPID"; wait "$RPID" 2>/dev/null || true; RPID=
wait_for "s['source']['state'] == 'lost'" || fail "server killed: source not lost"
start_server --user cam --password "$PW"
T0=$(date +%s%N)
wait_for "s['source']['state'] == 'running'" 200 || fail "server back: not recovered"
RECOVER_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
C0=$(stat_field "s['frames']['classified']")
wait_for "s['frames']['classified'] > $C0 + 5" || fail "no frames after recovery"
"$CTL" stats > "$T/stats.json"
stop_daemon
wait "$SUB" 2>/dev/null || true
"$PY" - "$T/sub.jsonl" <<'PY' || fail "events"
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1], 'rb')]
assert ms[0]['type'] == 'hello' and ms[0]['source']['state'] == 'lost', ms[0]
src = [m['state'] for m in ms if m['type'] == 'source']
assert src[:1] == ['recovered'] and 'lost' in src[1:] and src[-1] == 'recovered', src
lost = [m for m in ms if m['type'] == 'source' and m['state'] == 'lost']
assert all('RTSP server' in m['message'] for m in lost), lost
assert any(m['type'] == 'label' for m in ms)
print('source events:', src)
PY
# Recovery is bounded by the back-off cap (retry_max_ms, 1000 ms by default for rtsp) plus
# the time to the next keyframe; 10 s is a generous bound that a back-off without cap (or no
# retry) would miss, not a speed assertion.
[ "$RECOVER_MS" -lt 10000 ] || fail "recovered $RECOVER_MS ms after the server returned"
no_secret "$T/daemon.log" "$T/sub.jsonl" "$T/stats.json"
grep -q 'rtsp://\*\*\*@127.0.0.1' "$T/stats.json" || fail "stats do not show the masked URL"
ok "killed mid-stream: lost; restarted: recovered $RECOVER_MS ms after its return; no password printed"
stop_server

# 3. MJPEG over UDP, credentials from a file.
printf 'cam:%s\n' "$PW" > "$T/cred"
chmod 600 "$T/cred"
start_server --codec mjpeg --user cam --password "$PW"
rtsp_config "rtsp://127.0.0.1:$PORT/cam" udp "\n  credentials_file: $T/cred"
start_daemon "$T/d.yaml"
wait_for "s['source']['state'] == 'running' and s['frames']['classified'] > 5" \
    || fail "MJPEG over UDP with a credentials file: no frames"
stop_daemon
no_secret "$T/daemon.log"
ok "MJPEG over UDP, credentials from a file"

# 4. Wrong credentials: a clear error at start, and no password in it.
printf 'cam:wrong-s3cr\n' > "$T/cred"
rtsp_config "rtsp://127.0.0.1:$PORT/cam" tcp "\n  credentials_file: $T/cred"
rc=0
timeout 20 "$BND" --config "$T/d.yaml" >"$T/daemon.out" 2>"$T/daemon.log" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "wrong credentials: exit status $rc"
grep -q 'refused the credentials (401 Unauthorized)' "$T/daemon.log" || fail "wrong credentials: unclear error"
no_secret "$T/daemon.log"
ok "wrong credentials: exit $rc, $(grep -o 'refused the credentials[^:]*' "$T/daemon.log" | head -1)"
stop_server

# 5. A host whose name does not resolve (.invalid never does, RFC 6761): waited for like a
#    camera that is down, with a message that says so.
rtsp_config "rtsp://camera.invalid:$PORT/cam" tcp
start_daemon "$T/d.yaml"
wait_for "s['source']['state'] == 'lost'" || fail "unresolvable host: not lost"
stat_field "s['source']['message']" | grep -q 'cannot connect to the RTSP server' \
    || fail "unresolvable host: unclear message: $(stat_field "s['source']['message']")"
stop_daemon
ok "unresolvable host: $(grep -o 'cannot connect[^;]*' "$T/daemon.log" | head -1)"
