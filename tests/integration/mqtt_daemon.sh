#!/bin/bash
# basisnetd publishing to a real mosquitto broker (a loopback port of its own, never 1883):
# the same label sequence on MQTT as on the socket at QoS 1; the broker stopped for 10 s
# and restarted (the daemon keeps classifying and serving its socket, reconnects, publishes
# its status again and reports the dropped count within the queue bound); wrong
# credentials and an unknown host (errors in the log and in stats, the socket keeps
# working); a missing TLS CA file (a clear error naming the key).
source "$(dirname "$0")/daemon_common.bash"

command -v mosquitto_sub >/dev/null || fail "mosquitto_sub missing (apt-get install mosquitto-clients)"

BPID= SUBPID=
cleanup_mqtt() {
    [ -n "$SUBPID" ] && kill "$SUBPID" 2>/dev/null || true
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null || true
    cleanup
}
trap cleanup_mqtt EXIT

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
[ "$PORT" != 1883 ] || fail "free port 1883"

start_broker() {   # start_broker [extra config lines]
    cat > "$T/broker.conf" <<EOC
listener $PORT 127.0.0.1
persistence true
persistence_location $T/
user $(id -un)
${1:-allow_anonymous true}
EOC
    /usr/sbin/mosquitto -c "$T/broker.conf" >>"$T/broker.log" 2>&1 &
    BPID=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
        sleep 0.05
    done
    fail "broker did not listen on $PORT"
}
stop_broker() { kill -TERM "$BPID"; wait "$BPID" 2>/dev/null || true; BPID=; }

# labels_from_socket SECONDS: "seq label" lines read from the daemon's socket
labels_from_socket() {
    "$PY" - "$SOCK" "$1" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
f = s.makefile('rb'); end = time.time() + float(sys.argv[2])
while time.time() < end:
    m = json.loads(f.readline())
    if m['type'] == 'label':
        print(m['seq'], m['label'])
PY
}

QUEUE=50
MQTT_YAML="mqtt:
  host: 127.0.0.1
  port: $PORT
  qos: 1
  queue: $QUEUE
  keepalive: 5
  publish_labels: true"

# ---- 1. same labels on MQTT as on the socket ------------------------------------------
start_broker
# persistent session (-c, fixed id): the broker keeps this subscription across its restart
stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$PORT" -c -i bn-itest-sub -q 1 -v -t 'basisnet/itest/#' \
    > "$T/mqtt.txt" 2>"$T/sub.err" &
SUBPID=$!
# the daemon starts only once the subscription is live: a probe published on the subscribed
# tree has come back (a fixed sleep lost the first labels on a slow machine)
for _ in $(seq 50); do
    mosquitto_pub -h 127.0.0.1 -p "$PORT" -q 1 -t basisnet/itest/probe -m probe 2>/dev/null || true
    grep -q '^basisnet/itest/probe probe$' "$T/mqtt.txt" && break
    sleep 0.1
done
grep -q '^basisnet/itest/probe probe$' "$T/mqtt.txt" || fail "subscriber not subscribed after 5 s: $(cat "$T/sub.err")"
write_config "$T/d.yaml" "$MQTT_YAML"
start_daemon "$T/d.yaml"
labels_from_socket 3 > "$T/socket1.txt"
[ "$(wc -l < "$T/socket1.txt")" -ge 30 ] || fail "too few labels on the socket"
sleep 0.5
"$PY" - "$T/mqtt.txt" "$T/socket1.txt" <<'PY' || fail "MQTT labels differ from the socket's"
import json, sys
mq = {}
order = []
for line in open(sys.argv[1]):
    topic, _, payload = line.rstrip('\n').partition(' ')
    if topic == 'basisnet/itest/label':
        m = json.loads(payload)
        assert m['type'] == 'label', m
        order.append(m['seq']); mq[m['seq']] = m['label']
assert order == sorted(order) and len(order) == len(set(order)), "MQTT labels out of order or repeated"
sock = [l.split(' ', 1) for l in open(sys.argv[2]).read().splitlines()]
for seq, label in sock:
    assert int(seq) in mq, f"seq {seq} on the socket, not on MQTT"
    assert mq[int(seq)] == label, (seq, label, mq[int(seq)])
print(f"{len(sock)} socket labels all on MQTT, same labels, {len(order)} MQTT labels in order")
PY
grep -q '^basisnet/itest/status online$' "$T/mqtt.txt" || fail "no retained status online"
ok "QoS 1: the socket's label sequence arrives on MQTT, in order"

