//! gemmlowp / TFLite fixed-point helpers as LiteRT's x86 build computes them, for the
//! reference kernels (DIV, SQUARED_DIFFERENCE, RSQRT, PRELU) that use them.
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
//! right); LiteRT 2.3.0 does exactly that (tests/fixtures/kernels/reference_math/div_same.npz).

use crate::kernels::fixed_point::{saturating_rounding_doubling_high_mul, QuantizedMultiplier};

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
pub(crate) fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0) as u32;
    let right = shift.min(0).unsigned_abs();
    let shifted = x.wrapping_mul(1i32.wrapping_shl(left));
    rounding_divide_by_pot_x86(
        saturating_rounding_doubling_high_mul(shifted, multiplier),
        right,
    )
}

/// TFLite's `MultiplyByQuantizedMultiplierSmallerThanOneExp` (`left_shift <= 0`).
pub(crate) fn multiply_smaller_than_one(x: i32, m: QuantizedMultiplier) -> i32 {
    rounding_divide_by_pot_x86(
        saturating_rounding_doubling_high_mul(x, m.multiplier),
        m.shift.min(0).unsigned_abs(),
    )
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT<exponent>` for `exponent > 0`.
pub(crate) fn saturating_shift_left(x: i32, exponent: u32) -> i32 {
    let v = i64::from(x) << exponent.min(32);
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// gemmlowp's `RoundingHalfSum` on int32.
pub(crate) fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = i64::from(a) + i64::from(b);
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1` on raw Q0.31 values: three
/// Newton-Raphson steps in Q2.29 from the 48/17 - 32/17 x estimate.
pub(crate) fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
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
pub(crate) fn reciprocal(x: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros().min(31);
    let num_bits_over_unit = 31 - headroom_plus_one as i32;
    let shifted_sum_minus_one = ((x as u32) << headroom_plus_one).wrapping_sub(1u32 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

/// TFLite's `CountLeadingSignBits` on int32 (31 for 0 and -1).
pub(crate) fn count_leading_sign_bits(x: i32) -> u32 {
    let magnitude = if x >= 0 { x } else { !x };
    magnitude.leading_zeros() - 1
}

/// TFLite's `GetInvSqrtQuantizedMultiplierExp(input, reverse_shift = -1)`:
/// `1 / sqrt(input)` as a Q31 multiplier and a (left) shift, by five Newton-Raphson
/// steps in Q3.28.
pub(crate) fn inv_sqrt_multiplier_exp(input: i32) -> (i32, i32) {
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
}
