#!/usr/bin/python3
"""Cameras per box: runs N basisnetd daemons at once, each on its own config, socket and
looping 640x480@30 MJPEG clip (made by make-clips.py), and finds the largest N at which every
daemon holds 30 fps with < 1% dropped frames, for each model and gate mode asked for.

A point (model, gate, N): start N daemons, wait until each answers `stats`, let them run
--warmup s, then read every daemon's stats and /proc/PID/stat, wait --seconds, read again.
A daemon holds 30 fps when frames_in grew by >= 99% of 30 x the window and the frames it
dropped (frames.dropped + frames.results_dropped) are < 1% of those in the window. Per
series N climbs --grid until a point fails, then one point between the last pass and the
first failure (--step) is tried. Every point is one JSON line in OUT/sweep.jsonl.

  sweep.py --clips DIR --model NAME=FILE [--model ...] --out OUT [--gates off,auto]
           [--grid 1,8,16,...] [--rounds R]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
FPS = 30
TICK = os.sysconf("SC_CLK_TCK")


def config_text(name, model, clip, roi, gate, sock, loop=True, min_score=None, hold_frames=None):
    """A camera's config as a user would write it: the mat cropped out of the frame, the
    budget of configs/camera.yaml (mode mean, 20 ms), the gate as asked (min_score,
    hold_frames None: the defaults)."""
    return f"""camera: {name}
model: {model}
log_level: warn
source:
  kind: file
  path: {clip}
  loop: {"true" if loop else "false"}
  fps: {FPS}
  crop: {{x: {roi['x']}, y: {roi['y']}, width: {roi['width']}, height: {roi['height']}}}
engine:
  threads: 1
  threshold: 0.9
budget:
  mode: mean
  latency_ms: 20
gate:
  mode: {gate}{"" if min_score is None else chr(10) + "  min_score: %g" % min_score}{
    "" if hold_frames is None else chr(10) + "  hold_frames: %d" % hold_frames}
publish:
  socket: {sock}
  mode: 0666
  change_frames: 3
"""


def stats(sock, timeout=5.0):
    """One `stats` reply over the socket (label messages before it are skipped)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall(b'{"cmd":"stats"}\n')
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                return None
            buf += d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                m = json.loads(line)
                if m.get("type") == "reply" and m.get("cmd") == "stats":
                    return m["stats"]
    finally:
        s.close()


