#!/usr/bin/env bash
# Regenerate demo/ (model.tflite, debug.npy, labels.txt, expected.json) with pinned
# TensorFlow / Keras / LiteRT / scikit-learn. Trains the model on CPU (about 2 minutes).
#
#   scripts/make_demo.sh                        # writes demo/
#   scripts/make_demo.sh --artifacts /tmp/d     # extra args go to make_demo.py
#
# Venv: ${QDBG_DEMO_VENV:-$HOME/.cache/qdbg/demo-venv}, built from
# scripts/demo/requirements.txt by scripts/fixtures/venv.sh (re-installed whenever that
# file's sha256 changes).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/fixtures/venv.sh" "$root/scripts/demo/requirements.txt" \
  "${QDBG_DEMO_VENV:-$HOME/.cache/qdbg/demo-venv}" | tail -n1)"
exec "$python" "$root/scripts/make_demo.py" --out "$root/demo" "$@"
