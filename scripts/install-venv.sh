#!/bin/sh
# Build the runtime environment: the one set of install steps `make` and the Dockerfile both run,
# so `make test` in CI exercises what the image does.
# usage: scripts/install-venv.sh PYTHON VENV
# A CPU-only torch comes from PyTorch's index when PIP_EXTRA_INDEX_URL names it (the Dockerfile's TORCH_INDEX).
set -eu
python=${1:-python3}
venv=${2:-.venv}
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r requirements.txt
