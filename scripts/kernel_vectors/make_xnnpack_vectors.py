#!/usr/bin/env python3
"""LiteRT oracle vectors for qdbg's XNNPACK arithmetic (`--int8-arithmetic xnnpack`).

Pinned environment (the /opt/qdbg-fixtures venv, or scripts/make_fixtures.sh's):
tensorflow-cpu 2.21.0, ai-edge-litert 2.3.0, numpy 2.4.6. Run:

    /opt/qdbg-fixtures/bin/python scripts/kernel_vectors/make_xnnpack_vectors.py

Each case is a tiny tf.function holding one op, converted to full int8 with int8 model
inputs and outputs, so the model is that op alone. It is run on int8 inputs in LiteRT
twice: with its default delegate (XNNPACK, what `tf.lite.Interpreter` and TensorFlow's
QuantizationDebugger use; the script checks the op was delegated) and with its builtin
kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES). Both on one thread.

Written to tests/fixtures/xnnpack/: CASE.tflite (the model) and CASE.npz with, per model
input k, `input_k` int8 [samples, ...shape], and per output k `xnnpack_k` / `builtin_k`
int8 [samples, ...shape]. The script prints how many output elements the two runtimes
disagree on: the cases are chosen so the ops XNNPACK computes differently (CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, MEAN, MUL, LEAKY_RELU,
RESIZE_BILINEAR, QUANTIZE int8 -> int8, ADD: add_residual) show it, and a few it computes
the same way (other ADDs, SUB, LOGISTIC, TANH, SUM, CONCATENATION) guard that claim.

Deterministic: fixed seeds and archives with fixed timestamps.
"""

import importlib.metadata
import os
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

PINS = {"tensorflow-cpu": "2.21.0", "ai-edge-litert": "2.3.0", "numpy": "2.4.6"}
SEED = 20261126
SAMPLES = 6
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "tests", "fixtures", "xnnpack")


def check(cond, msg):
    if not cond:
        sys.exit(f"make_xnnpack_vectors.py: {msg}")


def rng_for(name):
    return np.random.default_rng([SEED, sum(map(ord, name)), len(name)])


def weights(rng, *shape):
    return tf.constant(rng.normal(0.0, 0.3, shape).astype(np.float32))


