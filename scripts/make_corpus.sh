#!/usr/bin/env bash
# Regenerate tests/fixtures/corpus/ with pinned TensorFlow/LiteRT: the float .tflite models
# MediaPipe publishes in its PyPI wheel (pinned, cached in ~/.cache/qdbg/corpus; make_corpus.py)
# and common architectures built with Keras from random weights and converted with TensorFlow's
# converter (keras_*; make_architectures.py), each with TensorFlow's int8 model and debugger CSV
# (the references tests/corpus.rs compares against). Both write into the same manifest.json.
#
#   scripts/make_corpus.sh [--mediapipe | --architectures] [--only NAME...]
#
# Without --mediapipe / --architectures both sources are made; --only names models of either.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/fixtures/venv.sh" | tail -n1)"
out="$root/tests/fixtures/corpus"
sources=(mediapipe architectures)
case "${1:-}" in
  --mediapipe) sources=(mediapipe); shift ;;
  --architectures) sources=(architectures); shift ;;
esac
for source in "${sources[@]}"; do
  case "$source" in
    mediapipe) "$python" "$root/scripts/corpus/make_corpus.py" --out "$out" "$@" ;;
    architectures) "$python" "$root/scripts/corpus/make_architectures.py" --out "$out" "$@" ;;
  esac
done
