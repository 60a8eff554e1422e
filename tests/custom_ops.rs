//! MediaPipe's custom ops (Convolution2DTransposeBias, MaxPoolingWithArgmax2D,
//! MaxUnpooling2D) against LiteRT's default runtime, the only LiteRT path that runs them
//! (its XNNPACK delegate; LiteRT registers no kernel of its own for them). Fixtures:
//! tests/fixtures/custom_ops/, made by scripts/fixtures/make_custom_op_fixtures.py.
//!
//! - every tensor of qdbg's float executor matches LiteRT within 1e-4 of its range, and
//!   the argmax indices (FLOAT32 tensors holding uint32 bits) are bit-identical;
//! - `qdbg quantize` keeps the ops float, says why, writes them back as CUSTOM ops with
//!   their options bytes unchanged, and LiteRT runs the written model close to float;
//! - `qdbg inspect` names them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor as CTensor};
use ndarray::{ArrayD, Axis};
use ndarray_npy::NpzReader;
use qdbg::exec::Executor;
use qdbg::graph::{Graph, Op, TensorId};

fn fixture(name: &str, ext: &str) -> PathBuf {
    common::fixture(&format!("custom_ops/{name}.{ext}"))
}

fn qdbg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(args)
        .output()
        .expect("running qdbg")
}

/// One candle tensor per model input, per sample (inputs are float32, batch 1).
fn load_inputs(graph: &Graph, path: &Path) -> Vec<Vec<CTensor>> {
    let mut npz = NpzReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let arrays: Vec<ArrayD<f64>> = graph
        .inputs
        .iter()
        .map(|&id| common::read_any(&mut npz, &format!("{}.npy", graph.tensor(id).name)))
        .collect();
    (0..arrays[0].len_of(Axis(0)))
        .map(|s| {
            graph
                .inputs
                .iter()
                .zip(&arrays)
                .map(|(&id, a)| {
                    let v: Vec<f32> = a.index_axis(Axis(0), s).iter().map(|&x| x as f32).collect();
                    CTensor::from_vec(v, graph.tensor(id).shape.clone(), &Device::Cpu).unwrap()
                })
                .collect()
        })
        .collect()
}

/// The argmax outputs: compared bit for bit, as the integers they hold.
fn index_tensors(graph: &Graph) -> Vec<TensorId> {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::MaxPoolingWithArgmax2D(_)))
        .filter_map(|n| n.outputs.get(1).copied())
        .collect()
}

