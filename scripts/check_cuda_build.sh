#!/usr/bin/env bash
# Proves that `--features cuda` compiles and links on a machine with no GPU and no system CUDA.
# Not part of .ci/run: candle's kernels take a long time to compile with nvcc.
#
#   scripts/check_cuda_build.sh        (works from any directory)
#
# What it does:
#   1. Installs NVIDIA's CUDA 13.4 toolkit wheels from PyPI (pinned through the
#      `cuda-toolkit==13.4.3` meta-package: nvcc/crt/nvvm 13.4.92, cudart 13.4.92, CCCL 13.3.4,
#      NVRTC 13.4.92, cuRAND 10.4.4.72, cuBLAS 13.8.0.4) into a venv at
#      ${QDBG_CUDA_VENV:-$HOME/.cache/qdbg/cuda-venv} (about 1.2 GB; redone only when the pin
#      changes). The wheels lay out a normal toolkit tree under site-packages/nvidia/cu13.
#   2. Adds what wheels cannot carry to that tree: the unversioned `lib*.so` symlinks the
#      linker wants, and `lib/stubs/libcuda.so`, a link-time stub of the driver library (every
#      function declared in the toolkit's cuda.h, each an empty body, soname libcuda.so.1),
#      the same thing the CUDA installer ships as lib64/stubs/libcuda.so. The stub is never
#      loaded at run time: a real machine resolves libcuda.so.1 to its driver.
#   3. With CUDA_HOME, PATH and CUDA_COMPUTE_CAP (default 80; no nvidia-smi to ask) set, runs
#        cargo build --release --locked --features cuda
#        cargo clippy --release --all-targets --locked --features cuda -- -D warnings
#      Clippy runs in the release profile so that it reuses the kernels the build just compiled:
#      in the dev profile candle-kernels' build script would run nvcc over everything again.
#
# Why these pieces: candle-core's `cuda` feature builds candle-kernels, whose build script runs
# nvcc (found on PATH) on .cu files that include cuda_runtime.h, cuda_fp16/bf16/fp8.h and
# CCCL's cub/thrust, and links libcudart; cudarc is built with `dynamic-linking`, so the final
# link needs libcuda, libnvrtc, libcurand, libcublas and libcublasLt, searched for under
# $CUDA_HOME. cudarc reads the CUDA version from `nvcc --version` (13.4 is among those it
# supports). NVIDIA's CUDA 12 wheels ship no nvcc binary, hence CUDA 13.
#
# Environment: CUDA_COMPUTE_CAP, CARGO_TARGET_DIR, CARGO_BUILD_JOBS and CUDAFORGE_THREADS
# (nvcc jobs) are honoured; QDBG_PYTHON picks the interpreter for the venv (default python3).
# A binary built here runs only where an NVIDIA driver supporting CUDA 13.4 is installed.
set -euo pipefail

CUDA_TOOLKIT_PIN="cuda-toolkit[nvcc,cudart,cccl,nvrtc,curand,cublas]==13.4.3"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${QDBG_CUDA_VENV:-$HOME/.cache/qdbg/cuda-venv}"
python="${QDBG_PYTHON:-python3}"

die() {
  echo "check_cuda_build.sh: FAILED: $*" >&2
  exit 1
}
trap 'echo "check_cuda_build.sh: FAILED (line $LINENO: $BASH_COMMAND)" >&2' ERR

command -v "$python" >/dev/null || die "$python not found (set QDBG_PYTHON)"
command -v cc >/dev/null || die "no C compiler (cc): nvcc needs one as its host compiler"

# 1. The toolkit venv, reinstalled whenever the pin changes.
stamp="$venv/.qdbg-cuda-pin"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$CUDA_TOOLKIT_PIN" ]]; then
  echo "check_cuda_build.sh: installing $CUDA_TOOLKIT_PIN into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" || die "cannot create a venv (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --no-cache-dir --disable-pip-version-check -q "$CUDA_TOOLKIT_PIN" ||
    die "pip install $CUDA_TOOLKIT_PIN"
  echo "$CUDA_TOOLKIT_PIN" >"$stamp"
fi

cuda_home="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
[[ -x "$cuda_home/bin/nvcc" ]] || die "no nvcc at $cuda_home/bin/nvcc"

# 2. Unversioned symlinks for the linker, and the driver stub.
for lib in cudart nvrtc curand cublas cublasLt; do
  real="$(cd "$cuda_home/lib" && ls "lib$lib.so."* 2>/dev/null | grep -E "^lib$lib\.so\.[0-9]+$" | head -n1 || true)"
  [[ -n "$real" ]] || die "lib$lib.so.N missing from $cuda_home/lib"
  ln -sfn "$real" "$cuda_home/lib/lib$lib.so"
done
stub="$cuda_home/lib/stubs/libcuda.so"
if [[ ! -f "$stub" || "$cuda_home/include/cuda.h" -nt "$stub" ]]; then
  echo "check_cuda_build.sh: generating the driver stub $stub from cuda.h" >&2
  mkdir -p "$cuda_home/lib/stubs"
  tmp="$(mktemp -d)"
  # Preprocessing resolves cuda.h's `#define cuFoo cuFoo_v2` aliases to the exported names.
  cc -E -P -I"$cuda_home/include" "$cuda_home/include/cuda.h" >"$tmp/cuda.i"
  grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' "$tmp/cuda.i" | tr -d '( \t' | sort -u |
    sed 's/.*/void &(void) {}/' >"$tmp/stub.c"
  [[ "$(wc -l <"$tmp/stub.c")" -gt 300 ]] || die "found too few functions in cuda.h"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$tmp/stub.c"
  rm -rf "$tmp"
fi

# 3. Build and lint with the feature on.
export CUDA_HOME="$cuda_home"
export PATH="$cuda_home/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
echo "check_cuda_build.sh: $(nvcc --version | tail -n1), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2

cd "$root"
start=$SECONDS
cargo build --release --locked --features cuda || die "cargo build --release --features cuda"
echo "check_cuda_build.sh: release build ok ($((SECONDS - start)) s)" >&2
cargo clippy --release --all-targets --locked --features cuda -- -D warnings ||
  die "cargo clippy --release --all-targets --features cuda -- -D warnings"
trap - ERR
echo "check_cuda_build.sh: ok: --features cuda builds, links and is clippy-clean ($((SECONDS - start)) s)"
