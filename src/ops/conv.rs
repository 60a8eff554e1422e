//! CONV_2D and TRANSPOSE_CONV on candle.
//!
//! TFLite stores activations NHWC and filters OHWI; candle convolves NCHW with OIHW
//! filters and only pads symmetrically, so the input is padded explicitly (TFLite's SAME
//! may need one more pixel after than before). 1x1 convolutions skip the layout dance
//! entirely: on NHWC data they are a plain matrix product.

use candle_core::Tensor as CTensor;
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_conv::{bias, convolution, Stepping};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{
    activation::apply_fused, expect_output_shape, op_bail, spatial_padding, EvalCtx, OpError,
    OpResult, Prepared,
};
use super::{int8_conv, Arithmetic};
use crate::graph::{
    Conv2dAttrs, DType, FusedActivation, Graph, Node, Op, Padding, TensorData, TensorId,
    TransposeConvAttrs,
};
use crate::kernels::pointwise_f32::{self, PackedPointwise, PointwiseGeometry};
use crate::kernels::{
    conv_f32, im2col_f32, int8::conv::ConvGeometry, run_on_host, run_on_host_filling,
};
use crate::tflite::codec::{
    read_activation_or_none, read_padding, read_positive, write_activation, write_int,
    write_padding, OpVersionCtx,
};
use crate::tflite::fb;

pub struct Conv;

