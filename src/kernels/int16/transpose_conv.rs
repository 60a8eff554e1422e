//! 16x8 TRANSPOSE_CONV on NHWC data, bit-exact with LiteRT's builtin kernel, which runs
//! TFLite's reference `TransposeConv` for int16 input: every input pixel times every
//! tap scattered into an int64 scratch image (output pixel `(iy * stride_h + ky -
//! pad_top, ix * stride_w + kx - pad_left)`, dropped outside the output), plus the bias,
//! rescaled per channel like CONV_2D (TFLite's int64 `MultiplyByQuantizedMultiplier`:
//! 16-bit multiplier, ties up; `int16_transpose_conv_pow2_ties.npz` holds many exact
//! halves) and clamped to the fused activation's int16 range.
//!
//! Layouts and padding are the int8 kernel's ([`TransposeConvGeometry`]: filter
//! `[out_c, k_h, k_w, in_c]`, output size given by the op). The bias is int64 as the
//! converter writes it, or int32 where the options' `quantized_bias_type` says so, and
//! then LiteRT sums in int32 and rescales with TFLite's scalar 32-bit
//! `MultiplyByQuantizedMultiplier` (double rounding, ties away from zero):
//! `int16_transpose_conv_bias_int32.npz` misses 20 of 400 elements with the int64
//! arithmetic and 2 with ties up. That vector has 5 output channels; whether 8-channel
//! groups round ties up there as int8's vector loop does is not probed.

use super::conv::{check_bias, check_len, dot, Bias16, Requant16};
use super::QParams;
use crate::graph::FusedActivation;
use crate::kernels::KernelError;

pub use crate::kernels::int8::conv::transpose_conv::TransposeConvGeometry;

/// Prepared 16x8 TRANSPOSE_CONV, reusable across geometries with `out_channels` outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct TransposeConvInt16 {
    rq: Requant16,
}

impl TransposeConvInt16 {
    /// `filter_scales` has one entry per output channel (axis 0), or one for all. Errors
    /// on a non-positive or non-finite scale, a nonzero activation zero point, a scale
    /// count that fits neither layout, or a rescale factor of 128 or more.
    pub fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        out_channels: usize,
    ) -> Result<Self, KernelError> {
        Requant16::convolution(input, filter_scales, output, activation, out_channels)
            .map(|rq| TransposeConvInt16 { rq })
    }

    /// The int16 range the fused activation leaves.
    pub fn activation_range(&self) -> (i32, i32) {
        (self.rq.act_min, self.rq.act_max)
    }

    /// Runs the op: `input` NHWC, `filter` `[out_c, k_h, k_w, in_c]`, `out` NHWC with the
    /// geometry's output size. Errors (leaving `out` untouched) when the slices or the
    /// geometry do not fit together or the prepared channel count.
    pub fn run<'b>(
        &self,
        g: &TransposeConvGeometry,
        input: &[i16],
        filter: &[i8],
        bias: impl Into<Bias16<'b>>,
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        let bias = bias.into();
        let (pad, e) = g.extents()?;
        if g.out_c != self.rq.multipliers.len() {
            return Err(KernelError::shape(
                "geometry's output channel count",
                format!("{}, as prepared", self.rq.multipliers.len()),
                g.out_c,
            ));
        }
        check_len("input", input.len(), e.input)?;
        check_len("filter", filter.len(), e.filter)?;
        check_len("output", out.len(), e.output)?;
        check_bias(bias, g.out_c)?;
        match bias {
            Bias16::Int32(bias) => g.scatter(
                &pad,
                input,
                filter,
                Some(bias),
                out,
                // LiteRT's int32-bias path sums in int32 (wrapping).
                |px, w| dot(px, w) as i32,
                i32::wrapping_add,
                |acc, dst| {
                    for (c, (o, &a)) in dst.iter_mut().zip(acc).enumerate() {
                        *o = self.rq.output_narrow_away(a, c);
                    }
                },
            ),
            Bias16::Int64(_) | Bias16::None => g.scatter(
                &pad,
                input,
                filter,
                bias.widened().as_deref(),
                out,
                dot,
                i64::wrapping_add,
                |acc, dst| {
                    for (c, (o, &a)) in dst.iter_mut().zip(acc).enumerate() {
                        *o = self.rq.output(a, c);
                    }
                },
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Padding;

    /// A 1x2 row (3, -5), 1x3 filter (1, 2, 1), stride 2, VALID: the two pixels' taps
    /// overlap in the middle column: 3, 6, 3 - 5, -10, -5 = 3, 6, -2, -10, -5; plus bias
    /// 1: 4, 7, -1, -9, -4; factor 0.5 (ties up): 2, 3.5 -> 4, -0.5 -> 0, -4.5 -> -4, -2.
    #[test]
    fn overlapping_taps_by_hand() {
        let g = TransposeConvGeometry {
            batch: 1,
            in_h: 1,
            in_w: 2,
            in_c: 1,
            out_h: 1,
            out_w: 5,
            out_c: 1,
            k_h: 1,
            k_w: 3,
            stride_h: 2,
            stride_w: 2,
            padding: Padding::Valid,
        };
        let q = |s| QParams::new(s, 0);
        let op = TransposeConvInt16::new(q(1.0), &[0.5], q(1.0), FusedActivation::None, 1).unwrap();
        let mut out = [0i16; 5];
        op.run(&g, &[3, -5], &[1, 2, 1], Some(&[1i64][..]), &mut out)
            .unwrap();
        assert_eq!(out, [2, 4, 0, -4, -2]);
    }
}
