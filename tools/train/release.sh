#!/bin/bash
# Release a trained checkpoint as the shipped Fashion-MNIST model: every step and check a
# model ship needs, in order, with one summary at the end (docs/training.md, "Releasing a
# model"). Without --install nothing outside the work directory changes.
set -u
usage() {
    cat <<'EOF'
Usage: tools/train/release.sh CHECKPOINT [--install] [--force] [--no-bench] [--dir DIR]
                              [--reference SHIPPED.pt] [--margin-se K] [--other-split]

Evaluates CHECKPOINT (a train.py or from_bnm.py checkpoint of arch basisnet), exports it,
and checks the export the way the shipped model is checked:

  1. tools/train/eval.py: test accuracy, early-exit sweep, threshold from validation; the
     baselines are carried over from the shipped results (--baselines-from); plot.
  2. tools/train/report.py: the markdown results table.
  3. tools/train/paired.py: the candidate against the shipped model, image by image, on
     validation (the shipped model rebuilt from models/fmnist-basisnet.bnm by from_bnm.py,
     about 4 minutes, kept in build/release/shipped-SHA/ for the next release; or
     --reference). The reference must reproduce the shipped validation accuracy.
  4. tools/train/export.py: .bnm (bases in F16, as shipped: docs/model-format.md), golden
     vectors and labels (self-check within 1e-4).
  5. build/basisnet eval at the chosen threshold and at 1.01 (full path): the C engine must
     reproduce PyTorch's test accuracy within 0.1 point and its exit share within 0.5 point.
  6. tests/integration/daemon_sample.sh: the daemon on the sample clip, scored against the
     clip's ground truth.
  7. bench/budget/run.sh: the budget controller under CPU contention (about 5 minutes;
     skipped with --no-bench). Needs the machine otherwise idle.

The selection rule: the candidate must get more validation images right than the shipped
model (full path; a net margin of at least one image), and that margin must be at least K
standard errors of the paired difference (--margin-se, default 0). The test accuracy is
printed but not used.

Options:
  --install   when every check passed and the candidate passes the selection rule, copy
              the model, golden file and labels to models/, the eval JSON
              to tools/train/results/fmnist-eval.json, the plot to docs/results-training.png
              and the budget results to bench/budget/results/ (as fmnist-TAG.txt and
              contention-fmnist-TAG.png, TAG: the checkpoint's directory name)
  --force     install even when the candidate does not pass the selection rule
  --no-bench  skip step 7
  --reference SHIPPED.pt
              a checkpoint of the shipped model (train.py or from_bnm.py) for step 3,
              instead of rebuilding it
  --margin-se K
              the margin of the selection rule in paired standard errors (default 0)
  --other-split
              the candidate was trained on another validation split (train.py
              --split-seed) than the shipped model, so the selection rule cannot be applied
              (paired.py refuses to compare across splits on validation): step 3 compares
              the two on test instead, for the record only, and the rule counts as not
              passed, so installing needs --force. Use it only for a decision fixed before
              the run (docs/results-training.md)
  --dir DIR   work directory (default build/release/TAG)

Environment: PYTHON (default /usr/bin/python3), FMNIST_DIR (default
/usr/share/datasets/fashion-mnist), THREADS (eval threads, default: all cores).
Exit status: 0 all checks passed (and installed, with --install), 1 a check failed or the
candidate was not installed, 2 bad usage.
EOF
}

CKPT= INSTALL=0 FORCE=0 BENCH=1 DIR= REF= MARGIN=0 OTHER_SPLIT=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --install) INSTALL=1 ;;
        --force) FORCE=1 ;;
        --no-bench) BENCH=0 ;;
        --other-split) OTHER_SPLIT=1 ;;
        --dir) [ $# -ge 2 ] || { echo "release: --dir needs a value" >&2; exit 2; }; DIR=$2; shift ;;
        --reference) [ $# -ge 2 ] || { echo "release: --reference needs a value" >&2; exit 2; }
           REF=$2; shift ;;
        --margin-se) [ $# -ge 2 ] || { echo "release: --margin-se needs a value" >&2; exit 2; }
           MARGIN=$2; shift
           [[ "$MARGIN" =~ ^[0-9]+([.][0-9]+)?$ ]] \
               || { echo "release: --margin-se $MARGIN: not a number >= 0" >&2; exit 2; } ;;
        -*) echo "release: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) [ -z "$CKPT" ] || { echo "release: one checkpoint only (got $CKPT and $1)" >&2; exit 2; }
           CKPT=$1 ;;
    esac
    shift
done
[ -n "$CKPT" ] || { usage >&2; exit 2; }
[ -f "$CKPT" ] || { echo "release: $CKPT: no such file" >&2; exit 2; }
[ -z "$REF" ] || [ -f "$REF" ] || { echo "release: --reference $REF: no such file" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-/usr/bin/python3}
DATA=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
THREADS=${THREADS:-$(nproc)}
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
TAG=$(basename "$(dirname "$CKPT")")
DIR=${DIR:-build/release/$TAG}
SHIPPED_JSON=tools/train/results/fmnist-eval.json
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd) || exit 1
MODEL=$DIR/fmnist-basisnet.bnm
failed=0
step() { echo; echo "== release: $*  ($(date +%H:%M:%S))"; }
bad() { failed=1; echo "release: FAILED: $*"; }

