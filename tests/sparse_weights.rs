//! Sparse weights (TFLite sparsity metadata, `EXPERIMENTAL_SPARSITY`) are densified when
//! qdbg reads a model. The fixtures in `tests/fixtures/sparse/` (see its README) were made
//! by TensorFlow's converter, plus one hand-built model of encodings the converter never
//! writes. Against oracles that never come from qdbg:
//!
//! - the densified weights, bit for bit, against `NAME.weights.npz` (the Keras weights in
//!   TFLite's layout, or the array a hand-built tensor was encoded from), and every
//!   constant folded at load time (DENSIFY, DEQUANTIZE) against the tensor LiteRT computes;
//! - the model outputs of qdbg's executor against LiteRT's, within 1e-5 of each output's
//!   range;
//! - `qdbg inspect`, `run` and `quantize` on them; malformed sparsity metadata in real
//!   files is refused naming the tensor.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor as CTensor};
use qdbg::exec::Executor;
use qdbg::graph::{Graph, TensorData};

#[allow(
    clippy::all,
    dead_code,
    unused_imports,
    non_camel_case_types,
    non_snake_case,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes,
    unused_lifetimes
)]
#[rustfmt::skip]
#[path = "../src/tflite/schema_generated.rs"]
mod schema_generated;

use schema_generated::tflite as fb;

/// Every fixture of `tests/fixtures/sparse/`.
const FIXTURES: &[&str] = &[
    "sparse_conv",
    "sparse_dense",
    "sparse_wide",
    "sparse_f16",
    "sparse_f16_blocks",
    "sparse_int8",
    "handmade_formats",
];

fn sparse_fixture(name: &str) -> PathBuf {
    common::fixture("sparse").join(name)
}

/// One `.npy` entry of an archive: its shape and its values widened to f64 (exact for
/// every dtype used here: float32, float16, int8, int32), so that comparing f64 bit
/// patterns compares the stored values bit for bit.
struct Array {
    shape: Vec<usize>,
    values: Vec<f64>,
}

/// Reads every entry of an `.npz` (stored, as numpy's `savez` writes them). A small
/// parser of its own: the LiteRT dump holds float16 tensors, which ndarray-npy cannot read.
fn read_npz(path: &Path) -> BTreeMap<String, Array> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(name, parse_npy(&bytes));
    }
    out
}

fn parse_npy(bytes: &[u8]) -> Array {
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not an npy entry");
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    let field = |key: &str, open: char, close: char| -> &str {
        let at = header.find(key).unwrap() + key.len();
        let rest = &header[at..];
        let from = rest.find(open).unwrap() + 1;
        let to = from + rest[from..].find(close).unwrap();
        &rest[from..to]
    };
    let descr = field("'descr':", '\'', '\'');
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape: Vec<usize> = field("'shape':", '(', ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = &bytes[start + header_len..];
    fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        data.chunks_exact(N)
            .map(|c| f(c.try_into().unwrap()))
            .collect()
    }
    let values = match descr {
        "<f4" => each(data, |b| f32::from_le_bytes(b) as f64),
        "<f2" => each(data, |b| half::f16::from_le_bytes(b).to_f64()),
        "<f8" => each(data, f64::from_le_bytes),
        "|i1" => each(data, |b: [u8; 1]| b[0] as i8 as f64),
        "|u1" => each(data, |b: [u8; 1]| b[0] as f64),
        "<i4" => each(data, |b| i32::from_le_bytes(b) as f64),
        "<i8" => each(data, |b| i64::from_le_bytes(b) as f64),
        other => panic!("npy dtype {other} not handled"),
    };
    assert_eq!(values.len(), shape.iter().product::<usize>(), "{header}");
    Array { shape, values }
}

/// The dense weights of `NAME.weights.npz`, by tensor index: zeros (+0.0) except at the
/// listed positions.
fn weight_oracle(name: &str) -> BTreeMap<usize, Array> {
    let npz = read_npz(&sparse_fixture(&format!("{name}.weights.npz")));
    let mut out = BTreeMap::new();
    for (key, shape) in npz.iter().filter(|(k, _)| k.ends_with("_shape")) {
        let prefix = key.trim_end_matches("_shape");
        let id: usize = prefix.trim_start_matches('t').parse().unwrap();
        let shape: Vec<usize> = shape.values.iter().map(|&d| d as usize).collect();
        let mut values = vec![0.0f64; shape.iter().product()];
        let index = &npz[&format!("{prefix}_index")].values;
        let value = &npz[&format!("{prefix}_value")].values;
        assert_eq!(index.len(), value.len());
        for (&i, &v) in index.iter().zip(value) {
            values[i as usize] = v;
        }
        out.insert(id, Array { shape, values });
    }
    out
}

