//! The search for the cheapest model that meets a target: ranges, then int16 activations,
//! then float fallback by sensitivity, then a pass that drops every remedy the target does
//! not need.
//!
//! 1. The float model and the full-int8 model are evaluated; a target the float model
//!    misses cannot be met by any remedy, and a full-int8 model that meets it needs none.
//! 2. Ranking, on a subset of the samples: for a noise-like metric (SQNR, MSE, cosine) by
//!    the noise each op adds quantized alone into the float model (noises add up, so the
//!    ranking's prefixes are close to the fewest ops that bring the noise under the
//!    target's); for other metrics by the gain of keeping the op alone float.
//! 3. Better ranges (integer-only) for the tensors of the most sensitive ops.
//! 4. Greedy: the shortest prefix of the ranking's 16x8-capable ops computed in int16 that
//!    meets the target (integer-only), by bisection; when even all of them miss (unless
//!    `integer_only`), the shortest float prefix of the ranking; then ranges again.
//! 5. Drop pass: each float or int16 remedy in turn, the least useful first, is removed
//!    when the target still holds. A remedy the greedy step needed early can become
//!    redundant once later ones (or ranges) are in.
//! 6. The cheapest candidate that meets the target (fewest float ops, then islands, then
//!    int16 ops, then the better metric) is the result, with what each of its remedies
//!    buys; every evaluated candidate is recorded, and the Pareto front of (metric, float
//!    ops, islands, int16 ops) is kept.
//!
//! Candidates stream to a callback as they are evaluated (the dashboard shows them), and an
//! `AtomicBool` cancels between (and within) evaluations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::sensitivity::{
    evaluate, measure, noise_power, read_metric, LayerSensitivity, Measure, Sensitivity,
};
use super::target::{metric_value, Target};
use crate::debug::metrics::ModelMetrics;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::quant::quantize::{float_islands, QuantizedModel};
use crate::quant::range_search::RangeMethod;
use crate::select::rules::range_method_text;
use crate::select::{Baseline, Rule, Selector};

/// One change to the full-int8 model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Remedy {
    /// Quantize this activation with a range found on its calibration histogram instead
    /// of its min/max: the model stays integer-only, at no cost in size or speed.
    /// (Ordered first: the cheapest kind.)
    Range {
        tensor: TensorId,
        choice: RangeChoice,
    },
    /// Compute the op at this float-graph position in 16x8 (int16 activations): the model
    /// stays integer-only, at the cost of int16 islands (requantizes at their edges),
    /// activation memory and the slower 16x8 kernels.
    Int16 { position: usize },
    /// Keep the op at this float-graph position float (costs float ops and islands).
    Float { position: usize },
}

/// The ranges the search tries on a tensor's histogram (a closed list, so that remedies
/// compare and hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeChoice {
    Percentile99_9,
    Percentile99_99,
    Percentile99_999,
    MinMse,
    Entropy,
}

impl RangeChoice {
    pub const ALL: [RangeChoice; 5] = [
        RangeChoice::Percentile99_999,
        RangeChoice::Percentile99_99,
        RangeChoice::Percentile99_9,
        RangeChoice::MinMse,
        RangeChoice::Entropy,
    ];

    pub fn method(self) -> RangeMethod {
        match self {
            RangeChoice::Percentile99_9 => RangeMethod::Percentile(99.9),
            RangeChoice::Percentile99_99 => RangeMethod::Percentile(99.99),
            RangeChoice::Percentile99_999 => RangeMethod::Percentile(99.999),
            RangeChoice::MinMse => RangeMethod::MinMse,
            RangeChoice::Entropy => RangeMethod::Entropy,
        }
    }
}

impl Remedy {
    /// Whether the remedy leaves an op in float (not allowed with `integer_only`).
    pub fn is_float(&self) -> bool {
        matches!(self, Remedy::Float { .. })
    }

    /// The op a float or int16 remedy acts on (a range acts on a tensor).
    pub fn position(&self) -> Option<usize> {
        match *self {
            Remedy::Float { position } | Remedy::Int16 { position } => Some(position),
            Remedy::Range { .. } => None,
        }
    }

    /// The rule that applies this remedy (what a denylist file and the dashboard hold):
    /// a float op by its output tensor's name, a range by its tensor's name.
    pub fn rule(&self, graph: &Graph) -> Rule {
        match *self {
            Remedy::Float { position } => {
                Rule::Name(graph.tensor(graph.nodes[position].outputs[0]).name.clone())
            }
            Remedy::Int16 { position } => Rule::Int16(Box::new(Rule::Name(
                graph.tensor(graph.nodes[position].outputs[0]).name.clone(),
            ))),
            Remedy::Range { tensor, choice } => Rule::Range {
                tensor: graph.tensor(tensor).name.clone(),
                method: choice.method(),
            },
        }
    }

    /// What the remedy does, for a person: `float #3 CONV_2D 'name'`, `range 'name' =
    /// percentile:99.99`.
    pub fn describe(&self, graph: &Graph) -> String {
        match *self {
            Remedy::Float { position } | Remedy::Int16 { position } => {
                let node = &graph.nodes[position];
                format!(
                    "{} #{} {} '{}'",
                    if self.is_float() { "float" } else { "int16" },
                    node.source_index,
                    node.op.display_name(),
                    node.outputs
                        .first()
                        .map(|&t| graph.tensor(t).name.as_str())
                        .unwrap_or("")
                )
            }
            Remedy::Range { tensor, choice } => format!(
                "range '{}' = {}",
                graph.tensor(tensor).name,
                range_method_text(choice.method())
            ),
        }
    }
}

