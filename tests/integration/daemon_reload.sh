#!/bin/bash
# SIGHUP / "reload": a good config (new camera name, new source size, the gate turned on
# with its own gate.min_score) is swapped in while
# subscribers stay connected and get a fresh hello; a bad config or a bad model is rejected,
# reported (log, stats, reply, exit code) and the old config keeps running.
source "$(dirname "$0")/daemon_common.bash"
write_config "$T/d.yaml"
start_daemon "$T/d.yaml"

# a subscriber that stays connected across all reloads, recording what it sees
record_socket "$T/sub.jsonl"
sleep 0.5

[ "$(stat_field "s['gate']['min_score']")" = 0.9 ] || fail "gate.min_score default"
sed -i 's/^camera: itest/camera: renamed/; s/width: 160/width: 200/' "$T/d.yaml"
printf 'gate:\n  mode: auto\n  min_score: 0.25\n' >> "$T/d.yaml"
kill -HUP "$DPID"
for _ in $(seq 50); do [ "$(stat_field "s['camera']")" = renamed ] && break; sleep 0.1; done
[ "$(stat_field "s['camera']")" = renamed ] || fail "SIGHUP did not apply the new config"
[ "$(stat_field "s['reload']['ok']")" = 1 ] || fail "reload ok count"
f0=$(stat_field "s['frames']['classified'] + s['frames']['gate_reused']"); sleep 0.5
f1=$(stat_field "s['frames']['classified'] + s['frames']['gate_reused']")
[ "$f1" -gt "$f0" ] || fail "no frames after reload ($f0 -> $f1)"
stat_field "s['source']['pipeline']" | grep -q 'width=200' || fail "source not reopened: $(stat_field "s['source']['pipeline']")"
[ "$(stat_field "(s['gate']['mode'], s['gate']['min_score'], sum(s['gate']['verdicts'].values()) > 0)")" = "('auto', 0.25, True)" ] ||
    fail "gate not applied by the reload: $(stat_field "s['gate']")"
ok "good SIGHUP reload (camera renamed, source reopened, gate on with min_score 0.25, frames flow)"

# bad YAML: rejected, old config runs on
cp "$T/d.yaml" "$T/good.yaml"
printf 'camera: broken\nsource:\n  fps: [1, 2\n' > "$T/d.yaml"
kill -HUP "$DPID"; sleep 0.5
kill -0 "$DPID" || fail "daemon died on a bad reload"
[ "$(stat_field "s['reload']['failed']")" = 1 ] || fail "failed reload not counted"
stat_field "s['reload']['last_error']" | grep -q "$T/d.yaml:" || fail "last_error lacks the file"
[ "$(stat_field "s['camera']")" = renamed ] || fail "old config not kept"
grep -q "reload rejected" "$T/daemon.log" || fail "bad reload not logged"
ok "bad YAML reload rejected, old config kept"

# bad model through the command: error reply, exit 1
sed 's|^model: .*|model: /nonexistent/model.bnm|' "$T/good.yaml" > "$T/d.yaml"
rc=0; "$CTL" reload 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "nonexistent/model.bnm" "$T/err" || fail "ctl reload of a bad model: rc $rc $(cat "$T/err")"
frames_advance 0.4 "frames stopped after a bad reload"
ok "bad model reload rejected through basisnetctl (exit 1)"

cp "$T/good.yaml" "$T/d.yaml"
"$CTL" reload >/dev/null || fail "good reload after bad ones"
sleep 0.3
stop_daemon
wait $SUB 2>/dev/null || true
"$PY" - "$T/sub.jsonl" <<'PY' || fail "subscriber across reloads"
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1], 'rb').read().splitlines()]
hellos = [m for m in ms if m['type'] == 'hello']
assert [h['camera'] for h in hellos][:2] == ['itest', 'renamed'], [h['camera'] for h in hellos]
seq = [m['seq'] for m in ms if m['type'] == 'label']
assert seq == sorted(seq) and len(set(seq)) == len(seq), 'label seq not increasing across reloads'
assert len(seq) > 30, len(seq)
print('subscriber stayed connected: %d hellos, %d labels, seq %d..%d' % (len(hellos), len(seq), seq[0], seq[-1]))
PY
ok "subscriber kept across reloads; SIGTERM stop in $STOP_MS ms"
