//! [`ModelAccumulator`]: the model's final outputs, float against int8, per output and
//! pooled over all of them.
//!
//! Per output because one pooled number misleads on models with several outputs: a big
//! output (468 landmarks) at 25 dB hides a small one (a handedness score) at 6 dB, and a
//! repair judged on the pooled number can break the small one unseen.

use super::*;
use crate::graph::Graph;

/// Running sums of one comparison of float and int8 values (one output, or all pooled).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ErrorSums {
    squared_error: f64,
    signal_power: f64,
    quant_power: f64,
    dot: f64,
    elements: usize,
}

impl ErrorSums {
    fn add(&mut self, float: &[f64], quant: &[f64]) {
        for (f, q) in float.iter().zip(quant) {
            self.squared_error += (q - f) * (q - f);
            self.signal_power += f * f;
            self.quant_power += q * q;
            self.dot += f * q;
        }
        self.elements += float.len().min(quant.len());
    }

    fn merge(&mut self, other: &ErrorSums) {
        self.squared_error += other.squared_error;
        self.signal_power += other.signal_power;
        self.quant_power += other.quant_power;
        self.dot += other.dot;
        self.elements += other.elements;
    }

    fn mse(&self) -> f64 {
        self.squared_error / self.elements.max(1) as f64
    }

    fn sqnr_db(&self) -> f64 {
        10.0 * (self.signal_power / self.squared_error).log10()
    }

    fn cosine(&self) -> f64 {
        self.dot / (self.signal_power.sqrt() * self.quant_power.sqrt())
    }
}

/// Final outputs of the float model against the int8 model: every output on its own and
/// all pooled; class agreement and accuracies (with labels) on the first output, the
/// prediction for classifiers.
#[derive(Clone, Debug, Default)]
pub struct ModelAccumulator {
    names: Vec<String>,
    outputs: Vec<ErrorSums>,
    argmax_agree: usize,
    top5_agree: usize,
    float_top1: usize,
    float_top5: usize,
    quant_top1: usize,
    quant_top5: usize,
    labelled: usize,
    samples: usize,
}

/// One model output's error, float against int8, pooled over all samples.
///
/// The place a per-output task (classify, detect, regress, segment: issue 22 item 2) and
/// its metrics go; today the classification metrics are the model's, on the first output.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OutputMetrics {
    /// The output tensor's name in the float model (made unique: see [`output_names`]).
    pub name: String,
    pub mse: f64,
    /// Signal-to-quantization-noise ratio in dB.
    pub sqnr_db: f64,
    pub cosine: f64,
}

/// Model-level metrics as reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelMetrics {
    pub samples: usize,
    /// Pooled over every element of every output: dominated by the biggest output, so
    /// read it beside [`ModelMetrics::outputs`].
    pub mse: f64,
    pub sqnr_db: f64,
    pub cosine: f64,
    /// Each output on its own, in the model's output order.
    pub outputs: Vec<OutputMetrics>,
    /// The output with the lowest SQNR (none while no output has a number).
    pub worst_output: Option<String>,
    /// The output the class metrics below are computed on (the first).
    pub classified_output: Option<String>,
    /// Fraction of samples where both models pick the same class.
    pub argmax_agreement: f64,
    /// Fraction of samples where the int8 model's top class is in the float model's top 5.
    pub top5_agreement: f64,
    pub float_top1: Option<f64>,
    pub float_top5: Option<f64>,
    pub int8_top1: Option<f64>,
    pub int8_top5: Option<f64>,
}

/// The model-level metric names [`ModelMetrics::value`] accepts besides `NAME[OUTPUT]`.
pub const MODEL_METRICS: [&str; 9] = [
    "mse",
    "sqnr_db",
    "cosine",
    "min_output_sqnr_db",
    "max_output_mse",
    "min_output_cosine",
    "argmax_agreement",
    "top5_agreement",
    "int8_top1",
];

/// The per-output metric names `NAME[OUTPUT]` accepts.
pub const OUTPUT_METRICS: [&str; 3] = ["mse", "sqnr_db", "cosine"];

impl OutputMetrics {
    fn metric(&self, name: &str) -> Option<f64> {
        Some(match name {
            "mse" => self.mse,
            "sqnr_db" => self.sqnr_db,
            "cosine" => self.cosine,
            _ => return None,
        })
    }
}

