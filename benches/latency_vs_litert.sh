#!/usr/bin/env bash
# Inference latency, one thread: qdbg (candle + own kernels, or its int8 kernels) vs LiteRT's
# interpreter (with XNNPACK, its default, and with its builtin kernels only), on the same
# model and input, in one run on one machine. Prints each runner's JSON line and ratios.
#
#   benches/latency_vs_litert.sh [MODEL] [INPUTS.npz] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-tests/fixtures/mobilenet_v3_small.tflite}"
inputs="${2:-tests/fixtures/mobilenet_v3_small.inputs.npz}"
runs="${3:-50}"

python="$(bash tests/oracle/setup.sh | tail -n1)"
cargo build --release --bench inference >&2
bench="$(cargo bench --bench inference --no-run --message-format=json 2>/dev/null \
  | "$python" -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("executable") and m.get("target", {}).get("name") == "inference":
        print(m["executable"])')"

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores" >&2
results="$(
  RAYON_NUM_THREADS=1 "$bench" "$model" "$inputs" "$runs"
  "$python" benches/litert_latency.py "$model" "$inputs" --threads 1 --runs "$runs" --resolver both
)"
echo "$results"
"$python" - "$results" <<'PY'
import json, sys
rows = {r["runner"]: r for r in map(json.loads, sys.argv[1].strip().splitlines())}
ours = rows["qdbg"]["median_ms"]
for name in ("litert-default", "litert-builtin"):
    if name in rows:
        print(f"qdbg / {name}: {ours / rows[name]['median_ms']:.2f}x  "
              f"({ours:.2f} ms vs {rows[name]['median_ms']:.2f} ms, medians)")
PY
