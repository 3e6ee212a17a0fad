#!/usr/bin/python3
"""Print the markdown results table from an eval.py JSON file.  report.py EVAL.json"""
import json
import sys


def m(x):
    return "%.2fM" % (x / 1e6)


def pct(x):
    return "%.2f" % (100 * x)


def chain_total(x, key):
    """Sum of x[key] over a run and the runs it was warm-restarted from (its `init` chain):
    key "epochs" or "train_seconds"."""
    n, init = x[key], x.get("init")
    while init:
        n, init = n + init[key], init.get("init")
    return n


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
        print("| %s | %d | %.2f | %d min | %s | %s | %s | %s | %s |" % (
            name, x["seed"], x["epochs"], round(chain_total(x, "train_seconds") / 60), x.get("params") or "?",
            m(x["madds"]["full"]), pct(a["test_full"]),
            pct(a["test_light"]) if "test_light" in a else "—", ee))
    print()
    for k, s in r["summary"].items():
        print("- %s: %d run(s), test full-path accuracy mean %s (min %s, max %s)%s" % (
            k, s["n"], pct(s["mean"]), pct(s["min"]), pct(s["max"]),
            (", early exit mean %s, exit share %.1f%%" % (pct(s["ee_mean"]), 100 * s["exit_share_mean"]))
            if "ee_mean" in s else ""))


if __name__ == "__main__":
    main()
