#!/usr/bin/env python3
"""Inspect or edit a .tflite flatbuffer with the schema bindings LiteRT ships.

usage: tflite_inspect.py inspect MODEL
       tflite_inspect.py add-signature IN OUT KEY

inspect prints one JSON object on stdout, read independently of qdbg's own bindings:
  version, description, num_subgraphs, subgraph_name,
  operator_codes   [{builtin, builtin_code, deprecated_builtin_code, version}]
                   (builtin = max(builtin_code, deprecated_builtin_code), as readers do)
  metadata         [{name, data}]  (data: the buffer's bytes as hex)
  signature_defs   [{key, subgraph_index, inputs: [[name, tensor_index]], outputs: ...}]
  misaligned_buffers  indices of non-empty buffers whose data does not start on a
                      16-byte boundary of the file (the schema's force_align: 16)
  litert_signatures   LiteRT Interpreter.get_signature_list() of the model

add-signature writes a copy of IN (object API round trip) with one signature def KEY
for subgraph 0 mapping each model input and output by its tensor name.
Any error exits non-zero with a message on stderr.
"""

import json
import os
import sys
import tempfile
import warnings


def schema():
    from ai_edge_litert import schema_py_generated
    return schema_py_generated


def text(b):
    return None if b is None else b.decode("utf-8", "replace")


def inspect(path):
    s = schema()
    with open(path, "rb") as f:
        buf = f.read()
    m = s.Model.GetRootAs(buf, 0)
    codes = []
    for i in range(m.OperatorCodesLength()):
        c = m.OperatorCodes(i)
        codes.append({
            "builtin": max(c.BuiltinCode(), c.DeprecatedBuiltinCode()),
            "builtin_code": c.BuiltinCode(),
            "deprecated_builtin_code": c.DeprecatedBuiltinCode(),
            "version": c.Version(),
        })
    misaligned = []
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        o = b._tab.Offset(4)  # field `data`
        if o != 0 and b.DataLength() > 0 and b._tab.Vector(o) % 16 != 0:
            misaligned.append(i)

    def buffer_bytes(index):
        b = m.Buffers(index)
        if b.DataLength() > 0:
            return bytes(b.DataAsNumpy().tobytes())
        if b.Offset() > 1:
            return buf[b.Offset():b.Offset() + b.Size()]
        return b""

    metadata = []
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        metadata.append({"name": text(md.Name()), "data": buffer_bytes(md.Buffer()).hex()})
    sigs = []
    for i in range(m.SignatureDefsLength()):
        sd = m.SignatureDefs(i)
        sigs.append({
            "key": text(sd.SignatureKey()),
            "subgraph_index": sd.SubgraphIndex(),
            "inputs": [[text(sd.Inputs(j).Name()), sd.Inputs(j).TensorIndex()]
                       for j in range(sd.InputsLength())],
            "outputs": [[text(sd.Outputs(j).Name()), sd.Outputs(j).TensorIndex()]
                        for j in range(sd.OutputsLength())],
        })
    sg = m.Subgraphs(0) if m.SubgraphsLength() else None

    from ai_edge_litert.interpreter import Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = Interpreter(model_path=path)
    litert_sigs = {k: {kk: list(vv) for kk, vv in v.items()}
                   for k, v in it.get_signature_list().items()}
    return {
        "version": m.Version(),
        "description": text(m.Description()),
        "num_subgraphs": m.SubgraphsLength(),
        "subgraph_name": text(sg.Name()) if sg is not None else None,
        "operator_codes": codes,
        "metadata": metadata,
        "signature_defs": sigs,
        "misaligned_buffers": misaligned,
        "litert_signatures": litert_sigs,
    }


def add_signature(src, dst, key):
    import flatbuffers
    s = schema()
    with open(src, "rb") as f:
        model = s.ModelT.InitFromPackedBuf(bytearray(f.read()), 0)
    sg = model.subgraphs[0]

    def maps(indices):
        return [s.TensorMapT(name=text(sg.tensors[i].name) if isinstance(sg.tensors[i].name, bytes)
                             else sg.tensors[i].name, tensorIndex=int(i)) for i in indices]

    sig = s.SignatureDefT(inputs=maps(sg.inputs), outputs=maps(sg.outputs),
                          signatureKey=key, subgraphIndex=0)
    model.signatureDefs = [sig]
    b = flatbuffers.Builder(1 << 20)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    out_dir = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix=".tflite_inspect.", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b.Output())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv):
    try:
        if len(argv) == 2 and argv[0] == "inspect":
            json.dump(inspect(argv[1]), sys.stdout)
            print()
        elif len(argv) == 4 and argv[0] == "add-signature":
            add_signature(argv[1], argv[2], argv[3])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001 - report anything as a clean failure
        print(f"tflite_inspect: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
