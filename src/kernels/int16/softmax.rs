//! 16x8 SOFTMAX, bit-exact with LiteRT's builtin kernel (TFLite's reference
//! `SoftmaxInt16`), which works from two interpolated lookup tables built in `Prepare`.
//!
//! * The tables: 513 int16 entries sampling a function over 512 equal steps of its input
//!   range, in Q0.15 (outputs over [-1, 1] mapped to 65536 steps): `exp` over [-10, 0] and
//!   `1 / (1 + x)` over [0, 1]. Each entry is the function's rounded sample minus half the
//!   rounded error that linear interpolation would make at the step's midpoint (TFLite's
//!   `LUTPopulate`, in f64, rounding half away from zero); the last entry is the plain
//!   sample at the range's end.
//! * A lookup of an int16 value: entry `256 + (v >> 7)` plus the slope to the next entry
//!   times the low 7 bits, `(slope * offset + 64) >> 7`.
//! * Per row: each input's difference to the row maximum is rescaled by the multiplier of
//!   `input_scale * beta / (10 / 65535)` (TFLite's 32-bit `MultiplyByQuantizedMultiplier`),
//!   offset by 32767 and saturated to int16, then looked up in the `exp` table. The sum of
//!   the exps is normalised by its leading zeros, `((sum << (clz - 1)) + 2^13) >> 14`,
//!   moved down by 2^15 + 2^16 into the table's range and looked up in `1 / (1 + x)`. Each
//!   output is `(exp * reciprocal + 2^(30 - clz)) >> (31 - clz)`, clamped to [0, 32767].
//!
//! The output must be quantized with scale 2^-15 and zero point 0; the input's zero point
//! must be 0.

use super::{check_symmetric, checked_log2, QParams};
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::KernelError;

/// Table size: 512 steps plus the end point (for the last slope).
const LUT_LEN: usize = 513;

/// TFLite's `LUTPopulate` for int16 input and output (module docs).
fn populate(f: impl Fn(f64) -> f64, in_min: f64, in_max: f64) -> Vec<i16> {
    const STEPS: usize = 512;
    // Outputs over [-1, 1] in 65536 steps.
    let out_scaling_inv = 65536.0 / 2.0;
    let step = (in_max - in_min) / STEPS as f64;
    let half_step = step / 2.0;
    let to_i16 = |v: f64| v.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
    let mut table: Vec<i16> = (0..STEPS)
        .map(|i| {
            let x = in_min + i as f64 * step;
            let (val, mid, next) = (f(x), f(x + half_step), f(in_min + (i + 1) as f64 * step));
            let sample = (val * out_scaling_inv).round();
            let midpoint_interpolated = ((next * out_scaling_inv + sample) / 2.0).round();
            let midpoint = (mid * out_scaling_inv).round();
            let bias = ((midpoint_interpolated - midpoint) / 2.0).round();
            to_i16(sample - bias)
        })
        .collect();
    table.push(to_i16((f(in_max) * out_scaling_inv).round()));
    table
}

/// TFLite's `generic_int16_table_lookup`.
fn lookup(value: i16, table: &[i16]) -> i16 {
    let index = (256 + (i32::from(value) >> 7)) as usize;
    let offset = i32::from(value) & 0x7f;
    let base = i32::from(table[index]);
    let slope = i32::from(table[index + 1]) - base;
    (base + ((slope * offset + 64) >> 7)) as i16
}

/// Prepared 16x8 SOFTMAX over the last axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftmaxInt16 {
    multiplier: QuantizedMultiplier,
    exp_table: Vec<i16>,
    reciprocal_table: Vec<i16>,
}

impl SoftmaxInt16 {
    pub fn new(input: QParams, output: QParams, beta: f32) -> Result<Self, KernelError> {
        check_symmetric("input scale", "input zero point", input)?;
        check_symmetric("output scale", "output zero point", output)?;
        let (out_log2, out_pot) = checked_log2(output.scale);
        if !(out_pot && out_log2 == -15) {
            return Err(KernelError::params(
                "output scale",
                output.scale,
                "2^-15 (1/32768), as LiteRT's int16 SOFTMAX requires",
            ));
        }
        // The product in f32 as TFLite's float `scale * beta`, then f64.
        let real = f64::from(input.scale * beta) / (10.0 / 65535.0);
        let multiplier = QuantizedMultiplier::from_real(real);
        if !(real.is_finite() && real > 0.0) || multiplier.shift > 30 {
            return Err(KernelError::params(
                "SOFTMAX input multiplier (input scale x beta / (10 / 65535))",
                real,
                "positive and below 2^30",
            ));
        }
        let exp_table = populate(f64::exp, -10.0, 0.0);
        let reciprocal_table = populate(|x| 1.0 / (1.0 + x), 0.0, 1.0);
        debug_assert_eq!(exp_table.len(), LUT_LEN);
        Ok(SoftmaxInt16 {
            multiplier,
            exp_table,
            reciprocal_table,
        })
    }

