//! Calibrate once, try many denylists: everything a denylist experiment needs (the float
//! graph, the calibrated activation plan, the data) held together, so that a new set of rules
//! only re-plans, re-quantizes and re-runs the model-level comparison.
//!
//! Shared by `qdbg select` and the dashboard; knows nothing of either.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::Device;
use rayon::prelude::*;

use super::checkpoint::{covers, first_difference, live_at, Checkpoint, Checkpoints, StoredValue};
use super::denylist::resolve;
use super::rules::Rule;
use crate::data::Dataset;
use crate::debug::metrics::{ModelAccumulator, ModelMetrics, Task};
#[cfg(doc)]
use crate::debug::Debugger;
use crate::debug::LayerStats;
use crate::error::{Error, Result};
use crate::exec::{host_f32, tensor_from_owned_sample, Executor, FloatOutputCache, SampleOutputs};
use crate::graph::{DType, Graph, TensorId};
use crate::kernels::int8::Arithmetic;
use crate::quant::calibration::{Calibration, TensorRange};
use crate::quant::division_check::keep_refused_divisions_float;
use crate::quant::plan::{plan_activations, ActivationPlan};
use crate::quant::quantize::{
    float_islands, quantize_graph, FloatReason, QuantizeOptions, QuantizedModel,
};

/// The fixed inputs of every denylist experiment on one model and dataset.
///
/// Built with [`Selector::new`]; shared across threads (`Arc<Selector>`), it keeps what
/// every evaluation would otherwise recompute.
pub struct Selector {
    pub graph: Arc<Graph>,
    /// The float model file's bytes: the writer carries its metadata and signatures over.
    pub original: Option<Arc<Vec<u8>>>,
    pub plan: Arc<ActivationPlan>,
    pub dataset: Arc<Dataset>,
    pub labels: Option<Arc<Vec<i64>>>,
    pub device: Device,
    /// The float model's final outputs per sample, filled by the first evaluation (or
    /// by the calibration and the debugger, when shared with them): they are the same for
    /// every denylist, so each later evaluation runs only the selective model.
    float_outputs: Arc<FloatOutputCache>,
    /// The full-int8 model and the all-float one (see [`Baseline`]), each made on first
    /// use, and each one's values after common prefixes, for every sample.
    baselines: [BaselineState; 2],
    /// The samples every evaluation runs (all of the dataset unless
    /// [`Selector::on_samples`] narrowed it).
    samples: Range<usize>,
    /// Whose int8 arithmetic evaluations reproduce (see [`Selector::with_arithmetic`]).
    arithmetic: Arithmetic,
    /// Each output's task as given (see [`Selector::with_tasks`]).
    pub tasks: Vec<Option<Task>>,
    /// The calibration `plan` was made from: `range:` rules re-plan from its histograms
    /// (see [`Selector::with_calibration`]).
    calibration: Option<Arc<Calibration>>,
}

/// The model an evaluation starts from: a model re-runs only from its first difference
/// from the baseline's, seeded from the baseline's checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// Nothing kept float: denylists (a few ops float) share long prefixes with it.
    FullInt8,
    /// Every op kept float: models with a few ops quantized share long prefixes with it
    /// (a layer's sensitivity "only this op quantized").
    AllFloat,
}

impl Baseline {
    fn index(self) -> usize {
        match self {
            Baseline::FullInt8 => 0,
            Baseline::AllFloat => 1,
        }
    }
}

#[derive(Default)]
struct BaselineState {
    model: Mutex<Option<Arc<QuantizedModel>>>,
    checkpoints: Mutex<Checkpoints>,
}

/// One sample of an evaluation.
struct Evaluated {
    /// `None` when the float outputs were already known.
    float_out: Option<SampleOutputs>,
    quant_out: Vec<Vec<f64>>,
    /// The values for the checkpoint this evaluation makes, if it makes one and they all
    /// could be kept.
    kept: Option<Vec<StoredValue>>,
}

