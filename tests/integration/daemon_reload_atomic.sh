#!/bin/bash
# Reload is all or nothing: a new config whose capture cannot open (a pipeline with an
# unknown element) also asks for another socket mode and another MQTT broker port. The
# reload must be rejected with nothing of it applied: socket mode, MQTT connection (still to
# the first broker, no reconnect), camera name and labels flowing as before.
source "$(dirname "$0")/daemon_common.bash"
command -v /usr/sbin/mosquitto >/dev/null || fail "mosquitto missing (tools/install-deps.sh)"

BPID=
cleanup_all() {
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null || true
    cleanup
}
trap cleanup_all EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
PORT2=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" > "$T/broker.conf"
/usr/sbin/mosquitto -c "$T/broker.conf" >"$T/broker.log" 2>&1 &
BPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done

mqtt_yaml() { printf 'mqtt:\n  host: 127.0.0.1\n  port: %s\n  keepalive: 5\n' "$1"; }
write_config "$T/d.yaml" "$(mqtt_yaml "$PORT")"
start_daemon "$T/d.yaml"
for _ in $(seq 100); do [ "$(stat_field "s['mqtt']['connected']")" = True ] && break; sleep 0.05; done
[ "$(stat_field "s['mqtt']['connected']")" = True ] || fail "not connected to the broker"
mode0=$(stat -c %a "$SOCK")
connects0=$(stat_field "s['mqtt']['connects']")

# The rejected config: other camera, mode, broker port, and a source that cannot be built.
write_config "$T/d.yaml" "$(mqtt_yaml "$PORT2")"
sed -i 's/^camera: itest/camera: other/; s/mode: 0666/mode: 0600/; s/^  kind: test/  kind: pipeline\n  pipeline: "no_such_element_xyz"/' "$T/d.yaml"
rc=0; "$CTL" reload 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "reload with a bad source was not rejected (rc $rc)"
grep -q 'no_such_element_xyz' "$T/err" || fail "error does not name the pipeline: $(cat "$T/err")"
[ "$(stat -c %a "$SOCK")" = "$mode0" ] || fail "socket mode changed by a rejected reload: $(stat -c %a "$SOCK") (was $mode0)"
sleep 1
[ "$(stat_field "s['mqtt']['connected']")" = True ] || fail "MQTT switched by a rejected reload: $(stat_field "s['mqtt']")"
[ "$(stat_field "s['mqtt']['connects']")" = "$connects0" ] || fail "MQTT client replaced by a rejected reload"
[ "$(stat_field "s['camera']")" = itest ] || fail "camera name changed by a rejected reload"
[ "$(stat_field "s['reload']['failed']")" = 1 ] || fail "rejected reload not counted"
f0=$(stat_field "s['frames']['classified']"); sleep 0.5
[ "$(stat_field "s['frames']['classified']")" -gt "$f0" ] || fail "frames stopped after the rejected reload"
ok "rejected reload (bad source) left socket mode $mode0, MQTT on port $PORT, camera and labels as they were"

# The same changes with a good source: all of them apply.
sed -i 's/^  kind: pipeline/  kind: test/; /^  pipeline: /d' "$T/d.yaml"
"$CTL" reload >/dev/null || fail "good reload rejected: $(tail -3 "$T/daemon.log")"
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode not applied by a good reload"
[ "$(stat_field "s['camera']")" = other ] || fail "camera not applied"
[ "$(stat_field "s['mqtt']['connected']")" = False ] || fail "MQTT still on the old broker after a good reload to port $PORT2"
ok "the same reload with a good source applies mode, camera and MQTT port"
stop_daemon
