#!/usr/bin/env python3
"""Generate the TFLite test fixtures for qdbg.

Run through scripts/make_fixtures.sh, which creates a venv with the pinned
versions from scripts/fixtures/requirements.txt.  Every fixture NAME.tflite gets
NAME.inputs.npz, holding one float32/int32 array per model input, keyed by the
TFLite input tensor name, first axis = samples.

The script is deterministic (fixed seeds, npz archives with fixed timestamps)
and checks, after converting, that every op it meant to produce is really in
the model (LiteRT's op list plus the builtin options read from the flatbuffer),
so a converter that fuses or rewrites something is caught.

A few variants that the converter will not emit from TensorFlow graphs are made
by a small, verified flatbuffer rewrite of the converted model (see
`rewrite_*` below): SQUEEZE / EXPAND_DIMS (the converter turns static ones into
RESHAPE), SOFTMAX with beta != 1, GELU with approximate=False (TF's exact GELU
needs Erf/Erfc, which have no builtin), and the whole quant_dequant model.

Fixtures in INT8_FIXTURES also get TensorFlow's full-int8 twin NAME.int8.tflite and
the output of TensorFlow's QuantizationDebugger on the same function and data
(NAME.tf_debug.csv, NAME.tf_debug_whole.csv, NAME.tf_debug.json; see `tf_debug` and
tests/fixtures/README.md).
"""

import argparse
import io
import json
import math
import os
import sys
import zipfile
import zlib
from collections import Counter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import flatbuffers  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from tensorflow.lite.python import convert as tf_convert  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema_fb  # noqa: E402

SEED = 20240611

OPNAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}
OPTION_TYPES = {v: k for k, v in vars(schema_fb.BuiltinOptions).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}

SAME = schema_fb.Padding.SAME
VALID = schema_fb.Padding.VALID
ACT_NONE = schema_fb.ActivationFunctionType.NONE
ACT_RELU = schema_fb.ActivationFunctionType.RELU
ACT_RELU6 = schema_fb.ActivationFunctionType.RELU6


class FixtureError(RuntimeError):
    pass


def check(cond, msg):
    if not cond:
        raise FixtureError(msg)


# ---------------------------------------------------------------------------
# Deterministic randomness
# ---------------------------------------------------------------------------

def rng_for(name):
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


class Weights:
    """Deterministic float32 constants for one fixture."""

    def __init__(self, name):
        self.rng = rng_for("weights/" + name)

    def normal(self, *shape, scale=None):
        if scale is None:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else int(shape[0])
            scale = 1.0 / math.sqrt(max(fan_in, 1))
        return tf.constant(self.rng.standard_normal(shape).astype(np.float32) * np.float32(scale))

    def uniform(self, lo, hi, *shape):
        return tf.constant(self.rng.uniform(lo, hi, shape).astype(np.float32))


# ---------------------------------------------------------------------------
# Conversion and flatbuffer helpers
# ---------------------------------------------------------------------------

# Every tf.function converted while building the current fixture, so its full-int8 twin
# can be made from the same function (see `full_int8`).
CONVERTED_FNS = []


def convert(fn, configure=None):
    CONVERTED_FNS.append(fn)
    concrete = fn.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    if configure is not None:
        configure(converter)
    return bytes(converter.convert())


def load_model_t(model_bytes):
    return schema_fb.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)