/// Bytes per element a checkpoint keeps of tensor `id`.
fn stored_width(graph: &Graph, id: TensorId) -> usize {
    match graph.tensor(id).dtype {
        DType::I8 | DType::U8 | DType::Bool => 1,
        d if d.is_float() => 4,
        _ => 8,
    }
}

/// What a denylist costs, before any data runs through it.
pub struct Selection {
    pub rules: Vec<Rule>,
    /// Float-graph positions the rules keep float.
    pub keep_float: BTreeSet<usize>,
    /// Float-graph positions the model computes in 16x8 (what `int16` rules asked for,
    /// less `int16_refused`).
    pub int16: BTreeSet<usize>,
    /// Ops an `int16` rule picked that stay int8, each with why (no 16x8 kernel, not
    /// calibrated).
    pub int16_refused: Vec<(usize, String)>,
    /// Rules that matched no op.
    pub unmatched: Vec<Rule>,
    /// The range each `range:` rule gave its tensor, with the observed min/max it replaced.
    pub ranges: BTreeMap<TensorId, RangeChange>,
    pub model: QuantizedModel,
    /// The selective model as a `.tflite` file.
    pub bytes: Vec<u8>,
}

/// What a `range:` rule did to one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeChange {
    pub observed: TensorRange,
    pub chosen: TensorRange,
}

impl Selection {
    /// Ops left float for any reason (denylisted, no int8 kernel, float by nature).
    pub fn float_ops(&self) -> usize {
        self.model.float_ops.len()
    }

    /// Ops left float because the denylist asked for it.
    pub fn denylisted_ops(&self) -> usize {
        self.model
            .float_ops
            .iter()
            .filter(|(_, reason)| *reason == FloatReason::Denylisted)
            .count()
    }

    /// The partitions an integer-only accelerator would split the model into.
    pub fn float_islands(&self) -> usize {
        float_islands(&self.model)
    }

    /// Ops computing in 16x8.
    pub fn int16_ops(&self) -> usize {
        super::int16::int16_ops(&self.model)
    }

    /// Connected runs of 16x8 ops (each entered and left through a requantize).
    pub fn int16_islands(&self) -> usize {
        super::int16::int16_islands(&self.model)
    }

    /// The latency relative to the all-int8 model, estimated from LiteRT's per-op-type
    /// 16x8 / int8 ratios (see [`super::int16::estimated_latency_vs_int8`]).
    pub fn estimated_latency_vs_int8(&self) -> f64 {
        super::int16::estimated_latency_vs_int8(&self.model)
    }

    /// The activation memory int16 adds over int8, in bytes.
    pub fn int16_activation_bytes(&self) -> usize {
        super::int16::int16_activation_bytes(&self.model)
    }
}

impl Selector {
    pub fn new(
        graph: Arc<Graph>,
        original: Option<Arc<Vec<u8>>>,
        plan: Arc<ActivationPlan>,
        dataset: Arc<Dataset>,
        labels: Option<Arc<Vec<i64>>>,
        device: Device,
    ) -> Self {
        let dataset_samples = dataset.num_samples();
        Selector {
            graph,
            original,
            plan,
            dataset,
            labels,
            device,
            float_outputs: Arc::new(FloatOutputCache::new(dataset_samples)),
            baselines: Default::default(),
            samples: 0..dataset_samples,
            arithmetic: Arithmetic::Builtin,
            tasks: Vec::new(),
            calibration: None,
        }
    }

    /// The calibration the plan was made from, so that `range:` rules can re-plan from its
    /// histograms; without it they are refused.
    pub fn with_calibration(mut self, calibration: Arc<Calibration>) -> Self {
        self.calibration = Some(calibration);
        self
    }

