#!/bin/bash
# "Your camera, your labels" on the generated porch scene (tools/scene/make-scene.py), as
# docs/training.md writes it: render one clip per state (the training day) and a mixed
# clip of another day (held out) -> `basisnet grab --crop ROI` the frames -> train.py ->
# eval.py -> export.py -> `basisnet eval --folder` on the held-out frames -> basisnetd on
# the held-out clip (source.crop = ROI), started on the shipped Fashion-MNIST model and
# switched to the new one by `basisnetctl reload`, its labels scored against the truth.
#
#   bench/scene/flow.sh OUT        (summary: OUT/summary.json, one line on stdout)
#
# Environment (defaults = the full-size benchmark):
#   TRAIN_S=60 HELD_S=120 FPS=10   seconds per training state clip / held-out clip
#   DAY_TRAIN=1 DAY_HELD=2         scene seeds of the two days
#   SPEC=cam96 ARCH=basisnet SEED=1 PROCS=2 EPOCHS=200 BUDGET=15 (minutes) BATCH=64
#   LIMIT=                         train on only this many of the training frames (--limit)
#   DAEMON=1                       0 skips the daemon step
#   BUILD=build                    where basisnet, basisnetd, basisnetctl are
# Rendered clips and grabbed frames are kept in OUT/scene and reused by later runs with the
# same OUT (baselines train on the same frames); runs go to OUT/runs/ARCH-sSEED.
set -euo pipefail
OUT=${1:?usage: bench/scene/flow.sh OUT}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
BN=$ROOT/$BUILD/basisnet BND=$ROOT/$BUILD/basisnetd CTL=$ROOT/$BUILD/basisnetctl
PY=${PYTHON:-/usr/bin/python3}
TRAIN_S=${TRAIN_S:-60} HELD_S=${HELD_S:-120} FPS=${FPS:-10}
DAY_TRAIN=${DAY_TRAIN:-1} DAY_HELD=${DAY_HELD:-2}
SPEC=${SPEC:-cam96} ARCH=${ARCH:-basisnet} SEED=${SEED:-1} PROCS=${PROCS:-2}
EPOCHS=${EPOCHS:-200} BUDGET=${BUDGET:-15} BATCH=${BATCH:-64} DAEMON=${DAEMON:-1} LIMIT=${LIMIT:-}
SIDE=${SPEC#cam}
STATES="door_closed door_open parcel"
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
S=$OUT/scene
say() { echo "flow: $(date -u +%H:%M:%S) $*" >&2; }
die() { echo "flow: FAILED: $*" >&2; exit 1; }

ROI=$("$PY" "$ROOT/tools/scene/make-scene.py" --print-roi)
IFS=, read -r RX RY RW RH <<<"$ROI"

# ---- 1. clips and frames (kept for later runs) ------------------------------------------
if [ ! -f "$S/done-$SIDE" ]; then
    rm -rf "$S/train" "$S/held"
    mkdir -p "$S/clips"
    for st in $STATES; do
        [ -f "$S/clips/$st.mkv" ] || "$PY" "$ROOT/tools/scene/make-scene.py" --out "$S/clips" --state "$st" \
            --seed "$DAY_TRAIN" --seconds "$TRAIN_S" --fps "$FPS" --quiet >&2
        "$BN" grab "$S/clips/$st.mkv" --out "$S/train" --label "$st" --every 0 --count 1000000 \
            --size "${SIDE}x${SIDE}" --crop "$ROI" >&2 2>"$S/grab.log" || die "grab $st: $(tail -1 "$S/grab.log")"
    done
    [ -f "$S/clips/held.mkv" ] || "$PY" "$ROOT/tools/scene/make-scene.py" --out "$S/clips" --name held \
        --seed "$DAY_HELD" --seconds "$HELD_S" --fps "$FPS" --quiet >&2
    "$BN" grab "$S/clips/held.mkv" --out "$S/heldraw" --label all --every 0 --count 1000000 \
        --size "${SIDE}x${SIDE}" --crop "$ROI" >&2 2>"$S/grab.log" || die "grab held: $(tail -1 "$S/grab.log")"
    "$PY" "$ROOT/tools/scene/sort-frames.py" "$S/heldraw/all" "$S/clips/held.truth.csv" "$S/held" >&2
    rm -rf "$S/heldraw"
    touch "$S/done-$SIDE"
fi

# ---- 2. train, evaluate, export ---------------------------------------------------------
RUN=$OUT/runs/$ARCH-s$SEED
mkdir -p "$OUT/runs"
if [ ! -f "$RUN/best.pt" ]; then
    say "train $ARCH --spec $SPEC seed $SEED: $EPOCHS epochs or $BUDGET min on $PROCS processes"
    "$PY" "$ROOT/tools/train/train.py" --arch "$ARCH" --spec "$SPEC" --data "$S/train" --seed "$SEED" \
        --epochs "$EPOCHS" --batch "$BATCH" --procs "$PROCS" --time-budget "$BUDGET" \
        ${LIMIT:+--limit "$LIMIT"} --out "$RUN" --log-every 0 > "$RUN.log" 2>&1 || { tail -20 "$RUN.log" >&2; die "train.py"; }
fi
tail -1 "$RUN.log" >&2
case $ARCH in basisnet | cascade) ;; *) say "$ARCH: trained ($RUN/best.pt); eval/export are for two-stage runs"; exit 0 ;; esac
"$PY" "$ROOT/tools/train/eval.py" --checkpoint "$RUN/best.pt" --test "$S/held" --json "$RUN/eval.json" \
    > "$RUN/eval.log" 2>&1 || { cat "$RUN/eval.log" >&2; die "eval.py"; }
