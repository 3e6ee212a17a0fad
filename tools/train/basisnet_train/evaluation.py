"""Evaluate BasisNet checkpoints (and baselines) on the Fashion-MNIST test set.

  eval.py --checkpoint runs/bn-s1/last.pt [--checkpoint runs/bn-s2/last.pt] \
          [--baseline static-wide=runs/sw-s1/last.pt ...] \
          --json docs/results-training.json --plot docs/results-training.png

* full path: specialist always run (test_full);
* early exit: the light answer is used when max softmax(light) >= t; sweep t, record
  accuracy, exit share and mean MAdds = light + (1 - exit share) * (specialist + synth);
* the threshold is chosen on the validation split (never the test set): the lowest t whose
  validation accuracy loss against the full path, plus one standard error of that paired
  difference, is at most 0.3 pt. (The first rule, loss alone <= 0.3 pt, picks the edge of
  what validation noise allows: the first shipped model lost 0.30 pt on validation and
  0.49 pt on test. One standard error of margin is the fixed correction, chosen before
  the later models were evaluated.)
The first --checkpoint is the primary model (its numbers go into "accuracy", which
export.py embeds into the .bnm metadata).
"""

import argparse
import json
import os
import sys
from collections import OrderedDict, defaultdict

import numpy as np
import torch

from basisnet_train import models as bm
from basisnet_train.checkpoint import PARENT_KEYS, CheckpointError, load_checkpoint
from basisnet_train.data import (DatasetError, common_split_seed, inp_of, load_dataset,
                                 read_image_folder)
from basisnet_train.metrics import evaluate
from basisnet_train.paired import paired
from basisnet_train.report import lineage_total

MAX_LOSS = 0.003
SE_MARGIN = 1.0  # standard errors of the validation loss added before comparing to MAX_LOSS
RULE = "lowest t with validation loss + %g SE <= %g pt" % (SE_MARGIN, 100 * MAX_LOSS)
EVAL_VERSION = 2  # bump when results change for the same checkpoint (invalidates caches)
GRID = np.round(np.linspace(0.0, 1.0, 1001), 3)


def early_exit(full_pred, light_pred, conf, y, t):
    ex = conf >= t
    pred = torch.where(ex, light_pred, full_pred)
    return float((pred == y).float().mean()), float(ex.float().mean())


def sweep(ev, y, madds):
    spec = madds["specialist"] + madds["synth"]
    out = []
    for t in GRID:
        acc, share = early_exit(ev["pred"], ev["light_pred"], ev["light_conf"], y, float(t))
        out.append({"threshold": float(t), "acc": acc, "exit_share": share,
                    "mean_madds": madds["light"] + (1 - share) * spec})
    return out


def loss_with_se(ev, y, t):
    """Accuracy lost by early exit at t against the full path, and the standard error of
    that paired difference (images whose correctness changes: b got wrong, c got right)."""
    ex = ev["light_conf"] >= t
    pred = torch.where(ex, ev["light_pred"], ev["pred"])
    r = paired(ev["pred"] == y, pred == y)
    return (r["only_reference"] - r["only_candidate"]) / r["images"], r["se"]


def choose_threshold(ev_val, y_val):
    """The lowest threshold (most early exits) whose validation loss + SE_MARGIN standard
    errors stays within MAX_LOSS. t = 1 exits nothing, so it always qualifies."""
    for t in GRID:
        loss, se = loss_with_se(ev_val, y_val, float(t))
        if loss + SE_MARGIN * se <= MAX_LOSS + 1e-12:
            return float(t), loss, se
    return 1.0, 0.0, 0.0


def cached(fn):
    """Per-checkpoint cache (CHECKPOINT.eval.json, valid while the checkpoint is unchanged)."""
    def wrap(path, data):
        cp = path + ".eval.json"
        key = "%d-%d-%s" % (os.path.getmtime(path), os.path.getsize(path), data.get("id", ""))
        if os.path.exists(cp):
            with open(cp) as f:
                c = json.load(f, object_pairs_hook=OrderedDict)
            if c.get("key") == key and c.get("fn") == fn.__name__ and c.get("v") == EVAL_VERSION:
                return c["result"]
        r = fn(path, data)
        with open(cp, "w") as f:
            json.dump({"key": key, "fn": fn.__name__, "v": EVAL_VERSION, "result": r}, f)
        return r
    return wrap


