#!/bin/bash
# Reload is all or nothing, step by step: a new config that changes the socket mode, the
# MQTT settings (same broker and client id), the model and the source is made to fail at each
# step of the reload in turn: the config (an unknown key), the model (a damaged file), MQTT
# (an empty password file), the capture (a file that is not a video) and the socket (its
# mode cannot be set: the socket file was moved away). After each rejection nothing
# observable may have changed: socket mode, the MQTT connection (same connection, nothing
# sent on P/status), the model in use, the source (same pipeline, never restarted: its frame
# counter keeps counting), no new hello; frames keep flowing. The same config without the
# fault then applies all of it.
source "$(dirname "$0")/daemon_common.bash"
command -v /usr/sbin/mosquitto >/dev/null || fail "mosquitto missing (tools/install-deps.sh)"
command -v mosquitto_sub >/dev/null || fail "mosquitto_sub missing (mosquitto-clients)"

BPID= MPID=
cleanup_all() {
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null || true
    [ -n "$BPID" ] && kill "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null || true
    cleanup
}
trap cleanup_all EXIT
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" > "$T/broker.conf"
/usr/sbin/mosquitto -c "$T/broker.conf" >"$T/broker.log" 2>&1 &
BPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done

# Models: the running one, a renamed one the new config asks for, and a damaged copy of it.
cp "$MODEL" "$T/model.bnm"
"$PY" - "$ROOT/tests/fixtures/random-tiny.bnm" "$T/new.bnm" "$T/damaged.bnm" <<'PY'
import json, struct, sys, zlib
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h, data = json.loads(raw[8:8 + n]), bytearray(raw[8 + n:])
doc = json.loads(h['__metadata__']['basisnet'])
doc['name'] = 'reloaded-model'
h['__metadata__'] = {'basisnet': json.dumps(doc), 'data_crc32': '%08x' % zlib.crc32(data)}
hb = json.dumps(h).encode()
hb += b' ' * (-len(hb) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hb)) + hb + data)
data[100:108] = struct.pack('<ff', 0.5, -0.5)
open(sys.argv[3], 'wb').write(struct.pack('<Q', len(hb)) + hb + data)
PY
: > "$T/empty-password"
chmod 600 "$T/empty-password"
echo "not a video" > "$T/notvideo.txt"

mqtt_yaml() { printf 'mqtt:\n  host: 127.0.0.1\n  port: %s\n  keepalive: %s\n%s' "$PORT" "$1" "${2:-}"; }
MODEL=$T/model.bnm write_config "$T/d.yaml" "$(mqtt_yaml 5)"
start_daemon "$T/d.yaml"
for _ in $(seq 100); do [ "$(stat_field "s['mqtt']['connected']")" = True ] && break; sleep 0.05; done
[ "$(stat_field "s['mqtt']['connected']")" = True ] || fail "not connected to the broker"
mosquitto_sub -h 127.0.0.1 -p "$PORT" -t 'basisnet/itest/status' -v > "$T/status.log" 2>&1 &
MPID=$!
record_socket "$T/sub.jsonl"
for _ in $(seq 100); do grep -q online "$T/status.log" && break; sleep 0.05; done
grep -q "basisnet/itest/status online" "$T/status.log" || fail "no retained online status: $(cat "$T/status.log")"
mode0=$(stat -c %a "$SOCK")
model0=$(stat_field "s['model']")
pipe0=$(stat_field "s['source']['pipeline']")
connects0=$(stat_field "s['mqtt']['connects']")

# new_config FILE [extra YAML]: everything observable changes (mode, MQTT keepalive with the
# same broker and client id, model, source size).
new_config() {
    MODEL=$T/new.bnm write_config "$1" "$(mqtt_yaml 6 "${2:-}")"
    sed -i 's/mode: 0666/mode: 0600/; s/width: 160/width: 200/' "$1"
}

