#!/usr/bin/env bash
# Regenerate tests/fixtures/ (TFLite models + inputs) with pinned TensorFlow/LiteRT.
#
#   scripts/make_fixtures.sh                 # all fixtures
#   scripts/make_fixtures.sh --only conv_ops # extra args go to make_fixtures.py
#   scripts/make_fixtures.sh --sparse        # tests/fixtures/sparse/ instead, with
#                                            # scripts/fixtures/make_sparse_fixtures.py
#
# Venv: ${QDBG_FIXTURE_VENV:-$HOME/.cache/qdbg/fixture-venv}, built from
# scripts/fixtures/requirements.txt with ${QDBG_PYTHON:-python3}; re-installed
# whenever that file's sha256 changes (the hash is stored in the venv).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/scripts/fixtures/requirements.txt"
venv="${QDBG_FIXTURE_VENV:-$HOME/.cache/qdbg/fixture-venv}"
python="${QDBG_PYTHON:-python3}"

command -v "$python" >/dev/null || { echo "make_fixtures.sh: $python not found (set QDBG_PYTHON)" >&2; exit 1; }

mkdir -p "$(dirname "$venv")"
venv="$(cd "$(dirname "$venv")" && pwd)/$(basename "$venv")"
want="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$venv/.qdbg-requirements.sha256"

install_venv() {
  echo "make_fixtures.sh: installing fixture venv at $venv" >&2
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

if [[ "${1:-}" == "--sparse" ]]; then
  shift
  exec "$venv/bin/python" "$root/scripts/fixtures/make_sparse_fixtures.py" \
    --out "$root/tests/fixtures/sparse" "$@"
fi
exec "$venv/bin/python" "$root/scripts/make_fixtures.py" --out "$root/tests/fixtures" "$@"
