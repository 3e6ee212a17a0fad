#!/bin/bash
# Event snapshots on disk (docs/http.md#event-snapshots) against a daemon on the test source:
# each change event names its picture (`snapshot`), the picture is a JPEG and the sidecar is
# the change message as the socket sent it; retention holds events.keep; /events/ lists the
# events and serves their files, and nothing else (`..`, encoded slashes, other names); a
# directory that cannot be created fails --check-config and a reload at events.dir's
# FILE:LINE:COL with the daemon still running; a directory replaced by a file while running
# makes saves fail (counted, logged once) and the daemon goes on, saving again once the
# directory can be made; a reload onto a new directory, and one without the section. ~15 s.
source "$(dirname "$0")/daemon_common.bash"
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
code() { curl -s --path-as-is -o /dev/null -w '%{http_code}' "$@" || true; }
EV=$T/ev
# Every new answer a change event (change_frames 1): the test source gives a few a second.
events_config() { write_config "$@"; sed -i 's/change_frames: 3/change_frames: 1/' "$1"; }

# ---- a directory that cannot be made: --check-config --------------------------------------
write_config "$T/bad.yaml" "events:
  dir: $T/none/ev"
rc=0; "$BND" --check-config "$T/bad.yaml" >"$T/check.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "--check-config exit $rc on events.dir under a file"
want="$T/bad.yaml:17:3: key 'events.dir': $T/none/ev does not exist and cannot be created in $T/none: No such file or directory (a systemd unit with StateDirectory= creates it when the service starts)"
grep -qxF "$want" "$T/check.out" || { cat "$T/check.out"; fail "--check-config message (want: $want)"; }
ok "--check-config: events.dir that cannot be created, at FILE:LINE:COL"

# ---- saving -------------------------------------------------------------------------------
events_config "$T/d.yaml" "events:
  dir: $EV
  keep: 3
http:
  listen: 127.0.0.1:$PORT"
start_daemon "$T/d.yaml"
# Every change message as the socket sends it, until the daemon stops.
"$PY" - "$SOCK" "$T/changes.jsonl" <<'PY' &
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(30)
with open(sys.argv[2], 'wb', buffering=0) as out:
    for line in s.makefile('rb'):
        if json.loads(line)['type'] == 'change':
            out.write(line)
PY
REC=$!
for _ in $(seq 200); do
    [ "$(cat "$T/changes.jsonl" 2>/dev/null | wc -l)" -ge 5 ] && break; sleep 0.05
done
[ "$(wc -l <"$T/changes.jsonl")" -ge 5 ] || fail "fewer than 5 change events in 10 s"
# Stopped, the store has written what was queued: retention is exact.
stop_daemon
wait $REC || fail "the recorder failed"
"$PY" - "$T/changes.jsonl" "$EV" <<'PY' || fail "the saved events do not match the messages"
import json, os, sys
sent = open(sys.argv[1], 'rb').read().splitlines(keepends=True)
assert all('snapshot' in json.loads(l) for l in sent), 'a change message without snapshot'
files = sorted(os.listdir(sys.argv[2]))
assert '.basisnetd.lock' in files, ('the daemon holds no lock on events.dir', files)
files.remove('.basisnetd.lock')
jsons = [f for f in files if f.endswith('.json')]
jpgs = [f for f in files if f.endswith('.jpg')]
assert len(jsons) == 3 and len(jpgs) == 3 and len(files) == 6, ('keep: 3', files)
newest = sorted(sent, key=lambda l: json.loads(l)['seq'])[-3:]
for f in jsons:
    side = open(os.path.join(sys.argv[2], f), 'rb').read()
    assert side in newest, ('sidecar is not one of the 3 newest messages as sent', f, side)
    m = json.loads(side)
    assert m['type'] == 'change' and m['label'] and m['snapshot'] == f[:-5] + '.jpg', m
    jpg = open(os.path.join(sys.argv[2], m['snapshot']), 'rb').read()
    assert jpg[:2] == b'\xff\xd8' and jpg[-2:] == b'\xff\xd9', 'not a whole JPEG'
PY
ok "$(wc -l <"$T/changes.jsonl") change messages each named a snapshot; the 3 newest (keep: 3) on disk: JPEG + sidecar (the message as sent), nothing else"

# A restart counts what is there; more room for the rest of the test.
events_config "$T/d.yaml" "events:
  dir: $EV
  keep: 50
http:
  listen: 127.0.0.1:$PORT"
start_daemon "$T/d.yaml"
grep -q "event snapshots in $EV (3 there, keep 50" "$T/daemon.log" || fail "a restart did not count the 3 events"
ok "a restart found the 3 events"

# ---- /events/ -----------------------------------------------------------------------------
curl -s "$URL/events/" >"$T/list.json"
name=$("$PY" - "$T/list.json" "$EV" <<'PY'
import json, os, sys
o = json.load(open(sys.argv[1]))
assert o['type'] == 'events', o
names = [e['name'] for e in o['events']]
key = lambda n: (n.split('-')[0], int(n.split('-')[1]))
assert len(names) >= 3 and names == sorted(names, key=key, reverse=True), names
e = o['events'][0]
assert e['snapshot'] == e['name'] + '.jpg' and e['sidecar'] == e['name'] + '.json', e
assert e['bytes'] == sum(os.path.getsize(os.path.join(sys.argv[2], e['name'] + x)) for x in ('.jpg', '.json')), e
print(e['name'])
PY
) || fail "listing: $(cat "$T/list.json")"
[ "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$URL/events/$name.jpg")" = "200 image/jpeg" ] \
    || fail "/events/$name.jpg"