impl ModelMetrics {
    /// The output with the lowest SQNR (NaN, from an output with no samples, is skipped).
    pub fn worst(&self) -> Option<&OutputMetrics> {
        self.outputs
            .iter()
            .filter(|o| !o.sqnr_db.is_nan())
            .min_by(|a, b| a.sqnr_db.total_cmp(&b.sqnr_db))
    }

    /// The SQNR to judge the model on: the worst output's, which the pooled one can hide
    /// (the pooled one where there are no per-output numbers).
    pub fn headline_sqnr_db(&self) -> f64 {
        self.worst().map_or(self.sqnr_db, |o| o.sqnr_db)
    }

    /// An output's metrics by its name.
    pub fn output(&self, name: &str) -> Option<&OutputMetrics> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// A model-level metric by name, as expressions name them: a name of
    /// [`MODEL_METRICS`] (`sqnr_db`, `mse` and `cosine` alone are pooled over all
    /// outputs), or `NAME[OUTPUT]` for one output (`sqnr_db[Identity_1]`). The error
    /// says what was wrong and lists what is accepted (the output names included).
    ///
    /// Rules over model-level metrics (a repair's target, issue 18) look names up here.
    pub fn value(&self, name: &str) -> std::result::Result<f64, String> {
        let name = name.trim();
        if let Some((metric, rest)) = name.split_once('[') {
            let metric = metric.trim();
            let Some(output) = rest.strip_suffix(']') else {
                return Err(format!(
                    "'{name}' lacks its closing ']': write {metric}[OUTPUT_NAME]"
                ));
            };
            if !OUTPUT_METRICS.contains(&metric) {
                return Err(format!(
                    "'{metric}' is not a per-output metric; those are: {}",
                    OUTPUT_METRICS.join(", ")
                ));
            }
            let output = output.trim();
            return self
                .output(output)
                .and_then(|o| o.metric(metric))
                .ok_or_else(|| {
                    format!(
                        "the model has no output named '{output}'; its outputs are: {}",
                        self.output_list()
                    )
                });
        }
        let fold = |init: f64, pick: fn(&OutputMetrics) -> f64, better: fn(f64, f64) -> f64| {
            self.outputs.iter().map(pick).fold(init, better)
        };
        Ok(match name {
            "mse" => self.mse,
            "sqnr_db" => self.sqnr_db,
            "cosine" => self.cosine,
            "min_output_sqnr_db" => self.headline_sqnr_db(),
            "max_output_mse" => fold(f64::NAN, |o| o.mse, f64::max),
            "min_output_cosine" => fold(f64::NAN, |o| o.cosine, f64::min),
            "argmax_agreement" => self.argmax_agreement,
            "top5_agreement" => self.top5_agreement,
            "int8_top1" => self.int8_top1.unwrap_or(f64::NAN),
            _ => {
                return Err(format!(
                    "unknown model metric '{name}': use one of {}, or {}[OUTPUT] with OUTPUT \
                     one of: {}",
                    MODEL_METRICS.join(", "),
                    OUTPUT_METRICS.join("/"),
                    self.output_list()
                ))
            }
        })
    }

    fn output_list(&self) -> String {
        if self.outputs.is_empty() {
            "(none measured yet)".to_string()
        } else {
            let names: Vec<&str> = self.outputs.iter().map(|o| o.name.as_str()).collect();
            names.join(", ")
        }
    }
}

/// The names the model-level metrics give `graph`'s outputs: the tensor names, with
/// `output K` for an unnamed one and `#K` appended to a repeated one, so that every
/// output can be named in an expression.
pub fn output_names(graph: &Graph) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(graph.outputs.len());
    for (k, &id) in graph.outputs.iter().enumerate() {
        let name = graph.tensor(id).name.trim();
        let name = if name.is_empty() {
            format!("output {k}")
        } else {
            name.to_string()
        };
        let name = if names.contains(&name) {
            format!("{name}#{k}")
        } else {
            name
        };
        names.push(name);
    }
    names
}