def _run(path, data):
    """Loads a checkpoint and evaluates it on validation and test; returns the record's
    common fields (checkpoint, arch, seed, training, MAdds) and both evaluations."""
    model, ck = load_checkpoint(path)
    madds = bm.model_madds(model)
    ev_v = evaluate(model, data["val_x"], data["val_y"])
    ev_t = evaluate(model, data["test_x"], data["test_y"])
    rec = OrderedDict(checkpoint=path, arch=ck["args"]["arch"], seed=ck["args"]["seed"],
                      epochs=ck["epoch"])
    return model, ck, madds, ev_v, ev_t, rec


def _training(ck):
    r = OrderedDict(command=ck["command"], train_seconds=round(ck.get("train_seconds", 0)),
                    params=ck.get("params"))
    for k in PARENT_KEYS:
        if ck.get(k):
            r[k] = ck[k]
    return r


@cached
def eval_two_stage(path, data):
    model, ck, madds, ev_v, ev_t, r = _run(path, data)
    t, vloss, vse = choose_threshold(ev_v, data["val_y"])
    tcurve = sweep(ev_t, data["test_y"], madds)
    acc_ee, share = early_exit(ev_t["pred"], ev_t["light_pred"], ev_t["light_conf"],
                               data["test_y"], t)
    spec = madds["specialist"] + madds["synth"]
    r.update(bases=model.num_bases)
    r.update(_training(ck))
    r.update(
        madds=madds,
        accuracy=OrderedDict(
            test_full=ev_t["acc"], test_light=ev_t["light_acc"], threshold=t,
            test_early_exit=acc_ee, exit_share=share, test_images=len(data["test_y"]),
            mean_madds_early_exit=madds["light"] + (1 - share) * spec,
            val_full=ev_v["acc"], val_light=ev_v["light_acc"], threshold_rule=RULE,
            val_loss_at_threshold=vloss, val_loss_se=vse,
            val_early_exit=early_exit(ev_v["pred"], ev_v["light_pred"], ev_v["light_conf"],
                                      data["val_y"], t)[0]),
        test_curve=[c for c in tcurve if c["threshold"] > 0.9 or round(c["threshold"] * 1000) % 10 == 0],
    )
    return r


@cached
def eval_static(path, data):
    _, ck, madds, ev_v, ev_t, r = _run(path, data)
    r.update(_training(ck))
    r.update(width=ck["args"].get("width"), madds=madds,
             accuracy=OrderedDict(test_full=ev_t["acc"], val_full=ev_v["acc"],
                                  test_images=len(data["test_y"])))
    return r


@torch.no_grad()
def eval_ensemble(paths, data, bs=500):
    """Accuracy of the mean softmax of several runs' full-path logits: what a distillation
    teacher (train.py --teacher, repeated) answers, here at temperature 1."""
    probs, members, madds = {}, [], 0
    for p in paths:
        model, ck = load_checkpoint(p)
        madds += bm.model_madds(model)["full"]
        for split in ("val", "test"):
            x = data[split + "_x"]
            pr = torch.cat([torch.softmax(model(model.normalize(x[i:i + bs]))["logits"], 1)
                            for i in range(0, len(x), bs)])
            probs[split] = pr if split not in probs else probs[split] + pr
        members.append(OrderedDict(checkpoint=p, arch=ck["args"]["arch"], seed=ck["args"]["seed"],
                                   epochs=ck["epoch"]))
    acc = {s: float((probs[s].argmax(1) == data[s + "_y"]).float().mean()) for s in probs}
    return OrderedDict(members=members, madds=OrderedDict(full=madds),
                       accuracy=OrderedDict(test_full=acc["test"], val_full=acc["val"],
                                            test_images=len(data["test_y"])))


