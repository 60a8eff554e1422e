#!/usr/bin/env python3
"""Oracle vectors for qdbg's int8 SUB when its real output multiplier
2 * max(s1, s2) / (2^20 * s_out) is above 1 (tests/int8_sub_above_one.rs).

TensorFlow's quantizer writes such SUBs when the output is near-constant on the
calibration data (its range is widened to 2e-6, a scale of 7.8e-9). LiteRT's
int8 ADD aborts the process on them; its SUB runs, and what it computes then
depends on which compiled form of its loop an element goes through (see
qdbg::kernels::int8::binary::Sub). Everything here is LiteRT's output.

Pinned environment (the fixture venv, scripts/fixtures/venv.sh):
    tensorflow-cpu 2.21.0, ai-edge-litert 2.3.0, numpy 2.4.6, flatbuffers 25.12.19

usage: PY=$(bash scripts/fixtures/venv.sh | tail -n1)
       $PY scripts/kernel_vectors/make_sub_above_one_vectors.py

Models: a float tf.function is converted to a full-int8 TFLite model
(representative dataset), then the SUB's output scale (and, for the one-op
models, the input parameters and fused activation) is rewritten in the
flatbuffer to give the wanted real output multiplier. LiteRT runs them with
OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, num_threads=1, and without
experimental_preserve_all_tensors (which would stop LiteRT's arena from
running SUB in place, and so change its results). Written to
tests/fixtures/kernels/:

sub_gt1_pairs.npz: every pair of int8 inputs, two parameter sets.
    same_out      [65536]: a flat SUB (equal shapes [65536]) of
                  in0[i] = i // 256 - 128 and in1[i] = i % 256 - 128 (not stored)
    bcast_out     [256, 256]: in0 [256, 1] (the codes -128..127) minus
                  in1 [1, 256] (the same codes)
    same_scales, bcast_scales   float32 [3]: in0, in1, out scales
    same_zps, bcast_zps         int32 [3]
    same_activation, bcast_activation   int32 (schema code)

sub_gt1_cases.npz: random inputs, C cases packed into flat arrays.
    scales float32 [C, 3], zps int32 [C, 3], activation int32 [C]
    a_dims, b_dims int32 [C, 6]: each input's shape, padded with -1
    samples int32 [C]
    in0, in1, out int8: every case's samples, flattened and concatenated
    in case order (case c holds samples[c] * prod(shape) of each)

sub_gt1_refused.npz: parameter sets LiteRT refuses, R rows.
    op        int32 [R]: 0 SUB, 1 ADD
    scales float32 [R, 3], zps int32 [R, 3], activation int32 [R]
    outcome   int32 [R]: 1 Prepare fails, 2 the process aborts (SIGABRT; run
              in a child process)

sub_gt1_model_NAME.tflite / .npz: whole float-I/O models whose SUB LiteRT runs
in place (its output in an input's buffer) or not, the decision its arena
planner makes from the graph.
    x, y          float32 [S, ...]: the model inputs, S samples
    sub_out       int8 [S, ...]: the SUB's output, recovered from the model's
                  float output (round(f / s) + zp, checked to be within float
                  rounding of an integer number of steps)
    sub_tensor    the SUB output tensor's name (bytes)
    in_place      int32: 1 when LiteRT's SUB output shares an input's buffer
                  (read from LiteRT's tensor data pointers)

Data codes: activation 0 none, 1 relu, 2 relu_n1_to_1, 3 relu6.
Deterministic: fixed seeds, archives written with fixed timestamps.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

SEED = 20251207
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "tests", "fixtures", "kernels")


def rng_for(name, salt=0):
    return np.random.default_rng([SEED, zlib.crc32(name.encode()), salt])


def litert():
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    return Interpreter, OpResolverType


def interpreter(model, resolver=None):
    Interpreter, OpResolverType = litert()
    if resolver is None:
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=model, num_threads=1,
                     experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def invoke(it, arrays):
    for d, a in zip(it.get_input_details(), arrays):
        it.set_tensor(d["index"], np.asarray(a).reshape(d["shape"]))
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


# ---------------------------------------------------------------------------
# Conversion and flatbuffer edits
# ---------------------------------------------------------------------------

def convert(fn, shapes, int8_io, calib_seed=0):
    import tensorflow as tf
    sig = [tf.TensorSpec(s, tf.float32) for s in shapes]
    f = tf.function(fn, input_signature=sig, autograph=False)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng([SEED, calib_seed])

    def representative():
        for _ in range(16):
            yield [rng.uniform(-1, 1, s).astype(np.float32) for s in shapes]

    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def schema():
    from tensorflow.lite.python import schema_py_generated as fb
    return fb


def op_name(m, op):
    fb = schema()
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    c = m.operatorCodes[op.opcodeIndex]
    return names[max(c.builtinCode, c.deprecatedBuiltinCode)]


def pack(m):
    import flatbuffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def set_quant(tensor, scale, zp):
    tensor.quantization.scale = [float(scale)]
    tensor.quantization.zeroPoint = [int(zp)]


def patch_one_op(model, q, act):
    """The one-op int8-I/O model with its SUB's (or ADD's) parameters replaced."""
    fb = schema()
    m = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sg = m.subgraphs[0]
    if len(sg.operators) != 1:
        raise RuntimeError(f"expected one op, got {[op_name(m, o) for o in sg.operators]}")
    op = sg.operators[0]
    for t, (s, z) in zip([op.inputs[0], op.inputs[1], op.outputs[0]], q):
        set_quant(sg.tensors[t], s, z)
    op.builtinOptions.fusedActivationFunction = act
    return pack(m)


def sub_node(m):
    sg = m.subgraphs[0]
    subs = [o for o in sg.operators if op_name(m, o) == "SUB"]
    if len(subs) != 1:
        raise RuntimeError(f"expected one SUB, got {[op_name(m, o) for o in sg.operators]}")
    return sg, subs[0]


def real_multiplier(s1, s2, so):
    """sub.cc's real output multiplier from the float32 scales, in double."""
    twice = 2.0 * float(max(np.float32(s1), np.float32(s2)))
    return twice / ((1 << 20) * float(np.float32(so)))