def pack_model_t(model_t):
    builder = flatbuffers.Builder(1024)
    builder.Finish(model_t.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_code(model_t, op):
    code = model_t.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def op_code_index(model_t, builtin):
    for i, code in enumerate(model_t.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema_fb.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model_t.operatorCodes.append(code)
    return len(model_t.operatorCodes) - 1


def tensor_name(sub, idx):
    name = sub.tensors[idx].name
    return name.decode() if isinstance(name, bytes) else str(name)


def describe_ops(model_bytes):
    """[(op_name, options_dict, input tensor shapes, output shapes, input idx)]."""
    mt = load_model_t(model_bytes)
    sub = mt.subgraphs[0]
    out = []
    for op in sub.operators:
        opts = vars(op.builtinOptions) if op.builtinOptions is not None else {}
        ins = [tuple(int(d) for d in sub.tensors[i].shape) if i >= 0 else None for i in op.inputs]
        outs = [tuple(int(d) for d in sub.tensors[i].shape) for i in op.outputs]
        out.append(dict(op=OPNAMES.get(op_code(mt, op), "?"), opts=dict(opts), in_shapes=ins,
                        out_shapes=outs, inputs=list(op.inputs), outputs=list(op.outputs)))
    return out


def find_ops(model_t, builtin, marker):
    """Ops of type `builtin` whose output or any input tensor name contains marker."""
    sub = model_t.subgraphs[0]
    found = []
    for op in sub.operators:
        if op_code(model_t, op) != builtin:
            continue
        names = [tensor_name(sub, i) for i in list(op.outputs) + list(op.inputs) if i >= 0]
        if any(marker in n for n in names):
            found.append(op)
    return found


def find_one(model_t, builtin, marker):
    ops = find_ops(model_t, builtin, marker)
    check(len(ops) == 1, f"expected exactly one {OPNAMES[builtin]} marked {marker!r}, found {len(ops)}")
    return ops[0]


def add_const(model_t, name, array):
    array = np.ascontiguousarray(array)
    buf = schema_fb.BufferT()
    buf.data = np.frombuffer(array.tobytes(), dtype=np.uint8).copy()
    model_t.buffers.append(buf)
    t = schema_fb.TensorT()
    t.shape = np.array(array.shape, dtype=np.int32)
    t.type = {np.dtype(np.int32): schema_fb.TensorType.INT32,
              np.dtype(np.float32): schema_fb.TensorType.FLOAT32}[array.dtype]
    t.buffer = len(model_t.buffers) - 1
    t.name = name.encode()
    sub = model_t.subgraphs[0]
    sub.tensors.append(t)
    return len(sub.tensors) - 1


def rewrite_reshape_to_squeeze(model_t, marker):
    sub = model_t.subgraphs[0]
    op = find_one(model_t, schema_fb.BuiltinOperator.RESHAPE, marker)
    src = [int(d) for d in sub.tensors[op.inputs[0]].shape]
    dst = [int(d) for d in sub.tensors[op.outputs[0]].shape]
    dims = None
    for k in range(len(src)):
        if src[k] == 1 and src[:k] + src[k + 1:] == dst:
            dims = [k]
            break
    check(dims is not None, f"RESHAPE {src}->{dst} ({marker}) is not a single-axis squeeze")
    op.opcodeIndex = op_code_index(model_t, schema_fb.BuiltinOperator.SQUEEZE)
    op.inputs = np.array([op.inputs[0]], dtype=np.int32)
    opts = schema_fb.SqueezeOptionsT()
    opts.squeezeDims = dims
    op.builtinOptionsType = schema_fb.BuiltinOptions.SqueezeOptions
    op.builtinOptions = opts


def rewrite_reshape_to_expand_dims(model_t, marker):
    sub = model_t.subgraphs[0]
    op = find_one(model_t, schema_fb.BuiltinOperator.RESHAPE, marker)
    src = [int(d) for d in sub.tensors[op.inputs[0]].shape]
    dst = [int(d) for d in sub.tensors[op.outputs[0]].shape]
    axis = None
    for k in range(len(dst)):
        if dst[k] == 1 and dst[:k] + dst[k + 1:] == src:
            axis = k
            break
    check(axis is not None, f"RESHAPE {src}->{dst} ({marker}) is not a single-axis expand_dims")
    axis_t = add_const(model_t, f"{marker}/axis", np.array(axis, dtype=np.int32))
    op.opcodeIndex = op_code_index(model_t, schema_fb.BuiltinOperator.EXPAND_DIMS)
    op.inputs = np.array([op.inputs[0], axis_t], dtype=np.int32)
    op.builtinOptionsType = schema_fb.BuiltinOptions.ExpandDimsOptions
    op.builtinOptions = schema_fb.ExpandDimsOptionsT()


def prune_unused(model_t):
    """Drop tensors no op/graph uses and buffers no tensor/metadata uses."""
    sub = model_t.subgraphs[0]
    used = set(int(i) for i in sub.inputs) | set(int(i) for i in sub.outputs)
    for op in sub.operators:
        used |= set(int(i) for i in op.inputs if i >= 0)
        used |= set(int(i) for i in op.outputs)
    order = sorted(used)
    remap = {old: new for new, old in enumerate(order)}
    sub.tensors = [sub.tensors[i] for i in order]
    sub.inputs = np.array([remap[int(i)] for i in sub.inputs], dtype=np.int32)
    sub.outputs = np.array([remap[int(i)] for i in sub.outputs], dtype=np.int32)
    for op in sub.operators:
        op.inputs = np.array([remap[int(i)] if i >= 0 else -1 for i in op.inputs], dtype=np.int32)
        op.outputs = np.array([remap[int(i)] for i in op.outputs], dtype=np.int32)
    used_bufs = {0} | {int(t.buffer) for t in sub.tensors}
    for md in model_t.metadata or []:
        used_bufs.add(int(md.buffer))
    border = sorted(used_bufs)
    bremap = {old: new for new, old in enumerate(border)}
    model_t.buffers = [model_t.buffers[i] for i in border]
    for t in sub.tensors:
        t.buffer = bremap[int(t.buffer)]
    for md in model_t.metadata or []:
        md.buffer = bremap[int(md.buffer)]
    used_codes = sorted({int(op.opcodeIndex) for op in sub.operators})
    cremap = {old: new for new, old in enumerate(used_codes)}
    model_t.operatorCodes = [model_t.operatorCodes[i] for i in used_codes]
    for op in sub.operators:
        op.opcodeIndex = cremap[int(op.opcodeIndex)]


# ---------------------------------------------------------------------------
# LiteRT helpers
# ---------------------------------------------------------------------------

def interpreter(model_bytes, preserve=False):
    it = Interpreter(model_content=model_bytes,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     experimental_preserve_all_tensors=preserve, num_threads=1)
    it.allocate_tensors()
    return it


def litert_op_names(model_bytes):
    return [d["op_name"] for d in interpreter(model_bytes)._get_ops_details()]


def run_litert(model_bytes, inputs, preserve=False):
    """Run every sample; returns (list of output arrays per sample, interpreters' tensors)."""
    it = interpreter(model_bytes, preserve=preserve)
    details = it.get_input_details()
    n = next(iter(inputs.values())).shape[0]
    outs, all_tensors = [], []
    for i in range(n):
        for d in details:
            it.set_tensor(d["index"], inputs[d["name"]][i:i + 1].reshape(d["shape"]))
        it.invoke()
        outs.append([it.get_tensor(d["index"]).copy() for d in it.get_output_details()])
        if preserve:
            tensors = {}
            for op in it._get_ops_details():
                for t in op["outputs"]:
                    tensors[int(t)] = it.get_tensor(int(t)).copy()
            all_tensors.append(tensors)
    return outs, all_tensors


def write_npz(path, arrays):
    """np.savez-compatible archive with fixed timestamps, so reruns are byte-identical."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[key]), allow_pickle=False)
    os.replace(tmp, path)


def write_bytes(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------

class Expect:
    """One expected op (and option/shape predicate) in a converted model."""

    def __init__(self, op, what="", pred=None, **opts):
        self.op, self.what, self.pred, self.opts = op, what, pred, opts

    def matches(self, d):
        if d["op"] != self.op:
            return False
        for k, v in self.opts.items():
            got = d["opts"].get(k)
            if isinstance(v, float):
                if got is None or abs(float(got) - v) > 1e-6:
                    return False
            elif isinstance(v, (list, tuple)):
                if got is None or list(np.asarray(got).tolist()) != list(v):
                    return False
            elif got != v:
                return False
        return self.pred is None or bool(self.pred(d))

    def label(self):
        extra = ", ".join(f"{k}={v}" for k, v in self.opts.items())
        return f"{self.op}" + (f" [{self.what}]" if self.what else "") + (f" ({extra})" if extra else "")


def verify_ops(name, model_bytes, expects):
    names = litert_op_names(model_bytes)
    wanted = sorted({e.op for e in expects})
    missing = [op for op in wanted if op not in names]
    check(not missing, f"{name}: LiteRT op list lacks {missing}; it has {sorted(set(names))}")
    descs = describe_ops(model_bytes)
    check([d["op"] for d in descs] == names, f"{name}: flatbuffer and LiteRT op lists disagree")
    for e in expects:
        check(any(e.matches(d) for d in descs),
              f"{name}: no op matches {e.label()}; ops: " +
              "; ".join(f"{d['op']}{d['opts']}" for d in descs if d["op"] == e.op))
    return names


def diff_shapes(d):
    a, b = d["in_shapes"][0], d["in_shapes"][1]
    return a != b


# ---------------------------------------------------------------------------
# Fixture definitions.  Each returns a dict:
#   model: bytes, inputs: {signature-order input arrays (by spec name)},
#   expects: [Expect], check: optional callable(model_bytes, inputs)
# ---------------------------------------------------------------------------

def uniform(rng, lo, hi, shape):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def fixture_conv_ops(name, samples):
    w = Weights(name)
    spec = [tf.TensorSpec([1, 10, 10, 3], tf.float32, name="image")]
    k1, b1 = w.normal(3, 3, 3, 8), w.normal(8, scale=0.1)
    k2, b2 = w.normal(3, 3, 3, 4), w.normal(4, scale=0.1)
    k3, b3 = w.normal(3, 3, 4, 4), w.normal(4, scale=0.1)
    kd1, bd1 = w.normal(3, 3, 3, 1, scale=0.4), w.normal(3, scale=0.1)
    kd2, bd2 = w.normal(3, 3, 4, 2, scale=0.4), w.normal(8, scale=0.1)
    kt1, bt1 = w.normal(3, 3, 4, 8, scale=0.25), w.normal(4, scale=0.1)
    kt2 = w.normal(2, 2, 4, 8, scale=0.25)

    @tf.function(input_signature=spec)
    def f(image):
        # SAME, stride 2 on an even 10x10 input: pad 0 before / 1 after. Fused RELU6.
        c1 = tf.nn.relu6(tf.nn.conv2d(image, k1, strides=2, padding="SAME") + b1)  # 1x5x5x8
        # VALID, fused RELU.
        c2 = tf.nn.relu(tf.nn.conv2d(image, k2, strides=1, padding="VALID") + b2)  # 1x8x8x4
        # dilation 2, SAME.
        c3 = tf.nn.conv2d(c2, k3, strides=1, padding="SAME", dilations=2) + b3  # 1x8x8x4
        # depthwise: multiplier 1, SAME stride 2; multiplier 2, VALID.
        d1 = tf.nn.depthwise_conv2d(image, kd1, strides=[1, 2, 2, 1], padding="SAME") + bd1  # 1x5x5x3
        d2 = tf.nn.depthwise_conv2d(c3, kd2, strides=[1, 1, 1, 1], padding="VALID") + bd2  # 1x6x6x8
        # transpose conv: SAME (with bias) and VALID (no bias), both stride 2 -> 1x10x10x4.
        t1 = tf.nn.conv2d_transpose(c1, kt1, output_shape=[1, 10, 10, 4], strides=2, padding="SAME") + bt1
        t2 = tf.nn.conv2d_transpose(c1, kt2, output_shape=[1, 10, 10, 4], strides=2, padding="VALID")
        return {"dw_s2": d1, "dw_m2": d2, "up": t1 + t2}

    model = convert(f)
    rng = rng_for("inputs/" + name)
    inputs = {"image": uniform(rng, -1, 1, (samples, 10, 10, 3))}
    expects = [
        Expect("CONV_2D", "SAME stride 2 on even input (asymmetric pad), fused RELU6",
               pred=lambda d: d["in_shapes"][0][1] % 2 == 0,
               padding=SAME, strideH=2, strideW=2, fusedActivationFunction=ACT_RELU6),
        Expect("CONV_2D", "VALID, fused RELU", padding=VALID, fusedActivationFunction=ACT_RELU),
        Expect("CONV_2D", "dilation 2", dilationHFactor=2, dilationWFactor=2),
        Expect("DEPTHWISE_CONV_2D", "multiplier 1, SAME stride 2",
               depthMultiplier=1, padding=SAME, strideH=2, strideW=2),
        Expect("DEPTHWISE_CONV_2D", "multiplier 2", depthMultiplier=2),
        Expect("TRANSPOSE_CONV", "SAME with bias", padding=SAME,
               pred=lambda d: len(d["inputs"]) == 4 and d["inputs"][3] >= 0),
        Expect("TRANSPOSE_CONV", "VALID", padding=VALID),
        Expect("ADD", "two activations"),
    ]
    return dict(model=model, inputs=inputs, expects=expects)


def fixture_dense_ops(name, samples):
    w = Weights(name)
    spec = [tf.TensorSpec([1, 6, 8], tf.float32, name="features")]
    w1, b1 = w.normal(8, 5), w.normal(5, scale=0.1)
    w2, b2 = w.normal(40, 4), w.normal(4, scale=0.1)

    @tf.function(input_signature=spec)
    def f(features):
        tokens = tf.matmul(features, w1) + b1  # FC keep_num_dims on 3-D input -> 1x6x5
        gram = tf.matmul(tokens, features, transpose_a=True)  # BATCH_MATMUL adj_x -> 1x5x8
        flat = tf.reshape(gram, [1, 40])
        logits = tf.nn.relu(tf.matmul(flat, w2) + b2)  # FC with bias + fused RELU -> 1x4
        return {"logits": logits, "tokens": tokens}

    model = convert(f)
    rng = rng_for("inputs/" + name)
    inputs = {"features": uniform(rng, -1, 1, (samples, 6, 8))}
    expects = [
        Expect("FULLY_CONNECTED", "keep_num_dims on 3-D input, with bias", keepNumDims=True,
               pred=lambda d: len(d["in_shapes"][0]) == 3 and len(d["inputs"]) > 2 and d["inputs"][2] >= 0),
        Expect("FULLY_CONNECTED", "2-D, bias, fused RELU", keepNumDims=False, fusedActivationFunction=ACT_RELU,
               pred=lambda d: len(d["inputs"]) > 2 and d["inputs"][2] >= 0),
        Expect("BATCH_MATMUL", "adj_x", adjX=True),
        Expect("RESHAPE"),
    ]
    return dict(model=model, inputs=inputs, expects=expects)


def fixture_elementwise_ops(name, samples):
    w = Weights(name)
    spec = [tf.TensorSpec([1, 4, 5, 6], tf.float32, name="a"),
            tf.TensorSpec([1, 1, 5, 6], tf.float32, name="b")]
    bias = w.normal(6, scale=0.5)

    @tf.function(input_signature=spec)
    def f(a, b):
        t0 = a + bias  # ADD broadcast with a constant [6]
        t1 = tf.nn.relu(t0 + b)  # ADD broadcast of two activations, fused RELU
        t2 = t1 - a  # SUB
        t3 = t2 * b  # MUL broadcast
        t4 = a / b  # DIV, b > 0
        t5 = tf.math.squared_difference(t3, t4)  # SQUARED_DIFFERENCE
        t6 = tf.math.rsqrt(t5 + 1.0)  # RSQRT of a positive value
        t7 = tf.math.sqrt(b)  # SQRT of a positive input
        t8 = tf.maximum(t6, t7)  # MAXIMUM (broadcast)
        t9 = tf.minimum(t8, t3)  # MINIMUM
        return {"out": t9, "ratio": t4}

    model = convert(f)
    rng = rng_for("inputs/" + name)
    inputs = {"a": uniform(rng, -2, 2, (samples, 4, 5, 6)),
              "b": uniform(rng, 0.5, 2, (samples, 1, 5, 6))}
    expects = [
        Expect("ADD", "broadcast", pred=diff_shapes),
        Expect("ADD", "fused RELU", fusedActivationFunction=ACT_RELU),
        Expect("SUB"), Expect("MUL", "broadcast", pred=diff_shapes), Expect("DIV"),
        Expect("SQUARED_DIFFERENCE"), Expect("RSQRT"), Expect("SQRT"),
        Expect("MAXIMUM"), Expect("MINIMUM"),
    ]
    return dict(model=model, inputs=inputs, expects=expects)


def fixture_reduce_ops(name, samples):
    spec = [tf.TensorSpec([1, 9, 9, 4], tf.float32, name="x")]

    @tf.function(input_signature=spec)
    def f(x):
        m_hw = tf.reduce_mean(x, [1, 2], keepdims=True)  # MEAN over H,W keep_dims -> 1x1x1x4
        centered = x - m_hw
        m_c = tf.reduce_mean(centered, [3], keepdims=False)  # MEAN over one axis -> 1x9x9
        s_w = tf.reduce_sum(x, [2], keepdims=True)  # SUM -> 1x9x1x4
        mx = tf.reduce_max(x, [1, 2])  # REDUCE_MAX -> 1x4
        ap_same = tf.nn.avg_pool2d(x, 3, 2, "SAME")  # 1x5x5x4
        ap_valid = tf.nn.avg_pool2d(x, 2, 2, "VALID")  # 1x4x4x4
        mp = tf.nn.max_pool2d(x, 3, 2, "SAME")  # odd 9x9, stride 2 -> 1x5x5x4
        return {"pool": ap_same + mp, "avg_valid": ap_valid, "mean_c": m_c, "sum_w": s_w, "max_hw": mx}

    model = convert(f)
    rng = rng_for("inputs/" + name)
    inputs = {"x": uniform(rng, -1, 1, (samples, 9, 9, 4))}
    expects = [
        Expect("MEAN", "keep_dims over H,W", keepDims=True, pred=lambda d: d["out_shapes"][0] == (1, 1, 1, 4)),
        Expect("MEAN", "no keep_dims over one axis", keepDims=False, pred=lambda d: d["out_shapes"][0] == (1, 9, 9)),
        Expect("SUM", keepDims=True), Expect("REDUCE_MAX", keepDims=False),
        Expect("AVERAGE_POOL_2D", "SAME", padding=SAME, strideH=2),
        Expect("AVERAGE_POOL_2D", "VALID", padding=VALID),
        Expect("MAX_POOL_2D", "SAME stride 2 on odd size", padding=SAME, strideH=2, strideW=2,
               pred=lambda d: d["in_shapes"][0][1] % 2 == 1),
        Expect("SUB", "broadcast", pred=diff_shapes),
    ]
    return dict(model=model, inputs=inputs, expects=expects)


def fixture_shape_ops(name, samples):
    w = Weights(name)
    spec = [tf.TensorSpec([1, 4, 6, 8], tf.float32, name="x"),
            tf.TensorSpec([1, 5], tf.int32, name="indices")]
    table = w.normal(10, 3, scale=1.0)

    @tf.function(input_signature=spec)
    def f(x, indices):
        emb = tf.gather(table, indices)  # GATHER on a constant table -> 1x5x3
        emb4 = tf.expand_dims(emb, 2, name="qdbg_expand_dims")  # -> 1x5x1x3 (EXPAND_DIMS)
        emb_out = tf.tanh(emb4)
        rows = tf.gather(x, [3, 0, 2], axis=1)  # GATHER on an activation along axis 1 -> 1x3x6x8
        cat1 = tf.concat([x, rows], axis=1)  # CONCATENATION axis 1 -> 1x7x6x8
        padded = tf.pad(cat1, [[0, 0], [1, 0], [0, 2], [0, 0]])  # PAD -> 1x8x8x8
        s2d = tf.nn.space_to_depth(padded, 2)  # -> 1x4x4x32
        lo, hi = tf.split(s2d, 2, axis=3)  # SPLIT -> 2 x 1x4x4x16
        cat2 = tf.concat([hi, tf.nn.relu(lo)], axis=-1)  # CONCATENATION axis -1 -> 1x4x4x32
        d2s = tf.nn.depth_to_space(x, 2)  # -> 1x8x12x2
        padv2 = tf.pad(d2s, [[0, 0], [1, 1], [0, 2], [0, 0]], constant_values=-1.5)  # PADV2 -> 1x10x14x2
        sl = tf.slice(x, [0, 1, 2, 0], [1, 2, 3, 5])  # SLICE -> 1x2x3x5
        ss = x[:, 1:, ::2, -1]  # STRIDED_SLICE: masks, stride 2, shrink, negative index -> 1x3x3
        ss_neg = x[:, -3:-1, 1::2, :5]  # STRIDED_SLICE with negative begin/end -> 1x2x3x5
        tr = tf.transpose(x, [0, 3, 1, 2])  # TRANSPOSE -> 1x8x4x6
        rs = tf.reshape(tr, [1, 8, 24])  # RESHAPE
        mx = tf.reduce_max(x, [2], keepdims=True)  # 1x4x1x8
        sq = tf.squeeze(mx, [2], name="qdbg_squeeze")  # -> 1x4x8 (SQUEEZE)
        sq_out = tf.sigmoid(sq)
        return {"emb": emb_out, "cat": cat2, "padv2": padv2, "slice": sl + ss_neg, "ss": ss,
                "rs": rs, "sq": sq_out}

    model = convert(f)
    mt = load_model_t(model)
    rewrite_reshape_to_squeeze(mt, "qdbg_squeeze")
    rewrite_reshape_to_expand_dims(mt, "qdbg_expand_dims")
    prune_unused(mt)
    rewritten = pack_model_t(mt)

    rng = rng_for("inputs/" + name)
    inputs = {"x": uniform(rng, -1, 1, (samples, 4, 6, 8)),
              "indices": rng.integers(0, 10, (samples, 5)).astype(np.int32)}

    def same_as_converter(model_bytes, inp):
        want, _ = run_litert(model, inp)
        got, _ = run_litert(model_bytes, inp)
        for ws, gs in zip(want, got):
            for a, b in zip(ws, gs):
                check(a.shape == b.shape and np.array_equal(a, b),
                      f"{name}: SQUEEZE/EXPAND_DIMS rewrite changed the outputs")

    def ss_pred(d):
        return d["opts"].get("shrinkAxisMask", 0) != 0 and d["opts"].get("beginMask", 0) != 0 \
            and d["opts"].get("endMask", 0) != 0

    expects = [
        Expect("GATHER", "constant table, int32 indices from a model input", axis=0,
               pred=lambda d: d["in_shapes"][0] == (10, 3)),
        Expect("GATHER", "activation along axis 1", axis=1),
        Expect("CONCATENATION", "axis 1", axis=1), Expect("CONCATENATION", "axis -1", axis=-1),
        Expect("PAD"), Expect("PADV2", "constant -1.5"), Expect("SPACE_TO_DEPTH", blockSize=2),
        Expect("DEPTH_TO_SPACE", blockSize=2), Expect("SPLIT", numSplits=2), Expect("SLICE"),
        Expect("STRIDED_SLICE", "begin/end masks, shrink, stride 2, index -1", pred=ss_pred),
        Expect("STRIDED_SLICE", "negative begin/end"),
        Expect("TRANSPOSE"), Expect("RESHAPE"),
        Expect("SQUEEZE", squeezeDims=[2]), Expect("EXPAND_DIMS"),
    ]
    return dict(model=rewritten, inputs=inputs, expects=expects, check=same_as_converter)


def fixture_resize_ops(name, samples):
    spec = [tf.TensorSpec([1, 5, 5, 3], tf.float32, name="x")]
    variants = [("ac", True, False), ("hp", False, True), ("plain", False, False)]

    @tf.function(input_signature=spec)
    def f(x):
        out = {}
        for tag, ac, hp in variants:
            out[f"bilinear_{tag}"] = tf.raw_ops.ResizeBilinear(
                images=x, size=[8, 8], align_corners=ac, half_pixel_centers=hp)
            out[f"nearest_{tag}"] = tf.raw_ops.ResizeNearestNeighbor(
                images=x, size=[8, 8], align_corners=ac, half_pixel_centers=hp)
        out["bilinear_down_hp"] = tf.raw_ops.ResizeBilinear(
            images=x, size=[3, 4], align_corners=False, half_pixel_centers=True)
        out["nearest_down_plain"] = tf.raw_ops.ResizeNearestNeighbor(
            images=x, size=[3, 4], align_corners=False, half_pixel_centers=False)
        return out

    model = convert(f)
    rng = rng_for("inputs/" + name)
    inputs = {"x": uniform(rng, -1, 1, (samples, 5, 5, 3))}
    expects = []
    for op in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        expects += [Expect(op, "align_corners", alignCorners=True, halfPixelCenters=False),
                    Expect(op, "half_pixel_centers", alignCorners=False, halfPixelCenters=True),
                    Expect(op, "neither", alignCorners=False, halfPixelCenters=False)]
    return dict(model=model, inputs=inputs, expects=expects)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def fixture_activation_ops(name, samples):
    w = Weights(name)
    spec = [tf.TensorSpec([1, 4, 4, 8], tf.float32, name="x")]
    alpha = tf.constant(np.abs(w.rng.standard_normal((1, 1, 8))).astype(np.float32) * np.float32(0.3))

    @tf.function(input_signature=spec)
    def f(x):
        relu = tf.nn.relu(x)
        relu6 = tf.nn.relu6(x)
        relu_n1 = tf.clip_by_value(x, -1.0, 1.0)  # -> RELU_N1_TO_1
        leaky = tf.nn.leaky_relu(x, alpha=0.2)
        hswish = x * tf.nn.relu6(x + 3.0) / 6.0  # -> HARD_SWISH
        logistic = tf.sigmoid(x)
        th = tf.tanh(x)
        prelu = tf.nn.relu(th) + (-alpha) * tf.nn.relu(-th)  # -> PRELU(th, alpha)
        gelu_tanh = tf.nn.gelu(x, approximate=True)  # -> GELU(approximate=True)
        # Converted as GELU(approximate=True), then flipped to approximate=False (see rewrite).
        gelu_exact = tf.nn.gelu(th * 3.0, approximate=True, name="qdbg_gelu_exact")
        softmax = tf.nn.softmax(x)  # beta 1
        # Converted with beta=1, then beta set to 2.0 (see rewrite).
        softmax_b = tf.nn.softmax(leaky, name="qdbg_softmax_beta")
        out = tf.concat([relu, relu6, relu_n1, leaky, hswish, logistic, th, prelu,
                         gelu_tanh, gelu_exact, softmax, softmax_b], axis=-1)
        return {"activations": out}

    model = convert(f)
    mt = load_model_t(model)
    find_one(mt, schema_fb.BuiltinOperator.GELU, "qdbg_gelu_exact").builtinOptions.approximate = False
    find_one(mt, schema_fb.BuiltinOperator.SOFTMAX, "qdbg_softmax_beta").builtinOptions.beta = 2.0
    rewritten = pack_model_t(mt)

    rng = rng_for("inputs/" + name)
    inputs = {"x": uniform(rng, -7, 7, (samples, 4, 4, 8))}

    def check_rewrites(model_bytes, inp):
        mt2 = load_model_t(model_bytes)
        g = find_one(mt2, schema_fb.BuiltinOperator.GELU, "qdbg_gelu_exact")
        sm = find_one(mt2, schema_fb.BuiltinOperator.SOFTMAX, "qdbg_softmax_beta")
        _, tensors = run_litert(model_bytes, inp, preserve=True)
        for t in tensors:
            x = t[int(g.inputs[0])].astype(np.float64)
            want = 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
            err = np.abs(t[int(g.outputs[0])] - want).max()
            check(err < 1e-4, f"{name}: exact GELU differs from erf reference by {err}")
            x = t[int(sm.inputs[0])].astype(np.float64)
            e = np.exp(2.0 * (x - x.max(-1, keepdims=True)))
            want = e / e.sum(-1, keepdims=True)
            err = np.abs(t[int(sm.outputs[0])] - want).max()
            check(err < 1e-5, f"{name}: SOFTMAX beta=2 differs from reference by {err}")

    expects = [
        Expect("RELU"), Expect("RELU6"), Expect("RELU_N1_TO_1"), Expect("LEAKY_RELU", alpha=0.2),
        Expect("HARD_SWISH"), Expect("LOGISTIC"), Expect("TANH"), Expect("PRELU"),
        Expect("GELU", "approximate", approximate=True), Expect("GELU", "exact", approximate=False),
        Expect("SOFTMAX", "beta 1", beta=1.0), Expect("SOFTMAX", "beta 2", beta=2.0),
        Expect("CONCATENATION", axis=-1),
    ]
    return dict(model=rewritten, inputs=inputs, expects=expects, check=check_rewrites)


def fixture_multi_io(name, samples):
    w = Weights(name)
    spec = [tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image"),
            tf.TensorSpec([1, 5], tf.float32, name="meta")]
    k1, b1 = w.normal(3, 3, 3, 4), w.normal(4, scale=0.1)
    k2, b2 = w.normal(1, 1, 4, 2), w.normal(2, scale=0.1)
    wm, bm = w.normal(5, 4), w.normal(4, scale=0.1)
    wo, bo = w.normal(8, 3), w.normal(3, scale=0.1)

    @tf.function(input_signature=spec)
    def f(image, meta):
        feat = tf.nn.relu(tf.nn.conv2d(image, k1, 2, "SAME") + b1)  # 1x4x4x4
        heat = tf.sigmoid(tf.nn.conv2d(feat, k2, 1, "VALID") + b2)  # 1x4x4x2
        pooled = tf.reduce_mean(feat, [1, 2])  # 1x4
        m = tf.nn.relu(tf.matmul(meta, wm) + bm)  # 1x4
        h = tf.concat([pooled, m], axis=-1)  # 1x8
        logits = tf.matmul(h, wo) + bo  # 1x3
        return {"heatmap": heat, "logits": logits}

    model = convert(f)
    rng = rng_for("inputs/" + name)
    inputs = {"image": uniform(rng, -1, 1, (samples, 8, 8, 3)),
              "meta": uniform(rng, -1, 1, (samples, 5))}
    expects = [Expect("CONV_2D"), Expect("LOGISTIC"), Expect("MEAN"), Expect("FULLY_CONNECTED"),
               Expect("CONCATENATION")]

    def two_outputs(model_bytes, inp):
        it = interpreter(model_bytes)
        check(len(it.get_input_details()) == 2 and len(it.get_output_details()) == 2,
              f"{name}: want 2 inputs and 2 outputs")

    return dict(model=model, inputs=inputs, expects=expects, check=two_outputs)


def fixture_f16_weights(name, samples):
    w = Weights(name)
    spec = [tf.TensorSpec([1, 12, 12, 3], tf.float32, name="image")]
    k1, b1 = w.normal(3, 3, 3, 8), w.normal(8, scale=0.1)
    kd, bd = w.normal(3, 3, 8, 1, scale=0.4), w.normal(8, scale=0.1)
    wf, bf = w.normal(8, 5), w.normal(5, scale=0.1)

    @tf.function(input_signature=spec)
    def f(image):
        c = tf.nn.relu6(tf.nn.conv2d(image, k1, 2, "SAME") + b1)  # 1x6x6x8
        d = tf.nn.relu(tf.nn.depthwise_conv2d(c, kd, [1, 1, 1, 1], "SAME") + bd)  # 1x6x6x8
        g = tf.reduce_mean(d, [1, 2])  # 1x8
        return {"logits": tf.matmul(g, wf) + bf}  # 1x5

    def fp16(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]

    model = convert(f, fp16)
    rng = rng_for("inputs/" + name)
    inputs = {"image": uniform(rng, -1, 1, (samples, 12, 12, 3))}

    def weights_are_f16(model_bytes, inp):
        mt = load_model_t(model_bytes)
        sub = mt.subgraphs[0]
        producer = {}
        for op in sub.operators:
            for o in op.outputs:
                producer[int(o)] = op
        for op in sub.operators:
            opname = OPNAMES[op_code(mt, op)]
            if opname not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                continue
            for slot in (1, 2):
                p = producer.get(int(op.inputs[slot]))
                check(p is not None and OPNAMES[op_code(mt, p)] == "DEQUANTIZE",
                      f"{name}: {opname} input {slot} is not produced by DEQUANTIZE")
                src = sub.tensors[int(p.inputs[0])]
                check(src.type == schema_fb.TensorType.FLOAT16 and mt.buffers[src.buffer].data is not None,
                      f"{name}: DEQUANTIZE source of {opname} input {slot} is not a FLOAT16 constant")

    expects = [Expect("DEQUANTIZE"), Expect("CONV_2D"), Expect("DEPTHWISE_CONV_2D"),
               Expect("FULLY_CONNECTED"), Expect("MEAN")]
    return dict(model=model, inputs=inputs, expects=expects, check=weights_are_f16)


QD_Q1 = (0.02, -3)  # input f32 -> int8, scale / zero point
QD_Q2 = (0.015, 10)  # int8 -> int8 requantize, scale / zero point


def fixture_quant_dequant(name, samples):
    spec = [tf.TensorSpec([1, 4, 4, 3], tf.float32, name="x")]

    @tf.function(input_signature=spec)
    def f(x):
        return {"y": tf.nn.relu(x)}

    base = load_model_t(convert(f))
    sub = base.subgraphs[0]
    in_t = sub.tensors[int(sub.inputs[0])]
    shape = np.array(in_t.shape, dtype=np.int32)

    model_t = schema_fb.ModelT()
    model_t.version = base.version
    model_t.description = b"qdbg quant_dequant fixture (hand-built)"
    model_t.buffers = [schema_fb.BufferT()]

    def tensor(tname, ttype, q=None):
        t = schema_fb.TensorT()
        t.shape = shape.copy()
        t.type = ttype
        buf = schema_fb.BufferT()
        model_t.buffers.append(buf)
        t.buffer = len(model_t.buffers) - 1
        t.name = tname
        if q is not None:
            qp = schema_fb.QuantizationParametersT()
            qp.scale = np.array([q[0]], dtype=np.float32)
            qp.zeroPoint = np.array([q[1]], dtype=np.int64)
            qp.quantizedDimension = 0
            t.quantization = qp
        return t

    tensors = [tensor(in_t.name, schema_fb.TensorType.FLOAT32),
               tensor(b"quantized", schema_fb.TensorType.INT8, QD_Q1),
               tensor(b"requantized", schema_fb.TensorType.INT8, QD_Q2),
               tensor(b"dequantized", schema_fb.TensorType.FLOAT32)]

    def opcode(builtin):
        c = schema_fb.OperatorCodeT()
        c.builtinCode = builtin
        c.deprecatedBuiltinCode = min(builtin, 127)
        c.version = 1
        return c

    model_t.operatorCodes = [opcode(schema_fb.BuiltinOperator.QUANTIZE),
                             opcode(schema_fb.BuiltinOperator.DEQUANTIZE)]
    model_t.operatorCodes[1].version = 2  # int8 DEQUANTIZE

    def operator(code, i, o):
        op = schema_fb.OperatorT()
        op.opcodeIndex = code
        op.inputs = np.array([i], dtype=np.int32)
        op.outputs = np.array([o], dtype=np.int32)
        if code == 0:
            op.builtinOptionsType = schema_fb.BuiltinOptions.QuantizeOptions
            op.builtinOptions = schema_fb.QuantizeOptionsT()
        else:
            op.builtinOptionsType = schema_fb.BuiltinOptions.DequantizeOptions
            op.builtinOptions = schema_fb.DequantizeOptionsT()
        return op

    g = schema_fb.SubGraphT()
    g.name = b"main"
    g.tensors = tensors
    g.inputs = np.array([0], dtype=np.int32)
    g.outputs = np.array([3], dtype=np.int32)
    g.operators = [operator(0, 0, 1), operator(0, 1, 2), operator(1, 2, 3)]
    model_t.subgraphs = [g]
    model = pack_model_t(model_t)

    rng = rng_for("inputs/" + name)
    # Slightly past the int8 range of the first QUANTIZE ([-2.5, 2.6]) so clamping is exercised.
    inputs = {in_t.name.decode(): uniform(rng, -2.8, 2.8, (samples, 4, 4, 3))}

    def reference(model_bytes, inp):
        outs, tensors = run_litert(model_bytes, inp, preserve=True)
        x = next(iter(inp.values()))
        for i, (out, t) in enumerate(zip(outs, tensors)):
            xi = x[i:i + 1].astype(np.float32)
            q1 = np.clip(np.round(xi / np.float32(QD_Q1[0])) + QD_Q1[1], -128, 127)
            real = (q1 - QD_Q1[1]) * QD_Q1[0]
            q2 = np.clip(np.round(real / QD_Q2[0]) + QD_Q2[1], -128, 127)
            want = ((q2 - QD_Q2[1]) * QD_Q2[0]).astype(np.float32)
            check(np.abs(t[1] - q1).max() <= 1, f"{name}: QUANTIZE result off by more than one step")
            check(np.abs(t[2] - q2).max() <= 1, f"{name}: requantize result off by more than one step")
            check(np.abs(out[0] - want).max() <= QD_Q2[0] * 1.01,
                  f"{name}: DEQUANTIZE output differs from reference by more than one step")

    expects = [Expect("QUANTIZE"), Expect("DEQUANTIZE"),
               Expect("QUANTIZE", "int8 -> int8 requantize",
                       pred=lambda d: d["inputs"] == [1] and d["outputs"] == [2])]
    return dict(model=model, inputs=inputs, expects=expects, check=reference)


def fixture_unsupported_op(name, samples):
    """A model with an op qdbg has no kernel for (FLOOR), for the error-message tests."""
    spec = [tf.TensorSpec([1, 4], tf.float32, name="x")]

    @tf.function(input_signature=spec)
    def f(x):
        return {"y": tf.math.floor(x * 3.0) + 1.0}

    model = convert(f)
    rng = rng_for("inputs/" + name)
    inputs = {"x": uniform(rng, -2, 2, (samples, 4))}
    return dict(model=model, inputs=inputs, expects=[Expect("FLOOR")])


def fixture_pow_ops(name, samples):
    """POW, which LiteRT computes with C's pow: a cube of data of both signs (a negative base
    keeps its sign, where exp(y ln x) would give NaN), integral exponents broadcast over
    negative bases, fractional exponents (an input broadcast, a scalar) over positive data."""
    spec = [tf.TensorSpec([1, 4, 6], tf.float32, name="x"),
            tf.TensorSpec([1, 4, 6], tf.float32, name="y"),
            tf.TensorSpec([1, 1, 6], tf.float32, name="e")]
    integral = tf.constant([0.0, 1.0, 3.0, 4.0, 5.0, -1.0])

    @tf.function(input_signature=spec)
    def f(x, y, e):
        return {"cube": tf.pow(x, 3.0),  # POW, scalar exponent, bases of both signs
                "integral": tf.pow(x, integral),  # POW, constant [6] exponent broadcast
                "fractional": tf.pow(y, e),  # POW, exponent input [1, 1, 6] broadcast, y > 0
                "scalar_fractional": tf.pow(y, 1.7)}  # (y ** 0.5 would convert to SQRT)

    model = convert(f)
    rng = rng_for("inputs/" + name)
    # |x| >= 0.25 keeps x ** -1 within a range the float oracle's tolerance reads well.
    x = uniform(rng, 0.25, 2, (samples, 1, 4, 6)) * rng.choice([-1.0, 1.0], (samples, 1, 4, 6))
    inputs = {"x": x.astype(np.float32),
              "y": uniform(rng, 0.1, 3, (samples, 1, 4, 6)),
              "e": uniform(rng, -1.5, 2.5, (samples, 1, 1, 6))}

    def signed_powers(model_bytes, inp):
        # LiteRT against numpy's float32 power, so the fixture pins the semantics qdbg must
        # match: a negative base cubed stays negative, never NaN.
        outs, _ = run_litert(model_bytes, inp)
        xs = next(v for k, v in inp.items() if k.split("serving_default_")[-1].split(":")[0] == "x")
        check((xs < 0).any() and (xs > 0).any(), f"{name}: x needs both signs")
        for s, sample in enumerate(outs):
            want = np.power(xs[s], np.float32(3.0))
            check(any(o.size == want.size and np.allclose(o.reshape(want.shape), want, rtol=1e-6)
                      for o in sample), f"{name}: no LiteRT output is x ** 3")

    expects = [Expect("POW", "scalar exponent", pred=diff_shapes),
               Expect("POW", "exponent input broadcast", pred=diff_shapes)]
    return dict(model=model, inputs=inputs, expects=expects, check=signed_powers)


def fixture_repair_outliers(name, samples):
    """A model whose int8 error comes from a handful of outliers in its input: image-like
    samples in [-1, 1] with 8 pixels (of 307,200) at +-40, which the model's first op clips
    to [-1, 1] anyway. Min/max calibration spreads the input's 256 steps over [-40, 40], so
    the useful values get about 13 steps; a percentile range (issue 18's integer-only remedy)
    gives them all 256 and changes nothing the clip does not already cut."""
    w = Weights(name)
    spec = [tf.TensorSpec([1, 32, 32, 3], tf.float32, name="image")]
    k1, b1 = w.normal(3, 3, 3, 8), w.normal(8, scale=0.1)
    k2, b2 = w.normal(3, 3, 8, 16), w.normal(16, scale=0.1)
    wo, bo = w.normal(16, 10), w.normal(10, scale=0.1)

    @tf.function(input_signature=spec)
    def f(image):
        x = tf.clip_by_value(image, -1.0, 1.0)
        h = tf.nn.relu(tf.nn.conv2d(x, k1, 2, "SAME") + b1)  # 1x16x16x8
        h = tf.nn.relu(tf.nn.conv2d(h, k2, 2, "SAME") + b2)  # 1x8x8x16
        pooled = tf.reduce_mean(h, [1, 2])  # 1x16
        return {"logits": tf.matmul(pooled, wo) + bo}

    model = convert(f)
    rng = rng_for("inputs/" + name)
    images = smooth_images(rng, samples, size=32)
    flat = images.reshape(-1)
    spikes = rng.choice(flat.size, 8, replace=False)
    flat[spikes] = np.where(np.arange(8) % 2 == 0, 40.0, -40.0).astype(np.float32)
    expects = [Expect("CONV_2D"), Expect("MEAN"), Expect("FULLY_CONNECTED")]
    return dict(model=model, inputs={"image": flat.reshape(images.shape)}, expects=expects)


def describe_int8_ops(model_bytes):
    return [d["op_name"] for d in interpreter(model_bytes)._get_ops_details()]


def smooth_images(rng, n, size=224):
    """Image-like inputs in [-1, 1]: upsampled low-frequency noise plus a little pixel noise."""
    low = rng.uniform(-1, 1, (n, 7, 7, 3)).astype(np.float32)
    up = tf.image.resize(low, [size, size], method="bicubic").numpy()
    img = 0.8 * up + 0.2 * rng.uniform(-1, 1, (n, size, size, 3))
    return np.clip(img, -1, 1).astype(np.float32)


def fixture_mobilenet_v3_small(name, samples):
    keras.utils.set_random_seed(SEED)
    model = keras.applications.MobileNetV3Small(
        input_shape=(224, 224, 3), weights=None, classes=10, include_preprocessing=False)
    # With weights=None every BatchNormalization has moving mean 0 / variance 1, so it is
    # almost the identity, and the random-init activations shrink to ~1e-10 by the logits
    # (softmax output exactly uniform).  Re-estimate the BN moving statistics from one
    # calibration batch: momentum 0 + one training-mode pass sets each BN's moving stats to
    # the batch statistics of its input (upstream BNs already normalise with those same
    # stats), so in inference every BN output is ~zero-mean / unit-variance.
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    check(bns, f"{name}: no BatchNormalization layers found")
    for layer in bns:
        layer.momentum = 0.0
    calib = smooth_images(rng_for("calib/" + name), 8)
    model(calib, training=True)

    spec = [tf.TensorSpec([1, 224, 224, 3], tf.float32, name="image")]

    @tf.function(input_signature=spec)
    def f(image):
        return {"probs": model(image, training=False)}

    tfl = convert(f)
    inputs = {"image": smooth_images(rng_for("inputs/" + name), samples)}

    def sane(model_bytes, inp):
        outs, _ = run_litert(model_bytes, inp)
        probs = np.concatenate([o[0] for o in outs])
        check(np.isfinite(probs).all(), f"{name}: non-finite output")
        check(probs.std(axis=1).min() > 1e-3, f"{name}: output is (nearly) constant: {probs}")
        check(np.abs(probs[0] - probs[1]).max() > 1e-4, f"{name}: both samples give the same output")
        keras_probs = model(inp["image"], training=False).numpy()
        err = np.abs(keras_probs - probs).max()
        check(err < 1e-3, f"{name}: LiteRT and Keras outputs differ by {err}")
        print(f"  {name}: probs sample0={np.round(probs[0], 3).tolist()} (keras max diff {err:.2e})")

    expects = [Expect(op) for op in ("HARD_SWISH", "MEAN", "CONV_2D", "DEPTHWISE_CONV_2D", "MUL", "ADD")]
    return dict(model=tfl, inputs=inputs, expects=expects, check=sane)


FIXTURES = [
    ("conv_ops", fixture_conv_ops, 3),
    ("dense_ops", fixture_dense_ops, 3),
    ("elementwise_ops", fixture_elementwise_ops, 3),
    ("reduce_ops", fixture_reduce_ops, 3),
    ("shape_ops", fixture_shape_ops, 3),
    ("resize_ops", fixture_resize_ops, 3),
    ("activation_ops", fixture_activation_ops, 3),
    ("multi_io", fixture_multi_io, 3),
    ("f16_weights", fixture_f16_weights, 3),
    ("quant_dequant", fixture_quant_dequant, 3),
    ("mobilenet_v3_small", fixture_mobilenet_v3_small, 2),
    ("unsupported_op", fixture_unsupported_op, 2),
    ("pow_ops", fixture_pow_ops, 3),
    ("repair_outliers", fixture_repair_outliers, 100),
]

# Every op the fixture set as a whole must contain.
REQUIRED_OPS = """
CONV_2D DEPTHWISE_CONV_2D TRANSPOSE_CONV FULLY_CONNECTED BATCH_MATMUL ADD SUB MUL DIV
SQUARED_DIFFERENCE RSQRT SQRT MAXIMUM MINIMUM MEAN SUM REDUCE_MAX AVERAGE_POOL_2D MAX_POOL_2D
RESHAPE SQUEEZE EXPAND_DIMS TRANSPOSE CONCATENATION SPLIT SLICE STRIDED_SLICE GATHER PAD PADV2
RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR DEPTH_TO_SPACE SPACE_TO_DEPTH SOFTMAX LOGISTIC TANH RELU
RELU6 RELU_N1_TO_1 LEAKY_RELU PRELU HARD_SWISH GELU QUANTIZE DEQUANTIZE POW
""".split()


# Fixtures that also get a TensorFlow full-int8 twin, `NAME.int8.tflite`, made by the
# converter with the fixture's own inputs as the representative dataset: the reference for
# qdbg's calibration and quantizer, and a model "quantized elsewhere" to run.
INT8_FIXTURES = ["conv_ops", "dense_ops", "elementwise_ops", "reduce_ops", "resize_ops",
                 "activation_ops", "multi_io", "mobilenet_v3_small"]


def representative_dataset(fn, inputs):
    """A callable yielding every sample of `inputs` (a dict keyed by the function's argument
    names) as a list of batch-1 arrays in signature order: the converter's representative
    dataset, and the QuantizationDebugger's debug dataset."""
    names = [spec.name for spec in fn.input_signature]
    count = len(next(iter(inputs.values())))

    def representative():
        for i in range(count):
            yield [inputs[n][i:i + 1] for n in names]

    return representative


def int8_converter(fn, inputs):
    """A converter set up for TensorFlow's full-integer quantization of `fn` (float I/O, the
    converter's default), calibrated on every sample of `inputs`."""
    concrete = fn.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(fn, inputs)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def full_int8(fn, inputs):
    """TensorFlow's full-integer quantization of `fn` (float I/O, the converter's default),
    calibrated on every sample of `inputs` (a dict keyed by the function's argument names)."""
    return bytes(int8_converter(fn, inputs).convert())


# ---------------------------------------------------------------------------
# TensorFlow's QuantizationDebugger as an oracle (NAME.tf_debug*.csv / .json)
# ---------------------------------------------------------------------------

# model_debug_metrics for `model_statistics`: mean squared error between the float model's
# and the quantized debug model's outputs, averaged over outputs (per-output means, so
# outputs of different shapes combine), then (by TF) over samples.
TF_MODEL_DEBUG_METRICS = {
    "mse": lambda f, q: float(np.mean([np.mean((a - b) ** 2) for a, b in zip(f, q)])),
}


def tf_layer_statistics_csv(debugger):
    """`layer_statistics_dump` output, byte for byte (csv module: CRLF line ends)."""
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    return buf.getvalue()


def _json_clean(x):
    if isinstance(x, dict):
        return {str(k): _json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_clean(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.ndarray):
        return _json_clean(x.tolist())
    return x


def _tensor_map(model_bytes):
    """(model_t, subgraph, {tensor name: idx}, {output tensor idx: op name})."""
    mt = load_model_t(model_bytes)
    sub = mt.subgraphs[0]
    by_name = {}
    for i in range(len(sub.tensors)):
        by_name.setdefault(tensor_name(sub, i), i)
    producer = {}
    for op in sub.operators:
        for o in op.outputs:
            producer[int(o)] = OPNAMES.get(op_code(mt, op), "?")
    return mt, sub, by_name, producer


def _quant_params(sub, idx):
    q = sub.tensors[idx].quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    return float(np.float32(q.scale[0])), int(q.zeroPoint[0])


def _quantized_ops_by_type(model_bytes):
    """{op name: [first output tensor idx of each op whose output is quantized]}, model order."""
    mt = load_model_t(model_bytes)
    sub = mt.subgraphs[0]
    out = {}
    for op in sub.operators:
        if len(op.outputs) and _quant_params(sub, int(op.outputs[0])) is not None:
            out.setdefault(OPNAMES.get(op_code(mt, op), "?"), []).append(int(op.outputs[0]))
    return out


def _numeric_verify_stats(debug_model, rep, litert_builtin):
    """Re-run the debug model and compute TF's five default metrics per NumericVerify output
    (per sample, then NaN-skipping mean), keyed by the quantized tensor index.  With
    litert_builtin=False this is TF's own interpreter set-up (tf.lite.Interpreter, default
    resolver, so XNNPACK runs the ops it takes, float and int8); True: LiteRT with
    BUILTIN_WITHOUT_DEFAULT_DELEGATES and one thread (no XNNPACK), the runtime the project's
    kernel oracles use."""
    if litert_builtin:
        it = Interpreter(model_content=debug_model,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                         num_threads=1)
    else:
        it = tf.lite.Interpreter(model_content=debug_model)
    verify = [op for op in it._get_ops_details() if op["op_name"] == "NumericVerify"]
    per = {}
    first = True
    for sample in rep():
        details = it.get_input_details()
        if first:
            for d, t in zip(details, sample):
                it.resize_tensor_input(d["index"], t.shape)
            it.allocate_tensors()
            first = False
        for d, t in zip(details, sample):
            it.set_tensor(d["index"], t)
        it.invoke()
        for op in verify:
            diff = it.get_tensor(op["outputs"][0])
            m = per.setdefault(int(op["inputs"][0]), {k: [] for k in
                                                      ("num_elements", "stddev", "mean_error",
                                                       "max_abs_error", "mean_squared_error")})
            m["num_elements"].append(diff.size)
            m["stddev"].append(np.std(diff))
            m["mean_error"].append(np.average(diff))
            m["max_abs_error"].append(np.max(np.abs(diff)))
            m["mean_squared_error"].append(np.average(diff ** 2))
    return {k: {n: np.nanmean(v) for n, v in m.items()} for k, m in per.items()}


def _describe_rows(csv_text, debug_model, float_model, int8_model, rep):
    """Per CSV row: where its tensors are in the debug, float and int8 models."""
    import csv
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    _, dsub, _, dprod = _tensor_map(debug_model)
    _, fsub, fby_name, fprod = _tensor_map(float_model)
    _, isub, _, _ = _tensor_map(int8_model)
    dmt = load_model_t(debug_model)
    verify_of = {}  # quantized tensor idx -> (NumericVerify output idx, float reference idx)
    for op in dsub.operators:
        code = dmt.operatorCodes[op.opcodeIndex]
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        if custom == "NumericVerify":
            verify_of[int(op.inputs[0])] = (int(op.outputs[0]), int(op.inputs[1]))
    dq = _quantized_ops_by_type(debug_model)
    iq = _quantized_ops_by_type(int8_model)
    tf_stats = _numeric_verify_stats(debug_model, rep, litert_builtin=False)
    ref_stats = _numeric_verify_stats(debug_model, rep, litert_builtin=True)
    metrics = ("num_elements", "stddev", "mean_error", "max_abs_error", "mean_squared_error")
    out = []
    for row in rows:
        idx = int(row["tensor_idx"])
        nv_idx, ref_idx = verify_of[idx]
        d = dict(op_name=row["op_name"], tensor_idx=idx, tensor_name=row["tensor_name"],
                 debug_quant_tensor_name=tensor_name(dsub, idx),
                 debug_numeric_verify_tensor=nv_idx,
                 debug_numeric_verify_name=tensor_name(dsub, nv_idx),
                 debug_float_ref_tensor=ref_idx,
                 debug_float_ref_name=tensor_name(dsub, ref_idx),
                 debug_float_ref_op=dprod.get(ref_idx))
        # The float model (the fixture's NAME.tflite) tensor of the same name.
        fidx = fby_name.get(row["tensor_name"])
        d["float_tensor_idx"] = fidx
        d["float_tensor_op"] = fprod.get(fidx) if fidx is not None else None
        # The final int8 model (NAME.int8.tflite): the k-th quantized op of the same type.
        k = dq.get(row["op_name"], []).index(idx)
        cands = iq.get(row["op_name"], [])
        iidx = cands[k] if len(cands) == len(dq[row["op_name"]]) else None
        d["int8_tensor_idx"] = iidx
        d["int8_tensor_name"] = tensor_name(isub, iidx) if iidx is not None else None
        d["int8_same_shape_and_quant"] = (
            iidx is not None
            and list(isub.tensors[iidx].shape) == list(dsub.tensors[idx].shape)
            and _quant_params(isub, iidx) == _quant_params(dsub, idx)
            and int(isub.tensors[iidx].type) == int(dsub.tensors[idx].type))
        csv_vals = {m: float(row[m]) for m in metrics}
        recomputed = {m: float(tf_stats[idx][m]) for m in metrics}
        d["recomputed_equals_csv"] = all(
            np.float32(recomputed[m]) == np.float32(csv_vals[m]) or
            (math.isnan(recomputed[m]) and math.isnan(csv_vals[m])) for m in metrics)
        d["stats_litert_builtin"] = {m: float(ref_stats[idx][m]) for m in metrics}
        d["litert_builtin_equals_csv"] = all(
            np.float32(ref_stats[idx][m]) == np.float32(csv_vals[m]) for m in metrics)
        out.append(d)
    return out


def _output_names(model_bytes):
    it = tf.lite.Interpreter(model_content=model_bytes)
    return [d["name"] for d in it.get_output_details()]


def tf_debug(fn, inputs, float_model, int8_model):
    """Run TensorFlow's QuantizationDebugger on `fn`, calibrated (exactly as `full_int8`) and
    debugged on `inputs`.  Returns (per-layer CSV, whole-model CSV, cross-check dict)."""
    rep = representative_dataset(fn, inputs)
    options = tf.lite.experimental.QuantizationDebugOptions(model_debug_metrics=TF_MODEL_DEBUG_METRICS)
    # With model_debug_metrics the debugger first converts the float model (optimizations
    # cleared), then calibrates only (_experimental_calibrate_only) and quantizes the
    # calibrated model with NumericVerify ops (mlir_quantize(enable_numeric_verify=True)).
    dbg = tf.lite.experimental.QuantizationDebugger(
        converter=int8_converter(fn, inputs), debug_dataset=rep, debug_options=options)
    dbg.run()
    per_layer_csv = tf_layer_statistics_csv(dbg)
    nondebug = dbg.get_nondebug_quantized_model()

    # TF 2.21's QuantizationDebugOptions has no enable_whole_model_verify; the option only
    # exists on the quantizer, convert.mlir_quantize.  Quantize the debugger's own calibrated
    # model with it and hand the result to the debugger as a debug model.
    try:
        tf.lite.experimental.QuantizationDebugOptions(enable_whole_model_verify=True)
        option_note = "accepted"
    except TypeError as e:
        option_note = f"TypeError: {e}"
    whole_model = tf_convert.mlir_quantize(
        dbg.calibrated_model,
        disable_per_channel=dbg.converter._experimental_disable_per_channel,
        fully_quantize=options.fully_quantize,
        enable_numeric_verify=True,
        enable_whole_model_verify=True)
    wdbg = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=whole_model, float_model_content=dbg.float_model,
        debug_dataset=rep, debug_options=options)
    wdbg.run()
    whole_csv = tf_layer_statistics_csv(wdbg)

    def same_model(a, b):
        """Same tensors (name, type, shape, quantization), ops, and buffers; metadata order aside."""
        ma, mb = load_model_t(a), load_model_t(b)
        sa, sb = ma.subgraphs[0], mb.subgraphs[0]
        if len(sa.tensors) != len(sb.tensors) or len(sa.operators) != len(sb.operators):
            return False
        for i in range(len(sa.tensors)):
            ta, tb = sa.tensors[i], sb.tensors[i]
            if (tensor_name(sa, i), int(ta.type), list(ta.shape), _quant_params(sa, i)) != \
                    (tensor_name(sb, i), int(tb.type), list(tb.shape), _quant_params(sb, i)):
                return False
            da, db = ma.buffers[ta.buffer].data, mb.buffers[tb.buffer].data
            if (da is None) != (db is None) or (da is not None and bytes(da) != bytes(db)):
                return False
        return all(op_code(ma, x) == op_code(mb, y) and list(x.inputs) == list(y.inputs)
                   and list(x.outputs) == list(y.outputs)
                   for x, y in zip(sa.operators, sb.operators))

    def mode(debugger, csv_text, debug_model):
        rows = _describe_rows(csv_text, debug_model, float_model, int8_model, rep)
        ops = Counter(op["op_name"] for op in tf.lite.Interpreter(
            model_content=debug_model)._get_ops_details())
        with_row = {r["int8_tensor_idx"] for r in rows}
        _, isub, _, iprod = _tensor_map(int8_model)
        no_row = [f"{iprod[int(op.outputs[0])]} {tensor_name(isub, int(op.outputs[0]))}"
                  for op in isub.operators if int(op.outputs[0]) not in with_row]
        return dict(
            model_statistics=debugger.model_statistics,
            debug_model_ops=dict(sorted(ops.items())),
            rows=len(rows),
            rows_matching_float_tensor_name=sum(r["float_tensor_idx"] is not None for r in rows),
            rows_matching_float_tensor_name_and_op=sum(r["float_tensor_op"] == r["op_name"] for r in rows),
            rows_mapped_to_int8_model=sum(bool(r["int8_same_shape_and_quant"]) for r in rows),
            rows_recomputed_equal_to_csv=sum(bool(r["recomputed_equals_csv"]) for r in rows),
            rows_litert_builtin_equal_to_csv=sum(bool(r["litert_builtin_equals_csv"]) for r in rows),
            int8_ops_without_row=no_row,
            quant_model_outputs=_output_names(debug_model),
            row_details=rows)

    info = dict(
        tensorflow=tf.__version__,
        float_model_outputs=_output_names(float_model),
        debugger_float_model_equals_fixture=bytes(dbg.float_model) == bytes(float_model),
        debugger_float_model_outputs=_output_names(dbg.float_model),
        nondebug_quantized_equals_int8_fixture=same_model(nondebug, int8_model),
        whole_model_verify_option=option_note,
        per_layer=mode(dbg, per_layer_csv, dbg.quant_model),
        whole_model=mode(wdbg, whole_csv, whole_model),
    )
    return per_layer_csv, whole_csv, _json_clean(info)


def write_tf_debug(out_dir, name, fn, inputs, float_model, int8_model):
    """NAME.tf_debug.csv, NAME.tf_debug_whole.csv, NAME.tf_debug.json (see tests/fixtures/README.md).
    A fixture the debugger fails on is reported and skipped (its old files are removed)."""
    paths = [os.path.join(out_dir, name + ext)
             for ext in (".tf_debug.csv", ".tf_debug_whole.csv", ".tf_debug.json")]
    try:
        per_layer, whole, info = tf_debug(fn, inputs, float_model, int8_model)
    except Exception as e:  # noqa: BLE001 -- any debugger failure: report, skip this fixture
        msg = " | ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"  {name}: TF QuantizationDebugger FAILED, no tf_debug files: {type(e).__name__}: {msg}")
        for p in paths:
            if os.path.exists(p):
                os.remove(p)
        return
    write_bytes(paths[0], per_layer.encode())
    write_bytes(paths[1], whole.encode())
    write_bytes(paths[2], (json.dumps(info, indent=1, allow_nan=False) + "\n").encode())
    for mode in ("per_layer", "whole_model"):
        m = info[mode]
        print(f"  {name}.tf_debug ({mode}): {m['rows']} rows, {m['rows_matching_float_tensor_name']} "
              f"match a float tensor name, {m['rows_mapped_to_int8_model']} mapped to the int8 model, "
              f"model_statistics {m['model_statistics']}")


def finalize_inputs(name, model_bytes, inputs):
    """Key the inputs by TFLite input tensor name; check shapes and dtypes against the model."""
    it = interpreter(model_bytes)
    out = {}
    details = it.get_input_details()
    check(len(details) == len(inputs), f"{name}: model has {len(details)} inputs, fixture {len(inputs)}")
    for d in details:
        tname = d["name"]
        check(tname in inputs, f"{name}: TFLite input {tname!r} not among {sorted(inputs)}")
        arr = inputs[tname]
        check(arr.dtype == d["dtype"], f"{name}: input {tname} dtype {arr.dtype} != model {d['dtype']}")
        check(int(np.prod(arr.shape[1:])) == int(np.prod(d["shape"])),
              f"{name}: input {tname} sample shape {arr.shape[1:]} does not fit {d['shape'].tolist()}")
        out[tname] = arr
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "fixtures"))
    ap.add_argument("--only", nargs="*", help="generate only these fixtures (skips the coverage check)")
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()

    table = []
    seen = Counter()
    for name, fn, samples in FIXTURES:
        if args.only and name not in args.only:
            continue
        print(f"[fixture] {name}", flush=True)
        keras.utils.set_random_seed(SEED)
        CONVERTED_FNS.clear()
        spec = fn(name, samples)
        model, expects = spec["model"], spec["expects"]
        op_names = verify_ops(name, model, expects)
        inputs = finalize_inputs(name, model, spec["inputs"])
        outs, _ = run_litert(model, inputs)
        for sample in outs:
            for o in sample:
                check(np.issubdtype(o.dtype, np.floating) and np.isfinite(o).all(),
                      f"{name}: LiteRT output is not finite")
        if spec.get("check"):
            spec["check"](model, inputs)
        write_bytes(os.path.join(out_dir, name + ".tflite"), model)
        if name in INT8_FIXTURES:
            int8 = full_int8(CONVERTED_FNS[0], inputs)
            run_litert(int8, inputs)  # LiteRT must run it
            write_bytes(os.path.join(out_dir, name + ".int8.tflite"), int8)
            print(f"  {name}.int8.tflite: {len(int8)} bytes, ops {sorted(set(describe_int8_ops(int8)))}")
            write_tf_debug(out_dir, name, CONVERTED_FNS[0], inputs, model, int8)
        write_npz(os.path.join(out_dir, name + ".inputs.npz"), inputs)
        seen.update(set(op_names))
        it = interpreter(model)
        ins = ", ".join(f"{d['name']}:{d['dtype'].__name__}{d['shape'].tolist()}" for d in it.get_input_details())
        outs_desc = ", ".join(f"{d['name']}{d['shape'].tolist()}" for d in it.get_output_details())
        counts = Counter(op_names)
        table.append((name, len(model), ins, outs_desc,
                      " ".join(f"{k}x{v}" if v > 1 else k for k, v in sorted(counts.items()))))

    print()
    print(f"{'fixture':<20} {'bytes':>8}  inputs -> outputs / ops")
    for name, size, ins, outs_desc, ops in table:
        print(f"{name:<20} {size:>8}  {ins} -> {outs_desc}")
        print(f"{'':<30}{ops}")
    if not args.only:
        missing = [op for op in REQUIRED_OPS if op not in seen]
        check(not missing, f"ops missing from every fixture: {missing}")
        print(f"\nall {len(REQUIRED_OPS)} required ops present; fixtures written to {out_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FixtureError as e:
        print(f"make_fixtures: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
