#!/bin/bash
# Synthesis reuse on video: runs basisnetd on a clip with the specialist forced on every
# frame (engine.threshold: 1), once with engine.synth_reuse off and once per tolerance,
# records every label message from the socket, and reports per run: frames, mean synthesis
# and specialist time (from latency_ms), synthesis as a share of the specialist, the share
# of synthesized layers kept (stats), and the frames whose label differs from reuse off.
#
#   bench/reuse/run.sh MODEL CLIP [TOLERANCES...]     (default tolerances: 0.01 0.02 0.05)
#
# Environment: BUILD (build), OUT (build/bench/reuse), CROP (source.crop "x,y,w,h", for a
# camera clip whose model was trained on a region), PYTHON (/usr/bin/python3).
# Writes OUT/<name>.jsonl (labels per run) and OUT/summary.md; prints the summary.
set -euo pipefail
MODEL=$(realpath "${1:?usage: bench/reuse/run.sh MODEL CLIP [TOL...]}")
CLIP=$(realpath "${2:?usage: bench/reuse/run.sh MODEL CLIP [TOL...]}")
shift 2
TOLS=${*:-0.01 0.02 0.05}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
OUT=${OUT:-$BUILD/bench/reuse}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OPENBLAS_NUM_THREADS=1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
name=$(basename "${CLIP%.*}")

if [ -n "${CROP:-}" ]; then
    IFS=, read -r cx cy cw ch <<<"$CROP"
    CROPYAML="  crop: {x: $cx, y: $cy, width: $cw, height: $ch}"
else
    CROPYAML="  aspect: crop"
fi
run() { # tol -> OUT/name-tol.jsonl
    local tol=$1 sock=$T/s.sock
    cat > "$T/c.yaml" <<YAML
camera: reuse-bench
model: $MODEL
log_level: warn
source:
  kind: file
  path: $CLIP
  loop: false
$CROPYAML
engine:
  threads: 1
  threshold: 1.0
  synth_reuse: $tol
publish:
  socket: $sock
YAML
    rm -f "$OUT/$name-$tol.jsonl"
    "$PY" "$ROOT/tests/integration/record_socket.py" "$sock" "$OUT/$name-$tol.jsonl" &
    local sub=$!
    while [ ! -e "$OUT/$name-$tol.jsonl.ready" ]; do sleep 0.01; done
    rm -f "$OUT/$name-$tol.jsonl.ready"
    "$ROOT/$BUILD/basisnetd" --config "$T/c.yaml" --exit-on-eos 2>"$T/daemon-$tol.log" \
        || { cat "$T/daemon-$tol.log" >&2; exit 1; }
    wait $sub
    grep -h "synth\|reuse" "$T/daemon-$tol.log" >&2 || true
}
run 0
for t in $TOLS; do run "$t"; done
L=$("$ROOT/$BUILD/basisnet" info "$MODEL" 2>/dev/null | sed -n 's/.* \([0-9]*\) synthesized layers.*/\1/p')
"$PY" - "$OUT" "$name" "$L" 0 $TOLS > "$OUT/summary-$name.md" <<'PY'
import json, sys
out, name, L, tols = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
def load(t):
    rows = [json.loads(l) for l in open(f"{out}/{name}-{t}.jsonl") if l.startswith('{"type":"label"')]
    return {r["pts_ns"]: r for r in rows}
ref = load("0")
print(f"clip {name}: {len(ref)} frames, specialist on every frame\n")
print("| synth_reuse | frames | mean synth ms | mean specialist ms | synth / specialist | layers kept | labels differing from off |")
print("|---|---|---|---|---|---|---|")
for t in tols:
    r = load(t)
    common = [p for p in ref if p in r]
    spec = [x for x in r.values() if x["stage"] == "specialist"]
    ms = lambda k: sum(x["latency_ms"][k] for x in spec) / max(1, len(spec))
    kept = sum(x.get("synth_reused", 0) for x in spec)
    due = L * len(spec)
    diff = sum(1 for p in common if r[p]["label"] != ref[p]["label"])
    print(f"| {'off' if t == '0' else t} | {len(r)} | {ms('synth'):.4f} | {ms('specialist'):.4f} | "
          f"{100 * ms('synth') / max(1e-9, ms('specialist')):.1f}% | "
          f"{'%.1f%%' % (100 * kept / due) if due and t != '0' else '-'} | {diff} of {len(common)} ({100 * diff / max(1, len(common)):.2f}%) |")
PY
cat "$OUT/summary-$name.md"