/// The rules that apply `remedies`, in their order.
pub fn remedy_rules(graph: &Graph, remedies: &[Remedy]) -> Vec<Rule> {
    remedies.iter().map(|r| r.rule(graph)).collect()
}

/// The model with `remedies` applied: float ops kept float, ranges re-planned.
pub fn build_model(selector: &Selector, remedies: &BTreeSet<Remedy>) -> Result<QuantizedModel> {
    let mut keep_float = Vec::new();
    let mut ranges = BTreeMap::new();
    let mut int16 = std::collections::HashSet::new();
    for remedy in remedies {
        match *remedy {
            Remedy::Float { position } => keep_float.push(position),
            Remedy::Int16 { position } => {
                int16.insert(position);
            }
            Remedy::Range { tensor, choice } => {
                ranges.insert(tensor, choice.method());
            }
        }
    }
    if ranges.is_empty() && int16.is_empty() {
        selector.quantize(keep_float)
    } else {
        selector.quantize_mixed(keep_float, &ranges, &int16)
    }
}

/// Which step of the search evaluated a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    FullInt8,
    /// A better range for one tensor, tried on top of the ranges kept so far.
    Range,
    Greedy,
    Drop,
    /// A leave-one-out evaluation of the result, to say what each remedy bought.
    Attribution,
}

impl Stage {
    /// The step's name as the CLI and the dashboard print it.
    pub fn label(self) -> &'static str {
        match self {
            Stage::FullInt8 => "full int8",
            Stage::Range => "range",
            Stage::Greedy => "greedy",
            Stage::Drop => "drop",
            Stage::Attribution => "without one",
        }
    }
}

/// One evaluated model.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    pub stage: Stage,
    pub remedies: Vec<Remedy>,
    /// The target's primary metric (its first comparison's).
    pub metric: f64,
    /// Each comparison's left-hand value, in the target's order.
    pub values: Vec<f64>,
    pub meets_target: bool,
    /// Ops left float for any reason.
    pub float_ops: usize,
    pub float_islands: usize,
    /// Ops computing in 16x8.
    pub int16_ops: usize,
    /// Seconds into the search when it was evaluated.
    pub seconds: f64,
}

/// What the search is allowed to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchOptions {
    /// No float remedies.
    pub integer_only: bool,
    /// int16 (16x8) remedies, tried between ranges and float. Off by default: LiteRT's 16x8
    /// kernels are its reference ones, measured 40-120x slower than int8 on a convolution
    /// (`select::int16`'s latency table), so on a CPU a float island usually costs less;
    /// an integer-only accelerator is what int16 is for.
    pub int16: bool,
}

/// How the search ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    /// `chosen` (an index into the candidates) meets the target.
    Met {
        chosen: usize,
    },
    /// The float model itself misses the target: no remedy can reach it.
    FloatMisses {
        misses: Vec<String>,
    },
    /// Not met with every remedy applied.
    Unreachable {
        misses: Vec<String>,
    },
    /// The target needs float remedies, which `integer_only` rules out (ranges and int16
    /// were not enough).
    NeedsFloat {
        misses: Vec<String>,
    },
    Cancelled,
}

/// What one remedy of the result buys: the metric with it and without it (the others kept).
#[derive(Clone, Debug, Serialize)]
pub struct Bought {
    pub remedy: Remedy,
    pub op: String,
    pub tensor: String,
    pub with: f64,
    pub without: f64,
}

/// Everything the search found.
#[derive(Clone, Debug, Serialize)]
pub struct SearchOutcome {
    pub target: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub samples: usize,
    /// The float model's value of the metric (compared with itself).
    pub float_metric: f64,
    /// Every comparison's threshold, float-relative ones resolved.
    pub thresholds: Vec<f64>,
    pub candidates: Vec<Candidate>,
    /// Indices of the candidates on the Pareto front of (metric, float ops, islands).
    pub pareto: Vec<usize>,
    pub verdict: Verdict,
    /// For a met target: what each remedy of the result buys.
    pub bought: Vec<Bought>,
    /// The samples `bought` was measured on (the ranking subset when there are many).
    pub bought_samples: usize,
    /// Remedies the greedy step added that the drop pass removed.
    pub dropped: Vec<Remedy>,
    /// The deny-one sensitivity the greedy order came from (absent when not needed).
    pub sensitivity: Option<Sensitivity>,
    pub seconds: f64,
}

impl SearchOutcome {
    /// The chosen candidate, when the target is met.
    pub fn chosen(&self) -> Option<&Candidate> {
        match self.verdict {
            Verdict::Met { chosen } => self.candidates.get(chosen),
            _ => None,
        }
    }
}

/// Candidate `a` is at least as good as `b` on every axis and better on one.
fn dominates(a: &Candidate, b: &Candidate, higher_is_better: bool) -> bool {
    let better_metric = |x: f64, y: f64| {
        if higher_is_better {
            x >= y
        } else {
            x <= y
        }
    };
    let strictly = |x: f64, y: f64| better_metric(x, y) && x != y;
    let as_good = better_metric(a.metric, b.metric)
        && a.float_ops <= b.float_ops
        && a.float_islands <= b.float_islands
        && a.int16_ops <= b.int16_ops;
    let better = strictly(a.metric, b.metric)
        || a.float_ops < b.float_ops
        || a.float_islands < b.float_islands
        || a.int16_ops < b.int16_ops;
    as_good && better
}

