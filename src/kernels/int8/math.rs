//! int8 DIV, SQUARED_DIFFERENCE, RSQRT, SQRT, PRELU and GELU, bit-exact with what
//! LiteRT 2.3.0's builtin kernels compute on x86.
//!
//! * DIV (`div.cc`): the int8 path is `reference_ops::Div` / `BroadcastDivSlow`
//!   (`optimized_ops` only re-exports them). Per element: the divisor (offset
//!   applied) is made positive by flipping both signs, its reciprocal comes from
//!   `GetReciprocal` (gemmlowp's Newton-Raphson `one_over_one_plus_x_for_x_in_0_1`),
//!   the dividend is shifted left by its headroom and multiplied by it, and one
//!   rounding multiply by `in1_scale / (in2_scale * out_scale)` (divided in float)
//!   shifted by `output_shift - recip_shift - headroom` gives the result, clamped
//!   to the fused activation's range. `Eval` first refuses any divisor equal to its
//!   zero point.
//! * SQUARED_DIFFERENCE (`squared_difference.cc`): reference arithmetic only. Both
//!   inputs are shifted left by 7 and rescaled to twice the larger input scale,
//!   the difference is squared and rescaled by `(2 max)^2 / (2^14 out_scale)`.
//!   Broadcasting goes through a 4-D loop, so LiteRT aborts on a broadcast of more
//!   than four dimensions; this refuses it.
//! * RSQRT (`elementwise.cc`): fixed point, not a table. `x - zp` goes through
//!   `GetInvSqrtQuantizedMultiplierExp` (Newton-Raphson in gemmlowp fixed point),
//!   the result is taken to a 2^20 scale and rescaled by
//!   `1 / (sqrtf(in_scale) * out_scale)`; `x == zp` gives 127. Inputs below the
//!   zero point are an error.
//! * SQRT (`elementwise.cc`): float per element, no table: dequantize, `sqrtf`,
//!   divide by the output scale, then *truncate* to int (no rounding) and add the
//!   zero point. Negative inputs are an error.
//! * PRELU (`activations.cc`): `reference_ops::Prelu` / `BroadcastPrelu4DSlow`, one
//!   multiplier (`in / out`) for `x >= zp` and one (`in * alpha / out`) applied to
//!   `(x - zp) * (alpha - alpha_zp)` otherwise; alpha broadcasts into the input.
//! * GELU (`activations.cc`): a 256-entry table filled from float math
//!   (`LUTPopulate`), with `0.5 x (1 + tanhf(sqrt(2/pi) (x + 0.044715 x^3)))` or
//!   `0.5 x erfcf(-x / sqrt 2)`; both call the platform's libm, as LiteRT does.
//!
//! TFLite's `RoundingDivideByPOT` is only defined for exponents up to 31, but DIV
//! reaches larger ones (a dividend near the zero point has a headroom of 30 or 31
//! bits). What LiteRT's x86 build computes then is reproduced: the mask is formed
//! in 64 bits and truncated to 32 (all ones), and the arithmetic right shift only
//! uses the count's low five bits ([`rounding_divide_by_pot_x86`]). The same
//! function serves every rounding shift here, so extreme scale ratios behave as
//! on x86 too. For DIV this is visible: a dividend at its zero point divided by
//! a large enough divisor gives `zp + 1`, and one a single step from it can
//! saturate (offset values -1 / 128 giving -128 where the zero point, -16, is
//! right); LiteRT 2.3.0 does exactly that (tests/fixtures/kernels/k4_div_same.npz).

use super::activation::Lut;
use super::elementwise::broadcast_shape;
use super::{fused_activation_range, QParams};
use crate::graph::FusedActivation;
use crate::kernels::fixed_point::{saturating_rounding_doubling_high_mul, QuantizedMultiplier};

fn check_scale(what: &str, q: QParams) -> Result<(), String> {
    if q.scale.is_finite() && q.scale > 0.0 {
        Ok(())
    } else {
        Err(format!("{what} scale {} is not a positive number", q.scale))
    }
}

fn check_int8_zero_point(what: &str, q: QParams) -> Result<(), String> {
    if (-128..=127).contains(&q.zero_point) {
        Ok(())
    } else {
        Err(format!(
            "{what} zero point {} is outside int8",
            q.zero_point
        ))
    }
}

fn check_lengths(input: &[i8], out: &[i8]) -> Result<(), String> {
    if input.len() == out.len() {
        Ok(())
    } else {
        Err(format!(
            "input has {} elements, output {}",
            input.len(),
            out.len()
        ))
    }
}

// ---------------------------------------------------------------------------
// gemmlowp / TFLite fixed point, as LiteRT's x86 build computes it
// ---------------------------------------------------------------------------

