//! Per-layer sensitivity, measured on the metric the user's target names rather than on
//! per-layer noise: for every op the full-int8 model runs in int8, the metric of
//! (a) the full-int8 model with only that op kept float, and
//! (b) the float model with only that op quantized.
//!
//! A high `rmse/scale` says a layer is noisy; (a) says how much keeping it float buys the
//! model, (b) how much quantizing it alone costs. Both are whole-model evaluations through
//! the [`Selector`], which re-runs each from its first difference from a baseline: (a) from
//! the full-int8 model's checkpoints, (b) from the all-float model's. Ops are measured in
//! graph order, so each evaluation leaves the checkpoint the next one starts from.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::target::metric_value;
use crate::debug::metrics::ModelMetrics;
use crate::error::{Error, Result};
use crate::quant::quantize::QuantizedModel;
use crate::select::{Baseline, Selector};

/// One op's sensitivity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerSensitivity {
    /// Position in the float graph (what a denylist keeps float).
    pub position: usize,
    /// The op's index in the model file.
    pub source_index: usize,
    pub op: String,
    /// The op's first output tensor (as denylists name ops).
    pub tensor: String,
    /// The metric of the full-int8 model with only this op float.
    pub only_float: f64,
    /// The metric of the float model with only this op int8.
    pub only_quantized: f64,
}

/// Every quantized op's sensitivity on one metric.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sensitivity {
    pub metric: String,
    /// Whether a larger value of `metric` is better (from the target's comparison).
    pub higher_is_better: bool,
    /// The metric of the full-int8 model.
    pub full_int8: f64,
    /// The metric of the float model compared with itself.
    pub float: f64,
    pub samples: usize,
    pub layers: Vec<LayerSensitivity>,
}

impl Sensitivity {
    /// How much keeping layer `k` float improves the metric over the full-int8 model
    /// (positive: better; NaN sorts as no gain).
    pub fn float_gain(&self, layer: &LayerSensitivity) -> f64 {
        let gain = if self.higher_is_better {
            layer.only_float - self.full_int8
        } else {
            self.full_int8 - layer.only_float
        };
        if gain.is_nan() {
            f64::NEG_INFINITY
        } else {
            gain
        }
    }
}

/// A noise-like metric's value as a noise power that adds up over ops: SQNR (dB) as the
/// noise-to-signal ratio, MSE as itself, cosine similarity as its distance from 1. Each
/// op's rounding error is close to independent noise, so the full-int8 model's noise is
/// close to the sum of each op's alone (on MobileNetV3-small, 32 samples: the sum predicts
/// 18.1 dB where the model measures 20.3 dB). `None` for metrics that do not add up this
/// way (accuracy, agreement, task metrics), which the search ranks by their deny-one gain.
pub fn noise_power(metric: &str, value: f64) -> Option<f64> {
    let base = metric.split('[').next().unwrap_or(metric);
    match base {
        "sqnr_db" | "min_output_sqnr_db" => Some(10f64.powf(-value / 10.0)),
        "mse" | "max_output_mse" => Some(value),
        "cosine" | "min_output_cosine" => Some(1.0 - value),
        _ => None,
    }
}

/// The float-graph positions of the ops the full-int8 model runs in int8: those a float
/// remedy can act on (ops float for other reasons, no int8 kernel, stay float anyway).
pub fn quantized_positions(selector: &Selector) -> Result<Vec<usize>> {
    let full = selector.baseline(Baseline::FullInt8)?;
    let float: std::collections::HashSet<usize> = full.float_ops.iter().map(|&(p, _)| p).collect();
    Ok((0..selector.graph.nodes.len())
        .filter(|p| !float.contains(p))
        .collect())
}

/// `metric` of `metrics`, as an engine error naming the metric when it cannot be measured.
pub fn read_metric(metrics: &ModelMetrics, metric: &str) -> Result<f64> {
    metric_value(metrics, metric).map_err(|e| Error::usage("--target", e))
}

/// Evaluates `model` on `selector`'s samples from `baseline`; `None` when cancelled
/// (partial metrics are never reported as a result).
pub(crate) fn evaluate(
    selector: &Selector,
    model: &QuantizedModel,
    baseline: Baseline,
    cancel: &AtomicBool,
) -> Result<Option<ModelMetrics>> {
    let stop = || cancel.load(Ordering::Relaxed);
    let metrics = selector.evaluate_from(model, baseline, &stop, &mut |_, _| {})?;
    Ok((!stop()).then_some(metrics))
}

/// Which of the two measurements to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measure {
    /// (a): only this op float.
    pub only_float: bool,
    /// (b): only this op quantized.
    pub only_quantized: bool,
}

impl Measure {
    pub const BOTH: Measure = Measure {
        only_float: true,
        only_quantized: true,
    };
}

