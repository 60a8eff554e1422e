//! 16x8 FULLY_CONNECTED, bit-exact with LiteRT's builtin kernel: int64 sums of int16
//! inputs times int8 weights plus the int64 bias, rescaled by the multiplier of the
//! per-tensor (f32 product) or per-channel (f64) factor, clamped to the activation.
//!
//! Unlike the convolutions, LiteRT 2.3.0 does not rescale with TFLite's int64
//! `MultiplyByQuantizedMultiplier` (16-bit multiplier, ties up) here: on exact ties
//! (`int16_fc_pow2_ties*.npz`) its outputs are the exact product with the full Q31
//! multiplier rounded once, half away from zero
//! ([`QuantizedMultiplier::apply_wide_away_from_zero`]); the reduced multiplier also
//! misses non-tie outputs by one on the random-scale vectors. (Rounding
//! `acc * real` in f64 half away from zero matches every vector too; the two differ only
//! within 2^-31 of a half.)
//!
//! An int32 bias (`quantized_bias_type` INT32) gives the same integers as the int64 one
//! (`int16_fc_bias_int32.npz`): LiteRT runs the same reference sums for both.

use super::conv::{check_bias, check_len, dot, Bias16, Requant16, ScaleProduct, WideRescale};
use super::QParams;
use crate::graph::FusedActivation;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::KernelError;

/// Prepared 16x8 FULLY_CONNECTED: `[rows, depth] x [units, depth]^T -> [rows, units]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FullyConnectedInt16 {
    rq: Requant16,
}

impl FullyConnectedInt16 {
    /// `filter_scales` has one entry per unit, or one for all; one scale takes TFLite's
    /// per-tensor multiplier (the `input * filter` product in f32), several the per-channel
    /// one (all f64). Only NONE / RELU / RELU_N1_TO_1 / RELU6 may be fused.
    pub fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        units: usize,
    ) -> Result<Self, KernelError> {
        if matches!(activation, FusedActivation::Tanh | FusedActivation::SignBit) {
            return Err(KernelError::Options {
                what: "fused activation",
                found: format!("{activation:?}"),
                allowed: "FULLY_CONNECTED fuses only NONE, RELU, RELU_N1_TO_1 and RELU6",
            });
        }
        let product = if filter_scales.len() == 1 {
            ScaleProduct::FloatProduct
        } else {
            ScaleProduct::Double
        };
        Requant16::new(
            input,
            filter_scales,
            output,
            activation,
            units,
            product,
            WideRescale::FullAwayFromZero,
        )
        .map(|rq| FullyConnectedInt16 { rq })
    }

    pub fn multipliers(&self) -> &[QuantizedMultiplier] {
        &self.rq.multipliers
    }

    pub fn activation_range(&self) -> (i32, i32) {
        (self.rq.act_min, self.rq.act_max)
    }

    /// `input` is `[rows, depth]`, `filter` `[units, depth]`, `out` `[rows, units]`;
    /// the bias int64 or int32 (`Option<&[i64]>` / `Option<&[i32]>` convert).
    pub fn run<'b>(
        &self,
        rows: usize,
        depth: usize,
        input: &[i16],
        filter: &[i8],
        bias: impl Into<Bias16<'b>>,
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        let bias = bias.into();
        let units = self.rq.multipliers.len();
        let size = |a: usize, b: usize| {
            a.checked_mul(b)
                .ok_or_else(|| KernelError::overflow("rows x depth x units", [rows, depth, units]))
        };
        check_len("input", input.len(), size(rows, depth)?)?;
        check_len("filter", filter.len(), size(units, depth)?)?;
        check_len("output", out.len(), size(rows, units)?)?;
        check_bias(bias, units)?;
        let bias = bias.widened();
        for r in 0..rows {
            let x = &input[r * depth..][..depth];
            for (u, o) in out[r * units..][..units].iter_mut().enumerate() {
                let acc = dot(x, &filter[u * depth..][..depth])
                    .wrapping_add(bias.as_ref().map_or(0, |b| b[u]));
                *o = self.rq.output(acc, u);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rows_by_hand() {
        // Per-tensor: f32(0.5 * 0.5) / 1.0 = 0.25: acc / 4 rounded half away from zero.
        let q = |s| QParams::new(s, 0);
        let fc =
            FullyConnectedInt16::new(q(0.5), &[0.5], q(1.0), FusedActivation::Relu, 2).unwrap();
        let mut out = [0i16; 4];
        // row 0: [10, 2] . [1, 1] = 12 -> 3; [10, 2] . [-1, 2] = -6 -> -1.5 -> -2 -> relu 0
        // row 1: [-2, 4] . [1, 1] = 2 -> 0.5 -> 1; [-2, 4] . [-1, 2] = 10 -> 2.5 -> 3
        fc.run(
            2,
            2,
            &[10, 2, -2, 4],
            &[1, 1, -1, 2],
            Bias16::None,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [3, 0, 1, 3]);
        // Without the activation the negative tie shows: -1.5 -> -2 (away from zero).
        let fc =
            FullyConnectedInt16::new(q(0.5), &[0.5], q(1.0), FusedActivation::None, 1).unwrap();
        let mut out = [0i16; 1];
        fc.run(1, 2, &[10, 2], &[-1, 2], Bias16::None, &mut out)
            .unwrap();
        assert_eq!(out, [-2]);
    }
}
