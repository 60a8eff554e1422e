//! Calibrate once, try many denylists: everything a denylist experiment needs (the float
//! graph, the calibrated activation plan, the data) held together, so that a new set of rules
//! only re-plans, re-quantizes and re-runs the model-level comparison.
//!
//! Shared by `qdbg select` and the dashboard; knows nothing of either.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::Device;
use rayon::prelude::*;

use super::metrics::{ModelAccumulator, ModelMetrics};
use super::verify::LayerStats;
#[cfg(doc)]
use super::verify::Debugger;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::exec::{tensor_from_sample, Executor};
use crate::graph::Graph;
use crate::quant::denylist::{resolve, Rule};
use crate::quant::plan::ActivationPlan;
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
    /// The float model's final outputs for samples `0..len`, filled by the first
    /// evaluations: they are the same for every denylist, so each later evaluation runs
    /// only the selective model.
    float_outputs: Mutex<Vec<Arc<Vec<Vec<f32>>>>>,
}

/// The float outputs kept for all samples may take at most this much memory; beyond it
/// (models with image-sized outputs) every evaluation runs the float model again.
const FLOAT_CACHE_BYTES: usize = 64 << 20;

/// What a denylist costs, before any data runs through it.
pub struct Selection {
    pub rules: Vec<Rule>,
    /// Float-graph positions the rules keep float.
    pub keep_float: BTreeSet<usize>,
    /// Rules (as written) that matched no op.
    pub unmatched: Vec<String>,
    pub model: QuantizedModel,
    /// The selective model as a `.tflite` file.
    pub bytes: Vec<u8>,
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

    /// Int8 ops of the selective model (QUANTIZE/DEQUANTIZE at borders not counted).
    pub fn int8_ops(&self) -> usize {
        self.model
            .node_origin
            .iter()
            .filter(|o| o.is_some())
            .count()
            .saturating_sub(self.float_ops())
    }

    /// Plain words for a denylist that leaves nothing quantized, `None` otherwise.
    pub fn nothing_quantized(&self) -> Option<String> {
        (self.int8_ops() == 0 && !self.keep_float.is_empty()).then(|| {
            format!(
                "the denylist keeps all {} quantizable ops float, so the selective model is \
                 the float model plus conversions; loosen the rules (a higher threshold, \
                 fewer first/last layers)",
                self.keep_float.len()
            )
        })
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
        Selector {
            graph,
            original,
            plan,
            dataset,
            labels,
            device,
            float_outputs: Mutex::new(Vec::new()),
        }
    }

    /// Resolves `rules` against the float graph and the full-int8 run's per-layer statistics
    /// (`layers`: first/last N and metric expressions need them), then quantizes and
    /// serialises the selective model.
    pub fn select(&self, rules: &[Rule], layers: &[LayerStats]) -> Result<Selection> {
        let resolved = resolve(&self.graph, rules, layers)?;
        let model = self.quantize(resolved.keep_float.iter().copied().collect())?;
        let bytes =
            crate::tflite::model_bytes(&model.graph, self.original.as_deref().map(|v| &v[..]))?;
        Ok(Selection {
            rules: rules.to_vec(),
            keep_float: resolved.keep_float,
            unmatched: resolved.unmatched,
            model,
            bytes,
        })
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
    /// The float model's outputs are remembered (see [`Selector`]), and samples merge in
    /// sample order: the metrics are the same whatever the number of threads, and the same
    /// as [`Debugger::run`]'s model-level ones.
    pub fn evaluate(
        &self,
        model: &QuantizedModel,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ModelMetrics> {
        let quant = Executor::new(&model.graph, &self.device)?;
        // Built only when some sample's float outputs are not remembered yet.
        let mut float: Option<Executor> = None;
        let labels = self.labels.as_deref().map(Vec::as_slice);
        let total = self.dataset.num_samples();
        let mut acc = ModelAccumulator::default();
        let chunk = rayon::current_num_threads().max(1);
        let mut done = 0;
        while done < total && !cancel.load(Ordering::Relaxed) {
            let end = (done + chunk).min(total);
            let known: Vec<Option<Arc<Vec<Vec<f32>>>>> = {
                let cache = self.lock_float_outputs();
                (done..end).map(|s| cache.get(s).cloned()).collect()
            };
            if float.is_none() && known.iter().any(Option::is_none) {
                float = Some(Executor::new(&self.graph, &self.device)?);
            }
            let outcomes: Vec<Result<Option<(Vec<Vec<f32>>, Vec<f64>)>>> = (done..end)
                .into_par_iter()
                .zip(known.par_iter())
                .map(|(s, known)| {
                    if cancel.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    let inputs = self.sample_inputs(s)?;
                    let quant_out = first_output(&quant.run(&inputs)?)?;
                    let float_out = match (known, &float) {
                        (Some(_), _) => Vec::new(),
                        (None, Some(exec)) => exec
                            .run(&inputs)?
                            .iter()
                            .map(host_f32)
                            .collect::<Result<Vec<_>>>()?,
                        (None, None) => {
                            return Err(Error::Internal("no float executor".into()));
                        }
                    };
                    Ok(Some((float_out, quant_out)))
                })
                .collect();
            let mut stopped = false;
            for ((s, outcome), known) in (done..end).zip(outcomes).zip(known) {
                let Some((computed, quant_out)) = outcome? else {
                    stopped = true;
                    break;
                };
                let float_out = match known {
                    Some(f) => f,
                    None => {
                        let f = Arc::new(computed);
                        self.remember_float_outputs(s, &f);
                        f
                    }
                };
                if let Some(f) = float_out.first() {
                    let f: Vec<f64> = f.iter().map(|&v| v as f64).collect();
                    acc.add_sample(&f, &quant_out, labels.and_then(|l| l.get(s).copied()));
                }
                done += 1;
            }
            progress(done, total);
            if stopped {
                break;
            }
        }
        Ok(acc.metrics())
    }

    fn sample_inputs(&self, s: usize) -> Result<Vec<candle_core::Tensor>> {
        self.dataset
            .sample(s)
            .iter()
            .map(|x| tensor_from_sample(x, &self.device))
            .collect()
    }

    fn lock_float_outputs(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Vec<Vec<f32>>>>> {
        // The cache only ever grows by whole samples, so a panic elsewhere cannot leave it
        // half-written: a poisoned lock is still a consistent cache.
        self.float_outputs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps sample `s`'s float outputs if they extend the remembered prefix and the whole
    /// dataset's outputs fit [`FLOAT_CACHE_BYTES`].
    fn remember_float_outputs(&self, s: usize, outputs: &Arc<Vec<Vec<f32>>>) {
        let per_sample: usize = outputs.iter().map(|o| o.len() * 4).sum();
        if per_sample.saturating_mul(self.dataset.num_samples()) > FLOAT_CACHE_BYTES {
            return;
        }
        let mut cache = self.lock_float_outputs();
        if cache.len() == s {
            cache.push(Arc::clone(outputs));
        }
    }
}

/// A model's first output (the prediction, for classifiers) on the host.
fn first_output(outputs: &[candle_core::Tensor]) -> Result<Vec<f64>> {
    outputs
        .first()
        .map(|t| host_f32(t).map(|v| v.into_iter().map(f64::from).collect()))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn host_f32(t: &candle_core::Tensor) -> Result<Vec<f32>> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| Error::Internal(e.to_string()))
}
