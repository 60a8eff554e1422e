//! Activation quantization parameters for a whole graph, following the TFLite int8 spec
//! the way TensorFlow's converter applies it:
//! - every activation gets asymmetric int8 parameters from its calibrated range;
//! - SOFTMAX and LOGISTIC outputs are fixed at (1/256, -128), TANH at (1/128, 0);
//! - ops that only move data (pooling, reshapes, slicing, padding, resizing, ...) give
//!   their output the input's parameters;
//! - MAXIMUM, MINIMUM and CONCATENATION compare or copy raw int8 values, so their inputs
//!   take the output's parameters.
//!
//! One more rule reproduces a quirk of TensorFlow's calibrator rather than the spec: when
//! an ADD, SUB or MUL can run in place (an input of the output's shape that no later op
//! reads), LiteRT writes the result into that input's buffer, and the calibrator, which
//! reads op inputs after the op has run, folds the op's output range into the input's
//! (not when the op writes a model output, which always gets a buffer of its own).
//! qdbg widens the same ranges so that its parameters equal the converter's (see
//! `tensorflow_inplace_widening`); in MobileNetV3 this touches the residual branches.

use std::collections::HashMap;

use super::calibration::{Calibration, TensorRange};
use super::params::activation_params;
use crate::graph::{BinaryKind, Graph, Op, QuantParams, TensorId, UnaryKind};

/// Quantization parameters per activation tensor id.
pub type ActivationPlan = HashMap<TensorId, QuantParams>;

/// Ops whose output shares its (first data) input's parameters.
fn passes_input_params(op: &Op) -> Option<usize> {
    match op {
        Op::Pool2d { .. }
        | Op::Reshape
        | Op::Squeeze { .. }
        | Op::ExpandDims
        | Op::Transpose
        | Op::Slice
        | Op::StridedSlice(_)
        | Op::Gather { .. }
        | Op::Pad
        | Op::PadV2
        | Op::ResizeBilinear(_)
        | Op::ResizeNearestNeighbor(_)
        | Op::DepthToSpace { .. }
        | Op::SpaceToDepth { .. }
        // LiteRT's int8 REDUCE_MAX insists on equal input and output parameters.
        | Op::Reduce {
            kind: crate::graph::ReduceKind::Max,
            ..
        } => Some(0),
        // SPLIT's first input is the axis.
        Op::Split { .. } => Some(1),
        _ => None,
    }
}

/// Ops whose inputs must share the output's parameters.
fn takes_output_params(op: &Op) -> bool {
    matches!(
        op,
        Op::Concatenation { .. }
            | Op::Binary {
                kind: crate::graph::BinaryKind::Maximum | crate::graph::BinaryKind::Minimum,
                ..
            }
    )
}

fn fixed_output_params(op: &Op) -> Option<QuantParams> {
    match op {
        Op::Softmax { .. } | Op::Unary(UnaryKind::Logistic) => {
            Some(QuantParams::per_tensor(1.0 / 256.0, -128))
        }
        Op::Unary(UnaryKind::Tanh) => Some(QuantParams::per_tensor(1.0 / 128.0, 0)),
        _ => None,
    }
}

/// Ranges as TensorFlow's calibrator records them: see the module docs. When both inputs
/// qualify, the second is the one shared (observed on MobileNetV3's residual ADDs).
fn tensorflow_inplace_widening(
    graph: &Graph,
    calibration: &Calibration,
) -> HashMap<TensorId, TensorRange> {
    let mut ranges: HashMap<TensorId, TensorRange> = calibration
        .ranges
        .iter()
        .map(|(&id, r)| (id, r.range))
        .collect();
    let mut last_reader = vec![None; graph.tensors.len()];
    for (pos, node) in graph.nodes.iter().enumerate() {
        for &id in node.inputs.iter().flatten() {
            last_reader[id] = Some(pos);
        }
    }
    for (pos, node) in graph.nodes.iter().enumerate() {
        let in_place_kind = matches!(
            node.op,
            Op::Binary {
                kind: BinaryKind::Add | BinaryKind::Sub | BinaryKind::Mul,
                ..
            }
        );
        if !in_place_kind {
            continue;
        }
        let out = node.outputs[0];
        // A model output gets a buffer of its own: nothing runs in place into it.
        if graph.outputs.contains(&out) {
            continue;
        }
        let shared = node.inputs.iter().flatten().rev().find(|&&id| {
            let t = graph.tensor(id);
            !t.is_constant()
                && t.shape == graph.tensor(out).shape
                && last_reader[id] == Some(pos)
                && !graph.inputs.contains(&id)
                && !graph.outputs.contains(&id)
        });
        if let (Some(&id), Some(&out_range)) = (shared, ranges.get(&out)) {
            if let Some(r) = ranges.get_mut(&id) {
                r.min = r.min.min(out_range.min);
                r.max = r.max.max(out_range.max);
            }
        }
    }
    ranges
}

pub fn plan_activations(graph: &Graph, calibration: &Calibration) -> ActivationPlan {
    let mut plan: ActivationPlan = tensorflow_inplace_widening(graph, calibration)
        .into_iter()
        .filter(|(id, _)| *id < graph.tensors.len() && graph.tensor(*id).dtype.is_float())
        .map(|(id, r)| (id, activation_params(r.min, r.max)))
        .collect();
    let mut fixed = std::collections::HashSet::new();
    for node in &graph.nodes {
        if let Some(fixed_params) = fixed_output_params(&node.op) {
            for &out in &node.outputs {
                plan.insert(out, fixed_params.clone());
                fixed.insert(out);
            }
        } else if let Some(i) = passes_input_params(&node.op) {
            if let Some(params) = node.input(i).and_then(|id| plan.get(&id)).cloned() {
                for &out in &node.outputs {
                    plan.insert(out, params.clone());
                }
            }
        }
    }
    for node in graph.nodes.iter().rev() {
        if !takes_output_params(&node.op) {
            continue;
        }
        let Some(params) = plan.get(&node.outputs[0]).cloned() else {
            continue;
        };
        for &input in node.inputs.iter().flatten() {
            // Fixed-range outputs keep their parameters; the op rescales them.
            if !graph.tensor(input).is_constant() && !fixed.contains(&input) {
                plan.insert(input, params.clone());
            }
        }
    }
    // Argmax indices are float32 only in type: they carry integer bits, which
    // MaxUnpooling2D reads back. They are never quantized (both ops stay float, so
    // nothing converts them at a border either).
    for node in &graph.nodes {
        if let (Op::MaxPoolingWithArgmax2D(_), Some(indices)) = (&node.op, node.outputs.get(1)) {
            plan.remove(indices);
        }
    }
    plan
}
