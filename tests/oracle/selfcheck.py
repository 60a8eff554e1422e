#!/usr/bin/env python3
"""Self-check of litert_dump.py against the committed fixtures.

usage: selfcheck.py [FIXTURES_DIR] [--resolver builtin_without_default_delegates|default|both]

For every NAME.tflite with NAME.inputs.npz in FIXTURES_DIR (default
tests/fixtures) it runs litert_dump.py as a subprocess, then checks that
 - every model input and every op output tensor is in the dump, with
   [num_samples, *shape] and the tensor's dtype,
 - the dumped model inputs equal the given inputs,
 - the dumped model outputs equal what a plain interpreter (same resolver, no
   preserve_all_tensors) returns from get_output_details() for each sample.
Prints one line per fixture; exits non-zero on any mismatch.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

HERE = os.path.dirname(os.path.abspath(__file__))
RESOLVER_TYPES = {
    "builtin_without_default_delegates": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "default": OpResolverType.AUTO,
}


def plain_outputs(model, inputs, resolver):
    it = Interpreter(model_path=model, num_threads=1, experimental_op_resolver_type=RESOLVER_TYPES[resolver])
    it.allocate_tensors()
    n = next(iter(inputs.values())).shape[0]
    res = {int(d["index"]): [] for d in it.get_output_details()}
    for i in range(n):
        for d in it.get_input_details():
            it.set_tensor(d["index"], inputs[d["name"]][i:i + 1].reshape(d["shape"]))
        it.invoke()
        for d in it.get_output_details():
            res[int(d["index"])].append(it.get_tensor(d["index"]).copy())
    return {k: np.stack(v) for k, v in res.items()}


def structure(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        it = Interpreter(model_path=model, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    want = {int(d["index"]) for d in it.get_input_details()}
    for op in it._get_ops_details():
        want.update(int(t) for t in op["outputs"] if t >= 0)
    details = {int(d["index"]): d for d in it.get_tensor_details()}
    return it, want, details


def check_one(model, inputs_path, resolver):
    with np.load(inputs_path) as z:
        inputs = {k: z[k] for k in z.files}
    n = next(iter(inputs.values())).shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "dump.npz")
        r = subprocess.run([sys.executable, os.path.join(HERE, "litert_dump.py"), model, inputs_path, out,
                            "--resolver", resolver], capture_output=True, text=True)
        if r.returncode != 0:
            return f"litert_dump failed ({r.returncode}): {r.stderr.strip()}"
        with np.load(out) as z:
            dump = {k: z[k] for k in z.files}
    it, want, details = structure(model)
    keys = {f"t{t}" for t in want}
    if set(dump) != keys:
        return f"dump keys differ: missing {sorted(keys - set(dump))[:5]}, extra {sorted(set(dump) - keys)[:5]}"
    for t in want:
        arr, d = dump[f"t{t}"], details[t]
        if arr.shape != (n, *d["shape"].tolist()) or arr.dtype != d["dtype"]:
            return f"t{t}: {arr.dtype}{list(arr.shape)} != {np.dtype(d['dtype'])}{[n, *d['shape'].tolist()]}"
    for d in it.get_input_details():
        got = dump[f"t{d['index']}"]
        if not np.array_equal(got.reshape(inputs[d["name"]].shape), inputs[d["name"]]):
            return f"input {d['name']} not dumped verbatim"
    ref = plain_outputs(model, inputs, resolver)
    for idx, want_arr in ref.items():
        got = dump[f"t{idx}"]
        if got.shape != want_arr.shape or not np.array_equal(got, want_arr):
            diff = np.abs(got.astype(np.float64) - want_arr.astype(np.float64)).max() \
                if got.shape == want_arr.shape else "shape"
            return f"output t{idx} differs from get_output_details() output (max abs diff {diff})"
    return f"ok: {len(dump)} tensors x {n} samples, {len(ref)} outputs equal"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fixtures", nargs="?", default=os.path.join(HERE, "..", "fixtures"))
    ap.add_argument("--resolver", choices=["builtin_without_default_delegates", "default", "both"],
                    default="both")
    args = ap.parse_args()
    resolvers = list(RESOLVER_TYPES) if args.resolver == "both" else [args.resolver]
    models = sorted(f for f in os.listdir(args.fixtures) if f.endswith(".tflite"))
    failed = passed = 0
    for m in models:
        name = m[:-len(".tflite")]
        inputs = os.path.join(args.fixtures, name + ".inputs.npz")
        if not os.path.exists(inputs):
            continue
        for res in resolvers:
            msg = check_one(os.path.join(args.fixtures, m), inputs, res)
            ok = msg.startswith("ok")
            failed += not ok
            passed += ok
            print(f"{'PASS' if ok else 'FAIL'} {name:<20} {res:<34} {msg}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
