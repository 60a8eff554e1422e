//! Running the debug data through the float and int8 graphs.
//!
//! - Per-layer (TensorFlow's default): each int8 op's float twin runs on the *dequantized
//!   int8 inputs* the int8 op saw, with the original float weights, so each layer's own
//!   error shows.
//! - Whole-model: the float and int8 graphs run separately and are compared at every int8
//!   op's output, so the error accumulated down the model shows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, Tensor as CTensor};
use serde::Serialize;

use super::metrics::{LayerAccumulator, LayerMetrics, ModelAccumulator, ModelMetrics, NanMean};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::exec::{tensor_from_sample, Executor};
use crate::graph::{Graph, Op, QuantParams, TensorId};
use crate::ops::dequantize_values;
use crate::ops::quantized::node_is_quantized;
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

/// One row of the report: an int8 op and its output tensor.
#[derive(Clone, Debug, Serialize)]
pub struct LayerInfo {
    pub op_name: &'static str,
    /// The int8 output tensor's index in the quantized model.
    pub tensor_idx: TensorId,
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
        report: DebugReport,
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
}

impl<'a> Debugger<'a> {
    pub fn new(float: &'a Graph, model: &'a QuantizedModel, device: &Device) -> Result<Self> {
        let q = &model.graph;
        let mut layers = Vec::new();
        for (pos, node) in q.nodes.iter().enumerate() {
            let Some(Some(float_node)) = model.node_origin.get(pos) else {
                continue;
            };
            if !node_is_quantized(q, node) || matches!(node.op, Op::Quantize | Op::Dequantize) {
                continue;
            }
            let out = node.outputs[0];
            let Some(params) = q.tensor(out).quant.as_ref() else {
                continue;
            };
            let float_tensor = *model.twin_of.get(&out).unwrap_or(&out);
            layers.push(LayerInfo {
                op_name: node.op.name(),
                tensor_idx: out,
                // The float model's name, as TensorFlow's debugger reports it: the name
                // users know, and the one denylists are written against.
                tensor_name: float.tensor(float_tensor).name.clone(),
                scale: params.scale[0],
                zero_point: params.zero_point[0],
                quant_node: pos,
                float_node: *float_node,
                float_tensor,
            });
        }
        Ok(Debugger {
            float: Executor::new(float, device)?,
            quant: Executor::new(q, device)?,
            model,
            layers,
            layer_metrics: Vec::new(),
            direct_metrics: Vec::new(),
            model_metrics: Vec::new(),
        })
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

    /// Runs every sample, reporting after each one; stops between samples when `cancel`
    /// is set, returning the statistics gathered so far.
    /// `labels`, when given, holds one class per sample for the accuracies.
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
                .map(|l| LayerAccumulator::for_layer(l.scale as f64, l.zero_point))
                .collect()
        };
        let mut per_layer = accumulators();
        let mut whole = accumulators();
        let q = &self.model.graph;
        // An int8 input made by QUANTIZE from a float tensor (a model input, or the output
        // of an op kept float) stands for that float tensor: the float twin reads it
        // directly, as TensorFlow's debug model does (it folds dequantize(quantize(x))).
        let mut float_source: HashMap<TensorId, TensorId> = HashMap::new();
        for node in &q.nodes {
            if node.op == Op::Quantize {
                if let Some(src) = node.input(0).filter(|&i| q.tensor(i).dtype.is_float()) {
                    float_source.insert(node.outputs[0], src);
                }
            }
        }
        // Which tensors the layers read and write, to keep only those per sample.
        let mut wanted: HashMap<TensorId, ()> = HashMap::new();
        for l in &self.layers {
            wanted.insert(l.tensor_idx, ());
            for &i in q.nodes[l.quant_node].inputs.iter().flatten() {
                if !q.tensor(i).is_constant() {
                    wanted.insert(*float_source.get(&i).unwrap_or(&i), ());
                }
            }
        }
        let float_outputs: HashMap<TensorId, usize> = self
            .layers
            .iter()
            .enumerate()
            .map(|(k, l)| (l.float_tensor, k))
            .collect();

