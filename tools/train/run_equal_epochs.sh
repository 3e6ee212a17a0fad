#!/bin/sh
# Equal-epoch runs (epoch-capped, no wall-clock budget), one after the other on one core:
#   tools/train/run_equal_epochs.sh EPOCHS ARCH[:SEED]...      (seed defaults to 1)
# e.g. tools/train/run_equal_epochs.sh 5 static-wide:1 basisnet:1 static-wide:2 basisnet:2
set -u
EP=$1; shift
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
for spec in "$@"; do
    arch=${spec%%:*}
    seed=1
    case $spec in *:*) seed=${spec#*:} ;; esac
    name=$arch-e$EP-s$seed
    echo "=== $(date -u +%H:%M:%S) start $name"
    /usr/bin/python3 tools/train/train.py --arch "$arch" --seed "$seed" --bases 4 --threads 1 --erase 0.25 \
        --epochs "$EP" --out tools/train/runs/$name > tools/train/runs/$name.log 2>&1
    echo "=== $(date -u +%H:%M:%S) end $name rc=$? $(tail -n 1 tools/train/runs/$name.log)"
done
