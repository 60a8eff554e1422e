//! RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR with TFLite's coordinate rules.

use candle_core::Tensor as CTensor;

use super::{expect_output_shape, op_bail, EvalCtx, OpResult};
use crate::graph::ResizeAttrs;
use crate::kernels::{resize_f32, run_on_host};

fn geometry(ctx: &EvalCtx, attrs: &ResizeAttrs) -> OpResult<resize_f32::ResizeGeometry> {
    let (batch, in_h, in_w, channels) = ctx.input(0)?.dims4()?;
    let size = ctx.const_ints(1)?;
    let [out_h, out_w] = size[..] else {
        op_bail!("size must have 2 entries (height, width), got {size:?}");
    };
    if out_h < 1 || out_w < 1 {
        op_bail!("size {size:?} must be positive");
    }
    // Every output pixel reads input pixels: an empty input has none to read (found by
    // fuzzing: the kernel indexed into an empty slice).
    if in_h == 0 || in_w == 0 {
        op_bail!("the input is {in_h}x{in_w} pixels: there is nothing to resize from");
    }
    expect_output_shape(ctx, 0, &[batch, out_h as usize, out_w as usize, channels])?;
    if attrs.align_corners && attrs.half_pixel_centers {
        op_bail!("align_corners and half_pixel_centers cannot both be set");
    }
    Ok(resize_f32::ResizeGeometry {
        batch,
        in_h,
        in_w,
        channels,
        out_h: out_h as usize,
        out_w: out_w as usize,
        align_corners: attrs.align_corners,
        half_pixel_centers: attrs.half_pixel_centers,
    })
}

pub fn bilinear(ctx: &EvalCtx, attrs: &ResizeAttrs) -> OpResult<CTensor> {
    let g = geometry(ctx, attrs)?;
    let shape = [g.batch, g.out_h, g.out_w, g.channels];
    Ok(run_on_host(
        "resize_bilinear",
        ctx.input(0)?,
        &shape,
        |x, y| resize_f32::bilinear(&g, x, y),
    )?)
}

pub fn nearest(ctx: &EvalCtx, attrs: &ResizeAttrs) -> OpResult<CTensor> {
    let g = geometry(ctx, attrs)?;
    let shape = [g.batch, g.out_h, g.out_w, g.channels];
    Ok(run_on_host(
        "resize_nearest_neighbor",
        ctx.input(0)?,
        &shape,
        |x, y| resize_f32::nearest(&g, x, y),
    )?)
}
