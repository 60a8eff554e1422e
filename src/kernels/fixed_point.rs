//! TFLite's fixed-point arithmetic for rescaling integers by a real factor: the factor
//! becomes a Q31 multiplier and a power-of-two shift, applied with gemmlowp's rounding
//! (a nudged doubling high multiply, then a right shift rounding half away from zero). Bit-exactness with LiteRT depends on reproducing these steps exactly.

/// A real multiplier as `multiplier * 2^(shift - 31)`, with `multiplier` in `[2^30, 2^31)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantizedMultiplier {
    pub multiplier: i32,
    pub shift: i32,
}

impl QuantizedMultiplier {
    pub fn from_real(real: f64) -> Self {
        if real == 0.0 || !real.is_finite() {
            return QuantizedMultiplier {
                multiplier: 0,
                shift: 0,
            };
        }
        let (fraction, mut shift) = frexp(real);
        let mut q = (fraction * (1i64 << 31) as f64).round() as i64;
        // Rounding can carry the fraction up to exactly 1.0.
        if q == 1i64 << 31 {
            q /= 2;
            shift += 1;
        }
        // Multipliers this small flush to zero rather than underflow the shift.
        if shift < -31 {
            return QuantizedMultiplier {
                multiplier: 0,
                shift: 0,
            };
        }
        QuantizedMultiplier {
            multiplier: q as i32,
            shift,
        }
    }

    /// `x * real`, rounded as TFLite's `MultiplyByQuantizedMultiplier` does.
    pub fn apply(self, x: i32) -> i32 {
        let left = self.shift.max(0);
        let right = (-self.shift).max(0);
        let shifted = x.wrapping_mul(1i32.wrapping_shl(left as u32));
        rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(shifted, self.multiplier),
            right,
        )
    }
}

impl QuantizedMultiplier {
    /// `x * real` for a 64-bit accumulator, as TFLite's int64 overload of
    /// `MultiplyByQuantizedMultiplier` (the 16x8 kernels' requantization) computes it:
    /// the Q31 multiplier is first rounded to 16 bits (`(m + 2^15) >> 16`, or 0x7FFF when
    /// that would overflow), then `x * m16` gets `2^(total - 1)` added and is shifted
    /// right by `total = 15 - shift`: one rounding, ties towards +inf. The result is
    /// truncated to 32 bits as C's conversion does. TFLite requires `shift` in
    /// `[-31, 7]` and `|x| < 2^47`; callers keep to that (the shift is checked where the
    /// multiplier is made).
    pub fn apply_wide(self, x: i64) -> i32 {
        let reduced = if self.multiplier < 0x7FFF_0000 {
            (i64::from(self.multiplier) + (1 << 15)) >> 16
        } else {
            0x7FFF
        };
        let total_shift = (15 - self.shift).clamp(1, 63) as u32;
        let rounded = x
            .wrapping_mul(reduced)
            .wrapping_add(1i64 << (total_shift - 1));
        (rounded >> total_shift) as i32
    }

    /// `x * real` for a 64-bit accumulator with the full Q31 multiplier and a single
    /// rounding, half away from zero: what LiteRT 2.3.0's 16x8 FULLY_CONNECTED computes
    /// on x86 (measured on exact ties, `tests/fixtures/kernels/int16_fc_pow2_ties*.npz`:
    /// neither [`QuantizedMultiplier::apply_wide`] nor the 32-bit double rounding matches
    /// it). Saturates to i32.
    pub fn apply_wide_away_from_zero(self, x: i64) -> i32 {
        let total_shift = (31 - self.shift).clamp(1, 100) as u32;
        let product = i128::from(x) * i128::from(self.multiplier);
        let half = 1i128 << (total_shift - 1);
        let magnitude = (product.abs() + half) >> total_shift;
        let rounded = if product < 0 { -magnitude } else { magnitude };
        rounded.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
    }
}

/// Splits `x` into `fraction * 2^exp` with `|fraction|` in `[0.5, 1)`, like C's `frexp`.
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let mut exp = x.abs().log2().floor() as i32 + 1;
    let mut fraction = x / 2f64.powi(exp);
    // log2 can land one off near powers of two; nudge into [0.5, 1).
    if fraction.abs() >= 1.0 {
        fraction /= 2.0;
        exp += 1;
    } else if fraction.abs() < 0.5 {
        fraction *= 2.0;
        exp -= 1;
    }
    (fraction, exp)
}

