//! Element-wise activations (standalone and fused), PRELU and SOFTMAX.

use candle_core::Tensor as CTensor;

use super::OpResult;
use crate::graph::{FusedActivation, UnaryKind};

/// Applies an activation that TFLite fused into the op producing `x`.
pub fn apply_fused(x: CTensor, activation: FusedActivation) -> OpResult<CTensor> {
    Ok(match activation {
        FusedActivation::None => x,
        FusedActivation::Relu => x.relu()?,
        FusedActivation::Relu6 => x.clamp(0f32, 6f32)?,
        FusedActivation::ReluN1To1 => x.clamp(-1f32, 1f32)?,
        FusedActivation::Tanh => x.tanh()?,
        // TFLite defines SIGN_BIT for completeness; no builtin kernel accepts it.
        FusedActivation::SignBit => super::op_bail!("fused activation SIGN_BIT is not supported"),
    })
}

pub fn unary(x: &CTensor, kind: UnaryKind) -> OpResult<CTensor> {
    Ok(match kind {
        UnaryKind::Rsqrt => x.sqrt()?.recip()?,
        UnaryKind::Sqrt => x.sqrt()?,
        UnaryKind::Relu => x.relu()?,
        UnaryKind::Relu6 => x.clamp(0f32, 6f32)?,
        UnaryKind::ReluN1To1 => x.clamp(-1f32, 1f32)?,
        UnaryKind::Logistic => logistic(x)?,
        UnaryKind::Tanh => x.tanh()?,
        // x * relu6(x + 3) / 6
        UnaryKind::HardSwish => (x * (x.affine(1.0, 3.0)?.clamp(0f32, 6f32)? / 6.0)?)?,
        UnaryKind::Gelu { approximate: true } => x.gelu()?,
        UnaryKind::Gelu { approximate: false } => x.gelu_erf()?,
        // Written as relu(x) + alpha * min(x, 0) so it holds for any alpha, not just alpha < 1.
        UnaryKind::LeakyRelu { alpha } => (x.relu()? + (x.minimum(0f32)? * alpha as f64)?)?,
    })
}

fn logistic(x: &CTensor) -> OpResult<CTensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// PRELU: `x` where positive, `alpha * x` elsewhere, with `alpha` broadcast.
pub fn prelu(x: &CTensor, alpha: &CTensor) -> OpResult<CTensor> {
    let negative = x.minimum(0f32)?.broadcast_mul(alpha)?;
    Ok(x.relu()?.broadcast_add(&negative)?)
}

/// SOFTMAX over the last axis of `beta * x`, shifted by the maximum for stability.
pub fn softmax(x: &CTensor, beta: f32) -> OpResult<CTensor> {
    let last = x.rank().saturating_sub(1);
    let scaled = (x * beta as f64)?;
    let shifted = scaled.broadcast_sub(&scaled.max_keepdim(last)?)?;
    let exp = shifted.exp()?;
    Ok(exp.broadcast_div(&exp.sum_keepdim(last)?)?)
}
