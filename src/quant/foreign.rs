//! Debugging an int8 model qdbg did not make (TensorFlow's converter, another tool):
//! pair each of its ops with the float model's op it computes, so the debugger can compare
//! them as it compares its own quantization. Then the kernels are the only variable: the
//! same int8 file gives the same per-layer numbers in qdbg and in TensorFlow's debugger.

use std::collections::{HashMap, HashSet};

use super::quantize::{FloatReason, QuantizedModel};
use crate::error::{Error, Result};
use crate::graph::{Graph, Op};
use crate::ops::quantized::node_is_quantized;

/// Pairs the ops of `int8` (a quantized model of `float`) with `float`'s ops: by op type and
/// output tensor name (converters keep the float model's names), else the next unpaired op
/// of the same type in execution order. QUANTIZE / DEQUANTIZE at borders pair with nothing.
pub fn pair_with_float(float: &Graph, int8: Graph) -> Result<QuantizedModel> {
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
                .position(|(p, n)| n.op.name() == node.op.name() && !used.contains(&p))
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
