//! RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR with TFLite's coordinate rules.

use candle_core::{DType as CDType, Tensor as CTensor};
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{expect_output_shape, op_bail, EvalCtx, OpError, OpResult};
use crate::graph::{DType, Graph, Node, Op, ResizeAttrs};
use crate::kernels::{resize_f32, run_on_host};
use crate::tflite::codec::OpVersionCtx;
use crate::tflite::fb;

pub struct Resize;

impl OpFamily for Resize {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        Some(Ok(match o.code {
            B::RESIZE_BILINEAR => {
                let o = o.op.builtin_options_as_resize_bilinear_options();
                Op::ResizeBilinear(ResizeAttrs {
                    align_corners: o.is_some_and(|o| o.align_corners()),
                    half_pixel_centers: o.is_some_and(|o| o.half_pixel_centers()),
                })
            }
            B::RESIZE_NEAREST_NEIGHBOR => {
                let o = o.op.builtin_options_as_resize_nearest_neighbor_options();
                Op::ResizeNearestNeighbor(ResizeAttrs {
                    align_corners: o.is_some_and(|o| o.align_corners()),
                    half_pixel_centers: o.is_some_and(|o| o.half_pixel_centers()),
                })
            }
            _ => return None,
        }))
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        match op {
            Op::ResizeBilinear(_) => Some(fb::BuiltinOperator::RESIZE_BILINEAR),
            Op::ResizeNearestNeighbor(_) => Some(fb::BuiltinOperator::RESIZE_NEAREST_NEIGHBOR),
            _ => None,
        }
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        use fb::BuiltinOptions as O;
        Ok(match &node.op {
            Op::ResizeBilinear(a) => (
                O::ResizeBilinearOptions,
                Some(
                    fb::ResizeBilinearOptions::create(
                        fbb,
                        &fb::ResizeBilinearOptionsArgs {
                            align_corners: a.align_corners,
                            half_pixel_centers: a.half_pixel_centers,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            Op::ResizeNearestNeighbor(a) => (
                O::ResizeNearestNeighborOptions,
                Some(
                    fb::ResizeNearestNeighborOptions::create(
                        fbb,
                        &fb::ResizeNearestNeighborOptionsArgs {
                            align_corners: a.align_corners,
                            half_pixel_centers: a.half_pixel_centers,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            other => return Err(not_in_family("resize", other).to_string()),
        })
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use DType::*;
        let first = OpVersionCtx::first;
        match op {
            Op::ResizeBilinear(a) => first(&[
                (v.is(0, I16), 4),
                (a.half_pixel_centers, 3),
                (v.is(0, I8), 2),
            ]),
            Op::ResizeNearestNeighbor(a) => first(&[
                (v.is(0, I16), 4),
                (a.half_pixel_centers || a.align_corners, 3),
                (v.is(0, I8), 2),
            ]),
            _ => 1,
        }
    }

    fn param_rule(_op: &Op) -> ParamRule {
        ParamRule::SameScale
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        None
    }

    fn int8_support(op: &Op) -> Int8Support {
        match op {
            // Copies values; the int8 step only keeps the carrier's dtype.
            Op::ResizeNearestNeighbor(_) => Int8Support::KernelMovingValues,
            _ => Int8Support::Kernel,
        }
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::ResizeBilinear(attrs) => bilinear(ctx, attrs)?,
            Op::ResizeNearestNeighbor(attrs) => nearest(ctx, attrs)?,
            other => return Err(not_in_family("resize", other)),
        }])
    }

    fn has_int16_kernel(_op: &Op) -> bool {
        true
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![resize_int16(ctx)?])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::ResizeBilinear(attrs) => bilinear_int8(ctx, attrs)?,
            Op::ResizeNearestNeighbor(attrs) => nearest_int8(ctx, attrs)?,
            other => return Err(not_in_family("resize", other)),
        }])
    }
}

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

fn bilinear(ctx: &EvalCtx, attrs: &ResizeAttrs) -> OpResult<CTensor> {
    let g = geometry(ctx, attrs)?;
    let shape = [g.batch, g.out_h, g.out_w, g.channels];
    Ok(run_on_host(
        "resize_bilinear",
        ctx.input(0)?,
        &shape,
        |x, y| resize_f32::bilinear(&g, x, y),
    )?)
}

