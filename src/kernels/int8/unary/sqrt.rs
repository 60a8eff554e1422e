//! int8 RSQRT and SQRT, bit-exact with LiteRT 2.3.0's builtin kernels on x86.
//!
//! * RSQRT (`elementwise.cc`): fixed point, not a table. `x - zp` goes through
//!   `GetInvSqrtQuantizedMultiplierExp` (Newton-Raphson in gemmlowp fixed point),
//!   the result is taken to a 2^20 scale and rescaled by
//!   `1 / (sqrtf(in_scale) * out_scale)`; `x == zp` gives 127. Inputs below the
//!   zero point are an error.
//! * SQRT (`elementwise.cc`): float per element, no table: dequantize, `sqrtf`,
//!   divide by the output scale, then *truncate* to int (no rounding) and add the
//!   zero point. Negative inputs are an error.

use super::{check_lengths, check_scale, QParams};
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::fixed_point_x86::{
    inv_sqrt_multiplier_exp, multiply_by_quantized_multiplier,
};
use crate::kernels::KernelError;

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
    pub fn new(input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        let product = input.scale.sqrt() * output.scale;
        if !(product > 0.0 && product.is_finite()) {
            return Err(KernelError::params(
                "RSQRT sqrt(input scale) x output scale",
                product,
                "a positive finite number (its inverse is the output multiplier)",
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
    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        check_lengths(input, out)?;
        if let Some(i) = input
            .iter()
            .position(|&x| i32::from(x) < self.input_zero_point)
        {
            return Err(KernelError::Data {
                what: "RSQRT input",
                index: i,
                problem: "is negative (below the zero point)",
            });
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
    pub fn new(input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        Ok(Sqrt { input, output })
    }

    /// Refuses negative (dequantized) inputs, as LiteRT does.
    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        check_lengths(input, out)?;
        for (i, (o, &x)) in out.iter_mut().zip(input).enumerate() {
            let dequantized =
                self.input.scale * i32::from(x).wrapping_sub(self.input.zero_point) as f32;
            if dequantized.is_nan() || dequantized < 0.0 {
                return Err(KernelError::Data {
                    what: "SQRT input",
                    index: i,
                    problem: "is negative",
                });
            }
            // Truncated, not rounded.
            let q = truncate_to_i32_x86(dequantized.sqrt() / self.output.scale)
                .wrapping_add(self.output.zero_point);
            *o = q.clamp(-128, 127) as i8;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
