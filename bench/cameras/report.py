#!/usr/bin/python3
"""Summarises a bench/cameras run: the largest N per model and gate mode (median over
rounds), CPU and budget at that N, a markdown table on stdout, and the plot of CPU against
cameras (--plot FILE.png).

  report.py OUT [--plot docs/img/cameras-cpu.png]
"""
import argparse
import collections
import json
import os
import statistics
import sys


def load(out):
    pts = [json.loads(l) for l in open(os.path.join(out, "sweep.jsonl"))]
    series = collections.OrderedDict()
    for p in pts:
        series.setdefault((p["model"], p["gate"]), []).append(p)
    return series


def max_n(points):
    """Largest passing N per round (every smaller tried N passed too), median over rounds."""
    per_round = collections.defaultdict(list)
    for p in points:
        per_round[p["round"]].append(p)
    best = []
    for ps in per_round.values():
        ps = sorted(ps, key=lambda p: p["n"])
        fails = [p["n"] for p in ps if not p["ok"]]
        cap = min(fails) if fails else float("inf")
        ok = [p["n"] for p in ps if p["ok"] and p["n"] < cap]
        best.append(max(ok) if ok else 0)
    return best


def at(points, n):
    return [p for p in points if p["n"] == n and p["ok"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--plot")
    a = ap.parse_args()
    series = load(a.out)
    print("| model | gate | largest N (per round) | CPU per camera at N (% of a core) | "
          "cores / CPU per camera | engine runs (share of frames) | threshold, budget mean / p99 ms | "
          "others' load (cores) |")
    print("|---|---|---|---|---|---|---|---|")
    for (model, gate), pts in series.items():
        best = max_n(pts)
        n = int(statistics.median(best)) if len(best) % 2 else min(best)
        here = at(pts, n)
        if not here:
            print("| %s | %s | %s | | | | | |" % (model, gate, ", ".join(map(str, best))))
            continue
        cams = [c for p in here for c in p["cameras"]]
        cpu = statistics.median(100 * c["cpu_share"] for c in cams)
        cls = statistics.median(c["classified"] / max(c["classified"] + c["reused"], 1) for c in cams)
        thr = statistics.median(c["threshold"] for c in cams)
        bm = statistics.median(c["budget_mean_ms"] for c in cams)
        bp = statistics.median(c["budget_p99_ms"] for c in cams)
        others = statistics.median(p["others_busy"] for p in here)
        print("| %s | %s | **%d** (%s) | %.1f | %.0f | %.0f%% | %.2f, %.2f / %.2f (budget %g) | %.2f |"
              % (model, gate, n, ", ".join(map(str, best)), cpu, 100 * here[0]["cpus"] / cpu,
                 100 * cls, thr, bm, bp, cams[0]["budget_ms"], others))
    print()
    print("| model | gate | N | CPU of the N daemons (cores) | per camera (% of a core) | "
          "min fps | max dropped | others (cores) | load before/after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (model, gate), pts in series.items():
        for p in sorted(pts, key=lambda p: (p["n"], p["round"])):
            if "error" in p:
                print("| %s | %s | %d | failed: %s | | | | | |" % (model, gate, p["n"], p["error"]))
                continue
            print("| %s | %s | %d | %.2f | %.1f | %.2f | %.2f%% | %.2f | %s |"
                  % (model, gate, p["n"], p["cpu_total"], 100 * p["cpu_per_camera"], p["min_fps"],
                     100 * p["max_drop_share"], p["others_busy"], " / ".join(p["loadavg"])))
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        styles = {"off": "-", "auto": "--"}
        colours = {}
        for (model, gate), pts in series.items():
            col = colours.setdefault(model, "C%d" % len(colours))
            by_n = collections.defaultdict(list)
            for p in pts:
                if "error" not in p:
                    by_n[p["n"]].append(p)
            ns = sorted(by_n)
            ax.plot(ns, [statistics.median(p["cpu_total"] for p in by_n[n]) for n in ns],
                    styles.get(gate, ":"), color=col, marker="o", ms=3,
                    label="%s, gate %s" % (model, gate))
            bad = [p for p in pts if not p["ok"] and "error" not in p]
            ax.plot([p["n"] for p in bad], [p["cpu_total"] for p in bad], "x", color=col, ms=8)
        cores = max(p["cpus"] for pts in series.values() for p in pts)
        ax.axhline(cores, color="grey", lw=0.8)
        ax.text(1, cores + 0.03, "%d cores" % cores, fontsize=8, color="grey")
        ax.set_xlabel("cameras (daemons, 640x480 MJPEG at 30 fps each)")
        ax.set_ylabel("CPU of all daemons (cores)")
        ax.set_title("CPU vs cameras (x: a daemon fell below 30 fps or dropped >= 1%)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(a.plot)
        print("report: wrote %s" % a.plot, file=sys.stderr)
    pol = [f for f in sorted(os.listdir(a.out)) if f.startswith("policy-") and f.endswith(".json")]
    for f in pol:
        s = json.load(open(os.path.join(a.out, f)))
        print()
        print("%s: %d clips, %d scene changes (load %s -> %s)" % (
            os.path.basename(s["model"]), s["clips"], s["truth_changes"], "/".join(s["loadavg_before"]),
            "/".join(s["loadavg_after"])))
        print()
        print("| policy | change latency median / max (ms) | missed | state accuracy | "
              "answer accuracy | frames classified | CPU (ms per s of video) |")
        print("|---|---|---|---|---|---|---|")
        rows = [("gate off", "off", "cpu_ms_per_s"), ("gate on", "auto", "cpu_ms_per_s"),
                ("Frigate-style, its motion detector", "frigate", "cpu_ms_per_s_own_detector"),
                ("Frigate-style, the gate as its detector (modelled lower bound)", "frigate",
                 "cpu_ms_per_s")]
        for name, p, cpu in rows:
            v = s["policies"][p]
            q = ("%s / %s | %d | %.2f%% | %.2f%%" % (v["median_latency_ms"], v["max_latency_ms"],
                                                   v["missed_changes"], v["state_accuracy"],
                                                   v["answer_accuracy"])
                 if s.get("labels_comparable", True) else "n/a | n/a | n/a | n/a")
            print("| %s | %s | %.1f%% | %.1f |" % (name, q, 100 * v["classified_share"], v[cpu]))
        f = s["policies"]["frigate"]
        print()
        print("The modelled lower bound with the cheaper cost per classification saved: %.1f ms per s."
              % f["cpu_ms_per_s_high"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
