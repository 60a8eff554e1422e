#!/usr/bin/env python3
"""LiteRT oracle vectors for qdbg's 16x8 kernels (int16 activations, int8 weights,
int64 bias): tests/int16_kernels.rs.

Pinned environment (the fixture venv, $HOME/.cache/qdbg/fixture-venv, made by
scripts/fixtures/venv.sh): tensorflow-cpu 2.21.0, ai-edge-litert 2.3.0, numpy 2.4.6.

usage: $HOME/.cache/qdbg/fixture-venv/bin/python scripts/kernel_vectors/make_int16_vectors.py [CASE...]

Most cases are a tiny tf.function holding one op of interest, converted by TensorFlow's
converter in 16x8 mode (EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
float I/O, so the graph is QUANTIZE -> op -> DEQUANTIZE). Some cases then rewrite the
converted flatbuffer (`rewrite`): power-of-two scales with ADD/SUB's pot_scale_int16
option set, to reach LiteRT's other int16 ADD/SUB path. The int8 <-> int16
requantizations (QUANTIZE between integer types), which the converter never emits in a
whole-model 16x8 file, are single-op models written directly as flatbuffers.

Each model runs once in LiteRT with its builtin kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES,
no XNNPACK, one thread, experimental_preserve_all_tensors=True); every input tensor of
the op of interest, its quantization, the op's options (read back from the flatbuffer)
and LiteRT's output are written to tests/fixtures/kernels/int16_<case>.npz:

  op                   the builtin op name, as uint8 ASCII codes
  in0, in1, ...        the op's inputs in order, in their own dtype (int16 activations,
                       int8 filters, int64 biases, int32 shapes / axes / paddings);
                       an absent optional input (no bias) is stored as an empty int64 array
  in<k>_scales         float32 [n] (absent for unquantized inputs); in<k>_zps int64 [n];
  in<k>_qdim           int32, the per-channel axis
  out                  LiteRT's output (int16, or int8 for int16 -> int8 QUANTIZE)
  out_scale, out_zp    float32 / int64 scalars
  opt_<field>          every scalar field of the op's builtin options (int32 or float32),
                       named as the flatbuffer's object API names them, e.g.
                       opt_fusedActivationFunction, opt_strideH, opt_potScaleInt16

Deterministic: fixed seeds and archives with fixed timestamps, so reruns are
byte-identical.
"""

import importlib.metadata
import os
import sys
import zipfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import flatbuffers  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema_fb  # noqa: E402

PINS = {"tensorflow-cpu": "2.21.0", "ai-edge-litert": "2.3.0", "numpy": "2.4.6"}
SEED = 20261207
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "tests", "fixtures", "kernels")
OPNAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}
TFL_TYPE = {np.int8: schema_fb.TensorType.INT8, np.int16: schema_fb.TensorType.INT16}


def rng_for(name, salt):
    return np.random.default_rng([SEED, zlib.crc32(name.encode()), salt])


def check(cond, msg):
    if not cond:
        raise RuntimeError(msg)


def normal(mean, std):
    return lambda rng, shape: rng.normal(mean, std, size=shape)


def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, size=shape)


class Case:
    """One op of interest: `fn` maps float inputs (shapes `shapes`, drawn by `gen`) to
    the output. `rewrite(model_t, op_t)` may edit the converted model before it runs."""

    def __init__(self, name, op, shapes, fn, gen, rewrite=None, per_tensor=False,
                 test_gain=1.15):
        self.name, self.op, self.shapes, self.fn, self.gen = name, op, shapes, fn, gen
        self.rewrite, self.per_tensor, self.test_gain = rewrite, per_tensor, test_gain

    def sample(self, rng, gain=1.0):
        return [(self.gen[i](rng, s) * gain).astype(np.float32)
                for i, s in enumerate(self.shapes)]


def convert(case):
    sig = [tf.TensorSpec(s, tf.float32) for s in case.shapes]
    fn = tf.function(case.fn, input_signature=sig)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    calib = rng_for(case.name, 1)

    def representative():
        for _ in range(32):
            yield case.sample(calib)

    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if case.per_tensor:
        conv._experimental_disable_per_channel = True
    return bytes(conv.convert())


def op_code(m, op):
    c = m.operatorCodes[op.opcodeIndex]
    return OPNAMES[max(c.builtinCode, c.deprecatedBuiltinCode)]


def the_op(m, name):
    ops = [(i, op) for i, op in enumerate(m.subgraphs[0].operators) if op_code(m, op) == name]
    check(len(ops) == 1, f"expected one {name}, model has "
          f"{[op_code(m, op) for op in m.subgraphs[0].operators]}")
    return ops[0]


