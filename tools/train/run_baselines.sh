#!/bin/sh
# Baselines queue used for docs/results-training.md (runs sequentially, 1 thread each).
# Usage: tools/train/run_baselines.sh EPOCHS
set -u
EP=${1:-4}
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
R=tools/train/runs
run() { name=$1; shift
    echo "=== $(date -u +%H:%M:%S) start $name: $*"
    /usr/bin/python3 tools/train/train.py "$@" --threads 1 --erase 0.25 --epochs "$EP" --out "$R/$name" > "$R/$name.log" 2>&1
    echo "=== $(date -u +%H:%M:%S) end $name rc=$? $(tail -n 1 "$R/$name.log")"
}
run static-wide-e$EP-s1 --arch static-wide --seed 1
run basisnet-e$EP-s1    --arch basisnet --seed 1 --bases 4
run specialist-e$EP-s1  --arch specialist --seed 1
run cascade-e$EP-s1     --arch cascade --seed 1
run light-e$EP-s1       --arch light --seed 1
run static-wide-e$EP-s2 --arch static-wide --seed 2
run basisnet-e$EP-s2    --arch basisnet --seed 2 --bases 4
echo "=== $(date -u +%H:%M:%S) all done"
