//! The search for the cheapest model that meets a target: greedy by sensitivity, then a
//! pass that drops every remedy the target does not need.
//!
//! 1. The float model and the full-int8 model are evaluated; a target the float model
//!    misses cannot be met by any remedy, and a full-int8 model that meets it needs none.
//! 2. Greedy: each remedy's gain on the target's metric alone (a layer's "only float"
//!    sensitivity against the full-int8 model), biggest first; after each added remedy the
//!    model is evaluated, until the target holds.
//! 3. Drop pass: each remedy in turn, the least useful (smallest gain) first, is removed;
//!    the removal is kept when the target still holds. A remedy the greedy step needed
//!    early can become redundant once later ones are in.
//! 4. The cheapest candidate that meets the target (fewest float ops, then islands, then
//!    the better metric) is the result; every evaluated candidate is recorded, and the
//!    Pareto front of (metric, float ops, islands) is kept.
//!
//! Candidates stream to a callback as they are evaluated (the dashboard shows them), and an
//! `AtomicBool` cancels between (and within) evaluations.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::sensitivity::{evaluate, measure, read_metric, Measure, Sensitivity};
use super::target::{metric_value, Target};
use crate::debug::metrics::ModelMetrics;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::quant::quantize::{float_islands, QuantizedModel};
use crate::select::{Baseline, Rule, Selector};

/// One change to the full-int8 model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Remedy {
    /// Keep the op at this float-graph position float (costs float ops and islands).
    Float { position: usize },
    // Issue 18 item 3a, added by the lead: `Range { tensor: TensorId, method: RangeMethod }`,
    // a better range for one activation (keeps the model integer-only, no cost). It is
    // applied in `build_model` by re-planning the activations with a per-tensor range
    // override (`plan_activations(graph, &calibration_with_override)`) and quantizing
    // with that plan instead of the selector's; `Selector::evaluate_from` takes any model.
}

impl Remedy {
    /// Whether the remedy leaves an op in float (not allowed with `integer_only`).
    pub fn is_float(&self) -> bool {
        matches!(self, Remedy::Float { .. })
    }

    /// The rule that applies this remedy (what a denylist file and the dashboard hold):
    /// a float op by its output tensor's name.
    pub fn rule(&self, graph: &Graph) -> Rule {
        match *self {
            Remedy::Float { position } => {
                Rule::Name(graph.tensor(graph.nodes[position].outputs[0]).name.clone())
            }
        }
    }
}

/// The rules that apply `remedies`, in their order.
pub fn remedy_rules(graph: &Graph, remedies: &[Remedy]) -> Vec<Rule> {
    remedies.iter().map(|r| r.rule(graph)).collect()
}

/// The model with `remedies` applied.
pub fn build_model(selector: &Selector, remedies: &BTreeSet<Remedy>) -> Result<QuantizedModel> {
    let keep_float: Vec<usize> = remedies
        .iter()
        .map(|r| match r {
            Remedy::Float { position } => *position,
        })
        .collect();
    // A range remedy re-plans here (see `Remedy`), then quantizes with that plan.
    selector.quantize(keep_float)
}

/// Which step of the search evaluated a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    FullInt8,
    Greedy,
    Drop,
    /// A leave-one-out evaluation of the result, to say what each remedy bought.
    Attribution,
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
}

/// What the search is allowed to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchOptions {
    /// No float remedies.
    pub integer_only: bool,
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
    /// The target needs remedies `integer_only` rules out (only float ones exist yet).
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
        && a.float_islands <= b.float_islands;
    let better = strictly(a.metric, b.metric)
        || a.float_ops < b.float_ops
        || a.float_islands < b.float_islands;
    as_good && better
}