def pack(m):
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def interpreter(model):
    it = Interpreter(model_content=model, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def scalar_options(opts):
    """Every int / float / bool field of a builtin options object."""
    out = {}
    if opts is None:
        return out
    for key, value in vars(opts).items():
        if isinstance(value, bool) or isinstance(value, (int, np.integer)):
            out["opt_" + key] = np.int32(int(value))
        elif isinstance(value, (float, np.floating)):
            out["opt_" + key] = np.float32(value)
    return out


def record(it, m, op_index, op):
    """The npz arrays of one op run: its inputs, quantization, options and output."""
    details = {d["index"]: d for d in it.get_tensor_details()}
    arrays = {"op": np.frombuffer(op_code(m, op).encode(), np.uint8).copy()}
    for k, t in enumerate(op.inputs):
        t = int(t)
        if t < 0:
            arrays[f"in{k}"] = np.zeros([0], np.int64)
            continue
        arrays[f"in{k}"] = it.get_tensor(t).copy()
        q = details[t]["quantization_parameters"]
        if len(q["scales"]):
            arrays[f"in{k}_scales"] = np.asarray(q["scales"], np.float32)
            arrays[f"in{k}_zps"] = np.asarray(q["zero_points"], np.int64)
            arrays[f"in{k}_qdim"] = np.int32(q["quantized_dimension"])
    t_out = int(op.outputs[0])
    arrays["out"] = it.get_tensor(t_out).copy()
    q = details[t_out]["quantization_parameters"]
    check(len(q["scales"]) == 1, "per-tensor output expected")
    arrays["out_scale"] = np.float32(q["scales"][0])
    arrays["out_zp"] = np.int64(q["zero_points"][0])
    # Ops with several outputs (SPLIT): the others as out1, out2, ...
    for k, t in enumerate(op.outputs[1:], start=1):
        arrays[f"out{k}"] = it.get_tensor(int(t)).copy()
    arrays.update(scalar_options(op.builtinOptions))
    return arrays


def run_converted(case):
    model = convert(case)
    m = schema_fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    index, op = the_op(m, case.op)
    if case.rewrite is not None:
        case.rewrite(m, op)
        model = pack(m)
    it = interpreter(model)
    rng = rng_for(case.name, 2)
    for d, x in zip(it.get_input_details(), case.sample(rng, case.test_gain)):
        it.set_tensor(d["index"], x.reshape(d["shape"]))
    it.invoke()
    arrays = record(it, m, index, op)
    check(any(arrays[k].dtype == np.int16 for k in arrays if k[2:].isdigit()),
          f"{case.name}: no int16 input")
    check(arrays["out"].dtype == np.int16, f"{case.name}: output {arrays['out'].dtype}")
    return arrays


def pot_add(in_exps, out_exp):
    """Rewrite: power-of-two scales 2^e on ADD/SUB's inputs and output, and the
    pot_scale_int16 option on, so LiteRT takes its power-of-two int16 path."""

    def rewrite(m, op):
        tensors = m.subgraphs[0].tensors
        for t, e in zip(list(op.inputs) + list(op.outputs), list(in_exps) + [out_exp]):
            tensors[int(t)].quantization.scale = [2.0 ** e]
        op.builtinOptions.potScaleInt16 = True

    return rewrite


def pow2_scales(in_exp, filter_exp, out_exp, slots=(0, 1, 2)):
    """Rewrite: power-of-two scales on a conv-like op's input (2^in_exp), filter (every
    channel 2^filter_exp) and output (2^out_exp). With a small input exponent the
    accumulators are small integers and the rescale factor an exact power of two, so
    many outputs land on exact halves: that pins down LiteRT's tie-breaking, which random
    scales almost never exercise. Only for cases without bias (the bias was quantized with
    the original scales). `slots` are the op's input, filter and bias input indices
    (TRANSPOSE_CONV: 2, 1, 3)."""
    x_slot, w_slot, b_slot = slots

    def rewrite(m, op):
        tensors = m.subgraphs[0].tensors
        if len(op.inputs) > b_slot and op.inputs[b_slot] >= 0:
            # The converter gives convolutions a zero bias when they have none.
            bias = tensors[int(op.inputs[b_slot])]
            data = m.buffers[bias.buffer].data
            check(data is None or not np.asarray(data).any(), "pow2 rewrite needs zero bias")
            bias.quantization.scale = [2.0 ** (in_exp + filter_exp)] * len(bias.quantization.scale)
        tensors[int(op.inputs[x_slot])].quantization.scale = [2.0 ** in_exp]
        f = tensors[int(op.inputs[w_slot])].quantization
        f.scale = [2.0 ** filter_exp] * len(f.scale)
        tensors[int(op.outputs[0])].quantization.scale = [2.0 ** out_exp]

    return rewrite


# --- QUANTIZE between integer types: single-op flatbuffers ------------------------------

def requantize_model(in_dtype, in_q, out_dtype, out_q, shape,
                     builtin=schema_fb.BuiltinOperator.QUANTIZE):
    """A model of one option-less op (QUANTIZE unless `builtin` says otherwise)."""
    m = schema_fb.ModelT()
    m.version = 3
    code = schema_fb.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = builtin
    code.version = 1
    m.operatorCodes = [code]
    m.buffers = [schema_fb.BufferT()]
    tensors = []
    for i, (dtype, (scale, zp)) in enumerate([(in_dtype, in_q), (out_dtype, out_q)]):
        t = schema_fb.TensorT()
        t.shape = list(shape)
        t.type = TFL_TYPE[dtype]
        t.buffer = 0
        t.name = ["input", "output"][i].encode()
        q = schema_fb.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(scale)], [int(zp)]
        t.quantization = q
        tensors.append(t)
    op = schema_fb.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = [0], [1]
    sub = schema_fb.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = tensors, [0], [1], [op]
    m.subgraphs = [sub]
    return pack(m), m


