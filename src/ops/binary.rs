//! Two-input element-wise ops with numpy broadcasting.

use candle_core::Tensor as CTensor;

use super::{
    activation::apply_fused, broadcast_shape, expect_output_shape, EvalCtx, OpError, OpResult,
};
use crate::graph::{BinaryKind, FusedActivation};

pub fn binary(ctx: &EvalCtx, kind: BinaryKind, activation: FusedActivation) -> OpResult<CTensor> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    expect_output_shape(ctx, 0, &broadcast_shape(a.dims(), b.dims())?)?;
    let out = match kind {
        BinaryKind::Add => a.broadcast_add(b)?,
        BinaryKind::Sub => a.broadcast_sub(b)?,
        BinaryKind::Mul => a.broadcast_mul(b)?,
        BinaryKind::Div => {
            // Integer division by zero panics inside candle (Rust traps it even in release
            // builds); a model's integer divisor is data from the file, so it is checked.
            if !b.dtype().is_float()
                && b.flatten_all()?
                    .to_dtype(candle_core::DType::I64)?
                    .to_vec1::<i64>()?
                    .contains(&0)
            {
                return Err(OpError(
                    "integer division by zero: the divisor tensor holds a 0; the model's \
                     constants are broken, re-export it"
                        .into(),
                ));
            }
            a.broadcast_div(b)?
        }
        BinaryKind::SquaredDifference => {
            // `d * d`, not candle's `sqr`, which is a `todo!()` panic on integer tensors
            // (TFLite's SQUARED_DIFFERENCE takes int32 too).
            let d = a.broadcast_sub(b)?;
            (&d * &d)?
        }
        BinaryKind::Maximum => a.broadcast_maximum(b)?,
        BinaryKind::Minimum => a.broadcast_minimum(b)?,
    };
    apply_fused(out, activation)
}