def proc_cpu(pid):
    """utime + stime of a process, seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def machine_cpu():
    """(busy, total) seconds of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / TICK, sum(v[:8]) / TICK


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def run_point(a, model_name, model, gate, n, clips, work):
    procs = []
    try:
        for i in range(n):
            ev = clips[i % len(clips)]
            name = "cam%02d" % i
            sock = os.path.join(work, name + ".sock")
            cfg = os.path.join(work, name + ".yaml")
            with open(cfg, "w") as f:
                f.write(config_text(name, model, ev["path"], ev["roi"], gate, sock,
                                    min_score=a.min_scores.get(model_name)))
            log = open(os.path.join(work, name + ".log"), "w")
            p = subprocess.Popen([a.basisnetd, "--config", cfg], stdout=subprocess.DEVNULL,
                                 stderr=log)
            log.close()
            procs.append((p, sock))
        deadline = time.monotonic() + 30 + n
        for p, sock in procs:
            while True:
                if p.poll() is not None:
                    raise RuntimeError("a daemon exited at start (see %s)" % work)
                try:
                    if os.path.exists(sock) and stats(sock):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("daemons did not answer within %d s" % (30 + n))
                time.sleep(0.1)
        time.sleep(a.warmup)
        la0 = loadavg()
        m0, t0 = machine_cpu(), time.monotonic()
        # each daemon's window runs from its own first sample to its own second one
        first = [(stats(sock), proc_cpu(p.pid), time.monotonic()) for p, sock in procs]
        time.sleep(a.seconds)
        second = [(stats(sock), proc_cpu(p.pid), time.monotonic()) for p, sock in procs]
        m1, t1 = machine_cpu(), time.monotonic()
        la1 = loadavg()
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _ in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    dt = t1 - t0
    cams = []
    for (a0, x0, u0), (a1, x1, u1) in zip(first, second):
        w = u1 - u0
        fin = a1["source"]["frames_in"] - a0["source"]["frames_in"]
        drop = (a1["frames"]["dropped"] - a0["frames"]["dropped"]
                + a1["frames"]["results_dropped"] - a0["frames"]["results_dropped"])
        cls = a1["frames"]["classified"] - a0["frames"]["classified"]
        spec = a1["frames"]["specialist"] - a0["frames"]["specialist"]
        reused = a1["frames"]["gate_reused"] - a0["frames"]["gate_reused"]
        b = a1["budget"]
        cams.append({"fps_in": fin / w, "dropped": drop, "drop_share": drop / max(fin, 1),
                     "cpu_share": (x1 - x0) / w, "cpu_ms_per_frame": 1000 * (x1 - x0) / max(fin, 1),
                     "classified": cls, "specialist": spec, "reused": reused,
                     "reused_share": reused / max(fin, 1),
                     "threshold": a1["threshold"], "budget_ms": b["latency_ms"],
                     "budget_mean_ms": b["mean_ms"], "budget_p99_ms": b["p99_ms"],
                     "target_specialist_share": b["target_specialist_share"],
                     "unattainable": b["unattainable"]})
    ok = all(c["fps_in"] >= 0.99 * FPS and c["drop_share"] < 0.01 for c in cams)
    ours = sum(c["cpu_share"] for c in cams)
    busy = (m1[0] - m0[0]) / dt
    return {"model": model_name, "gate": gate, "n": n, "ok": ok, "seconds": round(dt, 2),
            "cpu_total": round(ours, 4), "cpu_per_camera": round(ours / n, 4),
            "machine_busy": round(busy, 3), "others_busy": round(max(busy - ours, 0.0), 3),
            "cpus": os.cpu_count(), "loadavg": [la0, la1],
            "min_fps": round(min(c["fps_in"] for c in cams), 2),
            "max_drop_share": round(max(c["drop_share"] for c in cams), 4),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cameras": cams}


def load_clips(d):
    """make-clips.py's events files, each with the clip's absolute path."""
    clips = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".events.json"):
            ev = json.load(open(os.path.join(d, f)))
            ev["path"] = os.path.join(os.path.abspath(d), ev["clip"])
            clips.append(ev)
    return clips


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", required=True, help="directory of make-clips.py's output")
    ap.add_argument("--model", action="append", required=True, metavar="NAME=FILE")
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-score", action="append", default=[], metavar="NAME=S",
                    help="gate.min_score for model NAME (default: the daemon's); a model whose "
                         "scores are low, as the random cam96 net's, needs 0")
    ap.add_argument("--gates", default="off,auto")
    ap.add_argument("--grid", default="1,8,16,24,32,40,48,56,64")
    ap.add_argument("--step", type=int, default=4, help="resolution of the search between grid points")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every series, interleaved")
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    ap.add_argument("--basisnetd", default=os.path.join(ROOT, "build/basisnetd"))
    a = ap.parse_args()
    clips = load_clips(a.clips)
    if not clips:
        sys.exit("sweep.py: no clips in %s (run make-clips.py)" % a.clips)
    models = [m.split("=", 1) for m in a.model]
    a.min_scores = {k: float(v) for k, v in (m.split("=", 1) for m in a.min_score)}
    grid = [int(x) for x in a.grid.split(",")]
    os.makedirs(a.out, exist_ok=True)
    work = os.path.join(a.out, "run")
    os.makedirs(work, exist_ok=True)
    out = open(os.path.join(a.out, "sweep.jsonl"), "a")
    series = [(m, g) for m in models for g in a.gates.split(",")]

    def measure(r, mname, mfile, gate, n):
        try:
            pt = run_point(a, mname, os.path.abspath(mfile), gate, n, clips, work)
        except (RuntimeError, OSError, TypeError, KeyError) as e:
            # a daemon that did not start or a stats reply that did not come (socket.timeout
            # is an OSError): the point fails, the sweep goes on
            print("sweep: %s gate %s N=%d: %s" % (mname, gate, n, e), flush=True)
            pt = {"model": mname, "gate": gate, "n": n, "ok": False, "error": str(e),
                  "cpu_total": 0.0, "cpu_per_camera": 0.0, "min_fps": 0.0, "max_drop_share": 1.0,
                  "others_busy": 0.0, "loadavg": [loadavg(), loadavg()], "cpus": os.cpu_count(),
                  "cameras": []}
        pt["round"] = r
        out.write(json.dumps(pt) + "\n")
        out.flush()
        print("sweep: %-8s gate %-4s N=%-3d %s  min fps %.2f  max drop %.2f%%  CPU %.3f cores "
              "(%.1f%% of a core each), others %.2f, load %s"
              % (mname, gate, n, "ok  " if pt["ok"] else "FAIL", pt["min_fps"],
                 100 * pt["max_drop_share"], pt["cpu_total"], 100 * pt["cpu_per_camera"],
                 pt["others_busy"], "/".join(pt["loadavg"])), flush=True)
        return pt["ok"]

    for r in range(a.rounds):
        for (mname, mfile), gate in (series if r % 2 == 0 else series[::-1]):
            last_ok, first_bad = 0, None
            for n in grid:
                if not measure(r, mname, mfile, gate, n):
                    first_bad = n
                    break
                last_ok = n
            if first_bad is not None and first_bad - last_ok > a.step:
                measure(r, mname, mfile, gate,
                        last_ok + max(a.step, (first_bad - last_ok) // 2 // a.step * a.step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