class RequantCase:
    def __init__(self, name, in_dtype, in_q, out_dtype, out_q, shape=(1, 8, 16, 32)):
        self.name, self.in_dtype, self.in_q = name, in_dtype, in_q
        self.out_dtype, self.out_q, self.shape = out_dtype, out_q, shape

    def run(self):
        model, m = requantize_model(self.in_dtype, self.in_q, self.out_dtype, self.out_q,
                                    self.shape)
        it = interpreter(model)
        n = int(np.prod(self.shape))
        info = np.iinfo(self.in_dtype)
        if self.in_dtype == np.int8:
            # Every int8 code, repeated.
            x = np.resize(np.arange(info.min, info.max + 1), n)
        else:
            rng = rng_for(self.name, 2)
            # Both ends of the int16 range, then random codes of all magnitudes.
            x = np.concatenate([[info.min, info.max, info.min + 1, info.max - 1, 0, -1, 1],
                                rng.integers(info.min, info.max + 1, n // 2),
                                rng.integers(-300, 301, n)])[:n]
        it.set_tensor(it.get_input_details()[0]["index"],
                      x.astype(self.in_dtype).reshape(self.shape))
        it.invoke()
        return record(it, m, 0, m.subgraphs[0].operators[0])


class TanhTableProbe:
    """TANH on inputs that read LiteRT's int16 sigmoid table entry by entry.

    With input scale 1/6144 LiteRT's int16 TANH rescales by exactly 2 (multiplier 2^14,
    right shift 13), so an input code `128 * i` lands on table entry `i` with no
    interpolation and the output is `table[i] - 32768`; the code `254 * 128 + 127` reads
    254/256 of the way to the last entry, which gives that entry's difference to the one
    before (it is below 64). tests/int16_kernels.rs re-derives the
    table from this vector and checks it against the kernel's copy."""

    name = "tanh_table_probe"

    def run(self):
        n = 256
        x = np.concatenate([np.arange(255) * 128, [254 * 128 + 127]]).astype(np.int16)
        model, m = requantize_model(np.int16, (1.0 / 6144.0, 0), np.int16, (2.0 ** -15, 0),
                                    (1, n), builtin=schema_fb.BuiltinOperator.TANH)
        it = interpreter(model)
        it.set_tensor(it.get_input_details()[0]["index"], x.reshape(1, n))
        it.invoke()
        return record(it, m, 0, m.subgraphs[0].operators[0])


class AddTieProbe:
    """16x8 ADD (or SUB) on LiteRT's general path (pot_scale_int16 off), on inputs where two
    candidate arithmetics disagree, to tell which one LiteRT runs where.

    Candidate "reference": each input `x << 15` through a rounding doubling high multiply,
    then a half-away rounding shift by the multiplier's exponent. Candidate "vector": the
    input shifted left by `15 + exponent` before one rounding doubling high multiply (the
    int8 vector loop's order). They differ by one on rare inputs, which a rescale to the
    output then rounds apart on rarer ones still; random data almost never holds one (one
    code in thousands on MobileNetV3-small). The scales are a real model's (an ADD of
    tests/fixtures/16x8/ops_spatial as qdbg first wrote it): the second input's multiplier
    is 0.45..., exponent -1. Inputs are chosen from 4M random pairs (or, broadcast, every
    code against one scalar) where the two candidates' outputs differ; 4099 elements, so
    that 16-lane blocks and a 3-element tail both show. The expected output is LiteRT's."""

    SCALES = (977120674, 975885342, 977120674)  # float32 bits: in1, in2, out

    def __init__(self, name, broadcast, op="ADD"):
        self.name, self.broadcast, self.op = name, broadcast, op

    @staticmethod
    def _frexp_multiplier(real):
        q, e = np.frexp(real)
        fixed = int(round(q * (1 << 31)))
        if fixed == 1 << 31:
            fixed //= 2
            e += 1
        return fixed, int(e)

    @staticmethod
    def _high_mul(a, m):
        ab = a.astype(np.int64) * np.int64(m)
        v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
        return np.where(v >= 0, np.abs(v) >> 31, -(np.abs(v) >> 31))

    @staticmethod
    def _round_shift(x, e):
        if e == 0:
            return x
        mask = (1 << e) - 1
        return (x >> e) + ((x & mask) > ((mask >> 1) + (x < 0)))

    def _outputs(self, a, b, mults):
        (m1, e1), (m2, e2), (mo, eo) = mults
        out = lambda raw: np.clip(self._round_shift(self._high_mul(raw, mo), -eo), -32768, 32767)
        sign = -1 if self.op == "SUB" else 1
        ref = out(self._round_shift(self._high_mul(a << 15, m1), -e1)
                  + sign * self._round_shift(self._high_mul(b << 15, m2), -e2))
        vec = out(self._high_mul(a << (15 + e1), m1)
                  + sign * self._high_mul(b << (15 + e2), m2))
        return ref, vec

    def run(self):
        n = 4099
        s1, s2, so = (np.uint32(b).view(np.float32) for b in self.SCALES)
        # The broadcast case puts the multiplier with the exponent on the vector side.
        shapes = ([1, 1], [1, n]) if self.broadcast else ([1, n], [1, n])
        fn = tf.function((lambda a, b: a - b) if self.op == "SUB" else (lambda a, b: a + b),
                         input_signature=[tf.TensorSpec(s, tf.float32) for s in shapes])
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        calib = rng_for(self.name, 1)
        conv.representative_dataset = lambda: (
            [calib.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4))
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        m = schema_fb.ModelT.InitFromPackedBuf(bytearray(conv.convert()), 0)
        index, op = the_op(m, self.op)
        tensors = m.subgraphs[0].tensors
        for t, scale in zip(list(op.inputs) + list(op.outputs), (s1, s2, so)):
            tensors[int(t)].quantization.scale = [float(scale)]
        op.builtinOptions.potScaleInt16 = False
        twice = float(np.float32(2) * max(s1, s2))
        mults = (self._frexp_multiplier(float(s1) / twice),
                 self._frexp_multiplier(float(s2) / twice),
                 self._frexp_multiplier(twice / (32768.0 * float(so))))
        rng = rng_for(self.name, 2)
        if self.broadcast:
            best = (0, None, None)
            for s in rng.integers(-20000, 20000, 200):
                v = np.arange(-32768, 32768)
                ref, vec = self._outputs(np.full_like(v, s), v, mults)
                d = v[ref != vec]
                if len(d) > best[0]:
                    best = (len(d), s, d)
            check(best[0] > 0, "no disagreeing inputs found")
            a, b = np.array([best[1]]), np.resize(best[2], n)
        else:
            ca = rng.integers(-20000, 20000, 4_000_000)
            cb = rng.integers(-20000, 20000, 4_000_000)
            ref, vec = self._outputs(ca, cb, mults)
            pick = np.resize(np.nonzero(ref != vec)[0], n)
            check(len(pick) > 0, "no disagreeing inputs found")
            a, b = ca[pick], cb[pick]
        it = interpreter(pack(m))
        for d, x, scale, shape in zip(it.get_input_details(), (a, b), (s1, s2), shapes):
            # Float inputs on exact multiples of the scale: the QUANTIZE keeps the codes.
            it.set_tensor(d["index"], (x * float(scale)).astype(np.float32).reshape(shape))
        it.invoke()
        arrays = record(it, m, index, op)
        check(np.array_equal(arrays["in0"].ravel(), a) and np.array_equal(arrays["in1"].ravel(), b),
              f"{self.name}: the QUANTIZE changed the chosen codes")
        return arrays


# --- Cases -------------------------------------------------------------------------------

def dense(units, act=None, bias=True, seed="fc"):
    rng = rng_for(seed, 0)

    def fn(x):
        depth = x.shape[-1]
        w = rng.standard_normal((depth, units)).astype(np.float32) / np.sqrt(depth)
        w *= rng.uniform(0.25, 2.0, units).astype(np.float32)[None, :]
        y = tf.matmul(x, tf.constant(w.astype(np.float32)))
        if bias:
            y = y + tf.constant(rng.standard_normal(units).astype(np.float32) * 0.5)
        return act(y) if act else y

    return fn


def conv(out_c, k, stride=1, dil=1, padding="SAME", act=None, bias=True, seed="conv"):
    rng = rng_for(seed, 0)

    def fn(x):
        c = x.shape[-1]
        w = rng.standard_normal((k[0], k[1], c, out_c)).astype(np.float32)
        w *= rng.uniform(0.25, 2.0, out_c).astype(np.float32) / np.sqrt(k[0] * k[1] * c)
        y = tf.nn.conv2d(x, tf.constant(w), strides=stride, padding=padding,
                         dilations=dil)
        if bias:
            y = tf.nn.bias_add(y, tf.constant(rng.standard_normal(out_c).astype(np.float32)))
        return act(y) if act else y

    return fn


def depthwise(dm, k, stride=1, dil=1, padding="SAME", act=None, bias=True, seed="dw"):
    rng = rng_for(seed, 0)

    def fn(x):
        c = x.shape[-1]
        w = rng.standard_normal((k[0], k[1], c, dm)).astype(np.float32)
        w *= rng.uniform(0.25, 2.0, (c, dm)).astype(np.float32)[None, None] / np.sqrt(k[0] * k[1])
        y = tf.nn.depthwise_conv2d(x, tf.constant(w), strides=[1, stride, stride, 1],
                                   padding=padding, dilations=[dil, dil])
        if bias:
            y = tf.nn.bias_add(y, tf.constant(rng.standard_normal(c * dm).astype(np.float32)))
        return act(y) if act else y

    return fn


def relu6(y):
    return tf.nn.relu6(y)


def transpose_conv(out_c, k, stride, padding="SAME", act=None, bias=True, seed="tc"):
    rng = rng_for(seed, 0)

    def fn(x):
        n, h, w, c = x.shape
        wt = rng.standard_normal((k[0], k[1], out_c, c)).astype(np.float32)
        wt *= (rng.uniform(0.25, 2.0, out_c).astype(np.float32)[None, None, :, None]
               / np.sqrt(k[0] * k[1] * c))
        if padding == "SAME":
            oh, ow = h * stride, w * stride
        else:
            oh, ow = (h - 1) * stride + k[0], (w - 1) * stride + k[1]
        y = tf.nn.conv2d_transpose(x, tf.constant(wt), [n, oh, ow, out_c], strides=stride,
                                   padding=padding)
        if bias:
            y = tf.nn.bias_add(y, tf.constant(rng.standard_normal(out_c).astype(np.float32)))
        return act(y) if act else y

    return fn


def bias_int32(m, op):
    """Rewrite: the op's int64 bias stored as int32 (same values) and the options'
    quantized_bias_type saying so: LiteRT's other 16x8 bias type (CONV_2D, FULLY_CONNECTED
    and TRANSPOSE_CONV check the bias against that option; DEPTHWISE_CONV_2D, which has
    no such option, refuses an int32 bias in 16x8)."""
    t = m.subgraphs[0].tensors[int(op.inputs[-1])]
    check(t.type == schema_fb.TensorType.INT64, "int64 bias expected")
    buf = m.buffers[t.buffer]
    values = np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), np.int64)
    check(np.all(np.abs(values) < 2 ** 31), "bias past int32")
    buf.data = np.frombuffer(values.astype(np.int32).tobytes(), np.uint8).copy()
    t.type = schema_fb.TensorType.INT32
    op.builtinOptions.quantizedBiasType = schema_fb.TensorType.INT32


