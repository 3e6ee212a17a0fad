#!/usr/bin/python3
"""Adds the data section's checksum (__metadata__["data_crc32"], docs/model-format.md) to
.bnm or .safetensors files written before the exporter stored one. Nothing else changes:
the tensor data is copied byte for byte, the header keeps its keys and values (only its
whitespace padding may differ). The file is replaced atomically (written next to it, then
renamed), so a daemon using it never sees a half-written file.

  /usr/bin/python3 tools/train/add_checksum.py models/fmnist-basisnet.bnm [more files]
  /usr/bin/python3 tools/train/add_checksum.py --check FILE...   (exit 1 if one is missing or wrong)
"""
import argparse
import os
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from basisnet_train import bnm  # noqa: E402 - the one .bnm codec

KEY = bnm.CHECKSUM_KEY


def add(path):
    raw = open(path, "rb").read()
    header, data = bnm.split(raw, path)
    meta = header.get("__metadata__")
    if meta is None:
        meta = header["__metadata__"] = OrderedDict()
        header.move_to_end("__metadata__", last=False)
    crc = bnm.data_crc32(data)
    if meta.get(KEY) == crc:
        print("%s: already has %s %s" % (path, KEY, crc))
        return
    meta[KEY] = crc
    bnm.write_atomic(path, bnm.pack(header, data), mode=os.stat(path).st_mode & 0o7777)
    print("%s: %s %s (%d data bytes)" % (path, KEY, crc, len(data)))


def check(path):
    header, data = bnm.split(open(path, "rb").read(), path)
    want, got = bnm.check_checksum(header.get("__metadata__"), data)
    if want != got:
        print("%s: %s %s, data hashes to %s" % (path, KEY, want or "missing", got))
        return False
    print("%s: %s %s ok" % (path, KEY, got))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only verify, change nothing")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.check:
        return 0 if all([check(p) for p in a.files]) else 1
    for p in a.files:
        add(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
