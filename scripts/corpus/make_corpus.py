#!/usr/bin/env python3
"""Real-world corpus: the float .tflite models MediaPipe publishes in its PyPI wheel, with
TensorFlow's own references for each, made the way TensorFlow quantizes and debugs a float
.tflite it did not make (shared/reference/WORKFLOW.md, last two sections):
`Calibrator(f32_copy).calibrate(gen)` then `mlir_quantize(calibrated)`, and
`QuantizationDebugger(quant_debug_model_content=mlir_quantize(calibrated,
enable_numeric_verify=True), float_model_content=f32_copy, debug_dataset=gen)`.

Run through scripts/make_corpus.sh (pinned venv, scripts/fixtures/requirements.txt).
The wheel (pinned version and sha256) is downloaded once into ~/.cache/qdbg/corpus.
Writes tests/fixtures/corpus/:
  NAME.tflite          the published model, byte for byte
  NAME.inputs.npz      SAMPLES image-like samples (smooth noise in the model's input range, 8-bit
                       levels stored as float16), keyed by input tensor name
  NAME.tf_int8.tflite  TensorFlow's full-int8 model (float I/O) of the float32 copy
  NAME.tf_debug.csv    TensorFlow's QuantizationDebugger layer_statistics_dump (per-layer)
  manifest.json        per model: source, kind, input range, what TensorFlow did, sizes
The float32 copy: every DEQUANTIZE of a float16 constant and every DENSIFY of a sparse
constant folded into a float32 constant, and those op codes removed (TensorFlow's quantizer
refuses float16 weights; its calibrator's interpreter has no DEQUANTIZE kernel).
Where TensorFlow fails on a model the manifest says why and no references are written.
Deterministic: fixed seeds, npz archives with fixed timestamps.
make_architectures.py adds the keras_* models (Keras architectures converted by TensorFlow)
to the same directory and manifest through make_model, so both sources get the same references.
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import traceback
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from tensorflow.lite.python import convert as tf_convert  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema_fb  # noqa: E402
from tensorflow.lite.python.optimize import calibrator  # noqa: E402
from tensorflow.lite.tools import flatbuffer_utils  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from make_conformance import write_bytes, write_npz  # noqa: E402

WHEEL = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"
PIN = "mediapipe==0.10.14"
SEED = 20261207
# 8 samples (tests/corpus.rs runs them all in well under a minute; the TensorFlow references
# are made on the same samples).
SAMPLES = 8
OPNAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}

# Input ranges: MediaPipe's ImageToTensorCalculator output_tensor_float_range for each model.
# selfie_segmentation: [0, 1], read from selfie_segmentation_cpu.binarypb in the wheel; the
# landmark models: [0, 1] in MediaPipe's *_landmark_by_roi_cpu graph configs (not shipped in
# the wheel); the detectors and everything else: [-1, 1].
ZERO_ONE = {"selfie_segmentation", "selfie_segmentation_landscape", "face_landmark",
            "hand_landmark_full", "hand_landmark_lite", "pose_landmark_full"}
# Custom ops qdbg does not run: listed in the manifest as refused, no references.
REFUSED = {"face_landmark_with_attention":
           "custom ops Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks "
           "(MediaPipe's attention mesh) are not implemented in qdbg"}


class CorpusError(Exception):
    pass


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(cache):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, WHEEL)
    if not os.path.exists(path):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
                        "-d", cache, PIN], check=True, stdout=sys.stderr)
    if not os.path.exists(path):
        raise CorpusError(f"pip download did not write {path}")
    return path


def published_models(wheel):
    """(name, path in the wheel, bytes) of every .tflite under mediapipe/modules/."""
    with zipfile.ZipFile(wheel) as z:
        paths = sorted(n for n in z.namelist()
                       if n.startswith("mediapipe/modules/") and n.endswith(".tflite"))
        return [(os.path.basename(p)[: -len(".tflite")], p, z.read(p)) for p in paths]


# ---------------------------------------------------------------------------------------
# The float32 copy
# ---------------------------------------------------------------------------------------


def opcode_name(model, op):
    c = model.operatorCodes[op.opcodeIndex]
    code = max(c.builtinCode, c.deprecatedBuiltinCode)
    return c.customCode.decode() if code == schema_fb.BuiltinOperator.CUSTOM else OPNAMES[code]


def float32_copy(data):
    """Every DEQUANTIZE of a float16 constant and every DENSIFY of a sparse constant folded
    into a float32 constant (values as LiteRT computes them), those op codes removed.
    Returns (bytes, what was folded)."""
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    sub = model.subgraphs[0]
    foldable = {"DEQUANTIZE", "DENSIFY"}

    def is_const(t):
        b = model.buffers[sub.tensors[t].buffer]
        return b.data is not None and len(b.data) > 0

    folds = [i for i, op in enumerate(sub.operators)
             if opcode_name(model, op) in foldable]
    if not folds:
        return data, {}
    counts = {}
    need_litert = any(opcode_name(model, sub.operators[i]) == "DENSIFY" for i in folds)
    values = {}
    if need_litert:
        # LiteRT computes DENSIFY (and DEQUANTIZE) of constants at prepare time; its builtin
        # kernels without delegates keep every tensor.
        it = Interpreter(model_content=bytes(data), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
        for i in folds:
            out = sub.operators[i].outputs[0]
            values[out] = it.get_tensor(out).copy()
    removed = set()
    dropped_inputs = set()
    for i in folds:
        op = sub.operators[i]
        name = opcode_name(model, op)
        (src,), (out,) = op.inputs, op.outputs
        if out in values:
            v = values[out]
        else:
            t = sub.tensors[src]
            if not is_const(src) or t.type != schema_fb.TensorType.FLOAT16 or t.sparsity is not None:
                continue
            v = np.frombuffer(bytes(model.buffers[t.buffer].data), np.float16).astype(np.float32)
        v = np.ascontiguousarray(v, np.float32)
        buf = schema_fb.BufferT()
        buf.data = np.frombuffer(v.tobytes(), np.uint8)
        model.buffers.append(buf)
        ot = sub.tensors[out]
        ot.buffer = len(model.buffers) - 1
        ot.type = schema_fb.TensorType.FLOAT32
        removed.add(i)
        dropped_inputs.add(src)
        counts[name] = counts.get(name, 0) + 1
    sub.operators = [op for i, op in enumerate(sub.operators) if i not in removed]
    # Constants only the folded ops read: emptied (the tensors stay, so indices hold).
    still_read = {t for op in sub.operators for t in op.inputs}
    for t in dropped_inputs - still_read:
        model.buffers[sub.tensors[t].buffer].data = None
    # Op codes no op uses any more: removed, indices remapped.
    used = sorted({op.opcodeIndex for op in sub.operators})
    remap = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for op in sub.operators:
        op.opcodeIndex = remap[op.opcodeIndex]
    left = {opcode_name(model, op) for op in sub.operators} & foldable
    if left:
        raise CorpusError(f"float32 copy still has {sorted(left)}")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), counts


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------


def smooth_images(rng, n, shape, lo, hi):
    """Image-like samples: a few octaves of bilinearly upsampled noise, in [lo, hi]."""
    h, w, c = shape
    acc = np.zeros((n, h, w, c), np.float32)
    for cells, gain in ((4, 1.0), (16, 0.5), (64, 0.2)):
        gh, gw = max(2, h * cells // 256), max(2, w * cells // 256)
        grid = rng.standard_normal((n, gh, gw, c)).astype(np.float32)
        acc += gain * tf.image.resize(grid, (h, w), method="bilinear").numpy()
    acc += 0.05 * rng.standard_normal(acc.shape).astype(np.float32)
    acc = acc / (np.abs(acc).max(axis=(1, 2, 3), keepdims=True) + 1e-6)  # [-1, 1]
    # 8-bit pixel levels mapped to [lo, hi], stored as float16 (exact for these values up to
    # float16 rounding; qdbg and LiteRT widen float16 arrays to the float32 inputs, and
    # TensorFlow is given the same widened values): half the bytes of float32.
    levels = np.round((acc + 1.0) * 127.5)
    return (lo + levels / 255.0 * (hi - lo)).astype(np.float16)


def inputs_for(name, model_bytes, input_range=None):
    """SAMPLES image-like samples per input; the range is `input_range` where the caller
    knows it (models made by make_architectures.py), else MediaPipe's for `name`."""
    it = Interpreter(model_content=model_bytes)
    if input_range is not None:
        lo, hi = input_range
    else:
        lo, hi = (0.0, 1.0) if name in ZERO_ONE else (-1.0, 1.0)
    rng = np.random.default_rng([SEED, sum(map(ord, name))])
    data = {}
    for d in it.get_input_details():
        shape = [int(s) for s in d["shape"]]
        if len(shape) != 4 or shape[0] != 1 or d["dtype"] != np.float32:
            raise CorpusError(f"{name}: input {d['name']} {shape} {d['dtype']} is not an image")
        data[d["name"]] = smooth_images(rng, SAMPLES, shape[1:], lo, hi)
    return data, [lo, hi]


