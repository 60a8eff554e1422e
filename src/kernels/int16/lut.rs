//! 16x8 RSQRT and GELU: LiteRT fills a 513-entry int16 table from the float function in
//! `Prepare` (TFLite's `LUTPopulate<int16_t>`) and interpolates it per element
//! (`LUTLookup`), so both ops are one table kernel here, [`Lut16`].
//!
//! The table spans the whole int16 input range in 512 steps; each entry is the rounded
//! (half away from zero) function value at the step's start, less half the error that
//! linear interpolation would make at the step's midpoint, everything in f32. The output
//! is scaled by `65536 / (output_max - output_min)`, which for a symmetric int16 output is
//! `65536 / (65535 * scale)`, not `1 / scale`: a quirk these kernels keep. An element
//! `x` reads entry `256 + (x >> 7)` and interpolates with the low 7 bits.
//!
//! RSQRT's function maps inputs at or below 0 to `32767 * output_scale` (the largest
//! output); GELU's is int8's (`tanh` approximation or `erfc`, the platform's libm).

use super::{check_symmetric, QParams};
use crate::kernels::int8::unary::gelu::{gelu_erf, gelu_tanh};
use crate::kernels::KernelError;

const STEPS: usize = 512;

/// A prepared int16 lookup table: 512 steps plus the end point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lut16 {
    table: Box<[i16; STEPS + 1]>,
}

impl Lut16 {
    /// TFLite's `LUTPopulate<int16_t>` of `f` for symmetric int16 input and output.
    fn populate(input: QParams, output: QParams, f: impl Fn(f32) -> f32) -> Self {
        let (min, max) = (f32::from(i16::MIN), f32::from(i16::MAX));
        let input_min = input.scale * min;
        let input_max = input.scale * max;
        let output_min = output.scale * min;
        let output_max = output.scale * max;
        let step = (input_max - input_min) / STEPS as f32;
        let half_step = step / 2.0;
        let output_scaling_inv = 65536.0f32 / (output_max - output_min);
        let mut table = Box::new([0i16; STEPS + 1]);
        for (i, entry) in table.iter_mut().take(STEPS).enumerate() {
            let val = f(input_min + i as f32 * step);
            let val_midpoint = f(input_min + i as f32 * step + half_step);
            let val_next = f(input_min + (i + 1) as f32 * step);
            let sample = (val * output_scaling_inv).round();
            let midpoint_interpolated =
                ((val_next * output_scaling_inv + (val * output_scaling_inv).round()) / 2.0)
                    .round();
            let midpoint = (val_midpoint * output_scaling_inv).round();
            let bias = ((midpoint_interpolated - midpoint) / 2.0).round();
            *entry = (sample - bias).clamp(min, max) as i16;
        }
        table[STEPS] = (f(input_max) * output_scaling_inv).round().clamp(min, max) as i16;
        Lut16 { table }
    }

    /// 16x8 RSQRT. Errors on a non-positive scale or a nonzero zero point.
    pub fn rsqrt(input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_symmetric("input scale", "input zero point", input)?;
        check_symmetric("output scale", "output zero point", output)?;
        let largest = f32::from(i16::MAX) * output.scale;
        Ok(Self::populate(input, output, |v| {
            if v <= 0.0 {
                largest
            } else {
                1.0 / v.sqrt()
            }
        }))
    }

    /// 16x8 GELU (`approximate`: the tanh form). Errors as [`Lut16::rsqrt`].
    pub fn gelu(approximate: bool, input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_symmetric("input scale", "input zero point", input)?;
        check_symmetric("output scale", "output zero point", output)?;
        Ok(if approximate {
            Self::populate(input, output, gelu_tanh)
        } else {
            Self::populate(input, output, gelu_erf)
        })
    }

    /// TFLite's `LUTLookup` on every element.
    pub fn run(&self, input: &[i16], out: &mut [i16]) -> Result<(), KernelError> {
        if input.len() != out.len() {
            return Err(KernelError::size("output", input.len(), out.len()));
        }
        for (o, &x) in out.iter_mut().zip(input) {
            // 256 + (x >> 7) lies in 0..512 for every int16.
            let index = (256 + (i32::from(x) >> 7)) as usize;
            let offset = i32::from(x & 0x7f);
            let base = self.table[index];
            // TFLite keeps the slope in int16 (wrapping).
            let slope = self.table[index + 1].wrapping_sub(base);
            let delta = (i32::from(slope) * offset + 64) >> 7;
            *o = (i32::from(base) + delta) as i16;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant function gives a flat table: 1.0 at output scale 2^-8 is 256 steps,
    /// times the table's `65536 / 65535`: 256.004 -> 256 everywhere.
    #[test]
    fn a_constant_fills_the_table() {
        let q = QParams::new(1.0 / 256.0, 0);
        let lut = Lut16::populate(q, q, |_| 1.0);
        let mut out = [0i16; 4];
        lut.run(&[i16::MIN, -1, 0, i16::MAX], &mut out).unwrap();
        assert_eq!(out, [256; 4]);
    }

    /// RSQRT maps inputs at or below zero to the largest output: 32767 * 65536 / 65535
    /// = 32767.5 -> 32768, clamped to 32767; the negative half of the table is flat.
    #[test]
    fn rsqrt_of_negative_inputs_is_the_largest_output() {
        let q = QParams::new(0.01, 0);
        let lut = Lut16::rsqrt(q, q).unwrap();
        let mut out = [0i16; 3];
        lut.run(&[i16::MIN, -1000, -129], &mut out).unwrap();
        assert_eq!(out, [i16::MAX; 3]);
        assert!(Lut16::rsqrt(QParams::new(0.01, 1), q).is_err());
    }
}
