#!/usr/bin/env python3
"""Issue 9's workflow benchmark, in one run on one machine: the quantization-debugging
workflow on MobileNetV3-small (224x224, 100 samples) with TensorFlow, ai-edge-quantizer and
qdbg, plus LiteRT's inference latency, each with its peak memory. Prints JSON lines and
every ratio.

- LiteRT: invoke() latency of the float fixture and TensorFlow's int8 fixture, one thread
  (XNNPACK, LiteRT's default, and its builtin kernels); qdbg's executor on the same models.
- TensorFlow 2.21: `QuantizationDebugger(converter, debug_dataset)` (calibrates and
  quantizes), `run()` (per-layer statistics), then `get_nondebug_quantized_model()` with a
  denylist from its statistics (rmse/scale > 0.7, the tutorial's rule).
- ai-edge-quantizer: `calibrate` on the 100 samples, `quantize` (static int8 recipe),
  `validate` on 20 samples (as issue 9 states it).
- qdbg: the `select_latency` benchmark (calibrate, quantize, per-layer debug of the 100
  samples, first selection, then denylist changes: select + write + evaluate), and the
  command `qdbg debug --recalibrate` end to end.

Each workflow runs in a child process of its own, timed inside and measured outside: peak
memory is the child's max RSS (wait4's rusage). Medians over --repeat runs.

usage: workflow.py QDBG SELECT_BENCH INFERENCE_BENCH [--samples 100] [--repeat 3]
Run with the benchmark venv (benches/workflow.sh sets everything up).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "mobilenet_v3_small.tflite")
FIXTURE_INT8 = os.path.join(ROOT, "tests", "fixtures", "mobilenet_v3_small.int8.tflite")
FIXTURE_INPUTS = os.path.join(ROOT, "tests", "fixtures", "mobilenet_v3_small.inputs.npz")


def child(argv, env=None):
    """Runs argv; returns (JSON lines it printed, wall seconds, max RSS in MiB).

    The max RSS comes from /usr/bin/time: a child forked from this (TensorFlow-importing)
    process would count the parent's pages it inherited before exec in its own maximum."""
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.NamedTemporaryFile(mode="r") as rss:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + argv, stdout=out,
                              stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"workflow: {argv[:3]} failed with {proc.returncode}")
        out.seek(0)
        rows = [json.loads(line) for line in out if line.startswith("{")]
        max_rss_kib = float(rss.read().strip().splitlines()[-1])
    return rows, wall, max_rss_kib / 1024.0


# ---- children -------------------------------------------------------------------------

def images(samples):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import make_fixtures as fx
    return fx.smooth_images(fx.rng_for("bench/debugger"), samples)


def child_tf(samples):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import math
    import csv
    import io
    import tensorflow as tf
    import make_fixtures as fx
    tf.get_logger().setLevel("ERROR")
    fx.fixture_mobilenet_v3_small("mobilenet_v3_small", 2)
    fn = fx.CONVERTED_FNS[0]
    inputs = {"image": images(samples)}
    t0 = time.perf_counter()
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=fx.int8_converter(fn, inputs), debug_dataset=fx.representative_dataset(fn, inputs))
    t1 = time.perf_counter()
    debugger.run()
    t2 = time.perf_counter()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
    nodes = [r["tensor_name"] for r in rows
             if float(r["scale"]) > 0 and math.sqrt(float(r["mean_squared_error"])) / float(r["scale"]) > 0.7]
    t3 = time.perf_counter()
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    debugger.get_nondebug_quantized_model()
    t4 = time.perf_counter()
    print(json.dumps({"runner": "tensorflow-workflow", "calibrate_quantize_s": t1 - t0, "run_s": t2 - t1,
                      "denylist_change_s": t4 - t3, "denylisted": len(nodes), "total_s": (t2 - t0) + (t4 - t3)}))


def child_aeq(samples, validate):
    import numpy as np
    from ai_edge_quantizer import quantizer, recipe
    data = np.load(os.path.join(os.environ["QDBG_WORKFLOW_TMP"], "samples.npy"))[:samples]
    model = with_signature(FIXTURE)
    t0 = time.perf_counter()
    qt = quantizer.Quantizer(model)
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    feed = lambda arr: {"serving_default": [{"image": arr[i:i + 1]} for i in range(len(arr))]}  # noqa: E731
    calibration = qt.calibrate(feed(data))
    t1 = time.perf_counter()
    qt.quantize(calibration, enable_progress_report=False)
    t2 = time.perf_counter()
    qt.validate(test_data=feed(data[:validate]))
    t3 = time.perf_counter()
    print(json.dumps({"runner": "ai-edge-quantizer-workflow", "calibrate_s": t1 - t0, "quantize_s": t2 - t1,
                      "validate_s": t3 - t2, "validate_samples": validate, "total_s": t3 - t0}))


