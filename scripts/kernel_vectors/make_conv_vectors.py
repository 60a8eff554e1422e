#!/usr/bin/env python3
"""LiteRT oracle vectors for qdbg's int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED.

Pinned environment (the /opt/qdbg-fixtures venv): tensorflow-cpu 2.21.0,
ai-edge-litert 2.3.0, numpy 2.4.6. Run:

    /opt/qdbg-fixtures/bin/python scripts/kernel_vectors/make_conv_vectors.py

Each case is a tiny tf.function holding one convolution / depthwise convolution /
matmul (+ bias, + activation, which the converter fuses) with fixed random weights.
It is converted to full int8 with a representative dataset (float I/O, so the graph is
QUANTIZE -> op -> DEQUANTIZE), run once in LiteRT with its builtin kernels
(BUILTIN_WITHOUT_DEFAULT_DELEGATES, no XNNPACK, one thread,
experimental_preserve_all_tensors=True), and the op's own int8 input, int8 filter,
int32 bias, quantization parameters, attributes (read back from the flatbuffer, not
from what we asked for) and LiteRT's int8 output are written to
tests/fixtures/kernels/conv_<case>.npz.

npz keys (all arrays; scalars are 0-d):
  kind                0 = CONV_2D, 1 = DEPTHWISE_CONV_2D, 2 = FULLY_CONNECTED
  input, filter, output       int8, TFLite layouts (NHWC / [out,kh,kw,in] /
                              [1,kh,kw,out] / [rows,depth] / [units,depth])
  bias                int32 [out_c], absent when the op has none
  input_scale, output_scale   float32; input_zero_point, output_zero_point int32
  filter_scales       float32 [n], filter_zero_points int32 [n] (n = 1: per-tensor)
  quantized_dimension int32
  stride_h, stride_w, dilation_h, dilation_w, depth_multiplier, padding_same,
  pad_top, pad_left   int32 (conv / depthwise only; pads by TFLite's SAME rule)
  activation          int32, TFLite's ActivationFunctionType (0 NONE, 1 RELU, 3 RELU6)

Deterministic: fixed seeds and archives with fixed timestamps, so reruns are
byte-identical (the converter's calibration is deterministic for a fixed dataset).
"""

import importlib.metadata
import os
import sys
import zipfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import flatbuffers  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema_fb  # noqa: E402

PINS = {"tensorflow-cpu": "2.21.0", "ai-edge-litert": "2.3.0", "numpy": "2.4.6"}
SEED = 20250301
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "tests", "fixtures", "kernels")

KIND = {"conv": 0, "depthwise": 1, "fc": 2}
BUILTIN = {
    "conv": schema_fb.BuiltinOperator.CONV_2D,
    "depthwise": schema_fb.BuiltinOperator.DEPTHWISE_CONV_2D,
    "fc": schema_fb.BuiltinOperator.FULLY_CONNECTED,
}
ACT = {None: schema_fb.ActivationFunctionType.NONE,
       "relu": schema_fb.ActivationFunctionType.RELU,
       "relu6": schema_fb.ActivationFunctionType.RELU6}
ACT_FN = {None: lambda y: y, "relu": tf.nn.relu, "relu6": tf.nn.relu6}