    /// Evaluates int8 ops as `arithmetic` computes them (LiteRT's builtin kernels unless
    /// told otherwise). Set it before the first evaluation: checkpoints are kept per run.
    /// Each output's task for the model-level metrics (`--task`, see
    /// [`crate::debug::metrics::given_tasks`]; `None` or no entry: guessed).
    pub fn with_tasks(mut self, tasks: Vec<Option<Task>>) -> Self {
        self.tasks = tasks;
        self
    }

    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.arithmetic = arithmetic;
        self
    }

    /// Shares `outputs` (the float model's outputs on this dataset, as the calibration or
    /// the debugger remembered them) instead of computing them on the first evaluation.
    pub fn with_float_outputs(mut self, outputs: Arc<FloatOutputCache>) -> Self {
        self.float_outputs = outputs;
        self
    }

    /// A selector sharing this one's model, plan, data and float outputs whose
    /// evaluations run only `samples` (clamped to the dataset), with checkpoints of its own:
    /// a search tunes on some samples and scores the result on the others.
    pub fn on_samples(&self, samples: Range<usize>) -> Selector {
        let n = self.dataset.num_samples();
        let samples = samples.start.min(n)..samples.end.min(n);
        Selector {
            graph: Arc::clone(&self.graph),
            original: self.original.clone(),
            plan: Arc::clone(&self.plan),
            dataset: Arc::clone(&self.dataset),
            labels: self.labels.clone(),
            device: self.device.clone(),
            float_outputs: Arc::clone(&self.float_outputs),
            baselines: Default::default(),
            samples,
            arithmetic: self.arithmetic,
            tasks: self.tasks.clone(),
            calibration: self.calibration.clone(),
        }
    }

    /// The samples evaluations run.
    pub fn samples(&self) -> Range<usize> {
        self.samples.clone()
    }

    /// Resolves `rules` against the float graph and the full-int8 run's per-layer statistics
    /// (`layers`: first/last N and metric expressions need them), then quantizes and
    /// serialises the selective model.
    pub fn select(&self, rules: &[Rule], layers: &[LayerStats]) -> Result<Selection> {
        let resolved = resolve(&self.graph, rules, layers)?;
        let (plan, ranges) = self.plan_with_ranges(&resolved.ranges)?;
        let (plan, int16, int16_refused) = self.plan_with_int16(plan, &resolved)?;
        let model = quantize_graph(
            &self.graph,
            &plan,
            &QuantizeOptions {
                keep_float: resolved.keep_float.iter().copied().collect(),
                ..Default::default()
            },
        )?;
        let bytes =
            crate::tflite::model_bytes(&model.graph, self.original.as_deref().map(|v| &v[..]))?;
        Ok(Selection {
            rules: rules.to_vec(),
            keep_float: resolved.keep_float,
            int16,
            int16_refused,
            unmatched: resolved.unmatched,
            ranges,
            model,
            bytes,
        })
    }

    /// `plan` with the ops `int16` rules picked computing in 16x8 (their int16 parameters
    /// from the calibration, as TensorFlow's 16x8 quantizer computes them), the ops that
    /// do, and those picked that stay int8 with why.
    #[allow(clippy::type_complexity)]
    fn plan_with_int16(
        &self,
        plan: Arc<ActivationPlan>,
        resolved: &super::denylist::Resolved,
    ) -> Result<(Arc<ActivationPlan>, BTreeSet<usize>, Vec<(usize, String)>)> {
        if resolved.int16.is_empty() {
            return Ok((plan, BTreeSet::new(), resolved.int16_refused.clone()));
        }
        let calibration = self.calibration.as_ref().ok_or_else(|| Error::Data {
            path: self.graph.source.clone(),
            reason: "int16 rules need the float model's calibration, which a model quantized \
                     elsewhere has none of: select from the float model with --data instead"
                .into(),
        })?;
        let mixed = super::int16::plan_int16(&plan, &self.graph, calibration, resolved);
        Ok((Arc::new(mixed.plan), mixed.int16, mixed.refused))
    }

    /// The activation plan with each tensor of `methods` given the range its method finds
    /// on the calibration histogram (the session's plan when there are none), and what
    /// changed. A re-planned model is checked again for DIVs LiteRT would refuse.
    fn plan_with_ranges(
        &self,
        methods: &BTreeMap<TensorId, crate::quant::range_search::RangeMethod>,
    ) -> Result<(Arc<ActivationPlan>, BTreeMap<TensorId, RangeChange>)> {
        if methods.is_empty() {
            return Ok((Arc::clone(&self.plan), BTreeMap::new()));
        }
        let refuse = |reason: String| Error::Data {
            path: self.graph.source.clone(),
            reason,
        };
        let calibration = self.calibration.as_ref().ok_or_else(|| {
            refuse(
                "range: rules need the calibration's histograms, which this model (quantized \
                 elsewhere) has none of: debug the float model with --data instead"
                    .into(),
            )
        })?;
        let mut changes = BTreeMap::new();
        for (&id, &method) in methods {
            let name = &self.graph.tensor(id).name;
            let (Some(observed), Some(chosen)) = (
                calibration.observed_range(id),
                calibration.refined_range(id, method),
            ) else {
                return Err(refuse(format!(
                    "tensor '{name}' has no calibration histogram (a calibration file from an \
                     older qdbg, or a tensor no sample reached): run again with --recalibrate"
                )));
            };
            changes.insert(id, RangeChange { observed, chosen });
        }
        let overrides = changes.iter().map(|(&id, c)| (id, c.chosen)).collect();
        let mut plan = plan_activations(&self.graph, &calibration.with_ranges(&overrides));
        keep_refused_divisions_float(&self.graph, &mut plan, &self.dataset, &self.device)?;
        Ok((Arc::new(plan), changes))
    }

    /// The calibration the plan came from, when the selector was given it.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_deref()
    }

    /// [`Selector::quantize_with_ranges`] with the ops at float-graph positions `int16`
    /// computing in 16x8 (those that cannot stay int8: the caller filters them with
    /// [`super::int16::int16_refusal`]); int8 <-> int16 requantizes sit at island edges.
    pub fn quantize_mixed(
        &self,
        keep_float: Vec<usize>,
        ranges: &BTreeMap<TensorId, crate::quant::range_search::RangeMethod>,
        int16: &std::collections::HashSet<usize>,
    ) -> Result<QuantizedModel> {
        if int16.is_empty() {
            return self.quantize_with_ranges(keep_float, ranges);
        }
        let calibration = self.calibration.as_ref().ok_or_else(|| Error::Data {
            path: self.graph.source.clone(),
            reason: "int16 remedies need the float model's calibration, which a model \
                     quantized elsewhere has none of: start from the float model with --data"
                .into(),
        })?;
        let (plan, _) = self.plan_with_ranges(ranges)?;
        let plan = plan
            .as_ref()
            .clone()
            .with_int16_ops(&self.graph, calibration, int16);
        quantize_graph(
            &self.graph,
            &plan,
            &QuantizeOptions {
                keep_float: keep_float.into_iter().collect(),
                ..Default::default()
            },
        )
    }

    /// The model with `keep_float` (float-graph positions) left in float and each tensor of
    /// `ranges` quantized with the range its method finds on the calibration histogram.
    pub fn quantize_with_ranges(
        &self,
        keep_float: Vec<usize>,
        ranges: &BTreeMap<TensorId, crate::quant::range_search::RangeMethod>,
    ) -> Result<QuantizedModel> {
        let (plan, _) = self.plan_with_ranges(ranges)?;
        quantize_graph(
            &self.graph,
            &plan,
            &QuantizeOptions {
                keep_float: keep_float.into_iter().collect(),
                ..Default::default()
            },
        )
    }

    /// The model with `keep_float` (float-graph positions) left in float.
    pub fn quantize(&self, keep_float: Vec<usize>) -> Result<QuantizedModel> {
        quantize_graph(
            &self.graph,
            &self.plan,
            &QuantizeOptions {
                keep_float: keep_float.into_iter().collect(),
                ..Default::default()
            },
        )
    }

    /// Runs the debug data through the float model and `model` and compares their final
    /// outputs (and accuracy, with labels). `progress` gets (done, total) after each chunk
    /// of samples (at most one per thread of rayon's pool); `cancel` stops within the
    /// running chunk, keeping what was measured on the samples before it.
    ///
    /// Re-runs only what it must: the float model's outputs are remembered, and `model`
    /// starts from the latest checkpoint of the full-int8 model's values before its first
    /// difference from it (see [`super::checkpoint`]); this run leaves a checkpoint at that
    /// difference for the next. Samples merge in sample order: the metrics are the same
    /// whatever the number of threads, and the same as [`Debugger::run`]'s model-level ones.
    pub fn evaluate(
        &self,
        model: &QuantizedModel,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ModelMetrics> {
        self.evaluate_until(model, &|| cancel.load(Ordering::Relaxed), progress)
    }

    /// [`Selector::evaluate`], stopping as soon as `stop` says so (asked before each
    /// sample): the dashboard stops an evaluation that a newer one supersedes this way.
    pub fn evaluate_until(
        &self,
        model: &QuantizedModel,
        stop: &(dyn Fn() -> bool + Sync),
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ModelMetrics> {
        self.evaluate_from(model, Baseline::FullInt8, stop, progress)
    }

    /// [`Selector::evaluate_until`], re-running `model` from its first difference from
    /// `baseline`'s model: pick the baseline `model` shares the longer prefix with.
    pub fn evaluate_from(
        &self,
        model: &QuantizedModel,
        baseline: Baseline,
        stop: &(dyn Fn() -> bool + Sync),
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ModelMetrics> {
        let quant = Executor::with_arithmetic(&model.graph, &self.device, self.arithmetic)?;
        let first_sample = self.samples.start;
        let total = self.samples.len();
        let base = self.baseline(baseline)?;
        let difference = first_difference(&base.graph, &model.graph);
        let (seed, capture) = {
            let checkpoints = self.lock_checkpoints(baseline);
            let seed = checkpoints
                .latest_at_or_before(difference)
                .filter(|c| covers(&model.graph, c.position, &c.tensors));
            let start = seed.as_ref().map_or(0, |c| c.position);
            let ids = live_at(&[&base.graph, &model.graph], difference);
            let bytes: usize = ids
                .iter()
                .map(|&id| stored_width(&model.graph, id) * model.graph.tensor(id).num_elements())
                .sum();
            let worth = difference > start && !checkpoints.has(difference);
            let capture = (worth && checkpoints.fits(bytes.saturating_mul(total))).then_some(ids);
            (seed, capture)
        };
        let capture_slot: HashMap<TensorId, usize> = capture
            .iter()
            .flatten()
            .enumerate()
            .map(|(k, &id)| (id, k))
            .collect();
        let mut captured: Vec<Vec<StoredValue>> = Vec::new();

        // Built only when some sample's float outputs are not remembered yet.
        let mut float: Option<Executor> = None;
        let labels = self.labels.as_deref().map(Vec::as_slice);
        let mut acc = ModelAccumulator::for_graph(&self.graph, &self.tasks);
        let chunk = crate::threads::sample_chunk();
        let mut done = 0;
        while done < total && !stop() {
            let end = (done + chunk).min(total);
            // Absolute sample indices (the float outputs and labels are kept by them);
            // checkpoints hold this selector's samples from 0.
            let (from, to) = (first_sample + done, first_sample + end);
            let known: Vec<Option<SampleOutputs>> =
                (from..to).map(|s| self.float_outputs.get(s)).collect();
            if float.is_none() && known.iter().any(Option::is_none) {
                float = Some(Executor::new(&self.graph, &self.device)?);
            }
            let outcomes: Vec<Result<Option<Evaluated>>> = (from..to)
                .into_par_iter()
                .zip(known.par_iter())
                .map(|(s, known)| {
                    if stop() {
                        return Ok(None);
                    }
                    let mut kept: Vec<Option<StoredValue>> = vec![None; capture_slot.len()];
                    let seeded = match &seed {
                        Some(c) => {
                            let values = c.samples.get(s - first_sample).ok_or_else(|| {
                                Error::Internal(format!("checkpoint lacks sample {s}"))
                            })?;
                            let mut seeded = Vec::with_capacity(values.len());
                            for (&id, v) in c.tensors.iter().zip(values) {
                                if let Some(&k) = capture_slot.get(&id) {
                                    kept[k] = Some(v.clone());
                                }
                                seeded.push((id, v.to_tensor(&self.device)?));
                            }
                            Some((c.position, seeded))
                        }
                        None => None,
                    };
                    let mut keep = |id: TensorId, v: &candle_core::Tensor| -> Result<()> {
                        if let Some(&k) = capture_slot.get(&id) {
                            kept[k] = StoredValue::capture(&model.graph, id, v)?;
                        }
                        Ok(())
                    };
                    let quant_out = match seeded {
                        Some((start, seeded)) => quant.run_from(start, seeded, &mut keep)?,
                        None => quant.run_observed_carrier(&self.sample_inputs(s)?, &mut keep)?,
                    };
                    let float_out = match (known, &float) {
                        (Some(_), _) => None,
                        (None, Some(exec)) => Some(
                            self.float_outputs
                                .remember(s, &exec.run(&self.sample_inputs(s)?)?)?,
                        ),
                        (None, None) => {
                            return Err(Error::Internal("no float executor".into()));
                        }
                    };
                    Ok(Some(Evaluated {
                        float_out,
                        quant_out: host_outputs(&quant_out)?,
                        // A value the checkpoint cannot hold leaves it incomplete: no checkpoint.
                        kept: kept.into_iter().collect(),
                    }))
                })
                .collect();
            let mut stopped = false;
            for ((s, outcome), known) in (from..to).zip(outcomes).zip(known) {
                let Some(e) = outcome? else {
                    stopped = true;
                    break;
                };
                let Some(float_out) = known.or(e.float_out) else {
                    return Err(Error::Internal(format!("no float outputs for sample {s}")));
                };
                let float_out: Vec<Vec<f64>> = float_out
                    .iter()
                    .map(|o| o.iter().map(|&v| f64::from(v)).collect())
                    .collect();
                acc.add_sample(
                    &float_out,
                    &e.quant_out,
                    labels.and_then(|l| l.get(s).copied()),
                );
                if let Some(kept) = e.kept {
                    captured.push(kept);
                }
                done += 1;
            }
            progress(done, total);
            if stopped {
                break;
            }
        }
        if let Some(tensors) = capture {
            if done == total && captured.len() == total {
                self.lock_checkpoints(baseline).insert(Checkpoint {
                    position: difference,
                    tensors,
                    samples: captured,
                });
            }
        }
        Ok(acc.metrics())
    }

    /// The baseline's model (nothing denylisted, or every op kept float): the reference
    /// its checkpoints are taken from.
    pub fn baseline(&self, baseline: Baseline) -> Result<Arc<QuantizedModel>> {
        let mut base = self.baselines[baseline.index()]
            .model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(model) = &*base {
            return Ok(Arc::clone(model));
        }
        let model = Arc::new(match baseline {
            Baseline::FullInt8 => self.quantize(Vec::new())?,
            // The quantizer refuses to quantize nothing (a denylist that keeps every op
            // float is a user's mistake); as a baseline it is simply the float graph.
            Baseline::AllFloat => QuantizedModel {
                graph: (*self.graph).clone(),
                node_origin: (0..self.graph.nodes.len()).map(Some).collect(),
                twin_of: HashMap::new(),
                float_ops: (0..self.graph.nodes.len())
                    .map(|p| (p, FloatReason::Denylisted))
                    .collect(),
            },
        });
        *base = Some(Arc::clone(&model));
        Ok(model)
    }

    fn lock_checkpoints(&self, baseline: Baseline) -> std::sync::MutexGuard<'_, Checkpoints> {
        // Checkpoints are inserted whole, so a poisoned lock still guards a consistent set.
        self.baselines[baseline.index()]
            .checkpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sample_inputs(&self, s: usize) -> Result<Vec<candle_core::Tensor>> {
        self.dataset
            .sample(s)?
            .into_iter()
            .map(|x| tensor_from_owned_sample(x, &self.device))
            .collect()
    }
}

/// A model's outputs on the host, in output order.
fn host_outputs(outputs: &[candle_core::Tensor]) -> Result<Vec<Vec<f64>>> {
    outputs
        .iter()
        .map(|t| host_f32(t).map(|v| v.into_iter().map(f64::from).collect()))
        .collect()
}