/// The indices of the candidates no other dominates (one per distinct remedy set).
pub fn pareto_front(candidates: &[Candidate], higher_is_better: bool) -> Vec<usize> {
    // One per point (metric, float ops, islands): the one with the fewest remedies, the
    // first evaluated among equals.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| candidates[i].remedies.len());
    let mut seen: BTreeSet<(u64, usize, usize)> = BTreeSet::new();
    let mut front: Vec<usize> = order
        .into_iter()
        .filter(|&i| {
            let c = &candidates[i];
            !c.metric.is_nan()
                && !candidates
                    .iter()
                    .any(|o| !o.metric.is_nan() && dominates(o, c, higher_is_better))
                && seen.insert((c.metric.to_bits(), c.float_ops, c.float_islands))
        })
        .collect();
    front.sort_unstable();
    front
}

/// The search's working state: the evaluations made so far, by remedy set.
struct Run<'a> {
    selector: &'a Selector,
    target: &'a Target,
    float: &'a ModelMetrics,
    cancel: &'a AtomicBool,
    candidates: Vec<Candidate>,
    /// Each candidate's metrics, parallel to `candidates`.
    metrics: Vec<ModelMetrics>,
    by_set: HashMap<BTreeSet<Remedy>, usize>,
    on_candidate: &'a mut dyn FnMut(&Candidate, &ModelMetrics),
    started: Instant,
}

impl Run<'_> {
    /// Evaluates `remedies` (once: a set seen before returns its candidate). `None` when
    /// cancelled.
    fn evaluate(&mut self, remedies: &BTreeSet<Remedy>, stage: Stage) -> Result<Option<usize>> {
        if let Some(&i) = self.by_set.get(remedies) {
            return Ok(Some(i));
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let model = build_model(self.selector, remedies)?;
        let Some(metrics) = evaluate(self.selector, &model, Baseline::FullInt8, self.cancel)?
        else {
            return Ok(None);
        };
        let values = self
            .target
            .all_of
            .iter()
            .map(|c| read_metric(&metrics, &c.metric))
            .collect::<Result<Vec<f64>>>()?;
        let meets_target = self
            .target
            .holds(&metrics, self.float)
            .map_err(|e| Error::usage("--target", e))?;
        let candidate = Candidate {
            stage,
            remedies: remedies.iter().copied().collect(),
            metric: values[0],
            values,
            meets_target,
            float_ops: model.float_ops.len(),
            float_islands: float_islands(&model),
            int16_ops: crate::select::int16::int16_ops(&model),
            seconds: self.started.elapsed().as_secs_f64(),
        };
        (self.on_candidate)(&candidate, &metrics);
        self.candidates.push(candidate);
        self.metrics.push(metrics);
        let i = self.candidates.len() - 1;
        self.by_set.insert(remedies.clone(), i);
        Ok(Some(i))
    }

    fn misses(&self, i: usize) -> Result<Vec<String>> {
        self.target
            .misses(&self.metrics[i], self.float)
            .map_err(|e| Error::usage("--target", e))
    }
}

/// The float model compared with itself on `selector`'s samples: what `float_*` in a
/// target refers to.
pub fn float_metrics(selector: &Selector, cancel: &AtomicBool) -> Result<Option<ModelMetrics>> {
    let all_float = selector.baseline(Baseline::AllFloat)?;
    evaluate(selector, &all_float, Baseline::AllFloat, cancel)
}

/// `remedies` applied, evaluated on `selector`'s samples (`None` when cancelled): how the
/// result of a search on some samples scores on others.
pub fn score(
    selector: &Selector,
    remedies: &[Remedy],
    cancel: &AtomicBool,
) -> Result<Option<ModelMetrics>> {
    let model = build_model(selector, &remedies.iter().copied().collect())?;
    evaluate(selector, &model, Baseline::FullInt8, cancel)
}

