#!/bin/bash
# End to end on the bundled sample clip: the daemon plays samples/fmnist-sample.mkv (60 s,
# real time), a subscriber's labels are scored against samples/fmnist-sample.truth.csv, and
# that accuracy must be within 1 point of `basisnet eval` on the same 120 test images at the
# same threshold. Needs the trained model (models/fmnist-basisnet.bnm); SKIP without it.
source "$(dirname "$0")/daemon_common.bash"
MODEL=${SAMPLE_MODEL:-$ROOT/models/fmnist-basisnet.bnm}
CLIP=$ROOT/samples/fmnist-sample.mkv
TRUTH=$ROOT/samples/fmnist-sample.truth.csv
if [ ! -f "$MODEL" ] || [ ! -f "$CLIP" ]; then
    echo "SKIP: needs $MODEL and $CLIP"; exit 77
fi
THR=${SAMPLE_THRESHOLD:-0.9}
cat > "$T/s.yaml" <<EOC
camera: sample
model: $MODEL
source:
  kind: file
  path: $CLIP
  loop: false
engine:
  threshold: $THR
budget:
  mode: off
publish:
  socket: $SOCK
EOC
# the subscriber waits for the socket, then records everything until the daemon exits
"$PY" "$ROOT/tests/integration/record_socket.py" "$SOCK" "$T/labels.jsonl" &
SUB=$!
rc=0; "$BND" --config "$T/s.yaml" --exit-on-eos 2>"$T/daemon.log" || rc=$?
[ $rc -eq 0 ] || fail "daemon exit $rc at the end of the clip"
wait $SUB

# the same 120 images as idx files, in clip order
"$PY" - "$TRUTH" "$T" <<'PY'
import csv, gzip, struct, sys
rows = list(csv.DictReader(open(sys.argv[1])))
d = '/usr/share/datasets/fashion-mnist/'
img = gzip.open(d + 't10k-images-idx3-ubyte.gz').read()
lab = gzip.open(d + 't10k-labels-idx1-ubyte.gz').read()
idx = [int(r['test_image_index']) for r in rows]
for r in rows:
    assert lab[8 + int(r['test_image_index'])] == int(r['label_index']), r
with open(sys.argv[2] + '/img.idx', 'wb') as f:
    f.write(struct.pack('>IIII', 0x803, len(idx), 28, 28))
    for i in idx: f.write(img[16 + i * 784:16 + (i + 1) * 784])
with open(sys.argv[2] + '/lab.idx', 'wb') as f:
    f.write(struct.pack('>II', 0x801, len(idx)))
    f.write(bytes(lab[8 + i] for i in idx))
PY
"$ROOT/$BUILD/basisnet" eval "$MODEL" --images "$T/img.idx" --labels "$T/lab.idx" --threshold "$THR" > "$T/eval.txt" \
    || fail "basisnet eval"
EVAL=$(sed -n 's/^accuracy *\([0-9.]*\).*/\1/p' "$T/eval.txt" | head -1)
[ -n "$EVAL" ] || fail "no accuracy in: $(cat "$T/eval.txt")"

"$PY" - "$T/labels.jsonl" "$TRUTH" "$EVAL" <<'PY' || fail "sample accuracy"
import csv, json, sys
truth = {}
for r in csv.DictReader(open(sys.argv[2])):
    for f in range(int(r['first_frame']), int(r['last_frame']) + 1):
        truth[f] = int(r['label_index'])
fps = 30.0
ms = [json.loads(l) for l in open(sys.argv[1], 'rb')]
labels = [m for m in ms if m['type'] == 'label']
hits = n = 0
for m in labels:
    f = round(m['pts_ns'] * fps / 1e9)
    if f in truth:
        n += 1
        hits += m['class'] == truth[f]
acc = hits / n
ev = float(sys.argv[3])
print('daemon: %d labelled frames of %d, accuracy %.4f; basisnet eval on the same images: %.4f; '
      'difference %.2f pt' % (n, len(truth), acc, ev, 100 * abs(acc - ev)))
assert n >= 0.9 * len(truth), 'too few frames published'
assert abs(acc - ev) <= 0.01, 'more than 1 pt apart'
# change events: debounced (no flicker) and mostly naming what is on screen at that frame
rows = list(csv.DictReader(open(sys.argv[2])))
transitions = sum(a['label_index'] != b['label_index'] for a, b in zip(rows, rows[1:])) + 1
ch = [m for m in ms if m['type'] == 'change']
right = sum(truth.get(round(m['pts_ns'] * fps / 1e9)) == m['class'] for m in ch)
print('change events: %d (truth has %d label changes), %d name the label on screen'
      % (len(ch), transitions, right))
assert len(ch) <= 1.5 * transitions, 'change events flicker'
assert right >= (ev - 0.1) * len(ch), 'change events disagree with the clip'
PY
ok "sample clip accuracy matches basisnet eval"
