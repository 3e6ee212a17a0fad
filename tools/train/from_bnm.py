#!/usr/bin/python3
"""tools/train/from_bnm.py: the command line of basisnet_train.from_bnm (docs/training.md)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from basisnet_train.from_bnm import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
