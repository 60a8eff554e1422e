//! qdbg's full-int8 model against TensorFlow's, made from the same float model and the same
//! representative data: the final outputs must agree within 2 LSB of the output scale.
//! (Activation parameters agree to ~1e-6 relative, not bit for bit: TensorFlow calibrates
//! with LiteRT's float kernels and qdbg with its own, which sum in another order; a bias
//! can then round one step apart.)

mod common;

use candle_core::Device;
use ndarray::Axis;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::exec::{tensor_from_sample, Executor};
use qdbg::quant::{
    calibrate,
    plan::plan_activations,
    quantize::{quantize_graph, QuantizeOptions},
};

/// Returns (max difference in output LSBs, top-1 agreements, samples).
fn compare(name: &str) -> (f64, usize, usize) {
    let float_path = common::fixture(&format!("{name}.tflite"));
    let graph = qdbg::tflite::read_model(&float_path).unwrap();
    let data = load_dataset(
        &common::fixture(&format!("{name}.inputs.npz")),
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let ours = quantize_graph(
        &graph,
        &plan_activations(&graph, &cal),
        &QuantizeOptions::default(),
    )
    .unwrap()
    .graph;
    let ours_exec = Executor::new(&ours, &Device::Cpu).unwrap();

    // TensorFlow's int8 twin, run by LiteRT.
    let tf_path = common::fixture(&format!("{name}.int8.tflite"));
    let tf_graph = qdbg::tflite::read_model(&tf_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dump = common::litert_dump(
        &tf_path,
        &common::fixture(&format!("{name}.inputs.npz")),
        dir.path(),
    );

    let (mut worst_lsb, mut agree) = (0f64, 0usize);
    for s in 0..data.num_samples() {
        let inputs: Vec<_> = data
            .sample(s)
            .unwrap()
            .iter()
            .map(|x| tensor_from_sample(x, &Device::Cpu).unwrap())
            .collect();
        let outs = ours_exec.run(&inputs).unwrap();
        for (k, &tf_out) in tf_graph.outputs.iter().enumerate() {
            // Outputs are matched by position; both models keep the float model's order.
            let ours_v = outs[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (_, tf_all) = dump
                .iter()
                .find(|(i, _)| *i == tf_out)
                .expect("TF output dumped");
            let tf_v: Vec<f64> = tf_all.index_axis(Axis(0), s).iter().copied().collect();
            // The output's int8 step: the scale of the tensor its DEQUANTIZE reads.
            let producer = tf_graph
                .nodes
                .iter()
                .find(|n| n.outputs.contains(&tf_out))
                .unwrap();
            let step = tf_graph
                .tensor(producer.input(0).unwrap())
                .quant
                .as_ref()
                .map_or(1e-6, |q| q.scale[0] as f64);
            for (a, b) in ours_v.iter().zip(&tf_v) {
                worst_lsb = worst_lsb.max((*a as f64 - b).abs() / step);
            }
            let argmax = |v: &[f64]| {
                v.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i)
            };
            let ours_f64: Vec<f64> = ours_v.iter().map(|&x| x as f64).collect();
            if k == 0 && argmax(&ours_f64) == argmax(&tf_v) {
                agree += 1;
            }
        }
    }
    (worst_lsb, agree, data.num_samples())
}

macro_rules! agreement_tests {
    ($($name:ident),*) => { $(
        #[test]
        fn $name() {
            let (lsb, agree, n) = compare(stringify!($name));
            eprintln!("{}: max {lsb} LSB from TensorFlow's int8 model; top-1 agrees on {agree}/{n}", stringify!($name));
            assert!(lsb <= 2.0 + 1e-6, "{}: outputs differ by {lsb} LSB (> 2)", stringify!($name));
        }
    )* };
}

agreement_tests!(
    conv_ops,
    dense_ops,
    elementwise_ops,
    reduce_ops,
    resize_ops,
    multi_io,
    mobilenet_v3_small
);

/// A real classifier (the demo), quantized by qdbg from the same calibration samples
/// TensorFlow used: its top-1 class must agree with TensorFlow's int8 model's on >= 99% of
/// the debug set (TensorFlow's classes recorded in demo/expected.json by
/// scripts/make_demo.py).
#[test]
fn demo_classifier_top1_agrees_with_tensorflow() {
    let demo = common::repo().join("demo");
    let graph = qdbg::tflite::read_model(&demo.join("model.tflite")).unwrap();
    let specs = InputSpec::for_graph(&graph);
    let calibration = load_dataset(
        &demo.join("calibration.npy"),
        &specs,
        &ImageOptions::default(),
    )
    .unwrap();
    let debug = load_dataset(&demo.join("debug.npy"), &specs, &ImageOptions::default()).unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &calibration, String::new(), &mut |_| {}).unwrap();
    let ours = quantize_graph(
        &graph,
        &plan_activations(&graph, &cal),
        &QuantizeOptions::default(),
    )
    .unwrap()
    .graph;
    let run = Executor::new(&ours, &Device::Cpu).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(demo.join("expected.json")).unwrap())
            .unwrap();
    let tf_classes: Vec<u64> = expected["debug_set_int8_predictions"]
        .as_array()
        .expect("expected.json lacks debug_set_int8_predictions")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(tf_classes.len(), debug.num_samples());
    let mut agree = 0;
    for (s, &tf_class) in tf_classes.iter().enumerate() {
        let inputs: Vec<_> = debug
            .sample(s)
            .unwrap()
            .iter()
            .map(|x| tensor_from_sample(x, &Device::Cpu).unwrap())
            .collect();
        let out = run.run(&inputs).unwrap()[0]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let class = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u64;
        agree += usize::from(class == tf_class);
    }
    eprintln!(
        "demo: top-1 agrees with TensorFlow's int8 model on {agree}/{}",
        tf_classes.len()
    );
    assert!(
        agree * 100 >= 99 * tf_classes.len(),
        "top-1 agrees on {agree}/{}",
        tf_classes.len()
    );
}