step "1. eval.py $CKPT (test, early-exit sweep, threshold from validation)"
"$PY" tools/train/eval.py --checkpoint "$CKPT" --baselines-from "$SHIPPED_JSON" --data "$DATA" \
    --json "$DIR/fmnist-eval.json" --plot "$DIR/results-training.png" --threads "$THREADS" \
    || { echo "release: eval.py failed"; exit 1; }

step "2. report.py"
"$PY" tools/train/report.py "$DIR/fmnist-eval.json" | tee "$DIR/report.md" || bad "report.py"

# the numbers the later steps check against: candidate and shipped model
read -r THR ACC_EE SHARE ACC_FULL VAL NEW_VAL_EE OLD_VAL OLD_TEST < <("$PY" - "$DIR/fmnist-eval.json" "$SHIPPED_JSON" <<'EOF'
import json, sys
new = json.load(open(sys.argv[1]))["basisnet"][0]["accuracy"]
old = json.load(open(sys.argv[2]))["basisnet"][0]["accuracy"]
print(new["threshold"], new["test_early_exit"], new["exit_share"], new["test_full"],
      new["val_full"], new["val_early_exit"], old["val_full"], old["test_full"])
EOF
)
[ -n "${OLD_TEST:-}" ] || { echo "release: cannot read the accuracy records of $DIR/fmnist-eval.json or $SHIPPED_JSON"; exit 1; }

step "3. paired.py: the candidate against the shipped model on validation"
if [ -z "$REF" ]; then
    SHA=$(sha256sum models/fmnist-basisnet.bnm | cut -c1-12)
    REF=build/release/shipped-$SHA/last.pt
    if [ -f "$REF" ]; then
        echo "release: the shipped model's checkpoint, rebuilt before: $REF"
    else
        "$PY" tools/train/from_bnm.py --model models/fmnist-basisnet.bnm --out "$REF" \
            --data "$DATA" --threads "$THREADS" || { echo "release: from_bnm.py failed"; exit 1; }
    fi
fi
PSPLIT=val
if [ "$OTHER_SPLIT" = 1 ]; then
    PSPLIT=test
    echo "release: --other-split: the selection rule cannot be applied; on test, for the record:"
fi
"$PY" tools/train/paired.py --checkpoint "$REF" --checkpoint "$CKPT" --split $PSPLIT --data "$DATA" \
    --threads "$THREADS" --json "$DIR/paired-$PSPLIT.json" || { echo "release: paired.py failed"; exit 1; }
if [ "$OTHER_SPLIT" = 1 ]; then
    NET=0 IN_SE=0 BETTER=0
else
# the selection rule, from the paired counts; the reference must be the shipped model
read -r NET IN_SE BETTER < <("$PY" - "$DIR/paired-val.json" "$OLD_VAL" "$VAL" "$MARGIN" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))[0]
old_val, val, margin = map(float, sys.argv[2:5])
half = 0.5 / r["images"]
if abs(r["ref_acc"] - old_val) > half or abs(r["acc"] - val) > half:
    sys.exit("release: paired.py's accuracies (reference %.4f, candidate %.4f) are not the "
             "recorded ones (shipped %.4f, candidate %.4f): is the reference the shipped model?"
             % (r["ref_acc"], r["acc"], old_val, val))
net = r["only_candidate"] - r["only_reference"]
print(net, "%.2f" % r["diff_in_se"], int(net >= 1 and r["diff_in_se"] >= margin))
EOF
)
fi
[ -n "${BETTER:-}" ] || { echo "release: cannot apply the selection rule (above)"; exit 1; }

step "4. export.py -> $MODEL"
"$PY" tools/train/export.py --checkpoint "$CKPT" --results "$DIR/fmnist-eval.json" \
    --name fmnist-basisnet-n4 --out "$MODEL" --data "$DATA" --bases f16 > "$DIR/export.log" 2>&1
rc=$?
cat "$DIR/export.log"
[ $rc = 0 ] || { echo "release: export.py failed"; exit 1; }

step "5. C engine vs PyTorch on the 10,000 test images"
make -s all >/dev/null || { echo "release: make all failed"; exit 1; }
IMG=$DATA/t10k-images-idx3-ubyte.gz LAB=$DATA/t10k-labels-idx1-ubyte.gz
build/basisnet eval "$MODEL" --images "$IMG" --labels "$LAB" --threshold "$THR" > "$DIR/c-eval.txt" \
    && build/basisnet eval "$MODEL" --images "$IMG" --labels "$LAB" --threshold 1.01 > "$DIR/c-eval-full.txt" \
    || bad "basisnet eval"
