#!/bin/sh
# Baselines queue used for docs/results-training.md: runs sequentially, 1 thread each,
# same recipe as the shipped run but capped by --epochs and a wall-clock budget per run
# (the build box is shared; see docs/results-training.md).
# Usage: tools/train/run_baselines.sh EPOCHS MINUTES
set -u
EP=${1:-4}
MIN=${2:-15}
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
R=tools/train/runs
run() { name=$1; mins=$2; shift 2
    echo "=== $(date -u +%H:%M:%S) start $name: $*"
    /usr/bin/python3 tools/train/train.py "$@" --threads 1 --erase 0.25 --epochs "$EP" \
        --time-budget "$mins" --out "$R/$name" > "$R/$name.log" 2>&1
    echo "=== $(date -u +%H:%M:%S) end $name rc=$? $(tail -n 1 "$R/$name.log")"
}
run static-wide-s1 "$MIN" --arch static-wide --seed 1
run basisnet-short-s1 "$MIN" --arch basisnet --seed 1 --bases 4
run specialist-s1 "$MIN" --arch specialist --seed 1
run cascade-s1 "$MIN" --arch cascade --seed 1
run light-s1 8 --arch light --seed 1
run static-wide-s2 "$MIN" --arch static-wide --seed 2
run basisnet-short-s2 "$MIN" --arch basisnet --seed 2 --bases 4
echo "=== $(date -u +%H:%M:%S) all done"
