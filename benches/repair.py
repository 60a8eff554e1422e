#!/usr/bin/env python3
"""Issue 18's benchmark: qdbg's automatic repair beside the tutorial's manual loop in
TensorFlow, in one run on one machine, on MobileNetV3-small (224x224, 100 samples).

- qdbg: `qdbg fix MODEL --data D --target 'sqnr_db >= 30' --recalibrate --json J` in a child
  process (calibration, sensitivity ranking, ranges, float prefix, drop pass, explanation,
  model written, held-out scoring): wall time, medians over --repeat runs.
- TensorFlow 2.21, the tutorial's loop: `QuantizationDebugger(converter, debug_dataset)` once
  (calibrates and quantizes), then for each denylist a user tries:
  `options = QuantizationDebugOptions(denylisted_nodes=...)`,
  `get_nondebug_quantized_model()` and an evaluation of that model in LiteRT on the
  search samples (the SQNR of its output against the float model's). The denylists are
  the float remedies of candidates qdbg's search evaluated (TensorFlow has no per-tensor
  range override, so range remedies are left out): --tf-denylists of them, spread over
  the search, are timed, and the loop over all of qdbg's candidates is that median times
  their number. Also scored: the tutorial's own rule (rmse/scale > 0.7) as a denylist.

Prints JSON lines and the ratios. Run with the benchmark venv (benches/repair.sh).

usage: repair.py QDBG [--samples 100] [--repeat 3] [--tf-denylists 5] [--target EXPR]
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


def images(samples):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import make_fixtures as fx
    return fx.smooth_images(fx.rng_for("bench/repair"), samples)


def sqnr_db(reference, test):
    import numpy as np
    reference = reference.astype(np.float64)
    noise = float(((reference - test.astype(np.float64)) ** 2).sum())
    signal = float((reference ** 2).sum())
    return float("inf") if noise == 0 else 10.0 * np.log10(signal / noise)


def run_model(model_content, data):
    """The model's output on every sample, in LiteRT (TensorFlow's interpreter)."""
    import numpy as np
    import tensorflow as tf
    interpreter = tf.lite.Interpreter(model_content=model_content, num_threads=2)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    outputs = []
    for sample in data:
        x = sample[None].astype(np.float32)
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        outputs.append(y[0])
    return np.stack(outputs)


def child_tf(data_path, denylists_path, search_samples):
    """The tutorial's loop: debugger once, then one quantized model + evaluation per denylist."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import csv
    import io
    import math
    import numpy as np
    import tensorflow as tf
    import make_fixtures as fx
    tf.get_logger().setLevel("ERROR")
    fx.fixture_mobilenet_v3_small("mobilenet_v3_small", 2)
    fn = fx.CONVERTED_FNS[0]
    data = np.load(data_path)
    search = data[:search_samples]
    with open(denylists_path) as f:
        denylists = json.load(f)
    with open(FIXTURE, "rb") as f:
        float_outputs = run_model(f.read(), search)

    t0 = time.perf_counter()
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=fx.int8_converter(fn, {"image": data}),
        debug_dataset=fx.representative_dataset(fn, {"image": data}))
    init_s = time.perf_counter() - t0
    print(json.dumps({"runner": "tensorflow-debugger-init", "seconds": init_s}), flush=True)

    def try_denylist(nodes):
        start = time.perf_counter()
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
        model = debugger.get_nondebug_quantized_model()
        quantized_s = time.perf_counter() - start
        sqnr = sqnr_db(float_outputs, run_model(model, search))
        return quantized_s, time.perf_counter() - start, sqnr

    for nodes in denylists:
        quantized_s, total_s, sqnr = try_denylist(nodes)
        print(json.dumps({"runner": "tensorflow-denylist", "denylisted": len(nodes),
                          "get_nondebug_quantized_model_s": quantized_s, "with_evaluation_s": total_s,
                          "sqnr_db": sqnr}), flush=True)

    # The tutorial's rule, for the result a user following it gets.
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
    rule = [r["tensor_name"] for r in rows
            if float(r["scale"]) > 0 and math.sqrt(float(r["mean_squared_error"])) / float(r["scale"]) > 0.7]
    _, _, sqnr = try_denylist(rule)
    print(json.dumps({"runner": "tensorflow-tutorial-rule", "denylisted": len(rule), "sqnr_db": sqnr}), flush=True)


