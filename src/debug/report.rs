//! Reports: TensorFlow's `layer_statistics_dump` CSV (same columns, same order, so pandas
//! notebooks written for TensorFlow's CSV keep working) and a JSON document.

use std::path::Path;

use super::verify::{LayerStats, VerifyMode};
use crate::error::{Error, Result};

/// `rmse/scale`: the layer's RMS error in units of its quantization step. Uniform
/// rounding noise gives 1/sqrt(12) ~= 0.289; much larger values mark a badly
/// quantized layer.
pub fn rmse_over_scale(mse: f64, scale: f32) -> f64 {
    mse.sqrt() / scale as f64
}

/// `range`: the real span the tensor covers, 255 steps of its scale for int8, 65535 for
/// int16 (16x8).
pub fn range(scale: f32, int16: bool) -> f64 {
    let steps = if int16 { 65535.0 } else { 255.0 };
    steps * scale as f64
}

/// The per-layer metrics [`metric_value`] knows, by the names the CSV, the JSON and
/// rules use.
pub const LAYER_METRICS: [&str; 16] = [
    "rmse/scale",
    "range",
    "scale",
    "zero_point",
    "mean_squared_error",
    "max_abs_error",
    "mean_error",
    "stddev",
    "sqnr_db",
    "cosine",
    "mean_abs_error",
    "max_abs_error_global",
    "correlation",
    "saturation",
    "kl_divergence",
    "num_elements",
];

/// A layer's metric by name, from its main mode (per-layer when it ran); `None` for a
/// name not in [`LAYER_METRICS`] or a layer with no statistics yet.
pub fn metric_value(stats: &LayerStats, metric: &str) -> Option<f64> {
    let m = stats.per_layer.or(stats.whole_model)?;
    Some(match metric {
        "rmse/scale" => rmse_over_scale(m.mean_squared_error, stats.info.scale),
        "range" => range(stats.info.scale, stats.info.int16),
        "scale" => stats.info.scale as f64,
        "zero_point" => stats.info.zero_point as f64,
        "mean_squared_error" => m.mean_squared_error,
        "max_abs_error" => m.max_abs_error,
        "mean_error" => m.mean_error,
        "stddev" => m.stddev,
        "num_elements" => m.num_elements,
        other => m.extra(other)?,
    })
}

/// Writes TensorFlow's columns: `op_name, tensor_idx, num_elements, stddev, mean_error,
/// max_abs_error, mean_squared_error`, then user metrics, then qdbg's extra metrics
/// (`range`, `rmse/scale`, those named in `extra`, and the whole-model columns when both
/// modes ran), then `scale, zero_point, tensor_name`.
///
/// `extra` names further metrics (see `metrics::EXTRA_METRICS`), written after `rmse/scale`.
pub fn write_csv(
    path: &Path,
    layers: &[LayerStats],
    mode: VerifyMode,
    extra: &[&str],
) -> Result<()> {
    let mut buf = Vec::new();
    {
        let mut w = csv::Writer::from_writer(&mut buf);
        let mut header = vec![
            "op_name",
            "tensor_idx",
            "num_elements",
            "stddev",
            "mean_error",
            "max_abs_error",
            "mean_squared_error",
        ];
        // User metrics come right after TensorFlow's five, as in its dump.
        let custom_names: Vec<String> = layers
            .first()
            .map(|l| l.custom.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        header.extend(custom_names.iter().map(String::as_str));
        header.extend(["range", "rmse/scale"]);
        header.extend(extra.iter().copied());
        if mode == VerifyMode::Both {
            header.extend([
                "whole_model_mean_squared_error",
                "whole_model_max_abs_error",
                "whole_model_rmse/scale",
            ]);
        }
        header.extend(["scale", "zero_point", "tensor_name"]);
        w.write_record(&header).map_err(|e| csv_error(path, e))?;
        for l in layers {
            let main = match mode {
                VerifyMode::WholeModel => l.whole_model,
                _ => l.per_layer,
            };
            let Some(m) = main else { continue };
            let mut row = vec![
                l.info.op_name.to_string(),
                l.info.tensor_idx.to_string(),
                num(m.num_elements),
                num(m.stddev),
                num(m.mean_error),
                num(m.max_abs_error),
                num(m.mean_squared_error),
            ];
            row.extend(l.custom.iter().map(|(_, v)| num(*v)));
            row.extend([
                num(range(l.info.scale, l.info.int16)),
                num(rmse_over_scale(m.mean_squared_error, l.info.scale)),
            ]);
            for name in extra {
                row.push(m.extra(name).map_or(String::new(), num));
            }
            if mode == VerifyMode::Both {
                let wm = l.whole_model;
                row.push(wm.map_or(String::new(), |w| num(w.mean_squared_error)));
                row.push(wm.map_or(String::new(), |w| num(w.max_abs_error)));
                row.push(wm.map_or(String::new(), |w| {
                    num(rmse_over_scale(w.mean_squared_error, l.info.scale))
                }));
            }
            row.push(num(l.info.scale as f64));
            row.push(l.info.zero_point.to_string());
            row.push(l.info.tensor_name.clone());
            w.write_record(&row).map_err(|e| csv_error(path, e))?;
        }
        w.flush().map_err(|e| Error::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    crate::atomic::write_bytes_atomic(path, &buf)
}

/// Writes the whole report (every layer, both modes when present, model-level metrics)
/// as JSON.
pub fn write_json(path: &Path, report: &super::DebugReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|e| Error::Internal(e.to_string()))?;
    crate::atomic::write_bytes_atomic(path, text.as_bytes())
}

fn num(v: f64) -> String {
    // Python's repr of a float, which is what pandas writes: NaN as "nan".
    if v.is_nan() {
        "nan".into()
    } else {
        format!("{v}")
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