def cases():
    """(name, op that must be delegated, function builder, input shapes, calibration range,
    exhaustive) per case. Builders take the case's rng so weights are fixed per case."""
    return [
        ("conv_1x1_bias", "CONV_2D",
         lambda r: (lambda w: lambda x: tf.nn.conv2d(x, w, 1, "SAME") + 0.1)(weights(r, 1, 1, 16, 24)),
         [(1, 8, 8, 16)], (-2, 2)),
        ("conv_3x3_s2_relu6", "CONV_2D",
         lambda r: (lambda w: lambda x: tf.nn.relu6(tf.nn.conv2d(x, w, 2, "SAME") - 0.2))(weights(r, 3, 3, 8, 12)),
         [(1, 10, 10, 8)], (-2, 2)),
        ("conv_3x3_dil2", "CONV_2D",
         lambda r: (lambda w: lambda x: tf.nn.conv2d(x, w, 1, "SAME", dilations=2))(weights(r, 3, 3, 5, 7)),
         [(1, 9, 9, 5)], (-1, 3)),
        ("depthwise_3x3_relu", "DEPTHWISE_CONV_2D",
         lambda r: (lambda w: lambda x: tf.nn.relu(tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME") + 0.05))(weights(r, 3, 3, 20, 1)),
         [(1, 8, 8, 20)], (-2, 2)),
        ("depthwise_5x5_s2", "DEPTHWISE_CONV_2D",
         lambda r: (lambda w: lambda x: tf.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], "VALID"))(weights(r, 5, 5, 16, 1)),
         [(1, 11, 11, 16)], (-2, 2)),
        ("fully_connected_relu", "FULLY_CONNECTED",
         lambda r: (lambda w: lambda x: tf.nn.relu(tf.matmul(x, w) + 0.1))(weights(r, 64, 32)),
         [(16, 64)], (-2, 2)),
        ("transpose_conv_s2", "TRANSPOSE_CONV",
         lambda r: (lambda w: lambda x: tf.nn.conv2d_transpose(x, w, [1, 10, 10, 6], 2, "SAME"))(weights(r, 3, 3, 6, 4)),
         [(1, 5, 5, 4)], (-2, 2)),
        ("mean_hw_keep", "MEAN", lambda r: lambda x: tf.reduce_mean(x, [1, 2], keepdims=True),
         [(1, 7, 7, 24)], (-2, 2)),
        ("mean_hw", "MEAN", lambda r: lambda x: tf.reduce_mean(x, [1, 2]), [(1, 14, 14, 16)], (-1, 3)),
        ("mean_w", "MEAN", lambda r: lambda x: tf.reduce_mean(x, [2]), [(1, 9, 9, 4)], (-2, 2)),
        ("mean_c", "MEAN", lambda r: lambda x: tf.reduce_mean(x, [3]), [(1, 9, 9, 6)], (-2, 2)),
        ("mul", "MUL", lambda r: lambda x, y: x * y, [(1, 8, 8, 8), (1, 8, 8, 8)], (-2, 3)),
        ("mul_broadcast_relu", "MUL", lambda r: lambda x, y: tf.nn.relu(x * y),
         [(1, 6, 6, 16), (1, 1, 1, 16)], (-3, 2)),
        ("leaky_relu", "LEAKY_RELU", lambda r: lambda x: tf.nn.leaky_relu(x, 0.2), [(256,)], (-4, 4)),
        ("leaky_relu_skewed", "LEAKY_RELU", lambda r: lambda x: tf.nn.leaky_relu(x, 0.05),
         [(256,)], (-1, 7)),
        ("resize_bilinear", "RESIZE_BILINEAR",
         lambda r: lambda x: tf.compat.v1.image.resize_bilinear(x, [8, 8]), [(1, 5, 5, 3)], (-2, 2)),
        ("resize_bilinear_half_pixel", "RESIZE_BILINEAR",
         lambda r: lambda x: tf.compat.v1.image.resize_bilinear(x, [8, 8], half_pixel_centers=True),
         [(1, 5, 5, 3)], (-2, 2)),
        ("resize_bilinear_align_corners", "RESIZE_BILINEAR",
         lambda r: lambda x: tf.compat.v1.image.resize_bilinear(x, [8, 8], align_corners=True),
         [(1, 5, 5, 3)], (-2, 2)),
        ("resize_bilinear_down_half_pixel", "RESIZE_BILINEAR",
         lambda r: lambda x: tf.compat.v1.image.resize_bilinear(x, [3, 4], half_pixel_centers=True),
         [(1, 5, 5, 3)], (-2, 2)),
        ("add", "ADD", lambda r: lambda x, y: x + y, [(1, 6, 6, 8), (1, 6, 6, 8)], (-2, 3)),
        # ADDs of inputs at different scales: XNNPACK rounds once where the builtin kernel
        # rounds each rescale, which shows on the residual case (and not on the other two).
        ("add_rescaled", "ADD", lambda r: lambda x, y: x + tf.sigmoid(y),
         [(1, 16, 16, 8), (1, 16, 16, 8)], (-3, 3)),
        ("add_doubled", "ADD", lambda r: lambda x, y: x + (y + y),
         [(1, 16, 16, 8), (1, 16, 16, 8)], (-2, 2)),
        ("add_residual", "ADD", lambda r: lambda x: x + (x + 0.7), [(1, 16, 16, 8)], (-3.3, 3.2)),
        ("sub_broadcast", "SUB", lambda r: lambda x, y: x - y, [(1, 6, 6, 8), (1, 1, 1, 8)], (-1, 2)),
        ("logistic", "LOGISTIC", lambda r: lambda x: tf.sigmoid(x), [(256,)], (-8, 8)),
        ("tanh", "TANH", lambda r: lambda x: tf.tanh(x), [(256,)], (-4, 4)),
        ("sum_hw", "SUM", lambda r: lambda x: tf.reduce_sum(x, [1, 2]), [(1, 9, 9, 4)], (-2, 2)),
        # The converter requantizes the LOGISTIC's fixed 1/256 output to the concatenation's
        # range (QUANTIZE int8 -> int8), which XNNPACK computes with an 8-bit multiplier.
        ("requantize", "QUANTIZE", lambda r: lambda x: tf.concat([x, tf.sigmoid(x)], 0),
         [(256,)], (-8, 8)),
        ("requantize_fine", "QUANTIZE", lambda r: lambda x: tf.concat([x, tf.sigmoid(x)], 0),
         [(256,)], (-1, 1.5)),
    ]