/// High 32 bits of `2 * a * b`, rounded half away from zero; saturates the one overflow case.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == b && a == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    // Division truncates toward zero, as in C.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `x / 2^exponent`, rounding half away from zero.
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent <= 0 {
        return x;
    }
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_of_simple_reals() {
        // 0.5 = 0.5 * 2^0 -> Q31 of 0.5 is 2^30
        assert_eq!(
            QuantizedMultiplier::from_real(0.5),
            QuantizedMultiplier {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        // 3.0 = 0.75 * 2^2
        assert_eq!(
            QuantizedMultiplier::from_real(3.0),
            QuantizedMultiplier {
                multiplier: 3 << 29,
                shift: 2
            }
        );
        // 0.1 = 0.8 * 2^-3; round(0.8 * 2^31) = 1717986918
        assert_eq!(
            QuantizedMultiplier::from_real(0.1),
            QuantizedMultiplier {
                multiplier: 1_717_986_918,
                shift: -3
            }
        );
    }

    #[test]
    fn rounding_follows_gemmlowp() {
        let half = QuantizedMultiplier::from_real(0.5);
        assert_eq!(half.apply(5), 3); // 2.5 -> 3
                                      // The doubling high multiply nudges negative products by 1 - 2^30, so an exact
                                      // negative tie lands just short of it: (-5 * 2^30 + 1 - 2^30) / 2^31 = -2.99..
                                      // truncates to -2.
        assert_eq!(half.apply(-5), -2);
        assert_eq!(half.apply(4), 2);
        let tenth = QuantizedMultiplier::from_real(0.1);
        assert_eq!(tenth.apply(15), 2); // 1.5 -> 2
        assert_eq!(tenth.apply(14), 1); // 1.4 -> 1
                                        // -15 * 0.8 = -12 (high mul), then -12 / 2^3 = -1.5 rounds away from zero.
        assert_eq!(tenth.apply(-15), -2);
        assert_eq!(QuantizedMultiplier::from_real(3.0).apply(-7), -21);
    }

    #[test]
    fn wide_multiply_rounds_once_with_a_16_bit_multiplier() {
        // 0.5: multiplier 2^30 -> reduced 2^14, shift 0 -> total shift 15:
        // (x * 2^14 + 2^14) >> 15 = floor(x / 2 + 1 / 2): ties go up.
        let half = QuantizedMultiplier::from_real(0.5);
        assert_eq!(half.apply_wide(5), 3); // 2.5 -> 3
        assert_eq!(half.apply_wide(-5), -2); // -2.5 -> -2 (up, not away from zero)
        assert_eq!(half.apply_wide(-6), -3);
        // 0.1: multiplier 1717986918 -> (1717986918 + 32768) >> 16 = 26214, shift -3
        // -> total 18: (1000 * 26214 + 2^17) >> 18 = 26345072 >> 18 = 100.
        let tenth = QuantizedMultiplier::from_real(0.1);
        assert_eq!(tenth.apply_wide(1000), 100);
        // A 40-bit accumulator: 2^40 * 26214 / 2^18 = 26214 * 2^22 = 109949485056
        // (exact), which truncates to 32 bits as C does.
        assert_eq!(tenth.apply_wide(1 << 40), 109_949_485_056_i64 as i32);
        // The near-2^31 multipliers saturate the reduction at 0x7FFF.
        let near_one = QuantizedMultiplier {
            multiplier: 0x7FFF_8000,
            shift: 0,
        };
        assert_eq!(near_one.apply_wide(1 << 15), 0x7FFF);
    }

    #[test]
    fn single_rounding_away_from_zero() {
        // 0.25 = 2^30 * 2^(-1 - 31): exact quarters and halves.
        let quarter = QuantizedMultiplier::from_real(0.25);
        assert_eq!(quarter.apply_wide_away_from_zero(5), 1); // 1.25
        assert_eq!(quarter.apply_wide_away_from_zero(6), 2); // 1.5
        assert_eq!(quarter.apply_wide_away_from_zero(-6), -2); // -1.5
        assert_eq!(quarter.apply_wide_away_from_zero(-806), -202); // -201.5
        assert_eq!(quarter.apply_wide_away_from_zero(-805), -201); // -201.25
    }

    #[test]
    fn rounding_divide_by_power_of_two() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 -> 2
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(5, 2), 1); // 1.25 -> 1
    }
}
