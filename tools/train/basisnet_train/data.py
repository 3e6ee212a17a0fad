"""Datasets: Fashion-MNIST idx files or labelled image folders (DIR/<label>/*.png,
DIR/train/..., DIR/test/...), read as uint8 tensors, and the fixed train/validation split
(SPLIT_SEED unless a run chose another with --split-seed; every tool that reads validation
uses the checkpoint's)."""

import gzip
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

from basisnet_train import models as bm


FMNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
SPLIT_SEED = 20261126
VAL_FMNIST = 5000
IMG_EXT = (".png", ".jpg", ".jpeg")


class DatasetError(Exception):
    pass


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
    """The input spec (models.INPUTS) of a run's args."""
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
