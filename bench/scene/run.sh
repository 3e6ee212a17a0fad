#!/bin/bash
# The camera-scale benchmark on the generated porch scene (docs/results-camera.md):
#  1. bench/scene/flow.sh at full size: 60 s per training state (1800 frames), a 120 s
#     held-out clip of another day, BasisNet cam96 trained for at most 15 minutes on 2
#     processes, exported, run by `basisnet eval --folder` and by basisnetd on the clip;
#  2. the comparison on the same frames: BasisNet, a static network of BasisNet's full-path
#     MAdds (static-wide) and the light model alone, 2 seeds each, CMP_BUDGET minutes each,
#     scored by one eval.py over the held-out frames (thresholds chosen on validation).
#
#   bench/scene/run.sh [OUT]     (default /tmp/bn-scene; about 15 + 6 x CMP_BUDGET minutes)
# Environment: BUDGET=15 CMP_BUDGET=5 SPEC=cam96, and flow.sh's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/bn-scene}
PY=${PYTHON:-/usr/bin/python3}
CMP_BUDGET=${CMP_BUDGET:-5}
mkdir -p "$OUT/cmp"
BUDGET=${BUDGET:-15} SEED=1 "$ROOT/bench/scene/flow.sh" "$OUT/full"
[ -e "$OUT/cmp/scene" ] || ln -s ../full/scene "$OUT/cmp/scene"
for seed in 1 2; do
    for arch in basisnet static-wide light; do
        ARCH=$arch SEED=$seed BUDGET=$CMP_BUDGET DAEMON=0 "$ROOT/bench/scene/flow.sh" "$OUT/cmp" >&2
    done
done
R=$OUT/cmp/runs
"$PY" "$ROOT/tools/train/eval.py" --checkpoint "$R/basisnet-s1/best.pt" --checkpoint "$R/basisnet-s2/best.pt" \
    --baseline "static-wide=$R/static-wide-s1/best.pt" --baseline "static-wide=$R/static-wide-s2/best.pt" \
    --baseline "light=$R/light-s1/best.pt" --baseline "light=$R/light-s2/best.pt" \
    --test "$OUT/full/scene/held" --json "$OUT/cmp/eval.json" | grep -v "^eval: wrote"
echo "run.sh: results in $OUT/full/summary.json and $OUT/cmp/eval.json"
