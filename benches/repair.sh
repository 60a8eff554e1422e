#!/usr/bin/env bash
# Issue 18's benchmark: `qdbg fix` on MobileNetV3-small (100 samples, 'sqnr_db >= 30') beside
# the tutorial's manual loop in TensorFlow (get_nondebug_quantized_model + a LiteRT
# evaluation per denylist), in one run; prints the ratios.
#
#   benches/repair.sh [--samples N] [--repeat N] [--tf-denylists N] [--target EXPR]
#   (RAYON_NUM_THREADS=N limits qdbg's threads)
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(bash benches/bench_venv.sh | tail -n1)"
cargo build --release --bin qdbg >&2
"$python" benches/repair.py "${CARGO_TARGET_DIR:-target}/release/qdbg" "$@"