/// The indices of the candidates no other dominates (one per distinct remedy set).
pub fn pareto_front(candidates: &[Candidate], higher_is_better: bool) -> Vec<usize> {
    let mut seen: BTreeSet<&[Remedy]> = BTreeSet::new();
    (0..candidates.len())
        .filter(|&i| {
            let c = &candidates[i];
            !c.metric.is_nan()
                && !candidates
                    .iter()
                    .any(|o| !o.metric.is_nan() && dominates(o, c, higher_is_better))
                && seen.insert(&c.remedies)
        })
        .collect()
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
    };
    let verdict = search_steps(&mut run, options, &mut outcome)?;
    outcome.verdict = verdict;
    outcome.candidates = run.candidates;
    outcome.pareto = pareto_front(&outcome.candidates, higher_is_better);
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
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
    // Only float remedies exist until range remedies are added (see `Remedy`).
    if options.integer_only {
        return Ok(Verdict::NeedsFloat {
            misses: run.misses(full)?,
        });
    }

    // Greedy by each remedy's gain alone, biggest first (ties in graph order).
    let Some(sensitivity) = measure(
        run.selector,
        &outcome.metric,
        outcome.higher_is_better,
        Measure {
            only_float: true,
            only_quantized: false,
        },
        run.cancel,
        &mut |_, _| {},
    )?
    else {
        return Ok(Verdict::Cancelled);
    };
    let mut order: Vec<(f64, usize)> = sensitivity
        .layers
        .iter()
        .map(|l| (sensitivity.float_gain(l), l.position))
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let gain_of: HashMap<usize, f64> = order.iter().map(|&(g, p)| (p, g)).collect();
    outcome.sensitivity = Some(sensitivity);

    let mut remedies: BTreeSet<Remedy> = BTreeSet::new();
    let mut added: Vec<Remedy> = Vec::new();
    let mut met = None;
    for &(_, position) in &order {
        let remedy = Remedy::Float { position };
        remedies.insert(remedy);
        added.push(remedy);
        let Some(i) = run.evaluate(&remedies, Stage::Greedy)? else {
            return Ok(Verdict::Cancelled);
        };
        if run.candidates[i].meets_target {
            met = Some(i);
            break;
        }
    }
    let Some(mut current) = met else {
        let last = run.candidates.len() - 1;
        return Ok(Verdict::Unreachable {
            misses: run.misses(last)?,
        });
    };

    // Drop pass: the least useful remedy (smallest gain alone) is tried first.
    let mut drop_order = added.clone();
    drop_order.sort_by(|a, b| {
        let gain = |r: &Remedy| match r {
            Remedy::Float { position } => gain_of.get(position).copied().unwrap_or(0.0),
        };
        gain(a).total_cmp(&gain(b))
    });
    for remedy in drop_order {
        let mut without = remedies.clone();
        without.remove(&remedy);
        let Some(i) = run.evaluate(&without, Stage::Drop)? else {
            return Ok(Verdict::Cancelled);
        };
        if run.candidates[i].meets_target {
            remedies = without;
            current = i;
            outcome.dropped.push(remedy);
        }
    }

    // The cheapest candidate that meets the target (the drop pass's result is one).
    let higher = outcome.higher_is_better;
    let chosen = (0..run.candidates.len())
        .filter(|&i| run.candidates[i].meets_target)
        .min_by(|&a, &b| {
            let (x, y) = (&run.candidates[a], &run.candidates[b]);
            x.float_ops
                .cmp(&y.float_ops)
                .then(x.float_islands.cmp(&y.float_islands))
                .then(if higher {
                    y.metric.total_cmp(&x.metric)
                } else {
                    x.metric.total_cmp(&y.metric)
                })
        })
        .unwrap_or(current);

    // What each remedy of the result buys: the metric without it, the others kept.
    let result: BTreeSet<Remedy> = run.candidates[chosen].remedies.iter().copied().collect();
    for &remedy in &result {
        let mut without = result.clone();
        without.remove(&remedy);
        let Some(i) = run.evaluate(&without, Stage::Attribution)? else {
            return Ok(Verdict::Cancelled);
        };
        let Remedy::Float { position } = remedy;
        let node = &run.selector.graph.nodes[position];
        outcome.bought.push(Bought {
            remedy,
            op: node.op.display_name().to_string(),
            tensor: node
                .outputs
                .first()
                .map(|&t| run.selector.graph.tensor(t).name.clone())
                .unwrap_or_default(),
            with: run.candidates[chosen].metric,
            without: run.candidates[i].metric,
        });
    }
    Ok(Verdict::Met { chosen })
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
        }
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
