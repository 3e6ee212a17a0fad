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
from basisnet_train import bnm  # noqa: E402 - the one .bnm codec
from basisnet_train.export import golden_path_for, reference_forward, rel_err  # noqa: E402


def convert(src, dst):
    meta, tensors = bnm.read(src)
    if "basisnet" not in meta:
        raise ValueError("%s: no 'basisnet' metadata: not a .bnm model" % src)
    arch = json.loads(meta["basisnet"])
    gold_src = golden_path_for(src)
    if not os.path.exists(gold_src):
        raise ValueError("%s: missing (the golden inputs come from it)" % gold_src)
    _, gold = bnm.read(gold_src)
    out = OrderedDict()
    n16 = 0
    for name, arr in tensors.items():
        if name.endswith(".bases"):
            h = np.asarray(arr, dtype=np.float32).astype(np.float16)
            if not np.all(np.isfinite(h)):
                raise ValueError("%s: %s overflows half precision" % (src, name))
            out[name] = h
            n16 += 1
        else:
            out[name] = arr
    if not n16:
        raise ValueError("%s: no *.bases tensors" % src)
    meta = OrderedDict((k, v) for k, v in meta.items() if k != bnm.CHECKSUM_KEY)
    bnm.write(dst, out, meta)
    ll, al, sl = reference_forward(dst, gold["input"])
    bnm.write(golden_path_for(dst), OrderedDict(
        input=np.ascontiguousarray(gold["input"], dtype=np.uint8),
        light_logits=ll.float().numpy(), alpha=al.float().numpy(),
        specialist_logits=sl.float().numpy()))
    moved = rel_err(sl, gold["specialist_logits"])
    same = int((np.argmax(sl.numpy(), 1) == np.argmax(gold["specialist_logits"], 1)).sum())
    print("bases_f16: %s -> %s: %d bases tensors in F16, %d -> %d bytes (%s)"
          % (src, dst, n16, os.path.getsize(src), os.path.getsize(dst), arch.get("name", "?")))
    print("bases_f16: specialist logits moved by at most %.2e (relative); %d of %d golden "
          "answers unchanged; light stage and coefficients unchanged (F32)"
          % (moved, same, len(sl)))
    return moved, same, len(sl)


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