def output_scale(s1, s2, mult):
    """A float32 output scale whose real multiplier is `mult`, nudged to stay above 1."""
    so = np.float32(2.0 * max(float(s1), float(s2)) / ((1 << 20) * mult))
    while mult > 1.0 and real_multiplier(s1, s2, so) <= 1.0:
        so = np.nextafter(so, np.float32(0))
    return float(so)


def write_npz(path, arrays):
    """np.savez-compatible archive with fixed timestamps (byte-identical reruns)."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as f:
                arr = np.array(arrays[key], order="C", copy=True)
                np.lib.format.write_array(f, arr, allow_pickle=False)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# One-op models (int8 inputs are model inputs, so never shared in place)
# ---------------------------------------------------------------------------

_base_models = {}


def base_model(op, sa, sb):
    key = (op, tuple(sa), tuple(sb))
    if key not in _base_models:
        fn = (lambda a, b: a - b) if op == "SUB" else (lambda a, b: a + b)
        _base_models[key] = convert(fn, [sa, sb], int8_io=True)
    return _base_models[key]


def run_one_op(sa, sb, q, act, a, b):
    """LiteRT's output, checked against the default resolver (XNNPACK must leave
    the op to the builtin kernel and so compute the same)."""
    model = patch_one_op(base_model("SUB", sa, sb), q, act)
    it = interpreter(model)
    (out,) = invoke(it, [a, b])
    auto = interpreter(model, litert()[1].AUTO)
    names = [d["op_name"] for d in auto._get_ops_details()]
    if "DELEGATE" in names:
        raise RuntimeError(f"XNNPACK took a SUB with multiplier {real_multiplier(*[x[0] for x in q])}")
    (out_auto,) = invoke(auto, [a, b])
    if not np.array_equal(out, out_auto):
        raise RuntimeError("the default resolver computes something else")
    return out.astype(np.int8)


def outcome_in_child(op, sa, sb, q, act):
    """0: LiteRT runs it; 1: Prepare fails; 2: the process aborts."""
    model = patch_one_op(base_model(op, sa, sb), q, act)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.tflite")
        with open(path, "wb") as f:
            f.write(model)
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", path],
                           capture_output=True, text=True)
    if r.returncode == 0:
        return 0
    if r.returncode == 3:
        return 1
    if r.returncode in (-6, 134):
        return 2
    raise RuntimeError(f"child exited {r.returncode}: {r.stderr[-500:]}")


def child(path):
    with open(path, "rb") as f:
        model = f.read()
    try:
        it = interpreter(model)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        sys.exit(3)
    shapes = [d["shape"] for d in it.get_input_details()]
    invoke(it, [np.zeros(s, np.int8) for s in shapes])
    sys.exit(0)


def random_params(rng):
    s1 = float(np.float32(rng.uniform(0.004, 0.06)))
    s2 = float(np.float32(s1 * rng.choice([1.0, 0.37, 2.6, 0.02])))
    return s1, s2, int(rng.integers(-128, 128)), int(rng.integers(-128, 128))


def pairs():
    arrays = {}
    codes = np.arange(-128, 128, dtype=np.int8)
    # A flat SUB over every pair: all elements but none in the scalar tail go
    # through the vectorized loop (65536 is a multiple of 4).
    rng = rng_for("pairs_same")
    s1, s2, z1, z2 = random_params(rng)
    so = output_scale(s1, s2, 100.0)
    q = [(s1, z1), (s2, z2), (so, int(rng.integers(-100, 100)))]
    a = np.repeat(codes, 256)
    b = np.tile(codes, 256)
    arrays["same_out"] = run_one_op([65536], [65536], q, 0, a, b)
    # A broadcast SUB over every pair: the scalar loop, a large shift.
    rng = rng_for("pairs_bcast")
    s1, s2, z1, z2 = random_params(rng)
    so = output_scale(s1, s2, 2.0 ** 15 * 1.1)
    qb = [(s1, z1), (s2, z2), (so, int(rng.integers(-100, 100)))]
    arrays["bcast_out"] = run_one_op([256, 1], [1, 256], qb, 0,
                                     codes.reshape(256, 1), codes.reshape(1, 256))
    for prefix, qq in (("same", q), ("bcast", qb)):
        arrays[f"{prefix}_scales"] = np.array([x[0] for x in qq], np.float32)
        arrays[f"{prefix}_zps"] = np.array([x[1] for x in qq], np.int32)
        arrays[f"{prefix}_activation"] = np.int32(0)
    return arrays


# Shapes: flat with a scalar tail of 1 (rank-padded), flat with a tail of 2,
# scalar broadcasts both ways, a five-fold broadcast, a generic one.
SHAPES = [
    ([1, 1, 1, 101], [101]),
    ([2, 35], [2, 35]),
    ([1], [103]),
    ([103], [1]),
    ([4, 1, 9], [1, 5, 9]),
    ([2, 1, 3, 1, 5], [1, 4, 1, 2, 1]),
]
MULTS = [1.0000001, 1.3, 5.85, 31.9, 100.0, 2.0 ** 15 * 1.1, 2.0 ** 30 * 1.2]
SAMPLES = 2


def cases():
    rows, refused = [], []
    flat = {"in0": [], "in1": [], "out": []}
    for mi, mult in enumerate(MULTS):
        for si, (sa, sb) in enumerate(SHAPES):
            name = f"case_{mi}_{si}"
            rng = rng_for(name)
            s1, s2, z1, z2 = random_params(rng)
            so = output_scale(s1, s2, mult)
            q = [(s1, z1), (s2, z2), (so, int(rng.integers(-128, 128)))]
            act = int([0, 1, 2, 3][(mi + si) % 4])
            try:
                interpreter(patch_one_op(base_model("SUB", sa, sb), q, act))
            except RuntimeError:
                # The activation bound does not fit int32: LiteRT's Prepare fails.
                refused.append((0, q, act, 1))
                act = [0, 1][(mi + si) % 2]
            a = rng.integers(-128, 128, size=[SAMPLES] + sa).astype(np.int8)
            b = rng.integers(-128, 128, size=[SAMPLES] + sb).astype(np.int8)
            outs = [run_one_op(sa, sb, q, act, a[k], b[k]) for k in range(SAMPLES)]
            flat["in0"].append(a.reshape(-1))
            flat["in1"].append(b.reshape(-1))
            flat["out"].append(np.stack(outs).reshape(-1))
            rows.append((q, act, sa, sb))
            print(f"{name}: multiplier {real_multiplier(s1, s2, so):.6g}, activation {act}, "
                  f"{sa} - {sb}")
    pad = lambda s: s + [-1] * (6 - len(s))  # noqa: E731
    arrays = {
        "scales": np.array([[x[0] for x in q] for q, _, _, _ in rows], np.float32),
        "zps": np.array([[x[1] for x in q] for q, _, _, _ in rows], np.int32),
        "activation": np.array([act for _, act, _, _ in rows], np.int32),
        "a_dims": np.array([pad(sa) for _, _, sa, _ in rows], np.int32),
        "b_dims": np.array([pad(sb) for _, _, _, sb in rows], np.int32),
        "samples": np.full(len(rows), SAMPLES, np.int32),
    }
    for k, v in flat.items():
        arrays[k] = np.concatenate(v).astype(np.int8)
    return arrays, refused


def refusals(refused):
    rows = list(refused)
    s = 2.0 ** -7
    # A real output multiplier of exactly 1: SUB's QuantizeMultiplierSmallerThanOneExp
    # check aborts. ADD aborts from 1 up.
    rows.append((0, [(s, 3), (s, -4), (2 * s / 2 ** 20, 5)], 0, None))
    rows.append((1, [(s, 3), (s, -4), (2 * s / 2 ** 20, 5)], 0, None))
    rows.append((1, [(0.024056, 6), (0.024056, 6), (7.8431368e-09, 0)], 0, None))
    rows.append((1, [(0.02, 1), (0.013, -2), (output_scale(0.02, 0.013, 1.5), 0)], 0, None))
    # RELU6 / RELU_N1_TO_1 bounds outside int32 on a tiny output scale.
    rows.append((0, [(0.03, 1), (0.03, 2), (output_scale(0.03, 0.03, 500.0), 4)], 3, None))
    rows.append((0, [(0.03, 1), (0.03, 2), (output_scale(0.03, 0.03, 500.0), 4)], 2, None))
    out = {"op": [], "scales": [], "zps": [], "activation": [], "outcome": []}
    for op, q, act, outcome in rows:
        measured = outcome_in_child(["SUB", "ADD"][op], [64], [64], q, act)
        if outcome is not None and measured != outcome:
            raise RuntimeError(f"refusal {q}: measured {measured}, expected {outcome}")
        if measured == 0:
            raise RuntimeError(f"LiteRT runs {['SUB', 'ADD'][op]} {q} act {act}")
        print(f"refused: {['SUB', 'ADD'][op]} multiplier "
              f"{real_multiplier(q[0][0], q[1][0], q[2][0]):.6g} act {act}: "
              f"{['', 'Prepare fails', 'abort'][measured]}")
        out["op"].append(op)
        out["scales"].append([x[0] for x in q])
        out["zps"].append([x[1] for x in q])
        out["activation"].append(act)
        out["outcome"].append(measured)
    return {
        "op": np.array(out["op"], np.int32),
        "scales": np.array(out["scales"], np.float32),
        "zps": np.array(out["zps"], np.int32),
        "activation": np.array(out["activation"], np.int32),
        "outcome": np.array(out["outcome"], np.int32),
    }


# ---------------------------------------------------------------------------
# Whole models: LiteRT's arena decides whether SUB runs in place
# ---------------------------------------------------------------------------

def relu(x):
    import tensorflow as tf
    return tf.nn.relu(x)


N = 67  # a multiple of 4 plus a scalar tail of 3
MODELS = [
    # The first input (RELU's output, one reader) is shared.
    ("inplace_input0", lambda x, y: [relu(x) - y], [[N], [N]], True),
    # relu(x) has two readers, relu(y) one: the second input is shared.
    ("inplace_input1", lambda x, y: [relu(x) - relu(y), relu(x) * 0.5], [[N], [N]], True),
    # Both inputs have two readers: no sharing, the vectorized loop.
    ("separate", lambda x, y: [relu(x) - relu(y), relu(x) + relu(y)], [[N], [N]], False),
    # The first input is a RESHAPE of a tensor with two readers: RESHAPE shares
    # that tensor's buffer, whose readers then forbid SUB to (and the second
    # input is not tried).
    ("reshape_root", lambda x, y: [
        __import__("tensorflow").reshape(relu(x), [N]) - relu(y),
        __import__("tensorflow").reduce_mean(relu(x)) * 1.0], [[1, N], [N]], False),
    # Four bytes are too few to share: one vector block.
    ("four_bytes", lambda x, y: [relu(x) - y], [[4], [4]], False),
    ("five_bytes", lambda x, y: [relu(x) - y], [[5], [5]], True),
]
MODEL_SAMPLES = 3


def sub_in_place(model):
    """Whether LiteRT's SUB output shares an input's buffer (data pointers)."""
    it = interpreter(model)
    ptr = {}
    for d in it.get_tensor_details():
        try:
            view = it.tensor(d["index"])()
        except ValueError:  # no buffer (constants LiteRT keeps elsewhere)
            view = None
        # 0-d tensors come back as numpy scalars, not views: no pointer to compare.
        ptr[d["index"]] = view.ctypes.data if isinstance(view, np.ndarray) else None
    (node,) = [d for d in it._get_ops_details() if d["op_name"] == "SUB"]
    out = ptr[int(node["outputs"][0])]
    return any(ptr.get(int(t)) == out for t in node["inputs"])


def whole_model(name, fn, shapes, expect_in_place):
    fb = schema()
    model = convert(fn, shapes, int8_io=False, calib_seed=zlib.crc32(name.encode()))
    m = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sg, op = sub_node(m)
    ins = [sg.tensors[t].quantization for t in op.inputs]
    s1, s2 = float(ins[0].scale[0]), float(ins[1].scale[0])
    so = output_scale(s1, s2, 1000.0)
    out_t = sg.tensors[op.outputs[0]]
    zo = int(rng_for(name, 1).integers(-100, 100))
    set_quant(out_t, so, zo)
    model = pack(m)
    in_place = sub_in_place(model)
    if in_place != expect_in_place:
        raise RuntimeError(f"{name}: LiteRT in place {in_place}, expected {expect_in_place}")

    # The SUB output's DEQUANTIZE: the model output that carries it.
    it = interpreter(model)
    ops = it._get_ops_details()
    sub_out = int(op.outputs[0])
    (deq,) = [d for d in ops if d["op_name"] == "DEQUANTIZE" and int(d["inputs"][0]) == sub_out]
    out_details = it.get_output_details()
    which = [d["index"] for d in out_details].index(int(deq["outputs"][0]))

    rng = rng_for(name, 2)
    xs = [rng.uniform(-3, 3, size=[MODEL_SAMPLES] + s).astype(np.float32) for s in shapes]
    codes = []
    for k in range(MODEL_SAMPLES):
        outs = invoke(it, [x[k] for x in xs])
        f = outs[which]
        steps = f.astype(np.float64) / float(np.float32(so))
        q = np.round(steps).astype(np.int64) + zo
        # DEQUANTIZE is exact to float rounding, so the steps are integers up to that.
        if np.abs(steps - (q - zo)).max() > 1e-3 or q.min() < -128 or q.max() > 127:
            raise RuntimeError(f"{name}: cannot recover the SUB's int8 output")
        codes.append(q.astype(np.int8))
    base = os.path.join(OUT_DIR, f"sub_gt1_model_{name}")
    with open(base + ".tflite", "wb") as f:
        f.write(model)
    write_npz(base + ".npz", {
        "x": xs[0], "y": xs[1], "sub_out": np.stack(codes),
        "sub_tensor": np.array(out_t.name if isinstance(out_t.name, bytes) else out_t.name.encode()),
        "in_place": np.int32(in_place),
    })
    print(f"model {name}: multiplier {real_multiplier(s1, s2, so):.6g}, in place {in_place}, "
          f"ops {[d['op_name'] for d in ops]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    os.makedirs(OUT_DIR, exist_ok=True)
    write_npz(os.path.join(OUT_DIR, "sub_gt1_pairs.npz"), pairs())
    arrays, refused = cases()
    write_npz(os.path.join(OUT_DIR, "sub_gt1_cases.npz"), arrays)
    write_npz(os.path.join(OUT_DIR, "sub_gt1_refused.npz"), refusals(refused))
    for name, fn, shapes, expect in MODELS:
        whole_model(name, fn, shapes, expect)
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f))
                for f in os.listdir(OUT_DIR) if f.startswith("sub_gt1_"))
    print(f"sub_gt1_* total {total} bytes")


if __name__ == "__main__":
    main()