def summarize(runs):
    accs = [r["accuracy"]["test_full"] for r in runs]
    s = OrderedDict(n=len(accs), mean=float(np.mean(accs)), min=min(accs), max=max(accs))
    if "test_early_exit" in runs[0]["accuracy"]:
        ee = [r["accuracy"]["test_early_exit"] for r in runs]
        s.update(ee_mean=float(np.mean(ee)),
                 exit_share_mean=float(np.mean([r["accuracy"]["exit_share"] for r in runs])))
    return s


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 6))
    runs = results["basisnet"]
    many = len(runs) > 1
    c = sorted(runs[0]["test_curve"], key=lambda p: p["threshold"])
    ax.plot([p["mean_madds"] / 1e6 for p in c], [100 * p["acc"] for p in c], "-", color="C0",
            alpha=0.7, label="BasisNet early exit (test, threshold sweep%s)"
            % (", first run" if many else ""))
    for i, r in enumerate(runs):
        a = r["accuracy"]
        full = (r["madds"]["full"]) / 1e6
        ax.plot(full, 100 * a["test_full"], "o", color="C0",
                label="BasisNet N=%d full path (%s%.1f ep)"
                % (r["bases"], "%d runs, " % len(runs) if many else "", lineage_total(r, "epochs"))
                if i == 0 else None)
        ax.plot(a["mean_madds_early_exit"] / 1e6, 100 * a["test_early_exit"], "*", ms=12,
                color="C0", label="BasisNet early exit, threshold chosen on val (t=%s)"
                % "/".join("%.3f" % q["accuracy"]["threshold"] for q in runs)
                if i == 0 else None)
    markers = {"static-wide": ("s", "C1"), "specialist": ("^", "C2"), "light": ("v", "C3"),
               "cascade": ("D", "C4"), "basisnet-short": ("o", "C5"), "basisnet": ("o", "C9")}
    for name, runs in results["baselines"].items():
        m, col = markers.get(name.split("/")[0], ("x", "k"))
        fill = "none" if name.endswith("1ep") else "full"
        for i, r in enumerate(runs):
            ax.plot(r["madds"]["full"] / 1e6, 100 * r["accuracy"]["test_full"], m, color=col,
                    fillstyle=fill, ms=7,
                    label="%s (%.1f ep)" % (name, r["epochs"]) if i == 0 else None)
            if name.split("/")[0] == "cascade" and i == 0 and not name.endswith("1ep"):
                cc = sorted(r["test_curve"], key=lambda p: p["threshold"])
                ax.plot([p["mean_madds"] / 1e6 for p in cc], [100 * p["acc"] for p in cc], ":",
                        color=col, alpha=0.7, label="cascade early exit (test)")
    ax.set_xlabel("mean MAdds per image (millions)")
    ax.set_ylabel("Fashion-MNIST test accuracy (%)")
    ax.set_title("BasisNet on Fashion-MNIST (basisnetd)")
    ys = [l.get_ydata() for l in ax.get_lines()]
    lo = min(float(np.min(y)) for y in ys)
    hi = max(float(np.max(y)) for y in ys)
    ax.set_ylim(lo - 0.5, hi + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("eval: plot %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True,
                    help="BasisNet checkpoint; repeat for more seeds (first = primary)")
    ap.add_argument("--baseline", action="append", default=[], help="NAME=CHECKPOINT")
    ap.add_argument("--baselines-from", metavar="JSON",
                    help="take the baseline results recorded in an earlier eval.py JSON (when "
                         "their checkpoints are not on this machine); --baseline runs evaluated "
                         "now are added to them. The output records the file under "
                         "\"baselines_from\"")
    ap.add_argument("--ensemble", action="append", default=[], metavar="NAME=CKPT,CKPT,...",
                    help="also score the mean softmax of these runs (a --teacher ensemble); "
                         "written under \"ensembles\", not plotted")
    ap.add_argument("--data", default=None,
                    help="dataset (default: the folder the first checkpoint was trained on)")
    ap.add_argument("--test", metavar="DIR", default=None,
                    help="held-out image folder DIR/<label>/*.png to report on (default: the "
                         "data set's test split, DATA/test/ for folders; without one, the "
                         "validation split, which also chose the threshold: said in the "
                         "output and recorded as \"test_split\")")
    ap.add_argument("--json", required=True)
    ap.add_argument("--plot")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ensembles = []
    for spec in args.ensemble:
        name, _, ps = spec.partition("=")
        paths = [p for p in ps.split(",") if p]
        missing = [p for p in paths if not os.path.exists(p)]
        if not name or not paths or missing:
            print("eval: --ensemble %s: want NAME=CKPT,CKPT,...%s" % (
                spec, "; missing: " + ", ".join(missing) if missing else ""), file=sys.stderr)
            return 2
        ensembles.append((name, paths))
    recorded = OrderedDict()
    if args.baselines_from:
        try:
            with open(args.baselines_from) as f:
                recorded = json.load(f, object_pairs_hook=OrderedDict)
            if not isinstance(recorded, dict) or "baselines" not in recorded:
                raise ValueError("no \"baselines\" in it: not an eval.py JSON")
            recorded = recorded["baselines"]
            if not isinstance(recorded, dict) or not all(
                    isinstance(v, list) and all("accuracy" in r and "madds" in r for r in v)
                    for v in recorded.values()):
                raise ValueError("\"baselines\" is not a map of NAME to eval.py records")
        except (OSError, ValueError, KeyError) as e:
            print("eval: --baselines-from %s: %s" % (args.baselines_from, e), file=sys.stderr)
            return 2
        for name, runs in recorded.items():
            print("eval: baseline %s: %d run(s) as recorded in %s (%s)" % (
                name, len(runs), args.baselines_from,
                ", ".join("test %.4f" % r["accuracy"]["test_full"] for r in runs)))
    baselines = []
    for spec in args.baseline:
        name, _, p = spec.partition("=")
        if os.path.exists(p):
            baselines.append((name, p))
        else:
            print("eval: baseline %s: %s missing, skipped" % (name, p))
    archs, run_args = {}, []
    for p in args.checkpoint + [p for _, p in baselines] + [p for _, ps in ensembles for p in ps]:
        try:
            a = load_checkpoint(p)[1]["args"]
        except CheckpointError as e:
            print("eval: %s" % e, file=sys.stderr)
            return 2
        archs[p] = a["arch"]
        run_args.append((p, a))
    # thresholds and validation numbers need one validation split for every run
    split_seed = common_split_seed(run_args, "eval")
    specs = {a.get("spec", "fmnist") for _, a in run_args}
    if len({json.dumps(inp_of(a), sort_keys=True) for _, a in run_args}) > 1:
        print("eval: the runs take different inputs (--spec %s); compare runs of one input"
              % ", ".join(sorted(specs)), file=sys.stderr)
        return 2
    inp = inp_of(run_args[0][1])
    data_dir = args.data or run_args[0][1].get("data") or "/usr/share/datasets/fashion-mnist"
    try:
        data = load_dataset(data_dir, need_test=True, split_seed=split_seed, inp=inp)
        if args.test:
            tx, ty, _ = read_image_folder(args.test, data["labels"], inp)
            data["test_x"], data["test_y"] = torch.from_numpy(tx), torch.from_numpy(ty)
    except DatasetError as e:
        print("eval: dataset error: %s" % e, file=sys.stderr)
        return 2
    test_split = "test"
    if data["test_x"] is None:
        test_split = "validation"
        data["test_x"], data["test_y"] = data["val_x"], data["val_y"]
        print("eval: %s has no test set (and no --test DIR): the \"test\" numbers below are "
              "on the validation split (%d images), which also chose the threshold: an "
              "optimistic estimate" % (data_dir, len(data["val_y"])))
    import hashlib
    data["id"] = hashlib.sha256(data["test_x"].numpy().tobytes() + data["test_y"].numpy().tobytes()
                                + data["val_y"].numpy().tobytes()).hexdigest()[:16]
    res = OrderedDict(basisnet=[], baselines=OrderedDict(), test_split=test_split,
                      test_data=os.path.abspath(args.test) if args.test else data_dir)
    for p in args.checkpoint:
        arch = archs[p]
        if arch not in ("cascade", "basisnet"):
            print("eval: --checkpoint %s: a %s run has no early exit; --checkpoint takes basisnet "
                  "or cascade runs, pass others with --baseline NAME=CHECKPOINT" % (p, arch),
                  file=sys.stderr)
            return 2
        r = eval_two_stage(p, data)
        res["basisnet"].append(r)
        a = r["accuracy"]
        print("eval: %s seed %d: full %.4f light %.4f | t=%.3f early-exit %.4f exit %.1f%% "
              "mean MAdds %.2fM (full %.2fM)" % (p, r["seed"], a["test_full"], a["test_light"],
                                               a["threshold"], a["test_early_exit"],
                                               100 * a["exit_share"], a["mean_madds_early_exit"] / 1e6,
                                               r["madds"]["full"] / 1e6))
    groups = defaultdict(list)
    for name, runs in recorded.items():
        groups[name] += runs
    for name, p in baselines:
        two = archs[p] in ("cascade", "basisnet")
        r = eval_two_stage(p, data) if two else eval_static(p, data)
        groups[name].append(r)
        print("eval: baseline %s %s: test %.4f MAdds %.2fM" % (name, p, r["accuracy"]["test_full"],
                                                             r["madds"]["full"] / 1e6))
    res["baselines"] = OrderedDict(groups)
    if args.baselines_from:
        res["baselines_from"] = args.baselines_from
    for name, paths in ensembles:
        r = eval_ensemble(paths, data)
        res.setdefault("ensembles", OrderedDict())[name] = r
        print("eval: ensemble %s (%d runs): test %.4f val %.4f MAdds %.2fM"
              % (name, len(paths), r["accuracy"]["test_full"], r["accuracy"]["val_full"],
                 r["madds"]["full"] / 1e6))
    res["accuracy"] = OrderedDict((k, v) for k, v in res["basisnet"][0]["accuracy"].items())
    res["summary"] = OrderedDict(basisnet=summarize(res["basisnet"]))
    for k, v in groups.items():
        res["summary"][k] = summarize(v)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
    print("eval: wrote %s" % args.json)
    if args.plot:
        plot(res, args.plot)
    return 0
