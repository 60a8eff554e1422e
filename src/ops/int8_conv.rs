//! What the int8 CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV and FULLY_CONNECTED of the
//! conv, depthwise and dense families share: weights packed once per executor for the SIMD
//! kernels, the constant filter and bias, and the convolution driver of CONV_2D and
//! DEPTHWISE_CONV_2D (`kernels::int8::conv`).

use candle_core::Tensor as CTensor;

use super::int8_tensor::{from_int8, graph_qparams, int8_values, qparams};
use super::{
    expect_output_shape, op_bail, spatial_padding, Arithmetic, EvalCtx, OpError, OpResult, Prepared,
};
use crate::graph::{Graph, Node, Op, TensorData, TensorId};
use crate::kernels::int8::conv::{ConvGeometry, ConvInt8, FullyConnectedInt8};
use crate::kernels::simd;

/// The weights of a conv-like node prepared for the kernel that runs it: packed for the
/// int8 kernels when its tensors are int8, else `float()`'s layout for the float kernel.
pub(super) fn prepare_int8_or_float(
    graph: &Graph,
    node: &Node,
    arithmetic: Arithmetic,
    float: impl FnOnce() -> OpResult<Option<Prepared>>,
) -> OpResult<Option<Prepared>> {
    if super::quantized::node_is_quantized(graph, node) {
        if super::quantized::node_is_int16(graph, node) {
            // The 16x8 kernels read the graph's weights as they are.
            return Ok(None);
        }
        // Packing failures (odd parameters) are left for the op to report when it runs.
        return Ok(prepare(graph, node, arithmetic));
    }
    float()
}

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

/// A quantized TRANSPOSE_CONV's geometry, int8 or 16x8 alike: TFLite's inputs are the
/// output shape (slot 0), the OHWI filter (slot 1) and the data input (slot 2). Also the
/// filter's codes and per-channel scales.
pub(super) fn transpose_conv_geometry<'a>(
    ctx: &'a EvalCtx,
    attrs: &crate::graph::TransposeConvAttrs,
) -> OpResult<(
    crate::kernels::int8::conv::transpose_conv::TransposeConvGeometry,
    &'a [i8],
    &'a [f32],
)> {
    let shape = ctx.const_ints(0)?;
    let (batch, in_h, in_w, in_c) = ctx.input(2)?.dims4()?;
    let (weights, scales, fid) = filter(ctx, 1)?;
    let [out_c, k_h, k_w, _] = ctx.graph.tensor(fid).shape[..] else {
        op_bail!("filter must have 4 dimensions (OHWI)");
    };
    let [_, out_h, out_w, _] = shape[..] else {
        op_bail!("output_shape must have 4 entries, got {shape:?}");
    };
    let (out_h, out_w) = (out_h.max(0) as usize, out_w.max(0) as usize);
    super::expect_output_shape(ctx, 0, &[batch, out_h, out_w, out_c])?;
    let g = crate::kernels::int8::conv::transpose_conv::TransposeConvGeometry {
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
    Ok((g, weights, scales))
}

/// The int8 filter of a quantized op and its per-channel (or single) scales.
pub(super) fn filter<'a>(
    ctx: &'a EvalCtx,
    slot: usize,
) -> OpResult<(&'a [i8], &'a [f32], TensorId)> {
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
pub(super) fn bias<'a>(ctx: &'a EvalCtx, slot: usize) -> OpResult<Option<&'a [i32]>> {
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

/// The stepping both convolutions share: strides, dilations, padding.
pub(super) struct Stepping {
    pub padding: crate::graph::Padding,
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub activation: crate::graph::FusedActivation,
}

/// The window geometry of a CONV_2D (`depthwise` false, filter OHWI) or
/// DEPTHWISE_CONV_2D (filter `[1, kh, kw, C]`) on its input, checked against the declared
/// output shape; int8 and 16x8 share it.
pub(super) fn geometry(ctx: &EvalCtx, s: &Stepping, depthwise: bool) -> OpResult<ConvGeometry> {
    let input = ctx.input(0)?;
    let (batch, in_h, in_w, in_c) = input.dims4()?;
    let fid = ctx.input_id(1)?;
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
    Ok(ConvGeometry {
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
    })
}

/// CONV_2D (`depthwise` false, filter OHWI) or DEPTHWISE_CONV_2D (filter `[1, kh, kw, C]`).
pub(super) fn convolution(ctx: &EvalCtx, s: Stepping, depthwise: bool) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let g = geometry(ctx, &s, depthwise)?;
    let (weights, scales, _) = filter(ctx, 1)?;
    let (batch, out_h, out_w, out_c) = (g.batch, g.out_h, g.out_w, g.out_c);
    let mut out = vec![0i8; batch * out_h * out_w * out_c];
    let values = int8_values(input)?;
    match (depthwise, ctx.prepared) {
        (false, Some(Prepared::Int8Conv(packed))) => {
            packed.run(&g, &values, &mut out).map_err(OpError::Kernel)?;
            return from_int8(out, &[batch, out_h, out_w, out_c], input);
        }
        (true, Some(Prepared::Int8Depthwise(packed))) => {
            packed.run(&g, &values, &mut out).map_err(OpError::Kernel)?;
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
    .map_err(OpError::Kernel)?
    .with_arithmetic(ctx.arithmetic);
    let bias = bias(ctx, 2)?;
    if depthwise {
        kernel.depthwise(&g, &values, weights, bias, &mut out)
    } else {
        kernel.conv2d(&g, &values, weights, bias, &mut out)
    }
    .map_err(OpError::Kernel)?;
    from_int8(out, &[batch, out_h, out_w, out_c], input)
}