/// gemmlowp's `RoundingDivideByPOT(x, exponent)` for `exponent >= 0`, including
/// the exponents past 31 that TFLite's DIV and extreme rescales reach: the mask
/// `(1ll << exponent) - 1` is truncated to 32 bits and `x >> exponent` is an x86
/// `sar`, which uses the count modulo 32. For exponents in [0, 31] this is the
/// usual division by 2^exponent rounding half away from zero.
pub(crate) fn rounding_divide_by_pot_x86(x: i32, exponent: u32) -> i32 {
    let mask = 1i64.wrapping_shl(exponent).wrapping_sub(1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1).wrapping_add(i32::from(x < 0));
    x.wrapping_shr(exponent)
        .wrapping_add(i32::from(remainder > threshold))
}

/// TFLite's `MultiplyByQuantizedMultiplier` (double rounding): `x * 2^left`
/// (wrapping, as the int32 multiply does), a rounding doubling high multiply,
/// then a rounding right shift.
fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0) as u32;
    let right = shift.min(0).unsigned_abs();
    let shifted = x.wrapping_mul(1i32.wrapping_shl(left));
    rounding_divide_by_pot_x86(
        saturating_rounding_doubling_high_mul(shifted, multiplier),
        right,
    )
}

/// TFLite's `MultiplyByQuantizedMultiplierSmallerThanOneExp` (`left_shift <= 0`).
fn multiply_smaller_than_one(x: i32, m: QuantizedMultiplier) -> i32 {
    rounding_divide_by_pot_x86(
        saturating_rounding_doubling_high_mul(x, m.multiplier),
        m.shift.min(0).unsigned_abs(),
    )
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT<exponent>` for `exponent > 0`.
fn saturating_shift_left(x: i32, exponent: u32) -> i32 {
    let v = i64::from(x) << exponent.min(32);
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// gemmlowp's `RoundingHalfSum` on int32.
fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = i64::from(a) + i64::from(b);
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1` on raw Q0.31 values: three
/// Newton-Raphson steps in Q2.29 from the 48/17 - 32/17 x estimate.
fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    const CONSTANT_48_OVER_17: i32 = 1_515_870_810;
    const CONSTANT_NEG_32_OVER_17: i32 = -1_010_580_540;
    const ONE_Q2_29: i32 = 1 << 29;
    let half_denominator = rounding_half_sum(a, i32::MAX);
    let mut x = CONSTANT_48_OVER_17.wrapping_add(saturating_rounding_doubling_high_mul(
        half_denominator,
        CONSTANT_NEG_32_OVER_17,
    ));
    for _ in 0..3 {
        let half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x);
        let one_minus = ONE_Q2_29.wrapping_sub(half_denominator_times_x);
        x = x.wrapping_add(saturating_shift_left(
            saturating_rounding_doubling_high_mul(x, one_minus),
            2,
        ));
    }
    // ExactMulByPot<-1> reinterprets Q2.29 as Q1.30; Rescale<0> doubles it.
    saturating_shift_left(x, 1)
}