def child(argv):
    with tempfile.TemporaryFile(mode="w+") as out:
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"repair bench: {argv[:3]} failed with {proc.returncode}:\n{text[-2000:]}")
    return text, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qdbg", nargs="?")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tf-denylists", type=int, default=5)
    ap.add_argument("--target", default="sqnr_db >= 30")
    ap.add_argument("--child-tf", nargs=3, metavar=("DATA", "DENYLISTS", "SEARCH_SAMPLES"))
    args = ap.parse_args()
    if args.child_tf:
        return child_tf(args.child_tf[0], args.child_tf[1], int(args.child_tf[2]))

    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "samples.npy")
        np.save(data, images(args.samples))
        model = os.path.join(tmp, "mobilenet_v3_small.tflite")
        with open(model, "wb") as f, open(FIXTURE, "rb") as src:
            f.write(src.read())
        report = os.path.join(tmp, "fix.json")
        walls, outcome = [], None
        for _ in range(args.repeat):
            _, wall = child([args.qdbg, "fix", model, "--data", data, "--target", args.target, "--recalibrate",
                             "-o", os.path.join(tmp, "fixed.tflite"), "--json", report])
            walls.append(wall)
            with open(report) as f:
                outcome = json.load(f)
            print(json.dumps({"runner": "qdbg-fix", "wall_s": round(wall, 3),
                              "search_s": round(outcome["seconds"], 3),
                              "candidates": len(outcome["candidates"])}), flush=True)

        # The denylists qdbg tried, as TensorFlow can express them: float remedies by the
        # op's output tensor name (what denylisted_nodes takes).
        names = {layer["position"]: layer["tensor"] for layer in outcome["sensitivity"]["layers"]}
        denylists = []
        for candidate in outcome["candidates"]:
            nodes = sorted(names[r["position"]] for r in candidate["remedies"] if r["kind"] == "float")
            if nodes not in denylists:
                denylists.append(nodes)
        step = max(1, len(denylists) // max(1, args.tf_denylists))
        timed = denylists[::step][:args.tf_denylists]
        chosen = outcome["candidates"][outcome["verdict"]["chosen"]] if outcome["verdict"]["kind"] == "met" else None
        chosen_nodes = sorted(names[r["position"]] for r in chosen["remedies"] if r["kind"] == "float") if chosen else []
        if chosen and chosen_nodes not in timed:
            timed.append(chosen_nodes)
        lists = os.path.join(tmp, "denylists.json")
        with open(lists, "w") as f:
            json.dump(timed, f)
        search_samples = outcome["samples"]
        text, tf_wall = child([sys.executable, os.path.abspath(__file__), "--child-tf", data, lists,
                               str(search_samples)])
        rows = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        for r in rows:
            print(json.dumps(r), flush=True)

    init_s = next(r["seconds"] for r in rows if r["runner"] == "tensorflow-debugger-init")
    tries = [r for r in rows if r["runner"] == "tensorflow-denylist"]
    per_try = statistics.median(r["with_evaluation_s"] for r in tries)
    per_model = statistics.median(r["get_nondebug_quantized_model_s"] for r in tries)
    rule = next(r for r in rows if r["runner"] == "tensorflow-tutorial-rule")
    q_wall = statistics.median(walls)
    n = len(outcome["candidates"])
    tf_loop = init_s + n * per_try
    threads = os.environ.get("RAYON_NUM_THREADS") or str(os.cpu_count())
    print(f"\n{args.samples} samples, target '{args.target}', qdbg threads {threads}, medians of {args.repeat} runs")
    print(f"qdbg fix, whole process (calibration, search over {n} candidates, model written): {q_wall:.2f} s "
          f"(target <= 10 s)")
    if chosen:
        print(f"  chosen: {chosen['float_ops']} float ops, {chosen['float_islands']} islands, "
              f"{len(chosen['remedies'])} remedies, {outcome['metric']} {chosen['metric']:.2f} on the search samples")
        tf_chosen = next((r for r in tries if r["denylisted"] == len(chosen_nodes)), None)
        if tf_chosen:
            print(f"  its float denylist in TensorFlow's model, LiteRT: sqnr_db {tf_chosen['sqnr_db']:.2f} "
                  "(ranges not applied there)")
    print(f"TensorFlow, one denylist tried: get_nondebug_quantized_model {per_model:.2f} s, with its LiteRT "
          f"evaluation {per_try:.2f} s (median of {len(tries)}); debugger init {init_s:.2f} s")
    print(f"TensorFlow's loop over the same {n} denylists: {tf_loop:.1f} s -> qdbg {tf_loop / q_wall:.1f}x faster")
    print(f"  even one TensorFlow try (init + one denylist, {init_s + per_try:.1f} s) is "
          f"{(init_s + per_try) / q_wall:.1f}x qdbg's whole search")
    print(f"the tutorial's rule (rmse/scale > 0.7): {rule['denylisted']} ops float, LiteRT sqnr_db "
          f"{rule['sqnr_db']:.2f}")


if __name__ == "__main__":
    main()
