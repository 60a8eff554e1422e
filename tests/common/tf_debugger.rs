//! TensorFlow's QuantizationDebugger as a reference: its `layer_statistics_dump` rows, and
//! when qdbg's per-layer numbers count as the same (tests/corpus.rs, tests/generated.rs).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use qdbg::data::Dataset;
use qdbg::debug::{Debugger, LayerStats, VerifyMode};
use qdbg::graph::Graph;
use qdbg::kernels::int8::Arithmetic;
use qdbg::quant::quantize::QuantizedModel;

/// qdbg's per-layer debugger rows for `q` (a quantization of `graph`), with XNNPACK's
/// arithmetic, as TensorFlow's debugger runs.
pub fn per_layer_rows(graph: &Graph, q: &QuantizedModel, data: &Dataset) -> Vec<LayerStats> {
    Debugger::new(graph, q, &Device::Cpu)
        .unwrap()
        .with_arithmetic(Arithmetic::Xnnpack)
        .unwrap()
        .run(
            data,
            None,
            VerifyMode::PerLayer,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap()
        .layers
}

/// TensorFlow's debugger rows: (op, tensor name, mean squared error, output scale).
pub fn tf_rows(path: &Path) -> Vec<(String, String, f64, f64)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let (op, mse, name, scale) = (
        col("op_name"),
        col("mean_squared_error"),
        col("tensor_name"),
        col("scale"),
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[op].to_string(),
                r[name].to_string(),
                r[mse].parse().unwrap(),
                r[scale].parse().unwrap_or(0.0),
            )
        })
        .collect()
}

/// Whether qdbg's mean squared error `ours` reproduces TensorFlow's `tf` for a tensor of
/// quantization step `scale`: within 5%, or both below 1e-8 step² (float rounding noise:
/// TensorFlow's debugger reports ~1e-8 on data-movement ops with steps of 30-200, whose
/// exact error is 0; one int8 step off in one element of a million gives 1e-6 step²).
pub fn mse_agrees(ours: f64, tf: f64, scale: f64) -> bool {
    let noise = 1e-8 * scale * scale;
    (ours - tf).abs() <= 0.05 * tf.abs() || (ours.abs() <= noise && tf.abs() <= noise)
}