def prelu(alpha_shape, seed="prelu"):
    rng = rng_for(seed, 0)

    def fn(x):
        alpha = tf.constant(rng.uniform(-0.5, 0.8, alpha_shape).astype(np.float32))
        # The Keras PReLU pattern, which the converter fuses into PRELU.
        return tf.nn.relu(x) - alpha * tf.nn.relu(-x)

    return fn


CASES = [
    # FULLY_CONNECTED: the converter quantizes dense weights per channel in 16x8.
    Case("fc_rows3_relu", "FULLY_CONNECTED", [[3, 40]], dense(24, tf.nn.relu, seed="fc1"),
         [normal(0, 1.5)]),
    Case("fc_rows1", "FULLY_CONNECTED", [[1, 64]], dense(20, seed="fc2"), [normal(0.5, 2)]),
    Case("fc_nobias_per_tensor", "FULLY_CONNECTED", [[5, 33]],
         dense(10, bias=False, seed="fc3"), [uniform(-3, 3)], per_tensor=True),
    # Tie probes (see pow2_scales): factor 2^-2 and 2^-3.
    Case("fc_pow2_ties", "FULLY_CONNECTED", [[4, 24]], dense(16, bias=False, seed="fc4"),
         [normal(0, 6.0)], rewrite=pow2_scales(0, -7, -5)),
    Case("fc_pow2_ties_per_tensor", "FULLY_CONNECTED", [[6, 20]],
         dense(12, bias=False, seed="fc5"), [normal(0, 6.0)], per_tensor=True,
         rewrite=pow2_scales(0, -7, -4)),
    # CONV_2D
    Case("conv_pow2_ties", "CONV_2D", [[1, 6, 6, 3]],
         conv(8, (3, 3), bias=False, seed="c5"), [normal(0, 4.0)],
         rewrite=pow2_scales(0, -7, -5)),
    Case("dw_pow2_ties", "DEPTHWISE_CONV_2D", [[1, 7, 7, 6]],
         depthwise(2, (3, 3), bias=False, seed="d4"), [normal(0, 4.0)],
         rewrite=pow2_scales(0, -7, -4)),
    Case("conv_3x3_same", "CONV_2D", [[1, 9, 9, 5]], conv(8, (3, 3), seed="c1"),
         [normal(0, 1)]),
    Case("conv_3x3_s2_relu6", "CONV_2D", [[1, 10, 12, 4]],
         conv(6, (3, 3), stride=2, act=relu6, seed="c2"), [normal(1, 2)]),
    Case("conv_5x3_valid_dil2_b2", "CONV_2D", [[2, 11, 9, 3]],
         conv(7, (5, 3), dil=2, padding="VALID", seed="c3"), [uniform(-2, 3)]),
    Case("conv_1x1_nobias_relu", "CONV_2D", [[1, 6, 6, 16]],
         conv(12, (1, 1), bias=False, act=tf.nn.relu, seed="c4"), [normal(0, 1)]),
    # DEPTHWISE_CONV_2D
    Case("dw_3x3_same_relu6", "DEPTHWISE_CONV_2D", [[1, 9, 9, 8]],
         depthwise(1, (3, 3), act=relu6, seed="d1"), [normal(0.5, 2)]),
    Case("dw_3x3_dm2_valid_s2", "DEPTHWISE_CONV_2D", [[1, 11, 10, 6]],
         depthwise(2, (3, 3), stride=2, padding="VALID", seed="d2"), [normal(0, 1)]),
    Case("dw_5x5_dil2_b2", "DEPTHWISE_CONV_2D", [[2, 12, 12, 5]],
         depthwise(1, (5, 5), dil=2, seed="d3"), [uniform(-1, 2)]),
    # ADD / SUB: the converter's general-scale path, then the power-of-two path.
    Case("add_same", "ADD", [[1, 7, 9, 10], [1, 7, 9, 10]],
         lambda a, b: a + b, [uniform(-4, 4), uniform(-0.6, 0.6)]),
    Case("add_bcast_relu", "ADD", [[1, 4, 5, 24], [1, 1, 5, 24]],
         lambda a, b: tf.nn.relu(a + b), [normal(0, 1.5), normal(0.3, 0.4)]),
    Case("add_generic_bcast", "ADD", [[3, 1, 4, 1], [1, 5, 1, 6]],
         lambda a, b: a + b, [normal(0, 1.0), normal(0, 3.0)]),
    Case("add_pot", "ADD", [[1, 6, 7, 9], [1, 6, 7, 9]],
         lambda a, b: a + b, [normal(0, 1.0), normal(0, 0.2)],
         rewrite=pot_add((-12, -14), -12)),
    # The first input shifted, and sums past the int16 range: saturation. (The same with
    # a broadcast second input, [1, 1, 6, 8], aborts LiteRT 2.3.0's process.)
    Case("add_pot_sat", "ADD", [[1, 5, 6, 8], [1, 5, 6, 8]],
         lambda a, b: a + b, [normal(0, 4.0), normal(0, 4.0)],
         rewrite=pot_add((-13, -12), -12)),
    Case("sub_same", "SUB", [[1, 5, 5, 21], [1, 5, 5, 21]],
         lambda a, b: a - b, [normal(1, 0.6), normal(0, 1.7)]),
    Case("sub_bcast_relu6", "SUB", [[1, 6, 7, 12], [1, 1, 7, 12]],
         lambda a, b: tf.nn.relu6(a - b), [normal(2, 2.0), normal(0, 0.5)]),
    Case("sub_pot", "SUB", [[1, 6, 7, 9], [1, 6, 7, 9]],
         lambda a, b: a - b, [normal(0, 1.0), normal(0, 0.2)],
         rewrite=pot_add((-12, -14), -12)),
    Case("sub_pot_first_shifted_sat", "SUB", [[1, 6, 7, 9], [1, 6, 7, 9]],
         lambda a, b: a - b, [normal(0, 4.0), normal(0, 4.0)],
         rewrite=pot_add((-13, -12), -12)),
    # MUL
    Case("mul_same", "MUL", [[1, 5, 5, 19], [1, 5, 5, 19]],
         lambda a, b: a * b, [normal(0, 1.0), uniform(-3, 3)]),
    Case("mul_bcast_relu", "MUL", [[1, 4, 5, 40], [1, 1, 1, 40]],
         lambda a, b: tf.nn.relu(a * b), [normal(0, 2.0), normal(0, 2.0)]),
    # Pooling
    Case("avgpool_same_s2", "AVERAGE_POOL_2D", [[1, 9, 10, 20]],
         lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME"), [normal(0.2, 1.5)]),
    Case("avgpool_valid_relu6", "AVERAGE_POOL_2D", [[1, 8, 7, 5]],
         lambda x: tf.nn.relu6(tf.nn.avg_pool2d(x, 2, 2, "VALID")), [normal(2, 3)]),
    Case("maxpool_same_s2", "MAX_POOL_2D", [[1, 9, 9, 12]],
         lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME"), [normal(0, 1.0)]),
    Case("maxpool_valid", "MAX_POOL_2D", [[1, 8, 6, 18]],
         lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"), [normal(0, 1.0)]),
    # MEAN
    Case("mean_hw", "MEAN", [[1, 5, 7, 40]],
         lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), [normal(0.3, 1.2)]),
    Case("mean_c", "MEAN", [[1, 4, 6, 20]],
         lambda x: tf.reduce_mean(x, axis=-1), [normal(0.5, 1.0)]),
    # LOGISTIC / TANH: table interpolation (see TanhTableProbe)
    Case("logistic", "LOGISTIC", [[1, 16, 16, 8]], tf.sigmoid, [normal(0, 4.0)]),
    Case("logistic_narrow", "LOGISTIC", [[1, 8, 8, 8]], tf.sigmoid, [normal(0, 0.5)]),
    Case("tanh", "TANH", [[1, 16, 16, 8]], tf.tanh, [normal(0, 2.0)]),
    Case("tanh_wide", "TANH", [[1, 8, 8, 8]], tf.tanh, [normal(0, 9.0)]),
    # SOFTMAX: exp and reciprocal tables built in Prepare
    Case("softmax", "SOFTMAX", [[1, 3, 40]], lambda x: tf.nn.softmax(x, axis=-1),
         [normal(0, 4.0)]),
    Case("softmax_narrow", "SOFTMAX", [[2, 3, 7]], lambda x: tf.nn.softmax(x, axis=-1),
         [normal(0, 0.7)]),
    Case("softmax_wide_rows", "SOFTMAX", [[6, 100]], lambda x: tf.nn.softmax(x, axis=-1),
         [normal(0, 8.0)]),
    # Data movement with rescaling
    Case("concat_c", "CONCATENATION", [[1, 4, 5, 6], [1, 4, 5, 3]],
         lambda a, b: tf.concat([a, b], axis=-1), [normal(0, 1.0), normal(0, 3.0)]),
    Case("pad_hw", "PAD", [[1, 5, 6, 4]],
         lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 0], [0, 0]]), [normal(0.5, 1.0)]),
    Case("resize_bilinear", "RESIZE_BILINEAR", [[1, 5, 6, 4]],
         lambda x: tf.image.resize(x, [9, 13], method="bilinear"), [normal(0, 1.0)]),
    Case("resize_bilinear_align", "RESIZE_BILINEAR", [[1, 4, 5, 3]],
         lambda x: tf.compat.v1.image.resize_bilinear(x, [7, 9], align_corners=True),
         [normal(0, 1.0)]),
    Case("resize_nearest", "RESIZE_NEAREST_NEIGHBOR", [[1, 5, 6, 4]],
         lambda x: tf.image.resize(x, [9, 13], method="nearest"), [normal(0, 1.0)]),
]

