#!/usr/bin/python3
"""Budget benchmark analysis (bench/budget/run.sh collects the data).

Reads the label messages basisnetd published on the sample clip (JSON lines from
`basisnetctl subscribe`), and writes
  - budget-contention.png: latency, threshold and exit share over the run with CPU
    contention in the middle, and the share of 100-frame windows within budget + 10%;
  - a table: accuracy of the published labels against the clip's ground truth for the
    budgeted early exit, the peers' method (the full two-stage model on every Nth frame,
    its label repeated in between) at about the same mean compute, the light model alone,
    and the full model on every frame.
With --stage-times FILE it prints only the median in-daemon stage times of one run (light
over every frame, synthesis + specialist over the frames the specialist answered), in ms:
run.sh's budget rule.
"""
import argparse
import csv
import datetime as dt
import json
import re
import statistics
import sys

FPS = 30


def load_messages(path):
    msgs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            m = json.loads(line)
            if m.get("type") == "label":
                msgs.append(m)
    return msgs


def load_truth(path):
    truth = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            for fr in range(int(row["first_frame"]), int(row["last_frame"]) + 1):
                truth[fr] = row["label_name"]
    return truth


def frame_of(m):
    return int(round(m["pts_ns"] * FPS / 1e9))


def parse_time(s):
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def model_madds(info_path):
    text = open(info_path).read()
    m = re.search(r"MAdds\s+light (\d+), synthesis (\d+), specialist (\d+)", text)
    if not m:
        sys.exit("analyze: no MAdds line in " + info_path)
    light, synth, spec = (int(x) for x in m.groups())
    return light, synth + spec


def accuracy(pairs, truth):
    scored = [(fr, lab) for fr, lab in pairs if fr in truth]
    if not scored:
        return float("nan"), 0
    return sum(lab == truth[fr] for fr, lab in scored) / len(scored), len(scored)


def mean_madds(msgs, light, spec):
    n = len(msgs)
    s = sum(1 for m in msgs if m["stage"] == "specialist")
    return light + spec * s / n, s / n


def every_nth(full_msgs, n, phase=0):
    """Peers' method from a run that classified every frame with the full model: frames
    whose index is phase modulo n are classified, the others repeat the last answer."""
    by_frame = sorted((frame_of(m), m["label"]) for m in full_msgs)
    out, last = [], None
    for fr, lab in by_frame:
        if fr % n == phase or last is None:
            last = lab
        out.append((fr, last))
    return out


def every_nth_accuracy(full_msgs, n, truth):
    """Mean over the n phases: the clip changes scene every 15 frames, so a phase (and an n
    dividing 15) aligned with the changes would never repeat a stale label; a camera is
    not aligned with its scenes."""
    accs = [accuracy(every_nth(full_msgs, n, ph), truth) for ph in range(n)]
    return sum(a for a, _ in accs) / n, accs[0][1]


