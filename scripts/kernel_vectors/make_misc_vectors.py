#!/usr/bin/env python3
"""Oracle vectors for qdbg's int8 elementwise / pooling / reduce / softmax /
activation kernels (tests/int8_{binary,unary,pool_reduce}_kernels.rs, by family).

Pinned environment (the fixture venv, /opt/qdbg-fixtures/bin/python):
    tensorflow-cpu 2.21.0, keras 3.15.1, ai-edge-litert 2.3.0, numpy 2.4.6

usage: /opt/qdbg-fixtures/bin/python scripts/kernel_vectors/make_misc_vectors.py [--only CASE...]

For every case a tiny tf.function holding one op of interest is converted to a
full-int8 TFLite model (float I/O, representative dataset), then run by LiteRT
with OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES (TFLite's optimized
builtin kernels, no XNNPACK), num_threads=1 and
experimental_preserve_all_tensors=True. The op's own int8 input and output
tensors are read back from the interpreter, together with their scales and zero
points and the op's builtin options (read from the flatbuffer), and written to
tests/fixtures/kernels/misc_<case>.npz:

    in0, in1          int8 inputs, shape [S, *tensor shape] (S samples)
    in0_scale, ...    float32 scalars; in0_zp, ... int32 scalars
    out               LiteRT's int8 output, [S, *output shape]
    out_scale, out_zp
    op                the builtin op name (bytes)
    activation        fused activation (schema code: 0 none, 1 relu, 2 relu_n1_to_1, 3 relu6)
    filter, stride    [h, w] for pools; padding 0 = SAME, 1 = VALID
    axes, keep_dims   for reductions;  beta (softmax), alpha (leaky relu)

Test samples are random, drawn a little wider than the calibration data; for
the one-input elementwise ops (LOGISTIC, TANH, HARD_SWISH, RELU, RELU6,
LEAKY_RELU) the first sample runs through all 256 int8 codes. Scalars are
stored as 0-d arrays.

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

SEED = 20250807
SAMPLES = 3
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "tests", "fixtures", "kernels")
OPNAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}


def rng_for(name, salt):
    return np.random.default_rng([SEED, zlib.crc32(name.encode()), salt])


class Case:
    """One op of interest: `fn` maps the float inputs to the output."""

    def __init__(self, name, op, shapes, fn, gen, test_gain=1.15, all_codes=False):
        self.name, self.op, self.shapes, self.fn, self.gen = name, op, shapes, fn, gen
        # For one-input elementwise ops fed straight by the model's input QUANTIZE,
        # the first test sample can run through every int8 code (floats placed on
        # the input's quantization grid): the kernel is then checked on its whole
        # input domain.
        self.all_codes = all_codes
        # Test samples are drawn a little wider than the calibration data so
        # the QUANTIZE in front saturates now and then and the kernels see the
        # extremes of the int8 range.
        self.test_gain = test_gain

    def sample(self, rng, gain=1.0):
        return [(self.gen[i](rng, s) * gain).astype(np.float32)
                for i, s in enumerate(self.shapes)]


def normal(mean, std):
    return lambda rng, shape: rng.normal(mean, std, size=shape)


def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, size=shape)


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
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        out["filter"] = [o.filterHeight, o.filterWidth]
        out["stride"] = [o.strideH, o.strideW]
        out["padding"] = int(o.padding)
    if hasattr(o, "keepDims"):
        out["keep_dims"] = bool(o.keepDims)
    if name == "SOFTMAX":
        out["beta"] = float(o.beta)
    if name == "LEAKY_RELU":
        out["alpha"] = float(o.alpha)
    return out


def build(case):
    model = convert(case)
    it = interpreter(model)
    tdetails = {d["index"]: d for d in it.get_tensor_details()}
    ops = [d for d in it._get_ops_details() if d["op_name"] == case.op]
    if case.op == "QUANTIZE":
        # Only the int8 -> int8 requantization, not the float -> int8 inputs.
        ops = [d for d in ops if tdetails[int(d["inputs"][0])]["dtype"] == np.int8]
    names = [d["op_name"] for d in it._get_ops_details()]
    if len(ops) != 1:
        raise RuntimeError(f"{case.name}: expected one {case.op}, model has {names}")
    node = ops[0]
    opts = options(model, node["index"])
    if opts["op"] != case.op:
        raise RuntimeError(f"{case.name}: flatbuffer op {opts['op']} != {case.op}")
    # Reduction axes are a constant int32 input; everything else is int8.
    data_inputs = [int(t) for t in node["inputs"] if tdetails[int(t)]["dtype"] == np.int8]
    const_inputs = [int(t) for t in node["inputs"] if tdetails[int(t)]["dtype"] == np.int32]
    out_t = int(node["outputs"][0])

    rng = rng_for(case.name, 2)
    in_details = it.get_input_details()
    per_input = {t: [] for t in data_inputs}
    outs = []
    for k in range(SAMPLES):
        xs = case.sample(rng, case.test_gain)
        if k == 0 and case.all_codes:
            scale, zp = quant(tdetails[data_inputs[0]])
            n = int(np.prod(case.shapes[0]))
            codes = np.resize(np.arange(-128, 128, dtype=np.int64), n)
            xs[0] = ((codes - zp) * np.float64(scale)).astype(np.float32).reshape(case.shapes[0])
        for d, x in zip(in_details, xs):
            it.set_tensor(d["index"], x.reshape(d["shape"]))
        it.invoke()
        for t in data_inputs:
            per_input[t].append(it.get_tensor(t).copy())
        outs.append(it.get_tensor(out_t).copy())

    arrays = {"op": np.array(case.op.encode())}
    for k, t in enumerate(data_inputs):
        arrays[f"in{k}"] = np.stack(per_input[t]).astype(np.int8)
        arrays[f"in{k}_scale"], arrays[f"in{k}_zp"] = quant(tdetails[t])
    arrays["out"] = np.stack(outs).astype(np.int8)
    arrays["out_scale"], arrays["out_zp"] = quant(tdetails[out_t])
    if case.all_codes and len(np.unique(arrays["in0"][0])) != 256:
        raise RuntimeError(f"{case.name}: the first sample misses some int8 codes")
    if const_inputs:
        arrays["axes"] = it.get_tensor(const_inputs[0]).astype(np.int32).reshape(-1)
    for key in ("activation", "padding"):
        if key in opts:
            arrays[key] = np.int32(opts[key])
    for key in ("filter", "stride"):
        if key in opts:
            arrays[key] = np.array(opts[key], dtype=np.int32)
    if "keep_dims" in opts:
        arrays["keep_dims"] = np.bool_(opts["keep_dims"])
    for key in ("beta", "alpha"):
        if key in opts:
            arrays[key] = np.float32(opts[key])
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


def avg_pool(k, s, pad):
    return lambda x: tf.nn.avg_pool2d(x, k, s, pad)


def max_pool(k, s, pad):
    return lambda x: tf.nn.max_pool2d(x, k, s, pad)


CASES = [
    # ADD. Scales differ a lot between the operands so the smaller one gets a
    # right shift (input_shift < 0): that is where LiteRT's vector and scalar
    # code paths round differently. Sizes leave both 16-wide blocks and tails.
    Case("add_bcast_relu", "ADD", [[1, 4, 5, 24], [1, 1, 5, 24]],
         lambda a, b: tf.nn.relu(a + b), [normal(0, 1.5), normal(0.3, 0.4)]),
    Case("add_same", "ADD", [[1, 7, 9, 10], [1, 7, 9, 10]],
         lambda a, b: a + b, [uniform(-4, 4), uniform(-0.6, 0.6)]),
    Case("add_scalar_bcast", "ADD", [[1, 6, 6, 20], [1, 6, 6, 1]],
         lambda a, b: a + b, [normal(0, 2.0), normal(0, 0.3)]),
    Case("add_first_bcast", "ADD", [[1, 1, 1, 24], [1, 5, 5, 24]],
         lambda a, b: a + b, [normal(0, 0.5), normal(0.5, 2.5)]),
    Case("add_generic_bcast", "ADD", [[3, 1, 4, 1], [1, 5, 1, 6]],
         lambda a, b: a + b, [normal(0, 1.0), normal(0, 3.0)]),
    Case("sub_bcast", "SUB", [[1, 6, 7, 12], [1, 1, 7, 12]],
         lambda a, b: a - b, [normal(0, 2.0), normal(0, 0.5)]),
    Case("sub_same", "SUB", [[1, 5, 5, 21], [1, 5, 5, 21]],
         lambda a, b: a - b, [normal(1, 0.6), normal(0, 1.7)]),
    Case("mul_se", "MUL", [[1, 4, 5, 40], [1, 1, 1, 40]],
         lambda a, b: a * tf.sigmoid(b), [normal(0, 2.0), normal(0, 2.0)]),
    Case("mul_same", "MUL", [[1, 5, 5, 19], [1, 5, 5, 19]],
         lambda a, b: a * b, [normal(0, 1.0), uniform(-3, 3)]),
    Case("mul_scalar_bcast", "MUL", [[1, 5, 5, 20], [1, 5, 5, 1]],
         lambda a, b: a * b, [normal(0, 1.0), normal(0, 1.0)]),
    Case("maximum", "MAXIMUM", [[1, 4, 5, 6], [1, 4, 5, 6]],
         lambda a, b: tf.maximum(a, b), [normal(0, 1.0), normal(0, 1.0)]),
    Case("minimum", "MINIMUM", [[1, 4, 5, 6], [1, 4, 5, 6]],
         lambda a, b: tf.minimum(a, b), [normal(0, 1.0), normal(0, 1.0)]),
    Case("avgpool_same", "AVERAGE_POOL_2D", [[1, 9, 10, 20]],
         avg_pool(3, 2, "SAME"), [normal(0.2, 1.5)]),
    Case("avgpool_valid", "AVERAGE_POOL_2D", [[1, 8, 7, 5]],
         avg_pool(2, 2, "VALID"), [normal(-0.3, 1.0)]),
    Case("avgpool_relu6", "AVERAGE_POOL_2D", [[1, 6, 6, 17]],
         lambda x: tf.nn.relu6(tf.nn.avg_pool2d(x, 2, 1, "SAME")), [normal(2, 3)]),
    Case("maxpool_same", "MAX_POOL_2D", [[1, 9, 9, 12]],
         max_pool(3, 2, "SAME"), [normal(0, 1.0)]),
    Case("maxpool_valid", "MAX_POOL_2D", [[1, 8, 6, 18]],
         max_pool(2, 2, "VALID"), [normal(0, 1.0)]),
    Case("mean_hw", "MEAN", [[1, 5, 7, 40]],
         lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), [normal(0.3, 1.2)]),
    Case("mean_hw_batch2", "MEAN", [[2, 4, 4, 19]],
         lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), [normal(-0.5, 2.0)]),
    Case("mean_c", "MEAN", [[1, 4, 6, 20]],
         lambda x: tf.reduce_mean(x, axis=-1), [normal(0.5, 1.0)]),
    Case("mean_h_keep", "MEAN", [[1, 6, 5, 8]],
         lambda x: tf.reduce_mean(x, axis=[1], keepdims=True), [normal(0, 1.0)]),
    Case("sum_hw", "SUM", [[1, 3, 4, 10]],
         lambda x: tf.reduce_sum(x, axis=[1, 2], keepdims=True), [normal(0.1, 0.5)]),
    Case("reduce_max", "REDUCE_MAX", [[1, 5, 6, 8]],
         lambda x: tf.reduce_max(x, axis=[1, 2], keepdims=True), [normal(0, 1.0)]),
    Case("softmax", "SOFTMAX", [[1, 3, 40]],
         lambda x: tf.nn.softmax(x, axis=-1), [normal(0, 4.0)]),
    Case("softmax_narrow", "SOFTMAX", [[1, 2, 7]],
         lambda x: tf.nn.softmax(x, axis=-1), [normal(0, 0.7)]),
    Case("logistic", "LOGISTIC", [[1, 6, 6, 8]],
         tf.sigmoid, [normal(0, 4.0)], all_codes=True),
    Case("tanh", "TANH", [[1, 6, 6, 8]],
         tf.tanh, [normal(0, 2.0)], all_codes=True),
    Case("hard_swish", "HARD_SWISH", [[1, 6, 6, 9]],
         lambda x: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0), [normal(0, 3.0)], all_codes=True),
    # CONCATENATION needs one set of parameters on all inputs; TANH's output
    # parameters are fixed (1/128, 0), so the quantizer puts an int8 -> int8
    # QUANTIZE (requantize) between them.
    Case("requantize", "QUANTIZE", [[1, 3, 5, 9], [1, 3, 5, 9]],
         lambda a, b: tf.concat([tf.tanh(a), b], axis=-1), [normal(0, 1.0), normal(0, 3.0)]),
    Case("relu", "RELU", [[1, 5, 5, 11]],
         tf.nn.relu, [normal(0.5, 1.5)], all_codes=True),
    Case("relu6", "RELU6", [[1, 5, 5, 11]],
         tf.nn.relu6, [normal(2, 4)], all_codes=True),
    Case("leaky_relu", "LEAKY_RELU", [[1, 5, 5, 11]],
         lambda x: tf.nn.leaky_relu(x, alpha=0.2), [normal(0, 2)], all_codes=True),
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
        path = os.path.join(OUT_DIR, f"misc_{case.name}.npz")
        write_npz(path, arrays)
        print(f"{case.name}: ops {names}, {os.path.getsize(path)} bytes")
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main()
