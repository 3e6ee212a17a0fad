#!/bin/bash
# MQTT from the hardened basisnetd@.service under a real systemd (systemd-nspawn over an
# overlay of the host root, after `make install`), against a broker on the host loopback:
# the shipped unit leaves the daemon no network (the error shows in stats, the socket is
# served); the drop-in of docs/deploy.md opens it: connected, status "online" on the broker,
# and the unit's exposure stays <= 2.0. Needs root, systemd-nspawn and unshare; prints SKIP
# and passes otherwise. The container set-up is tests/integration/nspawn_common.bash's.
set -euo pipefail
PY=${PYTHON:-/usr/bin/python3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
source "$(dirname "$0")/nspawn_common.bash"
nspawn_enter "$@"

MOSQ=
nspawn_workdir bnd-nspawn-mqtt
cleanup() {
    [ -n "$MOSQ" ] && kill "$MOSQ" 2>/dev/null || true
    nspawn_cleanup
}
trap cleanup EXIT
nspawn_prepare_root
# A broker on the host loopback (the container shares the host's network namespace).
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" > "$W/mosq.conf"
/usr/sbin/mosquitto -c "$W/mosq.conf" > "$W/mosq.log" 2>&1 &
MOSQ=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
# No camera in the container: the test source.
cat > "$R/etc/basisnetd/cam2.yaml" <<EOC
camera: cam2
model: /usr/local/share/basisnetd/models/test.bnm
source:
  kind: test
  width: 160
  height: 120
  fps: 30
mqtt:
  host: 127.0.0.1
  port: $PORT
  qos: 1
EOC
nspawn_boot

mqtt_field() {   # mqtt_field KEY: from the instance's stats
    in_ct /usr/local/bin/basisnetctl --socket /run/basisnetd/cam2.sock stats |
        "$PY" -c "import json,sys; print(json.load(sys.stdin)['mqtt']['$1'])"
}
wait_mqtt() {   # wait_mqtt KEY VALUE-REGEX
    for _ in $(seq 50); do mqtt_field "$1" 2>/dev/null | grep -qE "$2" && return 0; sleep 0.1; done
    return 1
}

in_ct systemctl start basisnetd@cam2 || fail "start basisnetd@cam2"
wait_mqtt last_error . || fail "no MQTT error in stats without network"
err=$(mqtt_field last_error)
[ "$(mqtt_field connected)" = False ] || fail "connected without network?"
in_ct /usr/local/bin/basisnetctl --socket /run/basisnetd/cam2.sock ping >/dev/null || fail "socket not served"
in_ct systemctl stop basisnetd@cam2
ok "shipped unit: no network for MQTT ($err), socket served"

mkdir -p "$R/etc/systemd/system/basisnetd@.service.d"
# the drop-in of docs/deploy.md, verbatim
sed -n '/^```ini$/,/^```$/p' "$ROOT/docs/deploy.md" | sed '1d;$d' > "$R/etc/systemd/system/basisnetd@.service.d/mqtt.conf"
grep -q '^PrivateNetwork=no' "$R/etc/systemd/system/basisnetd@.service.d/mqtt.conf" || fail "drop-in not found in docs/deploy.md"
in_ct systemctl daemon-reload
in_ct systemctl start basisnetd@cam2 || fail "start basisnetd@cam2 with the drop-in"
wait_mqtt connected True || fail "not connected with the drop-in: $(mqtt_field last_error)"
timeout 5 mosquitto_sub -h 127.0.0.1 -p "$PORT" -t 'basisnet/cam2/status' -C 1 > "$W/status.txt" || true
[ "$(cat "$W/status.txt")" = online ] || fail "retained status '$(cat "$W/status.txt")'"
e=$(in_ct systemd-analyze security --no-pager basisnetd@cam2.service 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
[ -n "$e" ] && awk "BEGIN{exit !($e <= 2.0)}" || fail "exposure with the drop-in '$e'"
in_ct systemctl stop basisnetd@cam2
ok "with the drop-in: connected, status online, exposure $e"