    /// Softmax of each run of `depth` elements (the last axis).
    pub fn run(&self, input: &[i16], depth: usize, out: &mut [i16]) -> Result<(), KernelError> {
        if input.len() != out.len() {
            return Err(KernelError::size("output", input.len(), out.len()));
        }
        if depth == 0 || !input.len().is_multiple_of(depth) {
            return Err(KernelError::shape(
                "softmax depth",
                format!("a positive divisor of the element count {}", input.len()),
                depth,
            ));
        }
        let mut exps = vec![0i16; depth];
        for (row, dst) in input.chunks_exact(depth).zip(out.chunks_exact_mut(depth)) {
            let max = row.iter().copied().max().unwrap_or(0);
            let mut sum = 0i32;
            for (e, &x) in exps.iter_mut().zip(row) {
                let scaled = self.multiplier.apply(i32::from(x) - i32::from(max));
                let centred = scaled.saturating_add(32767).clamp(-32768, 32767) as i16;
                *e = lookup(centred, &self.exp_table);
                sum = sum.wrapping_add(i32::from(*e));
            }
            // The row maximum contributes exp(0), about 32767, so the sum is positive and
            // its leading zeros at most 17.
            let headroom_plus_one = (sum as u32).leading_zeros().clamp(1, 31);
            let shifted = (((i64::from(sum)) << (headroom_plus_one - 1)) + (1 << 13)) >> 14;
            let centred = (shifted - ((1 << 15) + (1 << 16))).clamp(-32768, 32767) as i16;
            let reciprocal = i64::from(lookup(centred, &self.reciprocal_table));
            let right_shift = 31 - headroom_plus_one;
            let round = 1i64 << (right_shift.max(1) - 1);
            for (o, &e) in dst.iter_mut().zip(&exps) {
                let v = (i64::from(e) * reciprocal + round) >> right_shift;
                *o = v.clamp(0, 32767) as i16;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ends_by_hand() {
        let exp = populate(f64::exp, -10.0, 0.0);
        let reciprocal = populate(|x| 1.0 / (1.0 + x), 0.0, 1.0);
        assert_eq!(exp.len(), LUT_LEN);
        // exp(0) = 1 -> 32768, saturated to 32767; 1 / (1 + 0) likewise; 1 / (1 + 1) = 0.5
        // -> 16384.
        assert_eq!(exp[512], 32767);
        assert_eq!(reciprocal[0], 32767);
        assert_eq!(reciprocal[512], 16384);
        // Entry 0 of exp: the sample exp(-10) * 32768 = 1.488 -> 1; the next sample
        // exp(-10 + 10/512) * 32768 = 1.517, so the interpolated midpoint is
        // round((1.517 + 1) / 2) = 1, while the true midpoint exp(-10 + 10/1024) * 32768 =
        // 1.502 rounds to 2; the bias round((1 - 2) / 2) = -1 (half away from zero) makes
        // the entry 1 - (-1) = 2.
        assert_eq!(exp[0], 2);
    }

    #[test]
    fn lookup_interpolates_by_hand() {
        let table: Vec<i16> = (0..LUT_LEN as i16).map(|i| i * 10).collect();
        // value 0 -> entry 256 (2560), offset 0; value 64 -> entry 256 plus (10 * 64 +
        // 64) >> 7 = 5; value -128 -> entry 255 = 2550.
        assert_eq!(lookup(0, &table), 2560);
        assert_eq!(lookup(64, &table), 2565);
        assert_eq!(lookup(-128, &table), 2550);
    }

    #[test]
    fn equal_inputs_share_the_probability() {
        // Four equal inputs: each about 1/4 = 8192 in Q0.15.
        let q = QParams::new(0.001, 0);
        let s = SoftmaxInt16::new(q, QParams::new(1.0 / 32768.0, 0), 1.0).unwrap();
        let mut out = [0i16; 4];
        s.run(&[500, 500, 500, 500], 4, &mut out).unwrap();
        assert!(out.iter().all(|&o| (8190..=8194).contains(&o)), "{out:?}");
        assert!(out.windows(2).all(|w| w[0] == w[1]));
    }
}
