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
    fn rounding_divide_by_power_of_two() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 -> 2
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(5, 2), 1); // 1.25 -> 1
    }
}