# Shapes are kept small (a few KB per archive) but with enough output elements that a
# wrong rounding rule shows up. Channel counts mix multiples of 8 and odd tails, since
# LiteRT's vectorised requantization handles channels in groups.
CASES = [
    # --- CONV_2D -------------------------------------------------------------
    dict(name="conv_3x3_same_s1", op="conv", batch=1, hw=(9, 9), in_c=5, out_c=8,
         k=(3, 3), stride=(1, 1), dil=(1, 1), padding="SAME", act=None),
    # Stride 2 SAME on an even input: TFLite pads 0 before and 1 after.
    dict(name="conv_3x3_same_s2_asym_relu", op="conv", batch=1, hw=(10, 12), in_c=4,
         out_c=6, k=(3, 3), stride=(2, 2), dil=(1, 1), padding="SAME", act="relu"),
    dict(name="conv_5x3_valid_s2x1_relu6_b2", op="conv", batch=2, hw=(11, 7), in_c=3,
         out_c=7, k=(5, 3), stride=(2, 1), dil=(1, 1), padding="VALID", act="relu6"),
    dict(name="conv_3x3_dil2_same", op="conv", batch=1, hw=(10, 10), in_c=3, out_c=16,
         k=(3, 3), stride=(1, 1), dil=(2, 2), padding="SAME", act=None),
    # 1x1 stride 1 skips im2col in the optimized kernel; no bias.
    dict(name="conv_1x1_nobias", op="conv", batch=1, hw=(8, 8), in_c=16, out_c=12,
         k=(1, 1), stride=(1, 1), dil=(1, 1), padding="VALID", act=None, bias=False),
    dict(name="conv_3x3_per_tensor", op="conv", batch=1, hw=(8, 9), in_c=4, out_c=9,
         k=(3, 3), stride=(1, 1), dil=(1, 1), padding="SAME", act="relu",
         per_tensor=True),
    # One output pixel: the GEMM degenerates to a matrix * vector product.
    dict(name="conv_single_pixel", op="conv", batch=1, hw=(4, 4), in_c=8, out_c=20,
         k=(4, 4), stride=(1, 1), dil=(1, 1), padding="VALID", act=None),
    # --- DEPTHWISE_CONV_2D ---------------------------------------------------
    dict(name="dw_3x3_same_s1_relu6", op="depthwise", batch=1, hw=(9, 9), in_c=8, dm=1,
         k=(3, 3), stride=(1, 1), dil=(1, 1), padding="SAME", act="relu6"),
    dict(name="dw_3x3_dm2_valid_s2", op="depthwise", batch=1, hw=(11, 10), in_c=6, dm=2,
         k=(3, 3), stride=(2, 2), dil=(1, 1), padding="VALID", act=None),
    dict(name="dw_3x3_dil2_same_relu_b2", op="depthwise", batch=2, hw=(10, 9), in_c=3,
         dm=1, k=(3, 3), stride=(1, 1), dil=(2, 2), padding="SAME", act="relu"),
    dict(name="dw_5x5_same_s2_asym", op="depthwise", batch=1, hw=(12, 12), in_c=20, dm=1,
         k=(5, 5), stride=(2, 2), dil=(1, 1), padding="SAME", act=None),
    dict(name="dw_3x3_per_tensor", op="depthwise", batch=1, hw=(8, 8), in_c=5, dm=2,
         k=(3, 3), stride=(1, 1), dil=(1, 1), padding="SAME", act=None, per_tensor=True),
    # --- FULLY_CONNECTED -----------------------------------------------------
    dict(name="fc_rows4_relu", op="fc", batch=4, depth=40, out_c=24, act="relu"),
    # One row: matrix * vector, a separate code path in TFLite's GEMM front end.
    dict(name="fc_rows1", op="fc", batch=1, depth=64, out_c=20, act=None),
    dict(name="fc_per_tensor_nobias", op="fc", batch=6, depth=33, out_c=10, act=None,
         bias=False, per_tensor=True),
    # --- Rounding probes ------------------------------------------------------
    # Power-of-two scales rewritten into the converted model (input 1, filter 2^-7,
    # output 2^-4 or 2^-5): the multiplier becomes exactly 2^30 with a right shift of
    # 1 or 2, and the accumulators are small (input scale 1 leaves x - zp in a few
    # units), so the requantization lands on exact halves for many elements. That pins
    # down LiteRT's tie-breaking, which random scales almost never exercise. No bias:
    # the converter quantized it with the original scales.
    dict(name="conv_pow2_ties", op="conv", batch=1, hw=(8, 8), in_c=4, out_c=6, k=(3, 3),
         stride=(1, 1), dil=(1, 1), padding="SAME", act=None, per_tensor=True, bias=False,
         pow2=(0, -7, -4)),
    # 12 channels: LiteRT requantizes depthwise outputs 8 channels at a time with
    # vector code and the remaining 4 with scalar code, which rounds differently.
    dict(name="dw_pow2_ties", op="depthwise", batch=1, hw=(9, 8), in_c=6, dm=2, k=(3, 3),
         stride=(1, 1), dil=(1, 1), padding="SAME", act=None, per_tensor=True, bias=False,
         pow2=(0, -7, -4)),
    dict(name="fc_pow2_ties", op="fc", batch=1, depth=32, out_c=24, act=None,
         per_tensor=True, bias=False, pow2=(0, -7, -5)),
    dict(name="fc_pow2_ties_rows5", op="fc", batch=5, depth=24, out_c=12, act=None,
         per_tensor=True, bias=False, pow2=(0, -7, -5)),
]