# The ops of issue 19's second batch: the conv-like ops, the activations, the
# element-wise and reducing ops and the data movement.
CASES += [
    Case("transpose_conv_s2_same", "TRANSPOSE_CONV", [[1, 5, 6, 4]],
         transpose_conv(6, (3, 3), 2, seed="t1"), [normal(0, 1.0)]),
    Case("transpose_conv_s1_valid_nobias", "TRANSPOSE_CONV", [[1, 4, 4, 5]],
         transpose_conv(3, (3, 2), 1, padding="VALID", bias=False, seed="t2"),
         [normal(0.5, 1.5)]),
    Case("transpose_conv_s2_relu", "TRANSPOSE_CONV", [[2, 3, 4, 6]],
         transpose_conv(5, (4, 4), 2, act=tf.nn.relu, seed="t3"), [normal(0, 2.0)]),
    Case("transpose_conv_pow2_ties", "TRANSPOSE_CONV", [[1, 4, 5, 3]],
         transpose_conv(4, (3, 3), 2, bias=False, seed="t4"), [normal(0, 4.0)],
         rewrite=pow2_scales(0, -7, -5, slots=(2, 1, 3))),
    Case("conv_bias_int32", "CONV_2D", [[1, 7, 8, 5]], conv(6, (3, 3), seed="c6"),
         [normal(0, 1)], rewrite=bias_int32),
    Case("fc_bias_int32", "FULLY_CONNECTED", [[3, 40]], dense(16, seed="fc6"),
         [normal(0, 1.5)], rewrite=bias_int32),
    Case("transpose_conv_bias_int32", "TRANSPOSE_CONV", [[1, 4, 5, 4]],
         transpose_conv(5, (3, 3), 2, seed="t5"), [normal(0, 1.0)], rewrite=bias_int32),
    Case("batch_matmul", "BATCH_MATMUL", [[1, 3, 4, 6], [1, 3, 6, 5]],
         lambda a, b: tf.matmul(a, b), [normal(0, 1.0), normal(0, 2.0)]),
    Case("batch_matmul_adj_y_bcast", "BATCH_MATMUL", [[2, 5, 8], [1, 7, 8]],
         lambda a, b: tf.matmul(a, b, transpose_b=True), [normal(0, 1.0), uniform(-2, 2)]),
    Case("relu", "RELU", [[1, 6, 7, 8]], tf.nn.relu, [normal(0.5, 2.0)]),
    Case("relu6", "RELU6", [[1, 6, 7, 8]], tf.nn.relu6, [normal(2.0, 4.0)]),
    Case("leaky_relu", "LEAKY_RELU", [[1, 6, 7, 8]],
         lambda x: tf.nn.leaky_relu(x, 0.2), [normal(0, 2.0)]),
    Case("leaky_relu_wide_alpha", "LEAKY_RELU", [[1, 5, 5, 6]],
         lambda x: tf.nn.leaky_relu(x, 1.7), [normal(0, 1.0)]),
    Case("maximum_bcast", "MAXIMUM", [[1, 5, 6, 8], [1, 1, 6, 8]],
         lambda a, b: tf.maximum(a, b), [normal(0, 1.0), normal(0, 1.0)]),
    Case("minimum", "MINIMUM", [[1, 5, 6, 8], [1, 5, 6, 8]],
         lambda a, b: tf.minimum(a, b), [normal(0, 1.0), normal(0.2, 2.0)]),
    Case("reduce_max_hw", "REDUCE_MAX", [[1, 5, 6, 8]],
         lambda x: tf.reduce_max(x, axis=[1, 2], keepdims=True), [normal(0, 1.0)]),
    Case("reduce_max_c", "REDUCE_MAX", [[2, 4, 5, 7]],
         lambda x: tf.reduce_max(x, axis=-1), [normal(0, 1.0)]),
    Case("sum_c", "SUM", [[1, 4, 5, 12]], lambda x: tf.reduce_sum(x, axis=-1),
         [normal(0.1, 1.0)]),
    Case("sum_hw", "SUM", [[1, 4, 5, 6]],
         lambda x: tf.reduce_sum(x, axis=[1, 2], keepdims=True), [normal(0.1, 1.0)]),
    Case("rsqrt", "RSQRT", [[1, 5, 6, 8]], tf.math.rsqrt, [uniform(0.1, 4.0)]),
    Case("gelu", "GELU", [[1, 5, 6, 8]], tf.nn.gelu, [normal(0, 2.0)]),
    Case("transpose", "TRANSPOSE", [[1, 4, 5, 6]], lambda x: tf.transpose(x, [0, 2, 3, 1]),
         [normal(0, 1.0)]),
    Case("reshape", "RESHAPE", [[1, 4, 5, 6]], lambda x: tf.reshape(x, [1, 20, 6]),
         [normal(0, 1.0)]),
    Case("split_c", "SPLIT", [[1, 4, 5, 6]], lambda x: tf.split(x, 3, axis=-1),
         [normal(0, 1.0)]),
    Case("slice", "SLICE", [[1, 6, 7, 5]],
         lambda x: tf.slice(x, [0, 1, 2, 1], [1, 4, 3, -1]), [normal(0, 1.0)]),
    Case("strided_slice", "STRIDED_SLICE", [[1, 8, 7, 6]],
         lambda x: x[:, 1:7:2, ::-1, 2:], [normal(0, 1.0)]),
    Case("gather_c", "GATHER", [[1, 4, 5, 6]], lambda x: tf.gather(x, [3, 0, 5, 3], axis=-1),
         [normal(0, 1.0)]),
]

