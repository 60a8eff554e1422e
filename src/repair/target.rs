//! A repair's target: what the user needs the quantized model to achieve, as a conjunction
//! of comparisons over the model-level metrics (`top1 >= float_top1 - 0.5`,
//! `sqnr_db >= 30 and min_output_sqnr_db >= 20`).
//!
//! Metric names are those [`ModelMetrics::value`] accepts, plus `top1` / `top5`: the int8
//! model's accuracy against the labels **in percent**, as every command prints it (the
//! `ModelMetrics` fields and `int8_top1` are fractions; the aliases exist so that a target
//! reads like the table the user just looked at, `top1 >= float_top1 - 0.5` meaning half a
//! point). A right-hand side is a number or `float_METRIC [+|- NUMBER]`: the float model's
//! own value of that metric (its accuracy; for error metrics the ideal, e.g. `cosine` 1).

use std::fmt;

use crate::debug::metrics::{output_names, ModelMetrics, MODEL_METRICS, OUTPUT_METRICS};
use crate::error::{Error, Result};
use crate::graph::Graph;

/// The friendly names a target accepts besides [`MODEL_METRICS`].
pub const ACCURACY_ALIASES: [&str; 2] = ["top1", "top5"];

/// A target: every comparison must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub all_of: Vec<TargetComparison>,
    /// As the user wrote it.
    text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetComparison {
    pub metric: String,
    pub op: TargetOp,
    pub rhs: Rhs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetOp {
    Ge,
    Gt,
    Le,
    Lt,
}

/// The right-hand side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Rhs {
    Number(f64),
    /// The float model's own value of `metric`, plus `offset`.
    Float {
        metric: String,
        offset: f64,
    },
}

impl TargetOp {
    fn symbol(self) -> &'static str {
        match self {
            TargetOp::Ge => ">=",
            TargetOp::Gt => ">",
            TargetOp::Le => "<=",
            TargetOp::Lt => "<",
        }
    }

    /// Whether a larger value of the metric is what the comparison asks for.
    pub fn higher_is_better(self) -> bool {
        matches!(self, TargetOp::Ge | TargetOp::Gt)
    }

    /// NaN never satisfies a comparison: a metric that could not be measured is not met.
    pub fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            TargetOp::Ge => lhs >= rhs,
            TargetOp::Gt => lhs > rhs,
            TargetOp::Le => lhs <= rhs,
            TargetOp::Lt => lhs < rhs,
        }
    }
}

/// Every metric name a target accepts, for messages.
pub fn metric_list() -> String {
    format!(
        "{}, {}, or NAME[OUTPUT] with NAME one of {}",
        ACCURACY_ALIASES.join(", "),
        MODEL_METRICS.join(", "),
        OUTPUT_METRICS.join(", ")
    )
}

/// Whether `name` is a metric name a target accepts (an output's name is checked against
/// the graph later, by [`Target::check`]).
fn known_metric(name: &str) -> bool {
    if let Some((metric, rest)) = name.split_once('[') {
        return OUTPUT_METRICS.contains(&metric.trim()) && rest.ends_with(']');
    }
    ACCURACY_ALIASES.contains(&name) || MODEL_METRICS.contains(&name)
}

/// Whether measuring `name` needs labels.
fn needs_labels(name: &str) -> bool {
    let base = name.split_once('[').map_or(name, |(m, _)| m.trim());
    matches!(base, "top1" | "top5" | "int8_top1")
}