def rng_for(name):
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def channel_spread(rng, n):
    """Per-output-channel gains, so per-channel filter scales really differ."""
    return rng.uniform(0.25, 2.0, n).astype(np.float32)


def build(case):
    """Returns (tf.function, input shape) for one case, weights drawn from its seed."""
    rng = rng_for("weights/" + case["name"])
    act = ACT_FN[case["act"]]
    use_bias = case.get("bias", True)
    if case["op"] == "fc":
        shape = [case["batch"], case["depth"]]
        w = rng.standard_normal((case["depth"], case["out_c"])).astype(np.float32)
        w *= channel_spread(rng, case["out_c"])[None, :] / np.sqrt(case["depth"])
        b = (rng.standard_normal(case["out_c"]) * 0.5).astype(np.float32)

        def body(x):
            y = tf.matmul(x, tf.constant(w))
            if use_bias:
                y = tf.nn.bias_add(y, tf.constant(b))
            return act(y)
    else:
        (h, wd), c = case["hw"], case["in_c"]
        kh, kw = case["k"]
        shape = [case["batch"], h, wd, c]
        strides = [1, case["stride"][0], case["stride"][1], 1]
        dil = list(case["dil"])
        if case["op"] == "conv":
            out_c = case["out_c"]
            w = rng.standard_normal((kh, kw, c, out_c)).astype(np.float32)
            w *= channel_spread(rng, out_c)[None, None, None, :] / np.sqrt(kh * kw * c)
        else:
            dm = case["dm"]
            out_c = c * dm
            w = rng.standard_normal((kh, kw, c, dm)).astype(np.float32)
            w *= channel_spread(rng, out_c).reshape(c, dm)[None, None] / np.sqrt(kh * kw)
        b = (rng.standard_normal(out_c) * 0.5).astype(np.float32)

        def body(x):
            if case["op"] == "conv":
                y = tf.nn.conv2d(x, tf.constant(w), strides=strides,
                                 padding=case["padding"], dilations=[1] + dil + [1])
            else:
                y = tf.nn.depthwise_conv2d(x, tf.constant(w), strides=strides,
                                           padding=case["padding"], dilations=dil)
            if use_bias:
                y = tf.nn.bias_add(y, tf.constant(b))
            return act(y)

    fn = tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)])
    return fn, shape


def input_range(case):
    """Per-case calibration range: asymmetric, so input zero points vary (and are not 0)."""
    rng = rng_for("range/" + case["name"])
    lo = rng.uniform(-3.0, 0.5)
    return lo, lo + rng.uniform(1.5, 5.0)


def convert(case, fn, shape):
    rng = rng_for("calibration/" + case["name"])
    lo, hi = input_range(case)
    calib = [rng.uniform(lo, hi, shape).astype(np.float32) for _ in range(16)]
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if case.get("per_tensor"):
        conv._experimental_disable_per_channel = True
    return bytes(conv.convert())


