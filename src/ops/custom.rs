//! MediaPipe's custom ops that LiteRT's default CPU runtime runs (through its XNNPACK
//! delegate): `Convolution2DTransposeBias`, `MaxPoolingWithArgmax2D`, `MaxUnpooling2D`.
//! Float only, in LiteRT as here: quantized models keep them float.
//!
//! qdbg computes what LiteRT computes, so a user comparing qdbg with LiteRT sees the
//! same numbers; where LiteRT's runtime refuses a configuration (pooling whose stride is
//! not its window, integer indices), qdbg refuses it too, saying why, rather than
//! inventing a result no runtime would give. The argmax indices travel as LiteRT keeps
//! them: a FLOAT32 tensor whose elements hold the bits of a uint32 window index.

use candle_core::Tensor as CTensor;
use flatbuffers::FlatBufferBuilder;

use super::conv::{transposed, Transposed};
use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::{expect_output_shape, op_bail, spatial_padding, EvalCtx, OpResult};
use crate::graph::{
    ArgmaxPoolAttrs, DType, FusedActivation, Graph, Node, Op, Padding, TransposeConvBiasAttrs,
};
use crate::kernels::argmax_pool_f32::{self, PoolGeometry};
use crate::tflite::codec::OpVersionCtx;
use crate::tflite::{fb, parse_custom};

/// The custom ops above, and every op qdbg reads but cannot run ([`Op::Unsupported`]:
/// other custom codes, builtins it has no semantics for).
pub struct Custom;

impl OpFamily for Custom {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        if o.code != fb::BuiltinOperator::CUSTOM {
            return None;
        }
        let known = match o.custom_code {
            Some(code) => parse_custom(code, o.custom_options),
            None => Ok(None),
        };
        Some(known.map(|op| {
            op.unwrap_or_else(|| Op::Unsupported {
                name: format!("CUSTOM({})", o.custom_code.unwrap_or("unnamed")),
            })
        }))
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        match op {
            // Written under their custom code (`Op::name`), with their own options bytes.
            Op::Convolution2DTransposeBias(_)
            | Op::MaxPoolingWithArgmax2D(_)
            | Op::MaxUnpooling2D(_) => Some(fb::BuiltinOperator::CUSTOM),
            _ => None,
        }
    }

    fn write_tflite_options(
        _fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        match &node.op {
            // No builtin options: their bytes go in `custom_options`.
            Op::Convolution2DTransposeBias(_)
            | Op::MaxPoolingWithArgmax2D(_)
            | Op::MaxUnpooling2D(_) => Ok((fb::BuiltinOptions::NONE, None)),
            Op::Unsupported { name } => Err(format!("{name} cannot be written")),
            other => Err(not_in_family("custom", other).to_string()),
        }
    }

    fn tflite_version(_v: &OpVersionCtx, _op: &Op) -> i32 {
        1
    }

    fn param_rule(_op: &Op) -> ParamRule {
        // Never quantized; MaxPoolingWithArgmax2D's indices are kept out of the plan
        // (`quant::plan`).
        ParamRule::Own
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        None
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::FloatOnly
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(match &ctx.node.op {
            Op::Convolution2DTransposeBias(attrs) => vec![transpose_conv_bias(ctx, attrs)?],
            Op::MaxPoolingWithArgmax2D(attrs) => max_pool_with_argmax(ctx, attrs)?,
            Op::MaxUnpooling2D(attrs) => vec![max_unpooling(ctx, attrs)?],
            Op::Unsupported { name } => op_bail!("op {name} has no float implementation in qdbg"),
            other => return Err(not_in_family("custom", other)),
        })
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        op_bail!(
            "{} on int8 tensors has no int8 kernel in qdbg yet",
            ctx.node.op.name()
        )
    }
}

/// `Convolution2DTransposeBias`: inputs (input NHWC, filter OHWI, bias). Unlike
/// TRANSPOSE_CONV it has no output-shape input; LiteRT takes the size the model declares
/// (MediaPipe's converter declares the size TensorFlow computed), cropped as
/// TRANSPOSE_CONV crops. The options' activation field is ignored, as by both runtimes.
fn transpose_conv_bias(ctx: &EvalCtx, attrs: &TransposeConvBiasAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let filter = ctx.input(1)?;
    let bias = ctx.input(2)?;
    let (batch, in_h, in_w, _) = input.dims4()?;
    let (out_c, k_h, k_w, _) = filter.dims4()?;
    let &[_, out_h, out_w, _] = ctx.output_shape(0)? else {
        op_bail!(
            "the output is declared {:?}; it must have 4 dimensions (NHWC)",
            ctx.output_shape(0)?
        );
    };
    if attrs.padding == Padding::Valid {
        // LiteRT resizes a VALID output to the full scatter, whatever the model declares.
        let full_h = (in_h.max(1) - 1) * attrs.stride_h + k_h;
        let full_w = (in_w.max(1) - 1) * attrs.stride_w + k_w;
        expect_output_shape(ctx, 0, &[batch, full_h, full_w, out_c])?;
    }
    expect_output_shape(ctx, 0, &[batch, out_h, out_w, out_c])?;
    let geometry = Transposed {
        padding: attrs.padding,
        stride_h: attrs.stride_h,
        stride_w: attrs.stride_w,
        out_h,
        out_w,
    };
    transposed(input, filter, Some(bias), &geometry)
}

