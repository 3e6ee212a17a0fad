#!/bin/bash
# Socket clients cannot monopolise the event loop: while 64 connections send 500 `stats`
# each without reading, 62 connections ask for 190 stats a second, one client writes
# garbage lines and one blank lines as fast as the socket takes them, a well-behaved
# subscriber gets every label (consecutive seq, no "lost", every captured frame accounted
# for, no result dropped inside the daemon), the daemon's CPU stays far below a core while
# a client writes at full speed, and its RSS returns near the baseline once the clients
# leave. The loop's longest stall seen by the subscriber is printed (not a pass/fail gate).
source "$(dirname "$0")/daemon_common.bash"
FLOOD=$ROOT/tests/integration/socket_flood.py
FPS=30 MAX_CLIENTS=80 write_config "$T/d.yaml"
# Under ASan freed memory sits in the quarantine and the allocator keeps its pages: without
# these the RSS check would measure ASan, not the daemon.
if grep -q __asan_init "$BND" 2>/dev/null; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:allocator_release_to_os_interval_ms=100"
fi
start_daemon "$T/d.yaml"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$DPID/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$DPID/stat"; }   # utime + stime

"$PY" "$FLOOD" subscribe "$SOCK" "$T/sub.log" &
SUBPID=$!
sleep 1
# warm-up: the stats path and the allocator have seen a few clients and replies
for _ in 1 2 3; do "$CTL" stats >/dev/null || fail "stats"; done
sleep 1
RSS0=$(rss_kb)

# 1. 64 connections x 500 stats, never read
coproc UNREAD { "$PY" "$FLOOD" unread "$SOCK" 64 500; }
read -r -t 20 line <&"${UNREAD[0]}" || fail "unread flood did not start"
echo "$line"
sleep 2
kill -0 "$DPID" || fail "daemon died under the unread flood"
RSS_PEAK1=$(rss_kb)
echo >&"${UNREAD[1]}"
wait "$UNREAD_PID" || fail "unread flood client"

# 2. 62 connections at 190 stats/s each, reading the replies
out=$("$PY" "$FLOOD" steady "$SOCK" 62 190 4) || fail "steady flood: $out"
echo "$out"
RSS_PEAK2=$(rss_kb)

# 3. one client writing garbage, then one writing blank lines, at full speed
c0=$(cpu_ticks); t0=$(date +%s%N)
out=$("$PY" "$FLOOD" garbage "$SOCK" 3) || fail "garbage writer: $out"
echo "$out"
out=$("$PY" "$FLOOD" blank "$SOCK" 3) || fail "blank writer: $out"
echo "$out"
c1=$(cpu_ticks); t1=$(date +%s%N)
HZ=$(getconf CLK_TCK)
CPU_PCT=$(( (c1 - c0) * 100 * 1000000000 / HZ / (t1 - t0) ))
echo "daemon CPU while one client writes at full speed: ${CPU_PCT}% of a core"

sleep 2     # the clients are gone; let the daemon settle
RSS1=$(rss_kb)
echo "RSS: baseline ${RSS0} kB, unread flood ${RSS_PEAK1} kB, steady flood ${RSS_PEAK2} kB, after ${RSS1} kB"
STATS=$("$CTL" stats) || fail "stats after the floods"
touch "$T/sub.log.stop"
wait "$SUBPID" || fail "subscriber"

"$PY" - "$T/sub.log" "$STATS" "${FPS:-30}" <<'PY' || fail "subscriber's labels"
import json, sys
log, stats, fps = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
labels = []
for row in open(log):
    t, line = row.split(' ', 1)
    m = json.loads(line)
    assert 'lost' not in m, 'the subscriber lost messages: %s' % line[:200]
    if m['type'] == 'label':
        labels.append((float(t), m))
assert len(labels) > 30 * 10, 'only %d labels over the run' % len(labels)
seq = [m['seq'] for _, m in labels]
gaps = [(a, b) for a, b in zip(seq, seq[1:]) if b != a + 1]
assert not gaps, 'seq gaps: %s' % gaps[:5]
# every frame the source delivered is a label or counted in the next label's dropped_frames
frame = [round(m['pts_ns'] * fps / 1e9) for _, m in labels]
unexplained = [(labels[i][1]['seq'], frame[i - 1], frame[i], labels[i][1]['dropped_frames'])
               for i in range(1, len(labels))
               if frame[i] - frame[i - 1] - 1 != labels[i][1]['dropped_frames']]
assert not unexplained, 'frames missing without a count (seq, frame before, frame, dropped): %s' % unexplained[:5]
rd = stats['frames']['results_dropped']
assert rd == 0, 'results dropped inside the daemon: %d' % rd
from datetime import datetime
def wall(m):
    return datetime.strptime(m['time'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=__import__('datetime').timezone.utc).timestamp()
lag = max(t - wall(m) for t, m in labels)
gap = max(b[0] - a[0] for a, b in zip(labels, labels[1:]))
print('subscriber: %d labels, seq %d..%d without a gap, %d frames dropped at the source; '
      'longest capture-to-arrival %.0f ms, longest gap between labels %.0f ms'
      % (len(labels), seq[0], seq[-1], sum(m['dropped_frames'] for _, m in labels[1:]),
         lag * 1000, gap * 1000))
cl = stats['clients']
print('clients: read_paused %s, reply_paused %s, rate_limited %d' %
      (cl.get('read_paused'), cl.get('reply_paused'), cl['rate_limited']))
PY
ok "the subscriber got every label through the floods"

[ "$CPU_PCT" -lt 40 ] || fail "daemon used ${CPU_PCT}% of a core while one client wrote at full speed (limit 40%)"
ok "a client writing at full speed costs ${CPU_PCT}% of a core"
[ "$RSS1" -le $(( RSS0 * 110 / 100 )) ] || fail "RSS ${RSS1} kB after the floods, baseline ${RSS0} kB (limit +10%)"
ok "RSS back to ${RSS1} kB (baseline ${RSS0} kB)"
n=$(stat_field "s['clients']['read_paused'] >= 1 and s['clients']['reply_paused'] >= 1")
[ "$n" = True ] || fail "pauses not counted in stats: $(stat_field "s['clients']")"
stop_daemon
ok "clean stop in $STOP_MS ms"