/// TFLite's `GetReciprocal(x, 31, &shift)` for `x > 0`: `1 / x` as a Q0.31 value
/// in [0.5, 1] and the power of two it still has to be divided by.
fn reciprocal(x: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros().min(31);
    let num_bits_over_unit = 31 - headroom_plus_one as i32;
    let shifted_sum_minus_one = ((x as u32) << headroom_plus_one).wrapping_sub(1u32 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

/// TFLite's `CountLeadingSignBits` on int32 (31 for 0 and -1).
fn count_leading_sign_bits(x: i32) -> u32 {
    let magnitude = if x >= 0 { x } else { !x };
    magnitude.leading_zeros() - 1
}

/// TFLite's `GetInvSqrtQuantizedMultiplierExp(input, reverse_shift = -1)`:
/// `1 / sqrt(input)` as a Q31 multiplier and a (left) shift, by five Newton-Raphson
/// steps in Q3.28.
fn inv_sqrt_multiplier_exp(input: i32) -> (i32, i32) {
    if input <= 1 {
        return (i32::MAX, 0);
    }
    let mut input = input;
    let mut shift: i32 = 11;
    while input >= (1 << 29) {
        input /= 4;
        shift += 1;
    }
    let max_left_shift_bits = (input as u32).leading_zeros() - 1;
    let left_shift_bit_pairs = max_left_shift_bits / 2 - 1;
    shift -= left_shift_bit_pairs as i32;
    input <<= 2 * left_shift_bit_pairs;
    let srdhm = saturating_rounding_doubling_high_mul;
    // Q3.28 throughout; products of two Q3 values are Q6, of three Q9.
    let fixedpoint_input = input >> 1;
    let half_input = rounding_divide_by_pot_x86(fixedpoint_input, 1);
    let half_three: i32 = (1 << 28) + (1 << 27);
    let mut x: i32 = 1 << 28;
    for _ in 0..5 {
        let x3 = saturating_shift_left(srdhm(srdhm(x, x), x), 6);
        x = saturating_shift_left(srdhm(half_three, x).wrapping_sub(srdhm(half_input, x3)), 3);
    }
    const HALF_SQRT_2: i32 = 1_518_500_250;
    let mut inv_sqrt = srdhm(x, HALF_SQRT_2);
    if shift < 0 {
        inv_sqrt = inv_sqrt.wrapping_shl(shift.unsigned_abs());
        shift = 0;
    }
    // Right shift (positive) turned into a left shift.
    (inv_sqrt, -shift)
}

// ---------------------------------------------------------------------------
// Broadcasting
// ---------------------------------------------------------------------------

fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has too many elements"))
}

/// Numpy broadcasting of two operands: the output shape and each operand's
/// element strides seen through it (0 on broadcast axes), after checking the
/// slice lengths against the shapes.
struct Broadcast {
    out_shape: Vec<usize>,
    strides_a: Vec<usize>,
    strides_b: Vec<usize>,
}

impl Broadcast {
    fn new(
        a: &[i8],
        a_shape: &[usize],
        b: &[i8],
        b_shape: &[usize],
        out: &[i8],
    ) -> Result<Self, String> {
        let out_shape = broadcast_shape(a_shape, b_shape)?;
        if a.len() != element_count(a_shape)? || b.len() != element_count(b_shape)? {
            return Err(format!(
                "input lengths {} and {} do not match shapes {a_shape:?} and {b_shape:?}",
                a.len(),
                b.len()
            ));
        }
        let out_len = element_count(&out_shape)?;
        if out.len() != out_len {
            return Err(format!(
                "output length {} does not match the broadcast shape ({out_len} elements)",
                out.len()
            ));
        }
        Ok(Broadcast {
            strides_a: strides(a_shape, &out_shape),
            strides_b: strides(b_shape, &out_shape),
            out_shape,
        })
    }

    /// Calls `f(out_index, a_index, b_index)` for every output element, row-major.
    fn for_each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let rank = self.out_shape.len();
        let total: usize = self.out_shape.iter().product();
        let mut idx = vec![0usize; rank];
        let (mut ia, mut ib) = (0usize, 0usize);
        for o in 0..total {
            f(o, ia, ib);
            for d in (0..rank).rev() {
                idx[d] += 1;
                ia += self.strides_a[d];
                ib += self.strides_b[d];
                if idx[d] < self.out_shape[d] {
                    break;
                }
                ia -= self.strides_a[d] * idx[d];
                ib -= self.strides_b[d] * idx[d];
                idx[d] = 0;
            }
        }
    }
}

/// Row-major strides of `shape`, padded with leading 1s to the rank of
/// `out_shape`, with 0 on the axes it broadcasts along.
fn strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let rank = out_shape.len();
    let mut padded = vec![1usize; rank - shape.len()];
    padded.extend_from_slice(shape);
    let mut strides = vec![0; rank];
    let mut s = 1;
    for i in (0..rank).rev() {
        strides[i] = if padded[i] == 1 && out_shape[i] != 1 {
            0
        } else {
            s
        };
        s *= padded[i];
    }
    strides
}

// ---------------------------------------------------------------------------
// DIV
// ---------------------------------------------------------------------------

/// Prepared int8 DIV (`tflite::ops::builtin::div`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Div {
    input1_offset: i32,
    input2_offset: i32,
    output_offset: i32,
    output: QuantizedMultiplier,
    act_min: i32,
    act_max: i32,
}

impl Div {
    /// div.cc `Prepare`: the output multiplier is `in1_scale / (in2_scale *
    /// out_scale)`, computed in float, then `QuantizeMultiplier`.
    pub fn new(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
    ) -> Result<Self, String> {
        check_scale("first input", in1)?;
        check_scale("second input", in2)?;
        check_scale("output", out)?;
        // TFLite DCHECKs the offsets to int8 range; the shift bound below relies on it.
        check_int8_zero_point("first input", in1)?;
        check_int8_zero_point("second input", in2)?;
        check_int8_zero_point("output", out)?;
        let real = in1.scale / (in2.scale * out.scale);
        if !real.is_finite() || real <= 0.0 {
            return Err(format!("DIV output multiplier {real} is not usable"));
        }
        let output = QuantizedMultiplier::from_real(f64::from(real));
        // The final shift is output_shift - recip_shift - headroom with headroom >= 23
        // for int8 operands; a larger output shift would make TFLite shift by a
        // negative amount (undefined behaviour).
        if output.shift > 23 {
            return Err(format!(
                "DIV output multiplier {real} is too large for TFLite's arithmetic"
            ));
        }
        let (act_min, act_max) = fused_activation_range(activation, out);
        Ok(Div {
            input1_offset: -in1.zero_point,
            input2_offset: -in2.zero_point,
            output_offset: out.zero_point,
            output,
            act_min,
            act_max,
        })
    }