/// Searches for the cheapest model meeting `target` on `selector`'s samples; every
/// evaluated candidate goes to `on_candidate`, with its metrics, as soon as it is known.
pub fn search(
    selector: &Selector,
    target: &Target,
    options: SearchOptions,
    cancel: &AtomicBool,
    on_candidate: &mut dyn FnMut(&Candidate, &ModelMetrics),
) -> Result<SearchOutcome> {
    let started = Instant::now();
    let (metric, higher_is_better) = target.primary();
    let metric = metric.to_string();
    let mut outcome = SearchOutcome {
        target: target.to_string(),
        metric: metric.clone(),
        higher_is_better,
        samples: selector.samples().len(),
        float_metric: f64::NAN,
        thresholds: Vec::new(),
        candidates: Vec::new(),
        pareto: Vec::new(),
        verdict: Verdict::Cancelled,
        bought: Vec::new(),
        bought_samples: 0,
        dropped: Vec::new(),
        sensitivity: None,
        seconds: 0.0,
    };
    let Some(float) = float_metrics(selector, cancel)? else {
        return Ok(outcome);
    };
    outcome.float_metric = metric_value(&float, &metric).unwrap_or(f64::NAN);
    outcome.thresholds = target
        .thresholds(&float)
        .map_err(|e| Error::usage("--target", e))?;
    let float_misses = target
        .misses(&float, &float)
        .map_err(|e| Error::usage("--target", e))?;
    if !float_misses.is_empty() {
        outcome.verdict = Verdict::FloatMisses {
            misses: float_misses,
        };
        outcome.seconds = started.elapsed().as_secs_f64();
        return Ok(outcome);
    }

    let mut run = Run {
        selector,
        target,
        float: &float,
        cancel,
        candidates: Vec::new(),
        metrics: Vec::new(),
        by_set: HashMap::new(),
        on_candidate,
        started,
    };
    let verdict = search_steps(&mut run, options, &mut outcome)?;
    outcome.verdict = verdict;
    outcome.candidates = run.candidates;
    outcome.pareto = pareto_front(&outcome.candidates, higher_is_better);
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// At most this many samples rank the remedies: a ranking needs their order, not exact
/// values, and it costs one evaluation per quantized op.
pub const RANKING_SAMPLES: usize = 32;

/// The most sensitive ops whose tensors the range step tries better ranges for: each try
/// costs one evaluation per distinct range, and a model's range problems sit where its
/// error enters, which the ranking puts first.
pub const RANGE_OPS: usize = 8;

/// The share of the gap between the metric and the target's threshold a range must close
/// to be kept.
pub const RANGE_MIN_SHARE: f64 = 0.05;

/// How far the drop pass trusts the noise model: a float remedy is tried for removal when
/// the noise it is predicted to add is at most this many times the margin left under the
/// target (the model is rough; 2 is 3 dB of slack).
pub const DROP_SLACK: f64 = 2.0;

/// A noise-like metric's additive model, from each op's "only this op quantized"
/// measurement: the noise an op adds, and how the sum of those compares with the
/// full-int8 model's measured noise.
struct NoiseModel {
    metric: String,
    /// The float model's own noise against itself (zero for SQNR, MSE and cosine).
    float_noise: f64,
    /// The full-int8 model's measured noise over the sum of the ops' noises: how much
    /// the sum over- (below 1) or underestimates a model's noise.
    scale: f64,
}

impl NoiseModel {
    fn new(sensitivity: &Sensitivity) -> Self {
        let mut model = NoiseModel {
            metric: sensitivity.metric.clone(),
            float_noise: 0.0,
            scale: 1.0,
        };
        let float_noise = model.noise(sensitivity.float);
        model.float_noise = if float_noise.is_finite() {
            float_noise
        } else {
            0.0
        };
        let sum: f64 = sensitivity.layers.iter().map(|l| model.added(l)).sum();
        let full = model.noise(sensitivity.full_int8) - model.float_noise;
        if sum > 0.0 && full.is_finite() && full > 0.0 {
            model.scale = full / sum;
        }
        model
    }

    fn noise(&self, value: f64) -> f64 {
        noise_power(&self.metric, value).unwrap_or(f64::NAN)
    }

    /// The noise `layer` adds quantized alone (an unmeasured one counts as none).
    fn added(&self, layer: &LayerSensitivity) -> f64 {
        let added = self.noise(layer.only_quantized) - self.float_noise;
        if added.is_finite() {
            added.max(0.0)
        } else {
            0.0
        }
    }
}

fn search_steps(
    run: &mut Run<'_>,
    options: SearchOptions,
    outcome: &mut SearchOutcome,
) -> Result<Verdict> {
    let none = BTreeSet::new();
    let Some(full) = run.evaluate(&none, Stage::FullInt8)? else {
        return Ok(Verdict::Cancelled);
    };
    if run.candidates[full].meets_target {
        return Ok(Verdict::Met { chosen: full });
    }
    let higher = outcome.higher_is_better;

    // 1. Rank the ops, biggest first (ties in graph order), on a subset of the samples
    //    when there are many. A noise-like metric (SQNR, MSE, cosine) ranks each op by the
    //    noise it adds quantized alone into the float model: those noises add up, so the
    //    ranking's prefixes are close to the fewest ops that bring the noise under the
    //    target's. Other metrics (accuracy) do not add up; they rank by the gain of keeping
    //    the op alone float in the full-int8 model.
    let samples = run.selector.samples();
    let ranking_selector;
    let ranker = if samples.len() > RANKING_SAMPLES {
        ranking_selector = run
            .selector
            .on_samples(samples.start..samples.start + RANKING_SAMPLES);
        &ranking_selector
    } else {
        run.selector
    };
    let additive = noise_power(&outcome.metric, 0.0).is_some();
    let Some(sensitivity) = measure(
        ranker,
        &outcome.metric,
        higher,
        Measure {
            only_float: !additive,
            only_quantized: additive,
        },
        run.cancel,
        &mut |_, _| {},
    )?
    else {
        return Ok(Verdict::Cancelled);
    };
    let noise_model = additive.then(|| NoiseModel::new(&sensitivity));
    let mut order: Vec<(f64, usize)> = sensitivity
        .layers
        .iter()
        .map(|l| {
            let key = match &noise_model {
                Some(model) => model.added(l),
                None => sensitivity.float_gain(l),
            };
            (key, l.position)
        })
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let gain_of: HashMap<usize, f64> = order.iter().map(|&(g, p)| (p, g)).collect();
    outcome.sensitivity = Some(sensitivity);

    // 2. The cheapest remedies first: better ranges for the tensors of the most sensitive
    //    ops. Each tensor's ranges are compared on the ranking samples; the best is
    //    evaluated on all and kept when it closes a real part of the gap to the target
    //    (a range that only moves the metric by noise would be one more change to
    //    explain, for nothing). The model stays integer-only.
    let threshold = outcome.thresholds.first().copied().unwrap_or(f64::NAN);
    let mut remedies: BTreeSet<Remedy> = BTreeSet::new();
    let mut current = full;
    let sensitive: Vec<usize> = order
        .iter()
        .filter(|(gain, _)| *gain > 0.0)
        .take(RANGE_OPS)
        .map(|&(_, p)| p)
        .collect();
    let Some(()) = range_step(
        run,
        ranker,
        &sensitive,
        (&outcome.metric, higher),
        threshold,
        &mut remedies,
        &mut current,
    )?
    else {
        return Ok(Verdict::Cancelled);
    };
    if run.candidates[current].meets_target {
        return finish(
            run,
            ranker,
            noise_model.as_ref(),
            outcome,
            &gain_of,
            remedies,
            current,
        );
    }
    // 3. int16 (16x8) in ranking order, before float: the model stays integer-only. The
    //    shortest prefix of the ops LiteRT runs in 16x8 that meets the target, by
    //    bisection, tried only when all of them together meet it (one evaluation
    //    otherwise: ops without a 16x8 kernel, HARD_SWISH, can hold most of the noise).
    let int16_able: Vec<usize> = if !options.int16 {
        Vec::new()
    } else {
        order
            .iter()
            .map(|&(_, position)| position)
            .filter(|&p| crate::select::int16::int16_refusal(&run.selector.graph, p).is_none())
            .collect()
    };
    let as_int16 = |position| Remedy::Int16 { position };
    let met_int16 = match prefix_bisection(run, &remedies, &int16_able, as_int16, false)? {
        Prefix::Cancelled => return Ok(Verdict::Cancelled),
        Prefix::Met { length, candidate } => Some((length, candidate)),
        Prefix::Missed { .. } | Prefix::Empty => None,
    };
    let (mut remedies, mut met) = match met_int16 {
        Some((length, candidate)) => {
            let mut set = remedies.clone();
            set.extend(int16_able[..length].iter().map(|&p| as_int16(p)));
            (set, candidate)
        }
        None if options.integer_only => {
            return Ok(Verdict::NeedsFloat {
                misses: run.misses(current)?,
            });
        }
        // 4. Float fallback in ranking order: the shortest prefix of the ranking that
        //    meets the target, found by bisection (the metric improves with the prefix,
        //    nearly always; a dip only makes the prefix longer, and the drop pass trims
        //    it). Every op float is the float model, which meets the target (checked
        //    first) but is no quantized model: the bisection takes it as met unbuilt.
        None => {
            let positions: Vec<usize> = order.iter().map(|&(_, p)| p).collect();
            let as_float = |position| Remedy::Float { position };
            match prefix_bisection(run, &remedies, &positions, as_float, true)? {
                Prefix::Cancelled => return Ok(Verdict::Cancelled),
                Prefix::Met { length, candidate } => {
                    let mut set = remedies.clone();
                    set.extend(positions[..length].iter().map(|&p| as_float(p)));
                    (set, candidate)
                }
                Prefix::Missed { last } => {
                    return Ok(Verdict::Unreachable {
                        misses: run.misses(last.unwrap_or(current))?,
                    })
                }
                Prefix::Empty => {
                    return Ok(Verdict::Unreachable {
                        misses: run.misses(current)?,
                    })
                }
            }
        }
    };
    // 5. Ranges again, now that the prefix has removed the errors that hid their effect:
    //    what they add lets the drop pass remove more float (or int16) ops.
    let Some(()) = range_step(
        run,
        ranker,
        &sensitive,
        (&outcome.metric, higher),
        threshold,
        &mut remedies,
        &mut met,
    )?
    else {
        return Ok(Verdict::Cancelled);
    };
    finish(
        run,
        ranker,
        noise_model.as_ref(),
        outcome,
        &gain_of,
        remedies,
        met,
    )
}

/// How a prefix bisection ended.
enum Prefix {
    /// The shortest prefix found that meets the target, and its candidate.
    Met {
        length: usize,
        candidate: usize,
    },
    /// Even the whole list misses (`last`: the longest prefix evaluated).
    Missed {
        last: Option<usize>,
    },
    /// Nothing to try.
    Empty,
    Cancelled,
}

/// The shortest prefix of `positions` whose remedies (`remedy` of each), on top of
/// `base`, meet the target, by bisection. `whole_meets`: the whole list is known to meet
/// it without an evaluation (every op float is the float model); otherwise the whole list
/// is evaluated first, and a miss ends the bisection there.
fn prefix_bisection(
    run: &mut Run<'_>,
    base: &BTreeSet<Remedy>,
    positions: &[usize],
    remedy: impl Fn(usize) -> Remedy,
    whole_meets: bool,
) -> Result<Prefix> {
    let n = positions.len();
    if n == 0 {
        return Ok(Prefix::Empty);
    }
    let prefix = |k: usize| -> BTreeSet<Remedy> {
        let mut set = base.clone();
        set.extend(positions[..k].iter().map(|&p| remedy(p)));
        set
    };
    let mut met = None;
    if !whole_meets {
        let Some(i) = run.evaluate(&prefix(n), Stage::Greedy)? else {
            return Ok(Prefix::Cancelled);
        };
        if !run.candidates[i].meets_target {
            return Ok(Prefix::Missed { last: Some(i) });
        }
        met = Some(i);
    }
    let (mut lo, mut hi) = (0, n);
    let mut last_miss = None;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let Some(i) = run.evaluate(&prefix(mid), Stage::Greedy)? else {
            return Ok(Prefix::Cancelled);
        };
        if run.candidates[i].meets_target {
            (hi, met) = (mid, Some(i));
        } else {
            (lo, last_miss) = (mid, Some(i));
        }
    }
    Ok(match met {
        Some(candidate) => Prefix::Met {
            length: hi,
            candidate,
        },
        None => Prefix::Missed { last: last_miss },
    })
}

