#!/usr/bin/env bash
# Generate random float models and TensorFlow's int8 quantization of each (issue 20's
# differential testing), with pinned TensorFlow/LiteRT.
#
#   scripts/make_generated.sh                         # tests/fixtures/generated/, 200 models
#   scripts/make_generated.sh --count 2000 --out DIR  # a longer run outside the repo, then
#   QDBG_GENERATED_DIR=DIR cargo test --release --test generated -- --nocapture
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/fixtures/venv.sh" | tail -n1)"
exec "$python" "$root/scripts/fixtures/make_generated.py" "$@"