    /// One element of `reference_ops::DivElementwise`.
    fn one(&self, a: i8, b: i8) -> i8 {
        let mut input1 = self.input1_offset + i32::from(a);
        let mut input2 = self.input2_offset + i32::from(b);
        if input2 < 0 {
            input1 = -input1;
            input2 = -input2;
        }
        let (input2_inv, recip_shift) = reciprocal(input2);
        let headroom = count_leading_sign_bits(input1);
        let unscaled_quotient = saturating_rounding_doubling_high_mul(
            input1.wrapping_mul(1i32.wrapping_shl(headroom)),
            input2_inv,
        );
        // <= 0 by the bound checked in `new`.
        let total_shift = self.output.shift - recip_shift - headroom as i32;
        let scaled = rounding_divide_by_pot_x86(
            saturating_rounding_doubling_high_mul(unscaled_quotient, self.output.multiplier),
            total_shift.min(0).unsigned_abs(),
        );
        let v = self.output_offset + scaled;
        v.max(self.act_min).min(self.act_max) as i8
    }

    /// `out = a / b` broadcast; `out` has the broadcast shape's element count.
    /// Like LiteRT, refuses a divisor equal to its zero point (checked over the
    /// whole of `b` first).
    pub fn run(
        &self,
        a: &[i8],
        a_shape: &[usize],
        b: &[i8],
        b_shape: &[usize],
        out: &mut [i8],
    ) -> Result<(), String> {
        let plan = Broadcast::new(a, a_shape, b, b_shape, out)?;
        if let Some(i) = b
            .iter()
            .position(|&x| i32::from(x) + self.input2_offset == 0)
        {
            return Err(format!(
                "DIV divisor element {i} equals its zero point (division by zero)"
            ));
        }
        plan.for_each(|o, ia, ib| out[o] = self.one(a[ia], b[ib]));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// SQUARED_DIFFERENCE
// ---------------------------------------------------------------------------

/// squared_difference.cc's input shift.
const SQDIFF_LEFT_SHIFT: u32 = 7;

/// TFLite's `QuantizeMultiplierSmallerThanOneExp`, which aborts outside (0, 1).
fn multiplier_below_one(what: &str, real: f64) -> Result<QuantizedMultiplier, String> {
    let m = QuantizedMultiplier::from_real(real);
    if !(real > 0.0 && real < 1.0) || m.shift > 0 {
        return Err(format!(
            "{what} multiplier {real} is outside (0, 1), which TFLite rejects"
        ));
    }
    Ok(m)
}

/// Prepared int8 SQUARED_DIFFERENCE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquaredDifference {
    input1_offset: i32,
    input2_offset: i32,
    output_offset: i32,
    input1: QuantizedMultiplier,
    input2: QuantizedMultiplier,
    output: QuantizedMultiplier,
}

impl SquaredDifference {
    /// squared_difference.cc `Prepare`.
    pub fn new(in1: QParams, in2: QParams, out: QParams) -> Result<Self, String> {
        check_scale("first input", in1)?;
        check_scale("second input", in2)?;
        check_scale("output", out)?;
        // Prepare checks these (TF_LITE_ENSURE).
        check_int8_zero_point("first input", in1)?;
        check_int8_zero_point("second input", in2)?;
        check_int8_zero_point("output", out)?;
        // `2 * std::max(float, float)` is a float, widened to double.
        let twice_max = f64::from(2.0 * in1.scale.max(in2.scale));
        // `(1 << 14) * output_scale` is a float too.
        let shifted_out = f64::from((1u32 << (2 * SQDIFF_LEFT_SHIFT)) as f32 * out.scale);
        Ok(SquaredDifference {
            input1_offset: -in1.zero_point,
            input2_offset: -in2.zero_point,
            output_offset: out.zero_point,
            input1: multiplier_below_one("input", f64::from(in1.scale) / twice_max)?,
            input2: multiplier_below_one("input", f64::from(in2.scale) / twice_max)?,
            output: multiplier_below_one("output", twice_max * twice_max / shifted_out)?,
        })
    }

