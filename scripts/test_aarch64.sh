#!/usr/bin/env bash
# Cross-builds the int8 kernel tests for aarch64 and runs them under qemu-user, so the
# NEON kernels (src/kernels/int8/packed/neon.rs) are checked against the scalar reference
# on an x86 machine. qemu's `-cpu max` has the dotprod extension, so both NEON levels run.
#
# Installs what is missing: qemu-user, the aarch64 cross gcc (linker) and libc (apt-get,
# as root), the Rust std for aarch64-unknown-linux-gnu (rustup).
#
#   scripts/test_aarch64.sh
#
# Honours CARGO_TARGET_DIR. Under emulation nothing about speed can be learned: this
# checks results only.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu

say() { echo "test_aarch64.sh: $*" >&2; }
die() { say "$*"; exit 1; }

command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"
command -v rustup >/dev/null || die "rustup is required to add the $TARGET standard library"

# System packages: the emulator, the cross linker, the aarch64 C library it links against.
missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e "$SYSROOT/lib/libc.so.6" ] || missing+=(libc6-dev-arm64-cross)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root on Debian/Ubuntu"
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 still missing after installing qemu-user"
command -v aarch64-linux-gnu-gcc >/dev/null || die "aarch64-linux-gnu-gcc still missing"
[ -e "$SYSROOT/lib/libc.so.6" ] || die "$SYSROOT/lib/libc.so.6 still missing"

if ! rustup target list --installed | grep -qx "$TARGET"; then
  say "adding the Rust target $TARGET"
  rustup target add "$TARGET"
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT -cpu max"
# Crates with C parts (if any get built) need the cross compiler too.
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

# Run under qemu: the library's kernel unit tests, the integration tests of the packed
# int8 kernels (every level the emulated CPU has against the scalar reference, in both int8
# arithmetics), the XNNPACK-arithmetic vectors (single-op models through the executor) and
# the debugger's metric unit tests.

build_start=$SECONDS
# Every test target is built (so a test that only compiles on x86 fails here), the
# kernel ones above are run.
cargo test --release --target "$TARGET" --tests --no-run
say "cross-build took $((SECONDS - build_start)) s"

# The emulated CPU must offer dotprod, or the NeonDot kernels would go untested:
# `kernels::simd::tests` fails when the detected level is not this one.
export QDBG_EXPECT_DETECTED=dotprod

run_start=$SECONDS
# First with the best level active (NeonDot), then with plain NEON active: the
# equivalence tests iterate every available level either way; the cap changes what
# `simd::active()` (and so every op that asks it) runs.
for kernels in best neon; do
  say "running under qemu, active level: $kernels"
  if [ "$kernels" = best ]; then unset QDBG_KERNELS; else export QDBG_KERNELS=$kernels; fi
  cargo test --release --target "$TARGET" --lib kernels
  cargo test --release --target "$TARGET" --test int8_packed_kernels
  cargo test --release --target "$TARGET" --test xnnpack_arithmetic
done
# The debugger's measurement: its fused multiply-adds and integer sums on Arm (the raw
# and dequantized forms of an int8 output measure the same, bit for bit).
cargo test --release --target "$TARGET" --lib debug::metrics
say "qemu runs took $((SECONDS - run_start)) s"
say "all aarch64 tests passed in $((SECONDS - start)) s"