def convert(fn, shapes, lo, hi, rng):
    specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
    f = tf.function(fn, input_signature=specs)
    cv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    cv.optimizations = [tf.lite.Optimize.DEFAULT]
    calibration = [[rng.uniform(lo, hi, s).astype(np.float32) for s in shapes] for _ in range(16)]
    cv.representative_dataset = lambda: iter(calibration)
    cv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    cv.inference_input_type = tf.int8
    cv.inference_output_type = tf.int8
    return cv.convert()


def run_all(interpreter, inputs):
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    outs = []
    for s in range(SAMPLES):
        for d, x in zip(details, inputs):
            interpreter.set_tensor(d["index"], x[s])
        interpreter.invoke()
        outs.append([interpreter.get_tensor(o["index"]).copy()
                     for o in interpreter.get_output_details()])
    return [np.stack([o[k] for o in outs]) for k in range(len(outs[0]))]


def run_case(name, op, build, shapes, lo_hi):
    rng = rng_for(name)
    model = convert(build(rng), shapes, *lo_hi, rng)
    xnnpack = Interpreter(model_content=model, num_threads=1)
    xnnpack.allocate_tensors()
    ops = [d["op_name"] for d in xnnpack._get_ops_details()]
    check("DELEGATE" in ops and op in ops, f"{name}: {op} was not delegated to XNNPACK ({ops})")
    builtin = Interpreter(model_content=model, num_threads=1,
                          experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inputs = []
    for s in shapes:
        if s == (256,):
            # Every int8 value, in a different order per sample.
            x = np.stack([rng.permutation(np.arange(-128, 128)) for _ in range(SAMPLES)])
        else:
            # Half the samples over the whole range, half near the middle (fewer saturated
            # accumulators, more roundings that matter).
            wide = rng.integers(-128, 128, (SAMPLES // 2,) + s)
            narrow = rng.integers(-40, 41, (SAMPLES - SAMPLES // 2,) + s)
            x = np.concatenate([wide, narrow])
        inputs.append(x.astype(np.int8))
    arrays = {f"input_{k}": x for k, x in enumerate(inputs)}
    xs, bs = run_all(xnnpack, inputs), run_all(builtin, inputs)
    for k, (x, b) in enumerate(zip(xs, bs)):
        check(x.dtype == np.int8 and b.dtype == np.int8, f"{name}: output {k} is not int8")
        arrays[f"xnnpack_{k}"] = x
        arrays[f"builtin_{k}"] = b
    differ = sum(int(np.sum(x != b)) for x, b in zip(xs, bs))
    total = sum(x.size for x in xs)
    return model, arrays, differ, total


def write_npz(path, arrays):
    """np.savez-compatible, uncompressed, fixed timestamps: byte-identical reruns."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.array(arrays[key], order="C"), allow_pickle=False)
    os.replace(tmp, path)


def write_bytes(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def check_pins():
    for pkg, want in PINS.items():
        try:
            got = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            got = tf.__version__ if pkg == "tensorflow-cpu" else None
        check(got == want, f"{pkg} {got} installed, the vectors are pinned to {want}")


def main(argv):
    check_pins()
    only = set(argv)
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, op, build, shapes, lo_hi in cases():
        if only and name not in only:
            continue
        model, arrays, differ, total = run_case(name, op, build, shapes, lo_hi)
        write_bytes(os.path.join(OUT_DIR, f"{name}.tflite"), model)
        write_npz(os.path.join(OUT_DIR, f"{name}.npz"), arrays)
        print(f"{name}: {op}, XNNPACK and builtin differ on {differ} of {total} outputs")


if __name__ == "__main__":
    main(sys.argv[1:])
