#!/usr/bin/env python3
"""Where two int8 models of the same float model differ (qdbg's and TensorFlow's): per tensor
name, the type, the quantization parameters and, for constants, the stored values; per op
type, the counts; and the file size by what it holds. A triage aid for the corpus
(tests/corpus.rs) and generated (tests/generated.rs) gaps, not a test.

    PY="$(scripts/fixtures/venv.sh | tail -n1)"
    $PY scripts/corpus/diff_int8.py OURS.tflite THEIRS.tflite [--all]
"""

import argparse
import collections
import sys

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

OPNAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}
TYPES = {v: k for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}
NUMPY = {"INT8": np.int8, "INT32": np.int32, "INT64": np.int64, "FLOAT32": np.float32,
         "FLOAT16": np.float16, "INT16": np.int16, "UINT8": np.uint8}


def load(path):
    with open(path, "rb") as f:
        return flatbuffer_utils.read_model_from_bytearray(bytearray(f.read()))


def op_name(model, op):
    c = model.operatorCodes[op.opcodeIndex]
    code = max(c.builtinCode, c.deprecatedBuiltinCode)
    return c.customCode.decode() if code == schema_fb.BuiltinOperator.CUSTOM else OPNAMES[code]


def tensors(model):
    """name -> (type name, scales, zero points, quantized dimension, values or None)."""
    sub = model.subgraphs[0]
    out = {}
    for t in sub.tensors:
        q = t.quantization
        scale = None if q is None or q.scale is None else np.asarray(q.scale, np.float64)
        zp = None if q is None or q.zeroPoint is None else np.asarray(q.zeroPoint, np.int64)
        dim = None if q is None else q.quantizedDimension
        data = model.buffers[t.buffer].data
        ty = TYPES[t.type]
        values = None
        if data is not None and len(data) and ty in NUMPY:
            values = np.frombuffer(bytes(data), NUMPY[ty])
        out[t.name.decode()] = (ty, scale, zp, dim, values)
    return out


def compare(label, a, b, show_all):
    """Notes on how tensor record `a` (ours) differs from `b` (theirs); printed under `label`."""
    (tyo, so, zo, do, vo), (tyt, st, zt, dt, vt) = a, b
    notes = []
    if tyo != tyt:
        notes.append(f"type {tyo} vs {tyt}")
    if (so is None) != (st is None):
        notes.append(f"scale {so} vs {st}")
    elif so is not None:
        if so.shape != st.shape:
            notes.append(f"{so.size} scales vs {st.size}")
        else:
            rel = np.max(np.abs(so - st) / np.maximum(np.abs(st), 1e-30))
            if rel > 1e-6:
                notes.append(f"scale rel diff {rel:.2e} ({so[:3]} vs {st[:3]})")
        if zo is not None and zt is not None and zo.shape == zt.shape and np.any(zo != zt):
            notes.append(f"zero point {zo[:3]} vs {zt[:3]}")
    if vo is not None and vt is not None:
        if vo.shape != vt.shape:
            notes.append(f"{vo.size} values vs {vt.size}")
        elif np.any(vo != vt):
            d = np.abs(vo.astype(np.float64) - vt.astype(np.float64))
            notes.append(f"values: {np.count_nonzero(d)} of {d.size} differ, max {d.max():g}")
    elif (vo is None) != (vt is None):
        notes.append("constant in one only")
    if notes or show_all:
        print(f"{label}: " + "; ".join(notes or ["same"]))


def by_op(mo, mt, show_all):
    """Op by op (when both models list the same op types in the same order): every input
    and output of op i in ours against the same slot in theirs, whatever the names."""
    so, st = mo.subgraphs[0], mt.subgraphs[0]
    # The borders (QUANTIZE / DEQUANTIZE) are placed in other orders; the rest is in the
    # float model's order in both.
    border = {"QUANTIZE", "DEQUANTIZE"}
    ops_o = [op for op in so.operators if op_name(mo, op) not in border]
    ops_t = [op for op in st.operators if op_name(mt, op) not in border]
    seq_o = [op_name(mo, op) for op in ops_o]
    seq_t = [op_name(mt, op) for op in ops_t]
    if seq_o != seq_t:
        print("op sequences differ: no op-by-op comparison")
        return
    to, tt = records(mo), records(mt)
    for i, (oo, ot) in enumerate(zip(ops_o, ops_t)):
        for kind, a, b in (("in", oo.inputs, ot.inputs), ("out", oo.outputs, ot.outputs)):
            for slot, (x, y) in enumerate(zip(a, b)):
                if x < 0 or y < 0:
                    continue
                compare(f"op {i} {seq_o[i]} {kind}{slot} {so.tensors[x].name.decode()[-50:]}",
                        to[x], tt[y], show_all)


def records(model):
    """Tensor index -> record, as `tensors` gives them by name."""
    by_name = tensors(model)
    return [by_name[t.name.decode()] for t in model.subgraphs[0].tensors]


def describe_size(model, label):
    sub = model.subgraphs[0]
    by_type = collections.Counter()
    for t in sub.tensors:
        data = model.buffers[t.buffer].data
        if data is not None:
            by_type[TYPES[t.type]] += len(data)
    ops = collections.Counter(op_name(model, op) for op in sub.operators)
    print(f"{label}: {len(sub.tensors)} tensors, {len(sub.operators)} ops, {len(model.buffers)} buffers; "
          f"constant bytes by type {dict(by_type)}")
    return ops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("theirs")
    ap.add_argument("--all", action="store_true", help="also print tensors that agree")
    ap.add_argument("--by-op", action="store_true",
                    help="match tensors by op position and slot instead of by name")
    a = ap.parse_args()
    mo, mt = load(a.ours), load(a.theirs)
    oo, ot = describe_size(mo, "ours"), describe_size(mt, "theirs")
    for k in sorted(set(oo) | set(ot)):
        if oo[k] != ot[k]:
            print(f"  op {k}: ours {oo[k]}, theirs {ot[k]}")
    if a.by_op:
        by_op(mo, mt, a.all)
        return 0
    to, tt = tensors(mo), tensors(mt)
    for name in sorted(set(to) - set(tt)):
        print(f"only ours: {name} {to[name][0]}")
    for name in sorted(set(tt) - set(to)):
        print(f"only theirs: {name} {tt[name][0]}")
    for name in sorted(set(to) & set(tt)):
        compare(name, to[name], tt[name], a.all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
