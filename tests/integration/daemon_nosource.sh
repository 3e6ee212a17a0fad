#!/bin/bash
# The camera is missing at start: the daemon still starts, serves the socket, tells systemd
# READY ("source lost"), keeps feeding the watchdog while it retries, says "lost" in hello and
# stats, and when a retry fails for another reason, stats say the latest one; a reload onto a
# working source brings frames and a "recovered" event to subscribers.
source "$(dirname "$0")/daemon_common.bash"
write_config "$T/d.yaml"
sed -i "s|^  kind: test|  kind: v4l2\n  device: $T/video-bn-missing|; s|^  retry_initial_ms.*||" "$T/d.yaml"
printf '  retry_initial_ms: 100\n  retry_max_ms: 400\n' > "$T/retry"
sed -i "/^  device:/r $T/retry" "$T/d.yaml"

"$PY" - "$T/notify" "$T/n.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], 'w', buffering=1) as out:
    while True:
        for part in s.recv(4096).decode().split('\n'):
            if part: out.write('%.3f %s\n' % (time.monotonic(), part))
PY
LPID=$!
trap 'kill $LPID 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 50); do [ -S "$T/notify" ] && break; sleep 0.02; done
NOTIFY_SOCKET=$T/notify WATCHDOG_USEC=1000000 start_daemon "$T/d.yaml"
grep -q "video-bn-missing" "$T/daemon.log" || fail "missing device not named in the log"

record_socket "$T/sub.jsonl"
sleep 2.5
[ "$(stat_field "s['source']['state']")" = lost ] || fail "stats source state"
[ "$(stat_field "s['frames']['classified']")" = 0 ] || fail "frames without a source?"
"$CTL" set budget-ms 20 >/dev/null || fail "set without a source"
ok "up without a camera: socket, stats, set"

touch "$T/video-bn-missing"   # a retry finds the path, but not a camera: another reason
for _ in $(seq 30); do
    [ "$(stat_field "'not a device node' in s['source']['message']")" = True ] && break; sleep 0.1
done
[ "$(stat_field "'not a device node' in s['source']['message']")" = True ] \
    || fail "stats source.message keeps the first reason: $(stat_field "s['source']['message']")"
ok "still lost for another reason: stats say the latest"

# the camera "appears": a reload onto a working source
write_config "$T/d.yaml"
"$CTL" reload >/dev/null || fail "reload onto a working source"
for _ in $(seq 50); do [ "$(stat_field "s['frames']['classified'] > 5")" = True ] && break; sleep 0.1; done
[ "$(stat_field "s['source']['state']")" = running ] || fail "source not running after reload"
stop_daemon
wait $SUB 2>/dev/null || true
kill $LPID 2>/dev/null || true

"$PY" - "$T/sub.jsonl" "$T/n.log" <<'PY' || fail "events"
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1], 'rb')]
assert ms[0]['type'] == 'hello' and ms[0]['source']['state'] == 'lost', ms[0]
src = [m['state'] for m in ms if m['type'] == 'source']
assert 'recovered' in src, src
assert any(m['type'] == 'label' for m in ms)
ev = [(float(l.split(' ', 1)[0]), l.split(' ', 1)[1].strip()) for l in open(sys.argv[2])]
ready = [t for t, m in ev if m == 'READY=1']
assert ready, 'no READY while the camera is missing'
wd = [t for t, m in ev if m == 'WATCHDOG=1' and t < ready[0] + 2.5]
gaps = [b - a for a, b in zip(wd, wd[1:])]
assert len(wd) >= 6 and max(gaps) < 0.9, (len(wd), gaps)
print('hello said lost, then %s; READY while lost; %d watchdog pings in the first 2.5 s, max gap %.2f s'
      % (src, len(wd), max(gaps)))
PY
ok "recovered after reload; watchdog fed during the retry back-off"
