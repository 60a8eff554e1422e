#!/usr/bin/env bash
# The test command: installs what the tests need (the pinned LiteRT oracle, in a cached
# virtualenv), then runs the whole suite. Fails loudly on anything missing.
#
#   scripts/test.sh            # everything
#   scripts/test.sh float_oracle   # extra arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "test.sh: python3 is required for the LiteRT oracle" >&2; exit 1; }

# The dashboard's end-to-end test drives the real binary in tmux.
if ! command -v tmux >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q && apt-get install -y -q tmux
  else
    echo "test.sh: tmux is required for tests/tui_e2e.rs (apt-get install tmux)" >&2
    exit 1
  fi
fi

QDBG_ORACLE_PYTHON="$(bash tests/oracle/setup.sh | tail -n1)"
export QDBG_ORACLE_PYTHON
echo "test.sh: LiteRT oracle at $QDBG_ORACLE_PYTHON" >&2

# Release mode: the suite runs whole models through the float kernels.
cargo test --release "$@"

# The NEON kernels: cross-built for aarch64 and run under qemu (installs qemu-user and the
# cross toolchain when missing). Only for the whole suite, on x86-64 hosts.
if [ $# -eq 0 ] && [ "$(uname -m)" = x86_64 ]; then
  bash scripts/test_aarch64.sh
fi
