//! The TFLite writer: every fixture survives read → write → read unchanged, LiteRT runs
//! the written models to the same bits as the originals, operator versions equal the
//! converter's, and metadata and signature defs are carried over.
//!
//! The written files are inspected by `tests/oracle/tflite_inspect.py` with the schema
//! bindings LiteRT ships, independently of qdbg's own.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use qdbg::graph::*;
use qdbg::tflite::{model_bytes, read_model, read_model_bytes, write_model};
use serde_json::Value;

/// Every fixture model qdbg can write (all but `unsupported_op`), by file name.
fn fixtures() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(repo().join("tests/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tflite"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .filter(|(name, _)| !name.starts_with("unsupported_op"))
        .collect();
    out.sort();
    assert!(
        out.len() >= 18,
        "expected the float and int8 fixtures, found {out:?}"
    );
    out
}

/// `NAME.inputs.npz` for `NAME.tflite` and `NAME.int8.tflite`.
fn inputs_for(file: &str) -> PathBuf {
    let stem = file.trim_end_matches(".tflite").trim_end_matches(".int8");
    fixture(&format!("{stem}.inputs.npz"))
}

fn read(path: &Path) -> (Vec<u8>, Graph) {
    let bytes = std::fs::read(path).unwrap();
    let graph = read_model_bytes(&bytes, path).unwrap();
    (bytes, graph)
}

fn inspect(model: &Path) -> Value {
    let out = Command::new(oracle_python())
        .arg(repo().join("tests/oracle/tflite_inspect.py"))
        .arg("inspect")
        .arg(model)
        .output()
        .expect("running tflite_inspect.py");
    assert!(
        out.status.success(),
        "tflite_inspect.py failed on {}:\n{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn same_data(a: &TensorData, b: &TensorData) -> bool {
    match (a, b) {
        // Bit patterns: NaN weights must survive too.
        (TensorData::F32(x), TensorData::F32(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        _ => a == b,
    }
}

/// `graph` as a written file holds it: only the tensors something uses, renumbered in
/// order (the writer leaves out constants nothing reads, such as widened float16 weights).
fn as_written(graph: &Graph) -> Graph {
    let index = graph.written_tensor_ids();
    let map = |id: usize| index[id].expect("a used tensor is written");
    let mut g = graph.clone();
    g.tensors = graph
        .tensors
        .iter()
        .zip(&index)
        .filter(|(_, i)| i.is_some())
        .map(|(t, _)| t.clone())
        .collect();
    for node in &mut g.nodes {
        for id in node
            .inputs
            .iter_mut()
            .flatten()
            .chain(node.outputs.iter_mut())
        {
            *id = map(*id);
        }
    }
    for f in &mut g.folded {
        f.input = map(f.input);
        f.output = map(f.output);
    }
    g.inputs = graph.inputs.iter().map(|&i| map(i)).collect();
    g.outputs = graph.outputs.iter().map(|&i| map(i)).collect();
    g
}

/// The graphs hold the same tensors (ids included) and the same ops, and fold the same
/// constant DEQUANTIZEs.
fn assert_same_graph(want: &Graph, got: &Graph, label: &str) {
    assert_eq!(
        want.tensors.len(),
        got.tensors.len(),
        "{label}: tensor count"
    );
    for (i, (a, b)) in want.tensors.iter().zip(&got.tensors).enumerate() {
        let ctx = format!("{label}: tensor {i} ('{}')", a.name);
        assert_eq!(a.name, b.name, "{ctx}: name");
        assert_eq!(a.shape, b.shape, "{ctx}: shape");
        assert_eq!(
            a.shape_signature, b.shape_signature,
            "{ctx}: shape signature"
        );
        assert_eq!(a.dtype, b.dtype, "{ctx}: dtype");
        assert_eq!(a.quant, b.quant, "{ctx}: quantization");
        match (&a.data, &b.data) {
            (None, None) => {}
            (Some(x), Some(y)) => assert!(same_data(x, y), "{ctx}: data differs"),
            (x, y) => panic!(
                "{ctx}: constant {} before, {} after",
                x.is_some(),
                y.is_some()
            ),
        }
    }
    assert_eq!(want.nodes.len(), got.nodes.len(), "{label}: op count");
    for (i, (a, b)) in want.nodes.iter().zip(&got.nodes).enumerate() {
        let ctx = format!("{label}: node {i} ({})", a.op.name());
        assert_eq!(a.op, b.op, "{ctx}: op");
        assert_eq!(a.inputs, b.inputs, "{ctx}: inputs");
        assert_eq!(a.outputs, b.outputs, "{ctx}: outputs");
    }
    assert_eq!(want.inputs, got.inputs, "{label}: model inputs");
    assert_eq!(want.outputs, got.outputs, "{label}: model outputs");
    assert_eq!(want.description, got.description, "{label}: description");
    // Float16 weights stay float16: the written model folds the same DEQUANTIZEs.
    let folds = |g: &Graph| -> Vec<(usize, usize)> {
        g.folded.iter().map(|f| (f.input, f.output)).collect()
    };
    assert_eq!(folds(want), folds(got), "{label}: folded DEQUANTIZEs");
}

#[test]
fn every_fixture_round_trips() {
    for (name, path) in fixtures() {
        let (original, graph) = read(&path);
        for carry in [true, false] {
            let label = format!("{name} (original carried: {carry})");
            let bytes = model_bytes(&graph, carry.then_some(&original[..]))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let again = read_model_bytes(&bytes, Path::new(&name))
                .unwrap_or_else(|e| panic!("{label}: the written model does not read: {e}"));
            assert_same_graph(&as_written(&graph), &again, &label);
            // Writing is deterministic, and a written model rewrites to the same bytes.
            let twice = model_bytes(&again, Some(&bytes)).unwrap();
            assert!(
                twice == bytes,
                "{label}: rewriting the written model changes it"
            );
        }
        if name == "f16_weights.tflite" {
            assert!(
                !graph.folded.is_empty() && graph.tensors.iter().any(|t| t.dtype == DType::F16),
                "f16_weights should fold DEQUANTIZE of FLOAT16 weights"
            );
        }
    }
}

#[test]
fn litert_runs_written_models_to_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    for (name, path) in fixtures() {
        let inputs = inputs_for(&name);
        assert!(inputs.exists(), "{name}: no {}", inputs.display());
        let (original, graph) = read(&path);
        let written = dir.path().join(&name);
        write_model(&graph, Some(&original), &written).unwrap();

        let want_dir = dir.path().join(format!("{name}.want"));
        let got_dir = dir.path().join(format!("{name}.got"));
        std::fs::create_dir_all(&want_dir).unwrap();
        std::fs::create_dir_all(&got_dir).unwrap();
        let want: BTreeMap<usize, _> = litert_dump(&path, &inputs, &want_dir).into_iter().collect();
        // Keyed by the original's tensor index: the written file leaves out tensors
        // nothing uses, so its indices shift past them.
        let index = graph.written_tensor_ids();
        let original_id: BTreeMap<usize, usize> = index
            .iter()
            .enumerate()
            .filter_map(|(id, i)| i.map(|i| (i, id)))
            .collect();
        let got: BTreeMap<usize, _> = litert_dump(&written, &inputs, &got_dir)
            .into_iter()
            .map(|(i, a)| (original_id[&i], a))
            .collect();

        for &out in &graph.outputs {
            assert!(
                want.contains_key(&out) && got.contains_key(&out),
                "{name}: model output t{out} missing from a LiteRT dump"
            );
        }
        // The written model computes the folded DEQUANTIZE outputs again (float16 weights
        // stay float16): everything LiteRT computes must be identical.
        let only_want: BTreeSet<usize> = want
            .keys()
            .filter(|k| !got.contains_key(k))
            .copied()
            .collect();
        let only_got: Vec<usize> = got
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        assert!(
            only_want.is_empty(),
            "{name}: tensors only the original computes: {only_want:?}"
        );
        assert!(
            only_got.is_empty(),
            "{name}: tensors only the written model computes: {only_got:?}"
        );
        for (idx, a) in &want {
            let Some(b) = got.get(idx) else { continue };
            assert_eq!(a.shape(), b.shape(), "{name}: t{idx} shape");
            let differ = a
                .iter()
                .zip(b.iter())
                .filter(|(x, y)| x.to_bits() != y.to_bits())
                .count();
            assert_eq!(
                differ,
                0,
                "{name}: t{idx}: {differ} of {} values differ",
                a.len()
            );
        }
    }
}

#[test]
fn versions_metadata_and_layout_match_the_converter() {
    let dir = tempfile::tempdir().unwrap();
    for (name, path) in fixtures() {
        let (original, graph) = read(&path);
        let written = dir.path().join(&name);
        write_model(&graph, Some(&original), &written).unwrap();
        let want = inspect(&path);
        let got = inspect(&written);

        // Operator codes: the converter's (builtin, version) table, less the codes only
        // folded ops used (DEQUANTIZE of float16 weights). The order is not compared: the
        // fixture generator appends codes for the ops it rewrites.
        let table = |v: &Value| -> BTreeMap<u64, u64> {
            let codes = v["operator_codes"].as_array().unwrap();
            let map: BTreeMap<u64, u64> = codes
                .iter()
                .map(|c| {
                    (
                        c["builtin"].as_u64().unwrap(),
                        c["version"].as_u64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                map.len(),
                codes.len(),
                "{name}: one operator code per builtin"
            );
            map
        };
        let (mut want_codes, got_codes) = (table(&want), table(&got));
        let dropped: Vec<(u64, u64)> = want_codes
            .iter()
            .filter(|(b, _)| !got_codes.contains_key(b))
            .map(|(&b, &v)| (b, v))
            .collect();
        // Folded DEQUANTIZEs of float16 weights are written back (v3: float16 input).
        assert!(
            dropped.is_empty(),
            "{name}: operator codes not written: {dropped:?}"
        );
        want_codes.retain(|b, _| got_codes.contains_key(b));
        assert_eq!(
            got_codes, want_codes,
            "{name}: operator versions (builtin -> version)"
        );
        for c in got["operator_codes"].as_array().unwrap() {
            let builtin = c["builtin_code"].as_i64().unwrap();
            assert_eq!(
                c["deprecated_builtin_code"].as_i64().unwrap(),
                builtin.min(127),
                "{name}: deprecated_builtin_code of {builtin}"
            );
        }

        // Metadata: every entry, byte for byte, except min_runtime_version where the
        // operator codes changed.
        let mut want_meta = want["metadata"].as_array().unwrap().clone();
        if !dropped.is_empty() {
            want_meta.retain(|m| m["name"] != "min_runtime_version");
        }
        assert_eq!(
            got["metadata"].as_array().unwrap(),
            &want_meta,
            "{name}: metadata"
        );
        if name != "quant_dequant.tflite" {
            assert!(!want_meta.is_empty(), "{name}: converter metadata expected");
        }
        for key in [
            "version",
            "description",
            "num_subgraphs",
            "subgraph_name",
            "signature_defs",
        ] {
            assert_eq!(got[key], want[key], "{name}: {key}");
        }
        assert_eq!(
            got["misaligned_buffers"],
            Value::Array(vec![]),
            "{name}: buffer data must start on 16-byte boundaries"
        );
    }
}

#[test]
fn signature_defs_survive() {
    let dir = tempfile::tempdir().unwrap();
    let signed = dir.path().join("multi_io.signed.tflite");
    let status = Command::new(oracle_python())
        .arg(repo().join("tests/oracle/tflite_inspect.py"))
        .arg("add-signature")
        .arg(fixture("multi_io.tflite"))
        .arg(&signed)
        .arg("serving_default")
        .status()
        .unwrap();
    assert!(status.success(), "add-signature failed");
    let (original, graph) = read(&signed);
    let written = dir.path().join("multi_io.rewritten.tflite");
    write_model(&graph, Some(&original), &written).unwrap();

    let want = inspect(&signed);
    let got = inspect(&written);
    assert_eq!(want["signature_defs"].as_array().unwrap().len(), 1);
    assert_eq!(got["signature_defs"], want["signature_defs"]);
    assert_eq!(got["litert_signatures"], want["litert_signatures"]);
    let sig = &got["litert_signatures"]["serving_default"];
    assert_eq!(sig["inputs"].as_array().unwrap().len(), 2, "{sig}");
    assert_eq!(sig["outputs"].as_array().unwrap().len(), 2, "{sig}");

    // Without the original there is nothing to carry.
    let bare = dir.path().join("multi_io.bare.tflite");
    write_model(&graph, None, &bare).unwrap();
    let bare = inspect(&bare);
    assert_eq!(bare["signature_defs"], Value::Array(vec![]));
    assert_eq!(bare["metadata"], Value::Array(vec![]));
}

#[test]
fn min_runtime_version_is_dropped_when_op_versions_change() {
    let path = fixture("conv_ops.tflite");
    let (original, mut graph) = read(&path);
    // A dilated depthwise convolution needs DEPTHWISE_CONV_2D version 2, which the
    // source model's min_runtime_version did not account for.
    let node = graph
        .nodes
        .iter_mut()
        .find(|n| matches!(n.op, Op::DepthwiseConv2d(_)))
        .unwrap();
    if let Op::DepthwiseConv2d(a) = &mut node.op {
        a.dilation_h = 2;
        a.dilation_w = 2;
    }
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("dilated.tflite");
    write_model(&graph, Some(&original), &written).unwrap();
    let got = inspect(&written);
    let names: Vec<&str> = got["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CONVERSION_METADATA"]);
    let depthwise = got["operator_codes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["builtin"] == 4)
        .unwrap();
    assert_eq!(depthwise["version"], 2);
    assert_eq!(read_model(&written).unwrap().nodes.len(), graph.nodes.len());
}

#[test]
fn int8_graphs_get_int8_versions_without_an_original() {
    // Versions come from the graph alone, not from the source's operator codes.
    let (_, graph) = read(&fixture("mobilenet_v3_small.int8.tflite"));
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("m.tflite");
    write_model(&graph, None, &written).unwrap();
    let got = inspect(&written);
    let versions: BTreeMap<u64, u64> = got["operator_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["builtin"].as_u64().unwrap(),
                c["version"].as_u64().unwrap(),
            )
        })
        .collect();
    // CONV_2D 3, DEPTHWISE_CONV_2D 3, ADD 2, MUL 2, MEAN 2, SOFTMAX 2, QUANTIZE 1.
    for (builtin, version) in [(3, 3), (4, 3), (0, 2), (18, 2), (40, 2), (25, 2), (114, 1)] {
        assert_eq!(
            versions.get(&builtin),
            Some(&version),
            "builtin {builtin}: {versions:?}"
        );
    }
    assert_eq!(got["description"], "MLIR Converted.");
}

#[test]
fn unsupported_ops_are_errors_naming_the_op() {
    let path = fixture("unsupported_op.tflite");
    let (original, graph) = read(&path);
    let err = model_bytes(&graph, Some(&original))
        .unwrap_err()
        .to_string();
    assert!(err.contains("FLOOR"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tflite");
    assert!(write_model(&graph, None, &dest).is_err());
    assert!(!dest.exists(), "a failed write must leave no file");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temp files left"
    );
}

#[test]
fn inexpressible_graphs_are_errors_not_panics() {
    let (original, base) = read(&fixture("elementwise_ops.tflite"));
    let constant = base.tensors.iter().position(Tensor::is_constant).unwrap();
    let check = |graph: &Graph, want: &str| {
        let err = model_bytes(graph, Some(&original)).unwrap_err().to_string();
        assert!(err.contains(want), "expected '{want}' in: {err}");
    };

    let mut g = base.clone();
    g.tensors[constant].dtype = DType::I8;
    check(&g, "int8 type cannot hold float32 data");

    let mut g = base.clone();
    g.tensors[constant].shape.push(7);
    check(&g, "values of data, but shape");

    let mut g = base.clone();
    g.nodes[0].inputs.push(Some(10_000));
    check(&g, "refers to tensor 10000");

    let mut g = base.clone();
    g.outputs.push(base.tensors.len());
    check(&g, "a model output refers to tensor");

    let mut g = base.clone();
    g.tensors[0].dtype = DType::Unsupported("unknown");
    check(&g, "element type 'unknown'");

    let mut g = base.clone();
    let max = g
        .nodes
        .iter_mut()
        .find(|n| {
            matches!(
                n.op,
                Op::Binary {
                    kind: BinaryKind::Maximum,
                    ..
                }
            )
        })
        .unwrap();
    max.op = Op::Binary {
        kind: BinaryKind::Maximum,
        activation: FusedActivation::Relu,
    };
    check(&g, "MAXIMUM has no fused activation");

    let mut g = base.clone();
    g.tensors[0].quant = Some(QuantParams {
        scale: vec![0.1, 0.2],
        zero_point: vec![0],
        axis: 0,
    });
    check(&g, "2 scales but 1 zero points");

    let err = model_bytes(&base, Some(b"not a model at all"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("original model"), "{err}");

    // Types the reader keeps verbatim are written verbatim.
    let mut g = base.clone();
    g.tensors[constant].dtype = DType::Unsupported("COMPLEX64");
    let n = g.tensors[constant].num_elements();
    g.tensors[constant].shape = vec![n / 2];
    g.tensors[constant].data = Some(TensorData::Raw(vec![7; n * 4]));
    let again = read_model_bytes(&model_bytes(&g, None).unwrap(), Path::new("c64")).unwrap();
    assert_eq!(
        again.tensors[constant].dtype,
        DType::Unsupported("COMPLEX64")
    );
    assert_eq!(
        again.tensors[constant].data,
        Some(TensorData::Raw(vec![7; n * 4]))
    );
}

#[test]
fn write_model_writes_atomically_and_reports_bad_paths() {
    let (original, graph) = read(&fixture("multi_io.int8.tflite"));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("model.tflite");
    std::fs::write(&dest, b"old").unwrap();
    write_model(&graph, Some(&original), &dest).unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        model_bytes(&graph, Some(&original)).unwrap()
    );
    assert_same_graph(&graph, &read_model(&dest).unwrap(), "model.tflite");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temp files left behind"
    );

    let err = write_model(&graph, None, &dir.path().join("missing/model.tflite"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");

    let mut g = graph.clone();
    g.description.clear();
    let got = read_model_bytes(&model_bytes(&g, None).unwrap(), Path::new("x")).unwrap();
    assert_eq!(got.description, "qdbg");
}
