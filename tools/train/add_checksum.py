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
import json
import os
import struct
import sys
import zlib
from collections import OrderedDict

KEY = "data_crc32"


def split(raw, path):
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors header" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n < 2 or n > len(raw) - 8:
        raise ValueError("%s: bad header length %d" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    return header, raw[8 + n:]


def crc_hex(data):
    return "%08x" % zlib.crc32(data)


def add(path):
    raw = open(path, "rb").read()
    header, data = split(raw, path)
    meta = header.get("__metadata__")
    if meta is None:
        meta = header["__metadata__"] = OrderedDict()
        header.move_to_end("__metadata__", last=False)
    crc = crc_hex(data)
    if meta.get(KEY) == crc:
        print("%s: already has %s %s" % (path, KEY, crc))
        return
    meta[KEY] = crc
    hb = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + data)
    os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)
    print("%s: %s %s (%d data bytes)" % (path, KEY, crc, len(data)))


def check(path):
    header, data = split(open(path, "rb").read(), path)
    want = (header.get("__metadata__") or {}).get(KEY)
    got = crc_hex(data)
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
