//! Whole-model 16x8 (`qdbg quantize --activations int16`) against its two oracles:
//! TensorFlow's 16x8 conversion of the same float model and calibration data
//! (`tests/fixtures/16x8/`, made by `scripts/fixtures/make_16x8_references.py`)
//! for the parameters and the QUANTIZE / DEQUANTIZE structure, and LiteRT's builtin kernels
//! for the values: every int16 and int8 tensor of qdbg's written file, and of TensorFlow's,
//! bit-exact with LiteRT.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use ndarray::Axis;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::exec::Executor;
use qdbg::graph::{DType, Graph, QuantParams, TensorData};
use qdbg::quant::calibrate;
use qdbg::quant::int16_plan::whole_model_int16_ops;
use qdbg::quant::plan::plan_activations;
use qdbg::quant::quantize::{quantize_graph, QuantizeOptions, QuantizedModel};

/// The demo model and its calibration data, and the MobileNetV3-small fixture.
fn demo() -> (PathBuf, PathBuf) {
    let demo = common::repo().join("demo");
    (demo.join("model.tflite"), demo.join("calibration.npy"))
}

fn mobilenet() -> (PathBuf, PathBuf) {
    (
        common::fixture("mobilenet_v3_small.tflite"),
        common::fixture("mobilenet_v3_small.inputs.npz"),
    )
}

/// qdbg's whole-model 16x8 quantization, as `qdbg quantize --activations int16` makes it.
fn qdbg_16x8(model: &Path, data: &Path) -> QuantizedModel {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let data = load_dataset(
        data,
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let ops = whole_model_int16_ops(&graph);
    let plan = plan_activations(&graph, &cal).with_int16_ops(&graph, &cal, &ops);
    quantize_graph(
        &graph,
        &plan,
        &QuantizeOptions {
            float_unless_int16: true,
            ..Default::default()
        },
    )
    .unwrap()
}

/// TensorFlow names the int16 twin a QUANTIZE writes `NAME_int16`, and the copy an op
/// reads with its own parameters `NAME_requantized`; qdbg `NAME/int16`, `NAME/requantized`.
fn qdbg_name(tf_name: &str) -> String {
    for suffix in ["int16", "requantized"] {
        if let Some(base) = tf_name.strip_suffix(&format!("_{suffix}")) {
            return format!("{base}/{suffix}");
        }
    }
    tf_name.to_string()
}

/// Every quantized tensor of TensorFlow's 16x8 model against qdbg's of the same name and
/// type: scales within 1e-5 relative (the int8 parameter test's tolerance: both sides
/// derive them from float32 calibration ranges that their float kernels compute a few
/// ulps apart), the same zero points, int8 weights equal but for rare ties (one step), int64 biases within 1e-5
/// relative or one step (the bias scale inherits the input scale's difference).
fn compare_with_tensorflow(ours: &Graph, tf: &Graph) -> (usize, Vec<String>) {
    let mut by_name: HashMap<(&str, DType), Option<usize>> = HashMap::new();
    for (id, t) in ours
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| t.quant.is_some())
    {
        by_name
            .entry((t.name.as_str(), t.dtype))
            .and_modify(|e| *e = None)
            .or_insert(Some(id));
    }
    let close = |a: &QuantParams, b: &QuantParams| {
        a.zero_point == b.zero_point
            && a.scale.len() == b.scale.len()
            && a.scale
                .iter()
                .zip(&b.scale)
                .all(|(o, t)| ((o - t) / t).abs() <= 1e-5)
    };
    let (mut compared, mut mismatches) = (0, Vec::new());
    for t in &tf.tensors {
        let Some(tq) = &t.quant else { continue };
        if !matches!(t.dtype, DType::I8 | DType::I16 | DType::I64) {
            continue;
        }
        let name = qdbg_name(&t.name);
        let ours_t = match by_name.get(&(name.as_str(), t.dtype)) {
            Some(Some(id)) => ours.tensor(*id),
            Some(None) => continue,
            None => {
                if !t.is_constant() {
                    mismatches.push(format!("{}: TF {}, not in qdbg's model", t.name, t.dtype));
                }
                continue;
            }
        };
        compared += 1;
        let oq = ours_t.quant.as_ref().unwrap();
        if !close(oq, tq) {
            mismatches.push(format!(
                "{}: qdbg scale {:?} zp {:?} vs TF scale {:?} zp {:?}",
                t.name,
                &oq.scale[..oq.scale.len().min(3)],
                &oq.zero_point[..oq.zero_point.len().min(3)],
                &tq.scale[..tq.scale.len().min(3)],
                &tq.zero_point[..tq.zero_point.len().min(3)]
            ));
            continue;
        }
        match (&ours_t.data, &t.data) {
            (Some(TensorData::I8(a)), Some(TensorData::I8(b))) => {
                // TensorFlow's 16x8 quantizer multiplies by the reciprocal scale where
                // qdbg divides (int8's converter): a weight on a rounding tie may land a
                // step apart (2 of MobileNetV3's 1.5M), never more.
                let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
                let worst = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (*x as i32 - *y as i32).abs())
                    .max();
                if a.len() != b.len() || worst > Some(1) || differ * 10_000 > a.len() {
                    mismatches.push(format!("{}: {differ} int8 weights differ", t.name));
                }
            }
            (Some(TensorData::I64(a)), Some(TensorData::I64(b))) => {
                // round(bias / scale) with scales 1e-5 apart: values 1e-5 apart too.
                let off = a
                    .iter()
                    .zip(b)
                    .find(|(x, y)| (*x - *y).abs() as f64 > 1.0f64.max(1e-5 * (**y as f64).abs()));
                if a.len() != b.len() || off.is_some() {
                    mismatches.push(format!("{}: int64 bias qdbg/TF {off:?}", t.name));
                }
            }
            _ => {}
        }
    }
    (compared, mismatches)
}

