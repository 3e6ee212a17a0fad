"""Export a trained BasisNet checkpoint (or a random model) to the `.bnm` format.

Format: docs/model-format.md (safetensors; architecture JSON in __metadata__["basisnet"]).
Besides MODEL.bnm this writes MODEL.golden.safetensors (input U8, light_logits, alpha,
specialist_logits), computed by a reference forward that reads the exported (BN-folded)
tensors back from the written file, and asserts that it matches the PyTorch training
module (eval mode) within 1e-4 (relative error |c-t|/max(|t|,1)).

  export.py --checkpoint runs/X/best.pt --out models/fmnist-basisnet.bnm [--results eval.json]
  export.py --random --out tests/fixtures/random-tiny.bnm
"""

import argparse
import datetime
import json
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from basisnet_train import bnm
from basisnet_train import models as bm
from basisnet_train.checkpoint import PARENT_KEYS, CheckpointError, load_checkpoint
from basisnet_train.data import DatasetError, load_dataset, split_seed_of

FMNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
TOL = 1e-4

# the one .bnm codec (basisnet_train/bnm.py); these names are what callers have used
CHECKSUM_KEY = bnm.CHECKSUM_KEY
data_crc32 = bnm.data_crc32


def write_safetensors(path, tensors, metadata=None):
    """tensors: ordered mapping name -> numpy array (float32/float16/uint8). The metadata
    gets data_crc32, the checksum of the data section the engine verifies at load."""
    bnm.write(path, tensors, metadata)


def read_safetensors(path):
    """Returns (metadata dict, OrderedDict name -> numpy array). Validates offsets."""
    return bnm.read(path)


# --------------------------------------------------------------------------------------
# reference forward over the exported layer list (plain torch ops, float64)
# --------------------------------------------------------------------------------------

def _act(name, x):
    return bm.act_fn(name)(x)


def run_stage(layers, T, x, alpha=None, synth_index=None):
    """x: (C,H,W) float64 tensor. T: name -> float64 tensor. alpha: (L,N).
    Returns dict layer name -> output."""
    outs = {"input": x}
    prev = "input"
    for L in layers:
        src = outs[L.get("input", prev)]
        op = L["op"]
        name = L["name"]
        if op == "conv2d":
            if L["synth"]:
                a = alpha[synth_index[name]]
                w = torch.tensordot(a, T[name + ".bases"], dims=1)
            else:
                w = T[name + ".weight"]
            y = F.conv2d(src.unsqueeze(0), w, T[name + ".bias"], tuple(L["stride"]),
                         tuple(L["padding"]), 1, L["groups"])[0]
            y = _act(L["act"], y)
        elif op == "linear":
            if L["synth"]:
                w = torch.tensordot(alpha[synth_index[name]], T[name + ".bases"], dims=1)
            else:
                w = T[name + ".weight"]
            y = _act(L["act"], w @ src.reshape(-1) + T[name + ".bias"]).view(-1, 1, 1)
        elif op == "add":
            a, b = L["inputs"]
            y = _act(L["act"], outs[a] + outs[b])
        elif op == "se":
            s = src.mean((1, 2))
            h = _act(L["act"], T[name + ".fc1.weight"] @ s + T[name + ".fc1.bias"])
            g = _act(L["gate"], T[name + ".fc2.weight"] @ h + T[name + ".fc2.bias"])
            y = src * g.view(-1, 1, 1)
        elif op == "avgpool":
            y = F.avg_pool2d(src.unsqueeze(0), tuple(L["kernel"]), tuple(L["stride"]),
                             tuple(L["padding"]), count_include_pad=True)[0]
        elif op == "maxpool":
            y = F.max_pool2d(src.unsqueeze(0), tuple(L["kernel"]), tuple(L["stride"]),
                             tuple(L["padding"]))[0]
        elif op == "gap":
            y = src.mean((1, 2), keepdim=True)
        elif op == "act":
            y = _act(L["act"], src)
        else:
            raise ValueError("unknown op %s" % op)
        outs[name] = y
        prev = name
    return outs


