//! Debugging an int8 model qdbg did not make (TensorFlow's converter, another tool):
//! pair each of its ops with the float model's op it computes, so the debugger can compare
//! them as it compares its own quantization. Then the kernels are the only variable: the
//! same int8 file gives the same per-layer numbers in qdbg and in TensorFlow's debugger.

use std::collections::{HashMap, HashSet};

use super::quantize::{FloatReason, QuantizedModel};
use crate::error::{Error, Result};
use crate::graph::{FusedActivation, Graph, Op, Padding, UnaryKind};
use crate::ops::quantized::node_is_quantized;

/// Pairs the ops of `int8` (a quantized model of `float`) with `float`'s ops: by op type and
/// output tensor name (converters keep the float model's names), else the next unpaired op
/// of the same type in execution order. QUANTIZE / DEQUANTIZE at borders pair with nothing.
///
/// TensorFlow's converter rewrites a float model it did not make while quantizing it: a
/// standalone RELU folded into the op before it as a fused activation, a PAD folded into
/// the convolution it feeds (SAME padding), a STRIDED_SLICE with unit strides written as
/// SLICE. Paired op for op with the float model as it stands, those ops would be compared
/// against the wrong float op (a fused ADD + RELU against the float ADD alone). So the float
/// model is first rewritten the same way where the int8 model shows the rewrite
/// ([`as_converter_rewrote`]); the float values are unchanged, and the debugger must run
/// the returned float graph, which the pairing refers to.
pub fn pair_with_float(float: &Graph, int8: Graph) -> Result<(Graph, QuantizedModel)> {
    let float = as_converter_rewrote(float, &int8);
    let model = pair(&float, int8)?;
    Ok((float, model))
}

/// Op names that pair with each other: the converter writes a STRIDED_SLICE whose strides
/// are all 1 as a SLICE.
fn pairable(float_op: &str, int8_op: &str) -> bool {
    float_op == int8_op || (float_op == "STRIDED_SLICE" && int8_op == "SLICE")
}

/// How many ops of type `name` `graph` has.
fn count_ops(graph: &Graph, name: &str) -> usize {
    graph.nodes.iter().filter(|n| n.op.name() == name).count()
}

/// `float` with the rewrites TensorFlow's converter made in `int8` (see [`pair_with_float`]).
/// A rewrite is applied only where `int8` has fewer ops of the rewritten type than `float`,
/// and only as many times as that difference.
pub fn as_converter_rewrote(float: &Graph, int8: &Graph) -> Graph {
    let mut g = float.clone();
    fuse_activations(&mut g, int8);
    fold_pads(&mut g, int8);
    g
}

/// Readers of each tensor (how many op inputs name it).
fn reader_counts(g: &Graph) -> Vec<usize> {
    let mut readers = vec![0usize; g.tensors.len()];
    for node in &g.nodes {
        for &id in node.inputs.iter().flatten() {
            readers[id] += 1;
        }
    }
    readers
}

/// RELU / RELU6 / RELU_N1_TO_1 folded into the op that produces their input, when that op
/// can carry a fused activation, has none, and nothing else reads its output.
fn fuse_activations(g: &mut Graph, int8: &Graph) {
    for (kind, activation) in [
        (UnaryKind::Relu, FusedActivation::Relu),
        (UnaryKind::Relu6, FusedActivation::Relu6),
        (UnaryKind::ReluN1To1, FusedActivation::ReluN1To1),
    ] {
        let name = Op::Unary(kind).name();
        let mut budget = count_ops(g, name).saturating_sub(count_ops(int8, name));
        let mut pos = 0;
        while budget > 0 && pos < g.nodes.len() {
            let readers = reader_counts(g);
            let fusable = (g.nodes[pos].op == Op::Unary(kind))
                .then(|| g.nodes[pos].input(0))
                .flatten()
                .filter(|&x| readers[x] == 1 && !g.outputs.contains(&x))
                .and_then(|x| g.nodes.iter().position(|n| n.outputs == [x]))
                .filter(|&p| {
                    fused_activation_mut(&mut g.nodes[p].op)
                        .is_some_and(|a| *a == FusedActivation::None)
                });
            let Some(producer) = fusable else {
                pos += 1;
                continue;
            };
            let out = g.nodes[pos].outputs[0];
            if let Some(a) = fused_activation_mut(&mut g.nodes[producer].op) {
                *a = activation;
            }
            g.nodes[producer].outputs[0] = out;
            g.nodes.remove(pos);
            budget -= 1;
        }
    }
}

/// The fused activation of ops that carry one in TFLite.
fn fused_activation_mut(op: &mut Op) -> Option<&mut FusedActivation> {
    match op {
        Op::Conv2d(a) => Some(&mut a.activation),
        Op::DepthwiseConv2d(a) => Some(&mut a.activation),
        Op::FullyConnected(a) => Some(&mut a.activation),
        Op::Binary { activation, .. } => Some(activation),
        _ => None,
    }
}

/// A PAD of zeros on the height and width only, read only by a VALID convolution (or
/// depthwise convolution) for which those are exactly SAME's paddings, folded into it.
fn fold_pads(g: &mut Graph, int8: &Graph) {
    let mut budget = count_ops(g, "PAD").saturating_sub(count_ops(int8, "PAD"));
    let mut pos = 0;
    while budget > 0 && pos < g.nodes.len() {
        let readers = reader_counts(g);
        let foldable = (g.nodes[pos].op == Op::Pad)
            .then(|| same_as_pad(g, pos, &readers))
            .flatten();
        let Some(conv) = foldable else {
            pos += 1;
            continue;
        };
        let source = g.nodes[pos].input(0);
        match &mut g.nodes[conv].op {
            Op::Conv2d(a) => a.padding = Padding::Same,
            Op::DepthwiseConv2d(a) => a.padding = Padding::Same,
            _ => unreachable!("same_as_pad returns convolutions only"),
        }
        g.nodes[conv].inputs[0] = source;
        g.nodes.remove(pos);
        budget -= 1;
    }
}

