//! Ranges found on calibration histograms (`qdbg::quant::range_search`) against their
//! oracles: ONNX Runtime's own percentile and entropy calibrators run on the same
//! histograms (tests/oracle/ort_calibrate.py), a brute-force search of the empirical
//! quantization error for the minimum-MSE range, and the TFLite same-scale rule for ranges
//! set by hand (`Calibration::with_ranges`).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use candle_core::Device;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::exec::Executor;
use qdbg::graph::Graph;
use qdbg::ops::{param_rule, ParamRule};
use qdbg::quant::calibration::HISTOGRAM_VALUES_PER_SAMPLE;
use qdbg::quant::histogram::{Histogram, CALIBRATION_HISTOGRAM_BINS};
use qdbg::quant::plan::{params_for_range, plan_activations};
use qdbg::quant::range_search::{
    entropy_candidates, entropy_thresholds, min_mse_range, percentile_thresholds,
    ENTROPY_QUANTIZED_BINS,
};
use qdbg::quant::{calibrate, Calibration, RangeMethod, TensorRange};

const PERCENTILES: [f64; 3] = [99.9, 99.99, 99.999];

/// A fixture model and its calibration on the fixture's inputs.
fn calibrated(name: &str) -> (Graph, Calibration) {
    let graph = qdbg::tflite::read_model(&common::fixture(&format!("{name}.tflite"))).unwrap();
    let data = load_dataset(
        &common::fixture(&format!("{name}.inputs.npz")),
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    (graph, cal)
}

/// Deterministic pseudo-random numbers (xorshift64*), uniform in [0, 1).
struct Random(u64);

impl Random {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn histogram_of(values: &[f32], bins: usize) -> Histogram {
    let min = values.iter().copied().fold(f32::INFINITY, f32::min);
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    Histogram::of_values(values, TensorRange { min, max }, bins)
}

/// Synthetic activations: outlier-dominated, ReLU-like, negative-only, heavy-tailed, a
/// narrow bump away from zero, and all zeros.
fn synthetic() -> Vec<(String, Vec<f32>)> {
    let mut r = Random(0x9e37_79b9_7f4a_7c15);
    let n = 100_000;
    let mut outliers: Vec<f32> = (0..n).map(|_| r.gaussian() as f32).collect();
    for k in 0..20 {
        outliers[k * 4999] = if k % 2 == 0 { 40.0 } else { -35.0 } + k as f32;
    }
    let relu = (0..n)
        .map(|_| (2.0 * r.gaussian() + 0.5).max(0.0) as f32)
        .collect();
    let negative = (0..n)
        .map(|_| -(r.uniform().powi(3) * 7.0) as f32)
        .collect();
    let heavy = (0..n).map(|_| r.gaussian().powi(3) as f32).collect();
    let bump = (0..n).map(|_| (5.0 + 0.1 * r.uniform()) as f32).collect();
    vec![
        ("outliers".into(), outliers),
        ("relu".into(), relu),
        ("negative".into(), negative),
        ("heavy_tail".into(), heavy),
        ("bump".into(), bump),
        ("zeros".into(), vec![0.0; 1000]),
    ]
}

/// ONNX Runtime's answer for each histogram (see tests/oracle/ort_calibrate.py).
fn ort(histograms: &[(String, Histogram)], entropy: bool) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let request = serde_json::json!({
        "percentiles": PERCENTILES,
        "quantized_bins": ENTROPY_QUANTIZED_BINS,
        "entropy": entropy,
        "histograms": histograms.iter().map(|(name, h)| serde_json::json!({
            "name": name,
            "counts": h.counts(),
            "edges": h.edges(),
            "min": h.range().min,
            "max": h.range().max,
        })).collect::<Vec<_>>(),
    });
    let path = dir.path().join("request.json");
    std::fs::write(&path, request.to_string()).unwrap();
    let out = Command::new(common::oracle_python())
        .arg(common::repo().join("tests/oracle/ort_calibrate.py"))
        .arg(&path)
        .output()
        .expect("running ort_calibrate.py");
    assert!(
        out.status.success(),
        "ort_calibrate.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pair(v: &serde_json::Value) -> (f32, f32) {
    (v[0].as_f64().unwrap() as f32, v[1].as_f64().unwrap() as f32)
}

/// Percentile thresholds must equal ONNX Runtime's exactly (both pick bin edges, exact in
/// f32, or the observed min / max). Entropy thresholds must equal ONNX Runtime's, or, where
/// they differ, ONNX Runtime's own divergence (f32) at qdbg's pick must equal its minimum
/// to f32 precision (a tie in ONNX Runtime's float32 sums, which qdbg's f64 sums break
/// differently). Returns how many entropy picks were such ties.
fn agree_with_ort(histograms: &[(String, Histogram)]) -> usize {
    let answer = ort(histograms, true);
    let mut ties = 0;
    for (name, h) in histograms {
        let theirs = &answer[name.as_str()];
        for p in PERCENTILES {
            let ours = percentile_thresholds(h, p).unwrap();
            let ours = (ours.0 as f32, ours.1 as f32);
            let key = format!("{p:?}");
            assert_eq!(
                ours,
                pair(&theirs["percentile"][key.as_str()]),
                "{name}: percentile {p}"
            );
        }
        let ours = entropy_thresholds(h, ENTROPY_QUANTIZED_BINS).unwrap();
        let ours = (ours.0 as f32, ours.1 as f32);
        let expected = pair(&theirs["entropy"]);
        if ours != expected {
            let kl: Vec<f64> = theirs["entropy_divergences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::INFINITY))
                .collect();
            let candidates = entropy_candidates(h, ENTROPY_QUANTIZED_BINS);
            assert_eq!(candidates.len(), kl.len(), "{name}: entropy candidates");
            let ours_at = candidates
                .iter()
                .position(|c| {
                    let (lo, hi) = (
                        c.lo.max(f64::from(h.range().min)),
                        c.hi.min(f64::from(h.range().max)),
                    );
                    (lo as f32, hi as f32) == ours
                })
                .unwrap();
            let best = kl.iter().copied().fold(f64::INFINITY, f64::min);
            assert_eq!(
                kl[ours_at], best,
                "{name}: entropy {ours:?} vs ONNX Runtime's {expected:?}: divergence {} vs {best}",
                kl[ours_at]
            );
            ties += 1;
        }
    }
    ties
}

#[test]
fn percentile_and_entropy_agree_with_onnx_runtime_on_synthetic_histograms() {
    let histograms: Vec<(String, Histogram)> = synthetic()
        .into_iter()
        .map(|(name, values)| (name, histogram_of(&values, CALIBRATION_HISTOGRAM_BINS)))
        .collect();
    let ties = agree_with_ort(&histograms);
    eprintln!(
        "{} synthetic histograms agree with ONNX Runtime ({ties} entropy ties)",
        histograms.len()
    );
}

#[test]
fn percentile_and_entropy_agree_with_onnx_runtime_on_mobilenet_activations() {
    let (graph, cal) = calibrated("mobilenet_v3_small");
    let all: Vec<(String, Histogram)> = cal
        .ranges
        .iter()
        .map(|(id, r)| {
            let h = cal
                .histogram(*id)
                .expect("every calibrated tensor has a histogram");
            assert_eq!(h.counts().len(), CALIBRATION_HISTOGRAM_BINS);
            // Each of the 2 samples counts every s-th value: s the smallest stride at or
            // above n / HISTOGRAM_VALUES_PER_SAMPLE that shares no factor with the
            // channels (the last dimension).
            let n = graph.tensor(*id).num_elements();
            let channels = graph.tensor(*id).shape.last().copied().unwrap_or(1).max(1);
            let coprime =
                |s: usize| (2..=s).all(|f| !s.is_multiple_of(f) || !channels.is_multiple_of(f));
            let stride = (n.div_ceil(HISTOGRAM_VALUES_PER_SAMPLE)..)
                .find(|&s| coprime(s))
                .unwrap();
            assert_eq!(h.total() as usize, n.div_ceil(stride) * 2, "{}", r.name);
            assert_eq!(h.range(), r.range);
            (format!("{id}:{}", r.name), h.clone())
        })
        .collect();
    // ONNX Runtime's entropy search is slow in Python (about a second a histogram): the
    // percentile on every tensor, entropy on every 32nd.
    let answer = ort(&all, false);
    for (name, h) in &all {
        for p in PERCENTILES {
            let ours = percentile_thresholds(h, p).unwrap();
            let key = format!("{p:?}");
            assert_eq!(
                (ours.0 as f32, ours.1 as f32),
                pair(&answer[name.as_str()]["percentile"][key.as_str()]),
                "{name}: percentile {p}"
            );
        }
    }
    let some: Vec<(String, Histogram)> = all.iter().step_by(32).cloned().collect();
    let ties = agree_with_ort(&some);
    eprintln!(
        "{} MobileNetV3 histograms: percentiles agree; entropy on {} ({ties} ties)",
        all.len(),
        some.len()
    );
}

/// Mean squared error of `values` quantized with `range`'s int8 parameters, computed
/// directly: q = clamp(round(v / scale) + zero_point, -128, 127), back to (q - zp) * scale.
fn empirical_mse(values: &[f32], range: TensorRange) -> f64 {
    let p = params_for_range(range);
    let (scale, zp) = (f64::from(p.scale[0]), p.zero_point[0] as f64);
    values
        .iter()
        .map(|&v| {
            let q = ((f64::from(v) / scale).round() + zp).clamp(-128.0, 127.0);
            let back = (q - zp) * scale;
            (f64::from(v) - back).powi(2)
        })
        .sum::<f64>()
        / values.len() as f64
}

#[test]
fn min_mse_range_is_as_good_as_a_brute_force_search_of_the_real_error() {
    let mut r = Random(42);
    // Gaussian with a few far outliers, and a skewed ReLU-like one with a long tail.
    let mut outliers: Vec<f32> = (0..20_000).map(|_| r.gaussian() as f32).collect();
    for k in 0..6 {
        outliers[k * 3001] = 30.0 + 3.0 * k as f32;
    }
    let skewed: Vec<f32> = (0..20_000)
        .map(|_| (r.gaussian().exp() - 1.2) as f32)
        .collect();
    for (name, values) in [("outliers", outliers), ("skewed", skewed)] {
        let h = histogram_of(&values, 256);
        let ours = min_mse_range(&h);
        assert!(ours.min <= 0.0 && ours.max >= 0.0, "{name}: {ours:?}");
        assert!(ours.min >= h.range().min.min(0.0) && ours.max <= h.range().max.max(0.0));
        // Every range on bin edges within the observed range, scored on the values.
        let (min0, max0) = (h.range().min.min(0.0), h.range().max.max(0.0));
        let ends = |from: f32, to: f32| -> Vec<f32> {
            h.edges()
                .iter()
                .map(|&e| (e as f32).clamp(from, to))
                .filter(|e| *e >= from && *e <= to)
                .collect()
        };
        let mut best = f64::INFINITY;
        for lo in ends(min0, 0.0) {
            for hi in ends(0.0, max0) {
                best = best.min(empirical_mse(&values, TensorRange { min: lo, max: hi }));
            }
        }
        let at_ours = empirical_mse(&values, ours);
        let at_min_max = empirical_mse(&values, h.range());
        eprintln!("{name}: {ours:?} mse {at_ours:e}, brute force {best:e}, min/max {at_min_max:e}");
        // The search scores a model of the error (values spread evenly over each bin,
        // rounding error scale^2/12), not the values themselves: within 5% of the best.
        assert!(at_ours <= best * 1.05, "{name}: {at_ours} vs {best}");
        assert!(
            at_ours < at_min_max,
            "{name}: {at_ours} vs min/max {at_min_max}"
        );
    }
}

#[test]
fn refined_ranges_contain_zero_and_stay_within_the_observed_range() {
    let (_, cal) = calibrated("mobilenet_v3_small");
    let methods = [
        RangeMethod::Percentile(99.9),
        RangeMethod::Percentile(99.99),
        RangeMethod::Percentile(99.999),
        RangeMethod::MinMse,
        RangeMethod::Entropy,
    ];
    for (&id, named) in cal.ranges.iter().step_by(7) {
        let (min0, max0) = (named.range.min.min(0.0), named.range.max.max(0.0));
        for m in methods {
            let r = cal.refined_range(id, m).unwrap();
            assert!(
                r.min <= 0.0 && r.max >= 0.0 && r.min >= min0 && r.max <= max0,
                "{} {m:?}: {r:?} vs observed {:?}",
                named.name,
                named.range
            );
        }
    }
}

/// TFLite's same-scale rule: ops that copy or compare raw int8 values (reshapes, pooling,
/// concatenation) read and write one set of parameters. A range set by hand on a tensor
/// must reach the same tensors a calibrated range there would.
#[test]
fn a_range_set_by_hand_propagates_through_same_scale_ops() {
    // g11322: a CONCATENATION (tests/fixtures/generated/g11322, quant_params' TF check).
    for name in ["mobilenet_v3_small", "generated/g11322"] {
        let (graph, cal) = calibrated(name);
        let float = |id: &usize| graph.tensor(*id).dtype.is_float();
        let mut checked = 0;
        for node in &graph.nodes {
            if param_rule(&node.op) != ParamRule::SameScale {
                continue;
            }
            let inputs: Vec<usize> = node
                .inputs
                .iter()
                .flatten()
                .copied()
                .filter(float)
                .collect();
            let outputs: Vec<usize> = node.outputs.iter().copied().filter(float).collect();
            if inputs.is_empty() || outputs.len() != 1 {
                continue;
            }
            // One float input: the input's range is the group's; several (concatenation):
            // the output's range is.
            let pinned = if inputs.len() == 1 {
                inputs[0]
            } else {
                outputs[0]
            };
            let observed = cal.range(pinned).unwrap();
            let chosen = TensorRange {
                min: observed.min * 0.5 - 0.25,
                max: observed.max * 0.5 + 0.25,
            };
            let overridden = cal.with_ranges(&BTreeMap::from([(pinned, chosen)]));
            assert_eq!(overridden.range(pinned), Some(chosen));
            assert_eq!(overridden.observed_range(pinned), Some(observed));
            let plan = plan_activations(&graph, &overridden);
            let expect = params_for_range(chosen);
            for id in inputs.iter().chain(&outputs) {
                // A requantize may sit between an input and the op when that input is
                // pinned elsewhere; the op itself reads the group's parameters.
                let slot = node.inputs.iter().position(|i| *i == Some(*id));
                let pos = graph
                    .nodes
                    .iter()
                    .position(|n| std::ptr::eq(n, node))
                    .unwrap();
                let got = match slot {
                    Some(s) => plan.read_params(pos, s, *id).cloned(),
                    None => plan.get(id).cloned(),
                };
                assert_eq!(
                    got.as_ref(),
                    Some(&expect),
                    "{name}: {} of {} after setting {}'s range",
                    graph.tensor(*id).name,
                    node.op.name(),
                    graph.tensor(pinned).name
                );
            }
            checked += 1;
        }
        assert!(checked > 0, "{name} has no same-scale op");
        eprintln!("{name}: {checked} same-scale ops checked");
    }
}
