//! Element-wise, pooling, reduction and activation ops on int8 tensors, through the
//! kernels in `kernels::int8`.

use candle_core::Tensor as CTensor;

use super::quantized::{from_int8, int8_values, qparams};
use super::{broadcast_shape, expect_output_shape, op_bail, EvalCtx, OpError, OpResult};
use crate::graph::{BinaryKind, FusedActivation, Pool2dAttrs, PoolKind, ReduceKind, UnaryKind};
use crate::kernels::int8::{activation, elementwise, math, pool, reduce, softmax};

fn kernel(e: String) -> OpError {
    OpError(e)
}

pub fn binary(ctx: &EvalCtx, kind: BinaryKind, act: FusedActivation) -> OpResult<CTensor> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let shape = broadcast_shape(a.dims(), b.dims())?;
    expect_output_shape(ctx, 0, &shape)?;
    let (qa, qb) = (
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.input_id(1)?)?,
    );
    let qo = qparams(ctx, ctx.node.outputs[0])?;
    let (va, vb) = (int8_values(a)?, int8_values(b)?);
    let mut out = vec![0i8; shape.iter().product()];
    let (da, db) = (a.dims(), b.dims());
    match kind {
        BinaryKind::Add => {
            elementwise::Add::new(qa, qb, qo, act).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        BinaryKind::Sub => {
            elementwise::Sub::new(qa, qb, qo, act).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        BinaryKind::Mul => elementwise::Mul::new(qa, qb, qo, act).and_then(|k| {
            k.with_arithmetic(ctx.arithmetic)
                .run(&va, da, &vb, db, &mut out)
        }),
        BinaryKind::Div => {
            math::Div::new(qa, qb, qo, act).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        BinaryKind::SquaredDifference => {
            math::SquaredDifference::new(qa, qb, qo).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        BinaryKind::Maximum | BinaryKind::Minimum => {
            if qa != qo || qb != qo {
                op_bail!(
                    "int8 {} needs equal input and output parameters",
                    ctx.node.op.name()
                );
            }
            let which = if kind == BinaryKind::Maximum {
                elementwise::MinMax::Maximum
            } else {
                elementwise::MinMax::Minimum
            };
            which.run(&va, da, &vb, db, &mut out)
        }
    }
    .map_err(kernel)?;
    from_int8(out, &shape, a)
}

pub fn pool2d(ctx: &EvalCtx, kind: PoolKind, attrs: &Pool2dAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (n, h, w, c) = input.dims4()?;
    let k = pool::Pool2d::new(
        match kind {
            PoolKind::Average => pool::PoolKind::Average,
            PoolKind::Max => pool::PoolKind::Max,
        },
        [n, h, w, c],
        (attrs.filter_h, attrs.filter_w),
        (attrs.stride_h, attrs.stride_w),
        attrs.padding,
        attrs.activation,
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(kernel)?;
    let shape = k.output_shape();
    expect_output_shape(ctx, 0, &shape)?;
    let mut out = vec![0i8; shape.iter().product()];
    k.run(&int8_values(input)?, &mut out).map_err(kernel)?;
    from_int8(out, &shape, input)
}

pub fn reduce(ctx: &EvalCtx, kind: ReduceKind, keep_dims: bool) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let axes: Vec<i32> = ctx.const_ints(1)?.into_iter().map(|a| a as i32).collect();
    let (qi, qo) = (
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    );
    let values = int8_values(input)?;
    let dims = input.dims();
    let (shape, out) = match kind {
        ReduceKind::Mean => {
            let k = reduce::Mean::new(dims, &axes, keep_dims, qi, qo)
                .map_err(kernel)?
                .with_arithmetic(ctx.arithmetic);
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(kernel)?;
            (k.output_shape().to_vec(), out)
        }
        ReduceKind::Sum => {
            let k = reduce::Sum::new(dims, &axes, keep_dims, qi, qo).map_err(kernel)?;
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(kernel)?;
            (k.output_shape().to_vec(), out)
        }
        ReduceKind::Max => {
            let k = reduce::ReduceMax::new(dims, &axes, keep_dims, qi, qo).map_err(kernel)?;
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(kernel)?;
            (k.output_shape().to_vec(), out)
        }
    };
    expect_output_shape(ctx, 0, &shape)?;
    from_int8(out, ctx.output_shape(0)?, input)
}

pub fn softmax(ctx: &EvalCtx, beta: f32) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let depth = input.dims().last().copied().unwrap_or(1);
    let k = softmax::Softmax::new(
        beta,
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(kernel)?;
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    k.run(&values, depth, &mut out).map_err(kernel)?;
    from_int8(out, input.dims(), input)
}

pub fn unary(ctx: &EvalCtx, kind: UnaryKind) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (qi, qo) = (
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    );
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    match kind {
        UnaryKind::Logistic => {
            activation::Lut::logistic(qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::Tanh => activation::Lut::tanh(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::HardSwish => {
            activation::HardSwish::new(qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::Relu | UnaryKind::Relu6 | UnaryKind::ReluN1To1 => {
            let relu = match kind {
                UnaryKind::Relu => activation::ReluKind::Relu,
                UnaryKind::Relu6 => activation::ReluKind::Relu6,
                _ => activation::ReluKind::ReluN1To1,
            };
            activation::Relu::new(relu, qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::Rsqrt => math::Rsqrt::new(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::Sqrt => math::Sqrt::new(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::Gelu { approximate } => {
            math::Gelu::new(approximate, qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::LeakyRelu { alpha } => activation::LeakyRelu::new(alpha, qi, qo)
            .and_then(|k| k.with_arithmetic(ctx.arithmetic).run(&values, &mut out)),
    }
    .map_err(kernel)?;
    from_int8(out, input.dims(), input)
}

/// QUANTIZE from int8 to int8: LiteRT's requantization (vector blocks and scalar tail
/// round ties differently; the kernel models both).
pub fn requantize(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let k = activation::Requantize::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(kernel)?;
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    k.run(&values, &mut out).map_err(kernel)?;
    from_int8(out, input.dims(), input)
}

/// PRELU on int8: alpha is a constant int8 tensor broadcast against the input.
pub fn prelu(ctx: &EvalCtx) -> OpResult<CTensor> {
    let (x, alpha) = (ctx.input(0)?, ctx.input(1)?);
    expect_output_shape(ctx, 0, x.dims())?;
    let k = math::Prelu::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.input_id(1)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(kernel)?;
    let values = int8_values(x)?;
    let mut out = vec![0i8; values.len()];
    k.run(
        &values,
        x.dims(),
        &int8_values(alpha)?,
        alpha.dims(),
        &mut out,
    )
    .map_err(kernel)?;
    from_int8(out, x.dims(), x)
}
