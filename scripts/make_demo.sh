#!/usr/bin/env bash
# Regenerate demo/ (model.tflite, debug.npy, labels.txt, expected.json) with pinned
# TensorFlow / Keras / LiteRT / scikit-learn. Trains the model on CPU (about 2 minutes).
#
#   scripts/make_demo.sh                        # writes demo/
#   scripts/make_demo.sh --artifacts /tmp/d     # extra args go to make_demo.py
#
# Venv: ${QDBG_DEMO_VENV:-$HOME/.cache/qdbg/demo-venv}, built from
# scripts/demo/requirements.txt with ${QDBG_PYTHON:-python3}; re-installed
# whenever that file's sha256 changes (the hash is stored in the venv).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/scripts/demo/requirements.txt"
venv="${QDBG_DEMO_VENV:-$HOME/.cache/qdbg/demo-venv}"
python="${QDBG_PYTHON:-python3}"

command -v "$python" >/dev/null || { echo "make_demo.sh: $python not found (set QDBG_PYTHON)" >&2; exit 1; }

mkdir -p "$(dirname "$venv")"
venv="$(cd "$(dirname "$venv")" && pwd)/$(basename "$venv")"
want="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$venv/.qdbg-requirements.sha256"

install_venv() {
  echo "make_demo.sh: installing demo venv at $venv" >&2
  if [[ -e "$venv" && ! -x "$venv/bin/python" ]]; then rm -rf "$venv"; fi
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -r "$req"
  echo "$want" >"$stamp"
}

if command -v flock >/dev/null; then
  exec 9>"$venv.lock"
  flock 9
fi
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  install_venv
fi
if command -v flock >/dev/null; then
  flock -u 9
  exec 9>&-
fi

exec "$venv/bin/python" "$root/scripts/make_demo.py" --out "$root/demo" "$@"