grep "^eval: $RUN" "$RUN/eval.log" >&2
MODEL=$RUN/porch.bnm
"$PY" "$ROOT/tools/train/export.py" --checkpoint "$RUN/best.pt" --results "$RUN/eval.json" \
    --out "$MODEL" > "$RUN/export.log" 2>&1 || { cat "$RUN/export.log" >&2; die "export.py"; }
THR=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"]["threshold"])' "$RUN/eval.json")
"$BN" eval "$MODEL" --folder "$S/held" --threshold "$THR" > "$RUN/bn-eval.txt" 2>&1 \
    || { cat "$RUN/bn-eval.txt" >&2; die "basisnet eval --folder"; }
# per-frame answers of the C engine (for scoring the daemon on exactly the frames it labelled)
"$BN" classify --threshold "$THR" "$MODEL" $(ls "$S"/held/*/*.png) > "$RUN/classify.txt" 2>&1 \
    || die "basisnet classify"

# ---- 3. the daemon on the held-out clip ---------------------------------------------------
DJSON=null
if [ "$DAEMON" = 1 ]; then
    D=$RUN/daemon
    rm -rf "$D"; mkdir -p "$D"
    conf() {  # conf MODEL [threshold line]
        cat > "$D/porch.yaml" <<EOC
camera: porch
model: $1
source:
  kind: file
  path: $S/clips/held.mkv
  loop: false
  crop: {x: $RX, y: $RY, width: $RW, height: $RH}
engine:
  threshold: ${2:-0.9}
budget:
  mode: off
publish:
  socket: $D/d.sock
EOC
    }
    conf "$ROOT/models/fmnist-basisnet.bnm"
    "$BND" --config "$D/porch.yaml" --exit-on-eos 2>"$D/daemon.log" &
    DPID=$!
    "$PY" "$ROOT/tests/integration/record_socket.py" "$D/d.sock" "$D/labels.jsonl" &
    SUB=$!
    for _ in $(seq 1 400); do grep -q '"type":"label"' "$D/labels.jsonl" 2>/dev/null && break; sleep 0.05; done
    grep -q '"type":"label"' "$D/labels.jsonl" || die "no label from the shipped model"
    conf "$MODEL" "$THR"
    "$CTL" --socket "$D/d.sock" reload > "$D/reload.txt" 2>&1 || die "basisnetctl reload: $(cat "$D/reload.txt")"
    rc=0; wait "$DPID" || rc=$?
    wait "$SUB" || true
    [ "$rc" = 0 ] || die "basisnetd exit $rc: $(tail -3 "$D/daemon.log")"
    DJSON=$D/score.json
    "$PY" - "$D/labels.jsonl" "$S/clips/held.truth.csv" "$RUN/classify.txt" "$FPS" "$DJSON" <<'PY' >&2 || die "scoring the daemon"
import csv, json, os, sys
ms = [json.loads(l) for l in open(sys.argv[1], "rb")]
rows = list(csv.DictReader(open(sys.argv[2])))
fps = float(sys.argv[4])
truth = {}
for r in rows:
    for f in range(int(r["first_frame"]), int(r["last_frame"]) + 1):
        truth[f] = r["label_name"]
hellos = [i for i, m in enumerate(ms) if m["type"] == "hello"]
assert len(hellos) >= 2, "no second hello after the reload"
h2 = ms[hellos[-1]]
after = [m for m in ms[hellos[-1]:] if m["type"] == "label"]
# the engine's answer per frame: files are grabbed in frame order, names sort in that order
eng = {}
names = sorted((os.path.basename(l.split("\t")[0]), l.split("\t")[1])
               for l in open(sys.argv[3]) if "\t" in l)
for i, (_, lab) in enumerate(names):
    eng[i] = lab
hits = agree = n = 0
for m in after:
    f = round(m["pts_ns"] * fps / 1e9)
    if f not in truth:
        continue
    n += 1
    hits += m["label"] == truth[f]
    agree += m["label"] == eng.get(f)
eng_acc = sum(eng[f] == truth[f] for f in truth if f in eng) / len(truth)
res = {"hello_labels": h2.get("labels"), "frames": len(truth), "labelled": n,
       "daemon_acc": hits / max(1, n), "engine_acc": eng_acc, "agree": agree / max(1, n)}
json.dump(res, open(sys.argv[5], "w"), indent=1)
print("daemon: new hello labels %s; %d of %d frames labelled, accuracy %.4f; basisnet classify "
      "on the grabbed frames %.4f; same answer on %.2f%% of the frames"
      % (res["hello_labels"], n, len(truth), res["daemon_acc"], eng_acc, 100 * res["agree"]))
PY
fi

# ---- summary ------------------------------------------------------------------------------
"$PY" - "$RUN" "$DJSON" "$OUT/summary.json" "$RUN.log" <<'PY'
import json, re, sys
run, dj, out, log = sys.argv[1:5]
ev = json.load(open(run + "/eval.json"))
a = ev["basisnet"][0]
txt = open(run + "/bn-eval.txt").read()
def num(key):
    m = re.search(r"^%s\s+([0-9.]+)" % key, txt, re.M)
    return float(m.group(1)) if m else None
s = {"run": run, "train_seconds": a.get("train_seconds"), "test_split": ev.get("test_split"),
     "test_images": a["accuracy"]["test_images"], "threshold": a["accuracy"]["threshold"],
     "py_full": a["accuracy"]["test_full"], "py_light": a["accuracy"]["test_light"],
     "py_early_exit": a["accuracy"]["test_early_exit"], "exit_share": a["accuracy"]["exit_share"],
     "mean_madds": a["accuracy"]["mean_madds_early_exit"], "full_madds": a["madds"]["full"],
     "bn_eval_accuracy": num("accuracy"), "daemon": json.load(open(dj)) if dj != "null" else None}
s["madds_saving"] = 1 - s["mean_madds"] / s["full_madds"]
json.dump(s, open(out, "w"), indent=1)
print("flow: %s: held-out full %.4f light %.4f early exit %.4f at t=%.3f (exit %.1f%%, MAdds -%.1f%%); "
      "basisnet eval %.4f; daemon %s; trained %ss"
      % (run, s["py_full"], s["py_light"], s["py_early_exit"], s["threshold"], 100 * s["exit_share"],
         100 * s["madds_saving"], s["bn_eval_accuracy"] or -1,
         "%.4f" % s["daemon"]["daemon_acc"] if s["daemon"] else "skipped", s["train_seconds"]))
PY
