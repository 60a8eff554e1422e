//! Two-input element-wise ops with numpy broadcasting.

use candle_core::Tensor as CTensor;

use super::{activation::apply_fused, broadcast_shape, expect_output_shape, EvalCtx, OpResult};
use crate::graph::{BinaryKind, FusedActivation};

pub fn binary(ctx: &EvalCtx, kind: BinaryKind, activation: FusedActivation) -> OpResult<CTensor> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    expect_output_shape(ctx, 0, &broadcast_shape(a.dims(), b.dims())?)?;
    let out = match kind {
        BinaryKind::Add => a.broadcast_add(b)?,
        BinaryKind::Sub => a.broadcast_sub(b)?,
        BinaryKind::Mul => a.broadcast_mul(b)?,
        BinaryKind::Div => a.broadcast_div(b)?,
        BinaryKind::SquaredDifference => a.broadcast_sub(b)?.sqr()?,
        BinaryKind::Maximum => a.broadcast_maximum(b)?,
        BinaryKind::Minimum => a.broadcast_minimum(b)?,
    };
    apply_fused(out, activation)
}