# ---- 2. broker away for 10 s ------------------------------------------------------------
stop_broker
t0=$(date +%s)
labels_from_socket 2 > "$T/socket2.txt"
[ "$(wc -l < "$T/socket2.txt")" -ge 20 ] || fail "daemon stopped classifying without its broker"
"$CTL" ping >/dev/null || fail "socket not served while the broker is away"
"$CTL" stats > "$T/stats_down.json" || fail "stats while the broker is away"
left=$(( 10 - ($(date +%s) - t0) )); [ "$left" -gt 0 ] && sleep "$left"
start_broker
for _ in $(seq 200); do grep -q '"type":"broker"' "$T/mqtt.txt" && break; sleep 0.1; done
grep -q '"type":"broker"' "$T/mqtt.txt" || fail "no broker report after the restart"
sleep 1
"$PY" - "$T/mqtt.txt" "-" "$QUEUE" <<'PY' || { grep -n -B4 -A4 '"type":"broker"' "$T/mqtt.txt" | cut -c1-160 >&2; fail "queue/drop report after the restart"; }
import json, sys
queue = int(sys.argv[3])
lines = [l.rstrip('\n').partition(' ') for l in open(sys.argv[1])]
i = next(k for k, (t, _, p) in enumerate(lines) if p.startswith('{"type":"broker"'))
report = json.loads(lines[i][2])
# the last label delivered before the outage (the daemon kept publishing until the stop)
last_before = max(json.loads(p)['seq'] for t, _, p in lines[:i] if t.endswith('/label'))
after = [json.loads(p)['seq'] for t, _, p in lines[i + 1:] if t.endswith('/label')]
assert after, "no labels after the reconnect"
gap = after[0] - last_before - 1          # labels never delivered
assert report['dropped'] > 0 and report['state'] == 'connected', report
assert gap <= report['dropped'], (gap, report)
assert after == sorted(after), "labels out of order after the reconnect"
# labels captured while the broker was away (0.2 s before the report or earlier) and
# delivered after it came from the queue: at most `queue` of them
import datetime as dt
ts = lambda s: dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
t_report = ts(report['time'])
queued = [json.loads(p) for t, _, p in lines[i + 1:] if t.endswith('/label')]
queued = [m['seq'] for m in queued if ts(m['time']) < t_report - 0.2]
assert 0 < len(queued) <= queue, (len(queued), queue)
print(f"dropped {report['dropped']} (label gap {gap}), then {len(queued)} queued labels "
      f"(bound {queue}) from seq {after[0]}, in order")
PY
[ -n "${MQTT_TEST_DEBUG:-}" ] && grep -n -B4 -A4 '"type":"broker"' "$T/mqtt.txt" | cut -c1-160 >&2
[ "$(grep -c '^basisnet/itest/status online$' "$T/mqtt.txt")" -ge 2 ] || fail "status online not republished"
"$CTL" ping >/dev/null || fail "daemon gone after the broker came back"
ok "broker stopped 10 s: kept classifying and serving, reconnected, reported drops"
stop_daemon
kill "$SUBPID" 2>/dev/null || true; SUBPID=
stop_broker

# ---- 3. wrong credentials ---------------------------------------------------------------
mosquitto_passwd -b -c "$T/users" itest right-secret >/dev/null 2>&1
chmod 644 "$T/users"
start_broker "allow_anonymous false
password_file $T/users"
printf 'wrong-secret\n' > "$T/pw"; chmod 600 "$T/pw"
write_config "$T/cred.yaml" "$MQTT_YAML
  username: itest
  password_file: $T/pw"
start_daemon "$T/cred.yaml"
sleep 2
"$CTL" ping >/dev/null || fail "socket not served with wrong credentials"
grep -q "not authorised" "$T/daemon.log" || fail "refusal not logged"
[ "$(grep -c "not authorised" "$T/daemon.log")" -eq 1 ] || fail "refusal logged more than once"
"$CTL" stats | grep -q "not authorised" || fail "refusal not in stats"
grep -q "secret" "$T/daemon.log" && fail "password in the log"
stop_daemon
stop_broker
ok "wrong credentials: logged once, in stats, socket served"

# ---- 4. unknown host --------------------------------------------------------------------
write_config "$T/host.yaml" "mqtt:
  host: no-such-host.invalid
  port: $PORT"
start_daemon "$T/host.yaml"
sleep 1.5
"$CTL" ping >/dev/null || fail "socket not served with an unknown broker host"
grep -q "cannot resolve host 'no-such-host.invalid'" "$T/daemon.log" || fail "unknown host not logged"
"$CTL" stats | grep -q "cannot resolve host" || fail "unknown host not in stats"
stop_daemon
ok "unknown host: logged, in stats, socket served"

# ---- 5. TLS CA file missing: refused at start, naming the key and the path ---------------
write_config "$T/tls.yaml" "$MQTT_YAML
  ca_file: $T/missing-ca.pem"
rc=0; out=$("$BND" --check-config "$T/tls.yaml" 2>&1) || rc=$?
if [ $rc -eq 0 ]; then   # a config check that does not open files: the start must refuse
    rc=0; out=$(timeout 10 "$BND" --config "$T/tls.yaml" 2>&1) || rc=$?
fi
[ $rc -ne 0 ] || fail "missing CA file accepted"
echo "$out" | grep -q "mqtt.ca_file" && echo "$out" | grep -q "missing-ca.pem" \
    || fail "missing CA error does not name the key and path: $out"
ok "missing TLS CA file: clear error ($(echo "$out" | grep -m1 missing-ca.pem))"