fn top_k(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

impl ModelAccumulator {
    /// An accumulator for a model whose outputs are named `names`, in output order.
    pub fn new(names: Vec<String>) -> Self {
        Self {
            outputs: vec![ErrorSums::default(); names.len()],
            names,
            ..Self::default()
        }
    }

    /// One sample: the float and int8 model's outputs (one vector per output, in output
    /// order) and the sample's label, if known.
    pub fn add_sample(&mut self, float: &[Vec<f64>], quant: &[Vec<f64>], label: Option<i64>) {
        for ((sums, f), q) in self.outputs.iter_mut().zip(float).zip(quant) {
            sums.add(f, q);
        }
        if let (Some(float), Some(quant)) = (float.first(), quant.first()) {
            let (ft, qt) = (top_k(float, 5), top_k(quant, 5));
            if let (Some(&f0), Some(&q0)) = (ft.first(), qt.first()) {
                self.argmax_agree += usize::from(f0 == q0);
                self.top5_agree += usize::from(ft.contains(&q0));
            }
            if let Some(label) = label.and_then(|l| usize::try_from(l).ok()) {
                self.labelled += 1;
                self.float_top1 += usize::from(ft.first() == Some(&label));
                self.float_top5 += usize::from(ft.contains(&label));
                self.quant_top1 += usize::from(qt.first() == Some(&label));
                self.quant_top5 += usize::from(qt.contains(&label));
            }
        }
        self.samples += 1;
    }

    pub fn metrics(&self) -> ModelMetrics {
        let n = self.samples.max(1) as f64;
        let labelled = (self.labelled > 0).then_some(self.labelled as f64);
        let mut pooled = ErrorSums::default();
        for sums in &self.outputs {
            pooled.merge(sums);
        }
        let measured = self.samples > 0;
        let outputs: Vec<OutputMetrics> = if measured {
            self.names
                .iter()
                .zip(&self.outputs)
                .map(|(name, sums)| OutputMetrics {
                    name: name.clone(),
                    mse: sums.mse(),
                    sqnr_db: sums.sqnr_db(),
                    cosine: sums.cosine(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut m = ModelMetrics {
            samples: self.samples,
            mse: pooled.mse(),
            sqnr_db: pooled.sqnr_db(),
            cosine: pooled.cosine(),
            outputs,
            worst_output: None,
            classified_output: self.names.first().cloned(),
            argmax_agreement: self.argmax_agree as f64 / n,
            top5_agreement: self.top5_agree as f64 / n,
            float_top1: labelled.map(|l| self.float_top1 as f64 / l),
            float_top5: labelled.map(|l| self.float_top5 as f64 / l),
            int8_top1: labelled.map(|l| self.quant_top1 as f64 / l),
            int8_top5: labelled.map(|l| self.quant_top5 as f64 / l),
        };
        m.worst_output = m.worst().map(|o| o.name.clone());
        m
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;

    fn one(v: &[f64]) -> Vec<Vec<f64>> {
        vec![v.to_vec()]
    }

    /// Two samples, three classes, labels [0, 2]: worked by hand.
    #[test]
    fn model_metrics_by_hand() {
        let mut acc = ModelAccumulator::new(vec!["scores".into()]);
        acc.add_sample(&one(&[0.7, 0.2, 0.1]), &one(&[0.6, 0.3, 0.1]), Some(0));
        acc.add_sample(&one(&[0.2, 0.5, 0.3]), &one(&[0.2, 0.3, 0.5]), Some(2));
        let m = acc.metrics();
        // squared errors: 0.01 + 0.01 + 0 + 0 + 0.04 + 0.04 = 0.10 over 6 elements
        assert!((m.mse - 0.1 / 6.0).abs() < 1e-12);
        // argmax: (0, 0) agree, (1, 2) differ
        assert_eq!(m.argmax_agreement, 0.5);
        assert_eq!(m.top5_agreement, 1.0);
        // float is right on sample 0 only; int8 on both
        assert_eq!(m.float_top1, Some(0.5));
        assert_eq!(m.int8_top1, Some(1.0));
        assert_eq!(m.classified_output.as_deref(), Some("scores"));
    }

    /// Two outputs with errors worked by hand: a big one with a small error and a small
    /// one with a large error. The pooled SQNR sits near the big one's; the worst is the
    /// small one, and the class metrics come from the first output alone.
    #[test]
    fn per_output_metrics_by_hand() {
        let names = vec!["landmarks".to_string(), "handedness".to_string()];
        let mut acc = ModelAccumulator::new(names);
        // landmarks: float [3, 4] (power 25) vs int8 [3, 4.1]: error power 0.01.
        // handedness: float [1] (power 1) vs int8 [0.5]: error power 0.25.
        acc.add_sample(
            &[vec![3.0, 4.0], vec![1.0]],
            &[vec![3.0, 4.1], vec![0.5]],
            None,
        );
        let m = acc.metrics();
        assert_eq!(m.outputs.len(), 2);
        let (l, h) = (&m.outputs[0], &m.outputs[1]);
        assert_eq!(l.name, "landmarks");
        // 10 log10(25 / 0.01) = 10 log10(2500) = 33.979 dB
        assert!(
            (l.sqnr_db - 33.979_400_086_720_37).abs() < 1e-9,
            "{}",
            l.sqnr_db
        );
        assert!((l.mse - 0.01 / 2.0).abs() < 1e-12);
        // cosine: (9 + 16.4) / (5 * sqrt(9 + 16.81)) = 25.4 / (5 * 5.080354...)
        assert!((l.cosine - 25.4 / (5.0 * 25.81f64.sqrt())).abs() < 1e-12);
        // 10 log10(1 / 0.25) = 6.0206 dB
        assert!(
            (h.sqnr_db - 6.020_599_913_279_624).abs() < 1e-9,
            "{}",
            h.sqnr_db
        );
        assert_eq!(h.mse, 0.25);
        assert_eq!(h.cosine, 1.0);
        // pooled: 10 log10(26 / 0.26) = 20 dB, over 3 elements
        assert!((m.sqnr_db - 20.0).abs() < 1e-9, "{}", m.sqnr_db);
        assert!((m.mse - 0.26 / 3.0).abs() < 1e-12);
        assert_eq!(m.worst_output.as_deref(), Some("handedness"));
        assert_eq!(m.headline_sqnr_db(), h.sqnr_db);
        // argmax of the first output: index 1 in both
        assert_eq!(m.argmax_agreement, 1.0);
        assert_eq!(m.classified_output.as_deref(), Some("landmarks"));
    }

    #[test]
    fn metric_names_by_output_and_worst() {
        let mut acc = ModelAccumulator::new(vec!["boxes".into(), "scores".into()]);
        acc.add_sample(&[vec![2.0], vec![1.0]], &[vec![2.2], vec![0.9]], None);
        let m = acc.metrics();
        // boxes: 10 log10(4 / 0.04) = 20 dB; scores: 10 log10(1 / 0.01) = 20 dB too
        // (ties keep the first); mse 0.04 and 0.01.
        assert!((m.value("sqnr_db[boxes]").unwrap() - 20.0).abs() < 1e-9);
        assert!((m.value(" mse[scores] ").unwrap() - 0.01).abs() < 1e-12);
        assert!((m.value("max_output_mse").unwrap() - 0.04).abs() < 1e-12);
        assert!((m.value("min_output_sqnr_db").unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(m.value("min_output_cosine").unwrap(), 1.0);
        let err = m.value("sqnr_db[anchors]").unwrap_err();
        assert!(
            err.contains("'anchors'") && err.contains("boxes, scores"),
            "{err}"
        );
        let err = m.value("rmse[boxes]").unwrap_err();
        assert!(err.contains("mse, sqnr_db, cosine"), "{err}");
        let err = m.value("sqnr_db[boxes").unwrap_err();
        assert!(err.contains("closing ']'"), "{err}");
        let err = m.value("psnr").unwrap_err();
        assert!(
            err.contains("min_output_sqnr_db") && err.contains("boxes, scores"),
            "{err}"
        );
    }

    #[test]
    fn no_samples_means_no_outputs_and_no_worst() {
        let m = ModelAccumulator::new(vec!["a".into(), "b".into()]).metrics();
        assert!(m.outputs.is_empty());
        assert_eq!(m.worst_output, None);
        assert!(m.headline_sqnr_db().is_nan());
    }
}
