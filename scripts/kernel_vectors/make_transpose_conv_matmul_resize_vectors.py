#!/usr/bin/env python3
"""LiteRT oracle vectors for qdbg's int8 TRANSPOSE_CONV / BATCH_MATMUL / RESIZE_BILINEAR.

Pinned environment (the /opt/qdbg-fixtures venv): tensorflow-cpu 2.21.0,
ai-edge-litert 2.3.0, numpy 2.4.6. Run:

    /opt/qdbg-fixtures/bin/python scripts/kernel_vectors/make_transpose_conv_matmul_resize_vectors.py [case ...]

Each case is a tiny tf.function holding one conv2d_transpose (+ bias, + activation,
which the converter fuses) / batch matmul of two activations / bilinear resize. It is
converted to full int8 with a representative dataset (float I/O, so the graph is
QUANTIZE -> op -> DEQUANTIZE), run once in LiteRT with its builtin kernels
(BUILTIN_WITHOUT_DEFAULT_DELEGATES, no XNNPACK, one thread,
experimental_preserve_all_tensors=True), and the op's own int8 inputs, quantization
parameters, attributes (read back from the flatbuffer, not from what we asked for) and
LiteRT's int8 output are written to tests/fixtures/kernels/transpose_conv_matmul_resize/<case>.npz.

npz keys (all arrays; scalars are 0-d):
  kind                 0 = TRANSPOSE_CONV, 1 = BATCH_MATMUL, 2 = RESIZE_BILINEAR
  output               int8, LiteRT's output of the op
  output_scale         float32; output_zero_point int32
 TRANSPOSE_CONV:
  input                int8 NHWC; input_scale float32, input_zero_point int32
  filter               int8 [out_c, kh, kw, in_c] (TFLite's OHWI)
  filter_scales        float32 [n], filter_zero_points int32 [n] (n = 1: per-tensor)
  quantized_dimension  int32
  bias                 int32 [out_c], absent when the op has none
  output_shape         int32 [4], the op's constant output-shape input
  stride_h, stride_w, padding_same, activation (TFLite's ActivationFunctionType)
  pad_top, pad_left    int32, TFLite's transpose-conv padding (ComputePaddingHeightWidth
                       on the *output* size), from this script's copy of the rule
 BATCH_MATMUL:
  lhs, rhs             int8 in their own (unbroadcast) shapes
  lhs_scale, rhs_scale float32; lhs_zero_point, rhs_zero_point int32
  adj_x, adj_y         int32 (0 / 1)
 RESIZE_BILINEAR:
  input                int8 NHWC; input_scale float32, input_zero_point int32
  size                 int32 [2], the op's constant size input
  align_corners, half_pixel_centers   int32 (0 / 1)

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
SEED = 20250817
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "tests", "fixtures", "kernels", "transpose_conv_matmul_resize")

BO = schema_fb.BuiltinOperator
KIND = {"tconv": 0, "bmm": 1, "resize": 2}
BUILTIN = {"tconv": BO.TRANSPOSE_CONV, "bmm": BO.BATCH_MATMUL,
           "resize": BO.RESIZE_BILINEAR}
ACT = {None: schema_fb.ActivationFunctionType.NONE,
       "relu": schema_fb.ActivationFunctionType.RELU,
       "relu6": schema_fb.ActivationFunctionType.RELU6}
ACT_FN = {None: lambda y: y, "relu": tf.nn.relu, "relu6": tf.nn.relu6}

# Output channel counts mix multiples of 8 and odd tails: LiteRT requantizes the
# transpose-conv accumulators 8 channels at a time with vector code and the rest with
# scalar code, which break ties differently.
CASES = [
    # --- TRANSPOSE_CONV ------------------------------------------------------
    # SAME, stride 2, even output: TFLite pads the equivalent conv 0 before, 1 after.
    dict(name="tconv_same_s2_bias", op="tconv", batch=1, in_hw=(5, 6), in_c=4, out_c=11,
         k=(3, 3), stride=(2, 2), out_hw=(10, 12), padding="SAME", act=None),
    # SAME with an odd output size (9 = 2 * 5 - 1): a different pad split.
    dict(name="tconv_same_s2_odd_b2", op="tconv", batch=2, in_hw=(5, 4), in_c=3, out_c=8,
         k=(4, 4), stride=(2, 2), out_hw=(9, 7), padding="SAME", act=None),
    dict(name="tconv_valid_s2", op="tconv", batch=1, in_hw=(4, 5), in_c=5, out_c=6,
         k=(3, 3), stride=(2, 2), out_hw=(9, 11), padding="VALID", act=None),
    dict(name="tconv_valid_s2x1_nobias", op="tconv", batch=1, in_hw=(4, 6), in_c=3,
         out_c=16, k=(2, 3), stride=(2, 1), out_hw=(8, 8), padding="VALID", act=None,
         bias=False),
    dict(name="tconv_same_s2_per_tensor", op="tconv", batch=1, in_hw=(4, 4), in_c=6,
         out_c=9, k=(3, 3), stride=(2, 2), out_hw=(8, 8), padding="SAME", act=None,
         per_tensor=True),
    dict(name="tconv_same_s1_relu", op="tconv", batch=1, in_hw=(6, 6), in_c=4, out_c=10,
         k=(3, 3), stride=(1, 1), out_hw=(6, 6), padding="SAME", act="relu"),
    # Rounding probe: power-of-two scales rewritten into the converted model (input 1,
    # filter 2^-7, output 2^-4), so the multiplier is exactly 2^30 with a right shift
    # of 2 and many accumulators land on exact halves. 12 channels: 8 go through the
    # vector requantization (ties up), 4 through the scalar tail (ties away from 0).
    dict(name="tconv_pow2_ties", op="tconv", batch=1, in_hw=(5, 5), in_c=3, out_c=12,
         k=(3, 3), stride=(2, 2), out_hw=(10, 10), padding="SAME", act=None,
         per_tensor=True, bias=False, pow2=(0, -7, -4)),
    # --- BATCH_MATMUL --------------------------------------------------------
    dict(name="bmm_plain", op="bmm", lhs=(3, 7, 12), rhs=(3, 12, 9), adj_x=False,
         adj_y=False),
    dict(name="bmm_adj_x", op="bmm", lhs=(2, 10, 6), rhs=(2, 10, 7), adj_x=True,
         adj_y=False),
    dict(name="bmm_adj_y", op="bmm", lhs=(2, 5, 11), rhs=(2, 8, 11), adj_x=False,
         adj_y=True),
    # Batch broadcast both ways: [2, 1, ...] x [3, ...] -> [2, 3, ...].
    dict(name="bmm_bcast", op="bmm", lhs=(2, 1, 4, 9), rhs=(3, 9, 5), adj_x=False,
         adj_y=False),
    # RHS batch of 1 in front of the matrix: LiteRT folds LHS batches into rows.
    dict(name="bmm_bcast_rhs1_adj_y", op="bmm", lhs=(2, 3, 4, 6), rhs=(1, 5, 6),
         adj_x=False, adj_y=True),
    # Rounding probe: lhs / rhs scale 1, output 2^2 (multiplier 2^30, shift -1).
    dict(name="bmm_pow2_ties", op="bmm", lhs=(2, 6, 8), rhs=(2, 8, 7), adj_x=False,
         adj_y=False, pow2=(0, 0, 2)),
    # --- RESIZE_BILINEAR -----------------------------------------------------
    dict(name="resize_up_half_pixel", op="resize", shape=(1, 5, 7, 3), size=(11, 16),
         align_corners=False, half_pixel_centers=True),
    dict(name="resize_up_align_corners", op="resize", shape=(1, 5, 7, 3), size=(11, 16),
         align_corners=True, half_pixel_centers=False),
    dict(name="resize_up_plain_b2", op="resize", shape=(2, 4, 6, 5), size=(9, 13),
         align_corners=False, half_pixel_centers=False),
    dict(name="resize_up_2x_half_pixel", op="resize", shape=(1, 6, 6, 8), size=(12, 12),
         align_corners=False, half_pixel_centers=True),
    dict(name="resize_down_half_pixel", op="resize", shape=(1, 13, 11, 4), size=(5, 6),
         align_corners=False, half_pixel_centers=True),
    dict(name="resize_down_align_corners", op="resize", shape=(1, 13, 11, 4),
         size=(5, 6), align_corners=True, half_pixel_centers=False),
    dict(name="resize_down_plain", op="resize", shape=(1, 13, 11, 4), size=(5, 6),
         align_corners=False, half_pixel_centers=False),
]


def rng_for(name):
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def input_range(key):
    """Per-case calibration range: asymmetric, so input zero points vary (and are not 0)."""
    rng = rng_for("range/" + key)
    lo = rng.uniform(-3.0, 0.5)
    return lo, lo + rng.uniform(1.5, 5.0)


def input_specs(case):
    """(name, shape) of the model's float inputs."""
    if case["op"] == "tconv":
        return [("x", [case["batch"], *case["in_hw"], case["in_c"]])]
    if case["op"] == "bmm":
        return [("lhs", list(case["lhs"])), ("rhs", list(case["rhs"]))]
    return [("x", list(case["shape"]))]


