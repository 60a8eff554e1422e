//! int8 SQUARED_DIFFERENCE, bit-exact with LiteRT 2.3.0's builtin kernel on x86.
//!
//! SQUARED_DIFFERENCE (`squared_difference.cc`): reference arithmetic only. Both
//! inputs are shifted left by 7 and rescaled to twice the larger input scale,
//! the difference is squared and rescaled by `(2 max)^2 / (2^14 out_scale)`.
//! Broadcasting goes through a 4-D loop, so LiteRT aborts on a broadcast of more
//! than four dimensions; this refuses it.

use super::{check_scale, Broadcast, QParams};
use crate::kernels::error::allowed;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::check_int8_zero_point;
use crate::kernels::int8::fixed_point_x86::multiply_smaller_than_one;
use crate::kernels::KernelError;

/// squared_difference.cc's input shift.
const SQDIFF_LEFT_SHIFT: u32 = 7;

/// TFLite's `QuantizeMultiplierSmallerThanOneExp`, which aborts outside (0, 1).
fn multiplier_below_one(what: &'static str, real: f64) -> Result<QuantizedMultiplier, KernelError> {
    let m = QuantizedMultiplier::from_real(real);
    if !(real > 0.0 && real < 1.0) || m.shift > 0 {
        return Err(KernelError::params(what, real, allowed::BELOW_ONE));
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
    pub fn new(in1: QParams, in2: QParams, out: QParams) -> Result<Self, KernelError> {
        check_scale("first input scale", in1)?;
        check_scale("second input scale", in2)?;
        check_scale("output scale", out)?;
        // Prepare checks these (TF_LITE_ENSURE).
        check_int8_zero_point("first input zero point", in1)?;
        check_int8_zero_point("second input zero point", in2)?;
        check_int8_zero_point("output zero point", out)?;
        // `2 * std::max(float, float)` is a float, widened to double.
        let twice_max = f64::from(2.0 * in1.scale.max(in2.scale));
        // `(1 << 14) * output_scale` is a float too.
        let shifted_out = f64::from((1u32 << (2 * SQDIFF_LEFT_SHIFT)) as f32 * out.scale);
        Ok(SquaredDifference {
            input1_offset: -in1.zero_point,
            input2_offset: -in2.zero_point,
            output_offset: out.zero_point,
            input1: multiplier_below_one(
                "first input multiplier",
                f64::from(in1.scale) / twice_max,
            )?,
            input2: multiplier_below_one(
                "second input multiplier",
                f64::from(in2.scale) / twice_max,
            )?,
            output: multiplier_below_one("output multiplier", twice_max * twice_max / shifted_out)?,
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
    ) -> Result<(), KernelError> {
        let plan = Broadcast::new(a, a_shape, b, b_shape, out)?;
        if a_shape != b_shape && plan.out_shape.len() > 4 {
            return Err(KernelError::shape(
                "broadcast rank",
                "at most 4 (TFLite's SQUARED_DIFFERENCE broadcast)",
                format!("{} ({a_shape:?} and {b_shape:?})", plan.out_shape.len()),
            ));
        }
        plan.for_each(|o, ia, ib| out[o] = self.one(a[ia], b[ib]));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
