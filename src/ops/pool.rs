//! AVERAGE_POOL_2D and MAX_POOL_2D through qdbg's own kernels: candle's pooling has no
//! padding, and TFLite's SAME average ignores the padded cells.

use candle_core::Tensor as CTensor;

use super::{activation::apply_fused, expect_output_shape, spatial_padding, EvalCtx, OpResult};
use crate::graph::{Pool2dAttrs, PoolKind};
use crate::kernels::{pool_f32, run_on_host};

pub fn pool2d(ctx: &EvalCtx, kind: PoolKind, attrs: &Pool2dAttrs) -> OpResult<CTensor> {
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
