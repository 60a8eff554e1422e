//! CONV_2D and TRANSPOSE_CONV on candle.
//!
//! TFLite stores activations NHWC and filters OHWI; candle convolves NCHW with OIHW
//! filters and only pads symmetrically, so the input is padded explicitly (TFLite's SAME
//! may need one more pixel after than before). 1x1 convolutions skip the layout dance
//! entirely: on NHWC data they are a plain matrix product.

use candle_core::Tensor as CTensor;

use super::{
    activation::apply_fused, expect_output_shape, op_bail, spatial_padding, EvalCtx, OpResult,
    Prepared,
};
use crate::graph::{Conv2dAttrs, Graph, Node, Padding, TensorData, TensorId, TransposeConvAttrs};
use crate::kernels::pointwise_f32::{self, PackedPointwise, PointwiseGeometry};
use crate::kernels::{conv_f32, int8::conv::ConvGeometry, run_on_host, run_on_host_filling};

/// Re-lays-out constant filters once: packed for the pointwise kernel (1x1 on the CPU),
/// `[in, out]` for other 1x1 convolutions, OIHW otherwise.
pub fn prepare(
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

pub fn conv2d(ctx: &EvalCtx, attrs: &Conv2dAttrs) -> OpResult<CTensor> {
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

    if let (Some(Prepared::DirectConv { filter_hwio, bias }), true) =
        (ctx.prepared, input.device().is_cpu())
    {
        if filter_hwio.len() != out_c * k_h * k_w * in_c
            || !(bias.is_empty() || bias.len() == out_c)
        {
            op_bail!("filter or bias size does not match {out_c} output channels");
        }
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
            stride_h: attrs.stride_h,
            stride_w: attrs.stride_w,
            dilation_h: attrs.dilation_h,
            dilation_w: attrs.dilation_w,
            pad_top,
            pad_left,
            depth_multiplier: 1,
        };
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
        Some(p) if !matches!(p, Prepared::Pointwise(_)) => (p, bias_of(p)),
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
            packed.run_uninit(x, &g, clamp, y)
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
pub fn transpose_conv(ctx: &EvalCtx, attrs: &TransposeConvAttrs) -> OpResult<CTensor> {
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
