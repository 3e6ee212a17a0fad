#!/bin/bash
# The camera-scale benchmark on the generated porch scene (docs/results-camera.md):
#  1. bench/scene/flow.sh at full size: 60 s per training state (1800 frames), a 120 s
#     held-out clip of another day, BasisNet cam96 trained for at most 15 minutes on 2
#     processes, exported, run by `basisnet eval --folder` and by basisnetd on the clip;
#  2. the comparison on the same frames: BasisNet, a static network of BasisNet's full-path
#     MAdds (static-wide) and the light model alone, 2 seeds each, CMP_BUDGET minutes each,
#     scored by one eval.py over the held-out frames (thresholds chosen on validation);
#  3. the same comparison with only FEW_LIMIT (default 60, about 20 per state) of the
#     training frames, batch 16, 100 epochs each (a fixed step count, not a time budget).
#
#   bench/scene/run.sh [OUT]     (default /tmp/bn-scene; about 15 + 6 x CMP_BUDGET + 6 x 2 minutes)
# Environment: BUDGET=15 CMP_BUDGET=5 FEW_LIMIT=60 SPEC=cam96, PHASES="1 2 3", and flow.sh's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/bn-scene}
PY=${PYTHON:-/usr/bin/python3}
CMP_BUDGET=${CMP_BUDGET:-5}
FEW_LIMIT=${FEW_LIMIT:-60}
PHASES=${PHASES:-1 2 3}
mkdir -p "$OUT"
case " $PHASES " in *" 1 "*) BUDGET=${BUDGET:-15} SEED=1 "$ROOT/bench/scene/flow.sh" "$OUT/full" ;; esac

compare() {  # compare DIR [env...]: 3 architectures x 2 seeds on the full run's frames, one eval.py
    local dir=$1; shift
    mkdir -p "$dir"
    [ -e "$dir/scene" ] || ln -s "$OUT/full/scene" "$dir/scene"
    for seed in 1 2; do
        for arch in basisnet static-wide light; do
            env "$@" ARCH=$arch SEED=$seed DAEMON=0 "$ROOT/bench/scene/flow.sh" "$dir" >&2
        done
    done
    local R=$dir/runs
    "$PY" "$ROOT/tools/train/eval.py" --checkpoint "$R/basisnet-s1/best.pt" --checkpoint "$R/basisnet-s2/best.pt" \
        --baseline "static-wide=$R/static-wide-s1/best.pt" --baseline "static-wide=$R/static-wide-s2/best.pt" \
        --baseline "light=$R/light-s1/best.pt" --baseline "light=$R/light-s2/best.pt" \
        --test "$OUT/full/scene/held" --json "$dir/eval.json" | grep -v "^eval: wrote"
}
case " $PHASES " in *" 2 "*) compare "$OUT/cmp" BUDGET="$CMP_BUDGET" ;; esac
case " $PHASES " in *" 3 "*) compare "$OUT/few" LIMIT="$FEW_LIMIT" BATCH=16 EPOCHS=100 BUDGET=10 ;; esac
echo "run.sh: results in $OUT/full/summary.json, $OUT/cmp/eval.json and $OUT/few/eval.json"