def check(cond, msg):
    if not cond:
        raise RuntimeError(msg)


def tflite_same_pad(size, k, stride, dil):
    """TFLite's ComputePaddingHeightWidth for SAME: the odd pixel goes after."""
    eff = (k - 1) * dil + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, out


def the_op(mt, case):
    """The single CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, checked to be alone."""
    sub = mt.subgraphs[0]
    want = BUILTIN[case["op"]]

    def code(op):
        c = mt.operatorCodes[op.opcodeIndex]
        return max(c.builtinCode, c.deprecatedBuiltinCode)

    ops = [op for op in sub.operators if code(op) == want]
    others = sorted({code(op) for op in sub.operators} - {want})
    check(len(ops) == 1, f"{case['name']}: expected one op {want}, got {len(ops)}")
    # Only QUANTIZE/DEQUANTIZE around it: the converter fused bias and activation.
    check(others == sorted({schema_fb.BuiltinOperator.QUANTIZE,
                            schema_fb.BuiltinOperator.DEQUANTIZE}),
          f"{case['name']}: unexpected extra ops {others}")
    return ops[0]


def rewrite_pow2_scales(model, case):
    """Sets the op's input / filter / bias / output scales to powers of two.

    Zero points and integer data stay as converted. The QUANTIZE feeding the op and the
    DEQUANTIZE after it read the same tensors, so the model stays self-consistent; the
    float semantics change, which does not matter for an integer-kernel oracle.
    """
    in_exp, f_exp, out_exp = case["pow2"]
    mt = schema_fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    op = the_op(mt, case)
    tensors = mt.subgraphs[0].tensors
    scales = {int(op.inputs[0]): 2.0 ** in_exp, int(op.inputs[1]): 2.0 ** f_exp,
              int(op.outputs[0]): 2.0 ** out_exp}
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        scales[int(op.inputs[2])] = 2.0 ** (in_exp + f_exp)
    for t, scale in scales.items():
        q = tensors[t].quantization
        check(len(q.scale) == 1, "power-of-two rewrite needs per-tensor scales")
        q.scale = [scale]
    builder = flatbuffers.Builder(1024)
    builder.Finish(mt.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_case(case):
    fn, shape = build(case)
    model = convert(case, fn, shape)
    if "pow2" in case:
        model = rewrite_pow2_scales(model, case)
    mt = schema_fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    op = the_op(mt, case)
    opts = op.builtinOptions
    check(opts.fusedActivationFunction == ACT[case["act"]],
          f"{case['name']}: activation {opts.fusedActivationFunction} not fused as asked")

    it = Interpreter(model_content=model,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     experimental_preserve_all_tensors=True, num_threads=1)
    it.allocate_tensors()
    rng = rng_for("input/" + case["name"])
    # A little wider than the calibration range, so QUANTIZE saturates some inputs and
    # the op's output hits both ends of its range.
    lo, hi = input_range(case)
    x = rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), shape).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()

    details = {d["index"]: d for d in it.get_tensor_details()}
    t_in, t_filter = int(op.inputs[0]), int(op.inputs[1])
    t_bias = int(op.inputs[2]) if len(op.inputs) > 2 else -1
    t_out = int(op.outputs[0])

    def qp(t):
        q = details[t]["quantization_parameters"]
        return (np.asarray(q["scales"], np.float32), np.asarray(q["zero_points"], np.int32),
                int(q["quantized_dimension"]))

    in_s, in_zp, _ = qp(t_in)
    f_s, f_zp, f_dim = qp(t_filter)
    out_s, out_zp, _ = qp(t_out)
    check(in_s.size == 1 and out_s.size == 1, "activations must be per-tensor")
    check(not f_zp.any(), f"{case['name']}: filter zero points must be 0")
    if "pow2" in case:
        check((in_s[0], f_s[0], out_s[0]) == tuple(2.0 ** e for e in case["pow2"]),
              f"{case['name']}: rewritten scales not in effect")
    out_c = case["out_c"] if case["op"] != "depthwise" else case["in_c"] * case["dm"]
    check(f_s.size == (1 if case.get("per_tensor") else out_c),
          f"{case['name']}: {f_s.size} filter scales")
    arrays = {
        "kind": np.int32(KIND[case["op"]]),
        "input": it.get_tensor(t_in).astype(np.int8),
        "filter": it.get_tensor(t_filter).astype(np.int8),
        "output": it.get_tensor(t_out).astype(np.int8),
        "input_scale": np.float32(in_s[0]),
        "input_zero_point": np.int32(in_zp[0]),
        "output_scale": np.float32(out_s[0]),
        "output_zero_point": np.int32(out_zp[0]),
        "filter_scales": f_s,
        "filter_zero_points": f_zp,
        "quantized_dimension": np.int32(f_dim),
        "activation": np.int32(opts.fusedActivationFunction),
    }
    check(arrays["input"].dtype == np.int8 and details[t_in]["dtype"] == np.int8, "int8 input")
    if t_bias >= 0:
        check(details[t_bias]["dtype"] == np.int32, "int32 bias")
        arrays["bias"] = it.get_tensor(t_bias).astype(np.int32)
    if case.get("bias", True):
        check(t_bias >= 0, f"{case['name']}: bias missing")
    if case["op"] != "fc":
        pad_same = opts.padding == schema_fb.Padding.SAME
        check(pad_same == (case["padding"] == "SAME"), "padding")
        sh, sw = opts.strideH, opts.strideW
        dh, dw = opts.dilationHFactor, opts.dilationWFactor
        check((sh, sw) == case["stride"] and (dh, dw) == case["dil"],
              f"{case['name']}: stride/dilation {sh, sw, dh, dw}")
        _, kh, kw, _ = arrays["filter"].shape
        n, h, w, _ = arrays["input"].shape
        if pad_same:
            pad_top, oh = tflite_same_pad(h, kh, sh, dh)
            pad_left, ow = tflite_same_pad(w, kw, sw, dw)
        else:
            pad_top = pad_left = 0
            oh = (h - ((kh - 1) * dh + 1)) // sh + 1
            ow = (w - ((kw - 1) * dw + 1)) // sw + 1
        check(arrays["output"].shape == (n, oh, ow, out_c),
              f"{case['name']}: output shape {arrays['output'].shape}")
        dm = opts.depthMultiplier if case["op"] == "depthwise" else 1
        if case["op"] == "depthwise":
            check(dm == case["dm"], "depth multiplier")
        arrays.update(stride_h=np.int32(sh), stride_w=np.int32(sw),
                      dilation_h=np.int32(dh), dilation_w=np.int32(dw),
                      depth_multiplier=np.int32(dm), padding_same=np.int32(pad_same),
                      pad_top=np.int32(pad_top), pad_left=np.int32(pad_left))
    else:
        check(arrays["filter"].shape == (out_c, case["depth"]), "FC weights shape")
        check(arrays["output"].shape == (case["batch"], out_c), "FC output shape")
    return arrays


def write_npz(path, arrays):
    """np.savez-compatible, uncompressed, fixed timestamps: byte-identical reruns."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as f:
                # np.array, not ascontiguousarray, which would turn 0-d scalars into 1-d.
                np.lib.format.write_array(f, np.array(arrays[key], order="C"),
                                          allow_pickle=False)
    os.replace(tmp, path)


def check_pins():
    """The vectors are only reproducible (and only LiteRT 2.3.0's) with the pins."""
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
    for case in CASES:
        if only and case["name"] not in only:
            continue
        arrays = run_case(case)
        path = os.path.join(OUT_DIR, f"conv_{case['name']}.npz")
        write_npz(path, arrays)
        print(f"{case['name']}: out {arrays['output'].shape}, "
              f"{arrays['filter_scales'].size} filter scale(s), "
              f"{os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
