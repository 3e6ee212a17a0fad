"""train.py checkpoints: building a model from a run's args, reading and checking a
checkpoint, the records of the runs a run came from (warm restart, weight average,
distillation, SWA), and the split check between related runs."""

import os

import torch

from basisnet_train import models as bm
from basisnet_train.data import split_seed_of


def build_from_args(a):
    return bm.build_model(a["arch"], bases=a["bases"], width=a.get("width"),
                          spec_cfg=a.get("spec", "fmnist"),
                          basis_dropout=a.get("basis_dropout", 0.0),
                          num_classes=a.get("num_classes", bm.NUM_CLASSES))


# checkpoint keys that record how a run was made: the runs it came from (warm restart
# --init, weight average soup.py, distillation --teacher) and its weight averaging (--swa);
# eval.py and export.py copy them
PARENT_KEYS = ("init", "soup", "teachers", "swa")


def parent_record(path, ck):
    """What a derived run (warm restart, weight average, distillation) keeps about a run it
    came from."""
    rec = {"checkpoint": path, "command": ck["command"], "epochs": ck["epoch"],
           "seed": ck["args"]["seed"], "train_seconds": round(ck.get("train_seconds", 0)),
           "init": ck.get("init")}
    if ck.get("soup"):  # a weight average: its members, so that lineage totals reach them
        rec["soup"] = ck["soup"]
    return rec


def arch_mismatch(prev, cur):
    """First architecture argument on which two runs' args differ, as (key, prev, cur), or
    None: runs that agree on all of them have state dicts of the same shapes."""
    for k, default in (("arch", None), ("bases", None), ("spec", "fmnist"), ("width", None),
                       ("num_classes", bm.NUM_CLASSES)):
        if prev.get(k, default) != cur.get(k, default):
            return k, prev.get(k, default), cur.get(k, default)
    return None


class CheckpointError(Exception):
    """A file that is not a usable train.py checkpoint; the message names the file."""


def read_checkpoint(path):
    """The dict a train.py run saved at path (args, model, epoch, command, ...)."""
    try:
        ck = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch.load raises many types on a foreign file
        raise CheckpointError("%s: not a train.py checkpoint (%s: %s)"
                              % (path, type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
    if not isinstance(ck, dict) or not all(k in ck for k in ("args", "model", "epoch", "command")):
        raise CheckpointError("%s: not a train.py checkpoint (no args, model, epoch and command)"
                              % path)
    return ck


def same_dataset(prev, a):
    """Whether two runs trained on the same dataset folder (compared after resolving links;
    a run that recorded no folder counts as the same one, the safe side)."""
    p, q = prev.get("data"), a.get("data")
    return p is None or q is None or os.path.realpath(p) == os.path.realpath(q)


def check_same_split(path, prev, a, opt):
    """A run that starts from (--init) or learns from (--teacher) another run on the same
    dataset must use the same train/validation split: otherwise this run's validation images
    were training images there, and its validation accuracy (every selection) would be
    biased upward. On another dataset (e.g. fine-tuning the shipped Fashion-MNIST model on
    frames of one's own cameras) the two splits share no images, so any seed is fine."""
    if same_dataset(prev, a) and split_seed_of(prev) != split_seed_of(a):
        raise SystemExit("train: %s %s: trained with split seed %d, this run uses %d: this "
                         "run's validation images were in its training data"
                         % (opt, path, split_seed_of(prev), split_seed_of(a)))


def init_from(model, a, path):
    """Start from the weights of an earlier run (warm restart: fresh optimizer and LR
    schedule). The earlier run must have the same architecture. Returns the record of
    where the weights came from, which is kept in the checkpoint and the export."""
    try:
        ck = read_checkpoint(path)
    except CheckpointError as e:
        raise SystemExit("train: --init %s" % e)
    prev = ck["args"]
    diff = arch_mismatch(prev, a)
    if diff:
        raise SystemExit("train: --init %s: %s is %r there but %r here" % ((path,) + diff))
    check_same_split(path, prev, a, "--init")
    model.load_state_dict(ck["model"])
    rec = parent_record(path, ck)
    print("train: initialised from %s (%s epochs of: %s)" % (path, ck["epoch"], ck["command"]),
          flush=True)
    return rec


def load_checkpoint(path):
    """(model in eval mode, checkpoint dict); CheckpointError naming the file if it is not a
    train.py checkpoint or its weights do not fit its recorded architecture."""
    ck = read_checkpoint(path)
    try:
        model = build_from_args(ck["args"])
        model.load_state_dict(ck["model"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError("%s: the weights do not fit the recorded architecture (%s: %s)"
                              % (path, type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
    model.eval()
    return model, ck
