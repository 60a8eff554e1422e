//! int8 PRELU, bit-exact with LiteRT 2.3.0's builtin kernel on x86.
//!
//! PRELU (`activations.cc`): `reference_ops::Prelu` / `BroadcastPrelu4DSlow`, one
//! multiplier (`in / out`) for `x >= zp` and one (`in * alpha / out`) applied to
//! `(x - zp) * (alpha - alpha_zp)` otherwise; alpha broadcasts into the input.

use super::{check_scale, QParams};
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::binary::Broadcast;
use crate::kernels::int8::fixed_point_x86::multiply_by_quantized_multiplier;
use crate::kernels::KernelError;

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
    pub fn new(input: QParams, alpha: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("alpha scale", alpha)?;
        check_scale("output scale", output)?;
        let identity = input.scale / output.scale;
        let alpha_real = input.scale * alpha.scale / output.scale;
        if !identity.is_finite() {
            return Err(KernelError::params(
                "PRELU identity multiplier (input scale / output scale)",
                identity,
                "a finite number",
            ));
        }
        if !alpha_real.is_finite() {
            return Err(KernelError::params(
                "PRELU alpha multiplier (input scale x alpha scale / output scale)",
                alpha_real,
                "a finite number",
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
    ) -> Result<(), KernelError> {
        let plan = Broadcast::new(input, input_shape, alpha, alpha_shape, out)?;
        if plan.out_shape != input_shape {
            return Err(KernelError::shape(
                "alpha shape",
                format!("one that broadcasts into the input {input_shape:?}"),
                format!("{alpha_shape:?}"),
            ));
        }
        plan.for_each(|o, ix, ia| out[o] = self.one(input[ix], alpha[ia]));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
