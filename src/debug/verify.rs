//! Running the debug data through the float and int8 graphs.
//!
//! - Per-layer (TensorFlow's default): each int8 op's float twin runs on the *dequantized
//!   int8 inputs* the int8 op saw, with the original float weights, so each layer's own
//!   error shows.
//! - Whole-model: the float and int8 graphs run separately and are compared at every int8
//!   op's output, so the error accumulated down the model shows.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{Device, Tensor as CTensor};
use rayon::prelude::*;
use serde::Serialize;

use super::metrics::{
    output_names, LayerAccumulator, LayerHistograms, LayerMetrics, LayerSample, ModelAccumulator,
    ModelMetrics, NanMean, OutputSpec, Task,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::exec::{
    host_f32, tensor_from_owned_sample, with_host_f32, Executor, FloatOutputCache, SampleOutputs,
};
use crate::graph::{DType, Graph, Op, TensorId};
use crate::ops::int8_tensor::{int8_values, integer_values};
use crate::ops::quantized::node_is_quantized;
use crate::ops::{dequantize_int8, dequantize_values, Arithmetic};
use crate::quant::quantize::QuantizedModel;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum VerifyMode {
    PerLayer,
    WholeModel,
    Both,
    /// Only the two models' final outputs (what evaluating a denylist needs).
    ModelOnly,
}

impl VerifyMode {
    fn per_layer(self) -> bool {
        matches!(self, VerifyMode::PerLayer | VerifyMode::Both)
    }
    fn whole_model(self) -> bool {
        matches!(self, VerifyMode::WholeModel | VerifyMode::Both)
    }
}

/// One row of the report: an int8 op and one of its output tensors (an op with several
/// outputs, such as SPLIT, has a row per output, as in TensorFlow's debugger).
#[derive(Clone, Debug, Serialize)]
pub struct LayerInfo {
    pub op_name: &'static str,
    /// The int8 output tensor's index in the quantized model's file (TensorFlow's
    /// `tensor_idx`): the file leaves out tensors nothing uses, see
    /// [`Graph::written_tensor_ids`].
    pub tensor_idx: usize,
    /// The int8 output tensor in the quantized graph.
    #[serde(skip)]
    pub tensor: TensorId,
    pub tensor_name: String,
    pub scale: f32,
    pub zero_point: i64,
    /// Position of the op in the quantized graph and of its twin in the float graph.
    #[serde(skip)]
    pub quant_node: usize,
    #[serde(skip)]
    pub float_node: usize,
    /// The float graph's tensor the layer's output stands for.
    #[serde(skip)]
    pub float_tensor: TensorId,
    /// Which of the op's outputs the row is (0 for ops with one).
    #[serde(skip)]
    pub output: usize,
    /// The output's integer type: int16 (16x8) or int8; `range` spans its codes.
    #[serde(skip)]
    pub int16: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerStats {
    #[serde(flatten)]
    pub info: LayerInfo,
    pub per_layer: Option<LayerMetrics>,
    pub whole_model: Option<LayerMetrics>,
    /// User metrics (registered on the [`Debugger`]) of the main mode, by name, in
    /// registration order: layer metrics, then direct-compare metrics.
    pub custom: Vec<(String, f64)>,
    /// Value and error distributions of the main mode (per-layer when it ran).
    #[serde(skip)]
    pub histograms: Option<LayerHistograms>,
}

/// TensorFlow's `layer_debug_metrics`: a function of one sample's `diff`.
pub type LayerMetricFn = Box<dyn Fn(&[f64]) -> f64 + Send + Sync>;
/// TensorFlow's `layer_direct_compare_metrics`: a function of one sample's float output,
/// raw int8 output, scale and zero point.
pub type DirectCompareFn = Box<dyn Fn(&[f64], &[i64], f64, i64) -> f64 + Send + Sync>;
/// TensorFlow's `model_debug_metrics`: a function of one sample's float model outputs and
/// int8 model outputs (one vector per model output).
pub type ModelMetricFn = Box<dyn Fn(&[Vec<f64>], &[Vec<f64>]) -> f64 + Send + Sync>;

/// Everything one run measured: every layer, and the two models' final outputs.
#[derive(Clone, Debug, Serialize)]
pub struct DebugReport {
    pub layers: Vec<LayerStats>,
    pub model: ModelMetrics,
    /// User model metrics, by name: NaN-skipping mean over samples.
    pub model_custom: Vec<(String, f64)>,
    /// Samples done (fewer than the dataset's when the run was cancelled).
    pub samples: usize,
    /// Whose int8 arithmetic the quantized model ran with.
    #[serde(rename = "int8_arithmetic")]
    pub arithmetic: Arithmetic,
}

/// What the debugger tells its consumers (the dashboard, the CSV and JSON writers).
#[derive(Clone, Debug)]
pub enum DebugEvent {
    Started {
        layers: Vec<LayerInfo>,
        samples: usize,
    },
    /// Statistics of every layer and of the model after `done` samples.
    Updated {
        done: usize,
        total: usize,
        /// Boxed: a report is far bigger than the other events.
        report: Box<DebugReport>,
    },
    /// The run stopped on an error (sent by [`super::job::spawn`]'s worker).
    Failed(String),
}

pub struct Debugger<'a> {
    float: Executor<'a>,
    quant: Executor<'a>,
    model: &'a QuantizedModel,
    layers: Vec<LayerInfo>,
    layer_metrics: Vec<(String, LayerMetricFn)>,
    direct_metrics: Vec<(String, DirectCompareFn)>,
    model_metrics: Vec<(String, ModelMetricFn)>,
    /// The float model's outputs as the model-level metrics know them: names, shapes and
    /// the tasks given (see [`Debugger::with_tasks`]).
    output_specs: Vec<OutputSpec>,
    /// The float model's outputs on the dataset, shared with the steps before and after
    /// (calibration, denylist evaluations): per-layer runs read them instead of running
    /// the float model, and remember what they compute.
    float_outputs: Option<Arc<FloatOutputCache>>,
    /// Whether layers histogram their values and errors (see [`Debugger::with_histograms`]).
    histograms: bool,
    /// Whether layers count the sums of qdbg's extra metrics (see
    /// [`Debugger::with_extra_metrics`]).
    extras: bool,
}

impl<'a> Debugger<'a> {
    /// The debugger of `model` against `float`, its int8 ops run by LiteRT's builtin
    /// kernels' arithmetic.
    pub fn new(float: &'a Graph, model: &'a QuantizedModel, device: &Device) -> Result<Self> {
        Self::for_arithmetic(float, model, device, Arithmetic::Builtin)
    }

    /// As [`Debugger::new`], with the int8 ops run as `arithmetic` computes them
    /// ([`Arithmetic::Xnnpack`] is what TensorFlow's QuantizationDebugger runs on x86);
    /// each executor is built (and its weights packed) once.
    pub fn for_arithmetic(
        float: &'a Graph,
        model: &'a QuantizedModel,
        device: &Device,
        arithmetic: Arithmetic,
    ) -> Result<Self> {
        let q = &model.graph;
        let mut layers = Vec::new();
        let file_index = q.written_tensor_ids();
        for (pos, node) in q.nodes.iter().enumerate() {
            let Some(Some(float_node)) = model.node_origin.get(pos) else {
                continue;
            };
            if !node_is_quantized(q, node) || matches!(node.op, Op::Quantize | Op::Dequantize) {
                continue;
            }
            for (output, &out) in node.outputs.iter().enumerate() {
                let Some(params) = q.tensor(out).quant.as_ref() else {
                    continue;
                };
                let float_tensor = *model.twin_of.get(&out).unwrap_or(&out);
                layers.push(LayerInfo {
                    op_name: node.op.name(),
                    tensor_idx: file_index[out].unwrap_or(out),
                    tensor: out,
                    // The float model's name, as TensorFlow's debugger reports it: the name
                    // users know, and the one denylists are written against.
                    tensor_name: float.tensor(float_tensor).name.clone(),
                    scale: params.scale[0],
                    zero_point: params.zero_point[0],
                    quant_node: pos,
                    float_node: *float_node,
                    float_tensor,
                    output,
                    int16: q.tensor(out).dtype == DType::I16,
                });
            }
        }
        // The two executors prepared side by side (packing weights is most of the setup).
        let (float_executor, quant_executor) = rayon::join(
            || Executor::new(float, device),
            || Executor::with_arithmetic(q, device, arithmetic),
        );
        Ok(Debugger {
            float: float_executor?,
            quant: quant_executor?,
            model,
            layers,
            layer_metrics: Vec::new(),
            direct_metrics: Vec::new(),
            model_metrics: Vec::new(),
            output_specs: output_names(float)
                .into_iter()
                .zip(&float.outputs)
                .map(|(name, &id)| OutputSpec {
                    name,
                    shape: float.tensor(id).shape.clone(),
                    task: None,
                })
                .collect(),
            float_outputs: None,
            histograms: true,
            extras: true,
        })
    }

    /// Whether each layer histograms its float values, dequantized values and errors per
    /// int8 step (on by default): the dashboard's pictures and the `kl_divergence` metric
    /// need them, the CSV's columns do not. Counting them is about half of the measuring;
    /// off, `kl_divergence` is NaN and `LayerStats::histograms` is `None`, every other
    /// statistic is the same, bit for bit.
    /// Each output's task for the model-level metrics (`--task`, see
    /// [`crate::debug::metrics::given_tasks`]; `None` or no entry: guessed on the first
    /// sample).
    pub fn with_tasks(mut self, tasks: &[Option<Task>]) -> Self {
        for (spec, task) in self.output_specs.iter_mut().zip(tasks) {
            spec.task = *task;
        }
        self
    }

    pub fn with_histograms(mut self, on: bool) -> Self {
        self.histograms = on;
        self
    }

    /// Whether layers measure qdbg's extra metrics (on by default): SQNR, cosine, mean
    /// absolute error, correlation and saturation, which the dashboard, `--metrics`, the
    /// JSON and metric rules read. TensorFlow's five statistics (and `rmse/scale`, the
    /// largest error over all samples, the KL divergence) do without them, and leaving them
    /// out takes about half of the measuring away; off, they are NaN.
    pub fn with_extra_metrics(mut self, on: bool) -> Self {
        self.extras = on;
        self
    }

    /// Runs the int8 model's ops as `arithmetic` computes them (LiteRT's builtin kernels
    /// unless told otherwise; [`Arithmetic::Xnnpack`] is what TensorFlow's
    /// QuantizationDebugger runs on x86). This rebuilds the int8 executor: where the
    /// arithmetic is known up front, [`Debugger::for_arithmetic`] builds it once.
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Result<Self> {
        let device = self.float.device().clone();
        self.quant = Executor::with_arithmetic(&self.model.graph, &device, arithmetic)?;
        Ok(self)
    }

    /// Shares a cache of the float model's final outputs on the dataset this debugger
    /// will run (see [`FloatOutputCache`]); only give it one made for the same dataset.
    pub fn with_float_outputs(mut self, outputs: Arc<FloatOutputCache>) -> Self {
        self.float_outputs = Some(outputs);
        self
    }

    /// Adds a metric computed on each sample's `diff` (TensorFlow's `layer_debug_metrics`).
    pub fn with_layer_metric(mut self, name: &str, f: LayerMetricFn) -> Self {
        self.layer_metrics.push((name.to_string(), f));
        self
    }

    /// Adds a metric on float output, raw int8 output, scale and zero point (TensorFlow's
    /// `layer_direct_compare_metrics`).
    pub fn with_direct_compare_metric(mut self, name: &str, f: DirectCompareFn) -> Self {
        self.direct_metrics.push((name.to_string(), f));
        self
    }

    /// Adds a metric on the two models' final outputs (TensorFlow's `model_debug_metrics`).
    pub fn with_model_metric(mut self, name: &str, f: ModelMetricFn) -> Self {
        self.model_metrics.push((name.to_string(), f));
        self
    }

    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// Runs every sample, in parallel chunks of at most one sample per thread of rayon's
    /// pool, reporting after each chunk; stops within a chunk when `cancel` is set,
    /// returning the statistics of the samples completed before it.
    /// `labels`, when given, holds one class per sample for the accuracies.
    ///
    /// Samples are measured on their own and merged in sample order, so the report is the
    /// same, bit for bit, whatever the number of threads.
    pub fn run(
        &self,
        dataset: &Dataset,
        labels: Option<&[i64]>,
        mode: VerifyMode,
        cancel: &AtomicBool,
        on_event: &mut dyn FnMut(DebugEvent),
    ) -> Result<DebugReport> {
        let total = dataset.num_samples();
        on_event(DebugEvent::Started {
            layers: self.layers.clone(),
            samples: total,
        });
        let accumulators = || -> Vec<LayerAccumulator> {
            self.layers
                .iter()
                .map(|l| {
                    if self.histograms {
                        LayerAccumulator::for_layer(l.scale as f64, l.zero_point)
                    } else {
                        LayerAccumulator::default()
                    }
                })
                .collect()
        };
        let mut per_layer = accumulators();
        let mut whole = accumulators();
        let plan = SamplePlan::new(self);
        let mut model_acc = ModelAccumulator::for_outputs(self.output_specs.clone());
        let n_custom = self.layer_metrics.len() + self.direct_metrics.len();
        let mut custom = vec![vec![NanMean::default(); n_custom]; self.layers.len()];
        let mut model_custom = vec![NanMean::default(); self.model_metrics.len()];
        let mut report =
            self.snapshot(&per_layer, &whole, &model_acc, &custom, &model_custom, mode);
        let chunk = rayon::current_num_threads().max(1);
        let mut done = 0;
        while done < total && !cancel.load(Ordering::Relaxed) {
            let end = (done + chunk).min(total);
            // Only this chunk's per-sample results are held at once: memory stays bounded
            // whatever the number of samples.
            let outcomes: Vec<Result<Option<SampleOutcome>>> = (done..end)
                .into_par_iter()
                .map(|s| {
                    if cancel.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    self.measure_sample(&plan, dataset, s, mode).map(Some)
                })
                .collect();
            let mut stopped = false;
            for outcome in outcomes {
                // A cancelled sample ends the chunk: later ones are dropped even if they
                // finished, so the statistics always cover samples 0..done.
                let Some(o) = outcome? else {
                    stopped = true;
                    break;
                };
                for (acc, sample) in per_layer.iter_mut().zip(&o.per_layer) {
                    if let Some(sample) = sample {
                        acc.add(sample);
                    }
                }
                for (acc, sample) in whole.iter_mut().zip(&o.whole) {
                    if let Some(sample) = sample {
                        acc.add(sample);
                    }
                }
                for (accs, values) in custom.iter_mut().zip(&o.custom) {
                    for (a, &v) in accs.iter_mut().zip(values) {
                        a.add(v);
                    }
                }
                model_acc.add_sample(
                    &o.float_out,
                    &o.quant_out,
                    labels.and_then(|l| l.get(done).copied()),
                );
                for ((_, f), acc) in self.model_metrics.iter().zip(model_custom.iter_mut()) {
                    acc.add(f(&o.float_out, &o.quant_out));
                }
                done += 1;
            }
            report = self.snapshot(&per_layer, &whole, &model_acc, &custom, &model_custom, mode);
            on_event(DebugEvent::Updated {
                done,
                total,
                report: Box::new(report.clone()),
            });
            if stopped {
                break;
            }
        }
        Ok(report)
    }

    /// Everything sample `s` contributes, measured on its own (on any thread).
    fn measure_sample(
        &self,
        plan: &SamplePlan,
        dataset: &Dataset,
        s: usize,
        mode: VerifyMode,
    ) -> Result<SampleOutcome> {
        let inputs = dataset
            .sample(s)?
            .into_iter()
            .map(|x| tensor_from_owned_sample(x, self.quant.device()))
            .collect::<Result<Vec<_>>>()?;
        let n = self.layers.len();
        let mut outcome = SampleOutcome {
            per_layer: vec![None; n],
            whole: vec![None; n],
            custom: vec![Vec::new(); n],
            float_out: Vec::new(),
            quant_out: Vec::new(),
        };
        // The tensors the layers read, as the int8 model computes them; and each int8
        // tensor read back (and dequantized) once per sample, whether as a layer's output
        // or as a later layer's input.
        let mut qvals: HashMap<TensorId, CTensor> = HashMap::new();
        let mut int8 = Int8Memo::default();
        let whole_model = mode.whole_model();
        // Per-layer twins run as soon as their int8 op has: its inputs and output are then
        // still in cache, and (unless the whole-model comparison needs every tensor at the
        // end) each value is let go after the last layer that reads it, so a sample holds
        // a few tensors rather than all of them.
        let quant_out = self.quant.run_observed_carrier(&inputs, &mut |id, v| {
            if plan.wanted.contains(&id) {
                qvals.insert(id, v.clone());
            }
            if !mode.per_layer() {
                return Ok(());
            }
            if let Some(&k) = plan.layer_of_output.get(&id) {
                let (sample, custom) = self.layer_twin(&self.layers[k], plan, &qvals, &mut int8)?;
                outcome.per_layer[k] = Some(sample);
                outcome.custom[k] = custom;
                if !whole_model {
                    for t in &plan.last_read_by[k] {
                        qvals.remove(t);
                        int8.values.remove(t);
                    }
                }
            }
            Ok(())
        })?;
        // Model-level metrics need the float model's outputs (remembered by an earlier
        // step, or computed now); whole-model verification needs its intermediate tensors,
        // so the float model runs whole.
        let mut fvals: HashMap<usize, Vec<f32>> = HashMap::new();
        let known = match (&self.float_outputs, whole_model) {
            (Some(cache), false) => cache.get(s),
            _ => None,
        };
        let float_out: SampleOutputs = match known {
            Some(outputs) => outputs,
            None => {
                let outputs = self.float.run_observed(&inputs, &mut |id, v| {
                    if let (true, Some(&k)) = (whole_model, plan.float_outputs.get(&id)) {
                        fvals.insert(k, host_f32(v)?);
                    }
                    Ok(())
                })?;
                match &self.float_outputs {
                    Some(cache) => cache.remember(s, &outputs)?,
                    None => Arc::new(outputs.iter().map(host_f32).collect::<Result<_>>()?),
                }
            }
        };
        outcome.float_out = float_out
            .iter()
            .map(|o| o.iter().map(|&x| f64::from(x)).collect())
            .collect();
        outcome.quant_out = quant_out.iter().map(host).collect::<Result<Vec<_>>>()?;
        if whole_model {
            for (k, l) in self.layers.iter().enumerate() {
                if let Some(reference) = fvals.get(&k) {
                    let (sample, custom) =
                        self.measure_layer(l, reference, &qvals, &mut int8, false)?;
                    outcome.whole[k] = Some(sample);
                    if !mode.per_layer() {
                        outcome.custom[k] = custom;
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// Layer `l`'s per-layer error on one sample: its float twin run on the dequantized
    /// int8 inputs its int8 op read (or on the float tensors a QUANTIZE made them from),
    /// measured against the int8 op's output.
    fn layer_twin(
        &self,
        l: &LayerInfo,
        plan: &SamplePlan,
        qvals: &HashMap<TensorId, CTensor>,
        int8: &mut Int8Memo,
    ) -> Result<(LayerSample, Vec<f64>)> {
        let q = &self.model.graph;
        let qnode = &q.nodes[l.quant_node];
        let mut float_inputs = Vec::with_capacity(qnode.inputs.len());
        for i in &qnode.inputs {
            float_inputs.push(match i {
                Some(id) if !q.tensor(*id).is_constant() => match plan.twin_reads(*id) {
                    TwinRead::Float(src) => qvals.get(&src).cloned(),
                    TwinRead::Dequantized(id) => match qvals.get(&id) {
                        Some(v) => int8.dequantized(q, id, v)?,
                        None => None,
                    },
                },
                _ => None,
            });
        }
        let refs: Vec<Option<&CTensor>> = float_inputs.iter().map(|v| v.as_ref()).collect();
        let out = self.float.eval_node(l.float_node, &refs)?;
        let reference = out.get(l.output).ok_or_else(|| {
            Error::Internal(format!("layer '{}': no output {}", l.tensor_name, l.output))
        })?;
        with_host_f32(reference, |reference| {
            let keep = plan.read_dequantized.contains(&l.tensor);
            self.measure_layer(l, reference, qvals, int8, keep)
        })?
    }

    /// Layer `l`'s error on one sample against the float `reference`, and its user metrics.
    fn measure_layer(
        &self,
        l: &LayerInfo,
        reference: &[f32],
        qvals: &HashMap<TensorId, CTensor>,
        int8: &mut Int8Memo,
        keep_dequantized: bool,
    ) -> Result<(LayerSample, Vec<f64>)> {
        let q = &self.model.graph;
        let v = qvals.get(&l.tensor).ok_or_else(|| {
            Error::Internal(format!("layer '{}' was not computed", l.tensor_name))
        })?;
        let params = q.tensor(l.tensor).quant.as_ref().ok_or_else(|| {
            Error::Internal(format!("layer '{}' has no parameters", l.tensor_name))
        })?;
        let internal = |e: String| Error::Internal(format!("{}: {e}", l.tensor_name));
        if q.tensor(l.tensor).dtype == DType::I16 {
            // A 16x8 layer: measured on its dequantized values (its codes travel as plain
            // integers; the int8 fast path and the int8-step histograms do not apply).
            // `rmse/scale` divides by its own (int16) scale, so it stays in steps.
            let float: Vec<f64> = reference.iter().map(|&x| f64::from(x)).collect();
            let got: Vec<f64> = match int8.dequantized(q, l.tensor, v)? {
                Some(t) => host_f32(&t)?.into_iter().map(f64::from).collect(),
                None => Vec::new(),
            };
            let raw = integer_values(v, DType::I16).map_err(|e| internal(e.to_string()))?;
            let saturated = raw
                .iter()
                .filter(|&&x| x <= i64::from(i16::MIN) || x >= i64::from(i16::MAX))
                .count();
            let sample = LayerSample::new(None, &float, &got, saturated);
            return Ok((sample, self.custom_values(l, &float, &got, &raw)));
        }
        let per_tensor = params.scale.len() == 1 && params.zero_point.len() == 1;
        let wants_custom = !(self.layer_metrics.is_empty() && self.direct_metrics.is_empty());
        if per_tensor && !wants_custom {
            // The common case: measured straight from the executors' buffers.
            let (scale, zero_point) = (params.scale[0], params.zero_point[0]);
            let entry = int8.entry(l.tensor, v);
            let raw_values = int8_values(&entry.tensor).map_err(|e| internal(e.to_string()))?;
            // A later layer's float twin reads this output dequantized: written in the
            // same pass as the measurement (as `dequantize_int8` computes it, which it
            // does in f32 for these zero points).
            let keep = keep_dequantized
                && entry.dequantized.is_none()
                && zero_point.unsigned_abs() < 1 << 23;
            let n = raw_values.len();
            let mut values = Vec::<f32>::with_capacity(if keep { n } else { 0 });
            let sample = LayerSample::from_int8_output(
                scale,
                zero_point,
                reference,
                &raw_values,
                self.histograms,
                self.extras,
                keep.then(|| &mut values.spare_capacity_mut()[..n]),
            );
            if keep {
                // SAFETY: `from_int8_output` writes every element of the slice it is
                // given: the first `n`, within the capacity reserved.
                unsafe { values.set_len(n) };
                entry.dequantized = Some(
                    CTensor::from_vec(values, v.dims(), v.device())
                        .map_err(|e| internal(e.to_string()))?,
                );
            }
            return Ok((sample, Vec::new()));
        }
        let float: Vec<f64> = reference.iter().map(|&x| f64::from(x)).collect();
        let got: Vec<f64> = match int8.dequantized(q, l.tensor, v)? {
            Some(t) => host_f32(&t)?.into_iter().map(f64::from).collect(),
            None => Vec::new(),
        };
        let raw_values =
            int8_values(&int8.entry(l.tensor, v).tensor).map_err(|e| internal(e.to_string()))?;
        let raw: Vec<i64> = raw_values.iter().map(|&r| i64::from(r)).collect();
        let sample = if per_tensor && self.histograms {
            LayerSample::from_int8((l.scale as f64, l.zero_point), &float, &got, &raw)
        } else {
            let step = self.histograms.then(|| layer_step(l)).flatten();
            LayerSample::new(step, &float, &got, saturated(&raw_values))
        };
        Ok((sample, self.custom_values(l, &float, &got, &raw)))
    }

    /// One sample of every user metric for layer `l`, in registration order (layer metrics,
    /// then direct-compare metrics).
    fn custom_values(&self, l: &LayerInfo, float: &[f64], got: &[f64], raw: &[i64]) -> Vec<f64> {
        if self.layer_metrics.is_empty() && self.direct_metrics.is_empty() {
            return Vec::new();
        }
        let diff: Vec<f64> = got.iter().zip(float).map(|(q, f)| q - f).collect();
        self.layer_metrics
            .iter()
            .map(|(_, f)| f(&diff))
            .chain(
                self.direct_metrics
                    .iter()
                    .map(|(_, f)| f(float, raw, l.scale as f64, l.zero_point)),
            )
            .collect()
    }

    fn snapshot(
        &self,
        per_layer: &[LayerAccumulator],
        whole: &[LayerAccumulator],
        model: &ModelAccumulator,
        custom: &[Vec<NanMean>],
        model_custom: &[NanMean],
        mode: VerifyMode,
    ) -> DebugReport {
        let names: Vec<&String> = self
            .layer_metrics
            .iter()
            .map(|(n, _)| n)
            .chain(self.direct_metrics.iter().map(|(n, _)| n))
            .collect();
        let m = model.metrics();
        DebugReport {
            arithmetic: self.quant.arithmetic(),
            layers: self
                .layers
                .iter()
                .enumerate()
                .map(|(k, info)| LayerStats {
                    info: info.clone(),
                    per_layer: mode.per_layer().then(|| per_layer[k].metrics()),
                    whole_model: mode.whole_model().then(|| whole[k].metrics()),
                    custom: names
                        .iter()
                        .zip(&custom[k])
                        .map(|(n, v)| ((*n).clone(), v.value()))
                        .collect(),
                    histograms: if mode.per_layer() {
                        per_layer[k].histograms()
                    } else if mode.whole_model() {
                        whole[k].histograms()
                    } else {
                        None
                    },
                })
                .collect(),
            samples: m.samples,
            model: m,
            model_custom: self
                .model_metrics
                .iter()
                .zip(model_custom)
                .map(|((n, _), v)| (n.clone(), v.value()))
                .collect(),
        }
    }
}

/// What one run needs to know about the graphs, worked out once and shared by the
/// threads measuring samples.
struct SamplePlan {
    /// An int8 input made by QUANTIZE from a float tensor (a model input, or the output
    /// of an op kept float) stands for that float tensor: the float twin reads it
    /// directly, as TensorFlow's debug model does (it folds dequantize(quantize(x))).
    float_source: HashMap<TensorId, TensorId>,
    /// An int8 tensor made by requantizing another for every reader (QUANTIZE int8 ->
    /// int8 that is the other's only reader: its producer's parameters are fixed, and all
    /// readers need others) -> that tensor. A float twin reads the producer's value
    /// dequantized, not the requantized copy, as TensorFlow's debug model does: its float
    /// ops read a DEQUANTIZE of the producer's output, so the reader's row includes the
    /// requantize's rounding (g12874: a RELU reading a LOGISTIC requantized from 1/256 to
    /// 0.0256 shows that rounding, 5.7e-5, not 0). A requantize for some readers only
    /// (a model input that one same-scale reader needs finer) is read as it is: there
    /// TensorFlow's float twin reads the requantized copy dequantized (g13's PADV2).
    requantized_from: HashMap<TensorId, TensorId>,
    /// The tensors the layers read and write: the only ones kept per sample.
    wanted: HashSet<TensorId>,
    /// Float-graph tensor of each layer's output -> layer index.
    float_outputs: HashMap<TensorId, usize>,
    /// The int8 tensors some layer's float twin reads dequantized.
    read_dequantized: HashSet<TensorId>,
    /// Quantized-graph tensor of each layer's output -> layer index.
    layer_of_output: HashMap<TensorId, usize>,
    /// Per layer, the wanted tensors no later layer reads or measures: what a per-layer
    /// run can let go of once that layer is measured.
    last_read_by: Vec<Vec<TensorId>>,
}

impl SamplePlan {
    fn new(d: &Debugger) -> Self {
        let q = &d.model.graph;
        let mut readers = vec![0usize; q.tensors.len()];
        for &id in q.nodes.iter().flat_map(|n| n.inputs.iter().flatten()) {
            readers[id] += 1;
        }
        let mut float_source = HashMap::new();
        let mut requantized_from = HashMap::new();
        for node in &q.nodes {
            if node.op == Op::Quantize {
                match node.input(0) {
                    Some(src) if q.tensor(src).dtype.is_float() => {
                        float_source.insert(node.outputs[0], src);
                    }
                    Some(src) if readers[src] == 1 && !q.outputs.contains(&src) => {
                        requantized_from.insert(node.outputs[0], src);
                    }
                    _ => {}
                }
            }
        }
        let twin_reads = |id| twin_read(&float_source, &requantized_from, id);
        let mut wanted = HashSet::new();
        let mut read_dequantized = HashSet::new();
        let mut last_reader: HashMap<TensorId, usize> = HashMap::new();
        for (k, l) in d.layers.iter().enumerate() {
            let inputs = q.nodes[l.quant_node].inputs.iter().flatten();
            let reads = inputs
                .filter(|&&i| !q.tensor(i).is_constant())
                .map(|&i| match twin_reads(i) {
                    TwinRead::Float(src) => src,
                    TwinRead::Dequantized(id) => {
                        read_dequantized.insert(id);
                        id
                    }
                })
                .collect::<Vec<_>>();
            for t in reads.into_iter().chain(std::iter::once(l.tensor)) {
                wanted.insert(t);
                last_reader.insert(t, k);
            }
        }
        let mut last_read_by = vec![Vec::new(); d.layers.len()];
        for (t, k) in last_reader {
            last_read_by[k].push(t);
        }
        let layer_of_output = d
            .layers
            .iter()
            .enumerate()
            .map(|(k, l)| (l.tensor, k))
            .collect();
        let float_outputs = d
            .layers
            .iter()
            .enumerate()
            .map(|(k, l)| (l.float_tensor, k))
            .collect();
        SamplePlan {
            float_source,
            requantized_from,
            wanted,
            float_outputs,
            read_dequantized,
            layer_of_output,
            last_read_by,
        }
    }
}

impl SamplePlan {
    /// What a layer's float twin reads in place of int8 input `id`.
    fn twin_reads(&self, id: TensorId) -> TwinRead {
        twin_read(&self.float_source, &self.requantized_from, id)
    }
}

/// What a float twin reads in place of an int8 input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TwinRead {
    /// The float tensor a QUANTIZE made the input from (a model input, a float op's output).
    Float(TensorId),
    /// This int8 tensor, dequantized: the input itself, or the tensor it was requantized from.
    Dequantized(TensorId),
}

/// [`SamplePlan::twin_reads`], before the plan exists: back through requantizes to the
/// tensor an int8 op wrote, then to the float tensor a QUANTIZE read, if any.
fn twin_read(
    float_source: &HashMap<TensorId, TensorId>,
    requantized_from: &HashMap<TensorId, TensorId>,
    mut id: TensorId,
) -> TwinRead {
    // Bounded by the number of requantizes: a malformed graph with a cycle of QUANTIZEs
    // cannot loop here.
    for _ in 0..=requantized_from.len() {
        match requantized_from.get(&id) {
            Some(&src) => id = src,
            None => break,
        }
    }
    match float_source.get(&id) {
        Some(&src) => TwinRead::Float(src),
        None => TwinRead::Dequantized(id),
    }
}

/// One sample's contribution to every statistic, merged in sample order by [`Debugger::run`].
struct SampleOutcome {
    per_layer: Vec<Option<LayerSample>>,
    whole: Vec<Option<LayerSample>>,
    /// User layer metrics per layer (empty where none were computed).
    custom: Vec<Vec<f64>>,
    float_out: Vec<Vec<f64>>,
    quant_out: Vec<Vec<f64>>,
}

/// One sample's int8 tensors read back to the host, each once.
#[derive(Default)]
struct Int8Memo {
    values: HashMap<TensorId, Int8Entry>,
}

/// One int8 tensor of a sample: the executor's value (its raw int8 values are read in
/// place, see [`int8_values`]) and, once something needed it, its dequantized form.
struct Int8Entry {
    tensor: CTensor,
    /// The dequantized values as a float tensor (what a float twin reads); `None` until
    /// computed, and for a tensor without quantization parameters.
    dequantized: Option<CTensor>,
}

impl Int8Memo {
    /// The entry of int8 tensor `id` (value `v`), not dequantized yet if it is new.
    fn entry(&mut self, id: TensorId, v: &CTensor) -> &mut Int8Entry {
        self.values.entry(id).or_insert_with(|| Int8Entry {
            tensor: v.clone(),
            dequantized: None,
        })
    }

    /// The dequantized values of int8 tensor `id` (value `v`) as a float tensor, computed
    /// once; `None` when the tensor has no quantization parameters.
    fn dequantized(&mut self, q: &Graph, id: TensorId, v: &CTensor) -> Result<Option<CTensor>> {
        let entry = self.entry(id, v);
        if entry.dequantized.is_none() {
            if let Some(p) = q.tensor(id).quant.as_ref() {
                let internal = |e: String| Error::Internal(format!("{}: {e}", q.tensor(id).name));
                let values = if q.tensor(id).dtype == DType::I16 {
                    let raw = integer_values(&entry.tensor, DType::I16)
                        .map_err(|e| internal(e.to_string()))?;
                    dequantize_values(&raw, v.dims(), p).map_err(|e| internal(e.to_string()))?
                } else {
                    let raw = int8_values(&entry.tensor).map_err(|e| internal(e.to_string()))?;
                    dequantize_int8(&raw, v.dims(), p).map_err(|e| internal(e.to_string()))?
                };
                entry.dequantized = Some(
                    CTensor::from_vec(values, v.dims(), v.device())
                        .map_err(|e| internal(e.to_string()))?,
                );
            }
        }
        Ok(entry.dequantized.clone())
    }
}

fn layer_step(l: &LayerInfo) -> Option<(f64, i64)> {
    Some((l.scale as f64, l.zero_point))
}

fn saturated(raw: &[i8]) -> usize {
    raw.iter().filter(|&&x| x == -128 || x == 127).count()
}

fn host(t: &CTensor) -> Result<Vec<f64>> {
    let flat = t
        .flatten_all()
        .map_err(|e| Error::candle("flattening a layer's values", e))?;
    // f32 -> f64 is exact: converting on the host gives the values candle's cast would,
    // without a second tensor.
    if flat.dtype() == candle_core::DType::F32 {
        return flat
            .to_vec1::<f32>()
            .map(|v| v.into_iter().map(f64::from).collect())
            .map_err(|e| Error::candle("reading a layer's f32 values to the host", e));
    }
    flat.to_dtype(candle_core::DType::F64)
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| Error::candle("reading a layer's values to the host as f64", e))
}
