"""Average the weights of runs that share a starting point (a "weight soup"), then
re-estimate BatchNorm statistics on the training split, and write a checkpoint that
eval.py and export.py read like any other.

  /usr/bin/python3 tools/train/soup.py --checkpoint runs/a/last.pt --checkpoint runs/b/last.pt \\
      --out runs/soup-ab/last.pt

Averaging only makes sense for runs fine-tuned from the same weights (train.py --init):
independently initialised networks do not line up unit by unit. Whether the average is
better is for validation to say (eval.py); nothing here looks at the test set.
"""

import argparse
import datetime
import os
import sys

import torch

from basisnet_train.averaging import recalibrate_bn, weight_mean, weight_sum
from basisnet_train.checkpoint import (CheckpointError, arch_mismatch, build_from_args,
                                       parent_record, read_checkpoint)
from basisnet_train.data import DatasetError, common_split_seed, inp_of, load_dataset
from basisnet_train.metrics import evaluate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True,
                    help="a train.py checkpoint; give two or more")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--bn-images", type=int, default=None,
                    help="training images for the BatchNorm statistics (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if len(args.checkpoint) < 2:
        ap.error("give at least two --checkpoint")
    torch.set_num_threads(args.threads)
    cks = []
    for p in args.checkpoint:
        try:
            cks.append(read_checkpoint(p))
        except CheckpointError as e:
            raise SystemExit("soup: %s" % e)
    first = cks[0]["args"]
    for p, ck in zip(args.checkpoint[1:], cks[1:]):
        diff = arch_mismatch(ck["args"], first)
        if diff:
            raise SystemExit("soup: %s: %s is %r there but %r in %s"
                             % ((p,) + diff + (args.checkpoint[0],)))
    split_seed = common_split_seed(zip(args.checkpoint, (c["args"] for c in cks)), "soup")
    acc = None
    for ck in cks:
        acc = weight_sum(ck["model"], acc)
    avg = weight_mean(acc, len(cks))
    model = build_from_args(first)
    model.load_state_dict(avg)
    try:
        data = load_dataset(args.data, split_seed=split_seed, inp=inp_of(first))
    except DatasetError as e:
        raise SystemExit("soup: dataset error: %s" % e)
    x = data["train_x"][:args.bn_images] if args.bn_images else data["train_x"]
    print("soup: averaged %d checkpoints; BatchNorm statistics over %d training images"
          % (len(cks), len(x)), flush=True)
    recalibrate_bn(model, x)
    ev = evaluate(model, data["val_x"], data["val_y"])
    print("soup: val %.4f%s" % (ev["acc"], " val_light %.4f" % ev["light_acc"]
                                 if "light_acc" in ev else ""), flush=True)
    ck = {"args": dict(first), "model": model.state_dict(),
          "epoch": max(c["epoch"] for c in cks),
          "steps": max(c["steps"] for c in cks),
          "command": " ".join(["tools/train/soup.py"] + (argv or sys.argv[1:])),
          "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
          "madds": cks[0]["madds"], "params": cks[0]["params"], "history": [],
          "train_seconds": sum(c.get("train_seconds", 0) for c in cks),
          "init": None,
          "soup": [parent_record(p, c) for p, c in zip(args.checkpoint, cks)]}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(ck, args.out)
    print("soup: wrote %s" % args.out)
    return 0