fn op_sequence(g: &Graph) -> Vec<&'static str> {
    g.nodes.iter().map(|n| n.op.name()).collect()
}

fn assert_params_equal_tensorflow(model: &Path, data: &Path, reference: &str, at_least: usize) {
    let ours = qdbg_16x8(model, data);
    let tf = qdbg::tflite::read_model(&common::fixture(reference)).unwrap();
    // The same ops in the same order: QUANTIZE before each int16 reader of a float
    // tensor, DEQUANTIZE before each float op, ops without a 16x8 kernel float.
    assert_eq!(
        op_sequence(&ours.graph),
        op_sequence(&tf),
        "{reference}: op sequence"
    );
    let (compared, mismatches) = compare_with_tensorflow(&ours.graph, &tf);
    assert!(
        mismatches.is_empty(),
        "{reference}: {} of {compared} quantized tensors differ from TensorFlow's:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        compared >= at_least,
        "{reference}: only {compared} tensors compared"
    );
    eprintln!("{reference}: {compared} quantized tensors equal TensorFlow's");
}

#[test]
fn demo_params_equal_tensorflow_16x8() {
    let (model, data) = demo();
    // 29 ops quantized: their activations, weights and biases (72 of them share names).
    assert_params_equal_tensorflow(&model, &data, "16x8/demo.16x8.tflite", 70);
}

#[test]
fn mobilenet_v3_small_params_equal_tensorflow_16x8() {
    let (model, data) = mobilenet();
    assert_params_equal_tensorflow(&model, &data, "16x8/mobilenet_v3_small.16x8.tflite", 200);
}

