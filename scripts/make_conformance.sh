#!/usr/bin/env bash
# Regenerate tests/fixtures/conformance/: float models with the structures of published
# models and TensorFlow's own int8 quantization of each (the references tests/conformance.rs
# and tests/bad_inputs.rs compare against), with pinned TensorFlow/LiteRT.
#
#   scripts/make_conformance.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/fixtures/venv.sh" | tail -n1)"
exec "$python" "$root/scripts/fixtures/make_conformance.py" --out "$root/tests/fixtures/conformance" "$@"
