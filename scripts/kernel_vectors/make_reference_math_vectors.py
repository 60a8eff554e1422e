#!/usr/bin/env python3
"""Oracle vectors for qdbg's int8 DIV, SQUARED_DIFFERENCE, RSQRT, SQRT, PRELU and
GELU kernels (src/kernels/int8/binary/, src/kernels/int8/unary/,
tests/int8_binary_kernels.rs and tests/int8_unary_kernels.rs).

Pinned environment (the fixture venv, /opt/qdbg-fixtures/bin/python):
    tensorflow-cpu 2.21.0, keras 3.15.1, ai-edge-litert 2.3.0, numpy 2.4.6

usage: /opt/qdbg-fixtures/bin/python scripts/kernel_vectors/make_reference_math_vectors.py [--only CASE...]

Same method as make_misc_vectors.py: every case is a tiny tf.function holding one
op of interest, converted to a full-int8 TFLite model (float I/O, representative
dataset) and run by LiteRT with OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
(TFLite's builtin kernels, no XNNPACK), num_threads=1 and
experimental_preserve_all_tensors=True. The op's own int8 inputs and output are
read back from the interpreter with their scales and zero points and the op's
builtin options (read from the flatbuffer), and written to
tests/fixtures/kernels/reference_math/<case>.npz:

    in0, in1          int8 inputs, shape [S, *tensor shape] (S samples); for
                      PRELU in1 is the constant alpha tensor (repeated per sample)
    in0_scale, ...    float32 scalars; in0_zp, ... int32 scalars
    out               LiteRT's int8 output, [S, *output shape]
    out_scale, out_zp
    op                the builtin op name (bytes)
    activation        DIV's fused activation (schema code: 0 none, 1 relu,
                      2 relu_n1_to_1, 3 relu6)
    approximate       GELU's flag (bool)

Test samples are random, drawn a little wider than the calibration data; for
the one-input ops (RSQRT, SQRT, GELU) and PRELU's input the first sample runs
through all 256 int8 codes. RSQRT and SQRT are calibrated on positive data, so
the input zero point is -128 and every code is a non-negative real (LiteRT
refuses negative inputs to both). DIV divisors stay away from zero (LiteRT
refuses a divisor equal to its zero point). Scalars are stored as 0-d arrays.

The converter (TF 2.21) emits GELU(approximate=False) for
tf.nn.gelu(approximate=False) itself, so no flatbuffer rewrite is needed; the
flag is checked in the flatbuffer either way.

Deterministic: fixed seeds, and the archives are written with fixed timestamps,
so a rerun gives byte-identical files (unless the pinned packages change).
"""

import argparse
import os
import sys
import zipfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema_fb  # noqa: E402

SEED = 20250911
SAMPLES = 3
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "tests", "fixtures", "kernels", "reference_math")
OPNAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}


def rng_for(name, salt):
    return np.random.default_rng([SEED, zlib.crc32(name.encode()), salt])


class Case:
    """One op of interest: `fn` maps the float inputs to the output."""

    def __init__(self, name, op, shapes, fn, gen, test_gain=1.15, all_codes=False, expect=None):
        self.name, self.op, self.shapes, self.fn, self.gen = name, op, shapes, fn, gen
        # The first test sample runs the first input through every int8 code
        # (floats placed on the input's quantization grid).
        self.all_codes = all_codes
        self.test_gain = test_gain
        # Builtin options the flatbuffer must hold, e.g. {"approximate": False}.
        self.expect = expect or {}

    def sample(self, rng, gain=1.0):
        return [(self.gen[i](rng, s) * gain).astype(np.float32)
                for i, s in enumerate(self.shapes)]


def normal(mean, std):
    return lambda rng, shape: rng.normal(mean, std, size=shape)


def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, size=shape)


def away_from_zero(lo, hi):
    """Magnitudes in [lo, hi) with random signs."""
    return lambda rng, shape: rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def convert(case):
    sig = [tf.TensorSpec(s, tf.float32) for s in case.shapes]
    fn = tf.function(case.fn, input_signature=sig)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    calib = rng_for(case.name, 1)

    def representative():
        for _ in range(64):
            yield case.sample(calib)

    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return bytes(conv.convert())