/// A constant's values widened to f64 (exact from float32 and integers).
fn constant_values(graph: &Graph, id: usize) -> Vec<f64> {
    let data = graph.tensor(id).data.as_ref().unwrap_or_else(|| {
        panic!(
            "tensor {id} ('{}') is not a constant",
            graph.tensor(id).name
        )
    });
    match data {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        other => other.to_f32().unwrap().iter().map(|&x| x as f64).collect(),
    }
}

/// Positions where two value lists differ bit for bit (at most a few, for messages).
fn bit_differences(got: &[f64], want: &[f64]) -> Vec<String> {
    assert_eq!(got.len(), want.len(), "element count");
    got.iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (a, b))| a.to_bits() != b.to_bits())
        .take(5)
        .map(|(i, (a, b))| format!("[{i}] qdbg {a:e}, oracle {b:e}"))
        .collect()
}

fn read(name: &str) -> Graph {
    qdbg::tflite::read_model(&sparse_fixture(&format!("{name}.tflite")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn densified_weights_equal_the_oracle_bit_for_bit() {
    for name in FIXTURES {
        let graph = read(name);
        let oracle = weight_oracle(name);
        let densified: Vec<usize> = graph.densified.clone();
        assert_eq!(
            densified,
            oracle.keys().copied().collect::<Vec<_>>(),
            "{name}: densified tensors"
        );
        for (&id, want) in &oracle {
            let t = graph.tensor(id);
            assert_eq!(t.shape, want.shape, "{name}: t{id} shape");
            let diff = bit_differences(&constant_values(&graph, id), &want.values);
            assert!(diff.is_empty(), "{name}: t{id} '{}': {diff:?}", t.name);
        }
        // Each DENSIFY of the file was folded, its output holding its input's values.
        let bytes = std::fs::read(sparse_fixture(&format!("{name}.tflite"))).unwrap();
        let model = fb::root_as_model(&bytes).unwrap();
        let codes = model.operator_codes().unwrap();
        for (index, op) in model
            .subgraphs()
            .unwrap()
            .get(0)
            .operators()
            .unwrap()
            .iter()
            .enumerate()
        {
            if codes.get(op.opcode_index() as usize).builtin_code() != fb::BuiltinOperator::DENSIFY
            {
                continue;
            }
            let (input, output) = (
                op.inputs().unwrap().get(0) as usize,
                op.outputs().unwrap().get(0) as usize,
            );
            let folded = graph.folded.iter().find(|f| f.source_index == index);
            assert!(
                folded.is_some_and(|f| f.op_name == "DENSIFY"
                    && f.output == output
                    && f.why == "sparse weights densified"),
                "{name}: op #{index} (DENSIFY) not folded: {:?}",
                graph.folded
            );
            let diff = bit_differences(
                &constant_values(&graph, output),
                &constant_values(&graph, input),
            );
            assert!(
                diff.is_empty(),
                "{name}: DENSIFY t{input} -> t{output}: {diff:?}"
            );
        }
        assert!(
            graph.nodes.iter().all(|n| n.op.display_name() != "DENSIFY"),
            "{name}: a DENSIFY was left in the graph"
        );
        eprintln!(
            "{name}: {} sparse tensors densified, {} ops folded",
            oracle.len(),
            graph.folded.len()
        );
    }
}

/// `NAME.inputs.npz` as one candle tensor per model input, per sample.
fn samples(graph: &Graph, name: &str) -> Vec<Vec<CTensor>> {
    let npz = read_npz(&sparse_fixture(&format!("{name}.inputs.npz")));
    let arrays: Vec<&Array> = graph
        .inputs
        .iter()
        .map(|&id| &npz[&graph.tensor(id).name])
        .collect();
    let count = arrays[0].shape[0];
    (0..count)
        .map(|s| {
            graph
                .inputs
                .iter()
                .zip(&arrays)
                .map(|(&id, a)| {
                    let per = a.values.len() / count;
                    let v: Vec<f32> = a.values[s * per..(s + 1) * per]
                        .iter()
                        .map(|&x| x as f32)
                        .collect();
                    CTensor::from_vec(v, graph.tensor(id).shape.clone(), &Device::Cpu).unwrap()
                })
                .collect()
        })
        .collect()
}

/// Every tensor LiteRT computes (`tests/oracle/litert_dump.py`, builtin kernels), by
/// index, first axis = samples.
fn litert(name: &str, dir: &Path) -> BTreeMap<usize, Array> {
    let out = dir.join(format!("{name}.litert.npz"));
    let status = Command::new(common::oracle_python())
        .arg(common::repo().join("tests/oracle/litert_dump.py"))
        .arg(sparse_fixture(&format!("{name}.tflite")))
        .arg(sparse_fixture(&format!("{name}.inputs.npz")))
        .arg(&out)
        .status()
        .expect("running the LiteRT oracle");
    assert!(status.success(), "litert_dump.py failed on {name}");
    read_npz(&out)
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches('t').parse().unwrap(), v))
        .collect()
}

#[test]
fn outputs_match_litert() {
    let dir = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let graph = read(name);
        let dumped = litert(name, dir.path());
        // The converter's sparse_f16_blocks has a DEQUANTIZE reading a block-sparse
        // float16 weight, which LiteRT reads as if it were dense (its outputs are NaN);
        // its outputs' oracle is LiteRT on the same model with a DENSIFY put in front
        // of that DEQUANTIZE, made by the generator.
        let expected_path = sparse_fixture(&format!("{name}.expected.npz"));
        let expected: BTreeMap<usize, Array> = if expected_path.exists() {
            read_npz(&expected_path)
                .into_iter()
                .map(|(k, v)| (k.trim_start_matches('t').parse().unwrap(), v))
                .collect()
        } else {
            BTreeMap::new()
        };

        // Constants qdbg folded at load time that LiteRT computes as op outputs (DENSIFY,
        // DEQUANTIZE): the same values, bit for bit, in every sample.
        let mut folded_checked = 0;
        for f in &graph.folded {
            let Some(want) = dumped.get(&f.output) else {
                continue;
            };
            if !expected.is_empty() {
                // LiteRT's DEQUANTIZE of the sparse tensor is the broken one.
                continue;
            }
            let ours = constant_values(&graph, f.output);
            for sample in want.values.chunks(ours.len()) {
                let diff = bit_differences(&ours, sample);
                assert!(
                    diff.is_empty(),
                    "{name}: folded {} t{}: {diff:?}",
                    f.op_name,
                    f.output
                );
            }
            folded_checked += 1;
        }

        let exec = Executor::new(&graph, &Device::Cpu).unwrap();
        let inputs = samples(&graph, name);
        let ours: Vec<Vec<Vec<f64>>> = inputs
            .iter()
            .map(|sample| {
                exec.run(sample)
                    .unwrap()
                    .iter()
                    .map(|o| {
                        o.to_dtype(candle_core::DType::F64)
                            .and_then(|o| o.flatten_all())
                            .and_then(|o| o.to_vec1::<f64>())
                            .unwrap()
                    })
                    .collect()
            })
            .collect();
        for (k, &id) in graph.outputs.iter().enumerate() {
            let want = expected.get(&id).or_else(|| dumped.get(&id)).unwrap();
            let lo = want.values.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = want
                .values
                .iter()
                .cloned()
                .fold(f64::NEG_INFINITY, f64::max);
            let tolerance = 1e-5 * (hi - lo).max(1e-6);
            let per = want.values.len() / inputs.len();
            let mut worst = 0f64;
            for (s, sample) in ours.iter().enumerate() {
                assert_eq!(sample[k].len(), per, "{name}: output {k} size");
                for (a, b) in sample[k].iter().zip(&want.values[s * per..(s + 1) * per]) {
                    worst = worst.max((a - b).abs());
                }
            }
            assert!(
                worst <= tolerance,
                "{name}: output t{id} '{}' differs from LiteRT by {worst:e} (tolerance {tolerance:e}, \
                 range {lo}..{hi})",
                graph.tensor(id).name
            );
            eprintln!(
                "{name}: output t{id} within {worst:e} of {} (range {lo:.3}..{hi:.3}); {folded_checked} \
                 folded constants equal LiteRT's",
                if expected.is_empty() {
                    "LiteRT"
                } else {
                    "LiteRT on the repaired model"
                }
            );
        }
    }
}

