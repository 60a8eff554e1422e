//! QUANTIZE and DEQUANTIZE: the boundary between float and integer tensors.
//! Integer values travel as candle I64, int8 ones as U8 bit patterns (see the module docs
//! of `ops`).

use candle_core::{DType as CDType, Tensor as CTensor};
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{op_bail, EvalCtx, OpError, OpResult};
use crate::graph::{DType, Graph, Node, Op, QuantParams};
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::unary;
use crate::tflite::codec::OpVersionCtx;
use crate::tflite::fb;

pub struct QuantizeBoundary;

impl OpFamily for QuantizeBoundary {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        match o.code {
            fb::BuiltinOperator::QUANTIZE => Some(Ok(Op::Quantize)),
            fb::BuiltinOperator::DEQUANTIZE => Some(Ok(Op::Dequantize)),
            _ => None,
        }
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        match op {
            Op::Quantize => Some(fb::BuiltinOperator::QUANTIZE),
            Op::Dequantize => Some(fb::BuiltinOperator::DEQUANTIZE),
            _ => None,
        }
    }

    fn write_tflite_options(
        _fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        match node.op {
            Op::Quantize | Op::Dequantize => Ok((fb::BuiltinOptions::NONE, None)),
            _ => Err(not_in_family("quantize", &node.op).to_string()),
        }
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use DType::*;
        let first = OpVersionCtx::first;
        match op {
            Op::Dequantize => first(&[
                (v.is(0, I16) || v.is(0, F16), 3),
                (v.is(0, I8) && v.per_axis(v.input(0)), 5),
                (v.is(0, I8), 2),
            ]),
            Op::Quantize => first(&[(v.per_axis(v.output()), 3), (v.out_is(I16), 2)]),
            _ => 1,
        }
    }

    fn param_rule(_op: &Op) -> ParamRule {
        ParamRule::Own
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        None
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::Boundary
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::Quantize => quantize(ctx)?,
            Op::Dequantize => dequantize(ctx)?,
            other => return Err(not_in_family("quantize", other)),
        }])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        // Both sides of the boundary are handled by the ops themselves.
        Self::eval_float(ctx)
    }
}

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
fn quantize(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let out_id = ctx.node.outputs[0];
    let out_q = params(ctx, out_id, "output")?;
    if out_q.is_per_channel() {
        op_bail!("per-channel QUANTIZE of activations is not supported");
    }
    let (lo, hi) = integer_range(ctx.output_dtype(0)?)?;
    let (scale, zero_point) = (out_q.scale[0], out_q.zero_point[0]);
    let in_id = ctx.input_id(0)?;
    if ctx.graph.tensor(in_id).dtype.is_float() && ctx.output_dtype(0)? == DType::I8 {
        return quantize_f32_to_int8(input, scale, zero_point);
    }
    if ctx.graph.tensor(in_id).dtype.is_float() && ctx.output_dtype(0)? == DType::I16 {
        let x = input
            .flatten_all()?
            .to_dtype(CDType::F32)?
            .to_vec1::<f32>()?;
        let codes = quantize_f32_to_int16(&x, scale, zero_point);
        return Ok(CTensor::from_vec(codes, input.dims(), input.device())?);
    }
    let values: Vec<i64> = if ctx.graph.tensor(in_id).dtype.is_float() {
        let x = input
            .flatten_all()?
            .to_dtype(CDType::F32)?
            .to_vec1::<f32>()?;
        x.iter()
            .map(|&v| ((v / scale).round() as i64 + zero_point).clamp(lo, hi))
            .collect()
    } else if ctx.graph.tensor(in_id).dtype == DType::I8 && ctx.output_dtype(0)? == DType::I8 {
        return requantize_int8(ctx);
    } else if let Some(result) = requantize_int16(ctx)? {
        return Ok(result);
    } else {
        let in_q = params(ctx, in_id, "input")?;
        let multiplier = QuantizedMultiplier::from_real(in_q.scale[0] as f64 / scale as f64);
        let in_zp = in_q.zero_point[0];
        let x = super::int8_tensor::integer_values(input, ctx.graph.tensor(in_id).dtype)?;
        x.iter()
            .map(|&q| {
                let centred = (q - in_zp).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                (multiplier.apply(centred) as i64 + zero_point).clamp(lo, hi)
            })
            .collect()
    };
    if ctx.output_dtype(0)? == DType::I8 {
        // int8 results travel as bit patterns (see `int8_tensor::from_int8`).
        let bytes = values.into_iter().map(|v| v as i8).collect();
        return super::int8_tensor::from_int8(bytes, input.dims(), input);
    }
    Ok(CTensor::from_vec(values, input.dims(), input.device())?)
}

