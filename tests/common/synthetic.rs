//! Hand-made debugger statistics for the dashboard's tests: every number is chosen here
//! (scales are powers of two and `mean_squared_error = (r * scale)^2`, so each layer's
//! rmse/scale is exactly the `r` written below), never taken from a run.

use std::sync::Arc;

use qdbg::debug::metrics::{
    ClassMetrics, LayerHistograms, LayerMetrics, ModelMetrics, OutputMetrics, Task, ERROR_BINS,
};
use qdbg::debug::{DebugReport, LayerInfo, LayerStats};

/// (op, tensor name, scale, zero point, rmse/scale, sqnr dB)
pub const LAYERS: [(&str, &str, f32, i64, f64, f64); 8] = [
    (
        "CONV_2D",
        "net_1/stem_bn/add;net_1/stem/conv",
        0.0625,
        4,
        4.0,
        15.0,
    ),
    (
        "HARD_SWISH",
        "net_1/stem_hswish/mul",
        0.015625,
        -100,
        0.28,
        41.0,
    ),
    (
        "DEPTHWISE_CONV_2D",
        "net_1/b1_dw_relu/Relu",
        0.03125,
        -128,
        0.22,
        39.5,
    ),
    (
        "CONV_2D",
        "net_1/b1_project_bn/batchnorm/add_1",
        0.0625,
        10,
        0.31,
        36.0,
    ),
    ("MEAN", "net_1/b1_se/Mean", 0.001953125, -128, 0.9, 18.0),
    ("ADD", "net_1/b1_add/Add", 0.0625, 10, 0.29, 37.0),
    (
        "FULLY_CONNECTED",
        "net_1/logits/MatMul",
        0.125,
        3,
        0.71,
        35.0,
    ),
    ("SOFTMAX", "Identity", 0.00390625, -128, 0.1, 60.0),
];

pub fn infos() -> Vec<LayerInfo> {
    LAYERS
        .iter()
        .enumerate()
        .map(|(k, &(op, name, scale, zp, _, _))| LayerInfo {
            op_name: op,
            tensor_idx: 100 + k,
            tensor: 100 + k,
            tensor_name: name.to_string(),
            scale,
            zero_point: zp,
            quant_node: k + 1,
            float_node: k,
            float_tensor: 10 + k,
            output: 0,
            int16: false,
        })
        .collect()
}

fn metrics(scale: f32, r: f64, sqnr: f64) -> LayerMetrics {
    let rmse = r * scale as f64;
    LayerMetrics {
        num_elements: 64.0,
        stddev: rmse,
        mean_error: 0.0,
        max_abs_error: 3.0 * rmse,
        mean_squared_error: rmse * rmse,
        sqnr_db: sqnr,
        cosine: 0.99,
        mean_abs_error: rmse,
        max_abs_error_global: 4.0 * rmse,
        correlation: 0.99,
        saturation: 0.0,
        kl_divergence: 0.01,
    }
}

/// Values spread over steps 0..40 above the zero point; errors mostly within one step.
fn histograms(scale: f32, zp: i64) -> LayerHistograms {
    let mut float = vec![0u64; 256];
    let mut dequantized = vec![0u64; 256];
    for step in 0..40usize {
        let bin = (zp + 128) as usize + step;
        if bin < 256 {
            float[bin] = 100 - 2 * step as u64;
            dequantized[bin] = 100 - 2 * step as u64;
        }
    }
    let mut error = vec![0u64; ERROR_BINS];
    let centre = ERROR_BINS / 2;
    error[centre] = 500;
    error[centre - 1] = 200;
    error[centre + 1] = 200;
    error[centre - 2] = 40;
    error[centre + 2] = 40;
    error[ERROR_BINS - 1] = 3;
    LayerHistograms {
        scale: scale as f64,
        zero_point: zp,
        float,
        dequantized,
        error,
    }
}

/// The report after `samples` of 100 samples, with or without whole-model columns.
pub fn report(samples: usize, both: bool) -> Arc<DebugReport> {
    let layers = infos()
        .into_iter()
        .zip(LAYERS)
        .map(|(info, (_, _, scale, zp, r, sqnr))| LayerStats {
            info,
            per_layer: Some(metrics(scale, r, sqnr)),
            // Whole-model error grows along the model: twice the per-layer one.
            whole_model: both.then(|| metrics(scale, 2.0 * r, sqnr - 6.0)),
            custom: Vec::new(),
            histograms: Some(histograms(scale, zp)),
        })
        .collect();
    Arc::new(DebugReport {
        arithmetic: Default::default(),
        layers,
        model: ModelMetrics {
            samples,
            mse: 0.01,
            sqnr_db: 8.0,
            cosine: 0.92,
            argmax_agreement: 0.86,
            top5_agreement: 0.98,
            float_top1: Some(0.98),
            float_top5: Some(1.0),
            int8_top1: Some(0.85),
            int8_top5: Some(0.98),
            outputs: vec![OutputMetrics {
                name: "Identity".into(),
                mse: 0.01,
                sqnr_db: 8.0,
                cosine: 0.92,
                task: Task::Classify,
                task_guessed: true,
                classify: Some(ClassMetrics {
                    top1_agreement: 0.86,
                    top5_agreement: 0.98,
                    float_top1: Some(0.98),
                    float_top5: Some(1.0),
                    int8_top1: Some(0.85),
                    int8_top5: Some(0.98),
                }),
                ..Default::default()
            }],
            worst_output: Some("Identity".into()),
            classified_output: Some("Identity".into()),
        },
        model_custom: Vec::new(),
        samples,
    })
}
