#!/bin/bash
# sd_notify protocol against a NOTIFY_SOCKET this test owns: READY=1 after the first frame,
# STATUS= with fps/latency/exit share, WATCHDOG=1 pings while inference progresses (and
# none while frames stall), RELOADING=1 + READY=1 around SIGHUP, STOPPING=1 on SIGTERM.
source "$(dirname "$0")/daemon_common.bash"
write_config "$T/d.yaml" "stats_interval_s: 1"

# listener: records "monotonic_seconds message" lines until killed
listen() {
    "$PY" - "$1" "$2" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], 'w', buffering=1) as out:
    while True:
        d = s.recv(4096).decode()
        for part in d.split('\n'):
            if part: out.write('%.3f %s\n' % (time.monotonic(), part))
PY
    LPID=$!
    for _ in $(seq 50); do [ -S "$1" ] && return; sleep 0.02; done
    fail "listener did not start"
}

listen "$T/notify" "$T/n.log"
NOTIFY_SOCKET=$T/notify WATCHDOG_USEC=1000000 start_daemon "$T/d.yaml"
sleep 2.5
kill -HUP "$DPID"; sleep 1
stop_daemon
sleep 0.2; kill $LPID
"$PY" - "$T/n.log" "$T/daemon.log" <<'PY' || { cat "$T/n.log"; fail "notify protocol"; }
import sys
ev = [(float(l.split(' ', 1)[0]), l.split(' ', 1)[1].strip()) for l in open(sys.argv[1])]
msgs = [m for _, m in ev]
assert msgs.count('READY=1') >= 2, msgs            # start + after reload
first_ready = msgs.index('READY=1')
assert 'first frame classified' in open(sys.argv[2]).read()
st = [m for m in msgs if m.startswith('STATUS=') and 'fps' in m]
assert st and 'exit share' in st[-1] and 'latency' in st[-1], st
assert any(float(m.split('=')[1].split()[0]) > 5 for m in st), st   # frames flowing
wd = [t for t, m in ev if m == 'WATCHDOG=1']
assert len(wd) >= 8, len(wd)
gaps = [b - a for a, b in zip(wd, wd[1:])]
assert max(gaps) < 0.9, gaps                       # well inside WATCHDOG_USEC=1 s
r = msgs.index('RELOADING=1')
assert 'READY=1' in msgs[r:], msgs[r:]
assert msgs[-1] == 'STOPPING=1' or 'STOPPING=1' in msgs[-3:], msgs[-3:]
print('notify: %d WATCHDOG pings (max gap %.2f s), %d STATUS, RELOADING/READY, STOPPING'
      % (len(wd), max(gaps), len(st)))
print('last', st[-1])
PY
ok "notify protocol with a healthy source"

# frames every 1.5 s: the watchdog is fed only right after progress, so pings pause
cat > "$T/slow.yaml" <<EOC
camera: slow
model: $MODEL
source:
  kind: pipeline
  pipeline: "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1 ! identity sleep-time=1500000"
publish:
  socket: $SOCK
  mode: 0666
EOC
rm -f "$T/notify"
listen "$T/notify" "$T/n2.log"
NOTIFY_SOCKET=$T/notify WATCHDOG_USEC=1000000 start_daemon "$T/slow.yaml"
sleep 4
stop_daemon
kill $LPID
"$PY" - "$T/n2.log" <<'PY' || { cat "$T/n2.log"; fail "watchdog with stalled inference"; }
import sys
ev = [(float(l.split(' ', 1)[0]), l.split(' ', 1)[1].strip()) for l in open(sys.argv[1])]
wd = [t for t, m in ev if m == 'WATCHDOG=1']
gaps = [b - a for a, b in zip(wd, wd[1:])]
assert gaps and max(gaps) > 0.9, gaps   # systemd would have killed a real hang here
print('stalled source: WATCHDOG pings pause (max gap %.2f s)' % max(gaps))
PY
ok "watchdog not fed while inference makes no progress"
