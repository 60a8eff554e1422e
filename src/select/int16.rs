//! Mixed int8 / int16 models: which ops a rule may put in 16x8, and what a mixed model
//! costs (int16 ops, int16 islands, activation memory).
//!
//! An op can compute in 16x8 only where qdbg runs its 16x8 kernel bit-exact with LiteRT
//! (`ops::has_int16_kernel`) and LiteRT accepts it in 16x8 (see `kernels::int16`'s module
//! docs for what LiteRT refuses). Rules that pick ops loosely (a metric, first/last N, a
//! glob or regex) leave the others int8 and report them; a rule that names such an op
//! exactly (`name:`, `op:`) is refused (see `denylist::resolve`).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::denylist::Resolved;
use crate::graph::{DType, Graph, Op, TensorId};
use crate::quant::calibration::Calibration;
use crate::quant::plan::ActivationPlan;
use crate::quant::quantize::QuantizedModel;

/// A plan with the ops of some int16 rules computing in 16x8.
pub struct Int16Plan {
    pub plan: ActivationPlan,
    /// The float-graph positions computing in 16x8.
    pub int16: BTreeSet<usize>,
    /// Ops the rules picked that stay int8, each with why.
    pub refused: Vec<(usize, String)>,
}

/// `plan` with the ops `resolved` puts in 16x8 computing in 16x8 (their int16 parameters
/// from `calibration`, as TensorFlow's 16x8 quantizer computes them).
pub fn plan_int16(
    plan: &ActivationPlan,
    graph: &Graph,
    calibration: &Calibration,
    resolved: &Resolved,
) -> Int16Plan {
    let wanted: HashSet<usize> = resolved.int16.iter().copied().collect();
    let plan = plan.clone().with_int16_ops(graph, calibration, &wanted);
    let int16: BTreeSet<usize> = resolved
        .int16
        .iter()
        .copied()
        .filter(|p| plan.int16.ops.contains(p))
        .collect();
    let mut refused = resolved.int16_refused.clone();
    for &p in resolved.int16.difference(&int16) {
        refused.push((
            p,
            "a tensor it reads or writes has no calibrated range".into(),
        ));
    }
    refused.sort_by_key(|(p, _)| *p);
    Int16Plan {
        plan,
        int16,
        refused,
    }
}

/// Ops LiteRT 2.3.0 refuses to run in 16x8 (its kernels' Prepare fails on int16
/// activations): no rule can make them int16, whatever qdbg gains later.
const LITERT_REFUSES_INT16: &[&str] = &[
    "HARD_SWISH",
    "RELU_N1_TO_1",
    "RELU_0_TO_1",
    "SQUARED_DIFFERENCE",
    "DEPTH_TO_SPACE",
    "SPACE_TO_DEPTH",
];

/// Why the op at float-graph position `pos` cannot compute in 16x8, or `None` if it can.
pub fn int16_refusal(graph: &Graph, pos: usize) -> Option<String> {
    let node = &graph.nodes[pos];
    let name = node.op.display_name();
    if node.op.custom_options().is_some() {
        return Some(format!(
            "{name} is a custom op, which LiteRT runs in float only"
        ));
    }
    if LITERT_REFUSES_INT16.contains(&name) {
        return Some(format!("LiteRT has no 16x8 kernel for {name}"));
    }
    if !crate::ops::has_int16_kernel(&node.op) {
        return Some(format!("qdbg has no 16x8 kernel for {name} yet"));
    }
    // LiteRT's 16x8 CONV_2D refuses a missing bias (its int8 one takes it).
    if matches!(node.op, Op::Conv2d(_)) && node.input(2).is_none() {
        return Some("LiteRT's 16x8 CONV_2D needs a bias, and this one has none".into());
    }
    None
}

/// Whether a node of a quantized model computes in 16x8 (its first output is int16).
fn computes_int16(graph: &Graph, pos: usize) -> bool {
    let node = &graph.nodes[pos];
    !matches!(node.op, Op::Quantize | Op::Dequantize)
        && node
            .outputs
            .first()
            .is_some_and(|&id| graph.tensor(id).dtype == DType::I16)
}

/// The connected runs of int16 ops in `model`: each is entered and left through a
/// requantizing QUANTIZE (or DEQUANTIZE), so fewer islands means fewer conversions.
pub fn int16_islands(model: &QuantizedModel) -> usize {
    let g = &model.graph;
    let int16: Vec<bool> = (0..g.nodes.len()).map(|p| computes_int16(g, p)).collect();
    let mut producer: HashMap<TensorId, usize> = HashMap::new();
    for (pos, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            producer.insert(o, pos);
        }
    }
    let mut island: Vec<usize> = (0..g.nodes.len()).collect();
    fn root(island: &mut [usize], mut x: usize) -> usize {
        while island[x] != x {
            island[x] = island[island[x]];
            x = island[x];
        }
        x
    }
    for (pos, n) in g.nodes.iter().enumerate() {
        if !int16[pos] {
            continue;
        }
        for id in n.inputs.iter().flatten() {
            if let Some(&p) = producer.get(id).filter(|&&p| int16[p]) {
                let (a, b) = (root(&mut island, pos), root(&mut island, p));
                island[a] = b;
            }
        }
    }
    let roots: std::collections::HashSet<usize> = (0..g.nodes.len())
        .filter(|&p| int16[p])
        .map(|p| root(&mut island, p))
        .collect();
    roots.len()
}

