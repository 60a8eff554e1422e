#!/usr/bin/env bash
# Prints the python of the pinned benchmark venv (TensorFlow, LiteRT, ai-edge-quantizer),
# creating it from benches/requirements.txt on first use. Shared by the benchmark scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${QDBG_BENCH_VENV:-$HOME/.cache/qdbg/bench-venv}"
stamp="$venv/.requirements.sha256"
want="$(cat benches/requirements.txt scripts/fixtures/requirements.txt | sha256sum | cut -d' ' -f1)"
mkdir -p "$(dirname "$venv")"
(
  flock 9
  if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r benches/requirements.txt >&2
    echo "$want" > "$stamp"
  fi
) 9>"$venv.lock"
echo "$venv/bin/python"
