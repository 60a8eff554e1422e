//! TensorFlow's three kinds of user metrics, registered on the debugger as Rust closures.
//! Each is written to reproduce a built-in metric by another road, so the built-in is the
//! oracle: a mean squared error on `diff`, the same rebuilt from the raw int8 output with
//! scale and zero point, and the model-level mean squared error.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::debug::{Debugger, VerifyMode};
use qdbg::exec::Executor;
use qdbg::quant::{
    calibrate,
    plan::plan_activations,
    quantize::{quantize_graph, QuantizeOptions},
};

#[test]
fn user_metrics_of_all_three_kinds() {
    let path = common::fixture("multi_io.tflite");
    let graph = qdbg::tflite::read_model(&path).unwrap();
    let data = load_dataset(
        &common::fixture("multi_io.inputs.npz"),
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
    let debugger = Debugger::new(&graph, &model, &Device::Cpu)
        .unwrap()
        .with_layer_metric(
            "my_mse",
            Box::new(|d| d.iter().map(|x| x * x).sum::<f64>() / d.len() as f64),
        )
        .with_direct_compare_metric(
            "rebuilt_mse",
            Box::new(|float, q, scale, zp| {
                let n = float.len() as f64;
                float
                    .iter()
                    .zip(q)
                    // Dequantized in f32, as LiteRT's DEQUANTIZE and qdbg do: the f64
                    // form differs by up to 2^-24 of each value, which on an output whose
                    // error is a thousandth of its values moves the MSE by ~1e-4.
                    .map(|(f, &q)| (f64::from((q - zp) as f32 * scale as f32) - f).powi(2))
                    .sum::<f64>()
                    / n
            }),
        )
        .with_model_metric(
            "out0_mse",
            Box::new(|f, q| {
                let (f, q) = (&f[0], &q[0]);
                f.iter().zip(q).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / f.len() as f64
            }),
        );
    let report = debugger
        .run(
            &data,
            None,
            VerifyMode::PerLayer,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
    for l in &report.layers {
        let builtin = l.per_layer.unwrap().mean_squared_error;
        assert_eq!(l.custom[0].0, "my_mse");
        // qdbg sums in f32 within blocks of 512 values (f64 across them), the closure in
        // f64: the two agree to f32 summation precision.
        assert!(
            (l.custom[0].1 - builtin).abs() <= 1e-12 + 1e-6 * builtin,
            "{}",
            l.info.tensor_name
        );
        assert_eq!(l.custom[1].0, "rebuilt_mse");
        // The same dequantized values; qdbg sums in f32 within blocks of 512 values, the
        // closure in f64: agree to f32 summation precision.
        assert!(
            (l.custom[1].1 - builtin).abs() <= 1e-6 * builtin.max(1e-12) + 1e-12,
            "{}: {} vs {builtin}",
            l.info.tensor_name,
            l.custom[1].1
        );
    }
    assert_eq!(report.model_custom[0].0, "out0_mse");
    // The first output's own MSE (the pooled `model.mse` covers both outputs).
    assert_eq!(report.model.outputs[0].name, "Identity");
    let m = report.model.outputs[0].mse;
    assert!(
        (report.model_custom[0].1 - m).abs() <= 1e-9 * m.max(1e-12),
        "{} vs {m}",
        report.model_custom[0].1
    );
}
