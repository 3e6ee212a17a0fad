#!/bin/sh
# Smoke test of the training tools: a tiny training run (a few hundred images, < 60 s),
# loss must fall; export must write a .bnm + golden file and pass its self-check; the C
# engine must match the export's golden vectors;
# bad datasets must be refused with a message naming the file.
# Usage: tools/train/smoke_test.sh   (prints "N passed, N failed"; exit 1 on any failure)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-/usr/bin/python3}
DATA=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
export OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
TMP=$(mktemp -d /tmp/bn-smoke.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
ko() { fail=$((fail + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && sed 's/^/       /' "$2" | tail -n 20; }
# fails_saying PATTERN LOG CMD...: CMD must fail and its output (kept in LOG) say PATTERN
fails_saying() {
    pat=$1 log=$2
    shift 2
    "$@" >"$log" 2>&1 && return 1
    grep -q "$pat" "$log"
}

if [ ! -d "$DATA" ]; then
    # no Fashion-MNIST on this machine: make a small synthetic idx dataset instead
    DATA="$TMP/synth"
    "$PY" "$HERE/smoke_data.py" "$DATA" >"$TMP/synth.log" 2>&1 || { ko "make synthetic dataset" "$TMP/synth.log"; }
fi

# 1. tiny training run; the loss must fall
if timeout 300 "$PY" "$HERE/train.py" --data "$DATA" --limit 256 --epochs 3 --seed 3 --bases 4 \
        --threads 1 --out "$TMP/run" --log-every 0 --erase 0 >"$TMP/train.log" 2>&1; then
    ok "train.py smoke run"
else
    ko "train.py smoke run" "$TMP/train.log"
fi
if "$PY" - "$TMP/run/history.json" >"$TMP/loss.log" 2>&1 <<'EOF'
import json, sys
h = json.load(open(sys.argv[1]))["history"]
first, last = h[0]["loss"], h[-1]["loss"]
print("loss %.4f -> %.4f" % (first, last))
sys.exit(0 if last < first * 0.97 else 1)
EOF
then ok "loss falls ($(cat "$TMP/loss.log"))"; else ko "loss falls" "$TMP/loss.log"; fi

# 1b. warm restart (--init): starts from the trained weights, so its first epoch's loss is
# below the fresh run's last epoch (a fresh start with the same flags is not); the
# checkpoint records where it started; a checkpoint of another architecture is refused
if timeout 300 "$PY" "$HERE/train.py" --data "$DATA" --limit 256 --epochs 1 --seed 3 --bases 4 \
        --threads 1 --t0 1 --init "$TMP/run/last.pt" --out "$TMP/warm" --log-every 0 --erase 0 \
        >"$TMP/warm.log" 2>&1 \
   && "$PY" - "$TMP/run" "$TMP/warm" >>"$TMP/warm.log" 2>&1 <<'EOF'
import json, sys, torch
fresh = json.load(open(sys.argv[1] + "/history.json"))["history"][-1]["loss"]
warm = json.load(open(sys.argv[2] + "/history.json"))["history"][0]["loss"]
init = torch.load(sys.argv[2] + "/last.pt")["init"]
print("loss after the fresh run %.4f, first warm epoch %.4f; init %s" % (fresh, warm, init["checkpoint"]))
sys.exit(0 if warm < fresh and init["checkpoint"] == sys.argv[1] + "/last.pt" else 1)
EOF
then ok "train.py --init warm restart ($(tail -n 1 "$TMP/warm.log"))"
else ko "train.py --init warm restart" "$TMP/warm.log"; fi
if "$PY" "$HERE/train.py" --data "$DATA" --limit 64 --epochs 1 --arch cascade \
        --init "$TMP/run/last.pt" --out "$TMP/x" >"$TMP/badinit.log" 2>&1; then
    ko "--init of another architecture refused" "$TMP/badinit.log"
elif grep -q "arch is 'basisnet' there but 'cascade' here" "$TMP/badinit.log"; then
    ok "--init of another architecture refused"
else
    ko "--init of another architecture refused" "$TMP/badinit.log"
fi

# 1c. weight average (soup.py): float weights are the mean of the two runs', BatchNorm
# statistics are re-estimated, the parents are recorded, and report.py's lineage total
# counts the run both members came from once (the warm run started from the other member)
if timeout 300 "$PY" "$HERE/soup.py" --data "$DATA" --bn-images 256 --checkpoint "$TMP/run/last.pt" \
        --checkpoint "$TMP/warm/last.pt" --out "$TMP/soup/last.pt" >"$TMP/soup.log" 2>&1 \
   && HERE=$HERE "$PY" - "$TMP/run/last.pt" "$TMP/warm/last.pt" "$TMP/soup/last.pt" >>"$TMP/soup.log" 2>&1 <<'EOF'
import os, sys, torch
sys.path.insert(0, os.environ["HERE"])
from basisnet_train.report import lineage_total
a, b, s = (torch.load(p) for p in sys.argv[1:4])
lin = lineage_total(s, "epochs")
w = [k for k in s["model"] if k.endswith(".bases") or k.endswith(".weight")]
err = max(float((s["model"][k] - (a["model"][k] + b["model"][k]) / 2).abs().max()) for k in w)
bn = [k for k in s["model"] if k.endswith("running_mean")]
moved = sum(not torch.equal(s["model"][k], a["model"][k]) for k in bn)
print("%d weight tensors, max error vs mean %.1e; %d/%d BN means re-estimated; lineage %g epochs"
      % (len(w), err, moved, len(bn), lin))
sys.exit(0 if err < 1e-6 and moved == len(bn) and len(s["soup"]) == 2
         and lin == a["epoch"] + b["epoch"] else 1)
EOF
then ok "soup.py weight average ($(tail -n 1 "$TMP/soup.log"))"
else ko "soup.py weight average" "$TMP/soup.log"; fi

# 1c'. paired comparison (paired.py): a checkpoint against itself has no discordant image
# and no difference; against another, its accuracies are those metrics.evaluate gives and the
# discordant counts add up to the difference
if timeout 300 "$PY" "$HERE/paired.py" --data "$DATA" --limit 500 --checkpoint "$TMP/run/last.pt" \
        --checkpoint "$TMP/run/last.pt" --checkpoint "$TMP/warm/last.pt" --json "$TMP/paired.json" \
        >"$TMP/paired.log" 2>&1 \
   && "$PY" - "$HERE" "$DATA" "$TMP/run/last.pt" "$TMP/warm/last.pt" "$TMP/paired.json" >>"$TMP/paired.log" 2>&1 <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
from basisnet_train.checkpoint import load_checkpoint
from basisnet_train.data import load_dataset
from basisnet_train.metrics import evaluate
d = load_dataset(sys.argv[2], limit=500)
acc = [evaluate(load_checkpoint(p)[0], d["val_x"], d["val_y"])["acc"] for p in sys.argv[3:5]]
same, other = json.load(open(sys.argv[5]))
n = len(d["val_y"])
good = (same["only_candidate"] == same["only_reference"] == 0 and same["diff"] == 0
        and abs(other["ref_acc"] - acc[0]) < 1e-6 and abs(other["acc"] - acc[1]) < 1e-6
        and other["only_candidate"] - other["only_reference"] == round((acc[1] - acc[0]) * n)
        and other["images"] == n)
import torch
from basisnet_train.paired import paired
T = lambda v: torch.tensor(v, dtype=torch.bool)
k1 = paired(T([1, 1, 0, 0, 1]), T([1, 0, 1, 1, 0]))   # 2 and 2 discordant: diff 0, SE sqrt(4)/5
k2 = paired(T([1, 0, 0, 0]), T([1, 1, 1, 0]))         # 2 and 0: diff 0.5, SE sqrt(2 - 1)/4
good = good and (k1["only_candidate"], k1["only_reference"], k1["diff"]) == (2, 2, 0) \
    and abs(k1["se"] - 0.4) < 1e-12 and abs(k2["diff"] - 0.5) < 1e-12 and abs(k2["se"] - 0.25) < 1e-12 \
    and abs(k2["diff_in_se"] - 2) < 1e-12
print("self: 0/0 discordant; other: %.4f vs %.4f, %d/%d discordant of %d, SE %.4f" % (
    other["acc"], other["ref_acc"], other["only_candidate"], other["only_reference"], n, other["se"]))
sys.exit(0 if good else 1)
EOF
then ok "paired.py comparison, SE formula on two known cases ($(tail -n 1 "$TMP/paired.log"))"
else ko "paired.py comparison" "$TMP/paired.log"; fi

# 1d. distillation (--teacher): with --teacher-weight 1 both outputs learn only the teacher's
# soft targets, so a student trained on the same images with every label changed ends with
# bit-identical weights, while another teacher gives other weights; with weight 0.5 the
# labels count, so the weights differ (control). The teacher is recorded in the checkpoint.
"$PY" "$HERE/smoke_data.py" "$TMP/kdA" 300 20 >"$TMP/kd.log" 2>&1
cp -r "$TMP/kdA" "$TMP/kdB"
if "$PY" - "$TMP/kdB/train-labels-idx1-ubyte.gz" >>"$TMP/kd.log" 2>&1 <<'EOF'
import gzip, sys
b = bytearray(gzip.open(sys.argv[1]).read())
b[8:] = bytes((v + 1) % 10 for v in b[8:])
gzip.open(sys.argv[1], "wb").write(bytes(b))
EOF
then
    kd_ok=1
    for w in 1 0.5; do
        for d in kdA kdB; do
            timeout 300 "$PY" "$HERE/train.py" --data "$TMP/$d" --limit 256 --epochs 1 --seed 5 \
                --bases 4 --threads 1 --teacher "$TMP/run/last.pt" --teacher-weight $w \
                --out "$TMP/kd-$d-$w" --log-every 0 >>"$TMP/kd.log" 2>&1 || kd_ok=0
        done
    done
    timeout 300 "$PY" "$HERE/train.py" --data "$TMP/kdA" --limit 256 --epochs 1 --seed 5 --bases 4 \
        --threads 1 --teacher "$TMP/warm/last.pt" --teacher-weight 1 --out "$TMP/kd-kdA-1-warm" \
        --log-every 0 >>"$TMP/kd.log" 2>&1 || kd_ok=0
fi
if [ "${kd_ok:-0}" = 1 ] && "$PY" - "$TMP" >>"$TMP/kd.log" 2>&1 <<'EOF'
import sys, torch
ck = {k: torch.load("%s/kd-%s/last.pt" % (sys.argv[1], k))
      for k in ("kdA-1", "kdB-1", "kdA-0.5", "kdB-0.5", "kdA-1-warm")}
def diff(a, b):
    return max(float((ck[a]["model"][k].float() - ck[b]["model"][k].float()).abs().max()) for k in ck[a]["model"])
d1, d05, dt = diff("kdA-1", "kdB-1"), diff("kdA-0.5", "kdB-0.5"), diff("kdA-1", "kdA-1-warm")
t = ck["kdA-1"]["teachers"]
print("weight 1: labels changed %.1e, teacher changed %.1e; weight 0.5: labels changed %.1e; "
      "teacher %s" % (d1, dt, d05, t[0]["checkpoint"]))
sys.exit(0 if d1 == 0 and dt > 1e-4 and d05 > 1e-4
         and t[0]["checkpoint"].endswith("/run/last.pt") else 1)
EOF
then ok "train.py --teacher distillation ($(tail -n 1 "$TMP/kd.log"))"
else ko "train.py --teacher distillation" "$TMP/kd.log"; fi

# 1e. teacher-target cache (CKPT.targets-T2.pt): in 1d the three runs after the first with
# the same teacher and images read it; a garbage cache and a touched teacher (new mtime) are
# recomputed, and the student is bit-identical to kdA-1 every time.
cache="$TMP/run/last.pt.targets-T2.pt"
hits=$(grep -c "run/last.pt .*targets for .* from its cache" "$TMP/kd.log")
kdrun() {
    timeout 300 "$PY" "$HERE/train.py" --data "$TMP/kdA" --limit 256 --epochs 1 --seed 5 --bases 4 \
        --threads 1 --teacher "$TMP/run/last.pt" --teacher-weight 1 --out "$TMP/$1" --log-every 0 \
        >"$TMP/$1.log" 2>&1
}
if [ "${kd_ok:-0}" = 1 ] && printf 'not a cache' >"$cache" \
        && kdrun kd-garbage && grep -q "teacher cache .* unreadable" "$TMP/kd-garbage.log" \
        && touch "$TMP/run/last.pt" && kdrun kd-touched && ! grep -q "from its cache" "$TMP/kd-touched.log" \
        && kdrun kd-hit && grep -q "from its cache" "$TMP/kd-hit.log" \
        && [ "$hits" = 3 ] && "$PY" - "$TMP" >"$TMP/kdc.log" 2>&1 <<'EOF'
import sys, torch
ck = {k: torch.load("%s/%s/last.pt" % (sys.argv[1], k))["model"]
      for k in ("kd-kdA-1", "kd-garbage", "kd-touched", "kd-hit")}
same = all(torch.equal(ck["kd-kdA-1"][n], ck[k][n]) for k in ck for n in ck[k])
print("3 cache hits in 1d; garbage and stale caches recomputed; students bit-identical: %s" % same)
sys.exit(0 if same else 1)
EOF
then ok "train.py teacher-target cache ($(tail -n 1 "$TMP/kdc.log"))"
else ko "train.py teacher-target cache (cache hits in 1d: $hits)" "$TMP/kd-garbage.log"; fi

# 1f. stochastic weight averaging (--swa): from progress P on the LR is constant and each
# epoch's end weights are averaged; with --swa 0.5 over 2 epochs only the last epoch is in
# the average, so swa.pt holds last.pt's weights with re-estimated BatchNorm statistics and
# every logged LR of epoch 2 is the SWA LR; over 3 epochs with --swa 0.3, epochs 2 and 3 are
# averaged (weights differ from the last); weight_sum/weight_mean give the element-wise mean
swarun() {
    timeout 300 "$PY" "$HERE/train.py" --data "$DATA" --limit 256 --seed 3 --bases 4 --threads 1 \
        --erase 0 --t0 1 --init "$TMP/run/last.pt" --swa-lr 0.0007 --log-every 1 "$@" \
        >>"$TMP/swa.log" 2>&1
}
if swarun --epochs 2 --swa 0.5 --out "$TMP/swa2" && swarun --epochs 3 --swa 0.3 --out "$TMP/swa3" \
   && "$PY" - "$TMP" "$HERE" >>"$TMP/swa.log" 2>&1 <<'EOF'
import re, sys, torch
sys.path.insert(0, sys.argv[2])
from basisnet_train import models as bm
from basisnet_train.averaging import weight_mean, weight_sum
t = sys.argv[1]
log = open(t + "/swa.log").read().split("train: done")[0]
lrs = [float(v) for v in re.findall(r"ep 2 \d+/\d+ loss \S+ lr (\S+)", log)]
s2, l2 = torch.load(t + "/swa2/swa.pt"), torch.load(t + "/swa2/last.pt")
s3, l3 = torch.load(t + "/swa3/swa.pt"), torch.load(t + "/swa3/last.pt")
w = [k for k in l2["model"] if k.endswith(".bases") or k.endswith(".weight")]
same2 = all(torch.equal(s2["model"][k], l2["model"][k]) for k in w)
bn = [k for k in l2["model"] if k.endswith("running_mean")]
moved = sum(not torch.equal(s2["model"][k], l2["model"][k]) for k in bn)
d3 = max(float((s3["model"][k] - l3["model"][k]).abs().max()) for k in w)
m = [bm.build_model("basisnet", spec_cfg="tiny", light_cfg="tiny") for _ in range(3)]
acc = None
for x in m:
    acc = weight_sum(x.state_dict(), acc)
mean = weight_mean(acc, 3)
err = max(float((mean[k] - sum(x.state_dict()[k] for x in m) / 3).abs().max())
          for k in mean if mean[k].is_floating_point())
print("samples %s and %s; 1 sample = last weights: %s, %d/%d BN means re-estimated; "
      "2 samples differ from the last by %.1e; epoch-2 LRs %s; mean error %.1e"
      % (s2["swa"]["at_epochs"], s3["swa"]["at_epochs"], same2, moved, len(bn), d3,
         sorted(set(lrs)), err))
sys.exit(0 if s2["swa"]["at_epochs"] == [2.0] and s3["swa"]["at_epochs"] == [2.0, 3.0]
         and same2 and moved == len(bn) and d3 > 1e-5 and lrs and set(lrs) == {7e-4}
         and err < 1e-6 else 1)
EOF
then ok "train.py --swa weight averaging ($(tail -n 1 "$TMP/swa.log"))"
else ko "train.py --swa weight averaging" "$TMP/swa.log"; fi

# 1g. the resnet teacher (--arch resnet): it trains; its MAdds counter gives the hand count
# for width 0.25 (8/16/32 channels: 5,074,368); export.py refuses it by name; a student
# distils from it and records it; eval.py --ensemble of that run alone scores what
# --baseline scores for it, and the two-run ensemble scores what a direct mean of the two
# softmax outputs scores
if "$PY" "$HERE/smoke_data.py" "$TMP/rnA" 400 300 >"$TMP/rn.log" 2>&1 \
   && timeout 300 "$PY" "$HERE/train.py" --data "$TMP/rnA" --arch resnet --width 0.25 --epochs 6 \
        --batch 32 --seed 4 --threads 1 --out "$TMP/rn" --log-every 0 >>"$TMP/rn.log" 2>&1 \
   && ! "$PY" "$HERE/export.py" --checkpoint "$TMP/rn/last.pt" --data "$TMP/rnA" \
        --out "$TMP/rn.bnm" >>"$TMP/rn.log" 2>&1 \
   && grep -q "can be exported (got resnet)" "$TMP/rn.log" \
   && timeout 300 "$PY" "$HERE/train.py" --data "$TMP/rnA" --epochs 2 --batch 32 --seed 5 --bases 4 \
        --threads 1 --teacher "$TMP/rn/last.pt" --teacher-weight 1 --out "$TMP/kd-rn" \
        --log-every 0 >>"$TMP/rn.log" 2>&1 \
   && timeout 300 "$PY" "$HERE/eval.py" --data "$TMP/rnA" --checkpoint "$TMP/kd-rn/last.pt" \
        --baseline rn="$TMP/rn/last.pt" --ensemble one="$TMP/rn/last.pt" \
        --ensemble two="$TMP/rn/last.pt,$TMP/kd-rn/last.pt" --json "$TMP/rn-eval.json" \
        >>"$TMP/rn.log" 2>&1 \
   && "$PY" - "$TMP" "$HERE" >>"$TMP/rn.log" 2>&1 <<'EOF'
import json, sys, torch
sys.path.insert(0, sys.argv[2])
from basisnet_train import models as bm
from basisnet_train.checkpoint import load_checkpoint
from basisnet_train.data import load_dataset
t = sys.argv[1]
rn, rck = load_checkpoint(t + "/rn/last.pt")
st, sck = load_checkpoint(t + "/kd-rn/last.pt")
e = json.load(open(t + "/rn-eval.json"))
base, one = e["baselines"]["rn"][0]["accuracy"], e["ensembles"]["one"]["accuracy"]
two = e["ensembles"]["two"]
d = load_dataset(t + "/rnA", need_test=True)
with torch.no_grad():
    p = sum(torch.softmax(m(bm.normalize_u8(d["test_x"]))["logits"], 1) for m in (rn, st))
direct = float((p.argmax(1) == d["test_y"]).float().mean())
print("resnet MAdds %d; teacher recorded: %s; one-run ensemble %.4f/%.4f vs baseline "
      "%.4f/%.4f; two-run ensemble %.4f vs direct %.4f"
      % (rck["madds"]["full"], sck["teachers"][0]["checkpoint"], one["test_full"],
         one["val_full"], base["test_full"], base["val_full"], two["accuracy"]["test_full"],
         direct))
sys.exit(0 if rck["madds"]["full"] == 5074368 and rck["args"]["width"] == 0.25
         and sck["teachers"][0]["checkpoint"].endswith("/rn/last.pt")
         and one["test_full"] == base["test_full"] and one["val_full"] == base["val_full"]
         and two["accuracy"]["test_full"] == direct
         and two["madds"]["full"] == 5074368 + sck["madds"]["full"] else 1)
EOF
then ok "train.py --arch resnet teacher ($(tail -n 1 "$TMP/rn.log"))"
else ko "train.py --arch resnet teacher" "$TMP/rn.log"; fi

# 1h. eval.py --baselines-from: the baselines recorded in 1g's JSON are carried over as they
# are, a --baseline evaluated now is added beside them (and scores what 1g recorded for the
# same run), the source is named in the output; a file without baselines is refused by name
if timeout 300 "$PY" "$HERE/eval.py" --data "$TMP/rnA" --checkpoint "$TMP/kd-rn/last.pt" \
        --baselines-from "$TMP/rn-eval.json" --baseline now="$TMP/rn/last.pt" \
        --json "$TMP/rn-eval2.json" >"$TMP/bf.log" 2>&1 \
   && ! "$PY" "$HERE/eval.py" --data "$TMP/rnA" --checkpoint "$TMP/kd-rn/last.pt" \
        --baselines-from "$TMP/rn/history.json" --json "$TMP/x.json" >>"$TMP/bf.log" 2>&1 \
   && grep -q "baselines-from $TMP/rn/history.json: no \"baselines\" in it" "$TMP/bf.log" \
   && "$PY" - "$TMP" >>"$TMP/bf.log" 2>&1 <<'EOF'
import json, sys
t = sys.argv[1]
a, b = json.load(open(t + "/rn-eval.json")), json.load(open(t + "/rn-eval2.json"))
print("recorded group kept: %s; evaluated now %.4f vs recorded %.4f; source %s"
      % (a["baselines"]["rn"] == b["baselines"]["rn"], b["baselines"]["now"][0]["accuracy"]["test_full"],
         a["baselines"]["rn"][0]["accuracy"]["test_full"], b.get("baselines_from", "")[len(t) + 1:]))
sys.exit(0 if a["baselines"]["rn"] == b["baselines"]["rn"]
         and b["baselines"]["now"][0]["accuracy"] == a["baselines"]["rn"][0]["accuracy"]
         and b["summary"]["rn"] == a["summary"]["rn"]
         and b["baselines_from"] == t + "/rn-eval.json" else 1)
EOF
then ok "eval.py --baselines-from ($(tail -n 1 "$TMP/bf.log"))"
else ko "eval.py --baselines-from" "$TMP/bf.log"; fi

# 1i. one run on two processes (--procs 2, data parallel), with its own train/validation
# split (--split-seed): it trains (run from another directory, with a relative --out); the
# gradient averaging gives the whole batch's gradient; the split seed is recorded and a
# different split holds out other images; runs of different splits are not mixed on
# validation (--init, paired.py --split val, soup.py refuse), test comparisons still work
if (cd "$TMP" && timeout 300 "$PY" "$HERE/train.py" --data "$DATA" --limit 256 --epochs 3 --seed 3 \
        --bases 4 --procs 2 --split-seed 7 --out p2 --log-every 0 --erase 0) >"$TMP/p2.log" 2>&1 \
   && "$PY" - "$HERE" "$TMP/p2" "$DATA" >>"$TMP/p2.log" 2>&1 <<'EOF'
import json, os, sys, multiprocessing as mp
sys.path.insert(0, sys.argv[1])
import torch
from basisnet_train.checkpoint import read_checkpoint
from basisnet_train.data import load_dataset, split_seed_of
from basisnet_train.parallel import Parallel
h = json.load(open(sys.argv[2] + "/history.json"))
ck = read_checkpoint(sys.argv[2] + "/last.pt")
loss = [e["loss"] for e in h["history"]]
good = loss[-1] < loss[0] * 0.97 and ck["args"]["procs"] == 2 and split_seed_of(ck["args"]) == 7

def grads(rank, world, store, q):
    torch.manual_seed(5)
    lin = torch.nn.Linear(6, 3)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    if world == 1:
        torch.nn.functional.cross_entropy(lin(x), y).backward()
    else:
        par = Parallel(rank, world, store)
        torch.nn.functional.cross_entropy(lin(x[rank::world]), y[rank::world]).backward()
        par.average_grads(list(lin.parameters()))
    q.put((rank, world, [p.grad.tolist() for p in lin.parameters()]))  # plain data: the
    # queue must not hold tensors in shared memory of a process that exits

ctx = mp.get_context("fork")
q = ctx.Queue()
store = os.path.abspath(sys.argv[2] + "/grad-store")
ps = [ctx.Process(target=grads, args=(r, 2, store, q)) for r in range(2)]
for p in ps:
    p.start()
grads(0, 1, None, q)
got = [q.get(timeout=60) for _ in range(3)]
for p in ps:
    p.join()
full = [g for r, w, g in got if w == 1][0]
err = max(float((torch.tensor(a) - torch.tensor(b)).abs().max())
          for r, w, g in got if w == 2 for a, b in zip(g, full))
good = good and err < 1e-6
d0, d7 = load_dataset(sys.argv[3], limit=500), load_dataset(sys.argv[3], limit=500, split_seed=7)
same = len(set(map(bytes, d0["val_x"].numpy())) & set(map(bytes, d7["val_x"].numpy())))
good = good and len(d0["val_x"]) == len(d7["val_x"]) and same < len(d0["val_x"]) // 2
print("loss %.4f -> %.4f, split seed %d; averaged gradient vs whole batch: max error %.1e; "
      "%d of %d validation images shared by two splits" % (loss[0], loss[-1], split_seed_of(
          ck["args"]), err, same, len(d0["val_x"])))
sys.exit(0 if good else 1)
EOF
then ok "--procs 2 with --split-seed ($(tail -n 1 "$TMP/p2.log"))"
else ko "--procs 2 with --split-seed" "$TMP/p2.log"; fi
# refuses PATTERN CMD...: CMD must fail and say PATTERN (all output collected in split.log)
refuses() {
    pat=$1
    shift
    fails_saying "$pat" "$TMP/split1.log" "$@"
    r=$?
    cat "$TMP/split1.log" >>"$TMP/split.log"
    return $r
}
: >"$TMP/split.log"
n=0
refuses "trained with split seed 7, this run uses 20261126" "$PY" "$HERE/train.py" --data "$DATA" \
    --limit 64 --epochs 1 --init "$TMP/p2/last.pt" --out "$TMP/x" && n=$((n + 1))
refuses "paired: the runs use different train/validation splits" "$PY" "$HERE/paired.py" --data "$DATA" \
    --limit 500 --checkpoint "$TMP/run/last.pt" --checkpoint "$TMP/p2/last.pt" && n=$((n + 1))
refuses "soup: the runs use different train/validation splits" "$PY" "$HERE/soup.py" --data "$DATA" \
    --checkpoint "$TMP/run/last.pt" --checkpoint "$TMP/p2/last.pt" --out "$TMP/x.pt" && n=$((n + 1))
"$PY" "$HERE/paired.py" --data "$DATA" --limit 500 --split test --checkpoint "$TMP/run/last.pt" \
    --checkpoint "$TMP/p2/last.pt" >>"$TMP/split.log" 2>&1 && n=$((n + 1))
# another dataset folder (here: links to the same files): the splits are not compared, so a
# model of one dataset can be fine-tuned on another whatever split seed either used
mkdir -p "$TMP/other-data" && ln -sf "$DATA"/* "$TMP/other-data/"
"$PY" "$HERE/train.py" --data "$TMP/other-data" --limit 64 --epochs 1 --init "$TMP/p2/last.pt" \
    --log-every 0 --out "$TMP/other-run" >>"$TMP/split.log" 2>&1 && n=$((n + 1))
if [ "$n" -eq 5 ]; then ok "runs of different splits: --init, paired.py val and soup.py refuse, test compares; --init from another dataset's run trains"
else ko "runs of different splits refused on validation, accepted across datasets ($n of 5)" "$TMP/split.log"; fi

# 2. export of the trained checkpoint (self-check asserts folded reference == module)
if "$PY" "$HERE/export.py" --checkpoint "$TMP/run/last.pt" --data "$DATA" --golden 4 \
        --out "$TMP/smoke.bnm" >"$TMP/export.log" 2>&1 \
        && grep -q "self-check" "$TMP/export.log" \
        && [ -s "$TMP/smoke.bnm" ] && [ -s "$TMP/smoke.golden.safetensors" ]; then
    ok "export + self-check"
else
    ko "export + self-check" "$TMP/export.log"
fi

# 2b. the C engine runs the exported file and matches its golden vectors (1e-4); needs the
# parity test binary from `make` (BUILD: build directory, default build)
PARITY="$HERE/../../${BUILD:-build}/tests/test_engine_parity"
if [ ! -x "$PARITY" ]; then
    ko "C engine parity on the export: $PARITY not built (run: make BUILD=${BUILD:-build} ${BUILD:-build}/tests/test_engine_parity)"
elif BN_PARITY_MODEL="$TMP/smoke.bnm" BN_PARITY_GOLDEN="$TMP/smoke.golden.safetensors" \
        "$PARITY" >"$TMP/parity.log" 2>&1 && grep -q "smoke.bnm" "$TMP/parity.log"; then
    ok "C engine parity on the export ($(grep -o 'max rel[^,]*' "$TMP/parity.log" | tail -n 1))"
else
    ko "C engine parity on the export" "$TMP/parity.log"
fi

# 3. random fixture export
if "$PY" "$HERE/export.py" --random --out "$TMP/random.bnm" >"$TMP/random.log" 2>&1; then
    ok "export --random"
else
    ko "export --random" "$TMP/random.log"
fi

# 3b. from_bnm.py turns the export back into a checkpoint: in eval mode it predicts what the
# trained run predicts (logits within 1e-4), every batch norm has the unit-variance running
# statistics it was given, a warm restart from it trains and records it; a model of an
# architecture train.py does not build (the random tiny fixture) and a file that is no model
# are refused, naming the file
if timeout 300 "$PY" "$HERE/from_bnm.py" --model "$TMP/smoke.bnm" --data "$DATA" --limit 256 \
        --check-images 16 --threads 1 --out "$TMP/imp/last.pt" >"$TMP/imp.log" 2>&1 \
   && timeout 300 "$PY" "$HERE/train.py" --data "$DATA" --limit 256 --epochs 1 --seed 3 \
        --bases 4 --threads 1 --log-every 0 --erase 0 --init "$TMP/imp/last.pt" \
        --out "$TMP/impwarm" >>"$TMP/imp.log" 2>&1 \
   && "$PY" - "$TMP" "$DATA" "$HERE" >>"$TMP/imp.log" 2>&1 <<'EOF'
import sys, torch
sys.path.insert(0, sys.argv[3])
from basisnet_train import models as bm
from basisnet_train.checkpoint import load_checkpoint
from basisnet_train.data import load_dataset
t, data = sys.argv[1], sys.argv[2]
d = load_dataset(data, limit=256)
a, _ = load_checkpoint(t + "/run/last.pt")
b, bck = load_checkpoint(t + "/imp/last.pt")
_, wck = load_checkpoint(t + "/impwarm/last.pt")
with torch.no_grad():
    x = bm.normalize_u8(d["val_x"])
    oa, ob = a(x), b(x)
err = max(float(((oa[k] - ob[k]).abs() / oa[k].abs().clamp(min=1)).max())
          for k in ("logits", "light_logits", "alpha"))
same = bool((oa["logits"].argmax(1) == ob["logits"].argmax(1)).all())
bns = [m for m in b.modules() if isinstance(m, torch.nn.BatchNorm2d)]
unit = all(bool((m.running_var == 1).all()) for m in bns)
print("from_bnm: max rel err %.2e over %d val images, same predictions %s, %d batch norms "
      "unit-variance %s, warm restart init %s" % (err, len(x), same, len(bns), unit,
                                                  wck["init"]["checkpoint"]))
sys.exit(0 if err < 1e-4 and same and unit and len(bns) > 20
         and wck["init"]["checkpoint"] == t + "/imp/last.pt"
         and bck["init"]["checkpoint"] == t + "/smoke.bnm" else 1)
EOF
then ok "from_bnm.py round trip ($(tail -n 1 "$TMP/imp.log" | cut -c11-))"
else ko "from_bnm.py round trip" "$TMP/imp.log"; fi
fbnm_refused() {
    if fails_saying "$2" "$TMP/bad.log" "$PY" "$HERE/from_bnm.py" --model "$1" --data "$DATA" \
            --limit 64 --out "$TMP/x.pt"; then ok "$3"; else ko "$3" "$TMP/bad.log"; fi
}
fbnm_refused "$TMP/random.bnm" "random.bnm: its layers match no architecture" \
    "from_bnm.py refuses an architecture train.py does not build"
fbnm_refused "$TMP/folders" "folders: not a readable model file" \
    "from_bnm.py refuses a file that is no model"

# 3c. release.sh: bad usage is refused (exit 2); a checkpoint that eval.py refuses (the
# resnet teacher of 1g has no early exit) stops the release at its first step with exit 1,
# and nothing is installed even with --install
REL=$HERE/release.sh
sum_models() { cat "$HERE/../../models/"* "$HERE/results/fmnist-eval.json" 2>/dev/null | cksum; }
before=$(sum_models)
"$REL" >"$TMP/rel.log" 2>&1; r1=$?
"$REL" "$TMP/none.pt" >>"$TMP/rel.log" 2>&1; r2=$?
"$REL" "$TMP/rn/last.pt" --install --no-bench --dir "$TMP/rel" >>"$TMP/rel.log" 2>&1; r3=$?
"$REL" "$TMP/rn/last.pt" --margin-se -1 >>"$TMP/rel.log" 2>&1; r4=$?
"$REL" "$TMP/rn/last.pt" --reference "$TMP/none.pt" >>"$TMP/rel.log" 2>&1; r5=$?
if [ $r1 = 2 ] && [ $r2 = 2 ] && grep -q "none.pt: no such file" "$TMP/rel.log" && [ $r3 = 1 ] \
   && grep -q "release: eval.py failed" "$TMP/rel.log" && ! grep -q "== release: 3" "$TMP/rel.log" \
   && [ $r4 = 2 ] && grep -q "margin-se -1: not a number >= 0" "$TMP/rel.log" \
   && [ $r5 = 2 ] && grep -q "reference .*none.pt: no such file" "$TMP/rel.log" \
   && [ "$(sum_models)" = "$before" ]; then
    ok "release.sh refuses bad usage and a resnet checkpoint, installs nothing"
else ko "release.sh refuses bad usage and a resnet checkpoint, installs nothing (exits $r1 $r2 $r3 $r4 $r5)" "$TMP/rel.log"; fi

# 4. bad datasets are refused, naming the problem
# refused NAME DATA PATTERN [ARGS...]: train.py on DATA (with ARGS) must fail and say PATTERN
refused() {
    name=$1 data=$2 pattern=$3
    shift 3
    if fails_saying "$pattern" "$TMP/bad.log" "$PY" "$HERE/train.py" --data "$data" --epochs 1 \
            --out "$TMP/x" "$@"; then ok "$name"; else ko "$name" "$TMP/bad.log"; fi
}
mkdir -p "$TMP/badmagic"
printf '\000\000\010\001\000\000\000\001x' | gzip >"$TMP/badmagic/train-images-idx3-ubyte.gz"
cp "$TMP/badmagic/train-images-idx3-ubyte.gz" "$TMP/badmagic/train-labels-idx1-ubyte.gz"
refused "wrong idx magic refused" "$TMP/badmagic" "train-images-idx3-ubyte.gz: wrong idx magic"
mkdir -p "$TMP/folders/cat" "$TMP/folders/dog"
printf 'not an image' >"$TMP/folders/cat/a.png"
refused "empty class refused" "$TMP/folders" "dog: empty class folder"
printf 'x' >"$TMP/folders/dog/b.png.txt"
"$PY" -c "
import numpy as np, matplotlib; matplotlib.use('Agg'); import matplotlib.image as m
m.imsave('$TMP/folders/dog/b.png', np.zeros((28,28)), cmap='gray')" 2>/dev/null
refused "unreadable image refused" "$TMP/folders" "cat/a.png: unreadable image"
refused "missing folder refused" "$TMP/nonexistent" "nonexistent: no such dataset folder"
# bad teachers: a 10-class teacher for a 2-class folder dataset, a file that is no checkpoint
rm -f "$TMP/folders/cat/a.png" "$TMP/folders/dog/b.png.txt"
cp "$TMP/folders/dog/b.png" "$TMP/folders/cat/a.png"
refused "teacher of another class count refused" "$TMP/folders" \
    "the teacher has 10 classes, the data 2" --teacher "$TMP/run/last.pt"
refused "teacher that is no checkpoint refused" "$DATA" \
    "cat/a.png: not a train.py checkpoint" --limit 64 --teacher "$TMP/folders/cat/a.png"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