def reference_forward(model_path, images_u8):
    """Reads MODEL.bnm back and runs both stages on uint8 images (K,H,W,C).
    Returns light_logits (K,10), alpha (K,L,N), specialist_logits (K,10) as float64."""
    meta, tensors = read_safetensors(model_path)
    arch = json.loads(meta["basisnet"])
    T = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in tensors.items()}
    inp = arch["input"]
    mean = torch.tensor(inp["mean"], dtype=torch.float64).view(-1, 1, 1)
    std = torch.tensor(inp["std"], dtype=torch.float64).view(-1, 1, 1)
    synth = arch["synth_layers"]
    sidx = {n: i for i, n in enumerate(synth)}
    N = arch["num_bases"]
    lh = inp["light"]["height"]
    k = inp["height"] // lh
    LL, AL, SL = [], [], []
    for img in images_u8:
        # normalization in float32, exactly as the doc / training (then widened)
        p = torch.from_numpy(np.array(img)).permute(2, 0, 1).float()
        x32 = (p / 255.0 - mean.float()) / std.float()
        xl32 = F.avg_pool2d(x32.unsqueeze(0), k)[0]
        x, xl = x32.double(), xl32.double()
        lo = run_stage(arch["light"]["layers"], T, xl)
        ll = lo[arch["light"]["logits"]].reshape(-1)
        coeffs = lo[arch["light"]["coeffs"]].reshape(len(synth), N)
        alpha = torch.softmax(coeffs, dim=-1)
        so = run_stage(arch["specialist"]["layers"], T, x, alpha, sidx)
        LL.append(ll)
        AL.append(alpha)
        SL.append(so[arch["specialist"]["logits"]].reshape(-1))
    return torch.stack(LL), torch.stack(AL), torch.stack(SL)


def rel_err(c, t):
    c = torch.as_tensor(np.array(c, dtype=np.float64))
    t = torch.as_tensor(np.array(t, dtype=np.float64))
    return float(((c - t).abs() / t.abs().clamp(min=1.0)).max())


def output_errors(o, light_logits, alpha, specialist_logits):
    """Max relative errors of a module's outputs o (its forward's dict) against reference
    light logits, coefficients and specialist logits."""
    return {"light_logits": rel_err(o["light_logits"], light_logits),
            "alpha": rel_err(o["alpha"], alpha),
            "specialist_logits": rel_err(o["logits"], specialist_logits)}


# --------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------

