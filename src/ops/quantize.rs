//! QUANTIZE and DEQUANTIZE: the boundary between float and integer tensors.
//! Integer values travel as candle I64 (see the module docs of `ops`).

use candle_core::{DType as CDType, Tensor as CTensor};

use super::{op_bail, EvalCtx, OpResult};
use crate::graph::{DType, QuantParams};
use crate::kernels::fixed_point::QuantizedMultiplier;

fn params<'a>(ctx: &'a EvalCtx, id: usize, role: &str) -> OpResult<&'a QuantParams> {
    let tensor = ctx.graph.tensor(id);
    match &tensor.quant {
        Some(q) if !q.scale.is_empty() && q.scale.len() == q.zero_point.len() => Ok(q),
        _ => op_bail!(
            "{role} tensor '{}' has no quantization parameters",
            tensor.name
        ),
    }
}

fn integer_range(dtype: DType) -> OpResult<(i64, i64)> {
    Ok(match dtype {
        DType::I8 => (-128, 127),
        DType::U8 => (0, 255),
        DType::I16 => (-32768, 32767),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        other => op_bail!("cannot quantize to {other}"),
    })
}

/// Float to integer (`round(x / scale) + zero_point`, rounding half away from zero, as
/// TFLite does), or integer to integer with TFLite's fixed-point requantization.
pub fn quantize(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let out_id = ctx.node.outputs[0];
    let out_q = params(ctx, out_id, "output")?;
    if out_q.is_per_channel() {
        op_bail!("per-channel QUANTIZE of activations is not supported");
    }
    let (lo, hi) = integer_range(ctx.output_dtype(0)?)?;
    let (scale, zero_point) = (out_q.scale[0], out_q.zero_point[0]);
    let in_id = ctx.input_id(0)?;
    let values: Vec<i64> = if ctx.graph.tensor(in_id).dtype.is_float() {
        let x = input
            .flatten_all()?
            .to_dtype(CDType::F32)?
            .to_vec1::<f32>()?;
        x.iter()
            .map(|&v| ((v / scale).round() as i64 + zero_point).clamp(lo, hi))
            .collect()
    } else if ctx.graph.tensor(in_id).dtype == DType::I8 && ctx.output_dtype(0)? == DType::I8 {
        return super::int8_misc::requantize(ctx);
    } else {
        let in_q = params(ctx, in_id, "input")?;
        let multiplier = QuantizedMultiplier::from_real(in_q.scale[0] as f64 / scale as f64);
        let in_zp = in_q.zero_point[0];
        let x = super::quantized::integer_values(input, ctx.graph.tensor(in_id).dtype)?;
        x.iter()
            .map(|&q| {
                let centred = (q - in_zp).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                (multiplier.apply(centred) as i64 + zero_point).clamp(lo, hi)
            })
            .collect()
    };
    if ctx.output_dtype(0)? == DType::I8 {
        // int8 results travel as bit patterns (see `quantized::from_int8`).
        let bytes = values.into_iter().map(|v| v as i8).collect();
        return super::quantized::from_int8(bytes, input.dims(), input);
    }
    Ok(CTensor::from_vec(values, input.dims(), input.device())?)
}

/// Integer to float: `(q - zero_point) * scale`, per tensor or per channel.
pub fn dequantize(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let in_id = ctx.input_id(0)?;
    if ctx.graph.tensor(in_id).dtype.is_float() {
        // float16 -> float32: the carrier is already float32.
        return Ok(input.to_dtype(CDType::F32)?);
    }
    let q = params(ctx, in_id, "input")?;
    let dims = input.dims().to_vec();
    let x = super::quantized::integer_values(input, ctx.graph.tensor(in_id).dtype)?;
    let out = dequantize_values(&x, &dims, q)?;
    Ok(CTensor::from_vec(out, dims, input.device())?)
}

/// Dequantizes `values` laid out row-major in `dims`, honouring a per-channel axis.
pub fn dequantize_values(values: &[i64], dims: &[usize], q: &QuantParams) -> OpResult<Vec<f32>> {
    if !q.is_per_channel() {
        let (s, zp) = (q.scale[0], q.zero_point[0]);
        return Ok(values.iter().map(|&v| (v - zp) as f32 * s).collect());
    }
    let Some(&channels) = dims.get(q.axis) else {
        op_bail!(
            "quantization axis {} is outside a tensor of rank {}",
            q.axis,
            dims.len()
        );
    };
    if channels != q.scale.len() {
        op_bail!(
            "{} scales for {channels} channels on axis {}",
            q.scale.len(),
            q.axis
        );
    }
    let inner: usize = dims[q.axis + 1..].iter().product();
    Ok(values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner.max(1)) % channels;
            (v - q.zero_point[c]) as f32 * q.scale[c]
        })
        .collect())
}
