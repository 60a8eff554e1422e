#!/usr/bin/env bash
# Issue 19's benchmark: 16x8 inference (int16 activations, int8 weights) on
# MobileNetV3-small, one thread: qdbg's 16x8 kernels vs LiteRT's builtin 16x8 kernels (and
# its default runtime, which runs 16x8 ops on the same builtin kernels: XNNPACK has none), in
# one run, on TensorFlow's 16x8 file (the committed converter reference) and on the file
# `qdbg quantize --activations int16` writes. Prints each runner's JSON line and the ratios.
#
#   benches/int16_latency.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50}"
inputs=tests/fixtures/mobilenet_v3_small.inputs.npz
cargo build --release --bin qdbg >&2
ours="$(mktemp -d)/mobilenet_v3_small.qdbg16x8.tflite"
cp tests/fixtures/mobilenet_v3_small.tflite "$(dirname "$ours")/float.tflite"
"${CARGO_TARGET_DIR:-target}/release/qdbg" quantize "$(dirname "$ours")/float.tflite" \
  --data "$inputs" --activations int16 -o "$ours" >&2
for model in tests/fixtures/16x8/mobilenet_v3_small.16x8.tflite "$ours"; do
  echo "== $(basename "$model")"
  bash benches/latency_vs_litert.sh "$model" "$inputs" "$runs"
done