def export_model(model, out_path, images_u8, name, labels, extra_meta, verbose=True, bases="f32"):
    """Writes out_path (.bnm) and its golden file; returns (arch, golden errors). bases="f16":
    after the F32 file passed its self-check, its bases are stored in half precision and
    the golden file is recomputed from it (bases_to_f16)."""
    model.eval()
    arch_core, tensors = model.export()
    arch = OrderedDict(format_version=1, name=name, labels=list(labels))
    inp = model.inp
    arch["input"] = OrderedDict(channels=inp["channels"], height=inp["size"], width=inp["size"],
                                mean=list(inp["mean"]), std=list(inp["std"]),
                                light=OrderedDict(height=inp["light"], width=inp["light"],
                                                  resize="avgpool"))
    arch["num_bases"] = arch_core["num_bases"]
    arch["light"] = arch_core["light"]
    arch["specialist"] = arch_core["specialist"]
    arch["synth_layers"] = arch_core["synth_layers"]
    m = bm.arch_madds(arch)
    arch["madds"] = OrderedDict(light=m["light"], specialist=m["specialist"], synth=m["synth"])
    for k, v in extra_meta.items():
        arch[k] = v
    # check tensor set vs architecture before writing
    expected = set()
    for stage in ("light", "specialist"):
        for L in arch[stage]["layers"]:
            if L["op"] in ("conv2d", "linear"):
                expected |= {L["name"] + (".bases" if L["synth"] else ".weight"),
                             L["name"] + ".bias"}
            elif L["op"] == "se":
                expected |= {L["name"] + ".fc%d.%s" % (i, w) for i in (1, 2)
                             for w in ("weight", "bias")}
    if expected != set(tensors):
        raise AssertionError("tensor set mismatch: %s" % (expected ^ set(tensors)))
    np_t = OrderedDict((k, v.detach().cpu().numpy().astype(np.float32)) for k, v in tensors.items())
    write_safetensors(out_path, np_t, {"basisnet": json.dumps(arch, separators=(",", ":"))})

    # golden vectors from the reference forward over the file just written
    ll, al, sl = reference_forward(out_path, images_u8)
    gold_path = golden_path_for(out_path)
    write_safetensors(gold_path, OrderedDict(
        input=np.ascontiguousarray(images_u8, dtype=np.uint8),
        light_logits=ll.float().numpy(), alpha=al.float().numpy(),
        specialist_logits=sl.float().numpy()))

    # self-check: folded reference vs training module (eval mode)
    with torch.no_grad():
        x = model.normalize(torch.from_numpy(np.array(images_u8)).permute(0, 3, 1, 2))
        o = model(x)
    errs = output_errors(o, ll, al, sl)
    # and the golden file as read back (F32) against the module
    _, g = read_safetensors(gold_path)
    errs["golden_file"] = max(output_errors(o, g["light_logits"], g["alpha"],
                                            g["specialist_logits"]).values())
    if verbose:
        print("export: %s (%d bytes), %s (%d bytes)" % (out_path, os.path.getsize(out_path),
              gold_path, os.path.getsize(gold_path)))
        print("export: madds %s" % dict(arch["madds"]))
        print("export: self-check max rel err %s" % {k: "%.2e" % v for k, v in errs.items()})
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    if bad:
        raise AssertionError("export self-check FAILED (tolerance %g): %s" % (TOL, bad))
    if bases == "f16":
        r = bases_to_f16(out_path, out_path)
        if verbose:
            print("export: bases stored in F16: %d -> %d bytes; specialist logits moved by at "
                  "most %.2e, %d of %d golden answers unchanged"
                  % (r["bytes_before"], r["bytes_after"], r["moved"], r["same"], r["golden"]))
    return arch, errs


def bases_to_f16(src, dst):
    """Writes dst: src with every *.bases tensor in IEEE half (docs/model-format.md), and its
    golden file: src's golden inputs with the reference outputs recomputed from dst. src and
    dst may be the same path (everything is read first). Returns a dict: tensors converted,
    bytes before/after, the specialist logits' largest relative move against src's golden
    file ("moved"), golden answers unchanged ("same") of "golden"."""
    meta, tensors = bnm.read(src)
    if bnm.ARCH_KEY not in meta:
        raise ValueError("%s: no '%s' metadata: not a .bnm model" % (src, bnm.ARCH_KEY))
    arch = json.loads(meta[bnm.ARCH_KEY])
    gold_src = golden_path_for(src)
    if not os.path.exists(gold_src):
        raise ValueError("%s: missing (the golden inputs come from it)" % gold_src)
    _, gold = bnm.read(gold_src)
    before = os.path.getsize(src)
    out = OrderedDict()
    n16 = 0
    for name, arr in tensors.items():
        if name.endswith(".bases"):
            h = np.asarray(arr, dtype=np.float32).astype(np.float16)
            if not np.all(np.isfinite(h)):
                raise ValueError("%s: %s overflows half precision" % (src, name))
            out[name] = h
            n16 += 1
        else:
            out[name] = arr
    if not n16:
        raise ValueError("%s: no *.bases tensors" % src)
    meta = OrderedDict((k, v) for k, v in meta.items() if k != bnm.CHECKSUM_KEY)
    bnm.write(dst, out, meta)
    ll, al, sl = reference_forward(dst, gold["input"])
    bnm.write(golden_path_for(dst), OrderedDict(
        input=np.ascontiguousarray(gold["input"], dtype=np.uint8),
        light_logits=ll.float().numpy(), alpha=al.float().numpy(),
        specialist_logits=sl.float().numpy()))
    return {"name": arch.get("name", "?"), "tensors": n16, "bytes_before": before,
            "bytes_after": os.path.getsize(dst),
            "moved": rel_err(sl, gold["specialist_logits"]),
            "same": int((np.argmax(sl.numpy(), 1) == np.argmax(gold["specialist_logits"], 1)).sum()),
            "golden": len(sl)}


