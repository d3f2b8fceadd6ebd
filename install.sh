#!/usr/bin/env bash
# Install xaipipe into ./.venv (Python >= 3.11). torch/torchvision are pinned and installed first:
# a loose torch requirement would pull several GB of another build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -c "import torch, torchvision, snakemake, gensim, zennit, captum, shap, lime; print('xaipipe installed: torch', torch.__version__)"
echo "Run the pipeline: .venv/bin/snakemake --cores all    (tests: .venv/bin/python -m pytest)"
