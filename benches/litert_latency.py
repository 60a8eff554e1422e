#!/usr/bin/env python3
"""LiteRT float latency baseline for a TFLite model.

usage: litert_latency.py MODEL INPUTS [--threads 1] [--warmup 5] [--runs 30]
                         [--resolver default|builtin_without_default_delegates|both]

INPUTS: .npz keyed by input tensor name (or .npy for a single-input model),
first axis samples; sample 0 is used (array[0:1] reshaped to the input shape).
Inputs are set once before the timed loop; only invoke() is timed.
Prints one JSON line per resolver:
  {"runner": "litert-default"|"litert-builtin", "model": MODEL, "threads": N,
   "runs": R, "median_ms": ..., "p10_ms": ..., "p90_ms": ...}
"default" is LiteRT's AUTO resolver (XNNPACK delegate on);
"builtin_without_default_delegates" is the reference builtin kernels.
Run with the oracle venv: PY="$(tests/oracle/setup.sh | tail -n1)".
"""

import argparse
import json
import os
import sys
import time

import numpy as np

RUNNERS = {"default": "litert-default", "builtin_without_default_delegates": "litert-builtin"}


def fail(msg):
    print(f"litert_latency: error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_inputs(path, details):
    if not os.path.isfile(path):
        fail(f"inputs file not found: {path}")
    if path.endswith(".npy"):
        if len(details) != 1:
            fail(f"{path} is a .npy but the model has {len(details)} inputs")
        return {details[0]["name"]: np.load(path, allow_pickle=False)}
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    missing = [d["name"] for d in details if d["name"] not in arrays]
    if missing:
        fail(f"inputs {path} lack model input(s) {missing}; it has {sorted(arrays)}")
    return arrays


def measure(model, inputs_path, resolver, threads, warmup, runs):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rtype = {"default": OpResolverType.AUTO,
             "builtin_without_default_delegates": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}[resolver]
    it = Interpreter(model_path=model, num_threads=threads, experimental_op_resolver_type=rtype)
    it.allocate_tensors()
    details = it.get_input_details()
    arrays = load_inputs(inputs_path, details)
    for d in details:
        arr = arrays[d["name"]]
        if arr.ndim == 0 or arr[0:1].size != int(np.prod(d["shape"])):
            fail(f"input {d['name']!r}: array shape {list(arr.shape)} does not fit {d['shape'].tolist()}")
        it.set_tensor(d["index"], arr[0:1].reshape(d["shape"]).astype(d["dtype"], copy=False))
    for _ in range(warmup):
        it.invoke()
    times = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        it.invoke()
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    return {
        "runner": RUNNERS[resolver],
        "model": model,
        "threads": threads,
        "runs": runs,
        "median_ms": round(float(np.median(times)), 4),
        "p10_ms": round(float(np.percentile(times, 10)), 4),
        "p90_ms": round(float(np.percentile(times, 90)), 4),
    }


def main():
    ap = argparse.ArgumentParser(description="Time LiteRT invoke() on a TFLite model.")
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--resolver", choices=["default", "builtin_without_default_delegates", "both"],
                    default="both")
    args = ap.parse_args()
    if args.threads < 1 or args.runs < 1 or args.warmup < 0:
        fail("--threads and --runs must be >= 1, --warmup >= 0")
    if not os.path.isfile(args.model):
        fail(f"model not found: {args.model}")
    resolvers = ["default", "builtin_without_default_delegates"] if args.resolver == "both" else [args.resolver]
    for r in resolvers:
        print(json.dumps(measure(args.model, args.inputs, r, args.threads, args.warmup, args.runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
