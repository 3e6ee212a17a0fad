#!/usr/bin/python3
"""tools/train/train.py: the command line of basisnet_train.train (docs/training.md)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from basisnet_train.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
