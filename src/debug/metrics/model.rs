//! [`ModelAccumulator`]: the model's final outputs, float against int8, per output and
//! pooled over all of them.
//!
//! Per output because one pooled number misleads on models with several outputs: a big
//! output (468 landmarks) at 25 dB hides a small one (a handedness score) at 6 dB, and a
//! repair judged on the pooled number can break the small one unseen.

use super::task::*;
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

/// Running sums of the class metrics of one classify output.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ClassSums {
    argmax_agree: usize,
    top5_agree: usize,
    float_top1: usize,
    float_top5: usize,
    quant_top1: usize,
    quant_top5: usize,
    labelled: usize,
}

/// Running sums of a task's per-sample metric (mask IoU, top-K agreement, box IoU): a
/// NaN-skipping mean over samples.
type TaskMean = NanMean;

/// One output as the accumulator knows it: its name, static shape and the task the user
/// gave (`None`: guessed on the first sample).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub task: Option<Task>,
}

/// How many top-scored boxes a detect output's agreement is measured on (fewer when the
/// output has fewer rows).
pub const DETECT_TOP_K: usize = 10;

/// Final outputs of the float model against the int8 model: every output on its own and
/// all pooled, and each output's task metrics (see [`Task`]).
#[derive(Clone, Debug, Default)]
pub struct ModelAccumulator {
    specs: Vec<OutputSpec>,
    /// Each output's task and whether it was guessed: fixed on the first sample.
    tasks: Vec<(Task, bool)>,
    /// The threshold each segment output's masks are cut at, fixed on the first sample.
    thresholds: Vec<f64>,
    outputs: Vec<ErrorSums>,
    class: Vec<ClassSums>,
    mask_iou: Vec<TaskMean>,
    top_k_agreement: Vec<TaskMean>,
    box_iou: Vec<TaskMean>,
    samples: usize,
}

/// The class metrics of a classify output.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Fraction of samples where both models pick the same class.
    pub top1_agreement: f64,
    /// Fraction of samples where the int8 model's top class is in the float model's top 5.
    pub top5_agreement: f64,
    /// Accuracies against the labels, when given.
    pub float_top1: Option<f64>,
    pub float_top5: Option<f64>,
    pub int8_top1: Option<f64>,
    pub int8_top5: Option<f64>,
}

/// The mask metric of a segment output.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SegmentMetrics {
    /// Intersection over union of the float and int8 masks, mean over samples.
    pub iou: f64,
    /// The value masks are cut at: 0.5 when the float values are in [0, 1] on the first
    /// sample (probabilities), 0 otherwise (logits).
    pub threshold: f64,
}

/// The box metrics of a detect output: a score output has `top_k_agreement`, a box output
/// (`[1, N, 4]`) `box_iou`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DetectMetrics {
    /// How many top-scored rows are compared.
    pub top_k: usize,
    /// Fraction of the float model's top-K rows (by score) also in the int8 model's top-K.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k_agreement: Option<f64>,
    /// Mean IoU of the float and int8 boxes of the rows in both top-Ks (of the score
    /// output named by `scores_output`; every row when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub box_iou: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores_output: Option<String>,
}

/// One model output's error, float against int8, pooled over all samples, and the
/// metrics of its task.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OutputMetrics {
    /// The output tensor's name in the float model (made unique: see [`output_names`]).
    pub name: String,
    pub mse: f64,
    /// Signal-to-quantization-noise ratio in dB.
    pub sqnr_db: f64,
    pub cosine: f64,
    pub task: Task,
    /// Whether `task` was guessed (not given with `--task`).
    pub task_guessed: bool,
    /// Only on classify outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classify: Option<ClassMetrics>,
    /// Only on segment outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentMetrics>,
    /// Only on detect outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect: Option<DetectMetrics>,
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
    /// The output the class metrics below are copied from: the first classify output
    /// (none when no output is classify; the class metrics are then NaN / `None`).
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

/// The per-output metric names `NAME[OUTPUT]` accepts: every output's, then those of one
/// task (classify: the agreements and accuracies; segment: `iou`; detect:
/// `top_k_agreement` on a score output, `box_iou` on a box output).
pub const OUTPUT_METRICS: [&str; 9] = [
    "mse",
    "sqnr_db",
    "cosine",
    "top1_agreement",
    "top5_agreement",
    "int8_top1",
    "iou",
    "top_k_agreement",
    "box_iou",
];

