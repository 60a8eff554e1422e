//! Quantized models run on qdbg's int8 kernels, tensor by tensor against LiteRT's builtin
//! kernels: on every int8 tensor, >= 99.9% of elements identical and none more than 1 LSB
//! apart. Two sources of models: TensorFlow's converter (`NAME.int8.tflite`, "quantized
//! elsewhere") and qdbg's own quantizer, whose written file LiteRT must load and run.

mod common;

use candle_core::Device;
use ndarray::Axis;
use qdbg::exec::Executor;
use qdbg::graph::DType;

fn check(name: &str) {
    check_model(name, &common::fixture(&format!("{name}.int8.tflite")));
}

/// Quantizes the float fixture with qdbg (calibrated on the fixture's inputs), writes it,
/// and checks the written file.
fn check_qdbg_quantized(name: &str) {
    use qdbg::data::{load_dataset, ImageOptions, InputSpec};
    use qdbg::quant::{
        calibrate,
        plan::plan_activations,
        quantize::{quantize_graph, QuantizeOptions},
    };
    let float_path = common::fixture(&format!("{name}.tflite"));
    let original = std::fs::read(&float_path).unwrap();
    let graph = qdbg::tflite::read_model_bytes(&original, &float_path).unwrap();
    let data = load_dataset(
        &common::fixture(&format!("{name}.inputs.npz")),
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let model = quantize_graph(
        &graph,
        &plan_activations(&graph, &cal),
        &QuantizeOptions::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.qdbg-int8.tflite"));
    qdbg::tflite::write_model(&model.graph, Some(&original), &path).unwrap();
    check_model(name, &path);
}

fn check_model(name: &str, model: &std::path::Path) {
    check_model_with_inputs(name, model, &common::fixture(&format!("{name}.inputs.npz")));
}

fn check_model_with_inputs(name: &str, model: &std::path::Path, inputs: &std::path::Path) {
    let model = model.to_path_buf();
    let inputs = inputs.to_path_buf();
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oracle = common::litert_dump(&model, &inputs, dir.path());

    let (samples, ours) = common::qdbg_values(name, &graph, &inputs);

    let mut report = Vec::new();
    let mut failed = false;
    for (idx, expected) in &oracle {
        let t = graph.tensor(*idx);
        let producer = graph
            .nodes
            .iter()
            .find(|n| n.outputs.contains(idx))
            .map_or("input".to_string(), |n| {
                format!("#{} {}", n.source_index, n.op.name())
            });
        assert_eq!(ours[*idx].len(), samples, "{name}: t{idx} not computed");
        let (mut total, mut exact, mut worst) = (0usize, 0usize, 0f64);
        for (s, got) in ours[*idx].iter().enumerate() {
            for (a, b) in expected.index_axis(Axis(0), s).iter().zip(got) {
                total += 1;
                let d = (a - b).abs();
                if d == 0.0 {
                    exact += 1;
                }
                worst = worst.max(d);
            }
        }
        if t.dtype == DType::I8 {
            // Bit for bit, as the README says: every int8 value equals LiteRT's.
            let ok = exact == total;
            failed |= !ok;
            if !ok {
                report.push(format!(
                    "t{idx} {producer} '{}': {exact}/{total} exact, max diff {worst} LSB",
                    t.name
                ));
            }
        } else {
            // Float outputs of DEQUANTIZE: exact up to float rounding of one int8 step.
            // Outputs of ops kept float: the float oracle's tolerance, 1e-4 of the range.
            let lo = expected.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = expected.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let scale = graph
                .nodes
                .iter()
                .find(|n| n.outputs.contains(idx))
                .and_then(|n| n.input(0))
                .and_then(|i| graph.tensor(i).quant.clone())
                .map_or(1e-4 * (hi - lo).max(1e-6), |q| q.scale[0] as f64);
            if worst > scale * 1.0001 {
                failed = true;
                report.push(format!(
                    "t{idx} {producer} '{}': float max diff {worst} > one step {scale}",
                    t.name
                ));
            }
        }
    }
    assert!(
        !failed,
        "{name}: differs from LiteRT:\n{}",
        report.join("\n")
    );
    eprintln!(
        "{name}: all {} tensors within spec (int8 tensors bit-exact)",
        oracle.len()
    );
}

macro_rules! int8_tests {
    ($($name:ident),*) => { $( #[test] fn $name() { check(stringify!($name)); } )* };
}

int8_tests!(
    conv_ops,
    dense_ops,
    elementwise_ops,
    reduce_ops,
    resize_ops,
    activation_ops,
    multi_io,
    mobilenet_v3_small
);

/// qdbg's own quantizer: the written model must load in LiteRT and agree with qdbg.
mod qdbg_quantized {
    macro_rules! qdbg_tests {
        ($($name:ident),*) => { $( #[test] fn $name() { super::check_qdbg_quantized(stringify!($name)); } )* };
    }
    qdbg_tests!(
        conv_ops,
        dense_ops,
        elementwise_ops,
        reduce_ops,
        shape_ops,
        resize_ops,
        activation_ops,
        multi_io,
        mobilenet_v3_small
    );
}

/// A selectively quantized model (some ops kept float, with QUANTIZE / DEQUANTIZE only at
/// the borders of each float island) runs in LiteRT and agrees with qdbg tensor by tensor.
#[test]
fn selective_demo_model_matches_litert() {
    use qdbg::data::{load_dataset, ImageOptions, InputSpec};
    use qdbg::quant::{
        calibrate,
        plan::plan_activations,
        quantize::{quantize_graph, QuantizeOptions},
    };
    use qdbg::select::{denylist::resolve, Rule};
    let demo = common::repo().join("demo");
    let original = std::fs::read(demo.join("model.tflite")).unwrap();
    let graph = qdbg::tflite::read_model_bytes(&original, &demo.join("model.tflite")).unwrap();
    let data = load_dataset(
        &demo.join("calibration.npy"),
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let plan = plan_activations(&graph, &cal);
    // The stem (first op), every MEAN, and two adjacent ops in the middle: several islands.
    let rules = [
        Rule::parse("op:MEAN").unwrap(),
        Rule::parse("glob:*stem_bn_1*").unwrap(),
        Rule::parse("glob:*b2_*").unwrap(),
    ];
    let keep = resolve(&graph, &rules, &[]).unwrap().keep_float;
    assert!(keep.len() >= 4);
    let model = quantize_graph(
        &graph,
        &plan,
        &QuantizeOptions {
            keep_float: keep.iter().copied().collect(),
            ..Default::default()
        },
    )
    .unwrap();
    // No redundant pairs: a DEQUANTIZE never feeds a QUANTIZE directly.
    let g = &model.graph;
    for n in g.nodes.iter().filter(|n| n.op == qdbg::graph::Op::Quantize) {
        let src = n.input(0).unwrap();
        assert!(
            !g.nodes
                .iter()
                .any(|m| m.op == qdbg::graph::Op::Dequantize && m.outputs.contains(&src)),
            "DEQUANTIZE -> QUANTIZE pair"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("selective.tflite");
    qdbg::tflite::write_model(g, Some(&original), &path).unwrap();
    // LiteRT runs it; compare on a few samples of the demo's debug set.
    let inputs = dir.path().join("inputs.npz");
    let debug: ndarray::Array4<f32> = ndarray_npy::read_npy(demo.join("debug.npy")).unwrap();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&inputs).unwrap());
    npz.add_array(
        graph.tensor(graph.inputs[0]).name.as_str(),
        &debug.slice(ndarray::s![..5, .., .., ..]).to_owned(),
    )
    .unwrap();
    npz.finish().unwrap();
    check_model_with_inputs("demo-selective", &path, &inputs);
}
