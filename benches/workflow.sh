#!/usr/bin/env bash
# Issue 9's workflow benchmark in one run: LiteRT float/int8 latency, TensorFlow's debugger
# workflow, ai-edge-quantizer's calibrate/quantize/validate and qdbg's equivalent on
# MobileNetV3-small (224x224, 100 samples), with peak memory; prints every ratio.
#
#   benches/workflow.sh [--samples N] [--repeat N]      (RAYON_NUM_THREADS=N limits qdbg)
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(bash benches/bench_venv.sh | tail -n1)"
cargo build --release --bin qdbg >&2
bench_exe() {
  cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null \
    | "$python" -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("executable") and m.get("target", {}).get("name") == sys.argv[1]:
        print(m["executable"])' "$1"
}
cargo bench --bench select_latency --bench inference --no-run >&2
target="${CARGO_TARGET_DIR:-target}"
"$python" benches/workflow.py "$target/release/qdbg" "$(bench_exe select_latency)" "$(bench_exe inference)" "$@"