def interpreter(model):
    it = Interpreter(model_content=model, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def quant(details):
    q = details["quantization_parameters"]
    if len(q["scales"]) != 1:
        raise RuntimeError(f"tensor {details['name']} is not per-tensor quantized")
    return np.float32(q["scales"][0]), np.int32(q["zero_points"][0])


def options(model, op_index):
    """The builtin options of operator `op_index` of subgraph 0, as a dict."""
    m = schema_fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    op = m.subgraphs[0].operators[op_index]
    code = m.operatorCodes[op.opcodeIndex]
    name = OPNAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]
    o = op.builtinOptions
    out = {"op": name}
    if o is None:
        return out
    if hasattr(o, "fusedActivationFunction"):
        out["activation"] = int(o.fusedActivationFunction)
    if name == "GELU":
        out["approximate"] = bool(o.approximate)
    return out


def build(case):
    model = convert(case)
    it = interpreter(model)
    tdetails = {d["index"]: d for d in it.get_tensor_details()}
    ops = [d for d in it._get_ops_details() if d["op_name"] == case.op]
    names = [d["op_name"] for d in it._get_ops_details()]
    if len(ops) != 1:
        raise RuntimeError(f"{case.name}: expected one {case.op}, model has {names}")
    node = ops[0]
    opts = options(model, node["index"])
    if opts["op"] != case.op:
        raise RuntimeError(f"{case.name}: flatbuffer op {opts['op']} != {case.op}")
    for key, want in case.expect.items():
        if opts.get(key) != want:
            raise RuntimeError(f"{case.name}: {key} is {opts.get(key)}, expected {want}")
    inputs = [int(t) for t in node["inputs"]]
    for t in inputs:
        if tdetails[t]["dtype"] != np.int8:
            raise RuntimeError(f"{case.name}: input {tdetails[t]['name']} is not int8")
    out_t = int(node["outputs"][0])

    rng = rng_for(case.name, 2)
    in_details = it.get_input_details()
    per_input = {t: [] for t in inputs}
    outs = []
    for k in range(SAMPLES):
        xs = case.sample(rng, case.test_gain)
        if k == 0 and case.all_codes:
            scale, zp = quant(tdetails[inputs[0]])
            n = int(np.prod(case.shapes[0]))
            codes = np.resize(np.arange(-128, 128, dtype=np.int64), n)
            xs[0] = ((codes - zp) * np.float64(scale)).astype(np.float32).reshape(case.shapes[0])
        for d, x in zip(in_details, xs):
            it.set_tensor(d["index"], x.reshape(d["shape"]))
        it.invoke()
        for t in inputs:
            per_input[t].append(it.get_tensor(t).copy())
        outs.append(it.get_tensor(out_t).copy())

    arrays = {"op": np.array(case.op.encode())}
    for k, t in enumerate(inputs):
        arrays[f"in{k}"] = np.stack(per_input[t]).astype(np.int8)
        arrays[f"in{k}_scale"], arrays[f"in{k}_zp"] = quant(tdetails[t])
    arrays["out"] = np.stack(outs).astype(np.int8)
    arrays["out_scale"], arrays["out_zp"] = quant(tdetails[out_t])
    if case.all_codes and len(np.unique(arrays["in0"][0])) != 256:
        raise RuntimeError(f"{case.name}: the first sample misses some int8 codes")
    if "activation" in opts:
        arrays["activation"] = np.int32(opts["activation"])
    if "approximate" in opts:
        arrays["approximate"] = np.bool_(opts["approximate"])
    return arrays, names


