#!/bin/sh
# Regenerates the pictures of docs/ that are made from files in the repository:
#   docs/img/architecture.svg   from tools/docs/architecture.dot (graphviz)
#   docs/img/engine-vs-peers.png from the numbers in docs/results-engine.md (matplotlib)
# The other plots come from runs: docs/results-training*.png (tools/train/eval.py --plot) and
# bench/budget/results/contention-*.png (bench/budget/run.sh); docs/results.md gives the commands.
set -eu
cd "$(dirname "$0")/../.."
dot -Tsvg tools/docs/architecture.dot -o docs/img/architecture.svg
/usr/bin/python3 tools/docs/plot_engine.py docs/img/engine-vs-peers.png