    fn one(&self, a: i8, b: i8) -> i8 {
        let scale = |offset: i32, x: i8, m: QuantizedMultiplier| {
            let shifted = (offset + i32::from(x)) * (1 << SQDIFF_LEFT_SHIFT);
            multiply_smaller_than_one(shifted, m)
        };
        let diff = scale(self.input1_offset, a, self.input1).wrapping_sub(scale(
            self.input2_offset,
            b,
            self.input2,
        ));
        let squared = diff.wrapping_mul(diff);
        let v = multiply_smaller_than_one(squared, self.output).wrapping_add(self.output_offset);
        v.clamp(-128, 127) as i8
    }

    /// `out = (a - b)^2` broadcast; `out` has the broadcast shape's element count.
    /// Operands of different shapes may have at most four dimensions (LiteRT's
    /// broadcast loop is 4-D and aborts otherwise).
    pub fn run(
        &self,
        a: &[i8],
        a_shape: &[usize],
        b: &[i8],
        b_shape: &[usize],
        out: &mut [i8],
    ) -> Result<(), String> {
        let plan = Broadcast::new(a, a_shape, b, b_shape, out)?;
        if a_shape != b_shape && plan.out_shape.len() > 4 {
            return Err(format!(
                "SQUARED_DIFFERENCE broadcasts at most 4 dimensions in TFLite, got \
                 {a_shape:?} and {b_shape:?}"
            ));
        }
        plan.for_each(|o, ia, ib| out[o] = self.one(a[ia], b[ib]));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// RSQRT, SQRT
// ---------------------------------------------------------------------------

/// RSQRT's intermediate scale: the inverse square root is taken to 2^20.
const RSQRT_SHIFT: i32 = 20;

/// Prepared int8 RSQRT (fixed point, elementwise.cc `RsqrtEvalQuantizedInt8`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rsqrt {
    multiplier: QuantizedMultiplier,
    input_zero_point: i32,
    output_zero_point: i32,
}

impl Rsqrt {
    /// `SetRsqrtOutputMultiplier`: `1. / (std::sqrt(float) * float)`, the
    /// product in float, the division in double.
    pub fn new(input: QParams, output: QParams) -> Result<Self, String> {
        check_scale("input", input)?;
        check_scale("output", output)?;
        let product = input.scale.sqrt() * output.scale;
        if !(product > 0.0 && product.is_finite()) {
            return Err(format!(
                "RSQRT output multiplier 1 / {product} is not usable"
            ));
        }
        Ok(Rsqrt {
            multiplier: QuantizedMultiplier::from_real(1.0 / f64::from(product)),
            input_zero_point: input.zero_point,
            output_zero_point: output.zero_point,
        })
    }

    fn one(&self, x: i8) -> i8 {
        let value = i32::from(x).wrapping_sub(self.input_zero_point);
        if value == 0 {
            // LiteRT maps the zero input to the largest output.
            return 127;
        }
        let (inv_sqrt, inv_sqrt_shift) = inv_sqrt_multiplier_exp(value);
        let data = multiply_by_quantized_multiplier(1, inv_sqrt, inv_sqrt_shift + RSQRT_SHIFT);
        let v = multiply_by_quantized_multiplier(
            data,
            self.multiplier.multiplier,
            self.multiplier.shift - RSQRT_SHIFT,
        )
        .wrapping_add(self.output_zero_point);
        v.clamp(-128, 127) as i8
    }

    /// Refuses inputs below the zero point, as LiteRT does.
    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), String> {
        check_lengths(input, out)?;
        if let Some(i) = input
            .iter()
            .position(|&x| i32::from(x) < self.input_zero_point)
        {
            return Err(format!(
                "RSQRT input element {i} is negative (below the zero point)"
            ));
        }
        for (o, &x) in out.iter_mut().zip(input) {
            *o = self.one(x);
        }
        Ok(())
    }
}

/// `static_cast<int>(float)` as x86's `cvttss2si` does it: truncation toward zero,
/// and `INT_MIN` for NaN and anything outside the int32 range.
fn truncate_to_i32_x86(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// Prepared int8 SQRT (float per element, elementwise.cc `SqrtEvalQuantized`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sqrt {
    input: QParams,
    output: QParams,
}

impl Sqrt {
    pub fn new(input: QParams, output: QParams) -> Result<Self, String> {
        check_scale("input", input)?;
        check_scale("output", output)?;
        Ok(Sqrt { input, output })
    }

