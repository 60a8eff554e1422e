//! Element-wise activations (standalone and fused), PRELU and SOFTMAX.

use candle_core::Tensor as CTensor;

use super::OpResult;
use crate::graph::{FusedActivation, UnaryKind};

/// Applies an activation that TFLite fused into the op producing `x`.
pub fn apply_fused(x: CTensor, activation: FusedActivation) -> OpResult<CTensor> {
    float_only(
        &x,
        "a fused activation",
        activation == FusedActivation::None,
    )?;
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

/// candle's float functions on integer tensors are `todo!()` panics (found by fuzzing a
/// model whose tensor dtypes were changed): refuse them as an error instead.
fn float_only(x: &CTensor, what: &str, exempt: bool) -> OpResult<()> {
    if !exempt && !x.dtype().is_float() {
        super::op_bail!("{what} needs a float input, got {:?}", x.dtype());
    }
    Ok(())
}

pub fn unary(x: &CTensor, kind: UnaryKind) -> OpResult<CTensor> {
    float_only(x, "this op", false)?;
    Ok(match kind {
        UnaryKind::Rsqrt => x.sqrt()?.recip()?,
        UnaryKind::Sqrt => x.sqrt()?,
        UnaryKind::Relu => x.relu()?,
        UnaryKind::Relu6 => x.clamp(0f32, 6f32)?,
        UnaryKind::ReluN1To1 => x.clamp(-1f32, 1f32)?,
        UnaryKind::Logistic => logistic(x)?,
        UnaryKind::Tanh => x.tanh()?,
        UnaryKind::HardSwish => hard_swish(x)?,
        UnaryKind::Gelu { approximate: true } => x.gelu()?,
        UnaryKind::Gelu { approximate: false } => x.gelu_erf()?,
        // Written as relu(x) + alpha * min(x, 0) so it holds for any alpha, not just alpha < 1.
        UnaryKind::LeakyRelu { alpha } => (x.relu()? + (x.minimum(0f32)? * alpha as f64)?)?,
    })
}

/// `x * relu6(x + 3) / 6` in one pass on the CPU (four candle ops, each allocating a
/// temporary, took a tenth of MobileNetV3's float time); candle's ops elsewhere.
fn hard_swish(x: &CTensor) -> OpResult<CTensor> {
    if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
        return Ok((x * (x.affine(1.0, 3.0)?.clamp(0f32, 6f32)? / 6.0)?)?);
    }
    let dims = x.dims().to_vec();
    // SAFETY: the output has the input's shape, so the zip below writes every element.
    let out = unsafe {
        crate::kernels::run_on_host_filling("hard_swish", x, &dims, |input, out| {
            for (o, &v) in out.iter_mut().zip(input) {
                o.write(v * (v + 3.0).clamp(0.0, 6.0) / 6.0);
            }
        })
    };
    Ok(out?)
}

fn logistic(x: &CTensor) -> OpResult<CTensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// PRELU: `x` where positive, `alpha * x` elsewhere, with `alpha` broadcast.
pub fn prelu(x: &CTensor, alpha: &CTensor) -> OpResult<CTensor> {
    float_only(x, "PRELU", false)?;
    let negative = x.minimum(0f32)?.broadcast_mul(alpha)?;
    Ok(x.relu()?.broadcast_add(&negative)?)
}

/// SOFTMAX over the last axis of `beta * x`, shifted by the maximum for stability.
pub fn softmax(x: &CTensor, beta: f32) -> OpResult<CTensor> {
    float_only(x, "SOFTMAX", false)?;
    let last = x.rank().saturating_sub(1);
    let scaled = (x * beta as f64)?;
    let shifted = scaled.broadcast_sub(&scaled.max_keepdim(last)?)?;
    let exp = shifted.exp()?;
    Ok(exp.broadcast_div(&exp.sum_keepdim(last)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// candle's exp / relu on integers are `todo!()` panics: an integer tensor reaching a
    /// float-only op (a hostile model, found by fuzzing) must be an error.
    #[test]
    fn float_only_ops_refuse_integer_tensors() {
        let ints = CTensor::new(&[1i64, 2, 3], &Device::Cpu).unwrap();
        let err = softmax(&ints, 1.0).unwrap_err();
        assert!(err.0.contains("SOFTMAX needs a float input"), "{}", err.0);
        let alpha = CTensor::new(&[0.5f32], &Device::Cpu).unwrap();
        assert!(prelu(&ints, &alpha).is_err());
    }
}