/// Tries better ranges for the tensors of `sensitive` ops on top of `remedies`
/// (candidate `current`), keeping each that closes more than [`RANGE_MIN_SHARE`] of the
/// distance to the target's threshold; stops as soon as the target holds. `None` when
/// cancelled.
fn range_step(
    run: &mut Run<'_>,
    ranker: &Selector,
    sensitive: &[usize],
    (metric, higher): (&str, bool),
    threshold: f64,
    remedies: &mut BTreeSet<Remedy>,
    current: &mut usize,
) -> Result<Option<()>> {
    let met_before = run.candidates[*current].meets_target;
    // The current model's metric on the ranking samples, which the ranges are compared
    // on: a tensor whose best range does not beat it there is not worth an evaluation on
    // every sample (most tensors tried are such).
    let mut current_on_ranker = {
        let model = build_model(ranker, remedies)?;
        let Some(metrics) = evaluate(ranker, &model, Baseline::FullInt8, run.cancel)? else {
            return Ok(None);
        };
        read_metric(&metrics, metric)?
    };
    let improves = |now: f64, was: f64| {
        let gain = if higher { now - was } else { was - now };
        let gap = (threshold - was).abs();
        gain > RANGE_MIN_SHARE * gap || (gain > 0.0 && !gap.is_finite())
    };
    let mut tried: BTreeSet<TensorId> = BTreeSet::new();
    // Ops no longer int8 (float or int16): an int8 range only they touch changes nothing.
    let float: BTreeSet<usize> = remedies.iter().filter_map(Remedy::position).collect();
    for &position in sensitive {
        for tensor in range_tensors(run.selector, position) {
            if !tried.insert(tensor)
                || !range_matters(&run.selector.graph, tensor, &float)
                || remedies
                    .iter()
                    .any(|r| matches!(r, Remedy::Range { tensor: t, .. } if *t == tensor))
            {
                continue;
            }
            let mut best: Option<(f64, Remedy)> = None;
            for choice in distinct_choices(run.selector, tensor) {
                let remedy = Remedy::Range { tensor, choice };
                let mut with = remedies.clone();
                with.insert(remedy);
                let model = build_model(run.selector, &with)?;
                let Some(metrics) = evaluate(ranker, &model, Baseline::FullInt8, run.cancel)?
                else {
                    return Ok(None);
                };
                let value = read_metric(&metrics, metric)?;
                let beats = best.is_none_or(|(b, _)| if higher { value > b } else { value < b });
                if beats && !value.is_nan() {
                    best = Some((value, remedy));
                }
            }
            let Some((on_ranker, remedy)) = best else {
                continue;
            };
            if !improves(on_ranker, current_on_ranker) {
                continue;
            }
            let mut with = remedies.clone();
            with.insert(remedy);
            let Some(i) = run.evaluate(&with, Stage::Range)? else {
                return Ok(None);
            };
            if improves(run.candidates[i].metric, run.candidates[*current].metric) {
                remedies.insert(remedy);
                *current = i;
                current_on_ranker = on_ranker;
                if !met_before && run.candidates[i].meets_target {
                    return Ok(Some(()));
                }
            }
        }
    }
    Ok(Some(()))
}