cat "$DIR/c-eval.txt" "$DIR/c-eval-full.txt"
"$PY" - "$DIR/c-eval.txt" "$DIR/c-eval-full.txt" "$ACC_EE" "$SHARE" "$ACC_FULL" <<'EOF' | tee "$DIR/parity.txt"
import re, sys
def field(path, name):
    m = re.search(r"^%s\s+([0-9.]+)" % name, open(path).read(), re.M)
    if not m:
        sys.exit("release: no '%s' line in %s" % (name, path))
    return float(m.group(1))
acc, share = field(sys.argv[1], "accuracy"), field(sys.argv[1], "early-exit share")
full = field(sys.argv[2], "accuracy")
want_acc, want_share, want_full = map(float, sys.argv[3:6])
rows = [("early-exit accuracy", acc, want_acc, 0.001), ("early-exit share", share, want_share, 0.005),
        ("full-path accuracy", full, want_full, 0.001)]
bad = 0
for name, c, p, tol in rows:
    ok = abs(c - p) <= tol
    bad += not ok
    print("parity %-20s C %.4f  PyTorch %.4f  |diff| %.4f  tolerance %.3f  %s"
          % (name, c, p, abs(c - p), tol, "ok" if ok else "FAILED"))
sys.exit(1 if bad else 0)
EOF
[ "${PIPESTATUS[0]}" = 0 ] || bad "C engine parity"

step "6. daemon on the sample clip"
SAMPLE_MODEL="$MODEL" bash tests/integration/daemon_sample.sh 2>&1 | tee "$DIR/sample.txt"
[ "${PIPESTATUS[0]}" = 0 ] || bad "daemon_sample.sh"
! grep -q "^SKIP" "$DIR/sample.txt" || bad "daemon_sample.sh skipped the check"

if [ "$BENCH" = 1 ]; then
    step "7. budget controller benchmark"
    MODEL="$MODEL" bash bench/budget/run.sh 2>&1 | tee "$DIR/budget.txt"
    if [ "${PIPESTATUS[0]}" = 0 ]; then
        cp build/bench/budget/results.txt "$DIR/budget-results.txt"
        cp build/bench/budget/budget-contention.png "$DIR/budget-contention.png"
    else
        bad "bench/budget/run.sh"
    fi
fi

step "summary ($DIR)"
"$PY" - "$VAL" "$OLD_VAL" "$ACC_FULL" "$OLD_TEST" "$THR" "$ACC_EE" "$SHARE" "$NEW_VAL_EE" \
    "$NET" "$IN_SE" "$MARGIN" "$BETTER" "$OTHER_SPLIT" <<'EOF'
import sys
val, old_val, test, old_test, thr, ee, share, val_ee, net, in_se, margin, better, other = map(
    float, sys.argv[1:])
if other:
    print("validation, full path   candidate %.2f%%  shipped %.2f%%  (other splits: not comparable)"
          % (100 * val, 100 * old_val))
    print("selection rule          not applied (--other-split)")
else:
    print("validation, full path   candidate %.2f%%  shipped %.2f%%  (%+.2f pt, %+d images net, %+.2f paired SE)"
          % (100 * val, 100 * old_val, 100 * (val - old_val), net, in_se))
    print("selection rule          net >= 1 image and >= %g paired SE: %s"
          % (margin, "passed" if better else "NOT passed"))
print("test, full path         candidate %.2f%%  shipped %.2f%%  (%+.2f pt; read after the choice)"
      % (100 * test, 100 * old_test, 100 * (test - old_test)))
print("early exit (test)       %.2f%% at threshold %.3f, %.1f%% exits (validation %.2f%%)"
      % (100 * ee, thr, 100 * share, 100 * val_ee))
EOF
[ "$failed" = 0 ] && echo "release: all checks passed" || echo "release: some checks FAILED (see above)"

[ "$INSTALL" = 1 ] || exit "$failed"
if [ "$failed" != 0 ]; then
    echo "release: not installed: a check failed"; exit 1
fi
if [ "$BETTER" != 1 ] && [ "$FORCE" != 1 ]; then
    echo "release: not installed: the candidate does not pass the selection rule on validation (--force overrides)"
    exit 1
fi
step "install"
cp "$MODEL" models/fmnist-basisnet.bnm
cp "$DIR/fmnist-basisnet.golden.safetensors" models/fmnist-basisnet.golden.safetensors
cp "$DIR/fmnist-basisnet.labels" models/fmnist-basisnet.labels
cp "$DIR/fmnist-eval.json" "$SHIPPED_JSON"
cp "$DIR/results-training.png" docs/results-training.png
if [ "$BENCH" = 1 ]; then
    cp "$DIR/budget-results.txt" "bench/budget/results/fmnist-$TAG.txt"
    cp "$DIR/budget-contention.png" "bench/budget/results/contention-fmnist-$TAG.png"
fi
git status --short
echo "release: installed. Still by hand: the numbers in README.md, models/README.md (table and"
echo "recipe), docs/results-training.md, docs/results.md, docs/results-engine.md, docs/daemon.md"
echo "and docs/budget.md; then a clean-clone .ci/run and make asan."
