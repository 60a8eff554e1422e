#!/usr/bin/env bash
# Runs the kernel micro-benchmarks (one thread) and prints each median and the speedup
# of every level over the scalar reference kernel.
#
#   benches/kernel_medians.sh [FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
RAYON_NUM_THREADS=1 cargo bench --bench kernels -- ${1:-} >&2
dir="${CARGO_TARGET_DIR:-target}/criterion"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
for group in "$dir"/*/; do
  name="$(basename "$group")"
  [[ "$name" == report ]] && continue
  ref="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$group/reference/new/estimates.json" 2>/dev/null || echo)"
  [[ -z "$ref" ]] && continue
  for level in "$group"*/; do
    l="$(basename "$level")"
    [[ "$l" == report ]] && continue
    m="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$level/new/estimates.json")"
    python3 -c 'import sys; n,l,m,r=sys.argv[1:]; m=float(m); r=float(r); print(f"{n:32} {l:10} {m/1e3:10.1f} us  x{r/m:6.1f}")' "$name" "$l" "$m" "$ref"
  done
done
