//! FULLY_CONNECTED and BATCH_MATMUL.

use candle_core::Tensor as CTensor;

use super::{
    activation::apply_fused, broadcast_shape, expect_output_shape, op_bail, EvalCtx, OpResult,
    Prepared,
};
use crate::graph::{FullyConnectedAttrs, Graph, Node, TensorId};

/// Transposes constant `[out, in]` weights once into the `[in, out]` matrix matmul wants.
pub fn prepare(
    graph: &Graph,
    node: &Node,
    constant: &dyn Fn(TensorId) -> Option<CTensor>,
) -> OpResult<Option<Prepared>> {
    let (Some(wid), Some(weights)) = (node.input(1), node.input(1).and_then(constant)) else {
        return Ok(None);
    };
    if graph.tensor(wid).shape.len() != 2 {
        op_bail!(
            "weights must be 2-D [out, in], got {:?}",
            graph.tensor(wid).shape
        );
    }
    let weights_io = weights.t()?.contiguous()?;
    let bias = node.input(2).and_then(constant);
    Ok(Some(Prepared::MatMul { weights_io, bias }))
}

pub fn fully_connected(ctx: &EvalCtx, attrs: &FullyConnectedAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let owned;
    let (weights_io, bias) = match ctx.prepared {
        Some(Prepared::MatMul { weights_io, bias }) => (weights_io, bias.as_ref()),
        _ => {
            owned = ctx.input(1)?.t()?.contiguous()?;
            let bias = if ctx.has_input(2) {
                Some(ctx.input(2)?)
            } else {
                None
            };
            (&owned, bias)
        }
    };
    let (depth, _units) = weights_io.dims2()?;
    let count = input.elem_count();
    if depth == 0 || count % depth != 0 {
        op_bail!(
            "input of {count} elements cannot be split into rows of {depth} (the weights' depth)"
        );
    }
    let rows = input.reshape((count / depth, depth))?;
    let mut out = rows.matmul(weights_io)?;
    if let Some(b) = bias {
        out = out.broadcast_add(b)?;
    }
    let out = apply_fused(out, attrs.activation)?;
    // keep_num_dims and the output shape are both in the model's declared output shape.
    Ok(out.reshape(ctx.output_shape(0)?)?)
}

pub fn batch_matmul(ctx: &EvalCtx, adj_x: bool, adj_y: bool) -> OpResult<CTensor> {
    let mut x = ctx.input(0)?.clone();
    let mut y = ctx.input(1)?.clone();
    if x.rank() < 2 || y.rank() < 2 {
        op_bail!("BATCH_MATMUL needs inputs of rank >= 2");
    }
    if adj_x {
        x = x.t()?;
    }
    if adj_y {
        y = y.t()?;
    }
    let (xd, yd) = (x.dims(), y.dims());
    let batch = broadcast_shape(&xd[..xd.len() - 2], &yd[..yd.len() - 2])?;
    let mut computed = batch;
    computed.extend([xd[xd.len() - 2], yd[yd.len() - 1]]);
    expect_output_shape(ctx, 0, &computed)?;
    let out = x.contiguous()?.broadcast_matmul(&y.contiguous()?)?;
    Ok(out.reshape(ctx.output_shape(0)?)?)
}