# Cases of ops whose int16 kernels qdbg does not have yet go here: their vectors are
# written only when named on the command line, so a plain rerun does not put untested
# vectors under tests/fixtures (tests/int16_kernels.rs requires every int16 vector there
# to be tested).
PENDING_CASES = []

# What LiteRT 2.3.0 / TensorFlow 2.21 refuse in 16x8, among the ops qdbg quantizes in int8
# (probed with this script's cases and single-op int16 models):
# - the converter refuses ("Quantization to 16x8-bit not yet supported"): RELU_N1_TO_1,
#   HARD_SWISH, DIV, SQRT, PRELU (its Keras pattern needs NEG), DEPTH_TO_SPACE,
#   SPACE_TO_DEPTH;
# - LiteRT's kernels refuse int16: RELU_N1_TO_1 (and RELU_0_TO_1), HARD_SWISH,
#   SQUARED_DIFFERENCE (which the converter does write in 16x8: the file fails at
#   invoke), DEPTH_TO_SPACE, SPACE_TO_DEPTH; DEPTHWISE_CONV_2D refuses an int32 bias and
#   CONV_2D a missing bias; PADV2 as the converter writes it (a float32 constant value
#   beside int16 input) fails Prepare;
# - LiteRT runs int16 although the converter never writes it: DIV, SQRT, PRELU (and
#   ABS, NEG, which qdbg does not quantize).

