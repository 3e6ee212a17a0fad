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
import datetime
import gzip
import hashlib
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import basisnet_model as bm  # noqa: E402

FMNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
SPLIT_SEED = 20261126
VAL_FMNIST = 5000
IMG_EXT = (".png", ".jpg", ".jpeg")


class DatasetError(Exception):
    pass


# --------------------------------------------------------------------------------------
# data loading
# --------------------------------------------------------------------------------------

def _open_maybe_gz(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx(path, kind):
    """kind: 'images' (magic 0x803, 3 dims) or 'labels' (magic 0x801, 1 dim)."""
    want = {"images": (0x803, 3), "labels": (0x801, 1)}[kind]
    try:
        with _open_maybe_gz(path) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError("%s: cannot read: %s" % (path, e))
    if len(raw) < 4:
        raise DatasetError("%s: too short for an idx file" % path)
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != want[0]:
        raise DatasetError("%s: wrong idx magic 0x%08x (expected 0x%08x for %s)"
                           % (path, magic, want[0], kind))
    nd = want[1]
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    n = int(np.prod(dims))
    body = raw[4 + 4 * nd:]
    if len(body) != n:
        raise DatasetError("%s: expected %d bytes of data for shape %s, found %d"
                           % (path, n, dims, len(body)))
    return np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()


def _find(d, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def _read_image_rgb(path, side):
    """A camera-spec image: (3, side, side) uint8 and its size as read (w, h)."""
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("%s: reading RGB images needs python3-pil" % path)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            size = im.size
            if size[0] != size[1]:
                raise DatasetError("%s: %dx%d is not square: camera specs take square images "
                                   "(basisnet grab --size %dx%d, with --crop for a region)"
                                   % (path, size[0], size[1], side, side))
            if size != (side, side):
                im = im.resize((side, side), Image.BOX if size[0] > side else Image.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except DatasetError:
        raise
    except Exception as e:  # PIL raises many types for corrupt files
        raise DatasetError("%s: unreadable image: %s" % (path, e))
    return np.ascontiguousarray(a.transpose(2, 0, 1)), size


def _read_image(path, inp=None):
    """One image as the spec's input: (28, 28) gray for fmnist, (3, S, S) for a camera
    spec; and its size as read (w, h) (None when unknown)."""
    if inp is not None and inp["channels"] == 3:
        return _read_image_rgb(path, inp["size"])
    return _read_image_gray(path)


def _read_image_gray(path):
    """(28, 28) gray and the size as read (w, h); the size is None without PIL."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            im = im.convert("L")
            w, h = im.size
            if w != h:  # centre crop to square, like the daemon's `source.aspect: crop`
                s = min(w, h)
                im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            if im.size != (28, 28):
                im = im.resize((28, 28), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).copy(), (w, h)
    except ImportError:
        pass
    except Exception as e:  # PIL raises many types for corrupt files
        raise DatasetError("%s: unreadable image: %s" % (path, e))
    # fallback without PIL: matplotlib reads PNG natively
    if not path.lower().endswith(".png"):
        raise DatasetError("%s: only PNG is supported without PIL" % path)
    try:
        import matplotlib.image as mpimg
        a = mpimg.imread(path)
    except Exception as e:
        raise DatasetError("%s: unreadable image: %s" % (path, e))
    if a.ndim == 3:
        a = a[..., :3].mean(-1)
    if a.dtype != np.uint8:
        a = (a * 255).round().clip(0, 255).astype(np.uint8)
    h, w = a.shape
    if w != h:
        s = min(w, h)
        a = a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    if a.shape != (28, 28):
        t = torch.from_numpy(a.astype(np.float32))[None, None]
        a = F.interpolate(t, (28, 28), mode="bilinear", align_corners=False)[0, 0]
        a = a.round().clamp(0, 255).byte().numpy()
    return a, None


def read_image_folder(root, labels=None, inp=None):
    """(images uint8 (N,28,28) or (N,3,S,S), labels int64 (N,), class names) of a folder
    tree root/<label>/*.png|jpg. DatasetError (naming the folder or file) for a missing
    folder, fewer than two classes, an empty class, an unreadable image, or images of
    different sizes."""
    if not os.path.isdir(root):
        raise DatasetError("%s: no such folder" % root)
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DatasetError("%s: no class sub-folders (expected one folder per label)" % root)
    if labels is None and len(classes) < 2:
        raise DatasetError("%s: only one class folder (%s): a classifier needs at least two "
                           "labels, one folder each" % (root, classes[0]))
    if labels is not None and classes != sorted(labels):
        raise DatasetError("%s: class folders %s differ from the training classes %s"
                           % (root, classes, sorted(labels)))
    labels = labels or classes
    listing = []
    for c in labels:  # check every class before reading any image
        d = os.path.join(root, c)
        files = sorted(f for f in os.listdir(d) if f.lower().endswith(IMG_EXT))
        if not files:
            raise DatasetError("%s: empty class folder (no .png/.jpg images)" % d)
        listing.append((d, files))
    xs, ys = [], []
    first = None
    for ci, (d, files) in enumerate(listing):
        for f in files:
            path = os.path.join(d, f)
            x, size = _read_image(path, inp)
            if size is not None:
                if first is None:
                    first = (path, size)
                elif size != first[1]:
                    raise DatasetError("%s is %dx%d but %s is %dx%d: all images of a data set "
                                       "must have one size (grab them with one --size)"
                                       % (path, size[0], size[1], first[0], first[1][0],
                                          first[1][1]))
            xs.append(x)
            ys.append(ci)
    return np.stack(xs), np.array(ys, dtype=np.int64), labels


def split_seed_of(args):
    """The train/validation split seed a run used (its checkpoint args; runs made before
    --split-seed existed used SPLIT_SEED)."""
    return args.get("split_seed", SPLIT_SEED)


def common_split_seed(named_args, tool):
    """The one split seed of several runs, given as (name, args) pairs. Runs with different
    splits cannot be compared or combined on validation: SystemExit naming them."""
    seeds = {}
    for name, a in named_args:
        seeds.setdefault(split_seed_of(a), []).append(name)
    if len(seeds) > 1:
        raise SystemExit("%s: the runs use different train/validation splits (%s); their "
                         "validation numbers cannot be compared" % (tool, "; ".join(
                             "split seed %d: %s" % (k, ", ".join(v)) for k, v in seeds.items())))
    return next(iter(seeds)) if seeds else SPLIT_SEED


def inp_of(args):
    """The input spec (basisnet_model.INPUTS) of a run's args."""
    return bm.spec_parts(args.get("spec", "fmnist"))[2]


def load_dataset(data, seed=None, need_test=False, limit=None, split_seed=SPLIT_SEED,
                 inp=None):
    """Returns dict with uint8 tensors train_x/val_x/test_x ((N,28,28) for the fmnist
    input, (N,3,S,S) for a camera spec's inp), int64 *_y, labels.
    The train/validation split uses split_seed (fixed, independent of the training seed;
    SPLIT_SEED unless a run chose another with --split-seed)."""
    if not os.path.exists(data):
        raise DatasetError("%s: no such dataset folder" % data)
    tr_img = _find(data, "train-images-idx3-ubyte")
    if tr_img and inp is not None and inp["channels"] != 1:
        raise DatasetError("%s: idx files hold 28x28 gray images; a camera spec needs an "
                           "image folder (DIR/<label>/*.png)" % data)
    if tr_img:
        tr_lab = _find(data, "train-labels-idx1-ubyte")
        if not tr_lab:
            raise DatasetError("%s: train-labels-idx1-ubyte[.gz] missing" % data)
        x, y = read_idx(tr_img, "images"), read_idx(tr_lab, "labels")
        if len(x) != len(y):
            raise DatasetError("%s / %s: %d images but %d labels" % (tr_img, tr_lab, len(x), len(y)))
        labels = FMNIST_LABELS
        nval = VAL_FMNIST if len(x) > 2 * VAL_FMNIST else max(1, len(x) // 12)
        tx = ty = None
        te_img = _find(data, "t10k-images-idx3-ubyte")
        te_lab = _find(data, "t10k-labels-idx1-ubyte")
        if need_test and te_img and te_lab:
            tx, ty = read_idx(te_img, "images"), read_idx(te_lab, "labels")
            if len(tx) != len(ty):
                raise DatasetError("%s: %d images but %d labels" % (te_img, len(tx), len(ty)))
        y = y.astype(np.int64)
        if y.max() >= len(labels):
            raise DatasetError("%s: label %d out of range" % (tr_lab, y.max()))
    else:
        tr_root = os.path.join(data, "train") if os.path.isdir(os.path.join(data, "train")) else data
        x, y, labels = read_image_folder(tr_root, inp=inp)
        nval = max(1, len(x) // 12)
        tx = ty = None
        te_root = os.path.join(data, "test")
        if need_test and tr_root != data and os.path.isdir(te_root):
            tx, ty, _ = read_image_folder(te_root, labels, inp=inp)
            if tx.shape[1:] != x.shape[1:]:
                raise DatasetError("%s: test images are %s, training images %s"
                                   % (te_root, tx.shape[1:], x.shape[1:]))
    g = np.random.RandomState(split_seed)
    perm = g.permutation(len(x))
    vi, ti = perm[:nval], perm[nval:]
    if limit:
        ti = ti[:limit]
        vi = vi[:max(100, min(len(vi), limit // 5))]
    out = {"labels": list(labels),
           "train_x": torch.from_numpy(x[ti]), "train_y": torch.from_numpy(y[ti]),
           "val_x": torch.from_numpy(x[vi]), "val_y": torch.from_numpy(y[vi]),
           "test_x": None, "test_y": None}
    if tx is not None:
        out["test_x"], out["test_y"] = torch.from_numpy(tx), torch.from_numpy(ty.astype(np.int64))
    return out


# --------------------------------------------------------------------------------------
# augmentation (on uint8 batches, then normalized)
# --------------------------------------------------------------------------------------

def augment(xb, gen, pad=2, erase_p=0.5):
    """xb: uint8 (B,28,28). Random crop with zero padding, horizontal flip, random erasing.
    Returns normalized float (B,1,28,28) and the (B,) bool flags of the mirrored images."""
    B, H, W = xb.shape
    xp = F.pad(xb.float(), (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (B,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (B,), generator=gen)
    rows = (oy[:, None] + torch.arange(H))[:, :, None]
    cols = (ox[:, None] + torch.arange(W))[:, None, :]
    flip = torch.rand(B, generator=gen) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    x = xp[torch.arange(B)[:, None, None], rows, cols]
    x = (x / 255.0 - bm.MEAN) / bm.STD
    x = x.unsqueeze(1)
    if erase_p > 0:
        x = _erase(x, gen, erase_p)
    return x, flip


_BLUR = None


def augment_camera(xb, gen, inp, erase_p=0.0, jpeg_p=0.3):
    """Augmentation for a fixed camera: xb uint8 (B,3,S,S). Per image: a small shift
    (up to 4% of the side), scale (0.92-1.08) and rotation (2 degrees), the shake of a
    mounted camera; gain 0.3-1.3x (log-uniform), contrast 0.7-1.3, a colour cast (channel
    gains 0.85-1.15), a slight blur (p 0.25), sensor noise growing as the gain drops, and
    JPEG artefacts (p jpeg_p, quality 20-80). No mirror image (a fixed scene has a left and
    a right) and no erasing by default (it can hide the object that sets the label).
    Returns the normalized float (B,3,S,S) and all-False flip flags."""
    global _BLUR
    B, C, H, W = xb.shape
    x = xb.float() / 255.0
    u = lambda lo, hi: torch.empty(B).uniform_(lo, hi, generator=gen)  # noqa: E731
    ang = u(-2, 2) * math.pi / 180
    sc = u(0.92, 1.08)
    th = torch.zeros(B, 2, 3)
    th[:, 0, 0] = torch.cos(ang) / sc
    th[:, 0, 1] = -torch.sin(ang) / sc
    th[:, 1, 0] = torch.sin(ang) / sc
    th[:, 1, 1] = torch.cos(ang) / sc
    th[:, 0, 2] = u(-0.08, 0.08)
    th[:, 1, 2] = u(-0.08, 0.08)
    grid = F.affine_grid(th, (B, C, H, W), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if _BLUR is None:
        k = torch.tensor([0.25, 0.5, 0.25])
        _BLUR = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
    blur = (torch.rand(B, generator=gen) < 0.25)[:, None, None, None]
    x = torch.where(blur, F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), _BLUR, groups=3), x)
    gain = torch.exp(u(math.log(0.3), math.log(1.3)))
    m = x.mean((1, 2, 3), keepdim=True)
    x = (x - m) * u(0.7, 1.3).view(B, 1, 1, 1) + m
    cast = torch.empty(B, 3).uniform_(0.85, 1.15, generator=gen)
    x = x * gain.view(B, 1, 1, 1) * cast.view(B, 3, 1, 1)
    sigma = u(0.0, 0.03).view(B, 1, 1, 1) / gain.clamp(min=0.3).sqrt().view(B, 1, 1, 1)
    x = x + torch.randn(x.shape, generator=gen) * sigma * (0.3 + x.clamp(min=0).sqrt())
    x = (x.clamp(0, 1) * 255).round()
    if jpeg_p > 0:
        x = _jpeg(x, gen, jpeg_p)
    x = (x / 255.0 - torch.tensor(inp["mean"]).view(1, 3, 1, 1)) / torch.tensor(inp["std"]).view(1, 3, 1, 1)
    if erase_p > 0:
        x = _erase(x, gen, erase_p)
    return x, torch.zeros(B, dtype=torch.bool)


def _jpeg(x, gen, p):
    """JPEG-compresses a random share p of the images of x (float 0..255, (B,3,H,W))."""
    try:
        import io
        from PIL import Image
    except ImportError:
        return x
    pick = (torch.rand(len(x), generator=gen) < p).nonzero().flatten().tolist()
    qual = torch.randint(20, 81, (len(x),), generator=gen)
    for i in pick:
        im = Image.fromarray(x[i].permute(1, 2, 0).byte().numpy())
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(qual[i]))
        buf.seek(0)
        with Image.open(buf) as j:
            x[i] = torch.from_numpy(np.asarray(j.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float()
    return x


def _erase(x, gen, erase_p):
    """Random erasing (Zhong et al., 2020) on normalized (B,C,H,W): a rectangle of 2-25%
    of the image replaced by noise, with probability erase_p per image."""
    B, _, H, W = x.shape
    area = torch.empty(B).uniform_(0.02, 0.25, generator=gen) * H * W
    logr = torch.empty(B).uniform_(math.log(0.3), math.log(3.3), generator=gen)
    eh = (area * logr.exp()).sqrt().round().clamp(1, H - 1)
    ew = (area / logr.exp()).sqrt().round().clamp(1, W - 1)
    y0 = (torch.rand(B, generator=gen) * (H - eh + 1)).floor()
    x0 = (torch.rand(B, generator=gen) * (W - ew + 1)).floor()
    ar = torch.arange(H, dtype=torch.float32)
    ac = torch.arange(W, dtype=torch.float32)
    m = ((ar[None, :, None] >= y0[:, None, None]) & (ar[None, :, None] < (y0 + eh)[:, None, None])
         & (ac[None, None, :] >= x0[:, None, None]) & (ac[None, None, :] < (x0 + ew)[:, None, None]))
    m &= (torch.rand(B, generator=gen) < erase_p)[:, None, None]
    noise = torch.randn(x.shape, generator=gen)
    return torch.where(m[:, None], noise, x)


def balanced_order(y, n_classes, gen):
    """An epoch's sample order in which every class is drawn equally often: len(y) draws
    with replacement, each image weighted by 1 / (its class's count)."""
    counts = torch.bincount(y, minlength=n_classes).float()
    w = 1.0 / counts[y]
    return torch.multinomial(w, len(y), replacement=True, generator=gen)


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------

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


@torch.no_grad()
def teacher_targets(paths, x_u8, temp, classes, bs=500, split_args=None):
    """Soft targets of a teacher (the mean of the softmax(logits / temp) of one or more
    trained runs, full path) for every training image and its mirror image, computed once
    on the clean images: (N, 2, classes), index 1 = flipped. The student sees the augmented
    image (crop, erasing) but learns the teacher's answer for the clean one, as in Noisy
    Student (Xie et al., 2020), so the targets cost nothing per step. Returns the targets
    and the records of the teachers.

    Each teacher's targets are cached next to its checkpoint (CKPT.targets-T<temp>.pt), keyed
    by the checkpoint's size and mtime and a SHA-256 of the images, so runs that share a
    teacher compute its targets once; a stale or foreign cache is recomputed."""
    key_x = hashlib.sha256(x_u8.numpy().tobytes()).hexdigest()
    tgt, recs = None, []
    for path in paths:
        try:
            t, ck = load_checkpoint(path)
        except CheckpointError as e:
            raise SystemExit("train: --teacher %s" % e)
        if split_args is not None:
            check_same_split(path, ck["args"], split_args, "--teacher")
        n_cls = t(t.normalize(x_u8[:1]))["logits"].shape[1]
        if n_cls != classes:
            raise SystemExit("train: --teacher %s: the teacher has %d classes, the data %d"
                             % (path, n_cls, classes))
        st = os.stat(path)
        key = {"images": key_x, "size": st.st_size, "mtime": st.st_mtime_ns, "temp": temp}
        cache = "%s.targets-T%g.pt" % (path, temp)
        p = None
        if os.path.exists(cache):
            try:
                c = torch.load(cache, map_location="cpu")
                if c.get("key") == key:
                    p = c["p"]
            except Exception as e:  # noqa: BLE001 - any unreadable cache is recomputed
                print("train: teacher cache %s unreadable (%s: %s); recomputing"
                      % (cache, type(e).__name__, e))
        t0, cached = time.time(), p is not None
        if p is None:
            out = []
            for flip in (False, True):
                ps = []
                for i in range(0, len(x_u8), bs):
                    xb = x_u8[i:i + bs]
                    xb = xb.flip(-1) if flip else xb
                    ps.append(torch.softmax(t(t.normalize(xb))["logits"] / temp, 1))
                out.append(torch.cat(ps))
            p = torch.stack(out, 1)
            tmp = "%s.tmp%d" % (cache, os.getpid())
            try:
                torch.save({"key": key, "p": p}, tmp)
                os.replace(tmp, cache)
            except OSError as e:
                print("train: cannot write teacher cache %s (%s); continuing" % (cache, e))
        elif p.shape != (len(x_u8), 2, classes):
            raise SystemExit("train: --teacher %s: cached targets have shape %s, expected %s"
                             % (path, tuple(p.shape), (len(x_u8), 2, classes)))
        tgt = p if tgt is None else tgt + p
        recs.append(parent_record(path, ck))
        print("train: teacher %s (%s epochs, %s): targets for %d images %s"
              % (path, ck["epoch"], ck["args"]["arch"], len(x_u8),
                 "from its cache" if cached else "in %.0fs" % (time.time() - t0)), flush=True)
    return tgt / len(paths), recs


def kd_loss(logits, target, temp):
    """Hinton et al. (2015) distillation term: KL(target || softmax(logits / temp)) * temp^2."""
    return F.kl_div(F.log_softmax(logits / temp, 1), target, reduction="batchmean") * temp * temp


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


@torch.no_grad()
def evaluate(model, x_u8, y, bs=500):
    """Returns dict: acc (full path / static), loss (its mean cross-entropy), light_acc,
    light_conf, light_pred, pred."""
    model.eval()
    preds, lpreds, lconf = [], [], []
    loss = 0.0
    for i in range(0, len(x_u8), bs):
        o = model(model.normalize(x_u8[i:i + bs]))
        loss += float(F.cross_entropy(o["logits"], y[i:i + bs], reduction="sum"))
        preds.append(o["logits"].argmax(1))
        if "light_logits" in o:
            p = torch.softmax(o["light_logits"], 1)
            c, lp = p.max(1)
            lpreds.append(lp)
            lconf.append(c)
    pred = torch.cat(preds)
    r = {"acc": float((pred == y).float().mean()), "loss": loss / max(1, len(y)), "pred": pred}
    if lpreds:
        lp = torch.cat(lpreds)
        r.update(light_acc=float((lp == y).float().mean()), light_pred=lp,
                 light_conf=torch.cat(lconf))
    return r


def weight_sum(sd, acc=None):
    """Running sum of a state dict's floating-point tensors (SWA, soup.py); integer buffers
    are kept from the latest one."""
    if acc is None:
        return {k: v.detach().clone() for k, v in sd.items()}
    for k, v in sd.items():
        if v.is_floating_point():
            acc[k] += v.detach()
        else:
            acc[k] = v.detach().clone()
    return acc


def weight_mean(acc, n):
    return {k: (v / n if v.is_floating_point() else v) for k, v in acc.items()}


@torch.no_grad()
def recalibrate_bn(model, x_u8, bs=500):
    """Cumulative (not running) mean/var of every BatchNorm over x_u8, in training mode
    with basis dropout off: the statistics an averaged network actually sees."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    drop = getattr(model, "basis_dropout", 0.0)
    model.basis_dropout = 0.0
    model.train()
    for i in range(0, len(x_u8), bs):
        model(model.normalize(x_u8[i:i + bs]))
    model.basis_dropout = drop
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.eval()


def fmt_t(s):
    s = int(s)
    return "%d:%02d:%02d" % (s // 3600, s % 3600 // 60, s % 60)


class _Parallel:
    """Data parallelism over `world` processes (gloo, one thread each): every process
    takes its share of every batch and the gradients are averaged, so a step is the step
    one process would take on the whole batch (BatchNorm aside: each process normalises
    its own share, and the running statistics are averaged at every epoch end)."""

    def __init__(self, rank, world, store_path):
        import torch.distributed as dist
        self.dist, self.rank, self.world = dist, rank, world
        dist.init_process_group("gloo", init_method="file://" + store_path,
                                rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=30))
        self.flat = None

    def broadcast_float(self, v):
        t = torch.tensor([v], dtype=torch.float64)
        self.dist.broadcast(t, 0)
        return float(t[0])

    def average_grads(self, params):
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if self.flat is None:
            self.flat = torch.empty(sum(g.numel() for g in grads))
        torch.cat([g.reshape(-1) for g in grads], out=self.flat)
        self.dist.all_reduce(self.flat)
        self.flat /= self.world
        off = 0
        for p, g in zip(params, grads):
            p.grad = self.flat[off:off + g.numel()].view_as(g).clone()
            off += g.numel()

    def sum(self, values):
        t = torch.tensor(values, dtype=torch.float64)
        self.dist.all_reduce(t)
        return t.tolist()

    def average_bn_stats(self, model):
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                for b in (m.running_mean, m.running_var):
                    self.dist.all_reduce(b)
                    b /= self.world

    def check_in_step(self, model):
        """The processes' weights must stay identical (same averaged gradients, same
        optimizer); a difference would mean they trained different models."""
        s = float(sum(p.double().sum() for p in model.parameters()))
        t = torch.tensor([s, -s], dtype=torch.float64)
        self.dist.all_reduce(t, op=self.dist.ReduceOp.MAX)
        if float(t[0]) != -float(t[1]):
            raise RuntimeError("train: --procs: the processes' weights differ (checksums "
                               "%.17g vs %.17g)" % (float(t[0]), -float(t[1])))


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
    if args.procs == 1:
        return train_loop(ctx)
    # the workers are forked: they inherit data, targets and the identical initial weights
    store = os.path.abspath(os.path.join(args.out, ".procs-store.%d" % os.getpid()))
    if os.path.exists(store):
        os.unlink(store)
    mp = multiprocessing.get_context("fork")
    procs = [mp.Process(target=_worker, args=(ctx, r, args.procs, store))
             for r in range(args.procs)]
    for p in procs:
        p.start()
    failed = None
    try:
        live = list(procs)
        while live and failed is None:
            multiprocessing.connection.wait([p.sentinel for p in live])
            for p in list(live):
                if p.exitcode is not None:
                    live.remove(p)
                    if p.exitcode != 0:
                        failed = p
    finally:
        for p in procs:  # one worker failed: the others would wait for it in a collective
            if p.exitcode is None:
                p.terminate()
            p.join()
        if os.path.exists(store):
            os.unlink(store)
    if failed is not None:
        raise SystemExit("train: --procs %d: worker %d failed (exit %s)"
                         % (args.procs, procs.index(failed), failed.exitcode))
    with open(os.path.join(args.out, "history.json")) as f:
        return json.load(f)["history"]


def _worker(ctx, rank, world, store):
    try:  # end with the parent: a worker left alone would train on without anyone to report to
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    try:
        train_loop(ctx, _Parallel(rank, world, store))
    except KeyboardInterrupt:
        os._exit(130)
    except BaseException:  # noqa: BLE001 - report and make the parent stop the others
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def train_loop(ctx, par=None):
    args, a, data, model = ctx["args"], ctx["a"], ctx["data"], ctx["model"]
    init, teachers, soft = ctx["init"], ctx["teachers"], ctx["soft"]
    rank, world = (par.rank, par.world) if par else (0, 1)
    lead = rank == 0  # only the first process prints, evaluates and writes checkpoints
    gen = torch.Generator().manual_seed(args.seed + 1000)
    # one process: batches and augmentation share one generator (as before --procs); more:
    # the batch order is common, every process augments with its own generator
    aug_gen = gen if world == 1 else torch.Generator().manual_seed(
        args.seed + 1000 + 7919 * (rank + 1))
    madds = bm.model_madds(model)
    nparam = sum(p.numel() for p in model.parameters())
    camera = model.inp["channels"] == 3
    n_classes = len(data["labels"])
    counts = torch.bincount(data["train_y"], minlength=n_classes)
    balance = args.balance and bool(counts.max() > 1.1 * counts.min())
    command = " ".join(["tools/train/train.py"] + sys.argv[1:])
    if lead:
        print("train: %s arch=%s params=%d madds=%s train=%d val=%d threads=%d procs=%d "
              "seed=%d split_seed=%d"
              % (datetime.datetime.utcnow().strftime("%H:%M:%S"), args.arch, nparam, madds,
                 len(data["train_x"]), len(data["val_x"]), args.threads, world, args.seed,
                 args.split_seed), flush=True)

    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.dim() <= 1 else decay).append(p)
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    n = len(data["train_x"])
    steps_per_epoch = max(1, n // args.batch)
    total = steps_per_epoch * args.epochs
    budget = args.time_budget * 60.0 if args.time_budget else None
    warm_frac = min(1.0 / args.epochs, 0.1) if args.epochs > 1 else 0.0

    def progress(step, sync=True):
        """Training progress in [0,1]: steps done, or wall time used if --time-budget
        runs out first (the schedule then compresses so the run still ends annealed).
        With --procs, the first process's clock decides for all (sync=False: this
        process's own clock, for what only the first process prints)."""
        p = step / total
        if budget:
            p = max(p, (time.time() - t0) / budget)
            if par and sync:
                p = par.broadcast_float(p)
        return min(1.0, p)

    swa = args.swa is not None
    swa_lr = args.swa_lr if args.swa_lr is not None else args.lr / 3
    top = swa_lr if swa and args.swa <= warm_frac else args.lr

    def lr_at(p):
        """Linear warm-up, then cosine to 0 at the end; with --swa, cosine to the SWA LR at
        progress --swa and constant after it."""
        if p < warm_frac:
            return top * max(p / warm_frac, 0.01)
        if swa and p >= args.swa:
            return swa_lr
        end, floor = (args.swa, swa_lr) if swa else (1.0, 0.0)
        t = (p - warm_frac) / max(1e-9, end - warm_frac)
        return floor + (top - floor) * 0.5 * (1 + math.cos(math.pi * t))

    is_bn = isinstance(model, bm.BasisNet)
    tw = args.teacher_weight if soft is not None else 0.0

    def objective(logits, y, st):
        """Loss of one output: CE, or (1-w) CE + w KD with teacher targets st."""
        ce = F.cross_entropy(logits, y)
        if tw == 0:
            return ce
        return (1 - tw) * ce + tw * kd_loss(logits, st, args.teacher_temp)

    history = []
    step = 0
    t0 = time.time()
    best = (-1.0, 0.0)  # (validation accuracy, -validation loss): ties go to the lower loss
    stop = False
    swa_sum, swa_epochs = None, []
    for ep in range(1, args.epochs + 1):
        if stop:
            break
        model.train()
        te = time.time()
        in_swa = swa and progress(step) >= args.swa
        perm = (balanced_order(data["train_y"], n_classes, gen) if balance
                else torch.randperm(n, generator=gen))
        tot_loss = tot_ls = tot_ll = 0.0
        correct = cnt = 0
        for bi in range(steps_per_epoch):
            idx = perm[bi * args.batch:(bi + 1) * args.batch][rank::world]
            if camera:
                x, flip = augment_camera(data["train_x"][idx], aug_gen, model.inp,
                                         erase_p=args.erase, jpeg_p=args.jpeg)
            else:
                x, flip = augment(data["train_x"][idx], aug_gen, erase_p=args.erase)
            y = data["train_y"][idx]
            prog = progress(step)
            if prog >= 1.0:
                stop = True
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(prog)
            if is_bn:
                f = min(1.0, prog / args.anneal) if args.anneal > 0 else 1.0
                model.temperature = args.t0 + (1.0 - args.t0) * f
            o = model(x)
            st = soft[idx, flip.long()] if tw > 0 else None
            ls = objective(o["logits"], y, st)
            loss = ls
            ll = torch.zeros(())
            if "light_logits" in o and o["light_logits"] is not o["logits"]:
                ll = objective(o["light_logits"], y, st)
                loss = loss + args.light_weight * ll
                if args.distill > 0:
                    tgt = torch.softmax(o["logits"].detach(), 1)
                    kd = F.kl_div(F.log_softmax(o["light_logits"], 1), tgt, reduction="batchmean")
                    loss = loss + args.distill * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if par:
                par.average_grads(params)
            opt.step()
            step += 1
            tot_loss += float(loss) * len(y)
            tot_ls += float(ls) * len(y)
            tot_ll += float(ll) * len(y)
            correct += int((o["logits"].argmax(1) == y).sum())
            cnt += len(y)
            if lead and args.log_every and (bi + 1) % args.log_every == 0:
                el = time.time() - te
                eta_ep = el / (bi + 1) * (steps_per_epoch - bi - 1)
                temp = " T %.2f" % model.temperature if is_bn else ""
                print("  ep %d %d/%d loss %.4f lr %.2e%s  %.1f img/s  epoch ETA %s  progress %.3f"
                      % (ep, bi + 1, steps_per_epoch, tot_loss / cnt, lr_at(prog), temp,
                         cnt * world / el, fmt_t(eta_ep), prog), flush=True)
        if par:  # the whole batch's numbers, and one set of BatchNorm statistics
            tot_loss, tot_ls, tot_ll, correct, cnt = par.sum(
                [tot_loss, tot_ls, tot_ll, correct, cnt])
            par.average_bn_stats(model)
            par.check_in_step(model)
        if cnt == 0:
            break
        if in_swa:  # an epoch that started at or after --swa (or the last, cut one): a sample
            swa_sum = weight_sum(model.state_dict(), swa_sum)
            swa_epochs.append(round(step / steps_per_epoch, 2))
        if not lead:
            continue
        ev = evaluate(model, data["val_x"], data["val_y"])
        dt = time.time() - te
        done = time.time() - t0
        prog = progress(step, sync=False)
        eta = done / max(prog, 1e-9) * (1 - prog)
        rec = {"epoch": ep, "steps": step, "epochs_done": step / steps_per_epoch, "loss": tot_loss / cnt, "loss_spec": tot_ls / cnt,
               "loss_light": tot_ll / cnt, "train_acc": correct / cnt, "val_acc": ev["acc"],
               "val_light_acc": ev.get("light_acc"), "val_loss": ev["loss"], "epoch_s": dt}
        history.append(rec)
        # models without a light stage (static-wide, specialist, resnet) print neither part
        parts, vlight = "", ""
        if "light_acc" in ev:
            parts = " (spec %.4f light %.4f)" % (rec["loss_spec"], rec["loss_light"])
            vlight = " val_light %.4f" % ev["light_acc"]
        print("epoch %d/%d loss %.4f%s train %.4f val %.4f%s  %.0fs/epoch  "
              "elapsed %s ETA %s (%s UTC)"
              % (ep, args.epochs, rec["loss"], parts, rec["train_acc"], ev["acc"], vlight,
                 dt, fmt_t(done), fmt_t(eta),
                 (datetime.datetime.utcnow() + datetime.timedelta(seconds=eta)).strftime("%H:%M")),
              flush=True)
        ck = {"args": a, "model": model.state_dict(), "epoch": round(step / steps_per_epoch, 2),
              "steps": step, "command": command,
              "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
              "madds": madds, "params": nparam, "history": history,
              "train_seconds": time.time() - t0, "init": init, "teachers": teachers}
        torch.save(ck, os.path.join(args.out, "last.pt.tmp"))
        os.replace(os.path.join(args.out, "last.pt.tmp"), os.path.join(args.out, "last.pt"))
        if (ev["acc"], -ev["loss"]) > best:
            best = (ev["acc"], -ev["loss"])
            torch.save(ck, os.path.join(args.out, "best.pt"))
    if not lead:
        return None
    swa_rec = None
    if swa_sum is not None:
        swa_rec = {"start": args.swa, "lr": swa_lr, "samples": len(swa_epochs),
                   "at_epochs": swa_epochs}
        model.load_state_dict(weight_mean(swa_sum, len(swa_epochs)))
        print("train: SWA: mean of %d epoch-end weights; BatchNorm statistics over %d "
              "training images" % (len(swa_epochs), len(data["train_x"])), flush=True)
        recalibrate_bn(model, data["train_x"])
        ev = evaluate(model, data["val_x"], data["val_y"])
        swa_rec["val_acc"] = ev["acc"]
        swa_rec["val_light_acc"] = ev.get("light_acc")
        ck = dict(ck, model=model.state_dict(), swa=swa_rec,
                  train_seconds=time.time() - t0)
        torch.save(ck, os.path.join(args.out, "swa.pt"))
        print("train: SWA val %.4f%s (last epoch %.4f), checkpoint %s"
              % (ev["acc"], " val_light %.4f" % ev["light_acc"] if "light_acc" in ev else "",
                 history[-1]["val_acc"], os.path.join(args.out, "swa.pt")), flush=True)
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({"args": a, "command": command, "madds": madds, "params": nparam,
                   "steps": step, "epochs_done": step / steps_per_epoch,
                   "history": history, "train_seconds": time.time() - t0, "swa": swa_rec},
                  f, indent=1)
    print("train: done in %s, final val %.4f (best %.4f), checkpoint %s"
          % (fmt_t(time.time() - t0), history[-1]["val_acc"], best[0],
             os.path.join(args.out, "last.pt")), flush=True)
    return history


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
                         "sees half the side); basisnet_model.SPECS")
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


if __name__ == "__main__":
    sys.exit(main())
