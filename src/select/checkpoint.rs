//! Checkpoints of the full-int8 model's values, so a selective model re-runs only what its
//! denylist changed.
//!
//! A selective model's nodes are the full-int8 model's, node for node, up to its first
//! denylisted op (the quantizer emits ops in the float graph's order and only changes
//! what is kept float). Whatever that common prefix computes is the same for every
//! denylist sharing it: a checkpoint keeps, for every sample, the values live after the
//! prefix, and the next evaluation starts from the latest checkpoint at or before its own
//! first difference. A denylist that changes nothing (a threshold above every layer's
//! metric) starts at the end: its outputs are the full-int8 model's.
//!
//! Values are kept at their model width (int8 as `i8`, not candle's `i64` carrier), and
//! all checkpoints together stay under a memory budget.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use candle_core::{DType as CDType, Device, Tensor as CTensor};

use crate::error::{Error, Result};
use crate::graph::{DType, Graph, TensorId};

/// Every checkpoint together may take at most this much memory.
pub const CHECKPOINT_BUDGET_BYTES: usize = 64 << 20;

/// One tensor value on the host, at its model width.
#[derive(Clone, Debug)]
enum Stored {
    I8(Vec<i8>),
    U8(Vec<u8>),
    I64(Vec<i64>),
    F32(Vec<f32>),
}

