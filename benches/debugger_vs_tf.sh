#!/usr/bin/env bash
# TensorFlow's QuantizationDebugger vs `qdbg debug` on MobileNetV3-small, 100 samples.
# Sets up the pinned TensorFlow venv (the fixture generator's) and a release qdbg.
#
#   benches/debugger_vs_tf.sh [--samples N] [--repeat N]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${QDBG_FIXTURE_VENV:-$HOME/.cache/qdbg/fixture-venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r scripts/fixtures/requirements.txt
fi
cargo build --release >&2
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores" >&2
"$venv/bin/python" benches/debugger_vs_tf.py target/release/qdbg "$@"