def golden_path_for(out_path):
    base = out_path[:-4] if out_path.endswith(".bnm") else out_path
    return base + ".golden.safetensors"


def randomize_bn(model, gen):
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            mod.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            mod.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
        if isinstance(mod, (bm.Linear,)):
            mod.bias.data.copy_(torch.randn(mod.cout, generator=gen) * 0.1)


@torch.no_grad()
def randomize_for_parity(model, gen):
    """Random BatchNorm statistics and biases, coefficients that differ between inputs and
    logits of magnitude 1-10 (so the parity tolerance, relative to max(|t|,1), bites)."""
    randomize_bn(model, gen)
    model.light.coef.weight.mul_(4.0)
    model.light.fc.weight.mul_(30.0)
    model.specialist.fc.bases.mul_(40.0)
    model.eval()


def export_random(out, seed=7, K=8):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = bm.BasisNet("tiny", "tiny", num_bases=4)
    randomize_for_parity(model, gen)
    rng = np.random.RandomState(seed)
    imgs = rng.randint(0, 256, size=(K, 28, 28, 1)).astype(np.uint8)
    # a few structured inputs (flat, gradient, blob) besides noise
    imgs[0] = 0
    imgs[1] = 255
    imgs[2, :, :, 0] = (np.arange(28)[None, :] * 9).astype(np.uint8)
    yy, xx = np.mgrid[:28, :28]
    imgs[3, :, :, 0] = (255 * ((yy - 14) ** 2 + (xx - 12) ** 2 < 60)).astype(np.uint8)
    # calibration: light confidences on 256 random images
    with torch.no_grad():
        cal = torch.from_numpy(rng.randint(0, 256, size=(256, 28, 28)).astype(np.uint8))
        ll = model(bm.normalize_u8(cal))["light_logits"]
        conf = sorted(float("%.6f" % v) for v in torch.softmax(ll, 1).max(1).values)
    meta = OrderedDict(
        accuracy=OrderedDict(),
        calibration=OrderedDict(val_light_confidence=conf),
        train=OrderedDict(command="tools/train/export.py --random --out %s" % out, seed=seed,
                          epochs=0, date=datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")),
    )
    return export_model(model, out, imgs, "random-tiny", FMNIST_LABELS, meta)


def export_random_spec(out, spec, seed=7, K=4, classes=3, bases="f32"):
    """A random-weights model of a camera spec (engine parity and benchmarks): BatchNorm
    statistics and coefficients randomized as in export_random."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = bm.BasisNet(spec, num_bases=4, num_classes=classes)
    randomize_for_parity(model, gen)
    rng = np.random.RandomState(seed)
    S = model.inp["size"]
    imgs = rng.randint(0, 256, size=(K, S, S, 3)).astype(np.uint8)
    imgs[0] = 0
    imgs[1, :, :, :] = (np.arange(S)[None, :, None] * 255 // S).astype(np.uint8)
    meta = OrderedDict(
        accuracy=OrderedDict(),
        train=OrderedDict(command="tools/train/export.py --random --spec %s --out %s" % (spec, out),
                          seed=seed, epochs=0,
                          date=datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")),
    )
    return export_model(model, out, imgs, "random-" + spec,
                        ["class%d" % i for i in range(classes)], meta, bases=bases)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--random", action="store_true", help="export a tiny random-weights model")
    ap.add_argument("--checkpoint", help="checkpoint (.pt) written by train.py")
    ap.add_argument("--out", required=True, help="output .bnm path")
    ap.add_argument("--results", help="eval.py JSON (accuracy/threshold) to embed")
    ap.add_argument("--data", default=None,
                    help="dataset (for calibration on the validation split and golden inputs; "
                         "default: the folder the checkpoint was trained on)")
    ap.add_argument("--spec", default="fmnist", choices=bm.TRAIN_SPECS,
                    help="with --random: the model family (fmnist: the tiny fixture)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--golden", type=int, default=None,
                    help="number of golden vectors K (default 16; --random: 8, 4 for a camera spec)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bases", choices=("f32", "f16"), default=None,
                    help="how the bases are stored: f16 halves what synthesis reads (the "
                         "engine computes in F32 either way; docs/model-format.md); default f16 "
                         "for a camera spec's checkpoint, f32 for Fashion-MNIST and --random")
    args = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if args.random:
        if args.spec == "fmnist":
            export_random(args.out, args.seed, K=8)
        else:
            export_random_spec(args.out, args.spec, args.seed, K=args.golden or 4,
                               bases=args.bases or "f32")
        return 0
    if not args.checkpoint:
        ap.error("--checkpoint or --random required")
    try:
        model, ck = load_checkpoint(args.checkpoint)
    except CheckpointError as e:
        raise SystemExit("export: %s" % e)
    if not isinstance(model, bm.BasisNet):
        raise SystemExit("export: only basisnet/cascade checkpoints can be exported (got %s)"
                         % ck["args"]["arch"])
    a = ck["args"]
    data_dir = args.data or a.get("data") or "/usr/share/datasets/fashion-mnist"
    try:
        data = load_dataset(data_dir, seed=a["seed"], need_test=True,
                               split_seed=split_seed_of(a), inp=model.inp)
    except DatasetError as e:
        raise SystemExit("export: --data: %s (the checkpoint is --spec %s)"
                         % (e, a.get("spec", "fmnist")))
    labels = data["labels"]
    if a.get("labels") and list(a["labels"]) != list(labels):
        raise SystemExit("export: %s was trained on the labels %s, %s has %s"
                         % (args.checkpoint, a["labels"], data_dir, labels))
    if len(labels) != a.get("num_classes", bm.NUM_CLASSES):
        raise SystemExit("export: %s has %d outputs, %s has %d labels"
                         % (args.checkpoint, a.get("num_classes", bm.NUM_CLASSES), data_dir,
                            len(labels)))
    if data.get("test_x") is None:
        print("export: %s has no test folder: golden inputs come from the validation split"
              % data_dir)
    model.eval()
    with torch.no_grad():
        conf = []
        for i in range(0, len(data["val_x"]), 500):
            ll = model(model.normalize(data["val_x"][i:i + 500]))["light_logits"]
            conf.append(torch.softmax(ll, 1).max(1).values)
        conf = torch.cat(conf).sort().values
        q = torch.linspace(0, len(conf) - 1, min(1000, len(conf))).round().long()
        conf = [float("%.6f" % v) for v in conf[q]]
    acc = OrderedDict()
    if args.results:
        with open(args.results) as f:
            r = json.load(f)
        acc = OrderedDict((k, r["accuracy"][k]) for k in
                          ("test_full", "test_light", "threshold", "test_early_exit",
                           "exit_share", "test_images") if k in r["accuracy"])
    meta = OrderedDict(
        accuracy=acc, calibration=OrderedDict(val_light_confidence=conf),
        train=OrderedDict(command=ck["command"], seed=ck["args"]["seed"], epochs=ck["epoch"],
                          train_seconds=round(ck.get("train_seconds", 0)), date=ck["date"],
                          split_seed=split_seed_of(ck["args"])))
    for k in PARENT_KEYS:  # warm restart / weight average / teachers / SWA: how it was made
        if ck.get(k):
            meta["train"][k] = ck[k]
    src = data["test_x"] if data.get("test_x") is not None else data["val_x"]
    imgs = src[:args.golden or 16]
    imgs = (imgs.permute(0, 2, 3, 1) if imgs.dim() == 4 else imgs[..., None]).numpy()
    name = args.name or os.path.basename(args.out).rsplit(".", 1)[0]
    bases = args.bases or ("f32" if a.get("spec", "fmnist") == "fmnist" else "f16")
    export_model(model, args.out, imgs, name, labels, meta, bases=bases)
    lab_path = (args.out[:-4] if args.out.endswith(".bnm") else args.out) + ".labels"
    with open(lab_path, "w") as f:
        f.write("".join(l + "\n" for l in labels))
    print("export: %s" % lab_path)
    return 0
