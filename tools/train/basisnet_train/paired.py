"""Paired comparison of checkpoints against a reference, image by image (full path).

  paired.py --checkpoint runs/shipped/last.pt --checkpoint runs/cand-a/last.pt \\
            [--checkpoint runs/cand-b/last.pt ...] [--split val|test|both] [--json out.json]

The first --checkpoint is the reference (normally the shipped model, rebuilt with
from_bnm.py). For every other one it prints, on the validation split (default) or the
test split: both accuracies, the difference, how many images only the candidate gets right
and how many only the reference, and the standard error of the paired difference,
    SE = sqrt(b + c - (b - c)^2 / N) / N      (b, c: the two discordant counts)
with the difference in units of that SE. Two models that disagree on few images have a
small SE, so a difference of a few images can still be noise: a candidate a fraction of an
SE ahead on validation is not shown to be better (docs/training.md, "Releasing the shipped
Fashion-MNIST model"). Choose on validation; read test after the choice.
"""

import argparse
import json
import os
import sys

import torch

from basisnet_train.checkpoint import CheckpointError, load_checkpoint
from basisnet_train.data import (DatasetError, common_split_seed, inp_of, load_dataset,
                                 split_seed_of)
from basisnet_train.metrics import evaluate


def paired(ref_ok, cand_ok):
    """ref_ok, cand_ok: bool tensors (image correct). Returns a dict of the comparison.
    eval.py's early-exit threshold rule uses the same standard error (full path as the
    reference, early exit as the candidate)."""
    n = len(ref_ok)
    b = int((cand_ok & ~ref_ok).sum())
    c = int((ref_ok & ~cand_ok).sum())
    diff = (b - c) / n
    se = (max((b + c) / n - diff * diff, 0.0) / n) ** 0.5
    return dict(images=n, ref_acc=float(ref_ok.float().mean()), acc=float(cand_ok.float().mean()),
                diff=diff, only_candidate=b, only_reference=c, se=se,
                diff_in_se=(diff / se) if se > 0 else 0.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True,
                    help="the reference first, then one or more candidates")
    ap.add_argument("--split", choices=("val", "test", "both"), default="val")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=None,
                    help="use only N training images (and a validation split to match; smoke)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the comparisons here")
    args = ap.parse_args(argv)
    if len(args.checkpoint) < 2:
        ap.error("give the reference and at least one candidate --checkpoint")
    missing = [p for p in args.checkpoint if not os.path.exists(p)]
    if missing:
        print("paired: no such checkpoint: %s" % ", ".join(missing), file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    splits = ("val", "test") if args.split == "both" else (args.split,)
    try:
        runs = [(p,) + load_checkpoint(p) for p in args.checkpoint]  # (path, model, ck)
    except CheckpointError as e:
        print("paired: %s" % e, file=sys.stderr)
        return 2
    run_args = [(p, ck["args"]) for p, _, ck in runs]
    # validation compares only runs that held out the same images; test is common to all
    split_seed = (common_split_seed(run_args, "paired") if "val" in splits
                  else split_seed_of(run_args[0][1]))
    try:
        data = load_dataset(args.data, need_test="test" in splits, limit=args.limit,
                               split_seed=split_seed, inp=inp_of(run_args[0][1]))
    except DatasetError as e:
        print("paired: %s" % e, file=sys.stderr)
        return 1
    for s in splits:
        if data.get(s + "_x") is None:
            print("paired: %s has no %s split" % (args.data, s), file=sys.stderr)
            return 1
    ok = {}
    for path, model, _ in runs:
        for s in splits:
            ev = evaluate(model, data[s + "_x"], data[s + "_y"])
            ok[path, s] = torch.as_tensor(ev["pred"]) == torch.as_tensor(data[s + "_y"])
    ref = args.checkpoint[0]
    print("paired: reference %s" % ref)
    out = []
    for path in args.checkpoint[1:]:
        for s in splits:
            r = paired(ok[ref, s], ok[path, s])
            r.update(checkpoint=path, reference=ref, split=s)
            out.append(r)
            print("%-5s %s: %.2f%% vs %.2f%%  %+.2f pt  (only it %d, only the reference %d of %d; "
                  "paired SE %.2f pt, %+.1f SE)" % (
                      s, path, 100 * r["acc"], 100 * r["ref_acc"], 100 * r["diff"],
                      r["only_candidate"], r["only_reference"], r["images"], 100 * r["se"],
                      r["diff_in_se"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0
