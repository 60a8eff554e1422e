#!/usr/bin/env python3
"""The whole debugging workflow on MobileNetV3-small (224x224, 100 samples): TensorFlow's
QuantizationDebugger against `qdbg debug`, timed in one run on one machine.

TensorFlow (2.21, pinned in scripts/fixtures/requirements.txt): build the converter,
`QuantizationDebugger(converter=..., debug_dataset=...)` (calibrates and quantizes), then
`run()` (per-layer statistics). qdbg: `qdbg debug` on the same float model and samples,
which calibrates, quantizes and runs per-layer verification. Each side runs once cold (no
saved calibration) and the ratio of wall times is printed; `--repeat N` takes the median.

Denylist changes ("calibrate once, try many"): TensorFlow's `get_nondebug_quantized_model()`
after `run()`, with `denylisted_nodes` from its own statistics (`rmse/scale > t`, the
tutorial's rule, for several thresholds t), against qdbg's `select_latency` benchmark
(`--select-bench`: select + write + evaluate on every sample) on the same samples.

usage: debugger_vs_tf.py QDBG_BINARY [--samples 100] [--repeat 3] [--select-bench BINARY]
Run with the fixture venv (benches/debugger_vs_tf.sh sets it up).
"""

import argparse
import csv
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import make_fixtures as fx  # noqa: E402  (the fixture model and data recipes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qdbg")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--select-bench", help="the select_latency benchmark binary")
    args = ap.parse_args()
    tf.get_logger().setLevel("ERROR")

    spec = fx.fixture_mobilenet_v3_small("mobilenet_v3_small", 2)
    fn = fx.CONVERTED_FNS[0]
    images = fx.smooth_images(fx.rng_for("bench/debugger"), args.samples)
    inputs = {"image": images}

    tf_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        rep = fx.representative_dataset(fn, inputs)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=fx.int8_converter(fn, inputs), debug_dataset=rep)
        debugger.run()
        tf_times.append(time.perf_counter() - start)
    nondebug_times = tf_denylist_changes(debugger)

    qdbg_times = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "mobilenet_v3_small.tflite")
        with open(model, "wb") as f:
            f.write(spec["model"])
        data = os.path.join(tmp, "samples.npy")
        np.save(data, images)
        for _ in range(args.repeat):
            calibration = model + ".qdbg-calibration.json"
            if os.path.exists(calibration):
                os.remove(calibration)  # cold: calibrate every time, as TensorFlow does
            start = time.perf_counter()
            subprocess.run([args.qdbg, "debug", model, "--data", data, "--csv",
                            os.path.join(tmp, "layers.csv")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            qdbg_times.append(time.perf_counter() - start)
        select_rows = []
        if args.select_bench:
            out = subprocess.run([args.select_bench, os.path.join(HERE, "..", "tests", "fixtures",
                                                                  "mobilenet_v3_small.tflite"),
                                  data], check=True, capture_output=True, text=True).stdout
            select_rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    tf_med, qdbg_med = statistics.median(tf_times), statistics.median(qdbg_times)
    print(json.dumps({"runner": "tensorflow-debugger", "samples": args.samples,
                      "median_s": round(tf_med, 3), "runs_s": [round(t, 3) for t in tf_times]}))
    print(json.dumps({"runner": "qdbg-debug", "samples": args.samples,
                      "median_s": round(qdbg_med, 3), "runs_s": [round(t, 3) for t in qdbg_times]}))
    print(f"tensorflow / qdbg: {tf_med / qdbg_med:.1f}x  ({tf_med:.2f} s vs {qdbg_med:.2f} s, medians, "
          f"calibrate + quantize + per-layer debug of {args.samples} samples)")
    nd_med = statistics.median(nondebug_times)
    print(json.dumps({"runner": "tensorflow-get_nondebug_quantized_model",
                      "median_s": round(nd_med, 3), "runs_s": [round(t, 3) for t in nondebug_times]}))
    for row in select_rows:
        print(json.dumps(row))
    change = next((r for r in select_rows if r["runner"] == "qdbg-denylist-change"), None)
    if change:
        ours = change["median_ms"] / 1e3
        print(f"denylist change: tensorflow get_nondebug_quantized_model {nd_med:.2f} s (no evaluation) "
              f"vs qdbg select + write + evaluate on {change['samples']} samples {ours * 1e3:.0f} ms "
              f"(target <= 300 ms): {nd_med / ours:.1f}x, medians")


def tf_denylist_changes(debugger, thresholds=(0.4, 0.55, 0.7, 0.85, 1.0)):
    """Seconds of `get_nondebug_quantized_model()` per denylist (rmse/scale > t), as
    TensorFlow's tutorial builds it from the debugger's statistics."""
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
    times = []
    for t in thresholds:
        nodes = [r["tensor_name"] for r in rows
                 if float(r["scale"]) > 0 and math.sqrt(float(r["mean_squared_error"])) / float(r["scale"]) > t]
        start = time.perf_counter()
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
        debugger.get_nondebug_quantized_model()
        times.append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()
