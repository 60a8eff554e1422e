#!/usr/bin/env python3
"""The model outputs of a TFLite model as LiteRT computes them (tests/corpus.rs).

usage: litert_outputs.py MODEL INPUTS.npz OUT.npz
                         [--resolver builtin_without_default_delegates|default]
       litert_outputs.py --batch JOBS.tsv [--resolver ...]

With --batch, each line of JOBS.tsv is "MODEL<TAB>INPUTS.npz<TAB>OUT.npz", and each model
runs in a child process of its own (tests/generated.rs runs hundreds of small models in one
call): LiteRT aborts the whole process on some models (an ADD whose output scale is too fine
for its inputs), and such a job leaves no OUT.npz and is reported on stderr, the others run.

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
    ap.add_argument("model", nargs="?")
    ap.add_argument("inputs", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--batch", help="a file of MODEL<TAB>INPUTS<TAB>OUT lines")
    ap.add_argument("--resolver", default="builtin_without_default_delegates",
                    choices=("builtin_without_default_delegates", "default"))
    args = ap.parse_args()
    if args.batch:
        return run_batch(args.batch, args.resolver)
    if not (args.model and args.inputs and args.out):
        ap.error("MODEL INPUTS OUT, or --batch JOBS")
    run_one(args.model, args.inputs, args.out, args.resolver)
    return 0


def run_batch(jobs_path, resolver):
    import multiprocessing
    fork = multiprocessing.get_context("fork")
    failed = 0
    with open(jobs_path) as f:
        jobs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for model, inputs, out in jobs:
        child = fork.Process(target=run_one, args=(model, inputs, out, resolver))
        child.start()
        child.join()
        if child.exitcode != 0:
            failed += 1
            print(f"litert_outputs.py: {model}: LiteRT exited with {child.exitcode}", file=sys.stderr)
    print(f"litert_outputs.py: {len(jobs) - failed} of {len(jobs)} models ran", file=sys.stderr)
    return 0


def run_one(model, inputs, out, resolver):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rtype = {"builtin_without_default_delegates": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
             "default": OpResolverType.AUTO}[resolver]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = Interpreter(model_path=model, num_threads=1, experimental_op_resolver_type=rtype)
    it.allocate_tensors()
    with np.load(inputs, allow_pickle=False) as z:
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
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)), suffix=".npz")
    os.close(fd)
    np.savez(tmp, **{f"t{i}": np.stack(v) for i, v in got.items()})
    os.replace(tmp, out)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - the test prints the reason
        print(f"litert_outputs.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