REQUANT_CASES = [
    RequantCase("requant_i8_to_i16", np.int8, (0.05, -7), np.int16, (0.0004, 0)),
    RequantCase("requant_i8_to_i16_up", np.int8, (0.002, 12), np.int16, (0.00001, 0)),
    RequantCase("requant_i16_to_i8", np.int16, (0.0003, 0), np.int8, (0.04, 5)),
    RequantCase("requant_i16_to_i8_sat", np.int16, (0.001, 0), np.int8, (0.02, -20)),
    RequantCase("requant_i16_to_i16", np.int16, (0.0003, 0), np.int16, (0.0005, 0)),
]


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
    for pkg, want in PINS.items():
        try:
            got = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            got = None
        check(got == want, f"{pkg} {got} installed, the vectors are pinned to {want}")


def main(argv):
    check_pins()
    only = set(argv)
    os.makedirs(OUT_DIR, exist_ok=True)
    failed = []
    probes = [TanhTableProbe(), AddTieProbe("add_tie_elementwise", broadcast=False),
              AddTieProbe("add_tie_broadcast", broadcast=True),
              AddTieProbe("sub_tie_elementwise", broadcast=False, op="SUB")]
    for case in CASES + REQUANT_CASES + PENDING_CASES + probes:
        if (only and case.name not in only) or (not only and case in PENDING_CASES):
            continue
        try:
            arrays = case.run() if not isinstance(case, Case) else run_converted(case)
        except Exception as e:  # report every case, then fail
            failed.append(case.name)
            print(f"FAIL {case.name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        path = os.path.join(OUT_DIR, f"int16_{case.name}.npz")
        write_npz(path, arrays)
        inputs = ", ".join(f"{arrays[k].dtype}{list(arrays[k].shape)}"
                           for k in sorted(arrays) if k[2:].isdigit())
        print(f"{case.name}: {inputs} -> {arrays['out'].dtype}{list(arrays['out'].shape)}, "
              f"{os.path.getsize(path)} bytes", flush=True)
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main(sys.argv[1:])