/// The position of the convolution that PAD node `pos` feeds, when folding the PAD into it
/// as SAME padding computes the same values.
fn same_as_pad(g: &Graph, pos: usize, readers: &[usize]) -> Option<usize> {
    let pad = &g.nodes[pos];
    let (input, paddings, out) = (pad.input(0)?, pad.input(1)?, *pad.outputs.first()?);
    if readers[out] != 1 || g.outputs.contains(&out) {
        return None;
    }
    let amounts = g.tensor(paddings).data.as_ref()?.to_i64()?;
    let shape = &g.tensor(input).shape;
    if shape.len() != 4 || amounts.len() != 8 || amounts[..2] != [0, 0] || amounts[6..] != [0, 0] {
        return None;
    }
    let conv = g.nodes.iter().position(|n| {
        n.input(0) == Some(out) && n.inputs.iter().flatten().filter(|&&i| i == out).count() == 1
    })?;
    let node = &g.nodes[conv];
    let (stride, dilation, padding) = match &node.op {
        Op::Conv2d(a) => (
            (a.stride_h, a.stride_w),
            (a.dilation_h, a.dilation_w),
            a.padding,
        ),
        Op::DepthwiseConv2d(a) => (
            (a.stride_h, a.stride_w),
            (a.dilation_h, a.dilation_w),
            a.padding,
        ),
        _ => return None,
    };
    let filter = &g.tensor(node.input(1)?).shape;
    if padding != Padding::Valid || filter.len() != 4 {
        return None;
    }
    let same = |size: usize, kernel: usize, stride: usize, dilation: usize| {
        crate::ops::spatial_padding(Padding::Same, size, kernel, stride, dilation)
            .ok()
            .map(|(before, after, _)| [before as i64, after as i64])
    };
    let want_h = same(shape[1], filter[1], stride.0, dilation.0)?;
    let want_w = same(shape[2], filter[2], stride.1, dilation.1)?;
    (amounts[2..4] == want_h && amounts[4..6] == want_w).then_some(conv)
}

fn pair(float: &Graph, int8: Graph) -> Result<QuantizedModel> {
    let mismatch = |reason: String| Error::Data {
        path: int8.source.clone(),
        reason,
    };
    if int8.inputs.len() != float.inputs.len() || int8.outputs.len() != float.outputs.len() {
        return Err(mismatch(format!(
            "has {} inputs and {} outputs, the float model {} and {}: are they the same model?",
            int8.inputs.len(),
            int8.outputs.len(),
            float.inputs.len(),
            float.outputs.len()
        )));
    }
    for (&q, &f) in int8.inputs.iter().zip(&float.inputs) {
        let (qt, ft) = (int8.tensor(q), float.tensor(f));
        if !qt.dtype.is_float() || qt.shape != ft.shape {
            return Err(mismatch(format!(
                "input '{}' is {:?} {:?}, the float model's '{}' is {:?} {:?}; qdbg debugs int8 \
                 models with float inputs and outputs (convert with the default \
                 inference_input_type / inference_output_type)",
                qt.name, qt.dtype, qt.shape, ft.name, ft.dtype, ft.shape
            )));
        }
    }

    let mut by_name: HashMap<(&str, &str), usize> = HashMap::new();
    for (pos, node) in float.nodes.iter().enumerate() {
        if let Some(&out) = node.outputs.first() {
            by_name
                .entry((node.op.name(), float.tensor(out).name.as_str()))
                .or_insert(pos);
        }
    }
    let mut used: HashSet<usize> = HashSet::new();
    let mut node_origin = Vec::with_capacity(int8.nodes.len());
    let mut twin_of = HashMap::new();
    let mut float_ops = Vec::new();
    for (&q, &f) in int8.inputs.iter().zip(&float.inputs) {
        twin_of.insert(q, f);
    }
    for (index, node) in int8.nodes.iter().enumerate() {
        if matches!(node.op, Op::Quantize | Op::Dequantize) {
            node_origin.push(None);
            continue;
        }
        let name = node
            .outputs
            .first()
            .map_or("", |&o| int8.tensor(o).name.as_str());
        let named = by_name
            .get(&(node.op.name(), name))
            .copied()
            .filter(|p| !used.contains(p));
        let twin = named.or_else(|| {
            float
                .nodes
                .iter()
                .enumerate()
                .position(|(p, n)| pairable(n.op.name(), node.op.name()) && !used.contains(&p))
        });
        let Some(twin) = twin else {
            return Err(mismatch(format!(
                "op #{index} {} '{name}' has no {} left to pair with in the float model {}: \
                 is the int8 file a quantization of this float model?",
                node.op.name(),
                node.op.name(),
                float.source.display()
            )));
        };
        used.insert(twin);
        node_origin.push(Some(twin));
        for (&q_out, &f_out) in node.outputs.iter().zip(&float.nodes[twin].outputs) {
            twin_of.insert(q_out, f_out);
        }
        if !node_is_quantized(&int8, node) {
            float_ops.push((twin, FloatReason::FloatInGivenModel));
        }
    }
    Ok(QuantizedModel {
        graph: int8,
        node_origin,
        twin_of,
        float_ops,
    })
}
