#!/usr/bin/env python3
"""Dump every non-constant tensor of a TFLite model, as computed by LiteRT.

usage: litert_dump.py MODEL INPUTS OUT.npz
                      [--resolver builtin_without_default_delegates|default]

INPUTS is a .npz keyed by model input tensor name (or a .npy for a
single-input model); the first axis of every array is the sample axis.  Sample
i of an input is array[i:i+1] reshaped to the model's input shape (so arrays
may be stored either as [S, *input_shape[1:]] with a batch-1 model, or as
[S, *input_shape]).

For every sample the model is run by a LiteRT interpreter created with
experimental_preserve_all_tensors=True and num_threads=1; each tensor that is
a model input or an output of some op is recorded.  OUT.npz gets one key per
such tensor, "t{tensor_index}", holding an array of shape
[num_samples, *tensor_shape] in the tensor's own dtype.  OUT.npz is written
atomically (temp file + rename).  Any error exits non-zero with a message on
stderr.

The default resolver is BUILTIN_WITHOUT_DEFAULT_DELEGATES (LiteRT's reference
builtin kernels, no XNNPACK); "default" is LiteRT's AUTO resolver, which applies
XNNPACK (with preserve_all_tensors it delegates node by node, so every tensor
is still materialised).
"""

import argparse
import os
import sys
import tempfile
import warnings

import numpy as np

RESOLVERS = ("builtin_without_default_delegates", "default")


class DumpError(Exception):
    pass


def make_interpreter(model_path, resolver):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rtype = {
        "builtin_without_default_delegates": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "default": OpResolverType.AUTO,
    }[resolver]
    with warnings.catch_warnings():
        # LiteRT warns that preserve_all_tensors is for debugging; that is the point here.
        warnings.simplefilter("ignore", UserWarning)
        try:
            it = Interpreter(model_path=model_path, num_threads=1,
                             experimental_op_resolver_type=rtype,
                             experimental_preserve_all_tensors=True)
        except (ValueError, RuntimeError) as e:
            raise DumpError(f"cannot load model {model_path}: {e}") from None
    return it


def load_inputs(path, input_details):
    if not os.path.isfile(path):
        raise DumpError(f"inputs file not found: {path}")
    if path.endswith(".npy"):
        if len(input_details) != 1:
            raise DumpError(f"{path} is a .npy but the model has {len(input_details)} inputs "
                            f"({', '.join(d['name'] for d in input_details)}); use a .npz keyed by input name")
        return {input_details[0]["name"]: np.load(path, allow_pickle=False)}
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable archive
        raise DumpError(f"cannot read inputs {path}: {e}") from None
    names = [d["name"] for d in input_details]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DumpError(f"inputs {path} lack model input(s) {missing}; it has {sorted(arrays)}")
    extra = sorted(set(arrays) - set(names))
    if extra:
        raise DumpError(f"inputs {path} have key(s) {extra} that are not model inputs {names}")
    return arrays


def sample_shape_ok(arr_shape, model_shape):
    """arr_shape is one sample's shape ([1:] of the stored array)."""
    model_shape = tuple(int(d) for d in model_shape)
    return arr_shape == model_shape or (len(model_shape) > 0 and model_shape[0] == 1
                                         and arr_shape == model_shape[1:])


def coerce_dtype(name, arr, dtype):
    dtype = np.dtype(dtype)
    if arr.dtype == dtype:
        return arr
    if arr.dtype.kind == "f" and dtype.kind == "f":
        return arr.astype(dtype)
    if arr.dtype.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise DumpError(f"input {name!r}: values do not fit the model's {dtype}")
        return arr.astype(dtype)
    if arr.dtype == np.bool_ and dtype == np.bool_:
        return arr
    raise DumpError(f"input {name!r}: dtype {arr.dtype} does not match the model's {dtype}")


