#!/usr/bin/env bash
# Regenerate tests/fixtures/corpus/: the float .tflite models MediaPipe publishes in its PyPI
# wheel (pinned, cached in ~/.cache/qdbg/corpus) with TensorFlow's int8 model and debugger CSV
# of each (the references tests/corpus.rs compares against), with pinned TensorFlow/LiteRT.
#
#   scripts/make_corpus.sh [--only NAME...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/fixtures/venv.sh" | tail -n1)"
exec "$python" "$root/scripts/corpus/make_corpus.py" --out "$root/tests/fixtures/corpus" "$@"
