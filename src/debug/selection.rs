//! Calibrate once, try many denylists: everything a denylist experiment needs (the float
//! graph, the calibrated activation plan, the data) held together, so that a new set of rules
//! only re-plans, re-quantizes and re-runs the model-level comparison.
//!
//! Shared by `qdbg select` and the dashboard; knows nothing of either.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::Device;

use super::metrics::ModelMetrics;
use super::verify::{DebugEvent, Debugger, LayerStats, VerifyMode};
use crate::data::Dataset;
use crate::error::Result;
use crate::graph::Graph;
use crate::quant::denylist::{resolve, Rule};
use crate::quant::plan::ActivationPlan;
use crate::quant::quantize::{
    float_islands, quantize_graph, FloatReason, QuantizeOptions, QuantizedModel,
};

/// The fixed inputs of every denylist experiment on one model and dataset.
pub struct Selector {
    pub graph: Arc<Graph>,
    /// The float model file's bytes: the writer carries its metadata and signatures over.
    pub original: Option<Arc<Vec<u8>>>,
    pub plan: Arc<ActivationPlan>,
    pub dataset: Arc<Dataset>,
    pub labels: Option<Arc<Vec<i64>>>,
    pub device: Device,
}

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
}

impl Selector {
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
    /// outputs (and accuracy, with labels). `progress` gets (done, total) after each sample;
    /// `cancel` stops before the next sample, keeping what was measured.
    pub fn evaluate(
        &self,
        model: &QuantizedModel,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ModelMetrics> {
        let report = Debugger::new(&self.graph, model, &self.device)?.run(
            &self.dataset,
            self.labels.as_deref().map(Vec::as_slice),
            VerifyMode::ModelOnly,
            cancel,
            &mut |event| {
                if let DebugEvent::Updated { done, total, .. } = event {
                    progress(done, total);
                }
            },
        )?;
        Ok(report.model)
    }
}