    /// Refuses negative (dequantized) inputs, as LiteRT does.
    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), String> {
        check_lengths(input, out)?;
        for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
            let dequantized =
                self.input.scale * i32::from(x).wrapping_sub(self.input.zero_point) as f32;
            if dequantized.is_nan() || dequantized < 0.0 {
                return Err(format!("SQRT input element {i} is negative"));
            }
            // Truncated, not rounded.
            let q = truncate_to_i32_x86(dequantized.sqrt() / self.output.scale)
                .wrapping_add(self.output.zero_point);
            *o = q.clamp(-128, 127) as i8;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// PRELU
// ---------------------------------------------------------------------------

/// Prepared int8 PRELU (`activations.cc`, reference kernels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prelu {
    identity: QuantizedMultiplier,
    alpha: QuantizedMultiplier,
    input_offset: i32,
    alpha_offset: i32,
    output_offset: i32,
}

impl Prelu {
    /// `PreluPrepare`: `in / out` and `in * alpha / out`, both in float.
    pub fn new(input: QParams, alpha: QParams, output: QParams) -> Result<Self, String> {
        check_scale("input", input)?;
        check_scale("alpha", alpha)?;
        check_scale("output", output)?;
        let identity = input.scale / output.scale;
        let alpha_real = input.scale * alpha.scale / output.scale;
        if !identity.is_finite() || !alpha_real.is_finite() {
            return Err(format!(
                "PRELU multipliers {identity} and {alpha_real} are not usable"
            ));
        }
        Ok(Prelu {
            identity: QuantizedMultiplier::from_real(f64::from(identity)),
            alpha: QuantizedMultiplier::from_real(f64::from(alpha_real)),
            input_offset: -input.zero_point,
            alpha_offset: -alpha.zero_point,
            output_offset: output.zero_point,
        })
    }

    fn one(&self, x: i8, a: i8) -> i8 {
        let input = self.input_offset.wrapping_add(i32::from(x));
        let v = if input >= 0 {
            multiply_by_quantized_multiplier(input, self.identity.multiplier, self.identity.shift)
        } else {
            let alpha = self.alpha_offset.wrapping_add(i32::from(a));
            multiply_by_quantized_multiplier(
                input.wrapping_mul(alpha),
                self.alpha.multiplier,
                self.alpha.shift,
            )
        };
        v.wrapping_add(self.output_offset).clamp(-128, 127) as i8
    }

