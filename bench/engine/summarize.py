#!/usr/bin/env python3
"""Turns bench/engine/run.sh's results.jsonl into a markdown table: per network, thread
count and graph, the median over rounds of each runtime's p50 and p99 (ms), and the ratio
peer / basisnet of the p50s (> 1: basisnet is faster)."""
import json
import statistics
import sys
from collections import defaultdict

PEERS = ["onnxruntime", "pytorch-torchscript", "opencv-dnn"]
# (our graph, the peers' graph, title)
GRAPHS = [("light", "light", "light stage alone (ours incl. preprocessing from 8-bit)"),
          ("specialist", "specialist", "synthesis + specialist vs the peers' static specialist"),
          ("specialist_only", "specialist", "specialist on reused weights (no synthesis) vs static specialist"),
          ("full", "specialist", "both stages vs the peers' static specialist alone (the user's alternative)"),
          ("full", "full", "both stages vs the peers' two-stage graph (synthesis inside the graph)")]


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    agg = defaultdict(list)
    extra = {}
    for r in rows:
        rt = "onnxruntime" if r["runtime"].startswith("onnxruntime") else r["runtime"]
        agg[(r["net"], r["threads"], r["graph"], rt)].append(r)
        if r["runtime"] == "basisnet" and r["graph"] == "full":
            extra.setdefault((r["net"], r["threads"]), []).append(r)
    versions = sorted({r["runtime"] for r in rows if r["runtime"].startswith("onnxruntime")})
    print("Runtimes: basisnet (this engine), %s, PyTorch TorchScript (traced + frozen), OpenCV DNN "
          "(no synthesis: OpenCV needs constant conv weights).\n" % ", ".join(versions))
    for (net, th) in sorted(extra):
        print("### %s, %d thread%s\n" % (net, th, "s" if th > 1 else ""))
        print("| graph | basisnet p50 / p99 ms | " + " | ".join("%s p50 / p99 ms" % p for p in PEERS)
              + " | " + " | ".join("%s / basisnet" % p.split("-")[0] for p in PEERS) + " |")
        print("|---|---|" + "---|" * (2 * len(PEERS)))
        for g_ours, g_peer, title in GRAPHS:
            def med(rt, key):
                v = [r[key] for r in agg.get((net, th, g_ours if rt == "basisnet" else g_peer, rt), [])]
                return statistics.median(v) if v else None
            ours = med("basisnet", "p50_ms")
            cells, ratios = [], []
            for rt in ["basisnet"] + PEERS:
                p50, p99 = med(rt, "p50_ms"), med(rt, "p99_ms")
                cells.append("%.3f / %.3f" % (p50, p99) if p50 is not None else "n/a")
                if rt != "basisnet":
                    ratios.append("%.2fx" % (p50 / ours) if p50 is not None and ours else "n/a")
            print("| %s | %s | %s |" % (title, " | ".join(cells), " | ".join(ratios)))
        e = extra[(net, th)]
        m = lambda k: statistics.median(r[k] for r in e)
        sel = lambda g: [r for r in rows if r["runtime"] == "basisnet" and r["net"] == net and r["threads"] == th
                         and r["graph"] == g]
        p50 = lambda g: statistics.median(r["p50_ms"] for r in sel(g))
        so, sr = sel("specialist_only"), sel("specialist_synth_run")
        if th > 1:
            synth = ("synthesis ahead on a worker, waited for p50 %.3f ms (%.1f%% of synthesis + specialist)"
                     % (p50("synth"), 100 * m("synth_share_of_specialist")))
        else:
            synth = ("synthesis p50 %.3f ms (%.1f GB/s of bases, %.1f%% of synthesis + specialist)"
                     % (p50("synth"), m("synth_gbytes_per_s"), 100 * m("synth_share_of_specialist")))
        print("\nbasisnet detail: light inside the two-stage loop p50 %.3f ms (the synthesis streams the "
              "bases through the cache between light runs); specialist on reused weights p50 %.3f ms (%.1f GFLOP/s), "
              "in the synthesis run p50 %.3f ms (%.1f GFLOP/s); %s; light %.1f GFLOP/s, CPU time %.3f ms "
              "per inference (reused weights: %.3f), session %d bytes, kernels %s, MAdds light %d / synth %d / "
              "specialist %d.\n"
              % (p50("light_loop"), p50("specialist_only"), statistics.median(r["specialist_gflops"] for r in so),
                 p50("specialist_synth_run") if sr else float("nan"), m("specialist_gflops"), synth,
                 m("light_gflops"), m("cpu_ms_per_inference"),
                 statistics.median(r["cpu_ms_per_inference"] for r in so),
                 e[0]["session_bytes"], e[0]["kernels"], e[0]["madds"]["light"], e[0]["madds"]["synth"],
                 e[0]["madds"]["specialist"]))
    if not extra:
        print("(no basisnet results)")
    errs = [(r["runtime"], r["net"], r["graph"], r["max_rel_err"]) for r in rows if "max_rel_err" in r]
    if errs:
        worst = max(e[3] for e in errs)
        print("Peers' outputs vs the torch reference on the benchmark image: max relative error %.2g.\n" % worst)


if __name__ == "__main__":
    main()