/// QUANTIZE between int8 and int16 (either way) or int16 and int16: the requantization at
/// the edges of an int16 island, on `kernels::int16::requantize` (LiteRT's arithmetic).
/// `None` for other type pairs.
fn requantize_int16(ctx: &EvalCtx) -> OpResult<Option<CTensor>> {
    use super::int16_tensor::{from_int16, int16_values};
    use crate::kernels::int16::requantize::Requantize;
    let (in_id, out_id) = (ctx.input_id(0)?, ctx.node.outputs[0]);
    let (from, to) = (ctx.graph.tensor(in_id).dtype, ctx.output_dtype(0)?);
    if !matches!(
        (from, to),
        (DType::I8, DType::I16) | (DType::I16, DType::I8) | (DType::I16, DType::I16)
    ) {
        return Ok(None);
    }
    let kernel =
        Requantize::new(qparams(ctx, in_id)?, qparams(ctx, out_id)?).map_err(OpError::Kernel)?;
    let input = ctx.input(0)?;
    let dims = input.dims();
    Ok(Some(match (from, to) {
        (DType::I8, _) => {
            let mut out = vec![0i16; input.elem_count()];
            kernel
                .run(&int8_values(input)?, &mut out)
                .map_err(OpError::Kernel)?;
            from_int16(out, dims, input)?
        }
        (DType::I16, DType::I8) => {
            let mut out = vec![0i8; input.elem_count()];
            kernel
                .run(&int16_values(input)?, &mut out)
                .map_err(OpError::Kernel)?;
            from_int8(out, dims, input)?
        }
        _ => {
            let mut out = vec![0i16; input.elem_count()];
            kernel
                .run(&int16_values(input)?, &mut out)
                .map_err(OpError::Kernel)?;
            from_int16(out, dims, input)?
        }
    }))
}

/// Float to int16 as LiteRT's optimized QUANTIZE computes it on x86-64: blocks of 8
/// values are multiplied by the f32 reciprocal of the scale and rounded half to even (its
/// NEON loop, emulated with SSE); the remaining `len % 8` values are divided by the scale
/// in f64 and rounded half away from zero (its scalar tail). The two differ on ties: the
/// demo's `-0.35748622 / 0.00015485649` is -2308.5 exactly in f32, which LiteRT writes as
/// -2308.
fn quantize_f32_to_int16(x: &[f32], scale: f32, zero_point: i64) -> Vec<i64> {
    let (lo, hi) = (i64::from(i16::MIN), i64::from(i16::MAX));
    let reciprocal = (1.0 / f64::from(scale)) as f32;
    let blocks = x.len() - x.len() % 8;
    let mut out = vec![0i64; x.len()];
    int16_blocks(&x[..blocks], reciprocal, zero_point, &mut out[..blocks]);
    for (o, &v) in out[blocks..].iter_mut().zip(&x[blocks..]) {
        let q = (f64::from(v) / f64::from(scale)).round() as i64;
        *o = q.saturating_add(zero_point).clamp(lo, hi);
    }
    out
}