fn qdbg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(args)
        .output()
        .expect("running qdbg")
}

#[test]
fn inspect_run_and_quantize() {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    for name in ["sparse_conv", "sparse_f16", "sparse_dense"] {
        for ext in ["tflite", "inputs.npz"] {
            std::fs::copy(
                sparse_fixture(&format!("{name}.{ext}")),
                dir.path().join(format!("{name}.{ext}")),
            )
            .unwrap();
        }
        let model = p(&format!("{name}.tflite"));
        let data = p(&format!("{name}.inputs.npz"));

        let out = qdbg(&["inspect", &model]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: inspect failed: {text}");
        assert!(
            text.contains("DENSIFY of constants (sparse weights densified)"),
            "{text}"
        );
        assert!(
            text.contains("sparse weights densified at load time: t"),
            "{text}"
        );
        assert!(!text.contains("not supported"), "{text}");
        let json = qdbg(&["inspect", "--json", &model]);
        let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert!(!json["densified"].as_array().unwrap().is_empty(), "{json}");

        let out = qdbg(&["run", &model, "--data", &data, "-o", &p("out.npz")]);
        assert!(
            out.status.success(),
            "{name}: run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let int8 = p(&format!("{name}.int8.tflite"));
        let out = qdbg(&["quantize", &model, "--data", &data, "-o", &int8]);
        assert!(
            out.status.success(),
            "{name}: quantize failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The written model holds dense weights: no sparsity left, no DENSIFY, and
        // LiteRT runs it.
        let bytes = std::fs::read(&int8).unwrap();
        let written = fb::root_as_model(&bytes).unwrap();
        let sg = written.subgraphs().unwrap().get(0);
        assert!(
            sg.tensors().unwrap().iter().all(|t| t.sparsity().is_none()),
            "{name}: the quantized model has sparse tensors"
        );
        let graph = qdbg::tflite::read_model(Path::new(&int8)).unwrap();
        assert!(graph.densified.is_empty() && graph.folded.is_empty());
        let status = Command::new(common::oracle_python())
            .arg(common::repo().join("tests/oracle/litert_dump.py"))
            .arg(&int8)
            .arg(&data)
            .arg(p("int8.litert.npz"))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "{name}: LiteRT cannot run qdbg's int8 model"
        );
    }
}

/// `sparse_conv` with `patch` applied to its flatbuffer in place (the structure stays
/// valid, so the reader's own checks are what is tested), read from memory.
fn patched(patch: impl FnOnce(&mut Vec<u8>, &fb::Model<'_>)) -> qdbg::error::Result<Graph> {
    let original = std::fs::read(sparse_fixture("sparse_conv.tflite")).unwrap();
    let model = fb::root_as_model(&original).unwrap();
    let mut bytes = original.clone();
    patch(&mut bytes, &model);
    qdbg::tflite::read_model_bytes(&bytes, Path::new("patched.tflite"))
}

/// The CONV_2D weight of sparse_conv (tensor 2: levels D8 D3 D3 CSR(u8/u8)).
fn conv_weight<'a>(m: &fb::Model<'a>) -> fb::Tensor<'a> {
    m.subgraphs().unwrap().get(0).tensors().unwrap().get(2)
}

fn offset(buf: &[u8], inner: &[u8]) -> usize {
    inner.as_ptr() as usize - buf.as_ptr() as usize
}

fn expect_invalid(result: qdbg::error::Result<Graph>, needles: &[&str]) {
    let err = match result {
        Ok(_) => panic!("a malformed model was accepted"),
        Err(e) => e.to_string(),
    };
    for needle in needles {
        assert!(err.contains(needle), "'{needle}' missing from: {err}");
    }
}

#[test]
fn malformed_sparsity_in_a_real_file_names_the_tensor() {
    let tensor = "tensor 2 ('functional_1/conv2d_1/Relu;";
    // A segment pointing past the indices.
    expect_invalid(
        patched(|b, m| {
            let meta = conv_weight(m)
                .sparsity()
                .unwrap()
                .dim_metadata()
                .unwrap()
                .get(3);
            let seg = meta
                .array_segments_as_uint_8vector()
                .unwrap()
                .values()
                .unwrap();
            let at = offset(m._tab.buf, seg) + 1;
            b[at] = 250;
        }),
        &[
            tensor,
            "invalid sparsity metadata",
            "dim_metadata[3] (dimension 3, SPARSE_CSR)",
            "array_segments",
            "re-export",
        ],
    );
    // An index past the dimension (4 input channels).
    expect_invalid(
        patched(|b, m| {
            let meta = conv_weight(m)
                .sparsity()
                .unwrap()
                .dim_metadata()
                .unwrap()
                .get(3);
            let idx = meta
                .array_indices_as_uint_8vector()
                .unwrap()
                .values()
                .unwrap();
            b[offset(m._tab.buf, idx)] = 4;
        }),
        &[
            tensor,
            "array_indices[0] = 4 is outside the dimension's 4 positions",
        ],
    );
    // A traversal order that is not a permutation.
    expect_invalid(
        patched(|b, m| {
            let order = conv_weight(m)
                .sparsity()
                .unwrap()
                .traversal_order()
                .unwrap();
            let at = order.safe_slice().as_ptr() as usize - m._tab.buf.as_ptr() as usize;
            b[at..at + 4].copy_from_slice(&1i32.to_le_bytes());
        }),
        &[
            tensor,
            "traversal_order [1, 1, 2, 3] lists dimension 1 twice",
        ],
    );
    // A dense shape that no longer matches the metadata.
    expect_invalid(
        patched(|b, m| {
            let shape = conv_weight(m).shape().unwrap();
            let at = shape.safe_slice().as_ptr() as usize - m._tab.buf.as_ptr() as usize;
            b[at..at + 4].copy_from_slice(&9i32.to_le_bytes());
        }),
        &[tensor, "dense_size 8, but that dimension has 9 positions"],
    );
    // A dense level whose size disagrees with the shape.
    expect_invalid(
        patched(|b, m| {
            let meta = conv_weight(m)
                .sparsity()
                .unwrap()
                .dim_metadata()
                .unwrap()
                .get(2);
            let at = meta._tab.loc
                + meta._tab.vtable().get(fb::DimensionMetadata::VT_DENSE_SIZE) as usize;
            b[at..at + 4].copy_from_slice(&2i32.to_le_bytes());
        }),
        &[
            tensor,
            "dim_metadata[2] (dimension 2, DENSE) has dense_size 2",
        ],
    );
    // A dense shape far beyond what the file's few bytes can justify: the weight [5, 8]
    // claiming [5, 2^24] (its indices, all below 8, stay valid) is refused before the
    // reader allocates 5 * 2^24 floats.
    expect_invalid(
        patched(|b, m| {
            let tensors = m.subgraphs().unwrap().get(0).tensors().unwrap();
            let fc = tensors
                .iter()
                .find(|t| t.sparsity().is_some() && t.shape().unwrap().len() == 2)
                .unwrap();
            let shape = fc.shape().unwrap();
            let at = shape.safe_slice()[1..].as_ptr() as usize - m._tab.buf.as_ptr() as usize;
            b[at..at + 4].copy_from_slice(&(1i32 << 24).to_le_bytes());
        }),
        &[
            "tensor 12 ('Identity1') is sparse with a dense shape of [5, 16777216]",
            "that is 83886440 dense elements, more than qdbg expands from a 4032-byte file (16777216)",
            "convert it without sparsification",
        ],
    );
    // A DENSIFY whose output does not have its input's shape.
    expect_invalid(
        patched(|b, m| {
            let sg = m.subgraphs().unwrap().get(0);
            let op = sg.operators().unwrap().get(0);
            let out = sg
                .tensors()
                .unwrap()
                .get(op.outputs().unwrap().get(0) as usize);
            let shape = out.shape().unwrap();
            let at = shape.safe_slice().as_ptr() as usize - m._tab.buf.as_ptr() as usize;
            b[at..at + 4].copy_from_slice(&7i32.to_le_bytes());
        }),
        &[
            "op #0 (DENSIFY)",
            "a DENSIFY keeps the dtype and the dense shape",
        ],
    );
}
