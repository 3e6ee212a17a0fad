#!/bin/bash
# The daemon's messages reach an MQTT broker (a private mosquitto on a free port): label,
# change and source payloads are the socket's JSON lines; stats appear on P/stats; the
# status topic says online, then offline after a clean stop; stats show the broker state.
source "$(dirname "$0")/daemon_common.bash"
command -v mosquitto >/dev/null && command -v mosquitto_sub >/dev/null || { echo "SKIP: no mosquitto"; exit 77; }
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" > "$T/mosq.conf"
mosquitto -c "$T/mosq.conf" >"$T/mosq.log" 2>&1 &
MPID=$!
trap 'kill $MPID 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 50); do "$PY" -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break; sleep 0.05; done

write_config "$T/d.yaml" "stats_interval_s: 1
mqtt:
  host: 127.0.0.1
  port: $PORT
  topic_prefix: test/cam
  publish_labels: true"
mosquitto_sub -h 127.0.0.1 -p "$PORT" -t 'test/cam/#' -v > "$T/sub.txt" 2>&1 &
SPID=$!
sleep 0.3
start_daemon "$T/d.yaml"
sleep 2.5
[ "$(stat_field "s['mqtt']['state']")" = connected ] || fail "mqtt state $(stat_field "s['mqtt']")"
"$CTL" stats --prometheus | grep -q '^basisnetd_mqtt_connected{camera="itest"} 1' || fail "prometheus mqtt"
stop_daemon
sleep 0.3
kill $SPID
"$PY" - "$T/sub.txt" <<'PY' || { head -5 "$T/sub.txt"; fail "mqtt messages"; }
import json, sys
topics = {}
for line in open(sys.argv[1]):
    t, _, payload = line.rstrip('\n').partition(' ')
    topics.setdefault(t, []).append(payload)
labels = [json.loads(p) for p in topics.get('test/cam/label', [])]
assert len(labels) > 20 and all(m['type'] == 'label' for m in labels), len(labels)
seq = [m['seq'] for m in labels]
assert seq == list(range(seq[0], seq[0] + len(seq))), 'label seq gaps over MQTT'
ch = [json.loads(p) for p in topics.get('test/cam/change', [])]
assert ch and ch[0]['type'] == 'change', ch
st = [json.loads(p) for p in topics.get('test/cam/stats', [])]
assert any(m.get('type') == 'stats' and m['stats']['frames']['classified'] > 0 for m in st), st[:1]
status = topics.get('test/cam/status', [])
assert status[:1] == ['online'] and status[-1] == 'offline', status
print('mqtt: %d labels (no gaps), %d change, %d stats, status %s' % (len(labels), len(ch), len(st), status))
PY
ok "messages on MQTT"
