#!/usr/bin/env python3
"""LiteRT latency of 16x8 kernels relative to int8, per op type: the table behind the
dashboard's "latency ~N x int8 (estimated, LiteRT ratio per op type)".

Pinned environment (the fixture venv, $HOME/.cache/qdbg/fixture-venv, made by
scripts/fixtures/venv.sh): tensorflow-cpu 2.21.0, ai-edge-litert 2.3.0, numpy 2.4.6.

usage: $HOME/.cache/qdbg/fixture-venv/bin/python scripts/int16_latency/measure.py [OUT.csv]
       (default OUT: src/select/int16_latency.csv)

For each op type, a tiny tf.function holding that op alone at a mid-network size is
converted twice by TensorFlow's converter: full int8 (TFLITE_BUILTINS_INT8) and 16x8
(EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8), both with integer I/O
(int8 / int16), so each file holds the op and nothing else. Both run in LiteRT on one
thread, invoke() timed alternately (int8, 16x8, int8, ...) so machine load hits both
alike; the ratio is median(16x8) / median(int8). Two runtimes, two columns:

  builtin   BUILTIN_WITHOUT_DEFAULT_DELEGATES: LiteRT's builtin kernels for both, the
            kernels qdbg reproduces bit for bit;
  default   LiteRT's default runtime: XNNPACK takes the int8 op where it can, and has no
            16x8 kernels, so this is what a deployed model loses by going to 16x8.

qdbg uses the `default` column (what a user's model pays). Timings depend on the CPU;
the machine is written in the file's header.
"""

import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import importlib.metadata  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

PINS = {"tensorflow-cpu": "2.21.0", "ai-edge-litert": "2.3.0", "numpy": "2.4.6"}
SEED = 20261207
WARMUP = 20
RUNS = 300


def check_pins():
    for pkg, want in PINS.items():
        got = importlib.metadata.version(pkg)
        if got != want:
            sys.exit(f"measure.py: {pkg} is {got}, this script is pinned to {want}")


def weights(shape, seed):
    return tf.constant(np.random.default_rng(seed).normal(0, 0.2, shape).astype(np.float32))


def case_list():
    """(op type, input shapes, function)."""
    k3 = weights((3, 3, 32, 32), 1)
    dw = weights((3, 3, 64, 1), 2)
    fc = weights((512, 512), 3)
    b32 = weights((32,), 4)
    b64 = weights((64,), 5)
    b512 = weights((512,), 6)
    act = (1, 32, 32, 64)
    return [
        ("CONV_2D", [(1, 32, 32, 32)],
         lambda x: tf.nn.conv2d(x, k3, 1, "SAME") + b32),
        ("DEPTHWISE_CONV_2D", [act],
         lambda x: tf.nn.depthwise_conv2d(x, dw, [1, 1, 1, 1], "SAME") + b64),
        ("FULLY_CONNECTED", [(1, 512)], lambda x: tf.matmul(x, fc) + b512),
        ("ADD", [act, act], lambda a, b: a + b),
        ("SUB", [act, act], lambda a, b: a - b),
        ("MUL", [act, act], lambda a, b: a * b),
        ("AVERAGE_POOL_2D", [act], lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID")),
        ("MAX_POOL_2D", [act], lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID")),
        ("MEAN", [act], lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True)),
        ("LOGISTIC", [act], tf.math.sigmoid),
        ("TANH", [act], tf.math.tanh),
        ("SOFTMAX", [(1, 1000)], tf.nn.softmax),
        ("CONCATENATION", [(1, 32, 32, 32), (1, 32, 32, 32)],
         lambda a, b: tf.concat([a, b], axis=3)),
        ("PAD", [(1, 32, 32, 32)], lambda x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])),
        ("RESIZE_BILINEAR", [(1, 16, 16, 32)],
         lambda x: tf.compat.v1.image.resize_bilinear(x, [32, 32])),
        ("RESIZE_NEAREST_NEIGHBOR", [(1, 16, 16, 32)],
         lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [32, 32])),
    ]


def convert(shapes, fn, int16):
    specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
    func = tf.function(fn, input_signature=specs).get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([func])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(SEED)

    def representative():
        for _ in range(8):
            yield [rng.normal(0, 1, s).astype(np.float32) for s in shapes]

    conv.representative_dataset = representative
    if int16:
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int16
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def interpreter(model, resolver):
    it = Interpreter(model_content=model, num_threads=1,
                     experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    rng = np.random.default_rng(SEED)
    for d in it.get_input_details():
        info = np.iinfo(d["dtype"])
        it.set_tensor(d["index"], rng.integers(info.min // 2, info.max // 2, d["shape"],
                                              dtype=d["dtype"]))
    return it


def ratio(int8_model, int16_model, resolver):
    a, b = interpreter(int8_model, resolver), interpreter(int16_model, resolver)
    for _ in range(WARMUP):
        a.invoke()
        b.invoke()
    ta, tb = [], []
    for _ in range(RUNS):
        t0 = time.perf_counter_ns()
        a.invoke()
        t1 = time.perf_counter_ns()
        b.invoke()
        t2 = time.perf_counter_ns()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    ma, mb = float(np.median(ta)) / 1e3, float(np.median(tb)) / 1e3
    return ma, mb, mb / ma


def main(argv):
    check_pins()
    out = argv[1] if len(argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "select",
        "int16_latency.csv")
    rows = []
    for op, shapes, fn in case_list():
        m8, m16 = convert(shapes, fn, False), convert(shapes, fn, True)
        b8, b16, br = ratio(m8, m16, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        d8, d16, dr = ratio(m8, m16, OpResolverType.AUTO)
        print(f"{op:<24} builtin {b8:8.1f} -> {b16:8.1f} us ({br:5.2f}x)   "
              f"default {d8:8.1f} -> {d16:8.1f} us ({dr:5.2f}x)", file=sys.stderr)
        rows.append(f"{op},{b8:.1f},{b16:.1f},{br:.3f},{d8:.1f},{d16:.1f},{dr:.3f}")
    cpu = platform.processor() or platform.machine()
    with open(out + ".tmp", "w") as f:
        f.write("# LiteRT 2.3.0 latency of one op, 16x8 vs int8, one thread, medians of "
                f"{RUNS} alternating invokes (scripts/int16_latency/measure.py)\n")
        f.write(f"# machine: {platform.system()} {platform.machine()} {cpu}, "
                f"{os.cpu_count()} cores\n")
        f.write("op,builtin_int8_us,builtin_int16_us,builtin_ratio,"
                "default_int8_us,default_int16_us,default_ratio\n")
        f.write("\n".join(rows) + "\n")
    os.replace(out + ".tmp", out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
