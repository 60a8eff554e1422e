//! AVERAGE_POOL_2D and MAX_POOL_2D through qdbg's own kernels: candle's pooling has no
//! padding, and TFLite's SAME average ignores the padded cells.

use candle_core::Tensor as CTensor;
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{
    activation::apply_fused, expect_output_shape, spatial_padding, EvalCtx, OpError, OpResult,
};
use crate::graph::{DType, Graph, Node, Op, Pool2dAttrs, PoolKind};
use crate::kernels::int8::pool;
use crate::kernels::{pool_f32, run_on_host};
use crate::tflite::codec::{
    read_activation_or_none, read_padding, read_positive, write_activation, write_int,
    write_padding, OpVersionCtx,
};
use crate::tflite::fb;

pub struct Pool;

impl OpFamily for Pool {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        let kind = match o.code {
            B::AVERAGE_POOL_2D => PoolKind::Average,
            B::MAX_POOL_2D => PoolKind::Max,
            _ => return None,
        };
        let read = || -> Result<Op, String> {
            let o = o.op.builtin_options_as_pool_2doptions();
            Ok(Op::Pool2d {
                kind,
                attrs: Pool2dAttrs {
                    padding: read_padding(o.map_or(fb::Padding::SAME, |o| o.padding()))?,
                    stride_h: read_positive(o.map_or(1, |o| o.stride_h()), "stride_h")?,
                    stride_w: read_positive(o.map_or(1, |o| o.stride_w()), "stride_w")?,
                    filter_h: read_positive(o.map_or(1, |o| o.filter_height()), "filter_height")?,
                    filter_w: read_positive(o.map_or(1, |o| o.filter_width()), "filter_width")?,
                    activation: read_activation_or_none(o.map(|o| o.fused_activation_function()))?,
                },
            })
        };
        Some(read())
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        match op {
            Op::Pool2d {
                kind: PoolKind::Average,
                ..
            } => Some(fb::BuiltinOperator::AVERAGE_POOL_2D),
            Op::Pool2d {
                kind: PoolKind::Max,
                ..
            } => Some(fb::BuiltinOperator::MAX_POOL_2D),
            _ => None,
        }
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        let Op::Pool2d { attrs: a, .. } = &node.op else {
            return Err(not_in_family("pool", &node.op).to_string());
        };
        Ok((
            fb::BuiltinOptions::Pool2DOptions,
            Some(
                fb::Pool2DOptions::create(
                    fbb,
                    &fb::Pool2DOptionsArgs {
                        padding: write_padding(a.padding),
                        stride_w: write_int(a.stride_w, "stride_w")?,
                        stride_h: write_int(a.stride_h, "stride_h")?,
                        filter_width: write_int(a.filter_w, "filter_width")?,
                        filter_height: write_int(a.filter_h, "filter_height")?,
                        fused_activation_function: write_activation(a.activation),
                    },
                )
                .as_union_value(),
            ),
        ))
    }

    fn tflite_version(v: &OpVersionCtx, _op: &Op) -> i32 {
        use DType::*;
        OpVersionCtx::first(&[(v.is(0, I16) && v.out_is(I16), 3), (v.is(0, I8), 2)])
    }

    fn param_rule(_op: &Op) -> ParamRule {
        // LiteRT's int8 pooling keeps the input's parameters (the average's rounding
        // included).
        ParamRule::SameScale
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        None
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::Kernel
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::Pool2d { kind, attrs } = &ctx.node.op else {
            return Err(not_in_family("pool", &ctx.node.op));
        };
        Ok(vec![pool2d(ctx, *kind, attrs)?])
    }

    fn has_int16_kernel(op: &Op) -> bool {
        matches!(op, Op::Pool2d { .. })
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        use super::int16_tensor::{from_int16, int16_values};
        let Op::Pool2d { kind, attrs } = &ctx.node.op else {
            return Err(not_in_family("pool", &ctx.node.op));
        };
        let input = ctx.input(0)?;
        let k = int8_pool(ctx, *kind, attrs)?;
        let shape = k.output_shape();
        expect_output_shape(ctx, 0, &shape)?;
        let mut out = vec![0i16; shape.iter().product()];
        k.run(&int16_values(input)?, &mut out)
            .map_err(OpError::Kernel)?;
        Ok(vec![from_int16(out, &shape, input)?])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::Pool2d { kind, attrs } = &ctx.node.op else {
            return Err(not_in_family("pool", &ctx.node.op));
        };
        Ok(vec![pool2d_int8(ctx, *kind, attrs)?])
    }
}

fn pool2d(ctx: &EvalCtx, kind: PoolKind, attrs: &Pool2dAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (batch, in_h, in_w, channels) = input.dims4()?;
    let (pad_top, _, out_h) =
        spatial_padding(attrs.padding, in_h, attrs.filter_h, attrs.stride_h, 1)?;
    let (pad_left, _, out_w) =
        spatial_padding(attrs.padding, in_w, attrs.filter_w, attrs.stride_w, 1)?;
    expect_output_shape(ctx, 0, &[batch, out_h, out_w, channels])?;
    let g = pool_f32::PoolGeometry {
        batch,
        in_h,
        in_w,
        channels,
        out_h,
        out_w,
        k_h: attrs.filter_h,
        k_w: attrs.filter_w,
        stride_h: attrs.stride_h,
        stride_w: attrs.stride_w,
        pad_top,
        pad_left,
    };
    let shape = [batch, out_h, out_w, channels];
    let out = match kind {
        PoolKind::Average => run_on_host("average_pool_2d", input, &shape, |x, y| {
            pool_f32::average_pool(&g, x, y)
        })?,
        PoolKind::Max => run_on_host("max_pool_2d", input, &shape, |x, y| {
            pool_f32::max_pool(&g, x, y)
        })?,
    };
    apply_fused(out, attrs.activation)
}

/// The pooling kernel for a quantized node: LiteRT's int8 and 16x8 pooling share the
/// arithmetic on raw codes (`kernels::int16::pool`).
fn int8_pool(ctx: &EvalCtx, kind: PoolKind, attrs: &Pool2dAttrs) -> OpResult<pool::Pool2d> {
    let (n, h, w, c) = ctx.input(0)?.dims4()?;
    pool::Pool2d::new(
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
    .map_err(OpError::Kernel)
}

fn pool2d_int8(ctx: &EvalCtx, kind: PoolKind, attrs: &Pool2dAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let k = int8_pool(ctx, kind, attrs)?;
    let shape = k.output_shape();
    expect_output_shape(ctx, 0, &shape)?;
    let mut out = vec![0i8; shape.iter().product()];
    k.run(&int8_values(input)?, &mut out)
        .map_err(OpError::Kernel)?;
    from_int8(out, &shape, input)
}
