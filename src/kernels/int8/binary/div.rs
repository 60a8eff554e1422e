//! int8 DIV, bit-exact with LiteRT 2.3.0's builtin kernel on x86.
//!
//! DIV (`div.cc`): the int8 path is `reference_ops::Div` / `BroadcastDivSlow`
//! (`optimized_ops` only re-exports them). Per element: the divisor (offset
//! applied) is made positive by flipping both signs, its reciprocal comes from
//! `GetReciprocal` (gemmlowp's Newton-Raphson `one_over_one_plus_x_for_x_in_0_1`),
//! the dividend is shifted left by its headroom and multiplied by it, and one
//! rounding multiply by `in1_scale / (in2_scale * out_scale)` (divided in float)
//! shifted by `output_shift - recip_shift - headroom` gives the result, clamped
//! to the fused activation's range. `Eval` first refuses any divisor equal to its
//! zero point.
//!
//! TFLite's `RoundingDivideByPOT` is only defined for exponents up to 31, but DIV
//! reaches larger ones (a dividend near the zero point has a headroom of 30 or 31
//! bits). What LiteRT's x86 build computes then is reproduced: the mask is formed
//! in 64 bits and truncated to 32 (all ones), and the arithmetic right shift only
//! uses the count's low five bits (`fixed_point_x86::rounding_divide_by_pot_x86`). The same
//! function serves every rounding shift here, so extreme scale ratios behave as
//! on x86 too. For DIV this is visible: a dividend at its zero point divided by
//! a large enough divisor gives `zp + 1`, and one a single step from it can
//! saturate (offset values -1 / 128 giving -128 where the zero point, -16, is
//! right); LiteRT 2.3.0 does exactly that (tests/fixtures/kernels/reference_math/div_same.npz).

use super::{check_scale, fused_activation_range, Broadcast, QParams};
use crate::graph::FusedActivation;
use crate::kernels::error::allowed;
use crate::kernels::fixed_point::{saturating_rounding_doubling_high_mul, QuantizedMultiplier};
use crate::kernels::int8::check_int8_zero_point;
use crate::kernels::int8::fixed_point_x86::{
    count_leading_sign_bits, reciprocal, rounding_divide_by_pot_x86,
};
use crate::kernels::KernelError;

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
    ) -> Result<Self, KernelError> {
        check_scale("first input scale", in1)?;
        check_scale("second input scale", in2)?;
        check_scale("output scale", out)?;
        // TFLite DCHECKs the offsets to int8 range; the shift bound below relies on it.
        check_int8_zero_point("first input zero point", in1)?;
        check_int8_zero_point("second input zero point", in2)?;
        check_int8_zero_point("output zero point", out)?;
        let real = in1.scale / (in2.scale * out.scale);
        if !real.is_finite() || real <= 0.0 {
            return Err(KernelError::params(
                "DIV output multiplier",
                real,
                allowed::POSITIVE,
            ));
        }
        let output = QuantizedMultiplier::from_real(f64::from(real));
        // The final shift is output_shift - recip_shift - headroom with headroom >= 23
        // for int8 operands; a larger output shift would make TFLite shift by a
        // negative amount (undefined behaviour).
        if output.shift > 23 {
            return Err(KernelError::params(
                "DIV output multiplier",
                real,
                "a value below 2^23 (a larger one shifts by a negative amount in TFLite)",
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
    ) -> Result<(), KernelError> {
        let plan = Broadcast::new(a, a_shape, b, b_shape, out)?;
        if let Some(i) = b
            .iter()
            .position(|&x| i32::from(x) + self.input2_offset == 0)
        {
            return Err(KernelError::Data {
                what: "DIV divisor",
                index: i,
                problem: "equals its zero point (division by zero)",
            });
        }
        plan.for_each(|o, ia, ib| out[o] = self.one(a[ia], b[ib]));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
