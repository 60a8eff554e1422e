#!/usr/bin/env python3
"""The whole debugging workflow on MobileNetV3-small (224x224, 100 samples): TensorFlow's
QuantizationDebugger against `qdbg debug`, timed in one run on one machine.

TensorFlow (2.21, pinned in scripts/fixtures/requirements.txt): build the converter,
`QuantizationDebugger(converter=..., debug_dataset=...)` (calibrates and quantizes), then
`run()` (per-layer statistics). qdbg: `qdbg debug` on the same float model and samples,
which calibrates, quantizes and runs per-layer verification. Each side runs once cold (no
saved calibration) and the ratio of wall times is printed; `--repeat N` takes the median.

usage: debugger_vs_tf.py QDBG_BINARY [--samples 100] [--repeat 3]
Run with the fixture venv (benches/debugger_vs_tf.sh sets it up).
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
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import make_fixtures as fx  # noqa: E402  (the fixture model and data recipes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qdbg")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
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

    tf_med, qdbg_med = statistics.median(tf_times), statistics.median(qdbg_times)
    print(json.dumps({"runner": "tensorflow-debugger", "samples": args.samples,
                      "median_s": round(tf_med, 3), "runs_s": [round(t, 3) for t in tf_times]}))
    print(json.dumps({"runner": "qdbg-debug", "samples": args.samples,
                      "median_s": round(qdbg_med, 3), "runs_s": [round(t, 3) for t in qdbg_times]}))
    print(f"tensorflow / qdbg: {tf_med / qdbg_med:.1f}x  ({tf_med:.2f} s vs {qdbg_med:.2f} s, medians, "
          f"calibrate + quantize + per-layer debug of {args.samples} samples)")


if __name__ == "__main__":
    main()