/// Measures every quantized op's sensitivity on `metric` (a name [`metric_value`]
/// accepts). `progress` gets (evaluations done, evaluations in all); `cancel` stops
/// between evaluations (`Ok(None)`). A measurement not asked for in `measure` is NaN.
pub fn measure(
    selector: &Selector,
    metric: &str,
    higher_is_better: bool,
    measure: Measure,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Option<Sensitivity>> {
    let graph = &selector.graph;
    let positions = quantized_positions(selector)?;
    let total = 2 + positions.len()
        * (usize::from(measure.only_float) + usize::from(measure.only_quantized));
    let mut done = 0;
    let mut step = |progress: &mut dyn FnMut(usize, usize)| {
        done += 1;
        progress(done, total);
    };

    let full = selector.baseline(Baseline::FullInt8)?;
    let Some(full_metrics) = evaluate(selector, &full, Baseline::FullInt8, cancel)? else {
        return Ok(None);
    };
    step(progress);
    let all_float = selector.baseline(Baseline::AllFloat)?;
    let Some(float_metrics) = evaluate(selector, &all_float, Baseline::AllFloat, cancel)? else {
        return Ok(None);
    };
    step(progress);

    let mut layers: Vec<LayerSensitivity> = positions
        .iter()
        .map(|&position| {
            let node = &graph.nodes[position];
            LayerSensitivity {
                position,
                source_index: node.source_index,
                op: node.op.display_name().to_string(),
                tensor: node
                    .outputs
                    .first()
                    .map(|&t| graph.tensor(t).name.clone())
                    .unwrap_or_default(),
                only_float: f64::NAN,
                only_quantized: f64::NAN,
            }
        })
        .collect();
    // Graph order within each baseline: every evaluation starts at the checkpoint the
    // previous one left.
    if measure.only_float {
        for layer in &mut layers {
            let model = selector.quantize(vec![layer.position])?;
            let Some(m) = evaluate(selector, &model, Baseline::FullInt8, cancel)? else {
                return Ok(None);
            };
            layer.only_float = read_metric(&m, metric)?;
            step(progress);
        }
    }
    if measure.only_quantized {
        for layer in &mut layers {
            let keep_float: Vec<usize> = (0..graph.nodes.len())
                .filter(|&p| p != layer.position)
                .collect();
            let model = selector.quantize(keep_float)?;
            let Some(m) = evaluate(selector, &model, Baseline::AllFloat, cancel)? else {
                return Ok(None);
            };
            layer.only_quantized = read_metric(&m, metric)?;
            step(progress);
        }
    }
    Ok(Some(Sensitivity {
        metric: metric.to_string(),
        higher_is_better,
        full_int8: read_metric(&full_metrics, metric)?,
        float: read_metric(&float_metrics, metric)?,
        samples: full_metrics.samples,
        layers,
    }))
}

/// Writes one row per op: `position, source_index, op, tensor, metric, only_float,
/// only_quantized` (atomically; NaN as `nan`, as the debug CSV writes it).
pub fn write_csv(path: &std::path::Path, sensitivity: &Sensitivity) -> Result<()> {
    let fail = |e: csv::Error| Error::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let num = |v: f64| {
        if v.is_nan() {
            "nan".to_string()
        } else {
            format!("{v}")
        }
    };
    let mut buf = Vec::new();
    {
        let mut w = csv::Writer::from_writer(&mut buf);
        w.write_record([
            "position",
            "source_index",
            "op",
            "tensor",
            "metric",
            "only_float",
            "only_quantized",
        ])
        .map_err(fail)?;
        for l in &sensitivity.layers {
            w.write_record([
                l.position.to_string(),
                l.source_index.to_string(),
                l.op.clone(),
                l.tensor.clone(),
                sensitivity.metric.clone(),
                num(l.only_float),
                num(l.only_quantized),
            ])
            .map_err(fail)?;
        }
        w.flush().map_err(|e| Error::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    crate::atomic::write_bytes_atomic(path, &buf)
}

/// Writes `sensitivity` as JSON (atomically; NaN and infinities as `null`).
pub fn write_json(path: &std::path::Path, sensitivity: &Sensitivity) -> Result<()> {
    let text =
        serde_json::to_string_pretty(sensitivity).map_err(|e| Error::Internal(e.to_string()))?;
    crate::atomic::write_bytes_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::noise_power;

    #[test]
    fn noise_like_metrics_become_noise_powers_by_hand() {
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        assert!(near(noise_power("sqnr_db", 30.0), 1e-3));
        assert!(near(noise_power("min_output_sqnr_db", 10.0), 0.1));
        assert!(near(noise_power("sqnr_db[logits]", 20.0), 1e-2));
        assert!(near(noise_power("mse", 0.25), 0.25));
        assert!(near(noise_power("min_output_cosine", 0.999), 1e-3));
        assert_eq!(noise_power("top1", 90.0), None);
        assert_eq!(noise_power("argmax_agreement", 0.9), None);
        assert_eq!(noise_power("iou[mask]", 0.9), None);
    }
}
