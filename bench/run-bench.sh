#!/bin/bash
# `make bench`: runs every bench/*/run.sh in turn. Benchmarks report medians over repeated
# runs and ratios measured side by side in the same run; they assert nothing about speed.
set -u
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
status=0
for b in bench/*/run.sh; do
    [ -e "$b" ] || continue
    echo "=== bench: $b"
    bash "$b" || { echo "=== bench: $b FAILED"; status=1; }
done
exit $status
