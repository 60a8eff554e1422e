//! The int8 unary ops (activations and element-wise functions), bit-exact with what
//! LiteRT's builtin kernels run on x86: LOGISTIC, TANH, HARD_SWISH, RELU*, LEAKY_RELU and
//! QUANTIZE int8 -> int8 here; RSQRT and SQRT ([`sqrt`]), PRELU ([`prelu`]) and GELU
//! ([`gelu`]) in their own modules.
//!
//! * LOGISTIC and TANH: LiteRT registers the "generic optimized" kernels, which
//!   look every int8 value up in a 256-entry table filled at prepare time from float
//!   math (`LUTPopulate`): dequantize, `1 / (1 + expf(-x))` or `tanhf(x)`, scale by
//!   `1 / output_scale`, `roundf`, add the zero point, clamp. The gemmlowp
//!   fixed-point versions exist but are not what the builtin resolver uses.
//! * HARD_SWISH: the optimized kernel's vector loop is compiled only for real ARM
//!   NEON, so on x86 every element takes `reference_ops::HardSwish`, int16
//!   fixed-point arithmetic with the `HardSwishParams` of `HardSwishPrepare`.
//! * RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1: `ReluX`, a requantization by
//!   `in_scale / out_scale` (divided in float) clamped to the activation's range.
//! * LEAKY_RELU: `reference_ops::QuantizeLeakyRelu`, one multiplier for x >= 0 and
//!   one (`in_scale * alpha / out_scale`) for x < 0.
//! * [`Requantize`]: QUANTIZE from int8 to int8 (`optimized_ops::Requantize`),
//!   which the converter inserts where parameters must change, e.g. in front of a
//!   CONCATENATION input. (LiteRT's int8 CONCATENATION itself requires equal
//!   parameters on all inputs and RESHAPE copies bytes, so neither rescales.) Its
//!   16-wide vector blocks round the final shift half up, the tail half away from
//!   zero.

pub(crate) mod gelu;
mod prelu;
mod sqrt;

pub use gelu::Gelu;
pub use prelu::Prelu;
pub use sqrt::{Rsqrt, Sqrt};

use super::neon_emulation as neon;
use super::{check_lengths, check_scale, Arithmetic, QParams};
use crate::kernels::element::QuantizedElement;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::KernelError;

/// A 256-entry int8 lookup table, indexed by the input's bit pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lut {
    table: [i8; 256],
}

impl Lut {
    /// TFLite's `LUTPopulate<int8_t>`: every step in float, as there.
    pub fn populate(input: QParams, output: QParams, f: impl Fn(f32) -> f32) -> Self {
        let inverse_scale = 1.0 / output.scale;
        let mut table = [0i8; 256];
        for v in -128..=127i32 {
            let dequantized = input.scale * (v - input.zero_point) as f32;
            let rescaled = (f(dequantized) * inverse_scale).round();
            // `static_cast<int32_t>(rescaled + zero_point)`: float add, truncation
            // (saturating here, where C would be undefined).
            let q = (rescaled + output.zero_point as f32) as i32;
            table[v as u8 as usize] = q.clamp(-128, 127) as i8;
        }
        Lut { table }
    }

    /// LOGISTIC; TFLite requires the output scale to be exactly 1/256.
    pub fn logistic(input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        if output.scale != 1.0 / 256.0 {
            return Err(KernelError::params(
                "output scale",
                output.scale,
                "exactly 1/256, as TFLite's int8 LOGISTIC requires",
            ));
        }
        Ok(Self::populate(input, output, |x| 1.0 / (1.0 + (-x).exp())))
    }

    /// TANH (LiteRT checks nothing on this path; the converter uses 1/128, 0).
    pub fn tanh(input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        Ok(Self::populate(input, output, f32::tanh))
    }

