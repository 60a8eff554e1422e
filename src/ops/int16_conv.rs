//! What the 16x8 CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED and
//! BATCH_MATMUL share: the int8 filter, the int64 bias, and the drivers of
//! `kernels::int16`'s convolution, fully-connected and matrix-product kernels (the window
//! geometry is int8's, `int8_conv::geometry`).

use candle_core::Tensor as CTensor;

use super::int16_tensor::{from_int16, int16_values};
use super::int8_conv::{filter, geometry, transpose_conv_geometry, Stepping};
use super::int8_tensor::qparams;
use super::{expect_output_shape, op_bail, EvalCtx, OpError, OpResult};
use crate::graph::{FusedActivation, TensorData, TransposeConvAttrs};
use crate::kernels::int16::batch_matmul::BatchMatMulInt16;
use crate::kernels::int16::transpose_conv::TransposeConvInt16;
use crate::kernels::int16::{ConvInt16, FullyConnectedInt16};

/// The int64 bias of a 16x8 op, if it has one.
fn bias64<'a>(ctx: &'a EvalCtx, slot: usize) -> OpResult<Option<&'a [i64]>> {
    let Some(id) = ctx.node.input(slot) else {
        return Ok(None);
    };
    match &ctx.graph.tensor(id).data {
        Some(TensorData::I64(values)) => Ok(Some(values)),
        _ => op_bail!(
            "bias '{}' of a 16x8 op must be a constant int64 tensor",
            ctx.graph.tensor(id).name
        ),
    }
}

/// 16x8 CONV_2D (`depthwise` false) or DEPTHWISE_CONV_2D.
pub(super) fn convolution16(ctx: &EvalCtx, s: Stepping, depthwise: bool) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let g = geometry(ctx, &s, depthwise)?;
    let (weights, scales, _) = filter(ctx, 1)?;
    let kernel = ConvInt16::new(
        qparams(ctx, ctx.input_id(0)?)?,
        scales,
        qparams(ctx, ctx.node.outputs[0])?,
        s.activation,
        g.out_c,
    )
    .map_err(OpError::Kernel)?;
    let values = int16_values(input)?;
    let mut out = vec![0i16; g.batch * g.out_h * g.out_w * g.out_c];
    let bias = bias64(ctx, 2)?;
    if depthwise {
        kernel.depthwise(&g, &values, weights, bias, &mut out)
    } else {
        kernel.conv2d(&g, &values, weights, bias, &mut out)
    }
    .map_err(OpError::Kernel)?;
    from_int16(out, &[g.batch, g.out_h, g.out_w, g.out_c], input)
}

/// 16x8 FULLY_CONNECTED: rows of the input times `[units, depth]` int8 weights.
pub(super) fn fully_connected16(ctx: &EvalCtx, activation: FusedActivation) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (weights, scales, fid) = filter(ctx, 1)?;
    let [units, depth] = ctx.graph.tensor(fid).shape[..] else {
        op_bail!("weights must be 2-D [units, depth]");
    };
    let count = input.elem_count();
    if depth == 0 || count % depth != 0 {
        op_bail!("input of {count} elements cannot be split into rows of {depth}");
    }
    let rows = count / depth;
    expect_output_shape(ctx, 0, &[rows, units])?;
    let kernel = FullyConnectedInt16::new(
        qparams(ctx, ctx.input_id(0)?)?,
        scales,
        qparams(ctx, ctx.node.outputs[0])?,
        activation,
        units,
    )
    .map_err(OpError::Kernel)?;
    let mut out = vec![0i16; rows * units];
    kernel
        .run(
            rows,
            depth,
            &int16_values(input)?,
            weights,
            bias64(ctx, 2)?,
            &mut out,
        )
        .map_err(OpError::Kernel)?;
    from_int16(out, ctx.output_shape(0)?, input)
}

/// 16x8 TRANSPOSE_CONV. TFLite's inputs: the output shape, the OHWI filter, the data
/// input and the optional int64 bias.
pub(super) fn transpose_conv16(ctx: &EvalCtx, attrs: &TransposeConvAttrs) -> OpResult<CTensor> {
    let input = ctx.input(2)?;
    let (g, weights, scales) = transpose_conv_geometry(ctx, attrs)?;
    let (batch, out_h, out_w, out_c) = (g.batch, g.out_h, g.out_w, g.out_c);
    let kernel = TransposeConvInt16::new(
        qparams(ctx, ctx.input_id(2)?)?,
        scales,
        qparams(ctx, ctx.node.outputs[0])?,
        attrs.activation,
        out_c,
    )
    .map_err(OpError::Kernel)?;
    let mut out = vec![0i16; batch * out_h * out_w * out_c];
    kernel
        .run(
            &g,
            &int16_values(input)?,
            weights,
            bias64(ctx, 3)?,
            &mut out,
        )
        .map_err(OpError::Kernel)?;
    from_int16(out, &[batch, out_h, out_w, out_c], input)
}

/// 16x8 BATCH_MATMUL of two int16 activations.
pub(super) fn batch_matmul16(ctx: &EvalCtx, adj_x: bool, adj_y: bool) -> OpResult<CTensor> {
    let (lhs, rhs) = (ctx.input(0)?, ctx.input(1)?);
    let kernel = BatchMatMulInt16::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.input_id(1)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
        adj_x,
        adj_y,
    )
    .map_err(OpError::Kernel)?;
    let shape = kernel
        .output_shape(lhs.dims(), rhs.dims())
        .map_err(OpError::Kernel)?;
    expect_output_shape(ctx, 0, &shape)?;
    let mut out = vec![0i16; shape.iter().product()];
    kernel
        .run(
            lhs.dims(),
            &int16_values(lhs)?,
            rhs.dims(),
            &int16_values(rhs)?,
            &mut out,
        )
        .map_err(OpError::Kernel)?;
    from_int16(out, ctx.output_shape(0)?, lhs)
}
