//! int8 SOFTMAX over the last axis, bit-exact with LiteRT on x86.
//!
//! LiteRT's optimized kernel for int8 in and out is `optimized_ops::Softmax` with a
//! 256-entry *float* table (the uint16 LUT variant, `SoftmaxInt8LUT`, is compiled
//! only for clang on aarch64, and the gemmlowp fixed-point code is the reference
//! kernel, which the builtin resolver does not use). The table holds
//! `expf(-input_scale * beta * d)` for every possible distance `d` from the row
//! maximum; a row's exponentials are summed in float in order, and each output is
//! `round(table[d] / (sum * output_scale)) + zero_point`, rounding half away from
//! zero. The float operations and `expf` (glibc's, which Rust's `f32::exp` calls on
//! Linux) are reproduced one for one.

use super::{check_lengths, QParams};
use crate::kernels::KernelError;

/// Prepared int8 softmax with LiteRT's float lookup table.
#[derive(Clone, Debug, PartialEq)]
pub struct Softmax {
    /// `table[255 - d] = expf(-input_scale * beta * d)`, as `PopulateSoftmaxLookupTable`.
    table: [f32; 256],
    out_scale: f32,
    out_zero_point: i32,
}

impl Softmax {
    /// `beta` is the op's builtin option. The output must be quantized with scale
    /// 1/256 and zero point -128, as TFLite's `SoftmaxPrepare` insists.
    pub fn new(beta: f32, input: QParams, output: QParams) -> Result<Self, KernelError> {
        if output.zero_point != -128 {
            return Err(KernelError::params(
                "output zero point",
                output.zero_point,
                "-128, as TFLite's int8 SOFTMAX requires",
            ));
        }
        // TF_LITE_ENSURE_NEAR(scale, 1/256, 0.001/256).
        if (output.scale - 1.0 / 256.0).abs() > 0.001 * (1.0 / 256.0) {
            return Err(KernelError::params(
                "output scale",
                output.scale,
                "1/256 (within 0.1%), as TFLite's int8 SOFTMAX requires",
            ));
        }
        if !input.scale.is_finite() {
            return Err(KernelError::params(
                "input scale",
                input.scale,
                "a finite number",
            ));
        }
        if !beta.is_finite() {
            return Err(KernelError::params("beta", beta, "a finite number"));
        }
        let scale = -input.scale * beta;
        let mut table = [0f32; 256];
        for d in 0..=255i32 {
            table[(255 - d) as usize] = (scale * d as f32).exp();
        }
        Ok(Softmax {
            table,
            out_scale: output.scale,
            out_zero_point: output.zero_point,
        })
    }

    /// Softmax of each row of `depth` elements (the last axis).
    pub fn run(&self, input: &[i8], depth: usize, out: &mut [i8]) -> Result<(), KernelError> {
        check_lengths(input, out)?;
        if depth == 0 {
            return if input.is_empty() {
                Ok(())
            } else {
                Err(KernelError::shape(
                    "last axis (softmax depth)",
                    "at least 1",
                    0,
                ))
            };
        }
        if !input.len().is_multiple_of(depth) {
            return Err(KernelError::shape(
                "input element count",
                format!("whole rows of {depth} (the last axis)"),
                input.len(),
            ));
        }
        for (row, dst) in input.chunks_exact(depth).zip(out.chunks_exact_mut(depth)) {
            let max = i32::from(row.iter().copied().max().unwrap_or(i8::MIN));
            // Index 255 - (max - x): within [0, 255] because x <= max and both are int8.
            let exp = |x: i8| self.table[(255 - max + i32::from(x)) as usize];
            let mut sum = 0f32;
            for &x in row {
                sum += exp(x);
            }
            let inv = 1.0 / (sum * self.out_scale);
            for (d, &x) in dst.iter_mut().zip(row) {
                let q = (exp(x) * inv).round() as i32 + self.out_zero_point;
                *d = q.clamp(-128, 127) as i8;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_q() -> QParams {
        QParams::new(1.0 / 256.0, -128)
    }

    #[test]
    fn uniform_and_dominant_rows() {
        let s = Softmax::new(1.0, QParams::new(0.1, 0), out_q()).unwrap();
        let mut out = [0i8; 4];
        // Four equal logits: 1/4 each = 64/256 -> 64 - 128.
        s.run(&[5, 5, 5, 5], 4, &mut out).unwrap();
        assert_eq!(out, [-64; 4]);
        // One logit 25.5 above the rest: e^-25.5 ~ 8e-12 of it, so 256/256 saturates.
        let mut out = [0i8; 2];
        s.run(&[127, -128], 2, &mut out).unwrap();
        assert_eq!(out, [127, -128]);
    }

    #[test]
    fn two_logits_by_hand() {
        // Distance 0.1 * 10 = 1: p = 1 / (1 + e^-1) = 0.7311 -> 187.16 -> 187;
        // the other 0.2689 -> 68.84 -> 69.
        let s = Softmax::new(1.0, QParams::new(0.1, 3), out_q()).unwrap();
        let mut out = [0i8; 2];
        s.run(&[10, 0], 2, &mut out).unwrap();
        assert_eq!(out, [59, -59]); // 187 - 128, 69 - 128
    }

    #[test]
    fn parameters_are_checked() {
        let q = QParams::new(0.1, 0);
        assert!(Softmax::new(1.0, q, QParams::new(1.0 / 256.0, 0)).is_err());
        assert!(Softmax::new(1.0, q, QParams::new(1.0 / 128.0, -128)).is_err());
        let s = Softmax::new(1.0, q, out_q()).unwrap();
        assert!(s.run(&[0; 5], 2, &mut [0; 5]).is_err());
        assert!(s.run(&[0; 4], 0, &mut [0; 4]).is_err());
    }
}
