#!/bin/sh
# Equal-epoch baselines (epoch-capped, no wall-clock budget): tools/train/run_equal_epochs.sh EPOCHS ARCH...
set -u
EP=$1; shift
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
for arch in "$@"; do
    name=$arch-e$EP-s1
    echo "=== $(date -u +%H:%M:%S) start $name"
    /usr/bin/python3 tools/train/train.py --arch "$arch" --seed 1 --bases 4 --threads 1 --erase 0.25 \
        --epochs "$EP" --out tools/train/runs/$name > tools/train/runs/$name.log 2>&1
    echo "=== $(date -u +%H:%M:%S) end $name rc=$? $(tail -n 1 tools/train/runs/$name.log)"
done