impl OutputMetrics {
    /// `name` on this output: `Err` with the reason when its task does not measure it.
    fn metric(&self, name: &str) -> std::result::Result<f64, String> {
        let not_here = || {
            format!(
                "'{name}' is not measured on output '{}' (task {}{}; set it with --task)",
                self.name,
                self.task.name(),
                if self.task_guessed { ", guessed" } else { "" }
            )
        };
        let class = || self.classify.as_ref().ok_or_else(not_here);
        let detect = || self.detect.as_ref().ok_or_else(not_here);
        Ok(match name {
            "mse" => self.mse,
            "sqnr_db" => self.sqnr_db,
            "cosine" => self.cosine,
            "top1_agreement" => class()?.top1_agreement,
            "top5_agreement" => class()?.top5_agreement,
            "int8_top1" => class()?
                .int8_top1
                .ok_or_else(|| format!("'int8_top1[{}]' needs labels (--labels)", self.name))?,
            "iou" => self.segment.as_ref().ok_or_else(not_here)?.iou,
            "top_k_agreement" => detect()?.top_k_agreement.ok_or_else(not_here)?,
            "box_iou" => detect()?.box_iou.ok_or_else(not_here)?,
            _ => return Err(not_here()),
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
                .ok_or_else(|| {
                    format!(
                        "the model has no output named '{output}'; its outputs are: {}",
                        self.output_list()
                    )
                })?
                .metric(metric);
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

/// The score of each of a detect score output's rows: the row's largest value (a `[1, N]`
/// output has one per row; a `[1, N, K]` one, K class scores).
fn row_scores(values: &[f64], rows: usize) -> Vec<f64> {
    let width = values.len() / rows.max(1);
    if width == 0 {
        return values.to_vec();
    }
    values
        .chunks(width)
        .take(rows)
        .map(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .collect()
}

/// The rows of an output shaped `[1, N, ...]` (N), or its element count otherwise.
fn rows_of(shape: &[usize], len: usize) -> usize {
    match shape {
        [1, n, ..] => *n,
        _ => len,
    }
}

fn is_box_output(shape: &[usize]) -> bool {
    matches!(shape, [1, n, 4] if *n >= 1)
}

impl ModelAccumulator {
    /// An accumulator for outputs named `names` (in output order) with unknown shapes:
    /// every task is guessed from the values alone (classify or regress) unless given.
    pub fn new(names: Vec<String>) -> Self {
        Self::for_outputs(
            names
                .into_iter()
                .map(|name| OutputSpec {
                    name,
                    ..OutputSpec::default()
                })
                .collect(),
        )
    }

    /// An accumulator for `graph`'s outputs, with the tasks given (`--task`, see
    /// [`given_tasks`]: `None` or a missing entry is guessed on the first sample).
    pub fn for_graph(graph: &Graph, tasks: &[Option<Task>]) -> Self {
        let specs = output_names(graph)
            .into_iter()
            .zip(&graph.outputs)
            .enumerate()
            .map(|(k, (name, &id))| OutputSpec {
                name,
                shape: graph.tensor(id).shape.clone(),
                task: tasks.get(k).copied().flatten(),
            })
            .collect();
        Self::for_outputs(specs)
    }

    pub fn for_outputs(specs: Vec<OutputSpec>) -> Self {
        let n = specs.len();
        Self {
            specs,
            outputs: vec![ErrorSums::default(); n],
            class: vec![ClassSums::default(); n],
            mask_iou: vec![TaskMean::default(); n],
            top_k_agreement: vec![TaskMean::default(); n],
            box_iou: vec![TaskMean::default(); n],
            ..Self::default()
        }
    }

    /// Fixes each output's task (given, or guessed from the first sample's float values)
    /// and each segment output's mask threshold.
    fn settle_tasks(&mut self, float: &[Vec<f64>]) {
        let shapes: Vec<Vec<usize>> = self
            .specs
            .iter()
            .zip(float)
            .map(|(spec, f)| {
                if spec.shape.is_empty() {
                    vec![1, f.len()]
                } else {
                    spec.shape.clone()
                }
            })
            .collect();
        let guessed = guess_tasks(&shapes, float);
        self.tasks = self
            .specs
            .iter()
            .zip(guessed)
            .map(|(spec, guess)| spec.task.map_or((guess, true), |t| (t, false)))
            .collect();
        self.thresholds = float.iter().map(|f| mask_threshold(f)).collect();
    }

    /// The first detect output that is not a box output and has `rows` rows: the scores
    /// that rank a box output's rows.
    fn scores_for(&self, rows: usize, float: &[Vec<f64>]) -> Option<usize> {
        (0..self.tasks.len()).find(|&k| {
            self.tasks[k].0 == Task::Detect
                && !is_box_output(&self.specs[k].shape)
                && float
                    .get(k)
                    .is_some_and(|f| rows_of(&self.specs[k].shape, f.len()) == rows)
        })
    }

    /// One sample: the float and int8 model's outputs (one vector per output, in output
    /// order) and the sample's label, if known.
    pub fn add_sample(&mut self, float: &[Vec<f64>], quant: &[Vec<f64>], label: Option<i64>) {
        if self.tasks.is_empty() {
            self.settle_tasks(float);
        }
        for ((sums, f), q) in self.outputs.iter_mut().zip(float).zip(quant) {
            sums.add(f, q);
        }
        let label = label.and_then(|l| usize::try_from(l).ok());
        for k in 0..self.tasks.len().min(float.len()).min(quant.len()) {
            let (f, q) = (&float[k], &quant[k]);
            match self.tasks[k].0 {
                Task::Classify => {
                    let (ft, qt) = (top_k(f, 5), top_k(q, 5));
                    let class = &mut self.class[k];
                    if let (Some(&f0), Some(&q0)) = (ft.first(), qt.first()) {
                        class.argmax_agree += usize::from(f0 == q0);
                        class.top5_agree += usize::from(ft.contains(&q0));
                    }
                    if let Some(label) = label {
                        class.labelled += 1;
                        class.float_top1 += usize::from(ft.first() == Some(&label));
                        class.float_top5 += usize::from(ft.contains(&label));
                        class.quant_top1 += usize::from(qt.first() == Some(&label));
                        class.quant_top5 += usize::from(qt.contains(&label));
                    }
                }
                Task::Segment => self.mask_iou[k].add(mask_iou(f, q, self.thresholds[k])),
                Task::Detect => {
                    let shape = &self.specs[k].shape;
                    let rows = rows_of(shape, f.len());
                    let top = DETECT_TOP_K.min(rows);
                    if is_box_output(shape) {
                        // The rows both models rank in their top-K by the paired scores;
                        // every row when no score output is beside the boxes.
                        let matched: Vec<usize> = match self.scores_for(rows, float) {
                            Some(s) => {
                                let ft = top_k(&row_scores(&float[s], rows), top);
                                let qt = top_k(&row_scores(&quant[s], rows), top);
                                ft.into_iter().filter(|i| qt.contains(i)).collect()
                            }
                            None => (0..rows).collect(),
                        };
                        let ious: Vec<f64> = matched
                            .iter()
                            .filter(|&&i| 4 * i + 4 <= f.len().min(q.len()))
                            .map(|&i| box_iou(&f[4 * i..4 * i + 4], &q[4 * i..4 * i + 4]))
                            .collect();
                        if !ious.is_empty() {
                            self.box_iou[k].add(ious.iter().sum::<f64>() / ious.len() as f64);
                        }
                    } else {
                        let ft = top_k(&row_scores(f, rows), top);
                        let qt = top_k(&row_scores(q, rows), top);
                        self.top_k_agreement[k].add(top_k_agreement(&ft, &qt));
                    }
                }
                Task::Regress => {}
            }
        }
        self.samples += 1;
    }

    fn output_metrics(&self, k: usize) -> OutputMetrics {
        let sums = &self.outputs[k];
        let spec = &self.specs[k];
        let (task, task_guessed) = self.tasks[k];
        let n = self.samples.max(1) as f64;
        let classify = (task == Task::Classify).then(|| {
            let c = &self.class[k];
            let labelled = (c.labelled > 0).then_some(c.labelled as f64);
            ClassMetrics {
                top1_agreement: c.argmax_agree as f64 / n,
                top5_agreement: c.top5_agree as f64 / n,
                float_top1: labelled.map(|l| c.float_top1 as f64 / l),
                float_top5: labelled.map(|l| c.float_top5 as f64 / l),
                int8_top1: labelled.map(|l| c.quant_top1 as f64 / l),
                int8_top5: labelled.map(|l| c.quant_top5 as f64 / l),
            }
        });
        let segment = (task == Task::Segment).then(|| SegmentMetrics {
            iou: self.mask_iou[k].value(),
            threshold: self.thresholds.get(k).copied().unwrap_or(f64::NAN),
        });
        let detect = (task == Task::Detect).then(|| {
            // The float values' length is not kept: the shape gives the rows.
            let rows = rows_of(&spec.shape, 0);
            if is_box_output(&spec.shape) {
                let scores = (0..self.tasks.len()).find(|&s| {
                    self.tasks[s].0 == Task::Detect
                        && !is_box_output(&self.specs[s].shape)
                        && rows_of(&self.specs[s].shape, 0) == rows
                });
                DetectMetrics {
                    top_k: if scores.is_some() {
                        DETECT_TOP_K.min(rows)
                    } else {
                        rows
                    },
                    top_k_agreement: None,
                    box_iou: Some(self.box_iou[k].value()),
                    scores_output: scores.map(|s| self.specs[s].name.clone()),
                }
            } else {
                DetectMetrics {
                    top_k: DETECT_TOP_K.min(self.detect_rows(k)),
                    top_k_agreement: Some(self.top_k_agreement[k].value()),
                    box_iou: None,
                    scores_output: None,
                }
            }
        });
        OutputMetrics {
            name: spec.name.clone(),
            mse: sums.mse(),
            sqnr_db: sums.sqnr_db(),
            cosine: sums.cosine(),
            task,
            task_guessed,
            classify,
            segment,
            detect,
        }
    }

    /// A detect score output's rows: N of `[1, N, ...]`, else its element count.
    fn detect_rows(&self, k: usize) -> usize {
        let spec = &self.specs[k];
        match spec.shape.as_slice() {
            [1, n, ..] => *n,
            _ => self.outputs[k].elements / self.samples.max(1),
        }
    }

    pub fn metrics(&self) -> ModelMetrics {
        let mut pooled = ErrorSums::default();
        for sums in &self.outputs {
            pooled.merge(sums);
        }
        let measured = self.samples > 0 && !self.tasks.is_empty();
        let outputs: Vec<OutputMetrics> = if measured {
            (0..self.specs.len().min(self.tasks.len()))
                .map(|k| self.output_metrics(k))
                .collect()
        } else {
            Vec::new()
        };
        let classified = outputs.iter().find(|o| o.classify.is_some());
        let class = classified.and_then(|o| o.classify.clone());
        let mut m = ModelMetrics {
            samples: self.samples,
            mse: pooled.mse(),
            sqnr_db: pooled.sqnr_db(),
            cosine: pooled.cosine(),
            worst_output: None,
            classified_output: classified.map(|o| o.name.clone()),
            argmax_agreement: class.as_ref().map_or(f64::NAN, |c| c.top1_agreement),
            top5_agreement: class.as_ref().map_or(f64::NAN, |c| c.top5_agreement),
            float_top1: class.as_ref().and_then(|c| c.float_top1),
            float_top5: class.as_ref().and_then(|c| c.float_top5),
            int8_top1: class.as_ref().and_then(|c| c.int8_top1),
            int8_top5: class.as_ref().and_then(|c| c.int8_top5),
            outputs,
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
        // Neither output is class scores (coordinates > 1; one value): both regress, and
        // no class metric is reported.
        assert!(m
            .outputs
            .iter()
            .all(|o| o.task == Task::Regress && o.task_guessed));
        assert!(m.outputs.iter().all(|o| o.classify.is_none()));
        assert_eq!(m.classified_output, None);
        assert!(m.argmax_agreement.is_nan());
        let err = m.value("top1_agreement[landmarks]").unwrap_err();
        assert!(err.contains("task regress, guessed"), "{err}");
    }

    /// A detector's boxes [1,3,4] and scores [1,3], worked by hand over two samples.
    #[test]
    fn detect_metrics_by_hand() {
        let spec = |name: &str, shape: &[usize]| OutputSpec {
            name: name.into(),
            shape: shape.to_vec(),
            task: None,
        };
        let mut acc =
            ModelAccumulator::for_outputs(vec![spec("boxes", &[1, 3, 4]), spec("scores", &[1, 3])]);
        let boxes_f = vec![0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 1.0, 1.0, 5.0, 5.0, 6.0, 6.0];
        // row 0 shifted by 1 (IoU 1/7), row 1 the same, row 2 the same
        let boxes_q = vec![1.0, 1.0, 3.0, 3.0, 0.0, 0.0, 1.0, 1.0, 5.0, 5.0, 6.0, 6.0];
        // K = min(10, 3) = 3: every row is in both top-3, so agreement 1 and the box IoU
        // is the mean over all three rows: (1/7 + 1 + 1) / 3.
        acc.add_sample(
            &[boxes_f.clone(), vec![0.9, 0.5, 0.1]],
            &[boxes_q.clone(), vec![0.2, 0.5, 0.8]],
            None,
        );
        acc.add_sample(
            &[boxes_f.clone(), vec![0.9, 0.5, 0.1]],
            &[boxes_f, vec![0.9, 0.5, 0.1]],
            Some(0),
        );
        let m = acc.metrics();
        let (b, s) = (&m.outputs[0], &m.outputs[1]);
        assert_eq!((b.task, s.task), (Task::Detect, Task::Detect));
        assert!(b.classify.is_none() && s.classify.is_none());
        let bd = b.detect.as_ref().unwrap();
        assert_eq!(bd.scores_output.as_deref(), Some("scores"));
        let expected = ((1.0 / 7.0 + 2.0) / 3.0 + 1.0) / 2.0;
        assert!((bd.box_iou.unwrap() - expected).abs() < 1e-12);
        assert!((m.value("box_iou[boxes]").unwrap() - expected).abs() < 1e-12);
        assert_eq!(m.value("top_k_agreement[scores]").unwrap(), 1.0);
        assert_eq!(m.classified_output, None);
        assert!(m.value("top_k_agreement[boxes]").is_err());
    }

    /// A [1,8,8,1] mask (IoU worked by hand) beside a classify output forced by `--task`.
    #[test]
    fn segment_and_given_classify_by_hand() {
        let mut acc = ModelAccumulator::for_outputs(vec![
            OutputSpec {
                name: "mask".into(),
                shape: vec![1, 8, 8, 1],
                task: None,
            },
            OutputSpec {
                name: "logits".into(),
                shape: vec![1, 3],
                task: Some(Task::Classify),
            },
        ]);
        // float mask: 16 of 64 pixels at 0.9, rest 0.1; int8: 8 of them at 0.9 and 8
        // others: intersection 8, union 24 -> 1/3 (threshold 0.5: values in [0, 1]).
        let mut f = vec![0.1; 64];
        let mut q = vec![0.1; 64];
        f[..16].iter_mut().for_each(|v| *v = 0.9);
        q[8..24].iter_mut().for_each(|v| *v = 0.9);
        acc.add_sample(
            &[f, vec![5.0, 9.0, 1.0]],
            &[q, vec![5.0, 4.0, 1.0]],
            Some(1),
        );
        let m = acc.metrics();
        let seg = m.outputs[0].segment.as_ref().unwrap();
        assert_eq!(seg.threshold, 0.5);
        assert!((seg.iou - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.value("iou[mask]").unwrap() - 1.0 / 3.0).abs() < 1e-12);
        let logits = &m.outputs[1];
        assert_eq!((logits.task, logits.task_guessed), (Task::Classify, false));
        // float picks 1 (right), int8 picks 0: 1 is in int8's top 5, 0 in float's.
        let c = logits.classify.as_ref().unwrap();
        assert_eq!((c.top1_agreement, c.top5_agreement), (0.0, 1.0));
        assert_eq!((c.float_top1, c.int8_top1), (Some(1.0), Some(0.0)));
        assert_eq!(m.classified_output.as_deref(), Some("logits"));
        assert_eq!(m.value("int8_top1").unwrap(), 0.0);
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