/// Runs `model` in qdbg and in LiteRT on `inputs`: every int8 / int16 tensor equal, float
/// ones within one quantization step of their integer source (DEQUANTIZE) or 1e-4 of the
/// range (ops kept float).
fn assert_bit_exact_with_litert(label: &str, model: &Path, inputs: &Path, min_int16: usize) {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oracle = common::litert_dump(model, inputs, dir.path());
    let (samples, ours) = common::qdbg_values(label, &graph, inputs);
    let (mut failures, mut int16_tensors) = (Vec::new(), 0);
    for (idx, expected) in &oracle {
        let t = graph.tensor(*idx);
        assert_eq!(ours[*idx].len(), samples, "{label}: t{idx} not computed");
        let (mut total, mut exact, mut worst) = (0usize, 0usize, 0f64);
        for (s, got) in ours[*idx].iter().enumerate() {
            for (a, b) in expected.index_axis(Axis(0), s).iter().zip(got) {
                total += 1;
                exact += usize::from(a == b);
                worst = worst.max((a - b).abs());
            }
        }
        if matches!(t.dtype, DType::I8 | DType::I16) {
            int16_tensors += usize::from(t.dtype == DType::I16);
            if exact != total {
                failures.push(format!(
                    "t{idx} {} '{}': {exact}/{total} exact, max diff {worst}",
                    t.dtype, t.name
                ));
            }
        } else {
            let lo = expected.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = expected.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let step = graph
                .nodes
                .iter()
                .find(|n| n.outputs.contains(idx))
                .and_then(|n| n.input(0))
                .and_then(|i| graph.tensor(i).quant.clone())
                .map_or(1e-4 * (hi - lo).max(1e-6), |q| f64::from(q.scale[0]));
            if worst > step * 1.0001 {
                failures.push(format!(
                    "t{idx} '{}': float max diff {worst} > {step}",
                    t.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{label}: differs from LiteRT:\n{}",
        failures.join("\n")
    );
    assert!(
        int16_tensors >= min_int16,
        "{label}: only {int16_tensors} int16 tensors compared"
    );
    eprintln!(
        "{label}: {} tensors, {int16_tensors} int16, bit-exact",
        oracle.len()
    );
}

/// The first `n` samples of the demo's debug set as an npz keyed by the input's name.
fn demo_inputs(dir: &Path, graph: &Graph, n: usize) -> PathBuf {
    let debug: ndarray::Array4<f32> =
        ndarray_npy::read_npy(common::repo().join("demo/debug.npy")).unwrap();
    let path = dir.join("inputs.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&path).unwrap());
    npz.add_array(
        graph.tensor(graph.inputs[0]).name.as_str(),
        &debug.slice(ndarray::s![..n, .., .., ..]).to_owned(),
    )
    .unwrap();
    npz.finish().unwrap();
    path
}

fn write_qdbg_16x8(model: &Path, data: &Path, dir: &Path) -> PathBuf {
    let q = qdbg_16x8(model, data);
    let path = dir.join("qdbg.16x8.tflite");
    let original = std::fs::read(model).unwrap();
    qdbg::tflite::write_model(&q.graph, Some(&original), &path).unwrap();
    path
}

#[test]
fn demo_16x8_written_by_qdbg_runs_bit_exact_in_litert() {
    let (model, data) = demo();
    let dir = tempfile::tempdir().unwrap();
    let path = write_qdbg_16x8(&model, &data, dir.path());
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let inputs = demo_inputs(dir.path(), &graph, 8);
    assert_bit_exact_with_litert("demo (qdbg 16x8)", &path, &inputs, 20);
}

#[test]
fn demo_16x8_made_by_tensorflow_runs_bit_exact_in_qdbg() {
    let (model, _) = demo();
    let dir = tempfile::tempdir().unwrap();
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let inputs = demo_inputs(dir.path(), &graph, 8);
    assert_bit_exact_with_litert(
        "demo (TensorFlow 16x8)",
        &common::fixture("16x8/demo.16x8.tflite"),
        &inputs,
        20,
    );
}

#[test]
fn mobilenet_v3_small_16x8_written_by_qdbg_runs_bit_exact_in_litert() {
    let (model, data) = mobilenet();
    let dir = tempfile::tempdir().unwrap();
    let path = write_qdbg_16x8(&model, &data, dir.path());
    assert_bit_exact_with_litert("mobilenet_v3_small (qdbg 16x8)", &path, &data, 50);
}

#[test]
fn mobilenet_v3_small_16x8_made_by_tensorflow_runs_bit_exact_in_qdbg() {
    let (_, data) = mobilenet();
    assert_bit_exact_with_litert(
        "mobilenet_v3_small (TensorFlow 16x8)",
        &common::fixture("16x8/mobilenet_v3_small.16x8.tflite"),
        &data,
        50,
    );
}

/// The small models of `scripts/fixtures/make_16x8_op_models.py`, which hold the ops the
/// 16x8 executor runs besides convolutions and ADD / MUL: TRANSPOSE_CONV, the RELU family,
/// PAD, RESIZE_*, CONCATENATION, MAXIMUM / MINIMUM, REDUCE_MAX and SUM (`ops_spatial`);
/// BATCH_MATMUL, RSQRT, GELU, TRANSPOSE and the slicing ops (`ops_dense`). Model and calibration
/// samples.
fn op_model(name: &str) -> (PathBuf, PathBuf) {
    (
        common::fixture(&format!("16x8/{name}.tflite")),
        common::fixture(&format!("16x8/{name}.calibration.npy")),
    )
}

/// The first `n` calibration samples of an op model as an npz keyed by its input's name.
fn op_model_inputs(dir: &Path, graph: &Graph, samples: &Path, n: usize) -> PathBuf {
    let all: ndarray::ArrayD<f32> = ndarray_npy::read_npy(samples).unwrap();
    let path = dir.join("inputs.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&path).unwrap());
    npz.add_array(
        graph.tensor(graph.inputs[0]).name.as_str(),
        &all.slice_axis(Axis(0), ndarray::Slice::from(..n))
            .to_owned(),
    )
    .unwrap();
    npz.finish().unwrap();
    path
}

#[test]
fn op_models_params_equal_tensorflow_16x8() {
    let (model, data) = op_model("ops_spatial");
    assert_params_equal_tensorflow(&model, &data, "16x8/ops_spatial.16x8.tflite", 25);
    let (model, data) = op_model("ops_dense");
    assert_params_equal_tensorflow(&model, &data, "16x8/ops_dense.16x8.tflite", 20);
}

/// Nothing in the op models stays float: every op has a 16x8 kernel in qdbg, as in
/// TensorFlow's 16x8 conversion.
#[test]
fn op_models_compute_every_op_in_16x8() {
    for name in ["ops_spatial", "ops_dense"] {
        let (model, data) = op_model(name);
        let q = qdbg_16x8(&model, &data);
        let float: Vec<String> = q
            .float_ops
            .iter()
            .map(|(pos, why)| format!("{pos} {why:?}"))
            .collect();
        assert!(float.is_empty(), "{name}: ops kept float: {float:?}");
    }
}

#[test]
fn op_models_16x8_written_by_qdbg_run_bit_exact_in_litert() {
    for (name, min_int16) in [("ops_spatial", 20), ("ops_dense", 15)] {
        let (model, data) = op_model(name);
        let dir = tempfile::tempdir().unwrap();
        let path = write_qdbg_16x8(&model, &data, dir.path());
        let graph = qdbg::tflite::read_model(&model).unwrap();
        let inputs = op_model_inputs(dir.path(), &graph, &data, 8);
        assert_bit_exact_with_litert(&format!("{name} (qdbg 16x8)"), &path, &inputs, min_int16);
    }
}

#[test]
fn op_models_16x8_made_by_tensorflow_run_bit_exact_in_qdbg() {
    for (name, min_int16) in [("ops_spatial", 20), ("ops_dense", 15)] {
        let (model, data) = op_model(name);
        let dir = tempfile::tempdir().unwrap();
        let graph = qdbg::tflite::read_model(&model).unwrap();
        let inputs = op_model_inputs(dir.path(), &graph, &data, 8);
        assert_bit_exact_with_litert(
            &format!("{name} (TensorFlow 16x8)"),
            &common::fixture(&format!("16x8/{name}.16x8.tflite")),
            &inputs,
            min_int16,
        );
    }
}

/// `qdbg debug` on TensorFlow's 16x8 file: one row per quantized op, each row's scale the
/// int16 scale TensorFlow gave that output (zero point 0), `range` spanning 65535 steps and
/// `rmse/scale` counting int16 steps of that scale.
#[test]
fn debug_reports_16x8_layers_in_int16_steps() {
    let (model, _) = demo();
    let tf_path = common::fixture("16x8/demo.16x8.tflite");
    let tf = qdbg::tflite::read_model(&tf_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("layers.csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(["debug", model.to_str().unwrap(), "--data"])
        .arg(common::repo().join("demo/debug.npy"))
        .arg("--int8")
        .arg(&tf_path)
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "qdbg debug failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (idx, scale, zp, range, mse, rmse) = (
        col("tensor_idx"),
        col("scale"),
        col("zero_point"),
        col("range"),
        col("mean_squared_error"),
        col("rmse/scale"),
    );
    let mut rows = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f[i].parse::<f64>().unwrap();
        let t = tf.tensor(f[idx].parse::<usize>().unwrap());
        assert_eq!(t.dtype, DType::I16, "row {line}");
        let tq = t.quant.as_ref().unwrap();
        assert!(
            (num(scale) / f64::from(tq.scale[0]) - 1.0).abs() < 1e-6,
            "row {line}"
        );
        assert_eq!(num(zp), 0.0);
        assert!(
            (num(range) / (65535.0 * num(scale)) - 1.0).abs() < 1e-9,
            "row {line}"
        );
        assert!((num(rmse) - num(mse).sqrt() / num(scale)).abs() <= 1e-9 * num(rmse).max(1.0));
        rows += 1;
    }
    // The demo's 29 ops TensorFlow quantized to 16x8.
    assert_eq!(rows, 29, "{text}");
}

/// A mixed model, the shape item 3's rules will produce: the demo's first inverted
/// residual block (CONV_2D, DEPTHWISE_CONV_2D, CONV_2D) in 16x8, everything else int8. The
/// quantizer requantizes int8 -> int16 into the island and int16 -> int8 out of it (once
/// for the two int8 readers), and LiteRT runs the file bit for bit as qdbg does.
#[test]
fn mixed_int8_int16_island_runs_bit_exact_in_litert() {
    let (model, data_path) = demo();
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let data = load_dataset(
        &data_path,
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let island: std::collections::HashSet<usize> = [2, 3, 4].into();
    for &pos in &island {
        assert!(
            matches!(
                graph.nodes[pos].op,
                qdbg::graph::Op::Conv2d(_) | qdbg::graph::Op::DepthwiseConv2d(_)
            ),
            "the demo's block 1 moved"
        );
    }
    let plan = plan_activations(&graph, &cal).with_int16_ops(&graph, &cal, &island);
    let q = quantize_graph(&graph, &plan, &QuantizeOptions::default()).unwrap();
    let retype = |from: DType, to: DType| {
        q.graph
            .nodes
            .iter()
            .filter(|n| n.op == qdbg::graph::Op::Quantize)
            .filter(|n| {
                q.graph.tensor(n.input(0).unwrap()).dtype == from
                    && q.graph.tensor(n.outputs[0]).dtype == to
            })
            .count()
    };
    assert_eq!(retype(DType::I8, DType::I16), 1, "into the island");
    assert_eq!(retype(DType::I16, DType::I8), 1, "out of the island");
    let int16_ops = q
        .graph
        .nodes
        .iter()
        .filter(|n| n.op != qdbg::graph::Op::Quantize)
        .filter(|n| {
            n.outputs
                .iter()
                .any(|&o| q.graph.tensor(o).dtype == DType::I16)
        })
        .count();
    assert_eq!(int16_ops, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.tflite");
    let original = std::fs::read(&model).unwrap();
    qdbg::tflite::write_model(&q.graph, Some(&original), &path).unwrap();
    let inputs = demo_inputs(dir.path(), &graph, 8);
    assert_bit_exact_with_litert("demo (int16 island)", &path, &inputs, 4);
}
