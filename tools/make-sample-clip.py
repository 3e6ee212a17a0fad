#!/usr/bin/python3
"""Builds the bundled sample clip samples/fmnist-sample.mkv (VP8 in Matroska, 30 fps) from
Fashion-MNIST *test* images and its ground truth samples/fmnist-sample.truth.csv.

Each image is shown for a fixed number of frames, upscaled (nearest neighbour, so the
pipeline's videoscale really has to scale back down) and encoded near-losslessly with
gst-launch-1.0 (vp8enc, plugins-good). Deterministic: same dataset, same clip.

Usage: /usr/bin/python3 tools/make-sample-clip.py [--out samples/fmnist-sample.mkv]
       [--images 120] [--frames-per-image 15] [--scale 10] [--seed 5]
"""
import argparse
import csv
import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np

DATASET = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FPS = 30


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def pick(labels, n, seed):
    """n images, the same number from every class, in a shuffled but fixed order."""
    per = n // len(LABELS)
    chosen = []
    for k in range(len(LABELS)):
        chosen.extend(np.flatnonzero(labels == k)[:per].tolist())
    rng = np.random.default_rng(seed)
    rng.shuffle(chosen)
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "samples", "fmnist-sample.mkv"))
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--frames-per-image", type=int, default=15)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()

    images = read_idx(os.path.join(DATASET, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(DATASET, "t10k-labels-idx1-ubyte.gz"))
    order = pick(labels, args.images, args.seed)
    side = 28 * args.scale

    truth_path = os.path.splitext(args.out)[0] + ".truth.csv"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".gray", delete=False) as raw:
        rows = []
        for i, idx in enumerate(order):
            big = np.kron(images[idx], np.ones((args.scale, args.scale), dtype=np.uint8))
            frame = np.ascontiguousarray(big, dtype=np.uint8).tobytes()
            for _ in range(args.frames_per_image):
                raw.write(frame)
            first = i * args.frames_per_image
            rows.append((first, first + args.frames_per_image - 1, int(labels[idx]),
                         LABELS[labels[idx]], idx))
        raw_path = raw.name
    try:
        # Constant-quality VP8 near the top of the scale: the content is static for
        # frames-per-image frames, so it costs little. Key frame at each image change.
        cmd = ["gst-launch-1.0", "-q", "filesrc", "location=" + raw_path, "!",
               "rawvideoparse", "format=gray8", f"width={side}", f"height={side}",
               f"framerate={FPS}/1", "!", "videoconvert", "!", "video/x-raw,format=I420", "!",
               "vp8enc", "end-usage=cq", "cq-level=4", "min-quantizer=0", "max-quantizer=8",
               f"keyframe-max-dist={args.frames_per_image}", "deadline=1", "threads=1", "!",
               "matroskamux", "!", "filesink", "location=" + args.out]
        subprocess.run(cmd, check=True)
    finally:
        os.unlink(raw_path)
    with open(truth_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["first_frame", "last_frame", "label_index", "label_name", "test_image_index"])
        w.writerows(rows)
    size = os.path.getsize(args.out)
    print(f"{args.out}: {len(order)} images x {args.frames_per_image} frames at {FPS} fps "
          f"= {len(order) * args.frames_per_image / FPS:.1f} s, {side}x{side} gray, "
          f"{size / 1e6:.2f} MB; truth in {truth_path}")
    if size > 5_000_000:
        print("warning: clip is larger than 5 MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
