#!/usr/bin/env bash
# Fuzzes one target with cargo-fuzz (libFuzzer), starting from the committed seeds.
#
#   scripts/fuzz.sh                       # lists the targets
#   scripts/fuzz.sh tflite_reader 1800    # one target for 1800 s (default 60)
#   scripts/fuzz.sh npy 1800 -jobs=1      # extra arguments go to libFuzzer
#
# Targets: tflite_reader (raw bytes into the TFLite reader), graph_validator (fixture
# models with field values patched, so the graph checks and the executor are reached),
# npy, npz (dataset and labels loaders).
#
# Bounds, the same for every run so results compare: any single allocation or a
# resident set over 2048 MB is a failure (-malloc_limit_mb, -rss_limit_mb), so is an
# input that runs over 10 s (-timeout). New corpus entries go to fuzz/corpus/TARGET and
# crashing inputs to fuzz/artifacts/TARGET/ (both git-ignored); turn every crash into a
# regression test under tests/ before fixing it.
#
# Needs the nightly toolchain (rustup toolchain install nightly). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

targets="tflite_reader graph_validator npy npz"
if [[ $# -lt 1 ]]; then
    echo "usage: scripts/fuzz.sh TARGET [SECONDS] [libFuzzer args...]; targets: $targets" >&2
    exit 2
fi
target="$1"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
[[ " $targets " == *" $target "* ]] || { echo "fuzz.sh: unknown target '$target' (targets: $targets)" >&2; exit 2; }

command -v cargo >/dev/null || { echo "fuzz.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }
cargo +nightly --version >/dev/null 2>&1 || {
    echo "fuzz.sh: the nightly toolchain is required: rustup toolchain install nightly" >&2; exit 1; }
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# A shared CARGO_TARGET_DIR would mix sanitizer builds with normal ones: fuzz builds get
# their own folder under it.
target_dir=()
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    target_dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")
    unset CARGO_TARGET_DIR
fi

# candle captures a backtrace in every error when RUST_BACKTRACE is set (cargo-fuzz sets it
# for panics); symbolizing one in the large sanitizer binary takes longer than -timeout, a
# false "hang". Library backtraces off, panic backtraces kept.
export RUST_LIB_BACKTRACE=0

mkdir -p "fuzz/corpus/$target"
# fuzz/corpus is where libFuzzer adds what it finds; the seeds are only read.
exec cargo +nightly fuzz run --fuzz-dir fuzz "${target_dir[@]}" "$target" \
    "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -print_final_stats=1 "$@"
