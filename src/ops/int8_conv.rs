//! CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED on int8 tensors, through
//! `kernels::int8::conv`.

use candle_core::Tensor as CTensor;

use super::quantized::{from_int8, graph_qparams, int8_values, qparams};
use super::{
    expect_output_shape, op_bail, spatial_padding, Arithmetic, EvalCtx, OpError, OpResult, Prepared,
};
use crate::graph::{
    Conv2dAttrs, DepthwiseConv2dAttrs, FullyConnectedAttrs, Graph, Node, Op, TensorData, TensorId,
};
use crate::kernels::int8::conv::{ConvGeometry, ConvInt8, FullyConnectedInt8};
use crate::kernels::simd;

/// Packs the weights of an int8 CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED once, for
/// the kernel level this process runs (`kernels::simd::active`). `None` when the op is
/// another one or its parameters do not pack: the op then runs the reference kernel,
/// which reports what is wrong.
pub fn prepare(graph: &Graph, node: &Node, arithmetic: Arithmetic) -> Option<Prepared> {
    let level = simd::active();
    let fid = node.input(1)?;
    let filter_tensor = graph.tensor(fid);
    let (Some(TensorData::I8(weights)), Some(q)) = (&filter_tensor.data, &filter_tensor.quant)
    else {
        return None;
    };
    let bias = match node.input(2) {
        None => None,
        Some(id) => match &graph.tensor(id).data {
            Some(TensorData::I32(values)) => Some(values.as_slice()),
            _ => return None,
        },
    };
    let input = graph_qparams(graph, node.input(0)?).ok()?;
    let output = graph_qparams(graph, *node.outputs.first()?).ok()?;
    match (&node.op, &filter_tensor.shape[..]) {
        (Op::Conv2d(a), &[out_c, k_h, k_w, in_c]) => {
            let conv = ConvInt8::new(input, &q.scale, output, a.activation, out_c)
                .ok()?
                .with_arithmetic(arithmetic);
            conv.pack_conv2d(weights, bias, (k_h, k_w, in_c), level)
                .ok()
                .map(Prepared::Int8Conv)
        }
        (Op::DepthwiseConv2d(a), &[1, k_h, k_w, out_c]) => {
            let conv = ConvInt8::new(input, &q.scale, output, a.activation, out_c)
                .ok()?
                .with_arithmetic(arithmetic);
            conv.pack_depthwise(weights, bias, (k_h, k_w), level)
                .ok()
                .map(Prepared::Int8Depthwise)
        }
        (Op::FullyConnected(a), &[units, depth]) => {
            let fc = FullyConnectedInt8::new(input, &q.scale, output, a.activation, units)
                .ok()?
                .with_arithmetic(arithmetic);
            fc.pack(weights, bias, depth, level)
                .ok()
                .map(Prepared::Int8FullyConnected)
        }
        _ => None,
    }
}

/// The int8 filter of a quantized op and its per-channel (or single) scales.
fn filter<'a>(ctx: &'a EvalCtx, slot: usize) -> OpResult<(&'a [i8], &'a [f32], TensorId)> {
    let id = ctx.input_id(slot)?;
    let t = ctx.graph.tensor(id);
    match (&t.data, &t.quant) {
        (Some(TensorData::I8(values)), Some(q)) => Ok((values, &q.scale, id)),
        _ => op_bail!(
            "filter '{}' must be a constant int8 tensor with scales",
            t.name
        ),
    }
}

/// The int32 bias, if the op has one.
fn bias<'a>(ctx: &'a EvalCtx, slot: usize) -> OpResult<Option<&'a [i32]>> {
    let Some(id) = ctx.node.input(slot) else {
        return Ok(None);
    };
    match &ctx.graph.tensor(id).data {
        Some(TensorData::I32(values)) => Ok(Some(values)),
        _ => op_bail!(
            "bias '{}' must be a constant int32 tensor",
            ctx.graph.tensor(id).name
        ),
    }
}

fn kernel_error(e: String) -> OpError {
    OpError(e)
}

/// The stepping both convolutions share: strides, dilations, padding.
struct Stepping {
    padding: crate::graph::Padding,
    stride: (usize, usize),
    dilation: (usize, usize),
    activation: crate::graph::FusedActivation,
}