def build(case):
    """The tf.function of one case, weights drawn from its seed."""
    rng = rng_for("weights/" + case["name"])
    specs = [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in input_specs(case)]
    if case["op"] == "tconv":
        kh, kw = case["k"]
        c_in, c_out = case["in_c"], case["out_c"]
        # tf.nn.conv2d_transpose takes the filter as [kh, kw, out_c, in_c].
        w = rng.standard_normal((kh, kw, c_out, c_in)).astype(np.float32)
        gains = rng.uniform(0.25, 2.0, c_out).astype(np.float32)
        w *= gains[None, None, :, None] / np.sqrt(kh * kw * c_in)
        b = (rng.standard_normal(c_out) * 0.5).astype(np.float32)
        out_shape = [case["batch"], *case["out_hw"], c_out]
        act = ACT_FN[case["act"]]
        use_bias = case.get("bias", True)

        def body(x):
            y = tf.nn.conv2d_transpose(x, tf.constant(w), output_shape=out_shape,
                                       strides=[1, *case["stride"], 1],
                                       padding=case["padding"])
            if use_bias:
                y = tf.nn.bias_add(y, tf.constant(b))
            return act(y)
    elif case["op"] == "bmm":
        def body(lhs, rhs):
            return tf.linalg.matmul(lhs, rhs, adjoint_a=case["adj_x"],
                                    adjoint_b=case["adj_y"])
    else:
        def body(x):
            return tf.raw_ops.ResizeBilinear(images=x, size=list(case["size"]),
                                             align_corners=case["align_corners"],
                                             half_pixel_centers=case["half_pixel_centers"])
    return tf.function(body, input_signature=specs)


