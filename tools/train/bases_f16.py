#!/usr/bin/python3
"""Stores a model's bases in IEEE half precision (docs/model-format.md: F16 is allowed for
`*.bases`). The engine streams every basis once per synthesis, so F16 bases halve the bytes
synthesis reads and the file's size; every other tensor stays F32 and the engine computes in
F32 (docs/engine.md, "Synthesis").

  /usr/bin/python3 tools/train/bases_f16.py IN.bnm OUT.bnm

Writes OUT.bnm and OUT.golden.safetensors: IN's golden inputs with the reference outputs
recomputed from OUT (so the engine's parity test holds OUT to the same 1e-4), and prints how
far the rounding moved the logits and whether any golden answer changed. Measure the
accuracy of OUT as of any model: `basisnet eval OUT.bnm --folder DIR` or `--images/--labels`.
"""
import argparse
import json
import os
import sys
from collections import OrderedDict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from basisnet_train.export import bases_to_f16  # noqa: E402


def convert(src, dst):
    r = bases_to_f16(src, dst)
    print("bases_f16: %s -> %s: %d bases tensors in F16, %d -> %d bytes (%s)"
          % (src, dst, r["tensors"], r["bytes_before"], r["bytes_after"], r["name"]))
    print("bases_f16: specialist logits moved by at most %.2e (relative); %d of %d golden "
          "answers unchanged; light stage and coefficients unchanged (F32)"
          % (r["moved"], r["same"], r["golden"]))
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="input .bnm (F32 or F16 bases)")
    ap.add_argument("dst", help="output .bnm (its golden file is written beside it)")
    a = ap.parse_args()
    if os.path.abspath(a.src) == os.path.abspath(a.dst):
        ap.error("OUT must differ from IN (the golden inputs are read from IN's golden file)")
    try:
        convert(a.src, a.dst)
    except (OSError, ValueError) as e:
        print("bases_f16: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