/// The calibrated tensors whose ranges matter most to op `position`: the model inputs it
/// reads (their ranges belong to no other op) and its output. Its other inputs are other
/// ops' outputs, tried when those ops rank high.
fn range_tensors(selector: &Selector, position: usize) -> Vec<TensorId> {
    let Some(calibration) = selector.calibration() else {
        return Vec::new();
    };
    let graph = &selector.graph;
    let node = &graph.nodes[position];
    let mut tensors: Vec<TensorId> = node
        .inputs
        .iter()
        .flatten()
        .filter(|id| graph.inputs.contains(id))
        .chain(node.outputs.first())
        .copied()
        .filter(|&id| calibration.observed_range(id).is_some())
        .collect();
    tensors.dedup();
    tensors
}

/// Whether `tensor`'s range reaches the model: some op that writes or reads it runs
/// quantized (not in `float`). Between float ops it is never quantized.
fn range_matters(graph: &Graph, tensor: TensorId, float: &BTreeSet<usize>) -> bool {
    graph.nodes.iter().enumerate().any(|(position, node)| {
        !float.contains(&position)
            && (node.outputs.contains(&tensor)
                || node.inputs.iter().flatten().any(|&t| t == tensor))
    })
}

/// The range choices that give `tensor` a range other than its min/max, one per distinct
/// range. All are evaluated: a range's expected error on its own tensor's histogram does
/// not say what it does to the model (on `repair_outliers`, the 99.99th percentile of the
/// input quantizes the input itself 4.8 times worse than its min/max, and lifts the
/// output's SQNR from 30 to 44 dB).
fn distinct_choices(selector: &Selector, tensor: TensorId) -> Vec<RangeChoice> {
    let Some(calibration) = selector.calibration() else {
        return Vec::new();
    };
    let Some(observed) = calibration.observed_range(tensor) else {
        return Vec::new();
    };
    let mut seen = vec![observed];
    let mut choices = Vec::new();
    for choice in RangeChoice::ALL {
        if let Some(range) = calibration.refined_range(tensor, choice.method()) {
            if !seen.contains(&range) {
                seen.push(range);
                choices.push(choice);
            }
        }
    }
    choices
}