def dump(model_path, inputs_path, out_path, resolver):
    if not os.path.isfile(model_path):
        raise DumpError(f"model not found: {model_path}")
    it = make_interpreter(model_path, resolver)
    input_details = it.get_input_details()
    arrays = load_inputs(inputs_path, input_details)

    counts = set()
    for d in input_details:
        arr = arrays[d["name"]]
        if arr.ndim == 0:
            raise DumpError(f"input {d['name']!r}: a scalar has no sample axis")
        counts.add(arr.shape[0])
    if len(counts) != 1:
        raise DumpError(f"inputs disagree on the number of samples: "
                        + ", ".join(f"{d['name']}={arrays[d['name']].shape[0]}" for d in input_details))
    num_samples = counts.pop()
    if num_samples == 0:
        raise DumpError("inputs hold zero samples")

    dynamic = False
    for d in input_details:
        name, arr = d["name"], arrays[d["name"]]
        sig = d.get("shape_signature", d["shape"])
        if any(int(s) < 0 for s in sig):
            dynamic = True
            want = tuple(int(s) for s in sig)
            got = tuple(arr.shape[1:])
            if len(want) > 0 and want[0] in (1, -1) and len(got) == len(want) - 1:
                got = (1,) + got
            if len(got) != len(want) or any(w >= 0 and w != g for w, g in zip(want, got)):
                raise DumpError(f"input {name!r}: sample shape {arr.shape[1:]} does not fit the model's "
                                f"shape signature {list(want)}")
            it.resize_tensor_input(d["index"], list(got))
        elif not sample_shape_ok(tuple(arr.shape[1:]), d["shape"]):
            raise DumpError(f"input {name!r}: array shape {list(arr.shape)} (samples first) does not fit the "
                            f"model's input shape {d['shape'].tolist()}; expected [{num_samples}, "
                            f"{', '.join(str(int(x)) for x in d['shape'][1:])}] or "
                            f"[{num_samples}, {', '.join(str(int(x)) for x in d['shape'])}]")
        arrays[name] = coerce_dtype(name, arr, d["dtype"])
    try:
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise DumpError(f"allocate_tensors failed: {e}") from None
    input_details = it.get_input_details()

    # Non-constant tensors: model inputs and every op output (constants are neither).
    recorded = {int(d["index"]) for d in input_details}
    for op in it._get_ops_details():
        recorded.update(int(t) for t in op["outputs"] if int(t) >= 0)
    recorded = sorted(recorded)

    per_tensor = {t: [] for t in recorded}
    skipped = set()
    for i in range(num_samples):
        for d in input_details:
            sample = arrays[d["name"]][i:i + 1].reshape(d["shape"])
            try:
                it.set_tensor(d["index"], sample)
            except ValueError as e:
                raise DumpError(f"input {d['name']!r}, sample {i}: {e}") from None
        try:
            it.invoke()
        except (ValueError, RuntimeError) as e:
            raise DumpError(f"invoke failed on sample {i}: {e}") from None
        for t in recorded:
            if t in skipped:
                continue
            try:
                per_tensor[t].append(np.array(it.get_tensor(t), copy=True))
            except ValueError:
                # Tensor internal to a delegate partition: never materialised.
                if i != 0:
                    raise DumpError(f"tensor {t} became unreadable on sample {i}") from None
                skipped.add(t)

    out = {}
    for t in recorded:
        if t in skipped:
            continue
        vals = per_tensor[t]
        shapes = {v.shape for v in vals}
        if len(shapes) != 1:
            raise DumpError(f"tensor {t} changes shape across samples {sorted(shapes)}; "
                            f"cannot stack a dynamic-shape model's tensors")
        out[f"t{t}"] = np.stack(vals)
    if skipped:
        print(f"litert_dump: note: {len(skipped)} tensor(s) internal to a delegate were not "
              f"materialised and are not in the dump", file=sys.stderr)
    if dynamic:
        print("litert_dump: note: model has dynamic input shapes; inputs were resized to the samples",
              file=sys.stderr)

    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".litert_dump.", suffix=".npz.tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **out)
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return len(out), num_samples


def main(argv=None):
    ap = argparse.ArgumentParser(description="Dump all non-constant tensors of a TFLite model via LiteRT.")
    ap.add_argument("model", help=".tflite model")
    ap.add_argument("inputs", help=".npz keyed by input tensor name (or .npy for a single-input model)")
    ap.add_argument("out", help="output .npz (keys t{tensor_index}, arrays [samples, *shape])")
    ap.add_argument("--resolver", choices=RESOLVERS, default="builtin_without_default_delegates")
    args = ap.parse_args(argv)
    try:
        n, s = dump(args.model, args.inputs, args.out, args.resolver)
    except DumpError as e:
        print(f"litert_dump: error: {e}", file=sys.stderr)
        return 2
    print(f"litert_dump: wrote {n} tensors x {s} samples to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