failed=0
# rejected STEP WHAT-THE-ERROR-SAYS [--move-socket]: reloads and checks that nothing changed
# (--move-socket: the socket file is moved away for the reload and put back after it).
rejected() {
    local step=$1 want=$2; shift 2
    local fin0; fin0=$(stat_field "s['source']['frames_in']")
    if [ "${1:-}" = --move-socket ]; then mv "$SOCK" "$SOCK.moved"; set -- --socket "$SOCK.moved"; fi
    local rc=0; "$CTL" "$@" reload 2>"$T/err" || rc=$?
    [ -S "$SOCK" ] || mv "$SOCK.moved" "$SOCK"
    [ $rc -eq 1 ] || fail "$step: reload not rejected (rc $rc)"
    grep -q -- "$want" "$T/err" || fail "$step: the error does not say '$want': $(cat "$T/err")"
    failed=$((failed + 1))
    sleep 0.7   # room for a reconnect, a status message or a restarted source to show
    [ "$(stat -c %a "$SOCK")" = "$mode0" ] || fail "$step: socket mode changed to $(stat -c %a "$SOCK")"
    [ "$(stat_field "s['model']")" = "$model0" ] || fail "$step: model changed to $(stat_field "s['model']")"
    [ "$(stat_field "s['source']['pipeline']")" = "$pipe0" ] || fail "$step: source changed"
    [ "$(stat_field "s['source']['frames_in']")" -gt "$fin0" ] ||
        fail "$step: the source was restarted (frames_in $fin0 -> $(stat_field "s['source']['frames_in']"))"
    [ "$(stat_field "s['source']['reconnects']")" = 0 ] || fail "$step: the source reconnected"
    [ "$(stat_field "s['mqtt']['connected']")" = True ] || fail "$step: MQTT not connected: $(stat_field "s['mqtt']")"
    [ "$(stat_field "s['mqtt']['connects']")" = "$connects0" ] ||
        fail "$step: the MQTT connection was replaced or taken over (connects $connects0 -> $(stat_field "s['mqtt']['connects']"))"
    ! grep -q offline "$T/status.log" || fail "$step: 'offline' sent on the status topic: $(cat "$T/status.log")"
    [ "$(stat_field "s['camera']")" = itest ] || fail "$step: camera changed"
    [ "$(stat_field "s['reload']['failed']")" = "$failed" ] || fail "$step: rejected reload not counted"
    frames_advance 0.3 "$step: frames stopped"
    kill -0 "$DPID" || fail "$step: daemon died"
    ok "$step step fails: rejected ($want), mode, MQTT connection, model, source and camera unchanged"
}

new_config "$T/d.yaml"; echo "bogus_key: 1" >> "$T/d.yaml"
rejected config "bogus_key"

new_config "$T/d.yaml"; sed -i "s|^model: .*|model: $T/damaged.bnm|" "$T/d.yaml"
rejected model "checksum mismatch"

new_config "$T/d.yaml" "$(printf '  username: cam\n  password_file: %s\n' "$T/empty-password")"
rejected mqtt "the first line is empty"

new_config "$T/d.yaml"; sed -i "s|^  kind: test|  kind: file\n  path: $T/notvideo.txt|; /pattern: ball/d" "$T/d.yaml"
rejected capture "notvideo.txt"

# The socket's mode is set last, after everything else was opened; with its file moved away
# (the daemon reached through the new name) setting it fails.
new_config "$T/d.yaml"
rejected socket "socket $SOCK" --move-socket

# Without a fault the same config applies all of it.
new_config "$T/d.yaml"
"$CTL" reload >/dev/null 2>"$T/err" || fail "good reload rejected: $(cat "$T/err")"
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode not applied"
[ "$(stat_field "s['model']")" = reloaded-model ] || fail "model not applied"
stat_field "s['source']['pipeline']" | grep -q 'width=200' || fail "source not applied"
for _ in $(seq 100); do [ "$(stat_field "s['mqtt']['connected']")" = True ] && break; sleep 0.05; done
[ "$(stat_field "s['mqtt']['connected']")" = True ] || fail "new MQTT client not connected"
frames_advance 0.5 "no frames after the good reload"
ok "the same config without a fault applies mode, model, source and MQTT"

stop_daemon
wait "$SUB" 2>/dev/null || true
"$PY" - "$T/sub.jsonl" "$model0" <<'PY' || fail "subscriber"
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1], 'rb').read().splitlines()]
models = [m['model'] for m in ms if m['type'] == 'hello']
assert models == [sys.argv[2], 'reloaded-model'], 'hellos: %s (a rejected reload sent one?)' % models
assert not [m for m in ms if m['type'] == 'source'], [m for m in ms if m['type'] == 'source']
print('subscriber: hellos %s, no source events' % ' -> '.join(models))
PY
ok "five rejected reloads sent no hello and no source event"
