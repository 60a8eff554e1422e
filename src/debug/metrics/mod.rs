//! Per-layer error metrics with TensorFlow's aggregation: each metric is computed per
//! sample on `diff = dequantized int8 output - float output`, then averaged over samples
//! with a NaN-skipping mean (so `max_abs_error` is the mean of per-sample maxima).
//! Only running sums are kept: memory does not grow with the number of samples.

use std::mem::MaybeUninit;

use serde::Serialize;

mod accumulator;
mod model;
mod sample;
mod sums;
mod task;

pub use model::{
    output_names, ClassMetrics, DetectMetrics, ModelAccumulator, ModelMetrics, OutputMetrics,
    OutputSpec, SegmentMetrics, DETECT_TOP_K, MODEL_METRICS, OUTPUT_METRICS,
};
use sums::*;
pub use task::{given_tasks, guess_tasks, Task, TaskChoice, TASK_NAMES};

/// TensorFlow's five default metrics of one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleMetrics {
    pub num_elements: f64,
    pub stddev: f64,
    pub mean_error: f64,
    pub max_abs_error: f64,
    pub mean_squared_error: f64,
}

/// The default metrics of one sample's `diff`. `stddev` is the population standard
/// deviation (numpy's default, `ddof=0`), as TensorFlow computes it.
pub fn sample_metrics(diff: &[f64]) -> SampleMetrics {
    let n = diff.len() as f64;
    if diff.is_empty() {
        return SampleMetrics {
            num_elements: 0.0,
            stddev: f64::NAN,
            mean_error: f64::NAN,
            max_abs_error: f64::NAN,
            mean_squared_error: f64::NAN,
        };
    }
    let mean = diff.iter().sum::<f64>() / n;
    let variance = diff.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n;
    SampleMetrics {
        num_elements: n,
        stddev: variance.sqrt(),
        mean_error: mean,
        max_abs_error: diff.iter().fold(0f64, |m, d| m.max(d.abs())),
        mean_squared_error: diff.iter().map(|d| d * d).sum::<f64>() / n,
    }
}

/// A NaN-skipping running mean (numpy's `nanmean`): NaN when every value was NaN.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NanMean {
    sum: f64,
    count: usize,
}

impl NanMean {
    pub fn add(&mut self, v: f64) {
        if !v.is_nan() {
            self.sum += v;
            self.count += 1;
        }
    }

    pub fn value(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }
}

/// The default metrics of one layer, accumulated over samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerAccumulator {
    /// The layer's int8 step (scale, zero point): histograms for the KL divergence count
    /// values per step, the finest binning the int8 output can show.
    step: Option<(f64, i64)>,
    float_hist: [u64; 256],
    quant_hist: [u64; 256],
    /// Errors in units of the layer's scale (what the dashboard's error histogram shows).
    error_hist: [u64; ERROR_BINS],
    num_elements: NanMean,
    stddev: NanMean,
    mean_error: NanMean,
    max_abs_error: NanMean,
    mean_squared_error: NanMean,
    /// Pooled sums over all samples, for the metrics TensorFlow does not have.
    signal_power: f64,
    noise_power: f64,
    abs_error: f64,
    max_abs_global: f64,
    elements: usize,
    sum_f: f64,
    sum_q: f64,
    sum_q2: f64,
    dot: f64,
    saturated: usize,
    /// Some sample was measured without the extras' sums: they are NaN.
    extras_missing: bool,
    pub samples: usize,
}

/// A layer's metrics as reported.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LayerMetrics {
    pub num_elements: f64,
    pub stddev: f64,
    pub mean_error: f64,
    pub max_abs_error: f64,
    pub mean_squared_error: f64,
    /// Signal-to-quantization-noise ratio in dB, pooled over all samples.
    pub sqnr_db: f64,
    /// Cosine similarity of float and dequantized outputs, pooled over all samples.
    pub cosine: f64,
    /// Mean absolute error over all elements of all samples.
    pub mean_abs_error: f64,
    /// Largest absolute error over all samples (TensorFlow's is a mean of maxima).
    pub max_abs_error_global: f64,
    /// Pearson correlation of float and dequantized outputs, pooled.
    pub correlation: f64,
    /// Fraction of int8 outputs at -128 or 127: clipping by a too-narrow range.
    pub saturation: f64,
    /// KL divergence of the float values' distribution from the int8 values', both
    /// binned by the layer's int8 steps, pooled over all samples.
    pub kl_divergence: f64,
}

/// The names `--metrics` accepts, in the order the CSV writes them.
pub const EXTRA_METRICS: [&str; 7] = [
    "sqnr_db",
    "cosine",
    "mean_abs_error",
    "max_abs_error_global",
    "kl_divergence",
    "correlation",
    "saturation",
];

/// Bins of the error histogram: steps of a quarter of the layer's scale, centred on zero;
/// the two end bins also hold everything beyond them.
pub const ERROR_BINS: usize = 33;
/// Width of one error bin, in units of the layer's scale.
pub const ERROR_BIN_WIDTH: f64 = 0.25;

/// The error-histogram bin of an error measured in units of the layer's scale.
pub fn error_bin(error_in_scales: f64) -> usize {
    let half = (ERROR_BINS / 2) as f64;
    let k = (error_in_scales / ERROR_BIN_WIDTH).round();
    // NaN clamps to the centre rather than poisoning an end bin.
    (if k.is_nan() {
        0.0
    } else {
        k.clamp(-half, half)
    } + half) as usize
}

/// One layer's value and error distributions, pooled over the samples seen.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerHistograms {
    pub scale: f64,
    pub zero_point: i64,
    /// Float reference values per int8 step: bin `q + 128` counts values that quantize to `q`.
    pub float: Vec<u64>,
    /// Dequantized int8 values per int8 step, binned like `float`.
    pub dequantized: Vec<u64>,
    /// `dequantized - float` in [`ERROR_BIN_WIDTH`] steps of the scale, [`ERROR_BINS`] bins.
    pub error: Vec<u64>,
}

impl LayerMetrics {
    /// An extra metric by its `--metrics` name.
    pub fn extra(&self, name: &str) -> Option<f64> {
        Some(match name {
            "sqnr_db" => self.sqnr_db,
            "cosine" => self.cosine,
            "mean_abs_error" => self.mean_abs_error,
            "max_abs_error_global" => self.max_abs_error_global,
            "correlation" => self.correlation,
            "saturation" => self.saturation,
            "kl_divergence" => self.kl_divergence,
            _ => return None,
        })
    }
}

/// One sample's contribution to a layer's statistics: computed on its own (on any thread)
/// and merged into a [`LayerAccumulator`] in sample order with [`LayerAccumulator::add`].
#[derive(Clone, Debug)]
pub struct LayerSample {
    metrics: SampleMetrics,
    signal_power: f64,
    noise_power: f64,
    abs_error: f64,
    elements: usize,
    sum_f: f64,
    sum_q: f64,
    sum_q2: f64,
    dot: f64,
    saturated: usize,
    /// Whether the sums behind qdbg's extra metrics (SQNR, cosine, mean absolute error,
    /// correlation, saturation) were counted: a measurement for TensorFlow's statistics
    /// alone skips them, about half of the work.
    extras: bool,
    /// Float and int8 values per int8 step, and errors per [`ERROR_BIN_WIDTH`] of the
    /// scale (boxed: 4 KiB that only layers with a step need).
    hist: Option<Box<Histograms>>,
}

type Histograms = ([u64; 256], [u64; 256], [u64; ERROR_BINS]);