def representative(model_bytes, data):
    names = [d["name"] for d in Interpreter(model_content=model_bytes).get_input_details()]

    def gen():
        for i in range(SAMPLES):
            yield [data[n][i : i + 1].astype(np.float32) for n in names]

    return gen


# ---------------------------------------------------------------------------------------


def op_counts(model_bytes):
    m = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    out = {}
    for op in m.subgraphs[0].operators:
        n = opcode_name(m, op)
        out[n] = out.get(n, 0) + 1
    return dict(sorted(out.items()))


def kind_of(ops, data):
    m = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    sub = m.subgraphs[0]
    parts = ["float"]
    if "DEQUANTIZE" in ops:
        parts.append("float16 weights")
    if any(t.sparsity is not None for t in sub.tensors):
        parts.append("sparse weights")
    custom = sorted(n for n in ops if n not in OPNAMES.values())
    if custom:
        parts.append("custom ops: " + ", ".join(custom))
    return parts[0] + (" (" + "; ".join(parts[1:]) + ")" if len(parts) > 1 else "")


def tf_references(f32, data):
    gen = representative(f32, data)
    calibrated = calibrator.Calibrator(f32).calibrate(gen)
    int8 = bytes(tf_convert.mlir_quantize(calibrated))
    debug_model = bytes(tf_convert.mlir_quantize(calibrated, enable_numeric_verify=True))
    dbg = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=debug_model, float_model_content=f32, debug_dataset=gen)
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    return int8, buf.getvalue()