impl OpFamily for Conv {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        let op = o.op;
        let read = || -> Result<Option<Op>, String> {
            Ok(Some(match o.code {
                B::CONV_2D => {
                    let o = op.builtin_options_as_conv_2doptions();
                    Op::Conv2d(Conv2dAttrs {
                        padding: read_padding(o.map_or(fb::Padding::SAME, |o| o.padding()))?,
                        stride_h: read_positive(o.map_or(1, |o| o.stride_h()), "stride_h")?,
                        stride_w: read_positive(o.map_or(1, |o| o.stride_w()), "stride_w")?,
                        dilation_h: read_positive(
                            o.map_or(1, |o| o.dilation_h_factor()),
                            "dilation_h",
                        )?,
                        dilation_w: read_positive(
                            o.map_or(1, |o| o.dilation_w_factor()),
                            "dilation_w",
                        )?,
                        activation: read_activation_or_none(
                            o.map(|o| o.fused_activation_function()),
                        )?,
                    })
                }
                B::TRANSPOSE_CONV => {
                    let o = op.builtin_options_as_transpose_conv_options();
                    Op::TransposeConv(TransposeConvAttrs {
                        padding: read_padding(o.map_or(fb::Padding::SAME, |o| o.padding()))?,
                        stride_h: read_positive(o.map_or(1, |o| o.stride_h()), "stride_h")?,
                        stride_w: read_positive(o.map_or(1, |o| o.stride_w()), "stride_w")?,
                        activation: read_activation_or_none(
                            o.map(|o| o.fused_activation_function()),
                        )?,
                    })
                }
                _ => return Ok(None),
            }))
        };
        read().transpose()
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        match op {
            Op::Conv2d(_) => Some(fb::BuiltinOperator::CONV_2D),
            Op::TransposeConv(_) => Some(fb::BuiltinOperator::TRANSPOSE_CONV),
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
            Op::Conv2d(a) => (
                O::Conv2DOptions,
                Some(
                    fb::Conv2DOptions::create(
                        fbb,
                        &fb::Conv2DOptionsArgs {
                            padding: write_padding(a.padding),
                            stride_w: write_int(a.stride_w, "stride_w")?,
                            stride_h: write_int(a.stride_h, "stride_h")?,
                            fused_activation_function: write_activation(a.activation),
                            dilation_w_factor: write_int(a.dilation_w, "dilation_w")?,
                            dilation_h_factor: write_int(a.dilation_h, "dilation_h")?,
                            ..Default::default()
                        },
                    )
                    .as_union_value(),
                ),
            ),
            Op::TransposeConv(a) => (
                O::TransposeConvOptions,
                Some(
                    fb::TransposeConvOptions::create(
                        fbb,
                        &fb::TransposeConvOptionsArgs {
                            padding: write_padding(a.padding),
                            stride_w: write_int(a.stride_w, "stride_w")?,
                            stride_h: write_int(a.stride_h, "stride_h")?,
                            fused_activation_function: write_activation(a.activation),
                            ..Default::default()
                        },
                    )
                    .as_union_value(),
                ),
            ),
            other => return Err(not_in_family("conv", other).to_string()),
        })
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use DType::*;
        let first = OpVersionCtx::first;
        match op {
            Op::Conv2d(_) => {
                let grouped = v
                    .input(0)
                    .zip(v.input(1))
                    .is_some_and(|(x, w)| !x.shape.is_empty() && x.shape.get(3) != w.shape.get(3));
                first(&[
                    (grouped, 6),
                    (v.int8(), 3),
                    (v.hybrid() && v.per_channel(v.input(1), 0), 5),
                    (v.hybrid(), 2),
                ])
            }
            Op::TransposeConv(a) => first(&[
                (a.activation != FusedActivation::None, 4),
                (v.node().inputs.len() == 4 && v.node().input(3).is_some(), 3),
                (v.is(1, I8), 2),
            ]),
            _ => 1,
        }
    }

    fn param_rule(_op: &Op) -> ParamRule {
        ParamRule::Own
    }

    fn weight_slots(op: &Op) -> Option<WeightSlots> {
        match op {
            Op::Conv2d(_) => Some(WeightSlots::Filter {
                filter: 1,
                channel_axis: 0,
                bias: 2,
                data: 0,
            }),
            // TRANSPOSE_CONV: (output_shape, filter OHWI, input, bias).
            Op::TransposeConv(_) => Some(WeightSlots::Filter {
                filter: 1,
                channel_axis: 0,
                bias: 3,
                data: 2,
            }),
            _ => None,
        }
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::Kernel
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::Conv2d(attrs) => conv2d(ctx, attrs)?,
            Op::TransposeConv(attrs) => transpose_conv(ctx, attrs)?,
            other => return Err(not_in_family("conv", other)),
        }])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::Conv2d(attrs) => conv2d_int8(ctx, attrs)?,
            Op::TransposeConv(attrs) => transpose_conv_int8(ctx, attrs)?,
            other => return Err(not_in_family("conv", other)),
        }])
    }

    fn has_int16_kernel(op: &Op) -> bool {
        matches!(op, Op::Conv2d(_) | Op::TransposeConv(_))
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let a = match &ctx.node.op {
            Op::Conv2d(a) => a,
            Op::TransposeConv(attrs) => {
                return Ok(vec![super::int16_conv::transpose_conv16(ctx, attrs)?]);
            }
            other => return Err(not_in_family("conv (16x8)", other)),
        };
        let stepping = Stepping {
            padding: a.padding,
            stride: (a.stride_h, a.stride_w),
            dilation: (a.dilation_h, a.dilation_w),
            activation: a.activation,
        };
        Ok(vec![super::int16_conv::convolution16(
            ctx, stepping, false,
        )?])
    }

    fn prepare(
        graph: &Graph,
        node: &Node,
        constant: &dyn Fn(TensorId) -> Option<CTensor>,
        arithmetic: Arithmetic,
    ) -> OpResult<Option<Prepared>> {
        int8_conv::prepare_int8_or_float(graph, node, arithmetic, || match node.op {
            Op::Conv2d(_) => prepare_float(graph, node, constant),
            _ => Ok(None),
        })
    }
}

