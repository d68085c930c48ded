#!/usr/bin/env bash
# One-shot, idempotent set-up: virtual environment, pinned packages, DVC configured for offline use.
# Usage: ./setup.sh            (safe to rerun; a no-op when everything is in place)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv
stamp=$VENV/.installed-$(cat requirements.txt setup.sh | sha256sum | cut -c1-16)

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  # mediapipe 0.10.14's declared requirements clash with mlflow's protobuf; the hand
  # landmarker needs only numpy, opencv, absl-py, flatbuffers and protobuf, all pinned above.
  "$VENV/bin/python" -m pip install -q --no-deps mediapipe==0.10.14
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

# DVC: a git repo is required; analytics and update checks off (no network but package registries).
if [ ! -d .git ]; then git init -q; fi
export DVC_NO_ANALYTICS=1
"$VENV/bin/dvc" config --local core.analytics false >/dev/null 2>&1 || true
"$VENV/bin/dvc" config --local core.check_update false >/dev/null 2>&1 || true
"$VENV/bin/dvc" config --global core.analytics false >/dev/null 2>&1 || true
"$VENV/bin/dvc" config --global core.check_update false >/dev/null 2>&1 || true
mkdir -p data
echo "setup: ok ($("$VENV/bin/python" -c 'import torch, pytorch3d, smplx; print("torch", torch.__version__, "pytorch3d", pytorch3d.__version__)'))"