/// The blocks of [`quantize_f32_to_int16`]: `round_ties_even(v * reciprocal) + zero_point`
/// clamped to int16. Compiled for AVX2 where the CPU has it: on baseline x86-64
/// `round_ties_even` is a libm call per value, which made the float-to-int16 QUANTIZEs a
/// sixth of MobileNetV3-small's 16x8 inference.
fn int16_blocks(x: &[f32], reciprocal: f32, zero_point: i64, out: &mut [i64]) {
    #[inline(always)]
    fn body(x: &[f32], reciprocal: f32, zero_point: i64, out: &mut [i64]) {
        let (lo, hi) = (f32::from(i16::MIN), f32::from(i16::MAX));
        for (o, &v) in out.iter_mut().zip(x) {
            // Clamped in f32 first (NaN to 0, as `as` converts it): values beyond int16
            // saturate either way, and the conversion stays exact.
            let q = (v * reciprocal).round_ties_even();
            let q = if q.is_nan() {
                0.0
            } else {
                q.clamp(lo - 1.0, hi + 1.0)
            };
            *o = (q as i64)
                .saturating_add(zero_point)
                .clamp(i64::from(i16::MIN), i64::from(i16::MAX));
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn body_avx2(x: &[f32], reciprocal: f32, zero_point: i64, out: &mut [i64]) {
        body(x, reciprocal, zero_point, out)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::active() >= crate::kernels::simd::Level::Avx2 {
        // SAFETY: the active level guarantees AVX2.
        unsafe { body_avx2(x, reciprocal, zero_point, out) };
        return;
    }
    body(x, reciprocal, zero_point, out)
}

/// `q.round() as i64` (half away from zero, NaN to 0, saturating), without the libm call
/// `f32::round` becomes on baseline x86-64, so the loop vectorizes: below 2^23 the
/// truncation and the fraction `q - trunc(q)` are exact; above, `q` is an integer.
#[inline(always)]
pub(crate) fn round_half_away(q: f32) -> i64 {
    if q.is_nan() || q.abs() >= 8_388_608.0 {
        return q as i64;
    }
    let t = q as i32;
    let frac = q - t as f32;
    i64::from(t) + i64::from(frac >= 0.5) - i64::from(frac <= -0.5)
}

/// `(round_half_away(v / scale) + zero_point).clamp(-128, 127)` for a zero point within
/// int8, in i32 lanes: quotients beyond +-1000 saturate either way, so clamping them
/// there first (NaN to 0, as `as i64` does) changes no result and keeps everything in
/// the exact range of the truncation trick.
fn quantize_int8_fast(src: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    #[inline(always)]
    fn body(src: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
        for (o, &v) in out.iter_mut().zip(src) {
            let q = v / scale;
            let q = if q.is_nan() {
                0.0
            } else {
                q.clamp(-1000.0, 1000.0)
            };
            // SAFETY: finite and within +-1000, so it fits an i32. The checked `as` did
            // not vectorise: it was most of the model input's QUANTIZE.
            let t = unsafe { q.to_int_unchecked::<i32>() };
            let frac = q - t as f32;
            let r = t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5);
            *o = (r + zero_point).clamp(-128, 127) as i8;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn body_avx2(src: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
        body(src, scale, zero_point, out)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::active() >= crate::kernels::simd::Level::Avx2 {
        // SAFETY: the active level guarantees AVX2.
        unsafe { body_avx2(src, scale, zero_point, out) };
        return;
    }
    body(src, scale, zero_point, out)
}

/// Float to int8 straight into the int8 carrier (the model input's QUANTIZE runs on
/// every sample): the same arithmetic as the general path, one pass, no i64 detour.
fn quantize_f32_to_int8(input: &CTensor, scale: f32, zero_point: i64) -> OpResult<CTensor> {
    let one = |v: f32| {
        round_half_away(v / scale)
            .saturating_add(zero_point)
            .clamp(-128, 127) as i8
    };
    let convert = |src: &[f32]| -> Vec<i8> {
        let mut out = vec![0i8; src.len()];
        if (-128..=127).contains(&zero_point) {
            quantize_int8_fast(src, scale, zero_point as i32, &mut out);
        } else {
            for (o, &v) in out.iter_mut().zip(src) {
                *o = one(v);
            }
        }
        out
    };
    let direct: Option<Vec<i8>> = {
        let (storage, layout) = input.storage_and_layout();
        match (&*storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((start, end))) => {
                Some(convert(&v[start..end]))
            }
            _ => None,
        }
    };
    let values = match direct {
        Some(values) => values,
        None => convert(
            &input
                .flatten_all()?
                .to_dtype(CDType::F32)?
                .to_vec1::<f32>()?,
        ),
    };
    super::int8_tensor::from_int8(values, input.dims(), input)
}

/// Integer to float: `(q - zero_point) * scale`, per tensor or per channel.
fn dequantize(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let in_id = ctx.input_id(0)?;
    if ctx.graph.tensor(in_id).dtype.is_float() {
        // float16 -> float32: the carrier is already float32.
        return Ok(input.to_dtype(CDType::F32)?);
    }
    let q = params(ctx, in_id, "input")?;
    let dims = input.dims().to_vec();
    let x = super::int8_tensor::integer_values(input, ctx.graph.tensor(in_id).dtype)?;
    let out = dequantize_values(&x, &dims, q)?;
    Ok(CTensor::from_vec(out, dims, input.device())?)
}

/// Dequantizes `values` laid out row-major in `dims`, honouring a per-channel axis.
pub fn dequantize_values<T: Copy + Into<i64>>(
    values: &[T],
    dims: &[usize],
    q: &QuantParams,
) -> OpResult<Vec<f32>> {
    if !q.is_per_channel() {
        let (s, zp) = (q.scale[0], q.zero_point[0]);
        return Ok(values.iter().map(|&v| (v.into() - zp) as f32 * s).collect());
    }
    dequantize_per_channel(values, dims, q)
}

/// [`dequantize_values`] for int8 values: the same results (an int8 value minus a zero
/// point is exact in i32 and in f32), in i32 arithmetic, which converts to f32 in vector
/// instructions where i64 does not. The debugger dequantizes every int8 tensor it reads.
pub fn dequantize_int8(values: &[i8], dims: &[usize], q: &QuantParams) -> OpResult<Vec<f32>> {
    if !q.is_per_channel() {
        let (s, zp) = (q.scale[0], q.zero_point[0]);
        if let Ok(zp) = i32::try_from(zp) {
            if zp.unsigned_abs() < 1 << 23 {
                return Ok(values
                    .iter()
                    .map(|&v| (i32::from(v) - zp) as f32 * s)
                    .collect());
            }
        }
    }
    dequantize_values(values, dims, q)
}

fn dequantize_per_channel<T: Copy + Into<i64>>(
    values: &[T],
    dims: &[usize],
    q: &QuantParams,
) -> OpResult<Vec<f32>> {
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
            (v.into() - q.zero_point[c]) as f32 * q.scale[c]
        })
        .collect())
}

/// QUANTIZE from int8 to int8: LiteRT's requantization (vector blocks and scalar tail
/// round ties differently; the kernel models both).
fn requantize_int8(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let k = unary::Requantize::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(OpError::Kernel)?
    .with_arithmetic(ctx.arithmetic);
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    k.run(&values, &mut out).map_err(OpError::Kernel)?;
    from_int8(out, input.dims(), input)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_half_away_matches_f32_round() {
        let mut specials = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999997,
            -0.49999997,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            1e10,
            -1e10,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            126.5,
            -127.5,
            -128.5,
        ];
        // A deterministic sweep of many magnitudes and fractions.
        let mut x = 0x1234_5678u32;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            specials.push(f32::from_bits(x));
            specials.push((x % 100_000) as f32 / 64.0 - 700.0);
        }
        let mut fast = vec![0i8; specials.len()];
        super::quantize_int8_fast(&specials, 0.37, -7, &mut fast);
        for (q, f) in specials.into_iter().zip(fast) {
            assert_eq!(super::round_half_away(q), q.round() as i64, "{q}");
            // Saturating: an infinite quotient must not wrap around.
            let want = ((q / 0.37).round() as i64)
                .saturating_sub(7)
                .clamp(-128, 127) as i8;
            assert_eq!(f, want, "{q}");
        }
    }

    #[test]
    fn float_to_int16_rounds_ties_to_even_in_blocks_of_eight_and_away_in_the_tail() {
        // LiteRT on the demo's 16x8 model: -0.35748622 / 0.00015485649 is -2308.5 exactly
        // in f32; inside a block of 8 LiteRT wrote -2308 (tests/int16_model.rs).
        let (v, scale) = (-0.357_486_22f32, 0.000_154_856_49f32);
        assert_eq!(v * ((1.0 / f64::from(scale)) as f32), -2308.5);
        let mut x = vec![v; 9];
        x[1] = 1.0; // 6457.6 steps
        let q = super::quantize_f32_to_int16(&x, scale, 0);
        assert_eq!(q[0], -2308);
        assert_eq!(q[1], 6458);
        // The ninth value is the scalar tail: f64 division, -2308.500063 -> -2309.
        assert_eq!(q[8], -2309);
        // Clamped to int16.
        assert_eq!(super::quantize_f32_to_int16(&[10.0], scale, 0), vec![32767]);
    }
}
