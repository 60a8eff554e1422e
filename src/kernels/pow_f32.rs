//! POW's element-wise step on operands already broadcast to the output's shape.
//!
//! LiteRT computes float32 POW with C's `pow` on each pair; Rust's `f32::powf` is the same
//! libm function, so a negative base with an integral exponent keeps its sign
//! (`(-2) ** 3 == -8`) and one with a fractional exponent gives NaN. candle's `pow`
//! (`exp(y * ln x)`) gives NaN for every negative base, which is why POW has a kernel here.

use super::KernelError;

/// `base[i] ** exponent[i]` for every `i`; the slices have the output's length.
pub fn pow(base: &[f32], exponent: &[f32]) -> Vec<f32> {
    base.iter()
        .zip(exponent)
        .map(|(&x, &y)| x.powf(y))
        .collect()
}

/// int32 POW (values carried as i64): LiteRT multiplies in int32, so the result wraps on
/// overflow, and refuses a negative exponent (it has no integer reciprocal).
pub fn pow_i32(base: &[i64], exponent: &[i64]) -> Result<Vec<i64>, KernelError> {
    base.iter()
        .zip(exponent)
        .enumerate()
        .map(|(index, (&x, &y))| {
            let y = u32::try_from(y).map_err(|_| KernelError::Data {
                what: "POW exponent",
                index,
                problem: "is negative: int32 POW takes exponents of 0 or more",
            })?;
            // int32 values: the truncation is exact, and it wraps as LiteRT's int32 does.
            Ok(i64::from((x as i32).wrapping_pow(y)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values worked out by hand: signed cubes, a square root, 0 ** 0 == 1 (C's rule).
    #[test]
    fn negative_bases_keep_their_sign_under_integral_exponents() {
        let out = pow(
            &[-2.0, 3.0, -0.5, 4.0, 0.0, -8.0],
            &[3.0, 3.0, 3.0, 0.5, 0.0, 2.0],
        );
        assert_eq!(&out[..5], &[-8.0, 27.0, -0.125, 2.0, 1.0]);
        assert_eq!(out[5], 64.0);
        assert!(pow(&[-4.0], &[0.5])[0].is_nan());
    }

    #[test]
    fn int32_pow_wraps_and_refuses_negative_exponents() {
        assert_eq!(pow_i32(&[-3, 2, 7], &[3, 10, 0]).unwrap(), [-27, 1024, 1]);
        // 2 ** 31 wraps to i32::MIN in int32 arithmetic.
        assert_eq!(pow_i32(&[2], &[31]).unwrap(), [i64::from(i32::MIN)]);
        let err = pow_i32(&[2, 2], &[1, -1]).unwrap_err();
        assert!(err.to_string().contains("element 1"), "{err}");
    }
}