def sample(case, rng, widen=0.0):
    """One float input per model input, each in its own calibration range (widened)."""
    xs = []
    for name, shape in input_specs(case):
        lo, hi = input_range(case["name"] + "/" + name)
        pad = widen * (hi - lo)
        xs.append(rng.uniform(lo - pad, hi + pad, shape).astype(np.float32))
    return xs


def convert(case, fn):
    rng = rng_for("calibration/" + case["name"])
    calib = [sample(case, rng) for _ in range(16)]
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: iter(calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if case.get("per_tensor"):
        conv._experimental_disable_per_channel = True
    return bytes(conv.convert())


def check(cond, msg):
    if not cond:
        raise RuntimeError(msg)


def code_of(mt, op):
    c = mt.operatorCodes[op.opcodeIndex]
    return max(c.builtinCode, c.deprecatedBuiltinCode)


def the_op(mt, case):
    """The case's single op, checked to be alone between QUANTIZE / DEQUANTIZE."""
    sub = mt.subgraphs[0]
    want = BUILTIN[case["op"]]
    ops = [op for op in sub.operators if code_of(mt, op) == want]
    others = sorted({code_of(mt, op) for op in sub.operators} - {want})
    check(len(ops) == 1, f"{case['name']}: expected one op {want}, got {len(ops)}")
    check(others == sorted({BO.QUANTIZE, BO.DEQUANTIZE}),
          f"{case['name']}: unexpected extra ops {others}")
    return ops[0]


def rewrite_pow2_scales(model, case):
    """Sets the op's quantized inputs' and output's scales to powers of two.

    Zero points and integer data stay as converted. The QUANTIZE ops feeding the op and
    the DEQUANTIZE after it read the same tensors, so the model stays self-consistent;
    the float semantics change, which does not matter for an integer-kernel oracle.
    """
    a_exp, b_exp, out_exp = case["pow2"]
    mt = schema_fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    op = the_op(mt, case)
    if case["op"] == "tconv":
        # Inputs: output_shape, filter, input(, bias).
        first, second = int(op.inputs[2]), int(op.inputs[1])
        check(len(op.inputs) < 4 or op.inputs[3] < 0, "pow2 probes carry no bias")
    else:
        first, second = int(op.inputs[0]), int(op.inputs[1])
    scales = {first: 2.0 ** a_exp, second: 2.0 ** b_exp, int(op.outputs[0]): 2.0 ** out_exp}
    for t, scale in scales.items():
        q = mt.subgraphs[0].tensors[t].quantization
        check(len(q.scale) == 1, "power-of-two rewrite needs per-tensor scales")
        q.scale = [scale]
    builder = flatbuffers.Builder(1024)
    builder.Finish(mt.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tflite_padding(size, k, stride, same):
    """TFLite's ComputePaddingHeightWidth as TRANSPOSE_CONV calls it: on the output
    size, dilation 1. Returns the pad before (the odd pixel goes after)."""
    out = (size + stride - 1) // stride if same else (size + stride - k) // stride
    total = max((out - 1) * stride + k - size, 0)
    return total // 2


def run_case(case):
    fn = build(case)
    model = convert(case, fn)
    if "pow2" in case:
        model = rewrite_pow2_scales(model, case)
    mt = schema_fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    op = the_op(mt, case)
    opts = op.builtinOptions

    it = Interpreter(model_content=model,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     experimental_preserve_all_tensors=True, num_threads=1)
    it.allocate_tensors()
    # A little wider than the calibration range, so QUANTIZE saturates some inputs and
    # the op's output reaches the ends of its range.
    xs = sample(case, rng_for("input/" + case["name"]), widen=0.1)
    details = it.get_input_details()
    check(len(details) == len(xs), f"{case['name']}: {len(details)} model inputs")
    for (name, shape), x in zip(input_specs(case), xs):
        match = [d for d in details if name in d["name"]]
        check(len(match) == 1 and list(match[0]["shape"]) == shape,
              f"{case['name']}: input {name} not found in {[d['name'] for d in details]}")
        it.set_tensor(match[0]["index"], x)
    it.invoke()

    tdetails = {d["index"]: d for d in it.get_tensor_details()}

    def qp(t):
        q = tdetails[t]["quantization_parameters"]
        return (np.asarray(q["scales"], np.float32), np.asarray(q["zero_points"], np.int32),
                int(q["quantized_dimension"]))

    def int8(t):
        check(tdetails[t]["dtype"] == np.int8, f"{case['name']}: tensor {t} is not int8")
        return it.get_tensor(t).astype(np.int8)

    def per_tensor(prefix, t):
        s, zp, _ = qp(t)
        check(s.size == 1, f"{case['name']}: {prefix} is not per-tensor")
        return {f"{prefix}_scale": np.float32(s[0]), f"{prefix}_zero_point": np.int32(zp[0])}

    t_out = int(op.outputs[0])
    arrays = {"kind": np.int32(KIND[case["op"]]), "output": int8(t_out)}
    arrays.update(per_tensor("output", t_out))

    if case["op"] == "tconv":
        t_shape, t_filter, t_in = int(op.inputs[0]), int(op.inputs[1]), int(op.inputs[2])
        t_bias = int(op.inputs[3]) if len(op.inputs) > 3 else -1
        f_s, f_zp, f_dim = qp(t_filter)
        check(not f_zp.any(), f"{case['name']}: filter zero points must be 0")
        check(f_s.size == (1 if case.get("per_tensor") else case["out_c"]),
              f"{case['name']}: {f_s.size} filter scales")
        check(opts.fusedActivationFunction == ACT[case["act"]],
              f"{case['name']}: activation {opts.fusedActivationFunction} not fused as asked")
        out_shape = it.get_tensor(t_shape).astype(np.int32).reshape(-1)
        same = opts.padding == schema_fb.Padding.SAME
        check(same == (case["padding"] == "SAME"), "padding")
        sh, sw = opts.strideH, opts.strideW
        check((sh, sw) == case["stride"], f"{case['name']}: strides {sh, sw}")
        arrays.update(input=int8(t_in), filter=int8(t_filter), filter_scales=f_s,
                      filter_zero_points=f_zp, quantized_dimension=np.int32(f_dim),
                      output_shape=out_shape, stride_h=np.int32(sh), stride_w=np.int32(sw),
                      padding_same=np.int32(same),
                      activation=np.int32(opts.fusedActivationFunction))
        arrays.update(per_tensor("input", t_in))
        _, kh, kw, _ = arrays["filter"].shape
        arrays["pad_top"] = np.int32(tflite_padding(int(out_shape[1]), kh, sh, same))
        arrays["pad_left"] = np.int32(tflite_padding(int(out_shape[2]), kw, sw, same))
        check(tuple(arrays["output"].shape) == tuple(out_shape), "output shape")
        if t_bias >= 0:
            check(tdetails[t_bias]["dtype"] == np.int32, "int32 bias")
            arrays["bias"] = it.get_tensor(t_bias).astype(np.int32)
        check((t_bias >= 0) == case.get("bias", True), f"{case['name']}: bias presence")
        if "pow2" in case:
            want = tuple(np.float32(2.0 ** e) for e in case["pow2"])
            check((arrays["input_scale"], f_s[0], arrays["output_scale"]) == want,
                  f"{case['name']}: rewritten scales not in effect")
    elif case["op"] == "bmm":
        t_lhs, t_rhs = int(op.inputs[0]), int(op.inputs[1])
        arrays.update(lhs=int8(t_lhs), rhs=int8(t_rhs), adj_x=np.int32(opts.adjX),
                      adj_y=np.int32(opts.adjY))
        arrays.update(per_tensor("lhs", t_lhs))
        arrays.update(per_tensor("rhs", t_rhs))
        check((bool(opts.adjX), bool(opts.adjY)) == (case["adj_x"], case["adj_y"]),
              f"{case['name']}: adj flags {opts.adjX, opts.adjY} not kept as asked")
        check(arrays["lhs"].shape == case["lhs"] and arrays["rhs"].shape == case["rhs"],
              f"{case['name']}: operand shapes {arrays['lhs'].shape} {arrays['rhs'].shape}")
        if "pow2" in case:
            want = tuple(np.float32(2.0 ** e) for e in case["pow2"])
            got = (arrays["lhs_scale"], arrays["rhs_scale"], arrays["output_scale"])
            check(got == want, f"{case['name']}: rewritten scales not in effect")
    else:
        t_in, t_size = int(op.inputs[0]), int(op.inputs[1])
        arrays.update(input=int8(t_in), size=it.get_tensor(t_size).astype(np.int32).reshape(-1),
                      align_corners=np.int32(opts.alignCorners),
                      half_pixel_centers=np.int32(opts.halfPixelCenters))
        arrays.update(per_tensor("input", t_in))
        check((bool(opts.alignCorners), bool(opts.halfPixelCenters))
              == (case["align_corners"], case["half_pixel_centers"]),
              f"{case['name']}: resize flags not kept as asked")
        check((arrays["input_scale"], arrays["input_zero_point"])
              == (arrays["output_scale"], arrays["output_zero_point"]),
              f"{case['name']}: input and output quantization differ")
        check(tuple(arrays["size"]) == case["size"], "size")
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
    unknown = only - {c["name"] for c in CASES}
    check(not unknown, f"unknown cases {sorted(unknown)}")
    os.makedirs(OUT_DIR, exist_ok=True)
    for case in CASES:
        if only and case["name"] not in only:
            continue
        arrays = run_case(case)
        path = os.path.join(OUT_DIR, f"{case['name']}.npz")
        write_npz(path, arrays)
        print(f"{case['name']}: out {arrays['output'].shape}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
