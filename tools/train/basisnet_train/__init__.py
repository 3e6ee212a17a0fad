"""basisnetd's training package (docs/training.md).

Modules:
  bnm         the .bnm file codec (docs/model-format.md), shared by every reader and writer
"""