/// The ops of `model` computing in 16x8.
pub fn int16_ops(model: &QuantizedModel) -> usize {
    (0..model.graph.nodes.len())
        .filter(|&p| computes_int16(&model.graph, p))
        .count()
}

/// The activation memory int16 adds over int8: one more byte for every value of every
/// int16 activation tensor (weights stay int8; biases are in the file size). Tensors
/// with a zero (unknown) dimension count it as one.
pub fn int16_activation_bytes(model: &QuantizedModel) -> usize {
    let g = &model.graph;
    g.tensors
        .iter()
        .filter(|t| t.dtype == DType::I16 && !t.is_constant())
        .map(|t| t.shape.iter().map(|&d| d.max(1)).product::<usize>())
        .sum()
}

/// LiteRT's latency of one op in 16x8 relative to int8, per op type, as
/// `scripts/int16_latency/measure.py` measured it (its header names the machine).
const LATENCY_TABLE: &str = include_str!("int16_latency.csv");

/// The table's `default_ratio` column (LiteRT's default runtime, where XNNPACK runs the
/// int8 op and has no 16x8 kernels: what a deployed model pays) by op type.
fn latency_ratios() -> &'static HashMap<String, f64> {
    static RATIOS: std::sync::OnceLock<HashMap<String, f64>> = std::sync::OnceLock::new();
    RATIOS.get_or_init(|| {
        let mut lines = LATENCY_TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let column = header.iter().position(|&h| h == "default_ratio");
        lines
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                let ratio = cells.get(column?)?.trim().parse::<f64>().ok()?;
                (ratio.is_finite() && ratio > 0.0).then(|| (cells[0].to_string(), ratio))
            })
            .collect()
    })
}

/// LiteRT's 16x8 / int8 latency ratio for an op type; 1 for a type the table lacks
/// (the data-movement ops, which only move codes).
pub fn latency_ratio(op: &str) -> f64 {
    latency_ratios().get(op).copied().unwrap_or(1.0)
}

/// How much work an op does, as a weight for the latency estimate: multiply-adds for
/// the ops with a weight matrix (output values times the filter values each one reads),
/// else the values it reads or writes, whichever is more.
fn work(graph: &Graph, pos: usize) -> f64 {
    let node = &graph.nodes[pos];
    let values = |id: TensorId| graph.tensor(id).shape.iter().product::<usize>() as f64;
    let out: f64 = node.outputs.iter().map(|&id| values(id)).sum();
    let filter = node.input(1).filter(|&id| {
        let t = graph.tensor(id);
        t.is_constant() && t.shape.len() >= 2
    });
    if let (Some(filter), Some(&first)) = (filter, node.outputs.first()) {
        if let Some(&channels) = graph.tensor(first).shape.last() {
            if channels > 0 {
                return out * values(filter) / channels as f64;
            }
        }
    }
    let read: f64 = node.inputs.iter().flatten().map(|&id| values(id)).sum();
    out.max(read)
}

/// The estimated latency of `model` relative to the same model all in int8: each op's
/// work weighted by LiteRT's 16x8 / int8 ratio for its type where it computes in 16x8,
/// plus the requantizing QUANTIZEs at island edges (int8 elementwise work each). Float
/// ops count as int8: this compares int16 against int8, not float.
pub fn estimated_latency_vs_int8(model: &QuantizedModel) -> f64 {
    let g = &model.graph;
    let integer = |id: TensorId| matches!(g.tensor(id).dtype, DType::I8 | DType::I16);
    let (mut int8, mut mixed) = (0.0, 0.0);
    for (pos, node) in g.nodes.iter().enumerate() {
        let w = work(g, pos);
        if matches!(node.op, Op::Quantize | Op::Dequantize) {
            // Only the integer-to-integer requantizes are new; float borders exist in
            // the all-int8 model too.
            let retypes = match (node.input(0), node.outputs.first()) {
                (Some(i), Some(&o)) if node.op == Op::Quantize => {
                    integer(i) && integer(o) && g.tensor(i).dtype != g.tensor(o).dtype
                }
                _ => false,
            };
            if retypes {
                mixed += w;
            }
            continue;
        }
        int8 += w;
        mixed += if computes_int16(g, pos) {
            w * latency_ratio(node.op.display_name())
        } else {
            w
        };
    }
    if int8 > 0.0 {
        mixed / int8
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_table_reads_and_covers_the_ops_that_cost() {
        for op in [
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "FULLY_CONNECTED",
            "ADD",
            "MUL",
        ] {
            let r = latency_ratio(op);
            assert!(r.is_finite() && r > 0.0 && r != 1.0, "{op}: {r}");
        }
        assert_eq!(latency_ratio("RESHAPE"), 1.0);
    }
}