/// Re-lays-out constant filters once: packed for the pointwise kernel (1x1 on the CPU),
/// `[in, out]` for other 1x1 convolutions, OIHW otherwise.
fn prepare_float(
    graph: &Graph,
    node: &Node,
    constant: &dyn Fn(TensorId) -> Option<CTensor>,
) -> OpResult<Option<Prepared>> {
    let Some(filter) = node.input(1).and_then(constant) else {
        return Ok(None);
    };
    let bias = node.input(2).and_then(constant);
    let Some(fid) = node.input(1) else {
        return Ok(None);
    };
    let shape = &graph.tensor(fid).shape;
    if shape.len() != 4 {
        op_bail!("filter must have 4 dimensions (OHWI), got {shape:?}");
    }
    let host = |id: Option<TensorId>| -> Option<Vec<f32>> {
        graph.tensor(id?).data.as_ref().and_then(TensorData::to_f32)
    };
    let host_bias = || match node.input(2) {
        Some(id) => host(Some(id)),
        None => Some(Vec::new()),
    };
    if shape[1] == 1 && shape[2] == 1 {
        if filter.device().is_cpu() {
            if let (Some(oi), Some(bias)) = (host(Some(fid)), host_bias()) {
                // `None` when the sizes disagree: left to candle's path to report.
                if let Some(packed) = PackedPointwise::new(&oi, shape[0], shape[3], &bias) {
                    return Ok(Some(Prepared::Pointwise(packed)));
                }
            }
        }
        let weights_io = filter.reshape((shape[0], shape[3]))?.t()?.contiguous()?;
        return Ok(Some(Prepared::MatMul { weights_io, bias }));
    }
    // (No input channels: nothing to pack; candle's path reports or computes it.)
    if filter.device().is_cpu() && shape[3] > 0 && im2col_f32::suits(shape[0], shape[1], shape[2]) {
        if let (Some(ohwi), Some(bias)) = (host(Some(fid)), host_bias()) {
            // `None` when the sizes disagree: left to candle's path to report.
            if let Some(packed) =
                im2col_f32::pack_filter(&ohwi, shape[0], shape[1], shape[2], shape[3], &bias)
            {
                return Ok(Some(Prepared::Im2colConv(packed)));
            }
        }
    }
    if filter.device().is_cpu() && conv_f32::suits(shape[0], shape[1], shape[2]) {
        if let (Some(ohwi), Some(bias)) = (host(Some(fid)), host_bias()) {
            if ohwi.len() == shape.iter().product::<usize>() {
                let filter_hwio =
                    conv_f32::filter_hwio(&ohwi, shape[0], shape[1], shape[2], shape[3]);
                return Ok(Some(Prepared::DirectConv { filter_hwio, bias }));
            }
        }
    }
    let filter_oihw = filter.permute((0, 3, 1, 2))?.contiguous()?;
    Ok(Some(Prepared::Conv { filter_oihw, bias }))
}

