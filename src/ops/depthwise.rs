//! DEPTHWISE_CONV_2D through qdbg's own kernel (see `kernels::depthwise_f32`).

use candle_core::Tensor as CTensor;
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_conv::{convolution, Stepping};
use super::{
    activation::apply_fused, expect_output_shape, op_bail, spatial_padding, EvalCtx, OpResult,
    Prepared,
};
use super::{int8_conv, Arithmetic};
use crate::graph::{DepthwiseConv2dAttrs, FusedActivation, Graph, Node, Op, TensorData, TensorId};
use crate::kernels::{depthwise_f32, run_on_host_filling, simd};
use crate::tflite::codec::{
    read_activation_or_none, read_padding, read_positive, write_activation, write_int,
    write_padding, OpVersionCtx,
};
use crate::tflite::fb;

pub struct Depthwise;

impl OpFamily for Depthwise {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        if o.code != fb::BuiltinOperator::DEPTHWISE_CONV_2D {
            return None;
        }
        let read = || -> Result<Op, String> {
            let o = o.op.builtin_options_as_depthwise_conv_2doptions();
            Ok(Op::DepthwiseConv2d(DepthwiseConv2dAttrs {
                padding: read_padding(o.map_or(fb::Padding::SAME, |o| o.padding()))?,
                stride_h: read_positive(o.map_or(1, |o| o.stride_h()), "stride_h")?,
                stride_w: read_positive(o.map_or(1, |o| o.stride_w()), "stride_w")?,
                dilation_h: read_positive(o.map_or(1, |o| o.dilation_h_factor()), "dilation_h")?,
                dilation_w: read_positive(o.map_or(1, |o| o.dilation_w_factor()), "dilation_w")?,
                depth_multiplier: o.map_or(1, |o| o.depth_multiplier()).max(0) as usize,
                activation: read_activation_or_none(o.map(|o| o.fused_activation_function()))?,
            }))
        };
        Some(read())
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        matches!(op, Op::DepthwiseConv2d(_)).then_some(fb::BuiltinOperator::DEPTHWISE_CONV_2D)
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        let Op::DepthwiseConv2d(a) = &node.op else {
            return Err(not_in_family("depthwise", &node.op).to_string());
        };
        Ok((
            fb::BuiltinOptions::DepthwiseConv2DOptions,
            Some(
                fb::DepthwiseConv2DOptions::create(
                    fbb,
                    &fb::DepthwiseConv2DOptionsArgs {
                        padding: write_padding(a.padding),
                        stride_w: write_int(a.stride_w, "stride_w")?,
                        stride_h: write_int(a.stride_h, "stride_h")?,
                        depth_multiplier: write_int(a.depth_multiplier, "depth_multiplier")?,
                        fused_activation_function: write_activation(a.activation),
                        dilation_w_factor: write_int(a.dilation_w, "dilation_w")?,
                        dilation_h_factor: write_int(a.dilation_h, "dilation_h")?,
                    },
                )
                .as_union_value(),
            ),
        ))
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        let Op::DepthwiseConv2d(a) = op else {
            return 1;
        };
        OpVersionCtx::first(&[
            (v.hybrid() && v.per_channel(v.input(1), 3), 6),
            (v.hybrid(), 4),
            (v.int8(), 3),
            (a.dilation_h != 1 || a.dilation_w != 1, 2),
        ])
    }

    fn param_rule(_op: &Op) -> ParamRule {
        ParamRule::Own
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        Some(WeightSlots::Filter {
            filter: 1,
            channel_axis: 3,
            bias: 2,
            data: 0,
        })
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::Kernel
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::DepthwiseConv2d(attrs) = &ctx.node.op else {
            return Err(not_in_family("depthwise", &ctx.node.op));
        };
        Ok(vec![depthwise_conv2d(ctx, attrs)?])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::DepthwiseConv2d(attrs) = &ctx.node.op else {
            return Err(not_in_family("depthwise", &ctx.node.op));
        };
        Ok(vec![depthwise_int8(ctx, attrs)?])
    }

    fn has_int16_kernel(op: &Op) -> bool {
        matches!(op, Op::DepthwiseConv2d(_))
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::DepthwiseConv2d(a) = &ctx.node.op else {
            return Err(not_in_family("depthwise (16x8)", &ctx.node.op));
        };
        let stepping = Stepping {
            padding: a.padding,
            stride: (a.stride_h, a.stride_w),
            dilation: (a.dilation_h, a.dilation_w),
            activation: a.activation,
        };
        Ok(vec![super::int16_conv::convolution16(ctx, stepping, true)?])
    }

    fn prepare(
        graph: &Graph,
        node: &Node,
        _constant: &dyn Fn(TensorId) -> Option<CTensor>,
        arithmetic: Arithmetic,
    ) -> OpResult<Option<Prepared>> {
        // The host kernel reads the graph's own data; no device copy needed.
        int8_conv::prepare_int8_or_float(graph, node, arithmetic, || prepare_float(graph, node))
    }
}