fn check_against_litert(name: &str) {
    let model = fixture(name, "tflite");
    let inputs = fixture(name, "inputs.npz");
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oracle = common::litert_dump_with(&model, &inputs, dir.path(), "default");

    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let samples = load_inputs(&graph, &inputs);
    // ours[tensor][sample] = flattened f32 values
    let mut ours: Vec<Vec<Vec<f32>>> = vec![Vec::new(); graph.tensors.len()];
    for sample in &samples {
        exec.run_observed(sample, &mut |id, value| {
            let v = value
                .flatten_all()
                .and_then(|v| v.to_vec1::<f32>())
                .unwrap();
            ours[id].push(v);
            Ok(())
        })
        .unwrap();
    }

    let indices = index_tensors(&graph);
    assert!(!indices.is_empty(), "{name}: no MaxPoolingWithArgmax2D");
    let mut failures = Vec::new();
    let mut compared = 0;
    for (idx, expected) in &oracle {
        let t = graph.tensor(*idx);
        if ours[*idx].len() != samples.len() {
            failures.push(format!("t{idx} '{}': not computed", t.name));
            continue;
        }
        compared += 1;
        let got = ours[*idx].iter().flatten();
        if indices.contains(idx) {
            // LiteRT's f32 widened to f64 is exact, subnormals included.
            let want: Vec<u32> = expected.iter().map(|&v| (v as f32).to_bits()).collect();
            let got: Vec<u32> = got.map(|v| v.to_bits()).collect();
            if want != got {
                let first = want.iter().zip(&got).position(|(a, b)| a != b);
                failures.push(format!(
                    "t{idx} '{}' (argmax indices) differ, first at element {first:?}: LiteRT {:?}, qdbg {:?}",
                    t.name,
                    first.map(|i| want[i]),
                    first.map(|i| got[i])
                ));
            }
            continue;
        }
        let lo = expected.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = expected.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let tolerance = 1e-4 * (hi - lo).max(1e-6);
        let want: Vec<f64> = expected.iter().copied().collect();
        let got: Vec<f64> = got.map(|&v| v as f64).collect();
        assert_eq!(want.len(), got.len(), "t{idx} '{}': element count", t.name);
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        if worst > tolerance || worst.is_nan() {
            failures.push(format!(
                "t{idx} '{}': max abs error {worst:e} > {tolerance:e} (range {lo}..{hi})",
                t.name
            ));
        }
    }
    // Every op output, the custom ops' included, is in the dump.
    for node in &graph.nodes {
        for out in &node.outputs {
            assert!(
                oracle.iter().any(|(i, _)| i == out),
                "{name}: LiteRT's dump lacks t{out}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {compared} tensors differ from LiteRT:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{name}: {compared} tensors match LiteRT (indices bit for bit)");
}

#[test]
fn encoder_decoder_same_matches_litert() {
    check_against_litert("encoder_decoder_same");
}

#[test]
fn encoder_decoder_valid_matches_litert() {
    check_against_litert("encoder_decoder_valid");
}

#[test]
fn pool_valid_mediapipe_size_matches_litert() {
    check_against_litert("pool_valid_mediapipe_size");
}

#[test]
fn the_reader_types_the_ops_and_keeps_their_option_bytes() {
    let graph = qdbg::tflite::read_model(&fixture("encoder_decoder_same", "tflite")).unwrap();
    let names: Vec<&str> = graph.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(
        names,
        [
            "CONV_2D",
            "MaxPoolingWithArgmax2D",
            "CONV_2D",
            "MaxUnpooling2D",
            "Convolution2DTransposeBias",
            "CONV_2D"
        ]
    );
    let Op::MaxPoolingWithArgmax2D(pool) = &graph.nodes[1].op else {
        unreachable!()
    };
    assert_eq!((pool.filter_h, pool.filter_w, pool.stride_h), (2, 2, 2));
    // MediaPipe's TfLitePoolParams: 10 int32 fields.
    assert_eq!(pool.custom_options.len(), 40);
    let Op::Convolution2DTransposeBias(up) = &graph.nodes[4].op else {
        unreachable!()
    };
    assert_eq!(up.custom_options, [1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0]);
}

#[test]
fn inspect_names_the_custom_ops() {
    let out = qdbg(&[
        "inspect",
        fixture("encoder_decoder_same", "tflite").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for op in [
        "MaxPoolingWithArgmax2D",
        "MaxUnpooling2D",
        "Convolution2DTransposeBias",
    ] {
        assert!(text.contains(op), "{op} missing from:\n{text}");
    }
    assert!(!text.contains("not supported by qdbg"), "{text}");
}

/// Outputs of LiteRT's default runtime for the model's outputs, keyed by tensor index.
fn litert_outputs(model: &Path, inputs: &Path, graph: &Graph) -> Vec<(TensorId, ArrayD<f64>)> {
    let dir = tempfile::tempdir().unwrap();
    common::litert_dump_with(model, inputs, dir.path(), "default")
        .into_iter()
        .filter(|(i, _)| graph.outputs.contains(i))
        .collect()
}

#[test]
fn quantize_keeps_the_custom_ops_float_and_litert_runs_the_result() {
    let name = "encoder_decoder_same";
    let dir = tempfile::tempdir().unwrap();
    // qdbg saves the calibration beside the model: work on a copy.
    let model = dir.path().join("model.tflite");
    std::fs::copy(fixture(name, "tflite"), &model).unwrap();
    let inputs = fixture(name, "inputs.npz");
    let written = dir.path().join("model.int8.tflite");
    let out = qdbg(&[
        "quantize",
        model.to_str().unwrap(),
        "--data",
        inputs.to_str().unwrap(),
        "-o",
        written.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for op in [
        "#1 MaxPoolingWithArgmax2D",
        "#3 MaxUnpooling2D",
        "#4 Convolution2DTransposeBias",
    ] {
        let line = stdout.lines().find(|l| l.contains(op));
        assert!(
            line.is_some_and(|l| l.contains("custom op, kept float")),
            "{op}: {stdout}"
        );
    }
    assert!(stdout.contains("quantized 3 of 6 ops"), "{stdout}");

    // Read back: the custom ops are there with the source's option bytes, the convolutions
    // are int8, and the indices pass from the pooling to the unpooling unconverted.
    let float = qdbg::tflite::read_model(&model).unwrap();
    let int8 = qdbg::tflite::read_model(&written).unwrap();
    let custom = |g: &Graph| -> Vec<(String, Vec<u8>)> {
        g.nodes
            .iter()
            .filter_map(|n| Some((n.op.name().to_string(), n.op.custom_options()?.to_vec())))
            .collect()
    };
    assert_eq!(custom(&int8), custom(&float));
    let pool = int8
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::MaxPoolingWithArgmax2D(_)))
        .unwrap();
    let unpool = int8
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::MaxUnpooling2D(_)))
        .unwrap();
    assert_eq!(unpool.input(1), Some(pool.outputs[1]));
    assert_eq!(int8.tensor(pool.outputs[1]).dtype, qdbg::graph::DType::F32);
    assert!(int8.tensor(pool.outputs[1]).quant.is_none());
    let int8_convs = int8
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d(_)))
        .filter(|n| int8.tensor(n.outputs[0]).dtype == qdbg::graph::DType::I8)
        .count();
    assert_eq!(int8_convs, 3);

    // LiteRT runs it; its outputs stay close to the float model's. The argmax may pick
    // another of two near-equal values after quantization, which moves a value by a
    // pixel after unpooling: the bound is on the mean error, not the worst.
    let want = litert_outputs(&model, &inputs, &float);
    let got = litert_outputs(&written, &inputs, &int8);
    // The decoder's output (the model's second output is the argmax indices).
    let id = float.outputs[0];
    let want = &want.iter().find(|(i, _)| *i == id).unwrap().1;
    let got = &got.iter().find(|(i, _)| *i == id).unwrap().1;
    let range = want.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - want.iter().cloned().fold(f64::INFINITY, f64::min);
    let mean_error = want
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / want.len() as f64;
    eprintln!("quantized output: mean abs error {mean_error:e}, float range {range}");
    assert!(
        mean_error < 0.03 * range,
        "mean abs error {mean_error} against a float range of {range}"
    );
}
