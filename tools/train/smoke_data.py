#!/usr/bin/python3
"""Write a small synthetic 10-class dataset as gzip idx files (Fashion-MNIST layout).

Used by smoke_test.sh when Fashion-MNIST is not installed. Each class is a distinct
shape (bars, boxes, disc, ...) with random position jitter and noise, so a tiny training
run can learn it.   smoke_data.py OUTDIR [N_TRAIN] [N_TEST]
"""
import gzip
import os
import struct
import sys

import numpy as np


def make(n, rng):
    yy, xx = np.mgrid[:28, :28]
    xs = np.zeros((n, 28, 28), np.float32)
    ys = rng.randint(0, 10, n).astype(np.uint8)
    for i, c in enumerate(ys):
        dy, dx = rng.randint(-2, 3, 2)
        y, x = yy - dy, xx - dx
        shapes = [
            (abs(x - 14) < 3),                                  # vertical bar
            (abs(y - 14) < 3),                                  # horizontal bar
            ((x - 14) ** 2 + (y - 14) ** 2 < 60),               # disc
            (abs(x - 14) < 9) & (abs(y - 14) < 9) & ~((abs(x - 14) < 5) & (abs(y - 14) < 5)),
            (abs(x - y) < 3),                                   # diagonal
            (abs(x + y - 27) < 3),                              # anti-diagonal
            (y < 12) & (abs(x - 14) < 10),                      # top block
            (y > 16) & (abs(x - 14) < 10),                      # bottom block
            ((x // 4 + y // 4) % 2 == 0),                       # checker
            (abs(x - 14) < 2) | (abs(y - 14) < 2),              # cross
        ]
        xs[i] = shapes[c] * 200.0
    xs += rng.randn(*xs.shape) * 25
    return np.clip(xs, 0, 255).astype(np.uint8), ys


def write_idx(path, arr, magic):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(">" + "I" * arr.ndim, *arr.shape))
        f.write(arr.tobytes())


def main():
    out = sys.argv[1]
    ntr = int(sys.argv[2]) if len(sys.argv) > 2 else 1200
    nte = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(0)
    for split, n in (("train", ntr), ("t10k", nte)):
        x, y = make(n, rng)
        write_idx(os.path.join(out, "%s-images-idx3-ubyte.gz" % split), x, 0x803)
        write_idx(os.path.join(out, "%s-labels-idx1-ubyte.gz" % split), y, 0x801)
    print("wrote %s" % out)


if __name__ == "__main__":
    main()
