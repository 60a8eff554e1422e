//! MEAN, SUM and REDUCE_MAX over constant axes.

use candle_core::Tensor as CTensor;
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{expect_output_shape, normalize_axis, EvalCtx, OpError, OpResult};
use crate::graph::{DType, Graph, Node, Op, ReduceKind};
use crate::kernels::int8::reduce;
use crate::kernels::reduce_f32::{reduce_middle, Reduction};
use crate::kernels::run_on_host;
use crate::tflite::codec::OpVersionCtx;
use crate::tflite::fb;

pub struct Reduce;

impl OpFamily for Reduce {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        let kind = match o.code {
            B::MEAN => ReduceKind::Mean,
            B::SUM => ReduceKind::Sum,
            B::REDUCE_MAX => ReduceKind::Max,
            _ => return None,
        };
        Some(Ok(Op::Reduce {
            kind,
            keep_dims: o
                .op
                .builtin_options_as_reducer_options()
                .is_some_and(|o| o.keep_dims()),
        }))
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        use fb::BuiltinOperator as B;
        let Op::Reduce { kind, .. } = op else {
            return None;
        };
        Some(match kind {
            ReduceKind::Mean => B::MEAN,
            ReduceKind::Sum => B::SUM,
            ReduceKind::Max => B::REDUCE_MAX,
        })
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        let Op::Reduce { keep_dims, .. } = &node.op else {
            return Err(not_in_family("reduce", &node.op).to_string());
        };
        Ok((
            fb::BuiltinOptions::ReducerOptions,
            Some(
                fb::ReducerOptions::create(
                    fbb,
                    &fb::ReducerOptionsArgs {
                        keep_dims: *keep_dims,
                    },
                )
                .as_union_value(),
            ),
        ))
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use DType::*;
        match op {
            Op::Reduce {
                kind: ReduceKind::Mean | ReduceKind::Max,
                ..
            } => OpVersionCtx::first(&[(v.is(0, I16), 3), (v.is(0, I8), 2)]),
            Op::Reduce {
                kind: ReduceKind::Sum,
                ..
            } => OpVersionCtx::first(&[(v.is(0, I8), 2)]),
            _ => 1,
        }
    }

    fn param_rule(op: &Op) -> ParamRule {
        match op {
            // LiteRT's int8 REDUCE_MAX compares raw values.
            Op::Reduce {
                kind: ReduceKind::Max,
                ..
            } => ParamRule::SameScale,
            _ => ParamRule::Own,
        }
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        None
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::Kernel
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::Reduce { kind, .. } = &ctx.node.op else {
            return Err(not_in_family("reduce", &ctx.node.op));
        };
        Ok(vec![reduce(ctx, *kind)?])
    }

    fn has_int16_kernel(op: &Op) -> bool {
        matches!(op, Op::Reduce { .. })
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        use super::int16_tensor::{from_int16, int16_values};
        let Op::Reduce { kind, keep_dims } = &ctx.node.op else {
            return Err(not_in_family("reduce (16x8)", &ctx.node.op));
        };
        let input = ctx.input(0)?;
        let axes: Vec<i32> = ctx.const_ints(1)?.into_iter().map(|a| a as i32).collect();
        let (qi, qo) = (
            qparams(ctx, ctx.input_id(0)?)?,
            qparams(ctx, ctx.node.outputs[0])?,
        );
        let values = int16_values(input)?;
        let dims = input.dims();
        // MEAN has an int16 kernel of its own; SUM and REDUCE_MAX are int8's, generic over
        // the element (`kernels::int16::reduce`).
        let (shape, out) = match kind {
            ReduceKind::Mean => {
                let k = reduce::Mean::new_int16(dims, &axes, *keep_dims, qi, qo)
                    .map_err(OpError::Kernel)?;
                let mut out = vec![0i16; k.output_shape().iter().product()];
                k.run_int16(&values, &mut out).map_err(OpError::Kernel)?;
                (k.output_shape().to_vec(), out)
            }
            ReduceKind::Sum => {
                let k =
                    reduce::Sum::new(dims, &axes, *keep_dims, qi, qo).map_err(OpError::Kernel)?;
                let mut out = vec![0i16; k.output_shape().iter().product()];
                k.run(&values, &mut out).map_err(OpError::Kernel)?;
                (k.output_shape().to_vec(), out)
            }
            ReduceKind::Max => {
                let k = reduce::ReduceMax::new(dims, &axes, *keep_dims, qi, qo)
                    .map_err(OpError::Kernel)?;
                let mut out = vec![0i16; k.output_shape().iter().product()];
                k.run(&values, &mut out).map_err(OpError::Kernel)?;
                (k.output_shape().to_vec(), out)
            }
        };
        expect_output_shape(ctx, 0, &shape)?;
        Ok(vec![from_int16(out, ctx.output_shape(0)?, input)?])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::Reduce { kind, keep_dims } = &ctx.node.op else {
            return Err(not_in_family("reduce", &ctx.node.op));
        };
        Ok(vec![reduce_int8(ctx, *kind, *keep_dims)?])
    }
}