fn conv2d(ctx: &EvalCtx, attrs: &Conv2dAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (batch, in_h, in_w, in_c) = input.dims4()?;
    let filter_shape = ctx.graph.tensor(ctx.input_id(1)?).shape.clone();
    let [out_c, k_h, k_w, k_c] = filter_shape[..] else {
        op_bail!("filter must have 4 dimensions (OHWI), got {filter_shape:?}");
    };
    if k_c != in_c {
        op_bail!("filter expects {k_c} input channels, input has {in_c}");
    }
    let (pad_top, pad_bottom, out_h) =
        spatial_padding(attrs.padding, in_h, k_h, attrs.stride_h, attrs.dilation_h)?;
    let (pad_left, pad_right, out_w) =
        spatial_padding(attrs.padding, in_w, k_w, attrs.stride_w, attrs.dilation_w)?;
    expect_output_shape(ctx, 0, &[batch, out_h, out_w, out_c])?;

    let geometry = || ConvGeometry {
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
        dilation_h: attrs.dilation_h,
        dilation_w: attrs.dilation_w,
        pad_top,
        pad_left,
        depth_multiplier: 1,
    };
    if let (Some(Prepared::Im2colConv(packed)), true) = (ctx.prepared, input.device().is_cpu()) {
        if packed.in_c() != k_h * k_w * in_c || packed.out_c() != out_c {
            op_bail!("internal: the packed filter does not match the op's shapes");
        }
        let g = geometry();
        let fused = pointwise_f32::fused_clamp(attrs.activation);
        let clamp = fused.flatten();
        // SAFETY: `conv2d_uninit` writes every element of its output (or panics on sizes
        // that do not match `g`, which come from the input tensor and `spatial_padding`).
        let out = unsafe {
            run_on_host_filling(
                "conv2d_im2col",
                input,
                &[batch, out_h, out_w, out_c],
                |x, y| im2col_f32::conv2d_uninit(&g, x, packed, clamp, y),
            )?
        };
        return match fused {
            Some(_) => Ok(out),
            None => apply_fused(out, attrs.activation),
        };
    }
    if let (Some(Prepared::DirectConv { filter_hwio, bias }), true) =
        (ctx.prepared, input.device().is_cpu())
    {
        if filter_hwio.len() != out_c * k_h * k_w * in_c
            || !(bias.is_empty() || bias.len() == out_c)
        {
            op_bail!("filter or bias size does not match {out_c} output channels");
        }
        let g = geometry();
        let out = run_on_host("conv2d", input, &[batch, out_h, out_w, out_c], |x, y| {
            conv_f32::conv2d(&g, x, filter_hwio, bias, y)
        })?;
        return apply_fused(out, attrs.activation);
    }

    if let (Some(Prepared::Pointwise(packed)), true) = (ctx.prepared, input.device().is_cpu()) {
        if packed.in_c() != in_c || packed.out_c() != out_c || k_h != 1 || k_w != 1 {
            op_bail!("internal: the packed 1x1 filter does not match the op's shapes");
        }
        return pointwise(input, packed, attrs, out_h, out_w);
    }

    let prepared;
    let (weights, bias) = match ctx.prepared {
        // The packed filter serves the CPU only; elsewhere candle's path runs on the inputs.
        Some(p) if !matches!(p, Prepared::Pointwise(_) | Prepared::Im2colConv(_)) => {
            (p, bias_of(p))
        }
        _ => {
            let filter = ctx.input(1)?;
            prepared = if k_h == 1 && k_w == 1 {
                Prepared::MatMul {
                    weights_io: filter.reshape((out_c, in_c))?.t()?.contiguous()?,
                    bias: None,
                }
            } else {
                Prepared::Conv {
                    filter_oihw: filter.permute((0, 3, 1, 2))?.contiguous()?,
                    bias: None,
                }
            };
            let bias = if ctx.has_input(2) {
                Some(ctx.input(2)?)
            } else {
                None
            };
            (&prepared, bias)
        }
    };

    let out = match weights {
        Prepared::MatMul { weights_io, .. } => {
            // A 1x1 filter with stride s reads every s-th pixel; padding never applies.
            let picked = if attrs.stride_h == 1 && attrs.stride_w == 1 {
                input.clone()
            } else {
                subsample(input, attrs.stride_h, attrs.stride_w, out_h, out_w)?
            };
            picked
                .reshape((batch * out_h * out_w, in_c))?
                .matmul(weights_io)?
                .reshape((batch, out_h, out_w, out_c))?
        }
        Prepared::Conv { filter_oihw, .. } => {
            let nchw = input.permute((0, 3, 1, 2))?;
            let padded = nchw
                .pad_with_zeros(2, pad_top, pad_bottom)?
                .pad_with_zeros(3, pad_left, pad_right)?
                .contiguous()?;
            if attrs.dilation_h != attrs.dilation_w {
                op_bail!(
                    "dilation {}x{} differs per axis; qdbg supports equal dilations",
                    attrs.dilation_h,
                    attrs.dilation_w
                );
            }
            let out = if attrs.stride_h == attrs.stride_w {
                padded.conv2d(filter_oihw, 0, attrs.stride_h, attrs.dilation_h, 1)?
            } else {
                // candle takes one stride for both axes: convolve densely, then subsample.
                let dense = padded.conv2d(filter_oihw, 0, 1, attrs.dilation_h, 1)?;
                let nhwc = dense.permute((0, 2, 3, 1))?;
                let picked = subsample(&nhwc, attrs.stride_h, attrs.stride_w, out_h, out_w)?;
                picked.permute((0, 3, 1, 2))?
            };
            out.permute((0, 2, 3, 1))?
        }
        _ => op_bail!("internal: CONV_2D was given another op's prepared weights"),
    };
    let out = match bias {
        Some(b) => out.broadcast_add(b)?,
        None => out,
    };
    apply_fused(out.contiguous()?, attrs.activation)
}

