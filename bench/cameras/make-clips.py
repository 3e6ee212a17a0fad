#!/usr/bin/python3
"""Renders camera-like 640x480 MJPEG clips for bench/cameras: a fixed camera looking at a
dark mat on which Fashion-MNIST items are shown one after another, with what a real camera
sees between the changes.

Each clip (one seed) has
  - static periods: an item lies still for 3-7 s, under sensor noise (sigma 2-8 gray levels
    per pixel at 640x480, a different level per clip) and JPEG artefacts;
  - moving periods: the item is handled (it wobbles by up to 10 px and back, 0.7-1.5 s), and
    people walk across the bottom of the frame, outside the region of interest;
  - lighting changes: a slow drift of +-8% and light steps (the scene dims to 0.6x, then
    the camera's exposure recovers to 0.85x over a second, and later back);
  - scene changes: the item is swapped for one of another class (a cut).
The region of interest (the mat) is ROI below; the daemon crops it with source.crop.

Writes, per clip NAME (cam00, cam01, ...) in --out:
  NAME.avi          MJPEG in AVI, 640x480 at 30 fps (jpegenc quality 85)
  NAME.truth.csv    first_frame,last_frame,label_index,label_name per item segment
  NAME.events.json  the scene changes (truth), motion periods, light steps, noise sigma
Needs numpy, PIL, gst-launch-1.0 (jpegenc, avimux) and Debian's dataset-fashion-mnist.
"""
import argparse
import csv
import gzip
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

W, H, FPS = 640, 480, 30
ROI = (176, 96, 288, 288)           # x, y, width, height: the mat
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
          "Sneaker", "Bag", "Ankle boot"]
SIGMAS = [2, 4, 6, 8, 3, 5, 7, 8]
DATA = "/usr/share/datasets/fashion-mnist"


