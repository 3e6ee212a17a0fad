#!/usr/bin/python3
"""Bar chart of the engine against its peers, from the tables of docs/results-engine.md
(the output of bench/engine/run.sh): for each network, each row's ratio peer p50 / basisnet
p50 (> 1: basisnet is faster), log scale.

Usage: /usr/bin/python3 tools/docs/plot_engine.py OUT.png [RESULTS.md]
(RESULTS.md defaults to docs/results-engine.md; build/bench/engine/results.md, which
bench/engine/run.sh writes, has the same tables.)"""
import re
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401

ROWS = [  # (start of the row's first cell, short name)
    ("light stage alone", "light stage"),
    ("synthesis + specialist vs the peers'", "synthesis +\nspecialist vs\nstatic spec."),
    ("both stages vs the peers' static", "both stages\nvs static\nspecialist"),
    ("both stages vs the peers' two-stage", "both stages\nvs two-stage\ngraph"),
]
PEERS = [("onnxruntime", "ONNX Runtime", "#1f77b4"), ("pytorch", "PyTorch TorchScript", "#ff7f0e"),
         ("opencv", "OpenCV DNN", "#2ca02c")]


def parse(path):
    nets, cur, cols = {}, None, None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"#### (\S+), (\d+) thread", line)
        if m:
            cur = m.group(1) if m.group(2) == "1" else None
            cols = None
            continue
        if cur is None:
            continue
        if not line.startswith("|"):
            if cols is not None:  # the end of that network's table
                cur = cols = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "graph":
            cols = cells
            continue
        if cols is None or set(cells[0]) <= set("-"):
            continue
        for prefix, short in ROWS:
            if cells[0].startswith(prefix):
                ratios = {}
                for key, _, _ in PEERS:
                    idx = [i for i, c in enumerate(cols) if c.startswith(key) and "/ basisnet" in c]
                    v = cells[idx[0]] if idx else "n/a"
                    ratios[key] = float(v.rstrip("x")) if v.endswith("x") else None
                nets.setdefault(cur, {})[short] = ratios
    return nets


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = sys.argv[2] if len(sys.argv) > 2 else "docs/results-engine.md"
    # a network the peers did not run (mnv3f16: F16 bases, engine only) has no ratios
    nets = {n: rows for n, rows in parse(src).items()
            if any(v is not None for r in rows.values() for v in r.values())}
    if not nets:
        sys.exit("plot_engine: no '#### NET, 1 thread' tables in %s" % src)
    fig, axes = plt.subplots(1, len(nets), figsize=(4.2 * len(nets), 4.6), sharey=True)
    if len(nets) == 1:
        axes = [axes]
    width = 0.26
    for ax, (net, rows) in zip(axes, nets.items()):
        names = [short for _, short in ROWS if short in rows]
        for j, (key, label, color) in enumerate(PEERS):
            for i, name in enumerate(names):
                v = rows[name][key]
                if v is None:
                    continue
                # bars grow from 1 (parity): up when basisnet is faster, down when slower
                ax.bar(i + (j - 1) * width, v - 1.0, width, bottom=1.0, color=color,
                       label=label if i == 0 else None)
                ax.text(i + (j - 1) * width, v, "%.2f" % v, ha="center",
                        va="bottom" if v >= 1 else "top", fontsize=6.5)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylim(0.4, 12)
        ax.set_yticks([0.5, 1, 2, 4, 8])
        ax.get_yaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.minorticks_off()
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, fontsize=7)
        ax.set_title("%s, 1 thread" % net)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("peer time / basisnet time (p50; > 1: basisnet faster)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("libbasisnet against its peers, batch 1 (numbers: %s)" % src, fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=90)


if __name__ == "__main__":
    main()