def plot_contention(msgs, budget_ms, t_on, t_off, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = parse_time(msgs[0]["time"])
    t = [parse_time(m["time"]) - t0 for m in msgs]
    lat = [m["latency_ms"]["light"] + m["latency_ms"]["synth"] + m["latency_ms"]["specialist"] for m in msgs]
    thr = [m["threshold"] for m in msgs]
    light = [1.0 if m["stage"] == "light" else 0.0 for m in msgs]
    W = 100

    def rolling(v):
        out, s = [], 0.0
        for i, x in enumerate(v):
            s += x
            if i >= W:
                s -= v[i - W]
            out.append(s / min(i + 1, W))
        return out

    fig, ax = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    ax[0].plot(t, lat, ".", ms=2, color="0.7", label="per frame (light + synth + specialist)")
    ax[0].plot(t, rolling(lat), color="C0", label=f"mean of the last {W} frames")
    ax[0].axhline(budget_ms, color="C3", ls="--", label=f"budget {budget_ms:g} ms")
    ax[0].set_ylabel("latency, ms")
    ax[0].set_ylim(0, max(budget_ms * 3, 1e-3))
    ax[0].legend(loc="upper right", fontsize=8)
    ax[1].plot(t, thr, color="C2")
    ax[1].set_ylabel("threshold")
    ax[2].plot(t, rolling(light), color="C1")
    ax[2].set_ylabel(f"exit share ({W} frames)")
    ax[2].set_ylim(0, 1)
    ax[2].set_xlabel("seconds since the first label")
    for a in ax:
        if t_on is not None:
            a.axvspan(t_on - t0, t_off - t0, color="C3", alpha=0.08)
    ax[0].set_title("basisnetd on the sample clip, mean mode; shaded: stress-ng CPU contention")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    return t, lat


def stage_times(msgs):
    """Median light time over every frame and median synthesis + specialist time over the
    frames the specialist answered (ms), or None when a stage never ran."""
    light = [m["latency_ms"]["light"] for m in msgs]
    spec = [m["latency_ms"]["synth"] + m["latency_ms"]["specialist"]
            for m in msgs if m["stage"] == "specialist"]
    if not light or not spec:
        return None
    return statistics.median(light), statistics.median(spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage-times", metavar="JSONL",
                    help="print the median in-daemon stage times of one run and exit")
    ap.add_argument("--dir")
    ap.add_argument("--truth")
    ap.add_argument("--info")
    ap.add_argument("--budget", type=float)
    ap.add_argument("--stress-on", type=float)
    ap.add_argument("--stress-off", type=float)
    a = ap.parse_args()
    if a.stage_times:
        st = stage_times(load_messages(a.stage_times))
        if st is None:
            sys.exit("analyze: %s: no frame ran both stages" % a.stage_times)
        print("%.3f %.3f" % st)
        return
    for need in ("dir", "truth", "info", "budget"):
        if getattr(a, need) is None:
            ap.error("--%s is required" % need)
    d = a.dir
    truth = load_truth(a.truth)
    light_madds, spec_madds = model_madds(a.info)
    full_madds = light_madds + spec_madds

    # --- contention run -------------------------------------------------------------
    cm = load_messages(f"{d}/contention.jsonl")
    plot_contention(cm, a.budget, a.stress_on, a.stress_off, f"{d}/budget-contention.png")
    lat = [m["latency_ms"]["light"] + m["latency_ms"]["synth"] + m["latency_ms"]["specialist"] for m in cm]
    thr = [m["threshold"] for m in cm]
    windows = [(i, sum(lat[i:i + 100]) / 100, sum(thr[i:i + 100]) / 100)
               for i in range(0, len(lat) - 99, 100)]
    ok = sum(1 for _, mean, _ in windows if mean <= a.budget * 1.10)
    print(f"contention run: {len(cm)} labels, budget {a.budget:g} ms; {ok} of {len(windows)} "
          f"100-frame windows had mean latency <= budget + 10%")
    in_stress = [m for m in cm if a.stress_on is not None and a.stress_on <= parse_time(m["time"]) <= a.stress_off]
    outside = [m for m in cm if m not in in_stress]
    for name, part in (("without contention", outside), ("with contention", in_stress)):
        if part:
            pl = [m["latency_ms"]["light"] + m["latency_ms"]["synth"] + m["latency_ms"]["specialist"] for m in part]
            print(f"  {name}: {len(part)} labels, mean latency {sum(pl)/len(pl):.3f} ms, "
                  f"mean threshold {sum(m['threshold'] for m in part)/len(part):.3f}, "
                  f"exit share {sum(m['stage']=='light' for m in part)/len(part):.3f}, "
                  f"dropped frames {sum(m.get('dropped_frames', 0) for m in part)}")
    print("  windows (first frame, mean ms, mean threshold): " +
          " ".join(f"{i}:{mean:.3f}/{t:.2f}" for i, mean, t in windows))

    # --- equal-compute table --------------------------------------------------------
    import os
    if not all(os.path.exists(f"{d}/{n}.jsonl") for n in ("budget", "full", "light")):
        print("(accuracy table skipped: runs budget, full, light not made)")
        return
    bm = load_messages(f"{d}/budget.jsonl")
    fm = load_messages(f"{d}/full.jsonl")
    lm = load_messages(f"{d}/light.jsonl")
    b_madds, b_spec = mean_madds(bm, light_madds, spec_madds)
    n = max(1, round(full_madds / b_madds))
    rows = []
    acc, cnt = accuracy([(frame_of(m), m["label"]) for m in bm], truth)
    rows.append((f"BasisNet, budget {a.budget:g} ms (early exit, specialist on {100*b_spec:.0f}% of frames)", b_madds, acc, cnt))
    for k in sorted({max(1, n - 1), n, n + 1}):
        acc, cnt = every_nth_accuracy(fm, k, truth)
        rows.append((f"full model on every {k}th frame, label repeated (peers' interval={k-1}; "
                     f"mean of its {k} phases)", full_madds / k, acc, cnt))
    acc, cnt = accuracy([(frame_of(m), m["label"]) for m in lm], truth)
    l_madds, _ = mean_madds(lm, light_madds, spec_madds)
    rows.append(("light model alone, every frame", l_madds, acc, cnt))
    f_madds, f_spec = mean_madds(fm, light_madds, spec_madds)
    acc, cnt = accuracy([(frame_of(m), m["label"]) for m in fm], truth)
    rows.append((f"full model on every frame (specialist on {100*f_spec:.1f}%)", f_madds, acc, cnt))
    print()
    print("| method | mean MAdds per frame | accuracy of published labels | labels scored |")
    print("|---|---|---|---|")
    for name, madds, acc, cnt in rows:
        print(f"| {name} | {madds/1e6:.2f}M | {100*acc:.1f}% | {cnt} |")


if __name__ == "__main__":
    main()