/// `MaxPoolingWithArgmax2D`: one input, outputs (max values, argmax indices).
fn max_pool_with_argmax(ctx: &EvalCtx, attrs: &ArgmaxPoolAttrs) -> OpResult<Vec<CTensor>> {
    require_window_stride("MaxPoolingWithArgmax2D", attrs)?;
    if attrs.activation != FusedActivation::None {
        // XNNPACK ignores this field and MediaPipe's own kernel applies it: the result
        // would depend on the runtime, so qdbg does not pick one.
        op_bail!(
            "its options ask for a fused {:?} activation, which LiteRT's runtime (XNNPACK) \
             ignores and MediaPipe's CPU kernel applies; re-export the model with the \
             activation as its own op",
            attrs.activation
        );
    }
    if ctx.node.outputs.len() != 2 {
        op_bail!(
            "it has {} outputs; MaxPoolingWithArgmax2D writes two (values, indices)",
            ctx.node.outputs.len()
        );
    }
    require_float_indices(ctx.output_dtype(1)?, "output 1")?;
    let input = ctx.input(0)?;
    let (batch, in_h, in_w, channels) = input.dims4()?;
    if in_h == 0 || in_w == 0 {
        op_bail!("the input {:?} is empty", input.dims());
    }
    let (pad_top, _, out_h) =
        spatial_padding(attrs.padding, in_h, attrs.filter_h, attrs.stride_h, 1)?;
    let (pad_left, _, out_w) =
        spatial_padding(attrs.padding, in_w, attrs.filter_w, attrs.stride_w, 1)?;
    let shape = [batch, out_h, out_w, channels];
    expect_output_shape(ctx, 0, &shape)?;
    expect_output_shape(ctx, 1, &shape)?;
    let g = PoolGeometry {
        batch,
        in_h,
        in_w,
        channels,
        out_h,
        out_w,
        k_h: attrs.filter_h,
        k_w: attrs.filter_w,
        stride_h: attrs.filter_h,
        stride_w: attrs.filter_w,
        pad_top,
        pad_left,
    };
    let x = input.flatten_all()?.to_vec1::<f32>()?;
    let count = shape.iter().product();
    let mut values = vec![0f32; count];
    let mut indices = vec![0u32; count];
    argmax_pool_f32::argmax_pool(&g, &x, &mut values, &mut indices);
    let index_bits = indices.into_iter().map(f32::from_bits).collect();
    Ok(vec![
        CTensor::from_vec(values, &shape, ctx.device)?,
        CTensor::from_vec(index_bits, &shape, ctx.device)?,
    ])
}

/// `MaxUnpooling2D`: inputs (values, indices from `MaxPoolingWithArgmax2D`). The output
/// is the input times the window; with the stride equal to the window (as LiteRT's
/// runtime requires) MediaPipe's definition pads nothing, so SAME and VALID agree.
fn max_unpooling(ctx: &EvalCtx, attrs: &ArgmaxPoolAttrs) -> OpResult<CTensor> {
    require_window_stride("MaxUnpooling2D", attrs)?;
    let values = ctx.input(0)?;
    let indices = ctx.input(1)?;
    let index_id = ctx.input_id(1)?;
    require_float_indices(ctx.graph.tensor(index_id).dtype, "input 1")?;
    let (batch, in_h, in_w, channels) = values.dims4()?;
    if indices.dims() != values.dims() {
        op_bail!(
            "the indices {:?} and values {:?} differ in shape",
            indices.dims(),
            values.dims()
        );
    }
    let (out_h, out_w) = (in_h * attrs.filter_h, in_w * attrs.filter_w);
    let shape = [batch, out_h, out_w, channels];
    expect_output_shape(ctx, 0, &shape)?;
    let g = PoolGeometry {
        batch,
        in_h,
        in_w,
        channels,
        out_h,
        out_w,
        k_h: attrs.filter_h,
        k_w: attrs.filter_w,
        stride_h: attrs.filter_h,
        stride_w: attrs.filter_w,
        pad_top: 0,
        pad_left: 0,
    };
    let v = values.flatten_all()?.to_vec1::<f32>()?;
    let k: Vec<u32> = indices
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f32::to_bits)
        .collect();
    let mut out = vec![0f32; shape.iter().product()];
    if let Err((pos, index)) = argmax_pool_f32::unpool(&g, &v, &k, &mut out) {
        op_bail!(
            "indices element {pos} holds {index} (as LiteRT reads it: the float's bits), not a \
             position in the {}x{} window; the indices must come from MaxPoolingWithArgmax2D",
            attrs.filter_h,
            attrs.filter_w
        );
    }
    Ok(CTensor::from_vec(out, &shape, ctx.device)?)
}

/// LiteRT's runtime (XNNPACK) runs both ops only with windows that tile the image.
fn require_window_stride(op: &str, attrs: &ArgmaxPoolAttrs) -> OpResult<()> {
    if attrs.stride_h != attrs.filter_h || attrs.stride_w != attrs.filter_w {
        op_bail!(
            "stride {}x{} differs from its {}x{} window; LiteRT's runtime (XNNPACK) runs {op} \
             only with the stride equal to the window, and qdbg follows it",
            attrs.stride_h,
            attrs.stride_w,
            attrs.filter_h,
            attrs.filter_w
        );
    }
    Ok(())
}

/// The indices are FLOAT32, as MediaPipe declares them and LiteRT's runtime requires.
fn require_float_indices(dtype: DType, which: &str) -> OpResult<()> {
    if dtype != DType::F32 {
        op_bail!(
            "its indices ({which}) are {dtype}; LiteRT's runtime runs the op only with \
             FLOAT32 indices (MediaPipe's layout; TensorFlow's integer-index variant is not \
             registered in LiteRT)"
        );
    }
    Ok(())
}