/// Refuses (as a usage error of `option`) a metric name that is unknown, names an output
/// `graph` lacks, or needs labels the user did not give.
pub fn check_metric(graph: &Graph, has_labels: bool, name: &str, option: &str) -> Result<()> {
    if !known_metric(name) {
        return Err(Error::usage(
            option,
            format!("unknown metric '{name}'; metrics: {}", metric_list()),
        ));
    }
    if needs_labels(name) && !has_labels {
        return Err(Error::usage(
            option,
            format!("'{name}' is an accuracy against labels: give --labels"),
        ));
    }
    if let Some((_, rest)) = name.split_once('[') {
        let output = rest.trim_end_matches(']').trim();
        let outputs = output_names(graph);
        if !outputs.iter().any(|o| o == output) {
            return Err(Error::usage(
                option,
                format!(
                    "the model has no output named '{output}'; its outputs are: {}",
                    outputs.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a larger value of metric `name` is better: every metric but the errors (`mse`).
pub fn higher_is_better(name: &str) -> bool {
    let base = name.split_once('[').map_or(name, |(m, _)| m.trim());
    !matches!(base, "mse" | "max_output_mse")
}

/// `name`'s value in `metrics`; the aliases in percent.
pub fn metric_value(metrics: &ModelMetrics, name: &str) -> std::result::Result<f64, String> {
    let percent = |v: Option<f64>, what: &str| {
        v.map(|v| 100.0 * v)
            .ok_or_else(|| format!("'{what}' needs labels (--labels) and a classify output"))
    };
    match name {
        "top1" => percent(metrics.int8_top1, name),
        "top5" => percent(metrics.int8_top5, name),
        _ => metrics.value(name),
    }
}

/// Positions of `needle` in `text` outside square brackets (output names may hold anything).
fn split_outside_brackets<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            _ if depth == 0 && text[i..].starts_with(needle) => {
                parts.push(&text[start..i]);
                i += needle.len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}

/// The first comparison operator outside brackets: its byte position and the operator.
fn find_operator(text: &str) -> Option<(usize, TargetOp, usize)> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '>' | '<' if depth == 0 => {
                let or_equal = text[i + 1..].starts_with('=');
                let op = match (c, or_equal) {
                    ('>', true) => TargetOp::Ge,
                    ('>', false) => TargetOp::Gt,
                    ('<', true) => TargetOp::Le,
                    _ => TargetOp::Lt,
                };
                return Some((i, op, if or_equal { 2 } else { 1 }));
            }
            _ => {}
        }
    }
    None
}

fn parse_rhs(text: &str) -> std::result::Result<Rhs, String> {
    let text = text.trim();
    if let Ok(v) = text.parse::<f64>() {
        if !v.is_finite() {
            return Err(format!("'{text}' is not a finite number"));
        }
        return Ok(Rhs::Number(v));
    }
    let Some(rest) = text.strip_prefix("float_") else {
        return Err(format!(
            "'{text}' is neither a number nor float_METRIC [+|- NUMBER]"
        ));
    };
    // The offset's sign is the first + or - outside brackets.
    let mut depth = 0usize;
    let mut split = None;
    for (i, c) in rest.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '+' | '-' if depth == 0 => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (metric, offset) = match split {
        None => (rest.trim(), 0.0),
        Some(i) => {
            let number = rest[i + 1..].trim();
            let magnitude: f64 = number
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| format!("'{number}' in '{text}' is not a number"))?;
            let sign = if rest[i..].starts_with('-') {
                -1.0
            } else {
                1.0
            };
            (rest[..i].trim(), sign * magnitude)
        }
    };
    if !known_metric(metric) {
        return Err(format!(
            "unknown metric '{metric}' in '{text}'; metrics: {}",
            metric_list()
        ));
    }
    Ok(Rhs::Float {
        metric: metric.to_string(),
        offset,
    })
}

impl Target {
    /// Parses `METRIC OP RHS [and METRIC OP RHS ...]`; the error says what is wrong and
    /// lists the metrics.
    pub fn parse(text: &str) -> std::result::Result<Target, String> {
        Self::parse_terms(text).map_err(|e| {
            if e.contains("metrics:") {
                e
            } else {
                format!("{e}; metrics: {}", metric_list())
            }
        })
    }

    fn parse_terms(text: &str) -> std::result::Result<Target, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(format!(
                "the target is empty: write METRIC >= VALUE (e.g. 'top1 >= float_top1 - 0.5', \
                 'sqnr_db >= 30'); metrics: {}",
                metric_list()
            ));
        }
        let mut all_of = Vec::new();
        for part in split_outside_brackets(trimmed, " and ") {
            let part = part.trim();
            let Some((at, op, len)) = find_operator(part) else {
                return Err(format!(
                    "'{part}' has no comparison: write METRIC >= VALUE (>=, >, <=, <); \
                     metrics: {}",
                    metric_list()
                ));
            };
            let metric = part[..at].trim();
            if metric.is_empty() {
                return Err(format!(
                    "'{part}' names no metric; metrics: {}",
                    metric_list()
                ));
            }
            if !known_metric(metric) {
                return Err(format!(
                    "unknown metric '{metric}'; metrics: {}",
                    metric_list()
                ));
            }
            let rhs_text = &part[at + len..];
            if rhs_text.trim_start().starts_with(['=', '<', '>']) {
                return Err(format!(
                    "'{part}': the comparison must be one of >=, >, <=, <"
                ));
            }
            let rhs = parse_rhs(rhs_text)?;
            all_of.push(TargetComparison {
                metric: metric.to_string(),
                op,
                rhs,
            });
        }
        Ok(Target {
            all_of,
            text: trimmed.to_string(),
        })
    }

    /// The metric the repair optimises (the first comparison's) and whether larger is better.
    pub fn primary(&self) -> (&str, bool) {
        let first = &self.all_of[0];
        (&first.metric, first.op.higher_is_better())
    }

    /// Every metric name the target reads (both sides).
    fn metrics(&self) -> impl Iterator<Item = &str> {
        self.all_of.iter().flat_map(|c| {
            let rhs = match &c.rhs {
                Rhs::Float { metric, .. } => Some(metric.as_str()),
                Rhs::Number(_) => None,
            };
            std::iter::once(c.metric.as_str()).chain(rhs)
        })
    }

    /// Refuses, before any data runs, a target `graph` cannot be measured on: an output
    /// name the model lacks, or an accuracy without labels.
    pub fn check(&self, graph: &Graph, has_labels: bool) -> Result<()> {
        for name in self.metrics() {
            check_metric(graph, has_labels, name, "--target")?;
        }
        Ok(())
    }

    /// Each comparison's threshold, with `float` the float model's metrics (the float
    /// model compared with itself: its accuracies, and the ideal of each error metric).
    pub fn thresholds(&self, float: &ModelMetrics) -> std::result::Result<Vec<f64>, String> {
        self.all_of
            .iter()
            .map(|c| match &c.rhs {
                Rhs::Number(v) => Ok(*v),
                Rhs::Float { metric, offset } => Ok(metric_value(float, metric)? + offset),
            })
            .collect()
    }

    /// Whether `metrics` meet the target, given the float model's metrics for `float_*`.
    pub fn holds(
        &self,
        metrics: &ModelMetrics,
        float: &ModelMetrics,
    ) -> std::result::Result<bool, String> {
        let thresholds = self.thresholds(float)?;
        for (c, t) in self.all_of.iter().zip(thresholds) {
            if !c.op.holds(metric_value(metrics, &c.metric)?, t) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The comparisons `metrics` miss, in words (`top1 = 86.0, needs >= 97.5`).
    pub fn misses(
        &self,
        metrics: &ModelMetrics,
        float: &ModelMetrics,
    ) -> std::result::Result<Vec<String>, String> {
        let thresholds = self.thresholds(float)?;
        let mut missed = Vec::new();
        for (c, t) in self.all_of.iter().zip(thresholds) {
            let v = metric_value(metrics, &c.metric)?;
            if !c.op.holds(v, t) {
                missed.push(format!(
                    "{} = {v:.4}, needs {} {t:.4}",
                    c.metric,
                    c.op.symbol()
                ));
            }
        }
        Ok(missed)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::metrics::OutputMetrics;

    fn metrics(sqnr: f64, top1: Option<f64>) -> ModelMetrics {
        ModelMetrics {
            samples: 10,
            sqnr_db: sqnr,
            cosine: 0.99,
            int8_top1: top1,
            float_top1: Some(0.9),
            outputs: vec![OutputMetrics {
                name: "logits".into(),
                sqnr_db: sqnr,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn parses_numbers_and_float_relative_sides() {
        let t = Target::parse("top1 >= float_top1 - 0.5 and sqnr_db > 30").unwrap();
        assert_eq!(t.all_of.len(), 2);
        assert_eq!(t.all_of[0].metric, "top1");
        assert_eq!(t.all_of[0].op, TargetOp::Ge);
        assert_eq!(
            t.all_of[0].rhs,
            Rhs::Float {
                metric: "top1".into(),
                offset: -0.5
            }
        );
        assert_eq!(t.all_of[1].op, TargetOp::Gt);
        assert_eq!(t.all_of[1].rhs, Rhs::Number(30.0));
        assert_eq!(t.primary(), ("top1", true));
        let t = Target::parse("mse<=1e-3").unwrap();
        assert_eq!(t.all_of[0].op, TargetOp::Le);
        assert_eq!(t.all_of[0].rhs, Rhs::Number(1e-3));
        assert_eq!(t.primary(), ("mse", false));
        let t = Target::parse("sqnr_db[a-b and c] >= float_cosine + 2").unwrap();
        assert_eq!(t.all_of[0].metric, "sqnr_db[a-b and c]");
        assert_eq!(
            t.all_of[0].rhs,
            Rhs::Float {
                metric: "cosine".into(),
                offset: 2.0
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_read_listing_the_metrics() {
        for bad in [
            "",
            "top1",
            "accuracy >= 3",
            "top1 >= lots",
            "top1 == 3",
            ">= 3",
            "top1 >= float_top1 - x",
            "top1 >= float_acc",
            "top1 >= 1 and",
            "top1 >= nan",
        ] {
            let err = Target::parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        let err = Target::parse("accuracy >= 3").unwrap_err();
        assert!(err.contains("unknown metric 'accuracy'"), "{err}");
        assert!(
            err.contains("min_output_sqnr_db") && err.contains("top1"),
            "{err}"
        );
    }

    #[test]
    fn aliases_are_percent_and_float_sides_use_the_float_metrics() {
        // Hand-computed: int8 top-1 0.86 is 86 %; float top-1 0.9 is 90 %, minus 0.5 is 89.5.
        let t = Target::parse("top1 >= float_top1 - 0.5").unwrap();
        let float = metrics(f64::INFINITY, Some(0.9));
        assert_eq!(t.thresholds(&float).unwrap(), vec![89.5]);
        assert!(!t.holds(&metrics(20.0, Some(0.86)), &float).unwrap());
        assert!(t.holds(&metrics(20.0, Some(0.895)), &float).unwrap());
        let missed = t.misses(&metrics(20.0, Some(0.86)), &float).unwrap();
        assert_eq!(missed, vec!["top1 = 86.0000, needs >= 89.5000".to_string()]);
        // Without labels there is no accuracy to compare.
        assert!(t.holds(&metrics(20.0, None), &float).is_err());
        // Per-output names go through ModelMetrics::value.
        let t = Target::parse("sqnr_db[logits] > 25").unwrap();
        assert!(t.holds(&metrics(25.5, None), &float).unwrap());
        assert!(!t.holds(&metrics(25.0, None), &float).unwrap());
        // NaN is never met.
        assert!(!TargetOp::Ge.holds(f64::NAN, 0.0));
    }
}