    /// The table of an element-wise function whose result depends on the value alone.
    pub fn from_fn(f: impl Fn(i8) -> i8) -> Self {
        let mut table = [0i8; 256];
        for v in -128..=127i8 {
            table[v as u8 as usize] = f(v);
        }
        Lut { table }
    }

    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        check_lengths(input, out)?;
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::active() == crate::kernels::simd::Level::Avx512
            && std::arch::is_x86_feature_detected!("avx512vbmi")
        {
            // SAFETY: AVX-512 F/BW (part of the level) and VBMI were detected.
            unsafe { lut_vbmi(&self.table, input, out) };
            return Ok(());
        }
        self.run_scalar(input, out);
        Ok(())
    }

    /// The plain lookup loop (the reference for the vector version).
    pub fn run_scalar(&self, input: &[i8], out: &mut [i8]) {
        for (o, &x) in out.iter_mut().zip(input) {
            *o = self.table[x as u8 as usize];
        }
    }
}

/// Element-wise kernels whose result depends on the value alone run through a table
/// built from their scalar arithmetic once the input is large enough to pay for it:
/// the same results, one lookup per element.
const TABLE_FROM: usize = 1024;

/// 64 lookups per step: `vpermi2b` picks from two 64-byte quarters of the table by the
/// index's low 7 bits, once for each half; the index's top bit picks the half.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn lut_vbmi(table: &[i8; 256], input: &[i8], out: &mut [i8]) {
    use std::arch::x86_64::*;
    let t = table.as_ptr();
    let q0 = _mm512_loadu_si512(t.cast());
    let q1 = _mm512_loadu_si512(t.add(64).cast());
    let q2 = _mm512_loadu_si512(t.add(128).cast());
    let q3 = _mm512_loadu_si512(t.add(192).cast());
    let n = input.len().min(out.len());
    let mut i = 0;
    while i < n {
        let left = n - i;
        let mask: __mmask64 = if left >= 64 { !0 } else { (1u64 << left) - 1 };
        let idx = _mm512_maskz_loadu_epi8(mask, input.as_ptr().add(i));
        let low = _mm512_permutex2var_epi8(q0, idx, q1);
        let high = _mm512_permutex2var_epi8(q2, idx, q3);
        let v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high);
        _mm512_mask_storeu_epi8(out.as_mut_ptr().add(i), mask, v);
        i += 64;
    }
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul` on int16.
fn srdhm16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    let ab = i32::from(a) * i32::from(b);
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLite's `SaturatingDoublingHighMul` (int16): like [`srdhm16`] but truncating.
fn sdhm16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    ((i32::from(a) * i32::from(b)) / (1 << 15)) as i16
}

/// gemmlowp's `RoundingDivideByPOT` on int16 (mask truncated to int16, as there).
fn rdbpot16(x: i16, exponent: i32) -> i16 {
    let e = exponent.clamp(0, 31);
    let mask = ((1i64 << e) - 1) as i16;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i16::from(x < 0);
    ((i32::from(x) >> e) + i32::from(remainder > threshold)) as i16
}

/// TFLite's `SaturatingLeftShift` (int16). Amounts of 31 and more, undefined in
/// TFLite, saturate like any other overflow.
fn saturating_left_shift16(x: i16, amount: i32) -> i16 {
    // |x| <= 2^15, so a shift of up to 40 fits an i64 and already saturates.
    let v = i64::from(x) << amount.clamp(0, 40);
    v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// `DownScaleInt32ToInt16Multiplier`: round the Q31 multiplier to Q15.
fn downscale_multiplier(m: i32) -> i16 {
    const ROUNDING: i32 = 1 << 15;
    if m >= i32::MAX - ROUNDING {
        i16::MAX
    } else {
        ((m + ROUNDING) >> 16) as i16
    }
}

/// Prepared int8 HARD_SWISH (TFLite's `HardSwishParams`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HardSwish {
    input_zero_point: i32,
    output_zero_point: i32,
    reluish_multiplier: i16,
    reluish_exponent: i32,
    output_multiplier: i16,
    output_exponent: i32,
}

impl HardSwish {
    /// `HardSwishPrepare`, in float as there: the input is first put on a "hires"
    /// scale 2^7 finer; the reluish multiplier maps it to a scale where 3.0 is 2^15.
    pub fn new(input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        let hires_input_scale = (1.0f32 / 128.0) * input.scale;
        let reluish_scale = 3.0f32 / 32768.0;
        let out_m = QuantizedMultiplier::from_real(f64::from(hires_input_scale / output.scale));
        if out_m.shift > 0 {
            return Err(KernelError::params(
                "HARD_SWISH output multiplier (input scale / 128 / output scale)",
                hires_input_scale / output.scale,
                "a value of at most 1, as TFLite's Prepare requires",
            ));
        }
        let reluish_m =
            QuantizedMultiplier::from_real(f64::from(hires_input_scale / reluish_scale));
        Ok(HardSwish {
            input_zero_point: input.zero_point,
            output_zero_point: output.zero_point,
            reluish_multiplier: downscale_multiplier(reluish_m.multiplier),
            reluish_exponent: reluish_m.shift,
            output_multiplier: downscale_multiplier(out_m.multiplier),
            output_exponent: out_m.shift,
        })
    }

    fn one(&self, x: i8) -> i8 {
        let input_value = (i32::from(x) - self.input_zero_point) as i16;
        let hires = input_value.wrapping_mul(1 << 7);
        let preshift_output = srdhm16(hires, self.output_multiplier);
        // The reluish value: x rescaled so that +-3 maps to +-2^15, saturating; the
        // left shift is split so that only its last bit can saturate.
        let mut reluish = hires;
        if self.reluish_exponent > 0 {
            reluish = saturating_left_shift16(reluish, self.reluish_exponent - 1);
        }
        reluish = srdhm16(reluish, self.reluish_multiplier);
        if self.reluish_exponent > 0 {
            reluish = saturating_left_shift16(reluish, 1);
        }
        if self.reluish_exponent < 0 {
            reluish = rdbpot16(reluish, -self.reluish_exponent);
        }
        // From [-1, 1] to [0, 1] in Q15.
        let reluish = ((i32::from(reluish) + (1 << 15)) >> 1) as i16;
        let preshift = sdhm16(reluish, preshift_output);
        let v =
            rdbpot16(preshift, -self.output_exponent).wrapping_add(self.output_zero_point as i16);
        v.clamp(i16::from(i8::MIN), i16::from(i8::MAX)) as i8
    }

    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        check_lengths(input, out)?;
        if input.len() >= TABLE_FROM {
            return Lut::from_fn(|x| self.one(x)).run(input, out);
        }
        for (o, &x) in out.iter_mut().zip(input) {
            *o = self.one(x);
        }
        Ok(())
    }
}

/// The clamp of the ReLU family of ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReluKind {
    Relu,
    Relu6,
    ReluN1To1,
    Relu0To1,
}

/// Prepared int8 RELU / RELU6 / RELU_N1_TO_1 / RELU_0_TO_1 (`ReluX`); RELU and RELU6
/// also in 16x8 ([`Relu::new_int16`], the same arithmetic within the int16 range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relu {
    multiplier: QuantizedMultiplier,
    input_zero_point: i32,
    output_zero_point: i32,
    act_min: i32,
    act_max: i32,
}

impl Relu {
    pub fn new(kind: ReluKind, input: QParams, output: QParams) -> Result<Self, KernelError> {
        Self::within::<i8>(kind, input, output)
    }

    /// 16x8 RELU / RELU6 (symmetric int16 input and output). LiteRT refuses int16
    /// RELU_N1_TO_1 and RELU_0_TO_1, and so does this.
    pub fn new_int16(kind: ReluKind, input: QParams, output: QParams) -> Result<Self, KernelError> {
        if matches!(kind, ReluKind::ReluN1To1 | ReluKind::Relu0To1) {
            return Err(KernelError::Options {
                what: "activation",
                found: format!("{kind:?} on int16"),
                allowed: "RELU or RELU6 (LiteRT runs only those in 16x8)",
            });
        }
        crate::kernels::int16::check_symmetric("input scale", "input zero point", input)?;
        crate::kernels::int16::check_symmetric("output scale", "output zero point", output)?;
        Self::within::<i16>(kind, input, output)
    }

    /// The int16 outputs of `input`.
    pub fn run_int16(&self, input: &[i16], out: &mut [i16]) -> Result<(), KernelError> {
        if input.len() != out.len() {
            return Err(KernelError::size("output", input.len(), out.len()));
        }
        for (o, &x) in out.iter_mut().zip(input) {
            *o = self.wide(i32::from(x)) as i16;
        }
        Ok(())
    }

    fn within<T: QuantizedElement>(
        kind: ReluKind,
        input: QParams,
        output: QParams,
    ) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        let (lo, hi) = match kind {
            ReluKind::Relu => (0.0, f32::INFINITY),
            ReluKind::Relu6 => (0.0, 6.0),
            ReluKind::ReluN1To1 => (-1.0, 1.0),
            ReluKind::Relu0To1 => (0.0, 1.0),
        };
        // QuantizedReluX: zero point + roundf(bound / scale), intersected with the
        // type's range.
        let quantize = |r: f32| {
            output
                .zero_point
                .saturating_add((r / output.scale).round() as i32)
        };
        let act_min = quantize(lo).max(T::MIN);
        let act_max = if hi.is_infinite() {
            T::MAX
        } else {
            quantize(hi).min(T::MAX)
        };
        Ok(Relu {
            // ReluPrepare divides the scales in float, then widens.
            multiplier: QuantizedMultiplier::from_real(f64::from(input.scale / output.scale)),
            input_zero_point: input.zero_point,
            output_zero_point: output.zero_point,
            act_min,
            act_max,
        })
    }

    fn one(&self, x: i8) -> i8 {
        self.wide(i32::from(x)) as i8
    }

    fn wide(&self, x: i32) -> i32 {
        let v = self
            .multiplier
            .apply(x - self.input_zero_point)
            .wrapping_add(self.output_zero_point);
        v.max(self.act_min).min(self.act_max)
    }

    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        check_lengths(input, out)?;
        if input.len() >= TABLE_FROM {
            return Lut::from_fn(|x| self.one(x)).run(input, out);
        }
        for (o, &x) in out.iter_mut().zip(input) {
            *o = self.one(x);
        }
        Ok(())
    }
}

/// XNNPACK's 8-bit fixed-point form of a scale ratio (`round_ties_even(256 * ratio)`, in
/// f32), or `None` where its delegate declines the op (a ratio outside [2^-8, 2^7]) and
/// LiteRT's builtin kernel runs it.
fn xnnpack_multiplier(ratio: f32) -> Option<i32> {
    (1.0 / 256.0..=128.0)
        .contains(&ratio.abs())
        .then(|| (256.0 * ratio).round_ties_even() as i32)
}

/// Prepared int8 LEAKY_RELU; also 16x8 ([`LeakyRelu::run_int16`]: LiteRT's int16 kernel
/// is the same arithmetic, saturated to int16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakyRelu {
    identity: QuantizedMultiplier,
    alpha: QuantizedMultiplier,
    input_zero_point: i32,
    output_zero_point: i32,
    /// XNNPACK's 8-bit fixed-point slopes `(x >= zp, x < zp)`, when its delegate would
    /// take the op, and whether [`LeakyRelu::with_arithmetic`] chose them.
    xnnpack: Option<(i32, i32)>,
    use_xnnpack: bool,
}

impl LeakyRelu {
    pub fn new(alpha: f32, input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        let alpha_real = input.scale * alpha / output.scale;
        if !alpha_real.is_finite() {
            return Err(KernelError::params(
                "LEAKY_RELU alpha",
                alpha,
                "one whose rescaled slope (input scale x alpha / output scale) is finite",
            ));
        }
        // XNNPACK: `round_ties_even(256 * in / out)` and the same times alpha (all f32);
        // its delegate declines slopes whose magnitude lies outside [2^-8, 2^7].
        let positive = input.scale / output.scale;
        let negative = positive * alpha;
        let xnnpack = xnnpack_multiplier(positive).zip(xnnpack_multiplier(negative));
        Ok(LeakyRelu {
            identity: QuantizedMultiplier::from_real(f64::from(input.scale / output.scale)),
            alpha: QuantizedMultiplier::from_real(f64::from(alpha_real)),
            input_zero_point: input.zero_point,
            output_zero_point: output.zero_point,
            xnnpack,
            use_xnnpack: false,
        })
    }

    /// Compute like `arithmetic` (LiteRT's builtin kernels unless told otherwise).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.use_xnnpack = arithmetic == Arithmetic::Xnnpack;
        self
    }

    /// The int16 outputs of `input`; the kernel must have been prepared with symmetric
    /// int16 quantizations (LiteRT's int16 LEAKY_RELU has no XNNPACK form).
    pub fn run_int16(&self, input: &[i16], out: &mut [i16]) -> Result<(), KernelError> {
        if self.input_zero_point != 0 || self.output_zero_point != 0 {
            return Err(KernelError::params(
                "LEAKY_RELU int16 zero point",
                self.input_zero_point.max(self.output_zero_point),
                crate::kernels::error::allowed::ZERO,
            ));
        }
        if input.len() != out.len() {
            return Err(KernelError::size("output", input.len(), out.len()));
        }
        for (o, &x) in out.iter_mut().zip(input) {
            let v = i32::from(x);
            let m = if v >= 0 { self.identity } else { self.alpha };
            *o = m.apply(v).clamp(-32768, 32767) as i16;
        }
        Ok(())
    }

    fn one(&self, x: i8) -> i8 {
        let v = i32::from(x) - self.input_zero_point;
        if let (true, Some((positive, negative))) = (self.use_xnnpack, self.xnnpack) {
            // `(zp_out << 8) + 128 + v * slope`, shifted right by 8: the slope in 8
            // fractional bits, ties rounded up. |v| <= 255 and |slope| <= 2^15: no overflow.
            let slope = if v >= 0 { positive } else { negative };
            let acc = (self.output_zero_point << 8) + 0x80 + v * slope;
            return (acc >> 8).clamp(-128, 127) as i8;
        }
        let m = if v >= 0 { self.identity } else { self.alpha };
        m.apply(v)
            .wrapping_add(self.output_zero_point)
            .clamp(-128, 127) as i8
    }

    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        check_lengths(input, out)?;
        if input.len() >= TABLE_FROM {
            return Lut::from_fn(|x| self.one(x)).run(input, out);
        }
        for (o, &x) in out.iter_mut().zip(input) {
            *o = self.one(x);
        }
        Ok(())
    }
}

/// Prepared int8 -> int8 requantization (QUANTIZE between two int8 tensors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requantize {
    multiplier: QuantizedMultiplier,
    input_zero_point: i32,
    output_zero_point: i32,
    /// XNNPACK's 8-bit fixed-point multiplier, when its delegate would take the op, and
    /// whether [`Requantize::with_arithmetic`] chose it.
    xnnpack: Option<i32>,
    use_xnnpack: bool,
}

impl Requantize {
    pub fn new(input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        Ok(Requantize {
            // quantize.cc divides in double.
            multiplier: QuantizedMultiplier::from_real(
                f64::from(input.scale) / f64::from(output.scale),
            ),
            input_zero_point: input.zero_point,
            output_zero_point: output.zero_point,
            xnnpack: xnnpack_multiplier(input.scale / output.scale),
            use_xnnpack: false,
        })
    }

    /// Compute like `arithmetic` (LiteRT's builtin kernels unless told otherwise).
    /// XNNPACK's delegate runs an int8 -> int8 QUANTIZE as its `convert` operator (the
    /// debug models TensorFlow's debugger runs: g12874's RELU reading a LOGISTIC
    /// requantized from 1/256 to 0.0256 is off by 13% in MSE with the builtin rounding).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.use_xnnpack = arithmetic == Arithmetic::Xnnpack;
        self
    }

    /// One element, as LiteRT's vector blocks (`vector`) or its scalar tail computes it,
    /// or as XNNPACK's `convert` does (all elements alike).
    fn one(&self, x: i8, vector: bool) -> i8 {
        let v = i32::from(x) - self.input_zero_point;
        if let (true, Some(multiplier)) = (self.use_xnnpack, self.xnnpack) {
            // `(zp_out << 8) + 128 + v * multiplier`, shifted right by 8: the scale ratio
            // in 8 fractional bits, ties rounded up. |v| <= 255 and multiplier <= 2^15.
            let acc = (self.output_zero_point << 8) + 0x80 + v * multiplier;
            return (acc >> 8).clamp(-128, 127) as i8;
        }
        let m = self.multiplier;
        let scaled = if vector {
            neon::multiply_by_quantized_multiplier(v, m.multiplier, m.shift)
        } else {
            m.apply(v)
        };
        scaled.wrapping_add(self.output_zero_point).clamp(-128, 127) as i8
    }

    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        check_lengths(input, out)?;
        let blocks = input.len() / 16 * 16;
        if input.len() >= TABLE_FROM {
            // The rule depends on the position only through block vs tail: one table each.
            Lut::from_fn(|x| self.one(x, true)).run(&input[..blocks], &mut out[..blocks])?;
            return Lut::from_fn(|x| self.one(x, false)).run(&input[blocks..], &mut out[blocks..]);
        }
        for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
            *o = self.one(x, i < blocks);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VBMI table lookup against the plain loop, on every length up to a few
    /// vectors (the masked tail) and every byte value.
    #[test]
    fn table_lookup_matches_scalar() {
        let lut = Lut::from_fn(|x| x.wrapping_mul(37).wrapping_add(11));
        let input: Vec<i8> = (0..700).map(|i: i32| (i * 29 + 3) as i8).collect();
        for len in (0..200).chain([255, 256, 257, 511, 700]) {
            let mut want = vec![0i8; len];
            lut.run_scalar(&input[..len], &mut want);
            let mut got = vec![0i8; len];
            lut.run(&input[..len], &mut got).unwrap();
            assert_eq!(got, want, "length {len}");
        }
    }

    /// Large inputs go through the table; it must hold exactly what the per-element
    /// arithmetic gives (HARD_SWISH, ReLU, LEAKY_RELU, and REQUANTIZE's two rules).
    #[test]
    fn tabled_kernels_match_their_arithmetic() {
        let input: Vec<i8> = (0..TABLE_FROM as i32 + 37)
            .map(|i| (i * 7 + 1) as i8)
            .collect();
        let mut out = vec![0i8; input.len()];
        let (qi, qo) = (QParams::new(0.05, -9), QParams::new(0.03, 4));
        let hs = HardSwish::new(qi, qo).unwrap();
        hs.run(&input, &mut out).unwrap();
        assert!(input.iter().zip(&out).all(|(&x, &o)| hs.one(x) == o));
        let relu = Relu::new(ReluKind::Relu6, qi, qo).unwrap();
        relu.run(&input, &mut out).unwrap();
        assert!(input.iter().zip(&out).all(|(&x, &o)| relu.one(x) == o));
        let leaky = LeakyRelu::new(0.2, qi, qo).unwrap();
        leaky.run(&input, &mut out).unwrap();
        assert!(input.iter().zip(&out).all(|(&x, &o)| leaky.one(x) == o));
        let rq = Requantize::new(QParams::new(0.0625, 3), QParams::new(0.25, -2)).unwrap();
        rq.run(&input, &mut out).unwrap();
        let blocks = input.len() / 16 * 16;
        for (i, (&x, &o)) in input.iter().zip(&out).enumerate() {
            assert_eq!(o, rq.one(x, i < blocks), "element {i}");
        }
    }
    use crate::kernels::fixed_point::saturating_rounding_doubling_high_mul;

    #[test]
    fn int16_fixed_point_helpers() {
        // 0.5 * 0.5 = 0.25 in Q15; the rounding variant rounds -0.5 LSB up.
        assert_eq!(srdhm16(16384, 16384), 8192);
        assert_eq!(srdhm16(-1, 16384), 0);
        assert_eq!(sdhm16(-1, 16384), 0);
        assert_eq!(srdhm16(i16::MIN, i16::MIN), i16::MAX);
        assert_eq!(rdbpot16(-3, 1), -2);
        assert_eq!(rdbpot16(3, 1), 2);
        assert_eq!(saturating_left_shift16(20000, 1), i16::MAX);
        assert_eq!(saturating_left_shift16(-20000, 2), i16::MIN);
        assert_eq!(downscale_multiplier(1 << 30), 1 << 14);
        assert_eq!(downscale_multiplier(i32::MAX), i16::MAX);
        // Same rounding as the int32 version, 16 bits narrower.
        assert_eq!(
            i32::from(srdhm16(12345, -23456)),
            saturating_rounding_doubling_high_mul(12345 << 16, -23456 << 16) >> 16
        );
    }

    #[test]
    fn hard_swish_by_hand() {
        // Input scale 1/16 (zp 0), output 1/32 (zp 0). Saturated ends: x >= 3 gives x,
        // x <= -3 gives 0, x = 0 gives 0.
        let hs = HardSwish::new(QParams::new(1.0 / 16.0, 0), QParams::new(1.0 / 32.0, 0)).unwrap();
        let mut out = [0i8; 4];
        hs.run(&[48, 60, -64, 0], &mut out).unwrap();
        // 3.0 -> 3.0 = 96/32; 3.75 -> 120; -4 -> 0; 0 -> 0
        assert_eq!(out, [96, 120, 0, 0]);
        // x = 1.0 (16): 1 * 4 / 6 = 0.6667 -> 21.33 on the 1/32 scale -> 21.
        hs.run(&[16, 16, 16, 16], &mut out).unwrap();
        assert_eq!(out[0], 21);
    }

    #[test]
    fn relu_family_by_hand() {
        // in (0.1, 10), out (0.05, -128): multiplier 2.
        let r = Relu::new(
            ReluKind::Relu6,
            QParams::new(0.1, 10),
            QParams::new(0.05, -128),
        )
        .unwrap();
        let mut out = [0i8; 4];
        // -1.0 -> 0 -> -128; 1.0 -> 20 - 128 = -108; 5.0 -> 100 - 128 = -28;
        // 7.0 -> clamp at 6.0 = 120 - 128 = -8.
        r.run(&[0, 20, 60, 80], &mut out).unwrap();
        assert_eq!(out, [-128, -108, -28, -8]);
        let l = LeakyRelu::new(0.25, QParams::new(0.1, 0), QParams::new(0.1, 1)).unwrap();
        l.run(&[-8, -6, 0, 9], &mut out).unwrap();
        // -8 * 0.25 = -2 + 1; -1.5 -> -2 + 1; 0 + 1; 9 + 1
        assert_eq!(out, [-1, -1, 1, 10]);
    }

    #[test]
    fn lut_by_hand() {
        let lut = Lut::logistic(QParams::new(0.25, 0), QParams::new(1.0 / 256.0, -128)).unwrap();
        let mut out = [0i8; 3];
        // sigmoid(0) = 0.5 -> 128 - 128 = 0; sigmoid(31.75) -> 256 -> clamps at 127;
        // sigmoid(-2) = 0.1192 -> 30.5 -> 31 - 128.
        lut.run(&[0, 127, -8], &mut out).unwrap();
        assert_eq!(out, [0, 127, -97]); // 31 - 128
        assert!(Lut::logistic(QParams::new(0.25, 0), QParams::new(1.0 / 128.0, 0)).is_err());
        let tanh = Lut::tanh(QParams::new(0.5, 0), QParams::new(1.0 / 128.0, 0)).unwrap();
        // tanh(1) = 0.76159 -> 97.48 -> 97; tanh(-64) -> -128
        tanh.run(&[2, -128, 0], &mut out).unwrap();
        assert_eq!(out, [97, -128, 0]);
    }

    #[test]
    fn requantize_blocks_round_differently() {
        // Scale ratio 0.25 (2^30, shift -1): x = -6 -> -1.5. 17 elements: 16 vector
        // lanes round half up (-1), the tail rounds half away from zero (-2).
        let rq = Requantize::new(QParams::new(0.25, 0), QParams::new(1.0, 0)).unwrap();
        let input = [-6i8; 17];
        let mut out = [0i8; 17];
        rq.run(&input, &mut out).unwrap();
        assert_eq!(&out[..16], &[-1; 16]);
        assert_eq!(out[16], -2);
        assert!(rq.run(&input, &mut [0; 3]).is_err());
    }
}
