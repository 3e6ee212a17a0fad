#!/bin/bash
# Cameras per box (docs/gate.md#cameras-per-box): N basisnetd daemons, each on its own
# 640x480@30 MJPEG clip looping in real time, for the shipped model and a camera-scale
# model (a random cam96 net until a trained one ships; its scores are about 0.6, so its
# daemons run with gate.min_score 0), gate off and on; then the gate
# against a Frigate-style policy on the same clips. `make bench` runs it with the others;
# a full run takes about 25 minutes and loads both cores.
#
#   bench/cameras/run.sh [OUT]          (default /tmp/bn-cameras)
# Environment: PHASES="clips sweep policy report", CLIPS=8, CLIP_SECONDS=30,
#   GRID=1,8,16,24,32,40,48,56,64, ROUNDS=1, WARMUP=4, MEASURE_S=10, PLOT=FILE.png,
#   CAM96_POLICY_CLIPS=K (the random cam96 net's policy run on the first K clips only;
#   its labels mean nothing, only its CPU does)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/bn-cameras}
PY=${PYTHON:-/usr/bin/python3}
PHASES=${PHASES:-clips sweep policy report}
HERE=$ROOT/bench/cameras
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
[ -x "$ROOT/build/basisnetd" ] || { echo "run.sh: build first (make -j2 all)" >&2; exit 2; }
mkdir -p "$OUT"
CAM96=$OUT/cam96-random.bnm
phase() { case " $PHASES " in *" $1 "*) return 0 ;; esac; return 1; }

if phase clips; then
    [ -f "$OUT/clips/cam00.events.json" ] ||
        nice "$PY" "$HERE/make-clips.py" --out "$OUT/clips" --clips "${CLIPS:-8}" --seconds "${CLIP_SECONDS:-30}"
    [ -f "$CAM96" ] || "$PY" "$ROOT/tools/train/export.py" --random --spec cam96 --out "$CAM96" >/dev/null
fi
if phase sweep; then
    echo "run.sh: load before the sweep: $(cat /proc/loadavg)"
    "$PY" "$HERE/sweep.py" --clips "$OUT/clips" --out "$OUT" \
        --model "fmnist=$ROOT/models/fmnist-basisnet.bnm" --model "cam96=$CAM96" --min-score cam96=0 \
        --grid "${GRID:-1,8,16,24,32,40,48,56,64}" --rounds "${ROUNDS:-1}" \
        --warmup "${WARMUP:-4}" --seconds "${MEASURE_S:-10}"
    echo "run.sh: load after the sweep: $(cat /proc/loadavg)"
fi
if phase policy; then
    "$PY" "$HERE/policy.py" --clips "$OUT/clips" --out "$OUT" --name policy-fmnist \
        --model "$ROOT/models/fmnist-basisnet.bnm"
    "$PY" "$HERE/policy.py" --clips "$OUT/clips" --out "$OUT" --name policy-cam96 --model "$CAM96" \
        --min-score 0 --clip-limit "${CAM96_POLICY_CLIPS:-0}"
fi
if phase report; then
    "$PY" "$HERE/report.py" "$OUT" ${PLOT:+--plot "$PLOT"}
fi
