//! Element-wise activations (standalone and fused), PRELU and SOFTMAX.

use candle_core::Tensor as CTensor;
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{broadcast_shape, expect_output_shape, EvalCtx, OpError, OpResult};
use crate::graph::{DType, FusedActivation, Graph, Node, Op, QuantParams, UnaryKind};
use crate::kernels::int8::{softmax, unary};
use crate::tflite::codec::OpVersionCtx;
use crate::tflite::fb;

pub struct Activation;

impl OpFamily for Activation {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        let unary = |kind| Some(Ok(Op::Unary(kind)));
        match o.code {
            B::RSQRT => unary(UnaryKind::Rsqrt),
            B::SQRT => unary(UnaryKind::Sqrt),
            B::RELU => unary(UnaryKind::Relu),
            B::RELU6 => unary(UnaryKind::Relu6),
            B::RELU_N1_TO_1 => unary(UnaryKind::ReluN1To1),
            B::LOGISTIC => unary(UnaryKind::Logistic),
            B::TANH => unary(UnaryKind::Tanh),
            B::HARD_SWISH => unary(UnaryKind::HardSwish),
            B::GELU => unary(UnaryKind::Gelu {
                approximate: o
                    .op
                    .builtin_options_as_gelu_options()
                    .is_some_and(|o| o.approximate()),
            }),
            B::LEAKY_RELU => unary(UnaryKind::LeakyRelu {
                alpha: o
                    .op
                    .builtin_options_as_leaky_relu_options()
                    .map_or(0.2, |o| o.alpha()),
            }),
            B::PRELU => Some(Ok(Op::Prelu)),
            B::SOFTMAX => Some(Ok(Op::Softmax {
                beta: o
                    .op
                    .builtin_options_as_softmax_options()
                    .map_or(1.0, |o| o.beta()),
            })),
            _ => None,
        }
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        use fb::BuiltinOperator as B;
        Some(match op {
            Op::Unary(kind) => match kind {
                UnaryKind::Rsqrt => B::RSQRT,
                UnaryKind::Sqrt => B::SQRT,
                UnaryKind::Relu => B::RELU,
                UnaryKind::Relu6 => B::RELU6,
                UnaryKind::ReluN1To1 => B::RELU_N1_TO_1,
                UnaryKind::Logistic => B::LOGISTIC,
                UnaryKind::Tanh => B::TANH,
                UnaryKind::HardSwish => B::HARD_SWISH,
                UnaryKind::Gelu { .. } => B::GELU,
                UnaryKind::LeakyRelu { .. } => B::LEAKY_RELU,
            },
            Op::Prelu => B::PRELU,
            Op::Softmax { .. } => B::SOFTMAX,
            _ => return None,
        })
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        use fb::BuiltinOptions as O;
        Ok(match &node.op {
            Op::Unary(UnaryKind::Gelu { approximate }) => (
                O::GeluOptions,
                Some(
                    fb::GeluOptions::create(
                        fbb,
                        &fb::GeluOptionsArgs {
                            approximate: *approximate,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            Op::Unary(UnaryKind::LeakyRelu { alpha }) => (
                O::LeakyReluOptions,
                Some(
                    fb::LeakyReluOptions::create(fbb, &fb::LeakyReluOptionsArgs { alpha: *alpha })
                        .as_union_value(),
                ),
            ),
            Op::Softmax { beta } => (
                O::SoftmaxOptions,
                Some(
                    fb::SoftmaxOptions::create(fbb, &fb::SoftmaxOptionsArgs { beta: *beta })
                        .as_union_value(),
                ),
            ),
            Op::Unary(_) | Op::Prelu => (O::NONE, None),
            other => return Err(not_in_family("activation", other).to_string()),
        })
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use DType::*;
        let first = OpVersionCtx::first;
        match op {
            Op::Unary(UnaryKind::Relu) => {
                first(&[(v.is(0, I16), 3), (v.is(0, I8) || v.is(0, U8), 2)])
            }
            Op::Unary(UnaryKind::Tanh | UnaryKind::Logistic) => {
                first(&[(v.is(0, I16) && v.out_is(I16), 3), (v.is(0, I8), 2)])
            }
            Op::Unary(UnaryKind::LeakyRelu { .. }) => first(&[(v.is(0, I16), 2)]),
            Op::Softmax { .. } | Op::Unary(UnaryKind::Relu6 | UnaryKind::Rsqrt) => {
                first(&[(v.is(0, I16), 3), (v.is(0, I8), 2)])
            }
            Op::Unary(UnaryKind::Sqrt) => first(&[(v.is(0, I8) || v.is(0, I16), 2)]),
            Op::Unary(UnaryKind::Gelu { .. }) => first(&[(v.is(0, I8) || v.is(0, U8), 2)]),
            // One version for all types.
            Op::Unary(UnaryKind::HardSwish | UnaryKind::ReluN1To1) | Op::Prelu => 1,
            _ => 1,
        }
    }

    fn param_rule(op: &Op) -> ParamRule {
        match op {
            Op::Softmax { .. } | Op::Unary(UnaryKind::Logistic) => {
                ParamRule::FixedOutput(QuantParams::per_tensor(1.0 / 256.0, -128))
            }
            Op::Unary(UnaryKind::Tanh) => {
                ParamRule::FixedOutput(QuantParams::per_tensor(1.0 / 128.0, 0))
            }
            _ => ParamRule::Own,
        }
    }

    fn weight_slots(op: &Op) -> Option<WeightSlots> {
        match op {
            Op::Prelu => Some(WeightSlots::SymmetricPerTensor(1)),
            _ => None,
        }
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::Kernel
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::Unary(kind) => unary(ctx.input(0)?, *kind)?,
            Op::Prelu => {
                let (x, alpha) = (ctx.input(0)?, ctx.input(1)?);
                expect_output_shape(ctx, 0, &broadcast_shape(x.dims(), alpha.dims())?)?;
                prelu(x, alpha)?
            }
            Op::Softmax { beta } => softmax(ctx.input(0)?, *beta)?,
            other => return Err(not_in_family("activation", other)),
        }])
    }