/// The drop pass, the choice of the cheapest candidate and what each of its remedies
/// buys, from `remedies` (candidate `current`) that meet the target.
fn finish(
    run: &mut Run<'_>,
    ranker: &Selector,
    noise_model: Option<&NoiseModel>,
    outcome: &mut SearchOutcome,
    gain_of: &HashMap<usize, f64>,
    mut remedies: BTreeSet<Remedy>,
    mut current: usize,
) -> Result<Verdict> {
    // Drop pass over the float and int16 remedies (ranges cost nothing, and each was kept
    // for what it bought), the least useful (smallest gain alone) first.
    let mut drop_order: Vec<Remedy> = remedies
        .iter()
        .copied()
        .filter(|r| r.position().is_some())
        .collect();
    // An int16 op removes nearly all of the noise its int8 version adds, as float does.
    let gain = |r: &Remedy| {
        r.position()
            .and_then(|p| gain_of.get(&p).copied())
            .unwrap_or(0.0)
    };
    drop_order.sort_by(|a, b| gain(a).total_cmp(&gain(b)));
    let threshold = outcome.thresholds.first().copied().unwrap_or(f64::NAN);
    match noise_model {
        // A noise-like metric: one remedy at a time, each tried only when the noise it
        // would add fits (with slack) in the margin the current model leaves under the
        // target. The ranking put the noisiest ops first, so the shortest prefix that
        // meets the target has few removable remedies, and most tries would fail.
        Some(model) => {
            let budget = model.noise(threshold);
            for remedy in drop_order {
                let margin = budget - model.noise(run.candidates[current].metric);
                if model.scale * gain(&remedy) > DROP_SLACK * margin {
                    continue;
                }
                match try_without(run, &mut remedies, &mut current, &[remedy])? {
                    None => return Ok(Verdict::Cancelled),
                    Some(true) => outcome.dropped.push(remedy),
                    Some(false) => {}
                }
            }
        }
        // Otherwise groups, tried whole and split only when the target needs part of
        // them: remedies a long greedy prefix did not need go in a few evaluations.
        None => {
            let half = drop_order.len().div_ceil(2);
            let mut groups: Vec<Vec<Remedy>> =
                drop_order.chunks(half.max(1)).map(<[_]>::to_vec).collect();
            groups.reverse();
            while let Some(group) = groups.pop() {
                match try_without(run, &mut remedies, &mut current, &group)? {
                    None => return Ok(Verdict::Cancelled),
                    Some(true) => outcome.dropped.extend(group),
                    Some(false) if group.len() > 1 => {
                        let (first, second) = group.split_at(group.len() / 2);
                        groups.push(second.to_vec());
                        groups.push(first.to_vec());
                    }
                    Some(false) => {}
                }
            }
        }
    }

    // The cheapest candidate that meets the target (fewest float ops, then islands, then
    // the better metric), and what each of its remedies buys (the metric without it, the
    // others kept).
    if ranker.samples().len() < run.selector.samples().len() {
        // Many samples: the explanation is measured on the ranking subset (one
        // evaluation per remedy at a fraction of the cost; its models are not
        // candidates). Remedies that buy nothing there (a range that helped before the
        // float ops came in) are left out together in one candidate on every sample,
        // which is chosen when it is as good: fewer changes to explain.
        outcome.bought_samples = ranker.samples().len();
        let higher = outcome.higher_is_better;
        let mut explained = None;
        for _ in 0..MAX_RECHOICES {
            let chosen = cheapest(run, higher).unwrap_or(current);
            if explained == Some(chosen) {
                break;
            }
            explained = Some(chosen);
            let result: BTreeSet<Remedy> =
                run.candidates[chosen].remedies.iter().copied().collect();
            let Some(bought) = explain_on(run, ranker, &outcome.metric, &result)? else {
                return Ok(Verdict::Cancelled);
            };
            let idle: Vec<Remedy> = bought
                .iter()
                .filter(|b| {
                    if higher {
                        b.without >= b.with
                    } else {
                        b.without <= b.with
                    }
                })
                .map(|b| b.remedy)
                .collect();
            outcome.bought = bought;
            if !idle.is_empty() {
                let mut without = result.clone();
                for r in &idle {
                    without.remove(r);
                }
                if run.evaluate(&without, Stage::Drop)?.is_none() {
                    return Ok(Verdict::Cancelled);
                }
            }
        }
        return Ok(Verdict::Met {
            chosen: cheapest(run, higher).or(explained).unwrap_or(current),
        });
    }
    // Few samples: every leave-one-out model is a candidate, and one can be as cheap and
    // better (a range that hurt once others were in): then that one is chosen and
    // explained instead.
    outcome.bought_samples = run.selector.samples().len();
    let mut explained = None;
    for _ in 0..MAX_RECHOICES {
        let chosen = cheapest(run, outcome.higher_is_better).unwrap_or(current);
        if explained == Some(chosen) {
            break;
        }
        explained = Some(chosen);
        outcome.bought.clear();
        let result: BTreeSet<Remedy> = run.candidates[chosen].remedies.iter().copied().collect();
        for &remedy in &result {
            let mut without = result.clone();
            without.remove(&remedy);
            let Some(i) = run.evaluate(&without, Stage::Attribution)? else {
                return Ok(Verdict::Cancelled);
            };
            outcome.bought.push(bought_by(
                &run.selector.graph,
                remedy,
                run.candidates[chosen].metric,
                run.candidates[i].metric,
            ));
        }
    }
    // The result is always the cheapest candidate found (so it sits on the Pareto front);
    // when the rounds ran out before it could be explained, `bought` describes the one
    // before it.
    Ok(Verdict::Met {
        chosen: cheapest(run, outcome.higher_is_better)
            .or(explained)
            .unwrap_or(current),
    })
}

/// The drop pass's one move: `remedies` without `group` is evaluated, and taken as the
/// current result (candidate `current`) when it still meets the target (`Some(true)`).
/// `None` when cancelled; `Some(false)` when it misses or `group` removes nothing.
fn try_without(
    run: &mut Run<'_>,
    remedies: &mut BTreeSet<Remedy>,
    current: &mut usize,
    group: &[Remedy],
) -> Result<Option<bool>> {
    let mut without = remedies.clone();
    for r in group {
        without.remove(r);
    }
    if without.len() == remedies.len() {
        return Ok(Some(false));
    }
    let Some(i) = run.evaluate(&without, Stage::Drop)? else {
        return Ok(None);
    };
    let met = run.candidates[i].meets_target;
    if met {
        *remedies = without;
        *current = i;
    }
    Ok(Some(met))
}

