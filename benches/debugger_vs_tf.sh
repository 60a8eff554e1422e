#!/usr/bin/env bash
# TensorFlow's QuantizationDebugger vs `qdbg debug` on MobileNetV3-small, 100 samples, and
# a denylist change: TensorFlow's get_nondebug_quantized_model vs qdbg's select_latency.
# Sets up the pinned benchmark venv (benches/requirements.txt) and a release qdbg.
#
#   benches/debugger_vs_tf.sh [--samples N] [--repeat N]
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(bash benches/bench_venv.sh | tail -n1)"
cargo build --release >&2
select_bench="$(cargo bench --bench select_latency --no-run --message-format=json 2>/dev/null \
  | "$python" -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("executable") and m.get("target", {}).get("name") == "select_latency":
        print(m["executable"])')"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores," \
  "qdbg threads: ${RAYON_NUM_THREADS:-all}" >&2
"$python" benches/debugger_vs_tf.py "${CARGO_TARGET_DIR:-target}/release/qdbg" \
  --select-bench "$select_bench" "$@"