/// A 1x1 convolution through the packed kernel, bias and ReLU-family activations fused;
/// strided ones read every s-th pixel in place (padding never applies to a 1x1 filter).
fn pointwise(
    input: &CTensor,
    packed: &PackedPointwise,
    attrs: &Conv2dAttrs,
    out_h: usize,
    out_w: usize,
) -> OpResult<CTensor> {
    let (batch, in_h, in_w, _) = input.dims4()?;
    let g = PointwiseGeometry {
        batch,
        in_h,
        in_w,
        out_h,
        out_w,
        stride_h: attrs.stride_h,
        stride_w: attrs.stride_w,
    };
    let fused = pointwise_f32::fused_clamp(attrs.activation);
    let clamp = fused.flatten();
    let shape = [batch, out_h, out_w, packed.out_c()];
    // SAFETY: `run_uninit` writes every element of its output (or panics on sizes that
    // do not match `g`, which come from the input tensor and `spatial_padding`).
    let out = unsafe {
        run_on_host_filling("conv2d_1x1", input, &shape, |x, y| {
            packed.run_uninit_shared(x, &g, clamp, y)
        })?
    };
    match fused {
        Some(_) => Ok(out),
        None => apply_fused(out, attrs.activation),
    }
}

fn bias_of(p: &Prepared) -> Option<&CTensor> {
    match p {
        Prepared::Conv { bias, .. } | Prepared::MatMul { bias, .. } => bias.as_ref(),
        _ => None,
    }
}

/// Rows and columns `0, s, 2s, ...` of an NHWC tensor.
fn subsample(
    x: &CTensor,
    stride_h: usize,
    stride_w: usize,
    out_h: usize,
    out_w: usize,
) -> OpResult<CTensor> {
    let device = x.device();
    let rows: Vec<u32> = (0..out_h).map(|i| (i * stride_h) as u32).collect();
    let cols: Vec<u32> = (0..out_w).map(|i| (i * stride_w) as u32).collect();
    let rows = CTensor::from_vec(rows, out_h, device)?;
    let cols = CTensor::from_vec(cols, out_w, device)?;
    // Contiguous first: index_select reads only contiguous storage, and `x` may be a
    // strided view (a SLICE or SPLIT output).
    Ok(x.contiguous()?
        .index_select(&rows, 1)?
        .index_select(&cols, 2)?)
}

/// TRANSPOSE_CONV: inputs are (output_shape, filter OHWI, input, optional bias).
fn transpose_conv(ctx: &EvalCtx, attrs: &TransposeConvAttrs) -> OpResult<CTensor> {
    let output_shape = ctx.const_ints(0)?;
    let filter = ctx.input(1)?;
    let input = ctx.input(2)?;
    let out_c = filter.dims4()?.0;
    let [_, out_h, out_w, shape_c] = output_shape[..] else {
        op_bail!("output_shape must have 4 entries, got {output_shape:?}");
    };
    if shape_c as usize != out_c || out_h < 1 || out_w < 1 {
        op_bail!("output_shape {output_shape:?} does not match the filter's {out_c} channels");
    }
    let (out_h, out_w) = (out_h as usize, out_w as usize);
    expect_output_shape(ctx, 0, &[input.dims()[0], out_h, out_w, out_c])?;
    let bias = if ctx.has_input(3) {
        Some(ctx.input(3)?)
    } else {
        None
    };
    let geometry = Transposed {
        padding: attrs.padding,
        stride_h: attrs.stride_h,
        stride_w: attrs.stride_w,
        out_h,
        out_w,
    };
    apply_fused(
        transposed(input, filter, bias, &geometry)?,
        attrs.activation,
    )
}

