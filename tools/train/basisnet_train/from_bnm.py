"""Turn an exported BasisNet model (.bnm) back into a train.py checkpoint.

An export folds every batch norm into the conv before it (docs/model-format.md), so the
file holds W' = W * g / sqrt(var + eps) and b' = beta - mean * g / sqrt(var + eps), not W
and the batch-norm parameters. This tool rebuilds a network that computes the same
function, so that a shipped model can be fine-tuned (`train.py --init OUT`) or used as a
distillation teacher (`train.py --teacher OUT`) after its training checkpoints are gone:

* the architecture (arch basisnet or cascade, number of bases, specialist configuration)
  is found by building each known configuration and comparing its layer list with the
  file's; a file that matches none is refused;
* each conv gets W' divided, per output channel, by the standard deviation s of its
  output over the training split (the network run in eval mode), and its batch norm gets
  running mean m / s, running variance 1, weight s * sqrt(1 + eps) and bias m + b'. In
  eval mode the result is W'x + b' again (checked: the rebuilt network's logits, alphas
  and accuracies are compared with the file's reference forward); in training mode the
  batch statistics are close to the running ones, so training resumes near the model;
* linear and squeeze-excite layers are copied as they are.

The checkpoint records the model file, its training command and seed, and its lineage
(the file's `train.init` and `train.teachers`), so eval.py, export.py and later warm
restarts keep the history.

    /usr/bin/python3 tools/train/from_bnm.py --model models/fmnist-basisnet.bnm \\
        --out tools/train/runs/shipped/last.pt
"""

import argparse
import datetime
import json
import os
import sys

import numpy as np
import torch

from basisnet_train import bnm
from basisnet_train import export as ex
from basisnet_train import models as bm
from basisnet_train.data import SPLIT_SEED, DatasetError, load_dataset
from basisnet_train.metrics import evaluate

TOL = 1e-4  # max relative error of the rebuilt network vs the file's reference forward


class ModelFileError(Exception):
    """A model file this tool cannot turn into a checkpoint; the message names the file."""