/// What each of `result`'s remedies buys, measured on `on`'s samples (`None` when
/// cancelled).
fn explain_on(
    run: &Run<'_>,
    on: &Selector,
    metric: &str,
    result: &BTreeSet<Remedy>,
) -> Result<Option<Vec<Bought>>> {
    let measure = |set: &BTreeSet<Remedy>| -> Result<Option<f64>> {
        let model = build_model(run.selector, set)?;
        match evaluate(on, &model, Baseline::FullInt8, run.cancel)? {
            Some(metrics) => read_metric(&metrics, metric).map(Some),
            None => Ok(None),
        }
    };
    let Some(with) = measure(result)? else {
        return Ok(None);
    };
    let mut bought = Vec::new();
    for &remedy in result {
        let mut without = result.clone();
        without.remove(&remedy);
        let Some(without) = measure(&without)? else {
            return Ok(None);
        };
        bought.push(bought_by(&run.selector.graph, remedy, with, without));
    }
    Ok(Some(bought))
}

/// What `remedy` buys: the metric `with` it and `without` it, with the op and tensor it
/// names.
fn bought_by(graph: &Graph, remedy: Remedy, with: f64, without: f64) -> Bought {
    let (op, tensor) = match remedy {
        Remedy::Float { position } | Remedy::Int16 { position } => {
            let node = &graph.nodes[position];
            (
                node.op.display_name().to_string(),
                node.outputs
                    .first()
                    .map(|&t| graph.tensor(t).name.clone())
                    .unwrap_or_default(),
            )
        }
        Remedy::Range { tensor, .. } => ("range".to_string(), graph.tensor(tensor).name.clone()),
    };
    Bought {
        remedy,
        op,
        tensor,
        with,
        without,
    }
}

/// Rounds of "choose, then explain" (each explanation can reveal a better model).
const MAX_RECHOICES: usize = 3;

/// The cheapest candidate meeting the target: fewest float ops, then islands, then int16
/// ops, then the better metric, then the fewest remedies.
fn cheapest(run: &Run<'_>, higher: bool) -> Option<usize> {
    let key = |c: &Candidate| (c.float_ops, c.float_islands, c.int16_ops);
    (0..run.candidates.len())
        .filter(|&i| run.candidates[i].meets_target)
        .min_by(|&a, &b| {
            let (x, y) = (&run.candidates[a], &run.candidates[b]);
            key(x)
                .cmp(&key(y))
                .then(if higher {
                    y.metric.total_cmp(&x.metric)
                } else {
                    x.metric.total_cmp(&y.metric)
                })
                .then(x.remedies.len().cmp(&y.remedies.len()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(remedies: &[usize], metric: f64, float_ops: usize, islands: usize) -> Candidate {
        Candidate {
            stage: Stage::Greedy,
            remedies: remedies
                .iter()
                .map(|&position| Remedy::Float { position })
                .collect(),
            metric,
            values: vec![metric],
            meets_target: false,
            float_ops,
            float_islands: islands,
            int16_ops: 0,
            seconds: 0.0,
        }
    }

    fn layer(position: usize, only_quantized: f64) -> LayerSensitivity {
        LayerSensitivity {
            position,
            source_index: position,
            op: "CONV_2D".into(),
            tensor: format!("t{position}"),
            only_float: f64::NAN,
            only_quantized,
        }
    }

    #[test]
    fn the_noise_model_adds_each_ops_noise_and_scales_to_the_full_int8_model() {
        // Two ops at 30 dB each add 1e-3 of noise (relative to the signal): 2e-3 in all,
        // where the full-int8 model measures 4e-3 (10 log10(250) = 23.979 dB): scale 2.
        let sensitivity = Sensitivity {
            metric: "sqnr_db".into(),
            higher_is_better: true,
            full_int8: 10.0 * 250f64.log10(),
            float: f64::INFINITY,
            samples: 4,
            layers: vec![layer(0, 30.0), layer(3, 30.0), layer(5, f64::NAN)],
        };
        let model = NoiseModel::new(&sensitivity);
        assert_eq!(model.float_noise, 0.0);
        assert!((model.added(&sensitivity.layers[0]) - 1e-3).abs() < 1e-12);
        assert_eq!(model.added(&sensitivity.layers[2]), 0.0, "unmeasured: none");
        assert!((model.scale - 2.0).abs() < 1e-9, "{}", model.scale);
        // The threshold of 'sqnr_db >= 20' as a noise budget: 1e-2.
        assert!((model.noise(20.0) - 1e-2).abs() < 1e-12);
    }

    #[test]
    fn pareto_front_keeps_the_undominated_by_hand() {
        let c = vec![
            candidate(&[], 80.0, 0, 0),      // cheapest: on the front
            candidate(&[1], 90.0, 1, 1),     // better metric: on the front
            candidate(&[1, 2], 90.0, 2, 1),  // dominated by [1]
            candidate(&[3], 85.0, 1, 1),     // dominated by [1]
            candidate(&[1, 4], 95.0, 2, 2),  // best metric: on the front
            candidate(&[5], f64::NAN, 1, 1), // unmeasured: never on it
            candidate(&[1], 90.0, 1, 1),     // a repeat of [1]: once
        ];
        assert_eq!(pareto_front(&c, true), vec![0, 1, 4]);
        // Lower is better: [] (80) dominates everything with more float ops and a larger value.
        assert_eq!(pareto_front(&c, false), vec![0]);
    }
}