fn nearest(ctx: &EvalCtx, attrs: &ResizeAttrs) -> OpResult<CTensor> {
    let g = geometry(ctx, attrs)?;
    let shape = [g.batch, g.out_h, g.out_w, g.channels];
    Ok(run_on_host(
        "resize_nearest_neighbor",
        ctx.input(0)?,
        &shape,
        |x, y| resize_f32::nearest(&g, x, y),
    )?)
}

/// RESIZE_BILINEAR on int8.
fn bilinear_int8(ctx: &EvalCtx, attrs: &crate::graph::ResizeAttrs) -> OpResult<CTensor> {
    use crate::kernels::int8::resize::{ResizeBilinearInt8, ResizeDims};
    let input = ctx.input(0)?;
    let (batch, in_h, in_w, channels) = input.dims4()?;
    let size = ctx.const_ints(1)?;
    let [out_h, out_w] = size[..] else {
        op_bail!("size must have 2 entries, got {size:?}");
    };
    let (out_h, out_w) = (out_h.max(0) as usize, out_w.max(0) as usize);
    expect_output_shape(ctx, 0, &[batch, out_h, out_w, channels])?;
    let kernel = ResizeBilinearInt8::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
        attrs.align_corners,
        attrs.half_pixel_centers,
    )
    .map_err(OpError::Kernel)?
    .with_arithmetic(ctx.arithmetic);
    let dims = ResizeDims {
        batch,
        in_h,
        in_w,
        channels,
        out_h,
        out_w,
    };
    let mut out = vec![0i8; batch * out_h * out_w * channels];
    kernel
        .run(&dims, &int8_values(input)?, &mut out)
        .map_err(OpError::Kernel)?;
    from_int8(out, &[batch, out_h, out_w, channels], input)
}

/// RESIZE_NEAREST_NEIGHBOR only copies values, but through the float kernel: bit
/// patterns (0..=255) survive the round trip through f32 exactly.
fn nearest_int8(ctx: &EvalCtx, attrs: &crate::graph::ResizeAttrs) -> OpResult<CTensor> {
    let out = nearest(ctx, attrs)?;
    if ctx.input(0)?.dtype() == CDType::U8 {
        return Ok(out.to_dtype(CDType::U8)?);
    }
    Ok(out)
}

/// RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR in 16x8 (`kernels::int16::resize`):
/// int8's fixed-point bilinear kernel on int16 codes, and the nearest-pixel copy.
fn resize_int16(ctx: &EvalCtx) -> OpResult<CTensor> {
    use super::int16_tensor::{from_int16, int16_values};
    use crate::kernels::int16::resize::{ResizeBilinearInt8, ResizeDims, ResizeNearest};
    let g = geometry(
        ctx,
        match &ctx.node.op {
            Op::ResizeBilinear(attrs) | Op::ResizeNearestNeighbor(attrs) => attrs,
            other => return Err(not_in_family("resize (16x8)", other)),
        },
    )?;
    let input = ctx.input(0)?;
    let dims = ResizeDims {
        batch: g.batch,
        in_h: g.in_h,
        in_w: g.in_w,
        channels: g.channels,
        out_h: g.out_h,
        out_w: g.out_w,
    };
    let values = int16_values(input)?;
    let mut out = vec![0i16; g.batch * g.out_h * g.out_w * g.channels];
    match &ctx.node.op {
        Op::ResizeBilinear(attrs) => ResizeBilinearInt8::new(
            qparams(ctx, ctx.input_id(0)?)?,
            qparams(ctx, ctx.node.outputs[0])?,
            attrs.align_corners,
            attrs.half_pixel_centers,
        )
        .and_then(|k| k.run_int16(&dims, &values, &mut out)),
        _ => {
            let (align, half) = match &ctx.node.op {
                Op::ResizeNearestNeighbor(a) => (a.align_corners, a.half_pixel_centers),
                _ => (false, false),
            };
            ResizeNearest::new(align, half).run(&dims, &values, &mut out)
        }
    }
    .map_err(OpError::Kernel)?;
    from_int16(out, &[g.batch, g.out_h, g.out_w, g.channels], input)
}
