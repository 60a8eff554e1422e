//! QUANTIZE between integer types: int8 -> int16, int16 -> int8 and int16 -> int16, the
//! requantization at the edges of an int16 island.
//!
//! LiteRT's `quantize.cc` turns `input_scale / output_scale` (in f64) into a Q31
//! multiplier and shift, and each output is
//! `clamp(output_zp + MultiplyByQuantizedMultiplier(x - input_zp))` with TFLite's 32-bit
//! double rounding ([`QuantizedMultiplier::apply`]), clamped to the output type.

use crate::kernels::element::QuantizedElement;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::{check_scale, QParams};
use crate::kernels::KernelError;

/// Prepared integer-to-integer QUANTIZE.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Requantize {
    input: QParams,
    output: QParams,
    multiplier: QuantizedMultiplier,
}

impl Requantize {
    /// Errors on non-positive or non-finite scales, or a factor `input / output` of
    /// 2^30 or more (the 32-bit fixed-point multiply would shift the codes out).
    pub fn new(input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        let real = f64::from(input.scale) / f64::from(output.scale);
        let multiplier = QuantizedMultiplier::from_real(real);
        if !real.is_finite() || multiplier.shift > 30 {
            return Err(KernelError::params(
                "requantization factor (input scale / output scale)",
                real,
                "below 2^30",
            ));
        }
        Ok(Requantize {
            input,
            output,
            multiplier,
        })
    }

    /// The fixed-point factor, as TFLite stores it.
    pub fn multiplier(&self) -> QuantizedMultiplier {
        self.multiplier
    }

    /// Requantizes `input` (codes of `I`) into `out` (codes of `O`). The zero points must
    /// fit their types.
    pub fn run<I: QuantizedElement, O: QuantizedElement>(
        &self,
        input: &[I],
        out: &mut [O],
    ) -> Result<(), KernelError> {
        check_zero_point::<I>("input zero point", self.input)?;
        check_zero_point::<O>("output zero point", self.output)?;
        if input.len() != out.len() {
            return Err(KernelError::size("output", input.len(), out.len()));
        }
        for (o, &x) in out.iter_mut().zip(input) {
            // |x - zp| < 2^17 and the shift is at most 30, so the product wraps only for
            // factors no real model has; wrapping keeps it a number, as C's does.
            let scaled = self.multiplier.apply(x.to_i32() - self.input.zero_point);
            *o = O::saturate(scaled.saturating_add(self.output.zero_point));
        }
        Ok(())
    }
}

fn check_zero_point<T: QuantizedElement>(
    what: &'static str,
    q: QParams,
) -> Result<(), KernelError> {
    if (T::MIN..=T::MAX).contains(&q.zero_point) {
        Ok(())
    } else {
        Err(KernelError::Options {
            what,
            found: q.zero_point.to_string(),
            allowed: "a zero point within the tensor type's range",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_to_int16_by_hand() {
        // 0.05 / 0.0004 = 125: code 10 with zero point -7 is 17 steps of 0.05 = 0.85,
        // which is 2125 steps of 0.0004.
        let rq = Requantize::new(QParams::new(0.05, -7), QParams::new(0.0004, 0)).unwrap();
        let mut out = [0i16; 3];
        rq.run(&[10i8, -7, -128], &mut out).unwrap();
        assert_eq!(out, [2125, 0, -15125]);
    }

    #[test]
    fn int16_to_int8_rounds_and_saturates() {
        // factor 0.25, output zero point 5: 10 -> 2.5 -> 3 (away from zero) + 5 = 8;
        // -10 -> -2.5 -> -3 + 5 = 2; 32767 -> 8192 -> saturates at 127.
        let rq = Requantize::new(QParams::new(0.01, 0), QParams::new(0.04, 5)).unwrap();
        let mut out = [0i8; 3];
        rq.run(&[10i16, -10, 32767], &mut out).unwrap();
        assert_eq!(out, [8, 2, 127]);
    }

    #[test]
    fn mismatched_lengths_and_zero_points_are_refused() {
        let rq = Requantize::new(QParams::new(0.01, 0), QParams::new(0.04, 200)).unwrap();
        let err = rq.run(&[1i16], &mut [0i8]).unwrap_err();
        assert!(
            matches!(
                err,
                KernelError::Options {
                    what: "output zero point",
                    ..
                }
            ),
            "{err:?}"
        );
        let rq = Requantize::new(QParams::new(0.01, 0), QParams::new(0.04, 0)).unwrap();
        assert!(matches!(
            rq.run(&[1i16, 2], &mut [0i8]),
            Err(KernelError::Size { .. })
        ));
        assert!(Requantize::new(QParams::new(0.0, 0), QParams::new(0.04, 0)).is_err());
    }
}
