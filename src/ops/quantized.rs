//! Which nodes compute on quantized integers. The carrier int8 values travel in, and their
//! parameters as the kernels take them, are in `int8_tensor`.

use super::EvalCtx;
use crate::graph::{DType, Graph, Node, Op, TensorId};

/// Whether the node computes on quantized integers: its first data input or its output is
/// an int8/uint8/int16 tensor with quantization parameters. QUANTIZE and DEQUANTIZE are
/// the boundary and handle both sides themselves.
pub fn is_quantized(ctx: &EvalCtx) -> bool {
    node_is_quantized(ctx.graph, ctx.node)
}

pub fn node_is_quantized(graph: &Graph, node: &Node) -> bool {
    if matches!(node.op, Op::Quantize | Op::Dequantize) {
        return false;
    }
    let quantized = |id: TensorId| {
        let t = graph.tensor(id);
        matches!(t.dtype, DType::I8 | DType::U8 | DType::I16) && t.quant.is_some()
    };
    node.outputs.iter().any(|&id| quantized(id))
}

/// Whether a quantized node computes in 16x8: its first output is int16.
pub fn is_int16(ctx: &EvalCtx) -> bool {
    node_is_int16(ctx.graph, ctx.node)
}

pub fn node_is_int16(graph: &Graph, node: &Node) -> bool {
    node.outputs
        .first()
        .is_some_and(|&id| graph.tensor(id).dtype == DType::I16)
}
