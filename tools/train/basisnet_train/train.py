#!/usr/bin/python3
"""Train BasisNet (and its baselines) for basisnetd.

  OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/train/train.py \
      --arch basisnet --epochs 20 --seed 1 --bases 4 --threads 1 --out tools/train/runs/bn-s1

Data (--data):
  * a directory with Fashion-MNIST idx files (train-images-idx3-ubyte[.gz], ...); or
  * an image-folder tree: one sub-folder per label holding PNG/JPEG images
    (DIR/<label>/*.png), or DIR/train/<label>/ and optionally DIR/test/<label>/; at least
    two classes, all images of one size.
    --spec fmnist: images are converted to 8-bit gray, centre-cropped to a square and
    resized to 28x28. --spec cam96|cam160|cam224: 8-bit RGB, square images (grab them
    with `basisnet grab --size 96x96`, ...), resized (area average) to the spec's side if
    their size differs; no crop, so the region `basisnet grab --crop` chose is kept whole.
The training images are split 55k/5k (or 11/12 : 1/12 for folders) into train/validation
with a fixed split seed (--split-seed, recorded in the checkpoint; every tool that reads
validation uses the checkpoint's); the test set is never used for choices (only eval.py
reads it).

--procs 2 trains one run on two processes (data parallel: each takes half of every batch,
the gradients are averaged, BatchNorm statistics are per process and averaged at every
epoch end); on this 2-core machine it is the way to spend both cores on one run.
"""

import argparse
import os
import sys

import numpy as np
import torch

from basisnet_train import models as bm
from basisnet_train.checkpoint import build_from_args, init_from
from basisnet_train.data import SPLIT_SEED, DatasetError, load_dataset
from basisnet_train.loop import train_loop
from basisnet_train.parallel import run_procs
from basisnet_train.teachers import teacher_targets


def train(args):
    """Prepare data, model and teacher targets once, then train on --procs processes."""
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    inp = bm.spec_parts(args.spec)[2]
    data = load_dataset(args.data, limit=args.limit, split_seed=args.split_seed, inp=inp)
    os.makedirs(args.out, exist_ok=True)
    a = vars(args).copy()
    a["data"] = os.path.abspath(args.data)  # same_dataset() compares it across directories
    a["num_classes"] = len(data["labels"])
    a["labels"] = list(data["labels"])
    if a["erase"] is None:  # erasing can hide what sets a camera frame's label
        a["erase"] = args.erase = 0.5 if inp["channels"] == 1 else 0.0
    model = build_from_args(a)
    if isinstance(model, (bm.StaticNet, bm.ResNetTeacher)):
        a["width"] = model.width
    init = init_from(model, a, args.init) if args.init else None
    teachers, soft = None, None
    if args.teacher:
        soft, teachers = teacher_targets(args.teacher, data["train_x"], args.teacher_temp,
                                         len(data["labels"]), split_args=a)
    ctx = dict(args=args, a=a, data=data, model=model, init=init, teachers=teachers, soft=soft)
    return run_procs(train_loop, ctx, args.procs, args.out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="basisnet",
                    choices=["basisnet", "static-wide", "specialist", "light", "cascade", "resnet"],
                    help="resnet is a distillation teacher only (no export; see training.md)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bases", type=int, default=4)
    ap.add_argument("--spec", default="fmnist", choices=bm.TRAIN_SPECS,
                    help="input and model family: fmnist, fmnist14 (28x28 gray) or cam96, "
                         "cam160, cam224 (RGB camera frames of that side; the light stage "
                         "sees half the side); basisnet_train/models.py SPECS")
    ap.add_argument("--width", type=float, default=None,
                    help="width multiplier: static-wide (default: match BasisNet full-path "
                         "MAdds) or resnet (default 1: 32/64/128 channels)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per process (1 is the most efficient per core here)")
    ap.add_argument("--procs", type=int, default=1, metavar="P",
                    help="train this run on P processes (data parallel, gloo; each takes "
                         "1/P of every batch; use --procs 2 --threads 1 for both cores of "
                         "a 2-core machine)")
    ap.add_argument("--split-seed", type=int, default=SPLIT_SEED, metavar="S",
                    help="seed of the train/validation split (default %d, the split of "
                         "every run before it; a new seed holds out other images, and "
                         "--init/--teacher runs must share it)" % SPLIT_SEED)
    ap.add_argument("--limit", type=int, default=None, help="use only N training images (smoke)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--erase", type=float, default=None,
                    help="random erasing probability (default 0.5 for fmnist, 0 for camera specs)")
    ap.add_argument("--jpeg", type=float, default=0.3, metavar="P",
                    help="camera specs: share of training images given JPEG artefacts")
    ap.add_argument("--no-balance", dest="balance", action="store_false",
                    help="draw images in proportion to their class's size (default: every "
                         "class equally often when the class sizes differ by more than 10%%)")
    ap.add_argument("--t0", type=float, default=10.0, help="initial softmax temperature")
    ap.add_argument("--anneal", type=float, default=0.3, help="fraction of steps to anneal T to 1")
    ap.add_argument("--basis-dropout", type=float, default=0.1)
    ap.add_argument("--light-weight", type=float, default=1.0)
    ap.add_argument("--distill", type=float, default=0.0,
                    help="weight of KL(light || specialist) distillation")
    ap.add_argument("--teacher", action="append", default=[], metavar="CHECKPOINT",
                    help="distil from this trained run (repeat for an ensemble; the mean of "
                    "their soft targets): both outputs learn (1-w) CE + w KD")
    ap.add_argument("--teacher-weight", type=float, default=0.5, metavar="W",
                    help="weight w of the distillation term when --teacher is given (0..1)")
    ap.add_argument("--teacher-temp", type=float, default=2.0, metavar="T",
                    help="softmax temperature of teacher and student in the distillation term")
    ap.add_argument("--init", default=None, metavar="CHECKPOINT",
                    help="start from this checkpoint's weights (same --arch/--bases/--spec); "
                         "optimizer and LR schedule start afresh (a warm restart)")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--time-budget", type=float, default=None,
                    help="minutes; if the wall clock runs out before --epochs, the LR/temperature "
                         "schedule follows elapsed time instead and the run ends on time")
    ap.add_argument("--swa", type=float, default=None, metavar="P",
                    help="stochastic weight averaging (Izmailov et al., 2018): from training "
                         "progress P in [0, 1) on, hold the LR at --swa-lr and average the "
                         "weights at every epoch end; the average, with BatchNorm statistics "
                         "re-estimated on the training split, is written as OUT/swa.pt "
                         "(OUT/last.pt stays the last weights)")
    ap.add_argument("--swa-lr", type=float, default=None, metavar="LR",
                    help="the constant LR of the SWA phase (default: --lr / 3)")
    args = ap.parse_args(argv)
    if args.swa is not None and not 0.0 <= args.swa < 1.0:
        ap.error("--swa must be in [0, 1)")
    if not 0.0 <= args.teacher_weight <= 1.0 or args.teacher_temp <= 0:
        ap.error("--teacher-weight must be in [0, 1] and --teacher-temp > 0")
    if args.procs < 1 or args.procs > 64:
        ap.error("--procs must be 1..64")
    if args.procs > 1 and args.swa is not None:
        ap.error("--swa is not supported with --procs > 1")
    if args.procs > 1 and args.batch % args.procs:
        ap.error("--batch must be a multiple of --procs")
    if args.arch == "cascade":
        args.bases = 1
    try:
        train(args)
    except DatasetError as e:
        print("train: dataset error: %s" % e, file=sys.stderr)
        return 2
    return 0