/// CONV_2D (`depthwise` false, filter OHWI) or DEPTHWISE_CONV_2D (filter `[1, kh, kw, C]`).
fn convolution(ctx: &EvalCtx, s: Stepping, depthwise: bool) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (batch, in_h, in_w, in_c) = input.dims4()?;
    let (weights, scales, fid) = filter(ctx, 1)?;
    let (out_c, k_h, k_w, multiplier) = match (depthwise, &ctx.graph.tensor(fid).shape[..]) {
        (false, &[out_c, k_h, k_w, _]) => (out_c, k_h, k_w, 1),
        (true, &[1, k_h, k_w, out_c]) => {
            if in_c == 0 || out_c % in_c != 0 {
                op_bail!("filter has {out_c} channels, not a multiple of the input's {in_c}");
            }
            (out_c, k_h, k_w, out_c / in_c)
        }
        (false, _) => op_bail!("filter must have 4 dimensions (OHWI)"),
        (true, _) => op_bail!("filter must be [1, kh, kw, channels]"),
    };
    let (pad_top, _, out_h) = spatial_padding(s.padding, in_h, k_h, s.stride.0, s.dilation.0)?;
    let (pad_left, _, out_w) = spatial_padding(s.padding, in_w, k_w, s.stride.1, s.dilation.1)?;
    expect_output_shape(ctx, 0, &[batch, out_h, out_w, out_c])?;
    let g = ConvGeometry {
        batch,
        in_h,
        in_w,
        in_c,
        out_h,
        out_w,
        out_c,
        k_h,
        k_w,
        stride_h: s.stride.0,
        stride_w: s.stride.1,
        dilation_h: s.dilation.0,
        dilation_w: s.dilation.1,
        pad_top,
        pad_left,
        depth_multiplier: multiplier,
    };
    let mut out = vec![0i8; batch * out_h * out_w * out_c];
    let values = int8_values(input)?;
    match (depthwise, ctx.prepared) {
        (false, Some(Prepared::Int8Conv(packed))) => {
            packed.run(&g, &values, &mut out).map_err(kernel_error)?;
            return from_int8(out, &[batch, out_h, out_w, out_c], input);
        }
        (true, Some(Prepared::Int8Depthwise(packed))) => {
            packed.run(&g, &values, &mut out).map_err(kernel_error)?;
            return from_int8(out, &[batch, out_h, out_w, out_c], input);
        }
        _ => {}
    }
    let kernel = ConvInt8::new(
        qparams(ctx, ctx.input_id(0)?)?,
        scales,
        qparams(ctx, ctx.node.outputs[0])?,
        s.activation,
        out_c,
    )
    .map_err(kernel_error)?
    .with_arithmetic(ctx.arithmetic);
    let bias = bias(ctx, 2)?;
    if depthwise {
        kernel.depthwise(&g, &values, weights, bias, &mut out)
    } else {
        kernel.conv2d(&g, &values, weights, bias, &mut out)
    }
    .map_err(kernel_error)?;
    from_int8(out, &[batch, out_h, out_w, out_c], input)
}

pub fn conv2d(ctx: &EvalCtx, a: &Conv2dAttrs) -> OpResult<CTensor> {
    let stepping = Stepping {
        padding: a.padding,
        stride: (a.stride_h, a.stride_w),
        dilation: (a.dilation_h, a.dilation_w),
        activation: a.activation,
    };
    convolution(ctx, stepping, false)
}

pub fn depthwise(ctx: &EvalCtx, a: &DepthwiseConv2dAttrs) -> OpResult<CTensor> {
    let stepping = Stepping {
        padding: a.padding,
        stride: (a.stride_h, a.stride_w),
        dilation: (a.dilation_h, a.dilation_w),
        activation: a.activation,
    };
    convolution(ctx, stepping, true)
}