def short(e):
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: " + " ".join(lines[:2])[:400]


def load_manifest(path, keep):
    """The manifest at `path` with only the model entries `keep(name, entry)` accepts (both
    generators write into the same manifest.json; each replaces only its own entries)."""
    manifest = {"samples": SAMPLES, "models": {}}
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
        manifest["models"] = {n: e for n, e in manifest["models"].items() if keep(n, e)}
    if manifest.get("samples", SAMPLES) != SAMPLES:
        raise CorpusError(f"{path}: made with {manifest['samples']} samples, "
                          f"this script uses {SAMPLES}")
    manifest["samples"] = SAMPLES
    return manifest


def save_manifest(path, manifest):
    manifest["models"] = dict(sorted(manifest["models"].items()))
    write_bytes(path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())


def write_float_model(out, name, data, entry):
    """Writes NAME.tflite, removes the references of an earlier run (a model TensorFlow now
    fails on must not keep stale ones), and records the file in `entry`."""
    ops = op_counts(data)
    entry.update({"sha256": sha256(data), "bytes": len(data), "kind": kind_of(ops, data),
                  "ops": ops})
    write_bytes(os.path.join(out, name + ".tflite"), data)
    for stale in (".inputs.npz", ".tf_int8.tflite", ".tf_debug.csv"):
        if os.path.exists(os.path.join(out, name + stale)):
            os.remove(os.path.join(out, name + stale))


def make_model(out, name, data, entry, input_range=None):
    """Writes NAME.tflite (`data`), NAME.inputs.npz and TensorFlow's references for one
    float model, and fills `entry` (the model's manifest entry) with what TensorFlow did.
    Shared by both generators so that every model in the corpus gets the same references.
    Returns the samples (input name -> array), written whether or not TensorFlow failed."""
    write_float_model(out, name, data, entry)
    inputs, rng = inputs_for(name, data, input_range)
    entry["input_range"] = rng
    write_npz(os.path.join(out, name + ".inputs.npz"), inputs)
    try:
        f32, folded = float32_copy(data)
        entry["float32_copy"] = {"folded": folded, "bytes": len(f32)}
        int8, csv_text = tf_references(f32, inputs)
    except Exception as e:  # noqa: BLE001 - what TensorFlow said goes in the manifest
        traceback.print_exc(file=sys.stderr)
        entry["tensorflow"] = "failed: " + short(e)
        print(f"{name}: TensorFlow {entry['tensorflow']}")
        return inputs
    write_bytes(os.path.join(out, name + ".tf_int8.tflite"), int8)
    write_bytes(os.path.join(out, name + ".tf_debug.csv"), csv_text.encode())
    entry["tensorflow"] = "ok"
    entry["tf_int8_bytes"] = len(int8)
    entry["tf_debug_rows"] = csv_text.count("\n") - 1
    entry["tf_int8_ops"] = op_counts(int8)
    print(f"{name}: {entry['kind']}; {len(data)} B, TF int8 {len(int8)} B, "
          f"{entry['tf_debug_rows']} debugger rows; folded {folded}", flush=True)
    return inputs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "corpus"))
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/qdbg/corpus"))
    ap.add_argument("--only", nargs="*", help="model names to (re)make; the manifest keeps the others")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    tf.random.set_seed(SEED)

    wheel = fetch_wheel(args.cache)
    with open(wheel, "rb") as f:
        wheel_sha = sha256(f.read())
    if wheel_sha != WHEEL_SHA256:
        raise CorpusError(f"{wheel}: sha256 {wheel_sha}, expected {WHEEL_SHA256}")
    manifest_path = os.path.join(out, "manifest.json")
    # A full run replaces every entry from the wheel (those have its "path"); --only keeps
    # all but the models it remakes; entries of make_architectures.py always stay.
    manifest = load_manifest(
        manifest_path,
        lambda n, e: bool(args.only) or not e.get("path", "").startswith("mediapipe/"))
    manifest["source"] = {"wheel": WHEEL, "pip": PIN, "sha256": wheel_sha}

    for name, path, data in published_models(wheel):
        if args.only and name not in args.only:
            continue
        entry = {"path": path}
        manifest["models"][name] = entry
        if name in REFUSED:
            write_float_model(out, name, data, entry)
            entry["qdbg"] = "refused: " + REFUSED[name]
            entry["tensorflow"] = "not run (qdbg refuses the model)"
            print(f"{name}: refused ({REFUSED[name]})")
            continue
        make_model(out, name, data, entry)

    save_manifest(manifest_path, manifest)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CorpusError as e:
        print(f"make_corpus: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