def write_npz(path, arrays):
    """np.savez-compatible archive with fixed timestamps (byte-identical reruns)."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as f:
                # np.ascontiguousarray would turn 0-d scalars into shape (1,).
                arr = np.array(arrays[key], order="C", copy=True)
                np.lib.format.write_array(f, arr, allow_pickle=False)
    os.replace(tmp, path)


def prelu(alpha):
    alpha = tf.constant(np.asarray(alpha, dtype=np.float32))
    # The converter's PRELU pattern: relu(x) + (-alpha) * relu(-x).
    return lambda x: tf.nn.relu(x) + (-alpha) * tf.nn.relu(-x)


ALPHA_C8 = np.array([0.1, -0.3, 0.25, 0.5, 0.05, 1.5, 0.2, 0.0]).reshape(1, 1, 8)
ALPHA_HW = np.linspace(-0.4, 0.9, 20).reshape(4, 5, 1)

CASES = [
    # DIV: per-element reciprocal in fixed point; divisors kept away from zero.
    Case("div_bcast_relu", "DIV", [[1, 4, 5, 8], [1, 1, 1, 8]],
         lambda a, b: tf.nn.relu(a / b), [normal(0, 1.5), uniform(0.5, 3.0)]),
    Case("div_same", "DIV", [[1, 5, 5, 7], [1, 5, 5, 7]],
         lambda a, b: a / b, [normal(0.3, 2.0), away_from_zero(0.4, 2.5)]),
    Case("div_first_bcast", "DIV", [[1, 1, 8], [1, 6, 8]],
         lambda a, b: a / b, [uniform(-4, 4), uniform(1.0, 8.0)]),
    Case("div_generic_bcast", "DIV", [[3, 1, 4, 1], [1, 5, 1, 6]],
         lambda a, b: a / b, [normal(0, 1.0), away_from_zero(0.3, 1.2)]),
    Case("div_relu6", "DIV", [[2, 3, 11], [2, 3, 11]],
         lambda a, b: tf.nn.relu6(a / b), [normal(1, 2), uniform(0.2, 1.0)]),
    # SQUARED_DIFFERENCE: reference kernel, 2^7 input shift.
    Case("sqdiff_same", "SQUARED_DIFFERENCE", [[1, 5, 5, 11], [1, 5, 5, 11]],
         tf.math.squared_difference, [normal(0, 1.0), normal(0.2, 0.8)]),
    Case("sqdiff_bcast", "SQUARED_DIFFERENCE", [[1, 4, 5, 12], [1, 1, 5, 12]],
         tf.math.squared_difference, [normal(0, 2.0), normal(0, 0.3)]),
    Case("sqdiff_scales", "SQUARED_DIFFERENCE", [[2, 6, 9], [1, 9]],
         tf.math.squared_difference, [uniform(-0.2, 0.2), uniform(-5, 5)]),
    # RSQRT / SQRT on positive inputs.
    Case("rsqrt", "RSQRT", [[1, 4, 8, 8]],
         tf.math.rsqrt, [uniform(0.05, 4.0)], all_codes=True),
    Case("rsqrt_wide", "RSQRT", [[1, 4, 8, 8]],
         tf.math.rsqrt, [uniform(1.0, 300.0)], all_codes=True),
    Case("sqrt", "SQRT", [[1, 4, 8, 8]],
         tf.math.sqrt, [uniform(0.0, 4.0)], all_codes=True),
    Case("sqrt_wide", "SQRT", [[1, 4, 8, 8]],
         tf.math.sqrt, [uniform(0.5, 200.0)], all_codes=True),
    # PRELU: one multiplier for x >= 0, one (input * alpha scale) for x < 0.
    Case("prelu_channel", "PRELU", [[1, 4, 8, 8]],
         prelu(ALPHA_C8), [normal(0, 1.5)], all_codes=True),
    Case("prelu_spatial", "PRELU", [[2, 4, 5, 3]],
         prelu(ALPHA_HW), [normal(-0.5, 2.0)]),
    # GELU: a LUT filled from float math.
    Case("gelu_approx", "GELU", [[1, 4, 8, 8]],
         lambda x: tf.nn.gelu(x, approximate=True), [normal(0, 2.0)], all_codes=True,
         expect={"approximate": True}),
    Case("gelu_exact", "GELU", [[1, 4, 8, 8]],
         lambda x: tf.nn.gelu(x, approximate=False), [normal(-0.5, 3.0)], all_codes=True,
         expect={"approximate": False}),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    failed = []
    for case in CASES:
        if args.only and case.name not in args.only:
            continue
        try:
            arrays, names = build(case)
        except Exception as e:  # report every case, then fail
            failed.append(case.name)
            print(f"FAIL {case.name}: {e}", file=sys.stderr)
            continue
        path = os.path.join(OUT_DIR, f"{case.name}.npz")
        write_npz(path, arrays)
        print(f"{case.name}: ops {names}, {os.path.getsize(path)} bytes")
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main()