impl Stored {
    fn bytes(&self) -> usize {
        match self {
            Stored::I8(v) => v.len(),
            Stored::U8(v) => v.len(),
            Stored::I64(v) => v.len() * 8,
            Stored::F32(v) => v.len() * 4,
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoredValue {
    shape: Vec<usize>,
    value: Stored,
}

impl StoredValue {
    /// `v` (a value of `graph`'s tensor `id`) compactly, `None` for what a checkpoint does
    /// not keep (carriers other than i64 / f32 / u8).
    pub fn capture(graph: &Graph, id: TensorId, v: &CTensor) -> Result<Option<Self>> {
        let fail = |e| {
            Error::candle(
                format!("storing tensor '{}' in a checkpoint", graph.tensor(id).name),
                e,
            )
        };
        let flat = v.flatten_all().map_err(fail)?;
        let value = match (v.dtype(), graph.tensor(id).dtype) {
            (CDType::I64, DType::I8) => Stored::I8(
                flat.to_vec1::<i64>()
                    .map_err(fail)?
                    .into_iter()
                    // int8 values travel as i64 but always fit: the kernels clamp them.
                    .map(|x| x.clamp(-128, 127) as i8)
                    .collect(),
            ),
            (CDType::I64, _) => Stored::I64(flat.to_vec1::<i64>().map_err(fail)?),
            (CDType::F32, _) => Stored::F32(flat.to_vec1::<f32>().map_err(fail)?),
            // int8 tensors observed as the executor's carrier (bit patterns), kept as is:
            // `Executor::run_from` takes them back in that form.
            (CDType::U8, _) => Stored::U8(flat.to_vec1::<u8>().map_err(fail)?),
            _ => return Ok(None),
        };
        Ok(Some(StoredValue {
            shape: v.dims().to_vec(),
            value,
        }))
    }

    pub fn to_tensor(&self, device: &Device) -> Result<CTensor> {
        let shape = self.shape.clone();
        match &self.value {
            Stored::I8(v) => CTensor::from_vec(
                v.iter().map(|&x| x as i64).collect::<Vec<_>>(),
                shape,
                device,
            ),
            Stored::U8(v) => CTensor::from_vec(v.clone(), shape, device),
            Stored::I64(v) => CTensor::from_vec(v.clone(), shape, device),
            Stored::F32(v) => CTensor::from_vec(v.clone(), shape, device),
        }
        .map_err(|e| Error::candle("restoring a checkpoint's value", e))
    }

    fn bytes(&self) -> usize {
        self.value.bytes()
    }
}

/// The values live after the first `position` nodes, for every sample.
#[derive(Debug)]
pub struct Checkpoint {
    pub position: usize,
    pub tensors: Vec<TensorId>,
    /// `samples[s][k]` is sample `s`'s value of `tensors[k]`.
    pub samples: Vec<Vec<StoredValue>>,
}

impl Checkpoint {
    fn bytes(&self) -> usize {
        self.samples
            .iter()
            .flat_map(|s| s.iter().map(StoredValue::bytes))
            .sum()
    }
}

/// The checkpoints made so far, by position.
#[derive(Debug, Default)]
pub struct Checkpoints {
    at: BTreeMap<usize, Arc<Checkpoint>>,
    bytes: usize,
}

impl Checkpoints {
    /// The latest checkpoint at or before `position`.
    pub fn latest_at_or_before(&self, position: usize) -> Option<Arc<Checkpoint>> {
        self.at
            .range(..=position)
            .next_back()
            .map(|(_, c)| Arc::clone(c))
    }

    pub fn has(&self, position: usize) -> bool {
        self.at.contains_key(&position)
    }

    /// Whether a checkpoint of about `bytes` still fits the budget.
    pub fn fits(&self, bytes: usize) -> bool {
        self.bytes.saturating_add(bytes) <= CHECKPOINT_BUDGET_BYTES
    }

    /// Keeps `c` if it fits the budget.
    pub fn insert(&mut self, c: Checkpoint) {
        let bytes = c.bytes();
        if !self.has(c.position) && self.fits(bytes) {
            self.bytes += bytes;
            self.at.insert(c.position, Arc::new(c));
        }
    }
}

/// The position of the first node where `model` differs from `base` (`base.nodes.len()`
/// or more when one is a prefix of the other, and the outputs agree): same op, same
/// tensor ids, and the same dtype, shape, parameters and constant data on every tensor
/// the node touches.
pub fn first_difference(base: &Graph, model: &Graph) -> usize {
    let same_tensor = |id: TensorId| match (base.tensors.get(id), model.tensors.get(id)) {
        (Some(a), Some(b)) => {
            a.dtype == b.dtype && a.shape == b.shape && a.quant == b.quant && a.data == b.data
        }
        _ => false,
    };
    let common = base
        .nodes
        .iter()
        .zip(&model.nodes)
        .position(|(a, b)| {
            !(a.op == b.op
                && a.inputs == b.inputs
                && a.outputs == b.outputs
                && a.inputs
                    .iter()
                    .flatten()
                    .chain(&a.outputs)
                    .all(|&id| same_tensor(id)))
        })
        .unwrap_or(base.nodes.len().min(model.nodes.len()));
    let whole = common == base.nodes.len()
        && common == model.nodes.len()
        && base.outputs == model.outputs
        && base.inputs == model.inputs;
    if whole {
        common
    } else {
        // Equal prefixes of unequal graphs: at least the last node is not shared.
        common.min(base.nodes.len().saturating_sub(1))
    }
}

/// The non-constant tensors computed before node `position` (graph inputs included) that
/// a node at or after it reads, or that are outputs, in either graph (whose first
/// `position` nodes are the same): what a checkpoint at `position` must hold.
pub fn live_at(graphs: &[&Graph], position: usize) -> Vec<TensorId> {
    let Some(first) = graphs.first() else {
        return Vec::new();
    };
    let mut before: HashSet<TensorId> = first.inputs.iter().copied().collect();
    for node in first.nodes.iter().take(position) {
        before.extend(node.outputs.iter().copied());
    }
    let mut live: Vec<TensorId> = Vec::new();
    let mut seen = HashSet::new();
    for g in graphs {
        let later = g
            .nodes
            .iter()
            .skip(position)
            .flat_map(|n| n.inputs.iter().flatten().copied())
            .chain(g.outputs.iter().copied());
        for id in later {
            let constant = g.tensors.get(id).is_none_or(|t| t.is_constant());
            if !constant && before.contains(&id) && seen.insert(id) {
                live.push(id);
            }
        }
    }
    live.sort_unstable();
    live
}

/// Whether a checkpoint holding `tensors` at `position` feeds everything `model` reads
/// from there on.
pub fn covers(model: &Graph, position: usize, tensors: &[TensorId]) -> bool {
    let needed = live_at(&[model], position);
    needed.iter().all(|id| tensors.binary_search(id).is_ok())
}