    fn has_int16_kernel(op: &Op) -> bool {
        // LiteRT has no 16x8 HARD_SWISH, RELU_N1_TO_1 or RELU_0_TO_1; its int16 SQRT and
        // PRELU exist, but TensorFlow's 16x8 converter never writes them and qdbg has no
        // LiteRT vectors for them.
        matches!(
            op,
            Op::Unary(
                UnaryKind::Logistic
                    | UnaryKind::Tanh
                    | UnaryKind::Relu
                    | UnaryKind::Relu6
                    | UnaryKind::LeakyRelu { .. }
                    | UnaryKind::Rsqrt
                    | UnaryKind::Gelu { .. }
            ) | Op::Softmax { .. }
        )
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        use super::int16_tensor::{from_int16, int16_values};
        use crate::kernels::int16::activation::{
            LeakyRelu, LutActivation, LutFunction, Relu, ReluKind,
        };
        use crate::kernels::int16::lut::Lut16;
        use crate::kernels::int16::softmax::SoftmaxInt16;
        let input = ctx.input(0)?;
        let (qi, qo) = (
            qparams(ctx, ctx.input_id(0)?)?,
            qparams(ctx, ctx.node.outputs[0])?,
        );
        let values = int16_values(input)?;
        let mut out = vec![0i16; values.len()];
        match &ctx.node.op {
            Op::Unary(UnaryKind::Logistic) => LutActivation::new(LutFunction::Logistic, qi, qo)
                .and_then(|k| k.run(&values, &mut out)),
            Op::Unary(UnaryKind::Tanh) => {
                LutActivation::new(LutFunction::Tanh, qi, qo).and_then(|k| k.run(&values, &mut out))
            }
            Op::Unary(UnaryKind::Relu) => {
                Relu::new_int16(ReluKind::Relu, qi, qo).and_then(|k| k.run_int16(&values, &mut out))
            }
            Op::Unary(UnaryKind::Relu6) => Relu::new_int16(ReluKind::Relu6, qi, qo)
                .and_then(|k| k.run_int16(&values, &mut out)),
            Op::Unary(UnaryKind::LeakyRelu { alpha }) => {
                LeakyRelu::new(*alpha, qi, qo).and_then(|k| k.run_int16(&values, &mut out))
            }
            Op::Unary(UnaryKind::Rsqrt) => {
                Lut16::rsqrt(qi, qo).and_then(|k| k.run(&values, &mut out))
            }
            Op::Unary(UnaryKind::Gelu { approximate }) => {
                Lut16::gelu(*approximate, qi, qo).and_then(|k| k.run(&values, &mut out))
            }
            Op::Softmax { beta } => {
                let depth = input.dims().last().copied().unwrap_or(1);
                SoftmaxInt16::new(qi, qo, *beta).and_then(|k| k.run(&values, depth, &mut out))
            }
            other => super::op_bail!("{} has no 16x8 kernel in qdbg", other.name()),
        }
        .map_err(OpError::Kernel)?;
        Ok(vec![from_int16(out, input.dims(), input)?])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::Unary(kind) => unary_int8(ctx, *kind)?,
            Op::Prelu => prelu_int8(ctx)?,
            Op::Softmax { beta } => softmax_int8(ctx, *beta)?,
            other => return Err(not_in_family("activation", other)),
        }])
    }
}

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

