//! 16x8 BATCH_MATMUL (both operands int16, zero point 0), bit-exact with LiteRT's
//! builtin kernel: the reference `BatchMatMul` with int64 sums of int16 products,
//! rescaled by the multiplier of `f32(lhs_scale * rhs_scale) / output_scale` (TFLite's
//! `GetQuantizedConvolutionMultipler`, as for int8) with TFLite's int64
//! `MultiplyByQuantizedMultiplier` (16-bit multiplier, ties up), saturated to int16.
//! Shapes, adjoint flags and batch broadcasting are the int8 kernel's, whose matrix walk
//! this shares.

use super::{check_symmetric, QParams};
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::conv::batch_matmul::{multiplier, Layout};
use crate::kernels::KernelError;

/// Prepared 16x8 BATCH_MATMUL.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMatMulInt16 {
    multiplier: QuantizedMultiplier,
    layout: Layout,
}

impl BatchMatMulInt16 {
    /// Errors on non-positive or non-finite scales, a nonzero zero point, or a rescale
    /// factor of 128 or more (past TFLite's int64 rescale).
    pub fn new(
        lhs: QParams,
        rhs: QParams,
        output: QParams,
        adj_x: bool,
        adj_y: bool,
    ) -> Result<Self, KernelError> {
        check_symmetric("lhs scale", "lhs zero point", lhs)?;
        check_symmetric("rhs scale", "rhs zero point", rhs)?;
        check_symmetric("output scale", "output zero point", output)?;
        Ok(BatchMatMulInt16 {
            // TFLite's int64 rescale takes shifts up to 7.
            multiplier: multiplier(lhs, rhs, output, 7)?,
            layout: Layout::new(adj_x, adj_y),
        })
    }

    /// The output shape for operands of these shapes (broadcast batch axes, then
    /// `[M, N]`); errors where TFLite's `Prepare` would.
    pub fn output_shape(
        &self,
        lhs_shape: &[usize],
        rhs_shape: &[usize],
    ) -> Result<Vec<usize>, KernelError> {
        self.layout.output_shape(lhs_shape, rhs_shape)
    }

    /// Runs the op on operands in their stored layouts; `out` holds
    /// [`Self::output_shape`] elements. Errors (leaving `out` untouched) when the shapes
    /// do not fit each other or the slices.
    pub fn run(
        &self,
        lhs_shape: &[usize],
        lhs: &[i16],
        rhs_shape: &[usize],
        rhs: &[i16],
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        self.layout
            .run(lhs_shape, lhs, rhs_shape, rhs, (0, 0), out, |acc| {
                self.multiplier.apply_wide(acc).clamp(-32768, 32767) as i16
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [[1, 2], [3, 4]] x [[5, 6], [7, 8]] = [[19, 22], [43, 50]], times 0.5 ties up:
    /// 9.5 -> 10, 11, 21.5 -> 22, 25; a nonzero zero point is refused.
    #[test]
    fn matrix_product_by_hand() {
        let q = |s| QParams::new(s, 0);
        let op = BatchMatMulInt16::new(q(0.5), q(1.0), q(1.0), false, false).unwrap();
        let mut out = [0i16; 4];
        op.run(&[2, 2], &[1, 2, 3, 4], &[2, 2], &[5, 6, 7, 8], &mut out)
            .unwrap();
        assert_eq!(out, [10, 11, 22, 25]);
        let err =
            BatchMatMulInt16::new(QParams::new(0.5, 1), q(1.0), q(1.0), false, false).unwrap_err();
        assert!(matches!(err, KernelError::Params { .. }), "{err:?}");
    }
}