def read_model(path):
    try:
        meta, tensors = bnm.read(path)
    except (OSError, ValueError, KeyError) as e:
        raise ModelFileError("%s: not a readable model file (%s)" % (path, e))
    try:
        arch = json.loads(meta["basisnet"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError("%s: no basisnet architecture in the metadata (%s)" % (path, e))
    if "light" not in arch or "specialist" not in arch or not arch.get("synth_layers"):
        raise ModelFileError("%s: not a two-stage model (basisnet or cascade); only those can "
                           "be turned back into a checkpoint" % path)
    return arch, {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}


def match_architecture(path, arch):
    """(train.py args for the architecture, model) whose export layer list equals the file's."""
    n = arch.get("num_bases")
    for spec in sorted(bm.SPEC_CONFIGS):
        if spec == "tiny":
            continue
        for kind in ("basisnet", "cascade"):
            if (kind == "cascade") != (n == 1):
                continue
            model = bm.build_model(kind, bases=n, spec_cfg=spec)
            mine, _ = model.export()
            if all(mine[k] == arch[k] for k in ("num_bases", "light", "specialist", "synth_layers")):
                return {"arch": kind, "bases": n, "spec": spec, "width": None}, model
    raise ModelFileError("%s: its layers match no architecture train.py builds (arch basisnet or "
                       "cascade, --spec %s)" % (path, " or ".join(s for s in sorted(bm.SPEC_CONFIGS)
                                                                 if s != "tiny")))


def conv_modules(model):
    return [m for m in model.modules() if isinstance(m, bm.ConvBN)]


@torch.no_grad()
def load_folded(model, tensors):
    """Folded weights into the model with identity batch norms (eval: W'x + b')."""
    used = set()
    for m in conv_modules(model):
        key = m.name + (".bases" if m.synth else ".weight")
        (m.bases if m.synth else m.weight).copy_(tensors[key])
        bn = m.bn
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.copy_(tensors[m.name + ".bias"])
        used |= {key, m.name + ".bias"}
    for mod in model.modules():
        if isinstance(mod, bm.Linear):
            key = mod.name + (".bases" if mod.synth else ".weight")
            (mod.bases if mod.synth else mod.weight).copy_(tensors[key])
            mod.bias.copy_(tensors[mod.name + ".bias"])
            used |= {key, mod.name + ".bias"}
        elif isinstance(mod, bm.SE):
            for fc in ("fc1", "fc2"):
                for w in ("weight", "bias"):
                    key = "%s.%s.%s" % (mod.name, fc, w)
                    getattr(getattr(mod, fc), w).copy_(tensors[key])
                    used.add(key)
    return used


@torch.no_grad()
def conv_output_stats(model, x_u8, bs=500):
    """Per-channel mean and variance of every conv's output (its batch norm's input) over
    x_u8, the network in eval mode."""
    sums = {}

    def hook(mod, inp, _out):
        y = inp[0].double()
        s = sums.setdefault(mod, [0, 0.0, 0.0])
        s[0] += y.shape[0] * y.shape[2] * y.shape[3]
        s[1] = s[1] + y.sum((0, 2, 3))
        s[2] = s[2] + (y * y).sum((0, 2, 3))

    handles = [m.bn.register_forward_hook(hook) for m in conv_modules(model)]
    model.eval()
    for i in range(0, len(x_u8), bs):
        model(bm.normalize_u8(x_u8[i:i + bs]))
    for h in handles:
        h.remove()
    out = {}
    for m in conv_modules(model):
        n, s1, s2 = sums[m.bn]
        mean = s1 / n
        out[m] = (mean, (s2 / n - mean * mean).clamp(min=0.0))
    return out


@torch.no_grad()
def renormalize(model, stats):
    """Rescale each conv to unit output variance and give its batch norm the statistics it
    will see in training, keeping the eval-mode function (module docstring)."""
    for m, (mean, var) in stats.items():
        bn = m.bn
        s = var.sqrt().clamp(min=1e-6)
        w = m.bases if m.synth else m.weight
        shape = (1, -1, 1, 1, 1) if m.synth else (-1, 1, 1, 1)
        w.div_(s.view(shape).to(w.dtype))
        b_folded = bn.bias.clone()
        bn.running_mean.copy_((mean / s).float())
        bn.running_var.fill_(1.0)
        bn.weight.copy_((s * (1.0 + bn.eps) ** 0.5).float())
        bn.bias.copy_((mean.float() + b_folded))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="exported model (.bnm)")
    ap.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="dataset whose training split gives the batch-norm statistics and "
                         "whose validation and test splits check the result")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None,
                    help="use only N training images for the statistics, and skip the test "
                         "split (smoke tests)")
    ap.add_argument("--check-images", type=int, default=256, metavar="K",
                    help="validation images on which the rebuilt network is compared with the "
                         "file's reference forward (default 256)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        arch, tensors = read_model(args.model)
        a, model = match_architecture(args.model, arch)
    except ModelFileError as e:
        print("from_bnm: %s" % e, file=sys.stderr)
        return 2
    used = load_folded(model, tensors)
    if used != set(tensors):
        print("from_bnm: %s: tensors the architecture does not use: %s"
              % (args.model, sorted(set(tensors) - used)), file=sys.stderr)
        return 2
    split_seed = (arch.get("train") or {}).get("split_seed", SPLIT_SEED)
    try:
        data = load_dataset(args.data, need_test=not args.limit, limit=args.limit,
                               split_seed=split_seed)
    except DatasetError as e:
        print("from_bnm: dataset error: %s" % e, file=sys.stderr)
        return 2
    if data["labels"] != list(arch.get("labels", [])):
        print("from_bnm: %s: labels %s differ from the dataset's %s"
              % (args.model, arch.get("labels"), data["labels"]), file=sys.stderr)
        return 2
    print("from_bnm: %s: arch %s, %d bases, spec %s; batch-norm statistics over %d training "
          "images" % (args.model, a["arch"], a["bases"], a["spec"], len(data["train_x"])),
          flush=True)
    renormalize(model, conv_output_stats(model, data["train_x"]))
    model.eval()

    # the rebuilt network against the file's own reference forward
    k = max(1, args.check_images)
    imgs = data["val_x"][:k].numpy()[..., None]
    ll, al, sl = ex.reference_forward(args.model, imgs)
    with torch.no_grad():
        o = model(bm.normalize_u8(data["val_x"][:k]))
    errs = ex.output_errors(o, ll, al, sl)
    print("from_bnm: max relative error vs the file's reference forward (%d images): %s"
          % (len(imgs), {n: "%.2e" % v for n, v in errs.items()}), flush=True)
    if not all(v <= TOL for v in errs.values()):
        print("from_bnm: the rebuilt network does not reproduce %s (tolerance %g)"
              % (args.model, TOL), file=sys.stderr)
        return 1
    acc = {}
    for split in ("val", "test"):
        if data[split + "_x"] is not None:
            ev = evaluate(model, data[split + "_x"], data[split + "_y"])
            acc[split] = ev
            print("from_bnm: %s full %.4f light %.4f" % (split, ev["acc"], ev.get("light_acc", 0)),
                  flush=True)
    shipped = (arch.get("accuracy") or {}).get("test_full")
    if shipped is not None and "test" in acc:
        print("from_bnm: test full %.4f; the file's metadata says %.4f"
              % (acc["test"]["acc"], shipped), flush=True)
    t = arch.get("train") or {}
    # data: the folder the batch-norm statistics came from, which must be the dataset the
    # model was trained on (train.py checks --init/--teacher splits only within one dataset)
    a.update(seed=t.get("seed", 0), basis_dropout=0.1, split_seed=split_seed,
             data=os.path.abspath(args.data),
             imported_from=os.path.abspath(args.model))
    command = " ".join(["tools/train/from_bnm.py"] + (sys.argv[1:] if argv is None else argv))
    ck = {"args": a, "model": model.state_dict(), "epoch": t.get("epochs", 0), "steps": 0,
          "command": command, "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
          "madds": bm.model_madds(model), "params": sum(p.numel() for p in model.parameters()),
          "history": [], "train_seconds": 0,
          "init": {"checkpoint": args.model, "command": t.get("command"), "epochs": t.get("epochs"),
                   "seed": t.get("seed"), "train_seconds": t.get("train_seconds", 0),
                   "init": t.get("init")},
          "teachers": t.get("teachers")}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(ck, args.out + ".tmp")
    os.replace(args.out + ".tmp", args.out)
    print("from_bnm: wrote %s" % args.out, flush=True)
    return 0