cmp -s <(curl -s "$URL/events/$name.json") "$EV/$name.json" || fail "/events/$name.json differs from the file"
echo secret >"$T/secret.json"
# Other files in the directory are not served: a foreign file, and a link named like an event.
echo secret >"$EV/notes.json"
ln -s "$T/secret.json" "$EV/20261207T000000.000Z-1.json"
for p in "../d.yaml" "..%2Fd.yaml" "..%2fsecret.json" "%2e%2e/secret.json" "%2E%2E%2Fsecret.json" \
         "$name.jpg/" "x/../../d.yaml" "$name.jpg%00" ".$name.jpg.tmp" "$name" "$name.JPG" \
         "..%5c$name.jpg" "%2F$name.jpg" notes.json 20261207T000000.000Z-1.json; do
    c=$(code "$URL/events/$p")
    [ "$c" = 404 ] || [ "$c" = 400 ] || fail "/events/$p answered $c"
done
for p in "..%2fsecret.json" notes.json 20261207T000000.000Z-1.json; do
    curl -s --path-as-is "$URL/events/$p" | grep -q secret && fail "/events/$p read a file it should not"
done
rm "$EV/notes.json" "$EV/20261207T000000.000Z-1.json"
ok "/events/ lists newest first and serves the files; '..', encoded slashes, other files and links are 404/400"

# ---- a reload onto a directory that cannot be made: rejected, the old store kept ----------
events_config "$T/d.yaml" "events:
  dir: $T/none/ev
  keep: 3
http:
  listen: 127.0.0.1:$PORT"
rc=0; "$CTL" reload >"$T/reload.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "reload onto a bad events.dir: exit $rc"
grep -qF "$T/d.yaml:17:3: key 'events.dir': $T/none/ev does not exist and cannot be created in $T/none" "$T/reload.out" \
    || fail "reload message: $(cat "$T/reload.out")"
[ "$(stat_field 's["events"]["dir"]')" = "$EV" ] || fail "the running store was replaced"
ok "reload onto a bad events.dir rejected at FILE:LINE:COL, the running store kept"

# ---- the directory replaced by a file while running: saves fail, the daemon goes on -------
# (The store's descriptor follows a moved directory: once the file is in place, the
# directory is removed, and no save can make it again in between.)
# (A save already under way may still land in the moved directory: remove it until gone.)
mv "$EV" "$EV.old"; touch "$EV"
for _ in $(seq 50); do rm -rf "$EV.old" 2>/dev/null; [ -e "$EV.old" ] || break; sleep 0.1; done
[ ! -e "$EV.old" ] || fail "cannot remove the moved events directory"
failed=0
for _ in $(seq 150); do
    failed=$(stat_field 's["events"]["failed"]'); [ "$failed" -ge 2 ] && break; sleep 0.1
done
[ "$failed" -ge 2 ] || fail "$failed failed saves with events.dir a file (want 2 or more)"
[ "$(stat_field 's["events"]["last_error"]')" = "events.dir $EV: not a directory" ] \
    || fail "last_error: $(stat_field 's["events"]["last_error"]')"
[ "$(code "$URL/healthz")" = 200 ] || fail "daemon unhealthy while saves fail"
n_warn=$(grep -c "not saved in $EV" "$T/daemon.log" || true)
[ "$n_warn" = 1 ] || fail "$n_warn log lines for the same failure (want 1)"
rm -f "$EV"
saved0=$(stat_field 's["events"]["saved"]')
for _ in $(seq 100); do
    [ "$(stat_field 's["events"]["saved"]')" -gt "$saved0" ] && break; sleep 0.1
done
[ "$(stat_field 's["events"]["saved"]')" -gt "$saved0" ] || fail "not saving again after the file was removed"
[ -d "$EV" ] || fail "directory not created again"
grep -q "saving again" "$T/daemon.log" || fail "no 'saving again' line"
ok "events.dir replaced by a file: $failed saves failed (one log line), the daemon went on and saves again"

# ---- reload: a changed section opens the new store, a removed one stops saving -------------
events_config "$T/d.yaml" "events:
  dir: $EV.2
http:
  listen: 127.0.0.1:$PORT"
"$CTL" reload >/dev/null || fail "reload onto a new events.dir"
[ "$(stat_field 's["events"]["dir"]')" = "$EV.2" ] || fail "the new store is not in use"
for _ in $(seq 100); do ls "$EV.2" | grep -q '\.json$' && break; sleep 0.1; done
ls "$EV.2" | grep -q '\.json$' || fail "nothing saved in the new directory"
events_config "$T/d.yaml" "http:
  listen: 127.0.0.1:$PORT"
"$CTL" reload >/dev/null || fail "reload without events:"
[ "$(stat_field '"events" in s')" = False ] || fail "stats still has events after the section was removed"
grep -q "event snapshots off" "$T/daemon.log" || fail "no 'event snapshots off' line"
[ "$(code "$URL/events/")" = 404 ] || fail "/events/ still served without the section"
n=$(ls "$EV.2" | wc -l); sleep 1.5
[ "$(ls "$EV.2" | wc -l)" = "$n" ] || fail "still saving after the section was removed"
ok "reload: a new events.dir is used at once; removing the section stops saving (files kept, /events/ 404)"

stop_daemon
ok "stopped in $STOP_MS ms"
