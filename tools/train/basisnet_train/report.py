"""Print the markdown results table from an eval.py JSON file.  report.py EVAL.json"""
import json
import sys


def m(x):
    return "%.2fM" % (x / 1e6)


def pct(x):
    return "%.2f" % (100 * x)


def lineage_total(x, key):
    """Sum of key ("epochs" or "train_seconds") over every run a model came from: its own
    run, its warm-restart chain and, for a weight average, each member's chain, with a run
    that several members share (their common start) counted once. A weight average has no
    training of its own (soup.py records the sum of its members' runs): only its members
    count. Distillation teachers are not counted."""
    seen, total, todo = set(), 0, [x]
    while todo:
        r = todo.pop()
        if r.get("soup"):
            todo += r["soup"]
        else:
            ident = (r.get("command"), r.get("seed"), r.get("epochs"), r.get("train_seconds"))
            if ident not in seen:
                seen.add(ident)
                total += r.get(key) or 0
        if r.get("init"):
            todo.append(r["init"])
    return total


def how(x):
    """' (warm restart, distilled)' etc. for runs that came from other runs."""
    tags = [t for k, t in (("init", "warm restart"), ("soup", "weight average"),
                           ("teachers", "distilled")) if x.get(k)]
    return " (%s)" % ", ".join(tags) if tags else ""


def main():
    r = json.load(open(sys.argv[1]))
    print("| model | seed | epochs | train time | params | full-path MAdds | test acc (full) "
          "| light acc | early exit: threshold / acc / exit share / mean MAdds |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [("BasisNet N=%d%s" % (x["bases"], how(x)), x) for x in r["basisnet"]]
    for name, runs in r["baselines"].items():
        rows += [(name, x) for x in runs]
    for name, x in rows:
        a = x["accuracy"]
        ee = "—"
        if "test_early_exit" in a:
            ee = "%.3f / %s / %.1f%% / %s" % (a["threshold"], pct(a["test_early_exit"]),
                                              100 * a["exit_share"], m(a["mean_madds_early_exit"]))
        soup = x.get("soup")
        seed = "+".join(str(s["seed"]) for s in soup) if soup else str(x["seed"])
        epochs = "—" if soup else "%.2f" % x["epochs"]   # a weight average trains no epochs
        print("| %s | %s | %s | %d min | %s | %s | %s | %s | %s |" % (
            name, seed, epochs, round(lineage_total(x, "train_seconds") / 60), x.get("params") or "?",
            m(x["madds"]["full"]), pct(a["test_full"]),
            pct(a["test_light"]) if "test_light" in a else "—", ee))
    print()
    for k, s in r["summary"].items():
        print("- %s: %d run(s), test full-path accuracy mean %s (min %s, max %s)%s" % (
            k, s["n"], pct(s["mean"]), pct(s["min"]), pct(s["max"]),
            (", early exit mean %s, exit share %.1f%%" % (pct(s["ee_mean"]), 100 * s["exit_share_mean"]))
            if "ee_mean" in s else ""))