/// Where a transposed convolution writes: TFLite's output size and padding mode.
pub struct Transposed {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

/// The transposed convolution TRANSPOSE_CONV and MediaPipe's Convolution2DTransposeBias
/// share: the full scatter of an NHWC `input` through an OHWI `filter`, cropped to the
/// output size (SAME: centred, the odd pixel cropped after), plus the bias. The caller
/// checks the output size against the model's.
pub fn transposed(
    input: &CTensor,
    filter: &CTensor,
    bias: Option<&CTensor>,
    g: &Transposed,
) -> OpResult<CTensor> {
    let (_, in_h, in_w, in_c) = input.dims4()?;
    let (out_c, k_h, k_w, k_c) = filter.dims4()?;
    if k_c != in_c {
        op_bail!("filter expects {k_c} input channels, input has {in_c}");
    }
    if g.stride_h != g.stride_w {
        op_bail!(
            "strides {}x{} differ per axis; qdbg supports equal strides for transposed \
             convolutions",
            g.stride_h,
            g.stride_w
        );
    }
    let stride = g.stride_h;
    let (out_h, out_w) = (g.out_h, g.out_w);
    if stride == 0 || stride > 1 << 12 || k_h > 1 << 12 || k_w > 1 << 12 {
        op_bail!("stride {stride} or filter {k_h}x{k_w} is out of range");
    }
    if in_h == 0 || in_w == 0 {
        op_bail!("the input {:?} is empty", input.dims());
    }
    // The full transposed convolution, before TFLite's padding crops it.
    let full_h = (in_h - 1) * stride + k_h;
    let full_w = (in_w - 1) * stride + k_w;
    // TFLite's output is the full scatter cropped by at most the filter size.
    if full_h > out_h + k_h || full_w > out_w + k_w {
        op_bail!(
            "an output of {out_h}x{out_w} is too small for stride {stride} and a {k_h}x{k_w} \
             filter"
        );
    }
    let (top, left) = match g.padding {
        Padding::Same => (
            full_h.saturating_sub(out_h) / 2,
            full_w.saturating_sub(out_w) / 2,
        ),
        Padding::Valid => (0, 0),
    };
    // candle wants the filter as [in, out, kh, kw].
    let kernel = filter.permute((3, 0, 1, 2))?.contiguous()?;
    let nchw = input.permute((0, 3, 1, 2))?.contiguous()?;
    let mut full = nchw.conv_transpose2d(&kernel, 0, 0, stride, 1)?;
    // VALID can ask for a larger output than the scatter covers; the extra stays zero.
    if full_h < out_h + top {
        full = full.pad_with_zeros(2, 0, out_h + top - full_h)?;
    }
    if full_w < out_w + left {
        full = full.pad_with_zeros(3, 0, out_w + left - full_w)?;
    }
    let out = full
        .narrow(2, top, out_h)?
        .narrow(3, left, out_w)?
        .permute((0, 2, 3, 1))?;
    let out = match bias {
        Some(bias) => {
            if bias.elem_count() != out_c {
                op_bail!(
                    "the bias has {} values for {out_c} output channels",
                    bias.elem_count()
                );
            }
            out.broadcast_add(&bias.flatten_all()?)?
        }
        None => out,
    };
    Ok(out.contiguous()?)
}

fn conv2d_int8(ctx: &EvalCtx, a: &Conv2dAttrs) -> OpResult<CTensor> {
    let stepping = Stepping {
        padding: a.padding,
        stride: (a.stride_h, a.stride_w),
        dilation: (a.dilation_h, a.dilation_w),
        activation: a.activation,
    };
    convolution(ctx, stepping, false)
}

/// TRANSPOSE_CONV on int8: inputs are (output_shape, filter OHWI, input, optional bias).
fn transpose_conv_int8(
    ctx: &EvalCtx,
    attrs: &crate::graph::TransposeConvAttrs,
) -> OpResult<CTensor> {
    use crate::kernels::int8::conv::transpose_conv::TransposeConvInt8;
    let input = ctx.input(2)?;
    let (g, weights, scales) = int8_conv::transpose_conv_geometry(ctx, attrs)?;
    let (batch, out_h, out_w, out_c) = (g.batch, g.out_h, g.out_w, g.out_c);
    let kernel = TransposeConvInt8::new(
        qparams(ctx, ctx.input_id(2)?)?,
        scales,
        qparams(ctx, ctx.node.outputs[0])?,
        attrs.activation,
        out_c,
    )
    .map_err(OpError::Kernel)?
    .with_arithmetic(ctx.arithmetic);
    let mut out = vec![0i8; batch * out_h * out_w * out_c];
    kernel
        .run(&g, &int8_values(input)?, weights, bias(ctx, 3)?, &mut out)
        .map_err(OpError::Kernel)?;
    from_int8(out, &[batch, out_h, out_w, out_c], input)
}