    /// `out = x >= 0 ? x : alpha * x`, `alpha` broadcast to the input's shape (the
    /// output has the input's shape; LiteRT refuses an alpha that would enlarge it).
    pub fn run(
        &self,
        input: &[i8],
        input_shape: &[usize],
        alpha: &[i8],
        alpha_shape: &[usize],
        out: &mut [i8],
    ) -> Result<(), String> {
        let plan = Broadcast::new(input, input_shape, alpha, alpha_shape, out)?;
        if plan.out_shape != input_shape {
            return Err(format!(
                "PRELU alpha {alpha_shape:?} does not broadcast into the input {input_shape:?}"
            ));
        }
        plan.for_each(|o, ix, ia| out[o] = self.one(input[ix], alpha[ia]));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// GELU
// ---------------------------------------------------------------------------

mod libm {
    extern "C" {
        fn erfcf(x: f32) -> f32;
    }

    /// The platform libm's `erfcf`, which LiteRT's `std::erfc(float)` calls.
    pub fn erfc(x: f32) -> f32 {
        // SAFETY: `erfcf` is a pure C99 libm function (libm is linked by std on
        // every supported target); every f32 is a valid argument.
        unsafe { erfcf(x) }
    }
}

/// `reference_ops::GeluTransformApproximate`, every step in float.
fn gelu_tanh(x: f32) -> f32 {
    let sqrt_2_over_pi =
        (std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2) as f32;
    0.5 * x * (1.0 + (sqrt_2_over_pi * (x + 0.044715 * x * x * x)).tanh())
}

/// `reference_ops::GeluTransform`: `0.5 x erfc(-x / sqrt 2)`, in float.
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * libm::erfc(x * -(std::f64::consts::FRAC_1_SQRT_2 as f32))
}

/// Prepared int8 GELU: a table over the 256 inputs (`GeluPrepare`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gelu {
    lut: Lut,
}

impl Gelu {
    pub fn new(approximate: bool, input: QParams, output: QParams) -> Result<Self, String> {
        check_scale("input", input)?;
        check_scale("output", output)?;
        let lut = if approximate {
            Lut::populate(input, output, gelu_tanh)
        } else {
            Lut::populate(input, output, gelu_erf)
        };
        Ok(Gelu { lut })
    }

    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), String> {
        self.lut.run(input, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_shift_past_31_bits_follows_x86() {
        // Within range: half away from zero.
        assert_eq!(rounding_divide_by_pot_x86(5, 1), 3);
        assert_eq!(rounding_divide_by_pot_x86(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot_x86(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot_x86(7, 0), 7);
        assert_eq!(rounding_divide_by_pot_x86(i32::MAX, 31), 1);
        // 32..63: the mask truncates to all ones, so non-negative values gain one
        // and the shift count wraps modulo 32.
        assert_eq!(rounding_divide_by_pot_x86(0, 32), 1);
        assert_eq!(rounding_divide_by_pot_x86(0, 40), 1);
        assert_eq!(rounding_divide_by_pot_x86(-1, 32), -1);
        assert_eq!(rounding_divide_by_pot_x86(64, 35), 9); // 64 >> 3, + 1
        assert_eq!(rounding_divide_by_pot_x86(-64, 35), -8);
    }

    #[test]
    fn gemmlowp_reciprocal() {
        // 1 / 5 = 0.8 * 2^-2
        let (inv, shift) = reciprocal(5);
        assert_eq!(shift, 2);
        assert!((f64::from(inv) / 2f64.powi(31) - 0.8).abs() < 1e-8, "{inv}");
        // 1 / 1: 1.0 saturates to the largest Q0.31 value, no shift.
        let (inv, shift) = reciprocal(1);
        assert_eq!(shift, 0);
        assert!(inv >= i32::MAX - 4, "{inv}");
        // 1 / 192 = 0.6667 * 2^-7
        let (inv, shift) = reciprocal(192);
        assert_eq!(shift, 7);
        assert!((f64::from(inv) / 2f64.powi(31) - 2.0 / 3.0).abs() < 1e-8);
        assert_eq!(count_leading_sign_bits(0), 31);
        assert_eq!(count_leading_sign_bits(-1), 31);
        assert_eq!(count_leading_sign_bits(255), 23);
        assert_eq!(count_leading_sign_bits(-256), 23);
        assert_eq!(rounding_half_sum(3, 4), 4);
        assert_eq!(rounding_half_sum(-3, -4), -4);
    }

    #[test]
    fn gemmlowp_inverse_sqrt() {
        for v in [2, 3, 4, 17, 100, 255, 1 << 20] {
            let (m, shift) = inv_sqrt_multiplier_exp(v);
            let got = f64::from(m) / 2f64.powi(31) * 2f64.powi(shift);
            let want = 1.0 / f64::from(v).sqrt();
            // Five Newton-Raphson steps in Q3.28: about 20 bits.
            assert!((got - want).abs() < want * 1e-5, "{v}: {got} vs {want}");
        }
        assert_eq!(inv_sqrt_multiplier_exp(1), (i32::MAX, 0));
        assert_eq!(inv_sqrt_multiplier_exp(0), (i32::MAX, 0));
    }

    #[test]
    fn div_by_hand() {
        // 0.5 / (0.25 * 1.0) = 2: out = 2 * a / b.
        let q = |s| QParams::new(s, 0);
        let div = Div::new(q(0.5), q(0.25), q(1.0), FusedActivation::None).unwrap();
        let mut out = [0i8; 4];
        // 6 / 4 * 2 = 3; -7 / 2 * 2 = -7; 10 / -4 * 2 = -5 (signs flipped first);
        // 100 / 1 * 2 = 200 -> 127.
        div.run(&[6, -7, 10, 100], &[4], &[4, 2, -4, 1], &[4], &mut out)
            .unwrap();
        assert_eq!(out, [3, -7, -5, 127]);
        // The reciprocal of 4 comes out a hair below 1/4, so 9 / -4 * 2 = -4.5 does
        // not round away from zero.
        div.run(&[9], &[1], &[-4], &[1], &mut out[..1]).unwrap();
        assert_eq!(out[0], -4);
        // Broadcast a scalar divisor; a fused RELU clamps at the zero point.
        let relu = Div::new(q(0.5), q(0.25), q(1.0), FusedActivation::Relu).unwrap();
        relu.run(&[12, -6, 5, 0], &[2, 2], &[8], &[1], &mut out)
            .unwrap();
        // 12 / 8 * 2 = 3; -1.5 -> 0; 1.25 -> 1. 0 / 8 has a headroom of 31 bits and
        // a reciprocal shift of 3, so the final shift is 2 - 3 - 31 = -32: on x86
        // that rounding shift turns 0 into 1.
        assert_eq!(out, [3, 0, 1, 1]);
        // A divisor equal to its zero point is an error, as in LiteRT.
        assert!(div
            .run(&[1, 2], &[2], &[3, 0], &[2], &mut out[..2])
            .is_err());
        assert!(div.run(&[1, 2], &[2], &[3], &[1], &mut out[..1]).is_err());
        assert!(Div::new(q(0.5), q(1e-9), q(1e-9), FusedActivation::None).is_err());
        assert!(Div::new(
            QParams::new(0.5, 200),
            q(1.0),
            q(1.0),
            FusedActivation::None
        )
        .is_err());
    }

    #[test]
    fn squared_difference_by_hand() {
        // Inputs 0.1 (zp 0), output 0.01 (zp -128): (1.0 - 0.5)^2 = 0.25 -> 25 - 128.
        let sd = SquaredDifference::new(
            QParams::new(0.1, 0),
            QParams::new(0.1, 0),
            QParams::new(0.01, -128),
        )
        .unwrap();
        let mut out = [0i8; 3];
        sd.run(&[10, -10, 3], &[3], &[5, 5, 3], &[3], &mut out)
            .unwrap();
        // (-1.0 - 0.5)^2 = 2.25 -> 225 - 128 = 97; 0 -> -128.
        assert_eq!(out, [-103, 97, -128]);
        // The scalar broadcasts; 5-D broadcasts are refused.
        sd.run(&[10, -10, 3], &[3], &[5], &[1], &mut out).unwrap();
        assert_eq!(out, [-103, 97, -124]); // (0.3 - 0.5)^2 = 0.04 -> 4
        let mut big = [0i8; 2];
        assert!(sd
            .run(&[1, 2], &[1, 1, 1, 1, 2], &[1], &[1], &mut big)
            .is_err());
        // An output scale so small that the multiplier exceeds 1.
        let q = QParams::new(0.1, 0);
        assert!(SquaredDifference::new(q, q, QParams::new(1e-7, 0)).is_err());
    }

    #[test]
    fn rsqrt_and_sqrt_by_hand() {
        // Input 0.25 (zp -128), output 1/64 (zp -128).
        let rs = Rsqrt::new(QParams::new(0.25, -128), QParams::new(1.0 / 64.0, -128)).unwrap();
        let mut out = [0i8; 3];
        // 1.0 -> 1.0 = 64; 4.0 -> 0.5 = 32; 0 -> 127.
        rs.run(&[-124, -112, -128], &mut out).unwrap();
        assert_eq!(out, [-64, -96, 127]);
        let below = Rsqrt::new(QParams::new(0.25, -100), QParams::new(0.1, 0)).unwrap();
        assert!(below.run(&[-101], &mut out[..1]).is_err());

        // Input 0.25 (zp -128), output 0.125 (zp -128); truncated, not rounded.
        let sq = Sqrt::new(QParams::new(0.25, -128), QParams::new(0.125, -128)).unwrap();
        // 4.0 -> 2.0 = 16; 2.0 -> 1.414 = 11.3 -> 11; 2.5 -> 1.581 = 12.65 -> 12.
        sq.run(&[-112, -120, -118], &mut out).unwrap();
        assert_eq!(out, [-112, -117, -116]);
        let below = Sqrt::new(QParams::new(0.25, -100), QParams::new(0.1, 0)).unwrap();
        assert!(below.run(&[-101], &mut out[..1]).is_err());
    }

    #[test]
    fn prelu_by_hand() {
        // Input 0.5, alpha 0.25, output 0.5 (zero points 0).
        let p = Prelu::new(
            QParams::new(0.5, 0),
            QParams::new(0.25, 0),
            QParams::new(0.5, 0),
        )
        .unwrap();
        let mut out = [0i8; 4];
        // Per-channel alpha [0.5, -1.0]: 4 -> 4; -4 * -1 = 4; -3 * 0.5 = -1.5 -> -2;
        // -3 * -1 = 3.
        p.run(&[4, -4, -3, -3], &[2, 2], &[2, -4], &[2], &mut out)
            .unwrap();
        assert_eq!(out, [4, 4, -2, 3]);
        // Alpha may not enlarge the input.
        assert!(p
            .run(&[4, -4], &[2], &[1, 1, 1, 1], &[2, 2], &mut out)
            .is_err());
    }

    #[test]
    fn gelu_by_hand() {
        let q = QParams::new(0.1, 0);
        for approximate in [true, false] {
            let g = Gelu::new(approximate, q, q).unwrap();
            let mut out = [0i8; 4];
            // gelu(0) = 0; gelu(12.7) = 12.7; gelu(-12.8) = 0; gelu(1.0) = 0.841.
            g.run(&[0, 127, -128, 10], &mut out).unwrap();
            assert_eq!(out, [0, 127, 0, 8], "approximate {approximate}");
        }
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
    }
}