/// Keeps constant filter and bias on the host, in the layout the kernel reads.
fn prepare_float(graph: &Graph, node: &Node) -> OpResult<Option<Prepared>> {
    let host = |i: usize| -> Option<Vec<f32>> {
        let id = node.input(i)?;
        graph.tensor(id).data.as_ref().and_then(TensorData::to_f32)
    };
    let Some(filter) = host(1) else {
        return Ok(None);
    };
    let bias = match node.input(2) {
        Some(_) => match host(2) {
            Some(b) => b,
            None => return Ok(None),
        },
        None => Vec::new(),
    };
    Ok(Some(Prepared::Depthwise { filter, bias }))
}

fn depthwise_conv2d(ctx: &EvalCtx, attrs: &DepthwiseConv2dAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (batch, in_h, in_w, in_c) = input.dims4()?;
    let filter_shape = &ctx.graph.tensor(ctx.input_id(1)?).shape;
    let [1, k_h, k_w, out_c] = filter_shape[..] else {
        op_bail!("filter must be [1, kh, kw, channels], got {filter_shape:?}");
    };
    // TFLite lets depth_multiplier be 0 or stale; the filter's channel count is the truth.
    if in_c == 0 || out_c % in_c != 0 {
        op_bail!("filter has {out_c} channels, not a multiple of the input's {in_c}");
    }
    let multiplier = out_c / in_c;
    if attrs.depth_multiplier > 1 && attrs.depth_multiplier != multiplier {
        op_bail!(
            "depth_multiplier {} disagrees with the filter ({out_c} channels for {in_c} inputs)",
            attrs.depth_multiplier
        );
    }
    let (pad_top, _, out_h) =
        spatial_padding(attrs.padding, in_h, k_h, attrs.stride_h, attrs.dilation_h)?;
    let (pad_left, _, out_w) =
        spatial_padding(attrs.padding, in_w, k_w, attrs.stride_w, attrs.dilation_w)?;
    expect_output_shape(ctx, 0, &[batch, out_h, out_w, out_c])?;
    let geometry = depthwise_f32::DepthwiseGeometry {
        batch,
        in_h,
        in_w,
        in_c,
        depth_multiplier: multiplier,
        out_c,
        out_h,
        out_w,
        k_h,
        k_w,
        stride_h: attrs.stride_h,
        stride_w: attrs.stride_w,
        dilation_h: attrs.dilation_h,
        dilation_w: attrs.dilation_w,
        pad_top,
        pad_left,
    };
    let owned;
    let (filter, bias): (&[f32], &[f32]) = match ctx.prepared {
        Some(Prepared::Depthwise { filter, bias }) => (filter, bias),
        _ => {
            let filter = ctx.input(1)?.flatten_all()?.to_vec1::<f32>()?;
            let bias = if ctx.has_input(2) {
                ctx.input(2)?.flatten_all()?.to_vec1::<f32>()?
            } else {
                Vec::new()
            };
            owned = (filter, bias);
            (&owned.0, &owned.1)
        }
    };
    if filter.len() != k_h * k_w * out_c || !(bias.is_empty() || bias.len() == out_c) {
        op_bail!("filter or bias size does not match {out_c} output channels");
    }
    let out_shape = [batch, out_h, out_w, out_c];
    // The clamping activations happen in the kernel's store, saving a pass; the others
    // (NONE, TANH, unsupported ones) go through `apply_fused` as before.
    let (clamp, rest) = match attrs.activation {
        FusedActivation::Relu => (Some((0.0, f32::INFINITY)), FusedActivation::None),
        FusedActivation::Relu6 => (Some((0.0, 6.0)), FusedActivation::None),
        FusedActivation::ReluN1To1 => (Some((-1.0, 1.0)), FusedActivation::None),
        other => (None, other),
    };
    // SAFETY: `depthwise_conv2d_at_uninit` initialises its whole output.
    let out = unsafe {
        run_on_host_filling("depthwise_conv2d", input, &out_shape, |x, y| {
            depthwise_f32::depthwise_conv2d_at_uninit(
                simd::active(),
                &geometry,
                x,
                filter,
                bias,
                clamp,
                y,
            )
        })
    }?;
    apply_fused(out, rest)
}

fn depthwise_int8(ctx: &EvalCtx, a: &DepthwiseConv2dAttrs) -> OpResult<CTensor> {
    let stepping = Stepping {
        padding: a.padding,
        stride: (a.stride_h, a.stride_w),
        dilation: (a.dilation_h, a.dilation_w),
        activation: a.activation,
    };
    convolution(ctx, stepping, true)
}
