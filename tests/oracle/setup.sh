#!/usr/bin/env bash
# Create (or reuse) the pinned LiteRT oracle venv and print its python.
#
#   PY="$(tests/oracle/setup.sh | tail -n1)"
#   "$PY" tests/oracle/litert_dump.py MODEL INPUTS OUT.npz
#
# Venv: ${QDBG_ORACLE_VENV:-$HOME/.cache/qdbg/oracle-venv}, built from
# tests/oracle/requirements.txt (and requirements-nodeps.txt, installed without
# dependencies) with ${QDBG_PYTHON:-python3}; it is rebuilt whenever their sha256
# changes (the hash is stored in the venv).  A flock
# on "$VENV.lock" serialises concurrent callers.  All installer output goes to
# stderr; the last stdout line is the absolute path of the venv's python.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
req_nodeps="$here/requirements-nodeps.txt"
venv="${QDBG_ORACLE_VENV:-$HOME/.cache/qdbg/oracle-venv}"
python="${QDBG_PYTHON:-python3}"

command -v flock >/dev/null || { echo "setup.sh: flock (util-linux) is required" >&2; exit 1; }
command -v "$python" >/dev/null || { echo "setup.sh: $python not found (set QDBG_PYTHON)" >&2; exit 1; }

mkdir -p "$(dirname "$venv")"
venv="$(cd "$(dirname "$venv")" && pwd)/$(basename "$venv")"
want="$(cat "$req" "$req_nodeps" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.qdbg-requirements.sha256"

exec 9>"$venv.lock"
flock 9
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  echo "setup.sh: installing oracle venv at $venv" >&2
  if [[ -e "$venv" && ! -x "$venv/bin/python" ]]; then rm -rf "$venv"; fi
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv" >&2
  rm -f "$stamp"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -r "$req" >&2
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --no-deps -r "$req_nodeps" >&2
  "$venv/bin/python" -c "import ai_edge_litert.interpreter, numpy" >&2
  echo "$want" >"$stamp"
fi
flock -u 9
exec 9>&-

echo "$venv/bin/python"