        let mut model_acc = ModelAccumulator::default();
        let n_custom = self.layer_metrics.len() + self.direct_metrics.len();
        let mut custom = vec![vec![NanMean::default(); n_custom]; self.layers.len()];
        let mut model_custom = vec![NanMean::default(); self.model_metrics.len()];
        let mut report =
            self.snapshot(&per_layer, &whole, &model_acc, &custom, &model_custom, mode);
        for s in 0..total {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let inputs = dataset
                .sample(s)?
                .iter()
                .map(|x| tensor_from_sample(x, self.quant.device()))
                .collect::<Result<Vec<_>>>()?;
            let mut qvals: HashMap<TensorId, CTensor> = HashMap::new();
            let quant_out = self.quant.run_observed(&inputs, &mut |id, v| {
                if wanted.contains_key(&id) {
                    qvals.insert(id, v.clone());
                }
                Ok(())
            })?;
            if mode.per_layer() {
                for (k, l) in self.layers.iter().enumerate() {
                    let qnode = &q.nodes[l.quant_node];
                    let float_inputs = qnode
                        .inputs
                        .iter()
                        .map(|i| match i {
                            Some(id) if !q.tensor(*id).is_constant() => {
                                match float_source.get(id) {
                                    Some(src) => Ok(qvals.get(src).cloned()),
                                    None => qvals
                                        .get(id)
                                        .map(|v| dequantize(v, q.tensor(*id).quant.as_ref()))
                                        .transpose()
                                        .map(Option::flatten),
                                }
                            }
                            _ => Ok(None),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let refs: Vec<Option<&CTensor>> =
                        float_inputs.iter().map(|v| v.as_ref()).collect();
                    let out = self.float.eval_node(l.float_node, &refs)?;
                    let reference = host(&out[0])?;
                    let (got, raw) = self.dequantized_output(l, &qvals)?;
                    per_layer[k].add_sample(&reference, &got, saturated(&raw));
                    self.add_custom(&mut custom[k], l, &reference, &got, &raw);
                }
            }
            // The float model runs whole every sample: model-level metrics need its outputs,
            // and whole-model verification its intermediate tensors.
            let mut fvals: HashMap<usize, Vec<f64>> = HashMap::new();
            let whole_model = mode.whole_model();
            let float_out = self.float.run_observed(&inputs, &mut |id, v| {
                if let (true, Some(&k)) = (whole_model, float_outputs.get(&id)) {
                    fvals.insert(k, host(v)?);
                }
                Ok(())
            })?;
            let float_host = float_out.iter().map(host).collect::<Result<Vec<_>>>()?;
            let quant_host = quant_out.iter().map(host).collect::<Result<Vec<_>>>()?;
            if let (Some(f), Some(q)) = (float_host.first(), quant_host.first()) {
                model_acc.add_sample(f, q, labels.and_then(|l| l.get(s).copied()));
            }
            for ((_, f), acc) in self.model_metrics.iter().zip(model_custom.iter_mut()) {
                acc.add(f(&float_host, &quant_host));
            }
            if whole_model {
                for (k, l) in self.layers.iter().enumerate() {
                    if let Some(reference) = fvals.get(&k) {
                        let (got, raw) = self.dequantized_output(l, &qvals)?;
                        whole[k].add_sample(reference, &got, saturated(&raw));
                        if !mode.per_layer() {
                            self.add_custom(&mut custom[k], l, reference, &got, &raw);
                        }
                    }
                }
            }
            report = self.snapshot(&per_layer, &whole, &model_acc, &custom, &model_custom, mode);
            on_event(DebugEvent::Updated {
                done: s + 1,
                total,
                report: report.clone(),
            });
        }
        Ok(report)
    }

    /// The layer's int8 output, dequantized and raw.
    fn dequantized_output(
        &self,
        l: &LayerInfo,
        qvals: &HashMap<TensorId, CTensor>,
    ) -> Result<(Vec<f64>, Vec<i64>)> {
        let q = &self.model.graph;
        let v = qvals.get(&l.tensor_idx).ok_or_else(|| {
            Error::Internal(format!("layer '{}' was not computed", l.tensor_name))
        })?;
        let deq = dequantize(v, q.tensor(l.tensor_idx).quant.as_ref())?.ok_or_else(|| {
            Error::Internal(format!("layer '{}' has no parameters", l.tensor_name))
        })?;
        let raw: Vec<i64> = host(v)?.iter().map(|&x| x as i64).collect();
        Ok((host(&deq)?, raw))
    }

    /// One sample of every user layer metric for layer `l`.
    fn add_custom(
        &self,
        acc: &mut [NanMean],
        l: &LayerInfo,
        float: &[f64],
        got: &[f64],
        raw: &[i64],
    ) {
        let diff: Vec<f64> = got.iter().zip(float).map(|(q, f)| q - f).collect();
        let values = self.layer_metrics.iter().map(|(_, f)| f(&diff)).chain(
            self.direct_metrics
                .iter()
                .map(|(_, f)| f(float, raw, l.scale as f64, l.zero_point)),
        );
        for (a, v) in acc.iter_mut().zip(values) {
            a.add(v);
        }
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

fn saturated(raw: &[i64]) -> usize {
    raw.iter().filter(|&&x| x <= -128 || x >= 127).count()
}

fn host(t: &CTensor) -> Result<Vec<f64>> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::F64))
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| Error::Internal(e.to_string()))
}

/// An int8 value as float32, `None` when the tensor has no quantization parameters.
fn dequantize(v: &CTensor, q: Option<&QuantParams>) -> Result<Option<CTensor>> {
    let Some(q) = q else { return Ok(None) };
    let ints = v
        .flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::I64))
        .and_then(|t| t.to_vec1::<i64>())
        .map_err(|e| Error::Internal(e.to_string()))?;
    let values = dequantize_values(&ints, v.dims(), q).map_err(|e| Error::Internal(e.0))?;
    CTensor::from_vec(values, v.dims(), v.device())
        .map(Some)
        .map_err(|e| Error::Internal(e.to_string()))
}
