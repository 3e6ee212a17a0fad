#!/usr/bin/python3
"""Sorts the frames `basisnet grab CLIP --every 0` saved from a rendered clip into label
folders, by the clip's truth file: the N-th saved file (in name order) is frame N-1.

  tools/scene/sort-frames.py FRAMES_DIR CLIP.truth.csv OUT_DIR

FRAMES_DIR holds the grab's PNG files (one run, every frame); OUT_DIR/<label>/ gets a hard
link (or a copy across file systems) of each frame. The frame count must match the truth
file's, else nothing is written and the exit status is 1.
"""
import csv
import os
import shutil
import sys


def main(argv):
    if len(argv) != 4 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if len(argv) == 2 else 2
    frames_dir, truth, out = argv[1:]
    try:
        files = sorted(f for f in os.listdir(frames_dir) if f.lower().endswith(".png"))
        with open(truth, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        print("sort-frames: %s" % e, file=sys.stderr)
        return 1
    label_of = {}
    try:
        for r in rows:
            for i in range(int(r["first_frame"]), int(r["last_frame"]) + 1):
                label_of[i] = r["label_name"]
    except (KeyError, ValueError) as e:
        print("sort-frames: %s: not a truth file (first_frame,last_frame,label_index,"
              "label_name): %s" % (truth, e), file=sys.stderr)
        return 1
    if sorted(label_of) != list(range(len(files))):
        print("sort-frames: %s has %d PNG frames, %s covers %d: grab every frame "
              "(--every 0) of the whole clip into an empty folder"
              % (frames_dir, len(files), truth, len(label_of)), file=sys.stderr)
        return 1
    for i, name in enumerate(files):
        d = os.path.join(out, label_of[i])
        os.makedirs(d, exist_ok=True)
        src, dst = os.path.join(frames_dir, name), os.path.join(d, name)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    counts = {}
    for v in label_of.values():
        counts[v] = counts.get(v, 0) + 1
    print("sort-frames: %d frames into %s (%s)" % (len(files), out,
          ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
