#!/usr/bin/env python3
"""The model outputs of a TFLite model as LiteRT computes them (tests/corpus.rs).

usage: litert_outputs.py MODEL INPUTS.npz OUT.npz
                         [--resolver builtin_without_default_delegates|default]

litert_dump.py without preserve_all_tensors: only the model outputs are kept, so large
published models need no memory for every intermediate tensor. INPUTS is keyed by input
tensor name, first axis = samples; float arrays are cast to the input's dtype. OUT.npz gets
"t{tensor_index}" per model output, shape [num_samples, *output_shape]. Written atomically.
"""

import argparse
import os
import sys
import tempfile
import warnings

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--resolver", default="builtin_without_default_delegates",
                    choices=("builtin_without_default_delegates", "default"))
    args = ap.parse_args()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rtype = {"builtin_without_default_delegates": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
             "default": OpResolverType.AUTO}[args.resolver]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = Interpreter(model_path=args.model, num_threads=1, experimental_op_resolver_type=rtype)
    it.allocate_tensors()
    with np.load(args.inputs, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    ins, outs = it.get_input_details(), it.get_output_details()
    n = arrays[ins[0]["name"]].shape[0]
    got = {d["index"]: [] for d in outs}
    for s in range(n):
        for d in ins:
            it.set_tensor(d["index"], arrays[d["name"]][s : s + 1].reshape(d["shape"]).astype(d["dtype"]))
        it.invoke()
        for d in outs:
            got[d["index"]].append(it.get_tensor(d["index"]).copy())
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)), suffix=".npz")
    os.close(fd)
    np.savez(tmp, **{f"t{i}": np.stack(v) for i, v in got.items()})
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - the test prints the reason
        print(f"litert_outputs.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
