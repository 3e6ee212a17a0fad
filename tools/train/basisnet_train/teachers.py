"""Knowledge distillation (train.py --teacher): the teachers' soft targets, cached next to
each teacher checkpoint, and the distillation loss."""

import hashlib
import os
import time

import torch
import torch.nn.functional as F

from basisnet_train.checkpoint import (CheckpointError, check_same_split, load_checkpoint,
                                       parent_record)


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