fn unary(x: &CTensor, kind: UnaryKind) -> OpResult<CTensor> {
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

/// `(x * (1/6)) * relu6(x + 3)`, in LiteRT's float order: every float32 result equals its
/// kernel's (checked on the demo's HARD_SWISH outputs), which matters where a QUANTIZE to
/// int16 follows (16x8 models keep HARD_SWISH float), whose steps are fine enough for one
/// ulp to change a code. One pass on the CPU (four candle ops, each allocating a
/// temporary, took a tenth of MobileNetV3's float time); candle's ops elsewhere.
fn hard_swish(x: &CTensor) -> OpResult<CTensor> {
    const ONE_SIXTH: f32 = 1.0 / 6.0;
    if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
        return Ok(((x * f64::from(ONE_SIXTH))? * x.affine(1.0, 3.0)?.clamp(0f32, 6f32)?)?);
    }
    let dims = x.dims().to_vec();
    // SAFETY: the output has the input's shape, so the zip below writes every element.
    let out = unsafe {
        crate::kernels::run_on_host_filling("hard_swish", x, &dims, |input, out| {
            for (o, &v) in out.iter_mut().zip(input) {
                o.write((v * ONE_SIXTH) * (v + 3.0).clamp(0.0, 6.0));
            }
        })
    };
    Ok(out?)
}

fn logistic(x: &CTensor) -> OpResult<CTensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// PRELU: `x` where positive, `alpha * x` elsewhere, with `alpha` broadcast.
fn prelu(x: &CTensor, alpha: &CTensor) -> OpResult<CTensor> {
    float_only(x, "PRELU", false)?;
    let negative = x.minimum(0f32)?.broadcast_mul(alpha)?;
    Ok(x.relu()?.broadcast_add(&negative)?)
}

/// SOFTMAX over the last axis of `beta * x`, shifted by the maximum for stability.
fn softmax(x: &CTensor, beta: f32) -> OpResult<CTensor> {
    float_only(x, "SOFTMAX", false)?;
    let last = x.rank().saturating_sub(1);
    let scaled = (x * beta as f64)?;
    let shifted = scaled.broadcast_sub(&scaled.max_keepdim(last)?)?;
    let exp = shifted.exp()?;
    Ok(exp.broadcast_div(&exp.sum_keepdim(last)?)?)
}

fn softmax_int8(ctx: &EvalCtx, beta: f32) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let depth = input.dims().last().copied().unwrap_or(1);
    let k = softmax::Softmax::new(
        beta,
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(OpError::Kernel)?;
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    k.run(&values, depth, &mut out).map_err(OpError::Kernel)?;
    from_int8(out, input.dims(), input)
}

fn unary_int8(ctx: &EvalCtx, kind: UnaryKind) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (qi, qo) = (
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    );
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    match kind {
        UnaryKind::Logistic => unary::Lut::logistic(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::Tanh => unary::Lut::tanh(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::HardSwish => {
            unary::HardSwish::new(qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::Relu | UnaryKind::Relu6 | UnaryKind::ReluN1To1 => {
            let relu = match kind {
                UnaryKind::Relu => unary::ReluKind::Relu,
                UnaryKind::Relu6 => unary::ReluKind::Relu6,
                _ => unary::ReluKind::ReluN1To1,
            };
            unary::Relu::new(relu, qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::Rsqrt => unary::Rsqrt::new(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::Sqrt => unary::Sqrt::new(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::Gelu { approximate } => {
            unary::Gelu::new(approximate, qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::LeakyRelu { alpha } => unary::LeakyRelu::new(alpha, qi, qo)
            .and_then(|k| k.with_arithmetic(ctx.arithmetic).run(&values, &mut out)),
    }
    .map_err(OpError::Kernel)?;
    from_int8(out, input.dims(), input)
}

/// PRELU on int8: alpha is a constant int8 tensor broadcast against the input.
fn prelu_int8(ctx: &EvalCtx) -> OpResult<CTensor> {
    let (x, alpha) = (ctx.input(0)?, ctx.input(1)?);
    expect_output_shape(ctx, 0, x.dims())?;
    let k = unary::Prelu::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.input_id(1)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(OpError::Kernel)?;
    let values = int8_values(x)?;
    let mut out = vec![0i8; values.len()];
    k.run(
        &values,
        x.dims(),
        &int8_values(alpha)?,
        alpha.dims(),
        &mut out,
    )
    .map_err(OpError::Kernel)?;
    from_int8(out, x.dims(), x)
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
        assert!(
            err.to_string().contains("SOFTMAX needs a float input"),
            "{err}"
        );
        let alpha = CTensor::new(&[0.5f32], &Device::Cpu).unwrap();
        assert!(prelu(&ints, &alpha).is_err());
    }
}