fn reduce(ctx: &EvalCtx, kind: ReduceKind) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let rank = input.rank();
    let mut axes = ctx
        .const_ints(1)?
        .into_iter()
        .map(|a| normalize_axis(a, rank))
        .collect::<OpResult<Vec<_>>>()?;
    axes.sort_unstable();
    axes.dedup();
    let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
    if contiguous && !axes.is_empty() && input.dtype() == candle_core::DType::F32 {
        // One pass over contiguous memory instead of candle's strided reduction.
        let dims = input.dims();
        let (first, last) = (axes[0], axes[axes.len() - 1]);
        let outer: usize = dims[..first].iter().product();
        let reduced: usize = dims[first..=last].iter().product();
        let inner: usize = dims[last + 1..].iter().product();
        let reduction = match kind {
            ReduceKind::Mean => Reduction::Mean,
            ReduceKind::Sum => Reduction::Sum,
            ReduceKind::Max => Reduction::Max,
        };
        let out_shape = ctx.output_shape(0)?.to_vec();
        if out_shape.iter().product::<usize>() != outer * inner {
            super::op_bail!(
                "the declared output {out_shape:?} does not fit reducing axes {axes:?} of {dims:?}"
            );
        }
        return Ok(run_on_host("reduce", input, &out_shape, |x, y| {
            reduce_middle(reduction, x, outer, reduced, inner, y)
        })?);
    }
    let out = match kind {
        ReduceKind::Mean => input.mean_keepdim(axes)?,
        ReduceKind::Sum => input.sum_keepdim(axes)?,
        ReduceKind::Max => {
            let mut x = input.clone();
            for axis in axes {
                x = x.max_keepdim(axis)?;
            }
            x
        }
    };
    // keep_dims only changes the shape, which the model declares.
    Ok(out.reshape(ctx.output_shape(0)?)?)
}

fn reduce_int8(ctx: &EvalCtx, kind: ReduceKind, keep_dims: bool) -> OpResult<CTensor> {
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
                .map_err(OpError::Kernel)?
                .with_arithmetic(ctx.arithmetic);
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(OpError::Kernel)?;
            (k.output_shape().to_vec(), out)
        }
        ReduceKind::Sum => {
            let k = reduce::Sum::new(dims, &axes, keep_dims, qi, qo).map_err(OpError::Kernel)?;
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(OpError::Kernel)?;
            (k.output_shape().to_vec(), out)
        }
        ReduceKind::Max => {
            let k =
                reduce::ReduceMax::new(dims, &axes, keep_dims, qi, qo).map_err(OpError::Kernel)?;
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(OpError::Kernel)?;
            (k.output_shape().to_vec(), out)
        }
    };
    expect_output_shape(ctx, 0, &shape)?;
    from_int8(out, ctx.output_shape(0)?, input)
}