def with_signature(path):
    """The model with a `serving_default` signature (input `image`, output `logits`):
    ai-edge-quantizer feeds models through signature runners, and the fixture, converted
    from a concrete function, has none. Nothing else changes."""
    from tensorflow.lite.python import schema_py_generated as fb
    import flatbuffers
    with open(path, "rb") as f:
        model = fb.ModelT.InitFromPackedBuf(bytearray(f.read()), 0)
    graph = model.subgraphs[0]

    def tensor_map(name, index):
        m = fb.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    sig = fb.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map("image", graph.inputs[0])]
    sig.outputs = [tensor_map("logits", graph.outputs[0])]
    model.signatureDefs = [sig]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ---- the run --------------------------------------------------------------------------

def med(values):
    return statistics.median(values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qdbg", nargs="?")
    ap.add_argument("select_bench", nargs="?")
    ap.add_argument("inference_bench", nargs="?")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--validate-samples", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", choices=["tf", "aeq"])
    args = ap.parse_args()
    if args.child == "tf":
        return child_tf(args.samples)
    if args.child == "aeq":
        return child_aeq(args.samples, args.validate_samples)

    me = [sys.executable, os.path.abspath(__file__)]
    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        env = {"QDBG_WORKFLOW_TMP": tmp}
        data = os.path.join(tmp, "samples.npy")
        np.save(data, images(args.samples))
        model = os.path.join(tmp, "mobilenet_v3_small.tflite")
        with open(model, "wb") as f, open(FIXTURE, "rb") as src:
            f.write(src.read())
        results = {}

        # Inference latency, one thread each.
        for name, path in (("float", FIXTURE), ("int8", FIXTURE_INT8)):
            rows, _, _ = child([sys.executable, os.path.join(HERE, "litert_latency.py"), path, FIXTURE_INPUTS,
                                "--threads", "1", "--runs", "50", "--resolver", "both"])
            rows += child([args.inference_bench, path, FIXTURE_INPUTS, "50"], {"RAYON_NUM_THREADS": "1"})[0]
            for r in rows:
                results[f"latency-{name}-{r['runner']}"] = r["median_ms"]
                print(json.dumps({**r, "model": name}), flush=True)

        runs = {"tf": [], "aeq": [], "qdbg": [], "qdbg-debug-cli": []}
        for _ in range(args.repeat):
            runs["tf"].append(child(me + ["--child", "tf", "--samples", str(args.samples)], env))
            runs["aeq"].append(child(me + ["--child", "aeq", "--samples", str(args.samples),
                                           "--validate-samples", str(args.validate_samples)], env))
            runs["qdbg"].append(child([args.select_bench, model, data, "9"]))
            cal = model + ".qdbg-calibration.json"
            if os.path.exists(cal):
                os.remove(cal)
            runs["qdbg-debug-cli"].append(child([args.qdbg, "debug", model, "--data", data, "--recalibrate",
                                                 "--csv", os.path.join(tmp, "layers.csv")]))
        for name, rs in runs.items():
            for rows, wall, rss in rs:
                print(json.dumps({"workflow": name, "wall_s": round(wall, 3), "max_rss_mib": round(rss, 1),
                                  "rows": rows}), flush=True)

    def qdbg_total(rows):
        by = {r["runner"]: r["median_ms"] for r in rows}
        # The same steps as TensorFlow's: calibrate + quantize, per-layer debug, and the
        # selective model written (get_nondebug_quantized_model evaluates nothing).
        return (by["qdbg-calibrate"] + by["qdbg-quantize"] + by["qdbg-debug-per-layer"]
                + by["qdbg-selective-model-written"]) / 1e3

    tf_total = med([rows[0]["total_s"] for rows, _, _ in runs["tf"]])
    tf_run = med([rows[0]["run_s"] for rows, _, _ in runs["tf"]])
    tf_change = med([rows[0]["denylist_change_s"] for rows, _, _ in runs["tf"]])
    aeq_total = med([rows[0]["total_s"] for rows, _, _ in runs["aeq"]])
    q_total = med([qdbg_total(rows) for rows, _, _ in runs["qdbg"]])
    q_debug = med([next(r["median_ms"] for r in rows if r["runner"] == "qdbg-debug-per-layer") / 1e3
                   for rows, _, _ in runs["qdbg"]])
    q_debug_hist = med([next(r["median_ms"] for r in rows
                             if r["runner"] == "qdbg-debug-per-layer-histograms") / 1e3
                        for rows, _, _ in runs["qdbg"]])
    q_change = med([next(r["median_ms"] for r in rows if r["runner"] == "qdbg-denylist-change") / 1e3
                    for rows, _, _ in runs["qdbg"]])
    q_cli = med([wall for _, wall, _ in runs["qdbg-debug-cli"]])
    rss = {name: med([r for _, _, r in rs]) for name, rs in runs.items()}

    threads = os.environ.get("RAYON_NUM_THREADS") or str(os.cpu_count())
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} logical cores; qdbg threads: {threads}; "
          f"{args.samples} samples; medians of {args.repeat} runs")
    for name in ("float", "int8"):
        ours = results.get(f"latency-{name}-qdbg")
        for lr in ("litert-default", "litert-builtin"):
            theirs = results.get(f"latency-{name}-{lr}")
            if ours and theirs:
                print(f"inference {name}, 1 thread: qdbg {ours:.2f} ms vs {lr} {theirs:.2f} ms: "
                      f"qdbg/{lr} = {ours / theirs:.2f} (target <= 1.0 for int8)")
    print(f"whole workflow (calibrate + quantize + per-layer debug + selective model written): qdbg {q_total:.2f} s, "
          f"TensorFlow {tf_total:.2f} s (debugger init + run + get_nondebug_quantized_model) -> "
          f"{tf_total / q_total:.1f}x faster (target >= 10x)")
    print(f"  vs ai-edge-quantizer calibrate + quantize + validate({args.validate_samples}): {aeq_total:.2f} s -> "
          f"{aeq_total / q_total:.1f}x faster (target >= 3x)")
    print(f"  qdbg debug CLI end to end (cold calibration, CSV written): {q_cli:.2f} s -> "
          f"TensorFlow/qdbg {tf_total / q_cli:.1f}x, ai-edge-quantizer/qdbg {aeq_total / q_cli:.1f}x")
    print(f"per-layer debug alone: qdbg {q_debug:.2f} s vs TensorFlow run() {tf_run:.2f} s -> {tf_run / q_debug:.1f}x")
    print(f"  with every extra metric and the value and error histograms the dashboard draws (not in TensorFlow's run): "
          f"qdbg {q_debug_hist:.2f} s -> {tf_run / q_debug_hist:.1f}x")
    changes = [r for rows, _, _ in runs["qdbg"] for r in rows if r["runner"] == "qdbg-denylist-change"]
    early = med([next(r["median_ms"] for r in rows if r["runner"] == "qdbg-denylist-change-first-layers") / 1e3
                 for rows, _, _ in runs["qdbg"]])
    if changes:
        print(f"  denylist changes, each run (ms): {changes[0]['runs_ms']}; (float ops, output SQNR dB): "
              f"{changes[0]['float_ops_and_sqnr_db']}")
    print(f"  least favourable change (denylisting the first layers, nothing reusable): {early * 1e3:.0f} ms")
    print(f"denylist change: qdbg select + write + evaluate {q_change * 1e3:.0f} ms (target <= 300 ms) vs "
          f"TensorFlow options + get_nondebug_quantized_model {tf_change:.2f} s (no evaluation) -> "
          f"{tf_change / q_change:.1f}x")
    print(f"peak memory (max RSS): qdbg workflow {rss['qdbg']:.0f} MiB (target <= 250 MB), qdbg debug CLI "
          f"{rss['qdbg-debug-cli']:.0f} MiB, TensorFlow {rss['tf']:.0f} MiB, ai-edge-quantizer {rss['aeq']:.0f} MiB; "
          f"TensorFlow/qdbg {rss['tf'] / rss['qdbg']:.1f}x, ai-edge-quantizer/qdbg {rss['aeq'] / rss['qdbg']:.1f}x")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
