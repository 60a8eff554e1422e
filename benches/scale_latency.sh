#!/usr/bin/env bash
# Issue 21's models (Keras ResNet50 and MobileNetV2, random init, made by
# benches/scale_models.py with the pinned fixture venv, cached) beside MobileNetV3-small:
# float inference latency, one thread, qdbg vs LiteRT (XNNPACK and builtin) in one run per
# model; QDBG_BENCH_PROFILE=1 adds qdbg's time per op type.
#
#   benches/scale_latency.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
dir="${QDBG_SCALE_MODELS:-$HOME/.cache/qdbg/scale-models}"
python="$(bash scripts/fixtures/venv.sh | tail -n1)"
"$python" benches/scale_models.py "$dir" >&2
for model in "$dir/resnet50" "$dir/mobilenet_v2" tests/fixtures/mobilenet_v3_small; do
  echo "== $(basename "$model")"
  bash benches/latency_vs_litert.sh "$model.tflite" "$model.inputs.npz" "$runs"
done
