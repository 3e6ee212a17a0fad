#!/bin/bash
# The model file replaced under a running daemon: copied over in place (cp truncates the
# file, then writes), truncated to nothing and to half, rewritten with garbage, while frames
# are classified and reloads are asked for. The daemon must survive all of it and keep
# publishing (the engine holds its own copy of the weights), reject every reload of a broken
# file, and take a good new file written the documented way (write, rename, reload).
source "$(dirname "$0")/daemon_common.bash"

A=$T/model.bnm
cp "$MODEL" "$A"
ORIG=$MODEL
MODEL=$A
# The replacement: the random fixture under another name (its checksum recomputed).
"$PY" - "$ROOT/tests/fixtures/random-tiny.bnm" "$T/new.bnm" <<'PY'
import json, struct, sys, zlib
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h, data = json.loads(raw[8:8 + n]), raw[8 + n:]
doc = json.loads(h['__metadata__']['basisnet'])
doc['name'] = 'replaced-model'
h['__metadata__'] = {'basisnet': json.dumps(doc), 'data_crc32': '%08x' % zlib.crc32(data)}
hb = json.dumps(h).encode()
hb += b' ' * (-len(hb) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hb)) + hb + data)
PY
size=$(stat -c %s "$ORIG")

write_config "$T/d.yaml"
start_daemon "$T/d.yaml"
record_socket "$T/sub.jsonl"
name0=$(stat_field "s['model']")
for _ in $(seq 50); do [ "$(stat_field "s['frames']['classified']")" -gt 5 ] && break; sleep 0.1; done
f0=$(stat_field "s['frames']['classified']")
[ "$f0" -gt 5 ] || fail "no frames classified before the test ($f0)"

rejected=0
for i in $(seq 12); do
    cp "$T/new.bnm" "$A"                                 # in place: truncate, then write
    : > "$A"; sleep 0.1                                  # truncated to nothing
    head -c 65536 /dev/urandom > "$A"; sleep 0.05        # rewritten with garbage
    cp "$ORIG" "$A"; truncate -s $((size / 2)) "$A"; sleep 0.05   # half a model
    if [ $((i % 3)) -eq 0 ]; then
        rc=0; "$CTL" reload 2>"$T/err" || rc=$?
        [ $rc -eq 1 ] || fail "reload of a half-written model: rc $rc (want 1) $(cat "$T/err")"
        grep -q "$A" "$T/err" || fail "reload error does not name the model file: $(cat "$T/err")"
        rejected=$((rejected + 1))
    fi
    kill -0 "$DPID" 2>/dev/null || fail "daemon died after $i rounds of replacing its model file"
done
f1=$(stat_field "s['frames']['classified']")
[ "$f1" -gt "$f0" ] || fail "frames stalled while the model file was replaced ($f0 -> $f1)"
[ "$(stat_field "s['model']")" = "$name0" ] || fail "model changed by rejected reloads"
[ "$(stat_field "s['reload']['failed']")" = "$rejected" ] || fail "rejected reloads not counted"
ok "12 rounds of cp over, truncate and garbage on the running model: alive, $((f1 - f0)) frames, $rejected broken reloads rejected"

# A good file copied in place, then reloaded: accepted.
cp "$ORIG" "$A"
"$CTL" reload >/dev/null 2>"$T/err" || fail "reload of the restored model rejected: $(cat "$T/err")"
# The documented update: write next to it, rename over it, reload.
cp "$T/new.bnm" "$A.tmp" && mv "$A.tmp" "$A"
"$CTL" reload >/dev/null 2>"$T/err" || fail "reload after an atomic replace rejected: $(cat "$T/err")"
[ "$(stat_field "s['model']")" = replaced-model ] || fail "the new model is not in use: $(stat_field "s['model']")"
frames_advance 0.5 "no frames on the new model"
# ... and the file it was loaded from can be broken again at once.
: > "$A"; sleep 0.3
frames_advance 0.3 "frames stopped when the new model's file was truncated"
ok "write + rename + reload puts the new model in use; its file truncated afterwards changes nothing"

stop_daemon
wait "$SUB" 2>/dev/null || true
"$PY" - "$T/sub.jsonl" "$name0" <<'PY' || fail "subscriber across the replacements"
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1], 'rb').read().splitlines()]
models = [m['model'] for m in ms if m['type'] == 'hello']
assert models[0] == sys.argv[2] and models[-1] == 'replaced-model', models
seq = [m['seq'] for m in ms if m['type'] == 'label']
assert seq == sorted(seq) and len(seq) > 20, (len(seq), seq[:5])
print('subscriber connected throughout: %d labels, hellos for %s' % (len(seq), ' -> '.join(models)))
PY
ok "one subscriber connection throughout; SIGTERM stop in $STOP_MS ms"