pub fn fully_connected(ctx: &EvalCtx, attrs: &FullyConnectedAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (weights, scales, fid) = filter(ctx, 1)?;
    let [units, depth] = ctx.graph.tensor(fid).shape[..] else {
        op_bail!("weights must be 2-D [units, depth]");
    };
    let count = input.elem_count();
    if depth == 0 || count % depth != 0 {
        op_bail!("input of {count} elements cannot be split into rows of {depth}");
    }
    let rows = count / depth;
    expect_output_shape(ctx, 0, &[rows, units])?;
    if let Some(Prepared::Int8FullyConnected(packed)) = ctx.prepared {
        let mut out = vec![0i8; rows * units];
        packed
            .run(rows, &int8_values(input)?, &mut out)
            .map_err(kernel_error)?;
        return from_int8(out, ctx.output_shape(0)?, input);
    }
    let kernel = FullyConnectedInt8::new(
        qparams(ctx, ctx.input_id(0)?)?,
        scales,
        qparams(ctx, ctx.node.outputs[0])?,
        attrs.activation,
        units,
    )
    .map_err(kernel_error)?
    .with_arithmetic(ctx.arithmetic);
    let mut out = vec![0i8; rows * units];
    kernel
        .run(
            rows,
            depth,
            &int8_values(input)?,
            weights,
            bias(ctx, 2)?,
            &mut out,
        )
        .map_err(kernel_error)?;
    from_int8(out, ctx.output_shape(0)?, input)
}

/// TRANSPOSE_CONV on int8: inputs are (output_shape, filter OHWI, input, optional bias).
pub fn transpose_conv(
    ctx: &EvalCtx,
    attrs: &crate::graph::TransposeConvAttrs,
) -> OpResult<CTensor> {
    use crate::kernels::int8::transpose_conv::{TransposeConvGeometry, TransposeConvInt8};
    let shape = ctx.const_ints(0)?;
    let input = ctx.input(2)?;
    let (batch, in_h, in_w, in_c) = input.dims4()?;
    let (weights, scales, fid) = filter(ctx, 1)?;
    let [out_c, k_h, k_w, _] = ctx.graph.tensor(fid).shape[..] else {
        op_bail!("filter must have 4 dimensions (OHWI)");
    };
    let [_, out_h, out_w, _] = shape[..] else {
        op_bail!("output_shape must have 4 entries, got {shape:?}");
    };
    let (out_h, out_w) = (out_h.max(0) as usize, out_w.max(0) as usize);
    expect_output_shape(ctx, 0, &[batch, out_h, out_w, out_c])?;
    let g = TransposeConvGeometry {
        batch,
        in_h,
        in_w,
        in_c,
        out_h,
        out_w,
        out_c,
        k_h,
        k_w,
        stride_h: attrs.stride_h,
        stride_w: attrs.stride_w,
        padding: attrs.padding,
    };
    let kernel = TransposeConvInt8::new(
        qparams(ctx, ctx.input_id(2)?)?,
        scales,
        qparams(ctx, ctx.node.outputs[0])?,
        attrs.activation,
        out_c,
    )
    .map_err(kernel_error)?
    .with_arithmetic(ctx.arithmetic);
    let mut out = vec![0i8; batch * out_h * out_w * out_c];
    kernel
        .run(&g, &int8_values(input)?, weights, bias(ctx, 3)?, &mut out)
        .map_err(kernel_error)?;
    from_int8(out, &[batch, out_h, out_w, out_c], input)
}

/// BATCH_MATMUL on int8 (both operands activations).
pub fn batch_matmul(ctx: &EvalCtx, adj_x: bool, adj_y: bool) -> OpResult<CTensor> {
    use crate::kernels::int8::batch_matmul::BatchMatMulInt8;
    let (lhs, rhs) = (ctx.input(0)?, ctx.input(1)?);
    let kernel = BatchMatMulInt8::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.input_id(1)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
        adj_x,
        adj_y,
    )
    .map_err(kernel_error)?;
    let shape = kernel
        .output_shape(lhs.dims(), rhs.dims())
        .map_err(kernel_error)?;
    expect_output_shape(ctx, 0, &shape)?;
    let mut out = vec![0i8; shape.iter().product()];
    kernel
        .run(
            lhs.dims(),
            &int8_values(lhs)?,
            rhs.dims(),
            &int8_values(rhs)?,
            &mut out,
        )
        .map_err(kernel_error)?;
    from_int8(out, ctx.output_shape(0)?, lhs)
}

/// RESIZE_BILINEAR on int8.
pub fn resize_bilinear(ctx: &EvalCtx, attrs: &crate::graph::ResizeAttrs) -> OpResult<CTensor> {
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
    .map_err(kernel_error)?
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
        .map_err(kernel_error)?;
    from_int8(out, &[batch, out_h, out_w, channels], input)
}