def lowpass(rng, shape, k):
    """Smooth random texture in [0, 1]: noise upscaled from a coarse grid."""
    small = rng.random((max(shape[0] // k, 2), max(shape[1] // k, 2))).astype(np.float32)
    im = Image.fromarray((small * 255).astype(np.uint8)).resize((shape[1], shape[0]), Image.BICUBIC)
    return np.asarray(im, np.float32) / 255.0


def background(rng):
    """A room: a wall, a floor band, a table under the mat, some texture."""
    bg = np.empty((H, W, 3), np.float32)
    tex = lowpass(rng, (H, W), 24) * 0.6 + lowpass(rng, (H, W), 4) * 0.4
    wall = np.array(rng.uniform(120, 170, 3), np.float32)
    floor = np.array(rng.uniform(70, 110, 3), np.float32)
    bg[:] = wall
    bg[390:] = floor
    bg *= (0.8 + 0.4 * tex)[..., None]
    x, y, w, h = ROI
    bg[y - 10:y + h + 10, x - 10:x + w + 10] = np.array(rng.uniform(60, 90, 3), np.float32)  # table
    return bg


def item_image(images, index):
    """A Fashion-MNIST test image scaled to the mat (bilinear), light on a dark mat."""
    px = np.frombuffer(images, np.uint8, 784, 16 + index * 784).reshape(28, 28)
    im = Image.fromarray(px).resize((ROI[2], ROI[3]), Image.BILINEAR)
    return np.asarray(im, np.float32) * 0.95


def timeline(rng, n, labels_pool):
    """Item segments, handling periods, walkers and light steps of one clip."""
    segs, f, prev = [], 0, -1
    while f < n:
        ln = int(rng.integers(3 * FPS, 7 * FPS + 1))
        if n - (f + ln) < 2 * FPS:          # no stub at the end
            ln = n - f
        cands = [r for r in labels_pool if r[1] != prev]
        idx, lab = cands[int(rng.integers(len(cands)))]
        segs.append({"first_frame": f, "last_frame": f + ln - 1, "label_index": lab,
                     "label_name": LABELS[lab], "test_image_index": idx})
        prev = lab
        f += ln
    handling = []
    for s in segs:
        if rng.random() < 0.6:
            dur = int(rng.integers(int(0.7 * FPS), int(1.5 * FPS) + 1))
            room = s["last_frame"] - s["first_frame"] - dur - 2 * FPS
            if room > 0:
                a = s["first_frame"] + FPS + int(rng.integers(room))
                handling.append({"first_frame": a, "last_frame": a + dur - 1,
                                 "dx": float(rng.uniform(-10, 10)), "dy": float(rng.uniform(-10, 10))})
    walkers = []
    for _ in range(int(rng.poisson(n / FPS / 8.0)) + 1):
        dur = int(rng.uniform(3, 5) * FPS)
        a = int(rng.integers(0, max(n - dur, 1)))
        walkers.append({"first_frame": a, "last_frame": a + dur - 1, "dir": int(rng.choice([-1, 1])),
                        "top": int(rng.integers(398, 409)), "shade": float(rng.uniform(30, 200))})
    lights = []
    t = int(rng.integers(3 * FPS, 8 * FPS))
    while t < n - 4 * FPS:
        lights.append({"frame": t, "off_frames": int(rng.integers(3 * FPS, 6 * FPS))})
        t += lights[-1]["off_frames"] + int(rng.integers(6 * FPS, 12 * FPS))
    return segs, handling, walkers, lights


def gain_track(n, lights, phase):
    t = np.arange(n) / FPS
    g = 1.0 + 0.08 * np.sin(2 * np.pi * t / 20.0 + phase)
    k = 1.0 - np.exp(-1.0 / (0.35 * FPS))   # exposure recovery: ~1 s to settle
    for L in lights:
        a, b = L["frame"], min(L["frame"] + L["off_frames"], n)
        e = 0.6
        for i in range(a, b):               # dim to 0.6x, exposure brings it to 0.85x
            g[i] *= e
            e += k * (0.85 - e)
        e = 0.85 / 0.6                      # light back: too bright until exposure follows
        for i in range(b, min(b + 2 * FPS, n)):
            g[i] *= e
            e += k * (1.0 - e)
    return g


def walker_sprite(shade):
    """A person seen from the side at the bottom of the frame: an ellipse body and a head."""
    h, w = 70, 40
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    body = ((xx - 20) / 14) ** 2 + ((yy - 45) / 25) ** 2 <= 1
    head = ((xx - 20) / 8) ** 2 + ((yy - 12) / 9) ** 2 <= 1
    m = (body | head).astype(np.float32)
    return m[..., None], np.float32(shade)


def render_clip(out, name, seed, seconds, images, pool_rows):
    rng = np.random.default_rng([seed, 0xCA5])
    n = int(round(seconds * FPS))
    sigma = SIGMAS[seed % len(SIGMAS)]
    segs, handling, walkers, lights = timeline(rng, n, pool_rows)
    gain = gain_track(n, lights, float(rng.uniform(0, 2 * np.pi)))
    bg = background(rng)
    mat = np.float32(rng.uniform(2, 6))
    m = 16
    noise = rng.standard_normal((3, H + m, W + m, 3), dtype=np.float32)
    x0, y0, rw, rh = ROI
    pad = 16
    canvas = np.empty((rh + 2 * pad, rw + 2 * pad), np.float32)
    buf = np.empty((H, W, 3), np.float32)
    out8 = np.empty((H, W, 3), np.uint8)
    sprites = [walker_sprite(w["shade"]) for w in walkers]
    avi = os.path.join(out, name + ".avi")
    enc = subprocess.Popen(
        ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "rawvideoparse", "width=%d" % W,
         "height=%d" % H, "format=rgb", "framerate=%d/1" % FPS, "!", "videoconvert", "!",
         # 4:2:0 as cameras send it, full range as JPEG means it (limited-range I420 in a
         # JPEG decodes with black at 16)
         "video/x-raw,format=I420,colorimetry=1:4:0:0", "!", "jpegenc", "quality=85", "!",
         "avimux", "!",
         "filesink", "location=" + avi], stdin=subprocess.PIPE)
    si = 0
    item = None
    for i in range(n):
        while segs[si]["last_frame"] < i:
            si += 1
        if item is None or i == segs[si]["first_frame"]:
            canvas[:] = mat
            canvas[pad:pad + rh, pad:pad + rw] = item_image(images, segs[si]["test_image_index"])
            item = canvas.copy()
        dx = dy = 0
        for hd in handling:
            if hd["first_frame"] <= i <= hd["last_frame"]:
                a = (i - hd["first_frame"]) / max(hd["last_frame"] - hd["first_frame"], 1)
                s = np.sin(np.pi * a) * (1 + 0.3 * np.sin(6 * np.pi * a))
                dx, dy = int(round(hd["dx"] * s)), int(round(hd["dy"] * s))
        np.copyto(buf, bg)
        buf[y0:y0 + rh, x0:x0 + rw] = item[pad - dy:pad - dy + rh, pad - dx:pad - dx + rw, None]
        for wk, (mask, shade) in zip(walkers, sprites):
            if wk["first_frame"] <= i <= wk["last_frame"]:
                a = (i - wk["first_frame"]) / (wk["last_frame"] - wk["first_frame"])
                x = int((-40 + (W + 40) * a) if wk["dir"] > 0 else (W - (W + 40) * a))
                ys = wk["top"]                  # below the table: never in the ROI
                c0, c1 = max(x, 0), min(x + 40, W)
                r1 = min(ys + 70, H)
                if c1 > c0:
                    reg = buf[ys:r1, c0:c1]
                    mk = mask[:r1 - ys, c0 - x:c1 - x]
                    reg += mk * (shade - reg)
        buf *= np.float32(gain[i])
        k = int(rng.integers(3))
        oy, ox = int(rng.integers(m)), int(rng.integers(m))
        nz = noise[k, oy:oy + H, ox:ox + W]
        buf += np.float32(sigma) * nz
        np.clip(buf, 0, 255, out=buf)
        np.copyto(out8, buf + 0.5, casting="unsafe")
        enc.stdin.write(out8.tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        print("make-clips.py: gst-launch-1.0 failed encoding %s" % avi, file=sys.stderr)
        return 1
    with open(os.path.join(out, name + ".truth.csv"), "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["first_frame", "last_frame", "label_index", "label_name", "test_image_index"])
        for s in segs:
            wr.writerow([s["first_frame"], s["last_frame"], s["label_index"], s["label_name"],
                         s["test_image_index"]])
    ev = {"clip": name + ".avi", "width": W, "height": H, "fps": FPS, "frames": n, "seed": seed,
          "roi": {"x": x0, "y": y0, "width": rw, "height": rh}, "noise_sigma": sigma,
          "changes": [{"frame": s["first_frame"], "label": s["label_name"]} for s in segs[1:]],
          "segments": segs, "handling": handling, "walkers": walkers, "light_steps": lights}
    with open(os.path.join(out, name + ".events.json"), "w") as fh:
        json.dump(ev, fh, indent=1)
        fh.write("\n")
    print("%s: %d frames, %d scene changes, noise sigma %d, %d handling, %d walkers, %d light steps"
          % (avi, n, len(segs) - 1, sigma, len(handling), len(walkers), len(lights)))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--clips", type=int, default=8, help="number of clips, each its own seed (default 8)")
    ap.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    ap.add_argument("--truth", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "../../samples/fmnist-sample.truth.csv"),
                    help="the items to show: test_image_index,label_index rows (default: the "
                    "sample clip's)")
    a = ap.parse_args()
    if a.seconds < 10 or a.clips < 1:
        print("make-clips.py: --seconds must be >= 10 and --clips >= 1", file=sys.stderr)
        return 2
    path = os.path.join(DATA, "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        print("make-clips.py: needs %s (Debian's dataset-fashion-mnist)" % path, file=sys.stderr)
        return 2
    images = gzip.open(path).read()
    pool = [(int(r["test_image_index"]), int(r["label_index"])) for r in csv.DictReader(open(a.truth))]
    os.makedirs(a.out, exist_ok=True)
    for c in range(a.clips):
        if render_clip(a.out, "cam%02d" % c, c, a.seconds, images, pool):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
