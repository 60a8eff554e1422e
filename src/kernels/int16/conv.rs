//! 16x8 CONV_2D and DEPTHWISE_CONV_2D on NHWC data, bit-exact with LiteRT's builtin
//! kernels, which run TFLite's reference `ConvPerChannel` / `DepthwiseConvPerChannel`
//! for int16 input with an int64 bias.
//!
//! Input and output are int16 with zero point 0; filters are symmetric int8 with one scale
//! per output channel (or one for all); the bias is int64 with scale
//! `input_scale * filter_scale[c]`. Each output is
//! `clamp(requantize(bias[c] + sum(x * w)))`, the sum in int64 with padded taps
//! contributing nothing, and `requantize` TFLite's int64 `MultiplyByQuantizedMultiplier`
//! ([`QuantizedMultiplier::apply_wide`]) with the multiplier of
//! `f64(input) * f64(filter[c]) / f64(output)`, as in `PopulateConvolutionQuantizationParams`.
//!
//! Ties: the 16-bit multiplier rounds half up (`tests/fixtures/kernels/int16_*pow2_ties.npz`
//! hold many exact halves). FULLY_CONNECTED rescales differently; see its module.
//!
//! # The bias type picks CONV_2D's kernel
//!
//! TensorFlow's converter writes int64 biases; LiteRT also takes int32 ones where the
//! op's options say `quantized_bias_type` INT32 ([`Bias16`]). CONV_2D then leaves the
//! reference kernel: with an int32 bias, or none at all, it runs the optimized
//! (im2col + GEMM) kernel, which sums in int32 (wrapping) and rescales with the full Q31
//! multiplier, the right shift rounding ties up, as the int8 convolutions do on x86
//! (`tests/fixtures/kernels/int16_conv_bias_int32.npz` misses 25 of 336 elements with
//! the reference arithmetic). A 16x8 CONV_2D without a bias input fails LiteRT's
//! `Prepare`, so [`ConvInt16::conv2d`] refuses [`Bias16::None`] (give it a zero bias, as
//! the converter does). DEPTHWISE_CONV_2D refuses an int32 bias in 16x8 and always runs
//! the reference kernel.

use super::{check_symmetric, fused_activation_range, QParams};
use crate::graph::FusedActivation;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::conv::{requantize, Rounding};
use crate::kernels::KernelError;

pub use crate::kernels::window::ConvGeometry;

/// What the 16x8 conv-like kernels derive from the quantization parameters: one
/// multiplier per output channel, how the int64 accumulator is rescaled, and the fused
/// activation's int16 range.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Requant16 {
    pub(crate) multipliers: Vec<QuantizedMultiplier>,
    pub(crate) rescale: WideRescale,
    pub(crate) act_min: i32,
    pub(crate) act_max: i32,
}

/// How LiteRT rescales a 16x8 op's int64 accumulator (measured on tie-rich vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WideRescale {
    /// TFLite's int64 `MultiplyByQuantizedMultiplier` (16-bit multiplier, ties up):
    /// CONV_2D and DEPTHWISE_CONV_2D.
    Reduced16,
    /// The full Q31 multiplier, one rounding half away from zero: FULLY_CONNECTED.
    FullAwayFromZero,
}

/// How the real per-channel factor is formed from f32 scales (as in int8).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScaleProduct {
    /// `f64(input) * f64(filter) / f64(output)` (convolutions, per-channel FC).
    Double,
    /// `f64(input * filter) / f64(output)`, the product in f32 (per-tensor FC,
    /// TFLite's `GetQuantizedConvolutionMultipler`).
    FloatProduct,
}

impl Requant16 {
    /// The convolutions' parameters (CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV): f64
    /// scale products, TFLite's int64 rescale.
    pub(crate) fn convolution(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        channels: usize,
    ) -> Result<Self, KernelError> {
        Self::new(
            input,
            filter_scales,
            output,
            activation,
            channels,
            ScaleProduct::Double,
            WideRescale::Reduced16,
        )
    }

    pub(crate) fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        channels: usize,
        product: ScaleProduct,
        rescale: WideRescale,
    ) -> Result<Self, KernelError> {
        if channels == 0 {
            return Err(KernelError::shape("output channel count", "at least 1", 0));
        }
        if filter_scales.len() != 1 && filter_scales.len() != channels {
            return Err(KernelError::shape(
                "filter scale count",
                format!("1 or {channels} (one per output channel)"),
                filter_scales.len(),
            ));
        }
        check_symmetric("input scale", "input zero point", input)?;
        check_symmetric("output scale", "output zero point", output)?;
        let multipliers = (0..channels)
            .map(|c| {
                let f = filter_scales[if filter_scales.len() == 1 { 0 } else { c }];
                let real = match product {
                    ScaleProduct::Double => {
                        f64::from(input.scale) * f64::from(f) / f64::from(output.scale)
                    }
                    ScaleProduct::FloatProduct => {
                        f64::from(input.scale * f) / f64::from(output.scale)
                    }
                };
                let m = QuantizedMultiplier::from_real(real);
                // TFLite's int64 rescale takes shifts up to 7 (factors below 128); the
                // 16-bit multiplier loses a factor of 0 entirely, which is fine.
                if !(real.is_finite() && real >= 0.0) || m.shift > 7 {
                    return Err(KernelError::Rescale {
                        channel: (filter_scales.len() > 1).then_some(c),
                        input_scale: input.scale,
                        filter_scale: f,
                        output_scale: output.scale,
                        factor: real,
                    });
                }
                Ok(m)
            })
            .collect::<Result<Vec<_>, KernelError>>()?;
        let (act_min, act_max) = fused_activation_range(activation, output);
        Ok(Requant16 {
            multipliers,
            rescale,
            act_min,
            act_max,
        })
    }

    /// The output of an int32 accumulator rescaled with the full Q31 multiplier, ties
    /// up (the optimized GEMM paths).
    pub(crate) fn output_narrow(&self, acc: i32, channel: usize) -> i16 {
        requantize(acc, self.multipliers[channel], Rounding::HalfUp)
            .clamp(self.act_min, self.act_max) as i16
    }

    /// The output of an int32 accumulator rescaled with TFLite's scalar (double
    /// rounding, ties away from zero) `MultiplyByQuantizedMultiplier`.
    pub(crate) fn output_narrow_away(&self, acc: i32, channel: usize) -> i16 {
        requantize(acc, self.multipliers[channel], Rounding::HalfAwayFromZero)
            .clamp(self.act_min, self.act_max) as i16
    }

    pub(crate) fn output(&self, acc: i64, channel: usize) -> i16 {
        let m = self.multipliers[channel];
        let scaled = match self.rescale {
            WideRescale::Reduced16 => m.apply_wide(acc),
            WideRescale::FullAwayFromZero => m.apply_wide_away_from_zero(acc),
        };
        scaled.clamp(self.act_min, self.act_max) as i16
    }
}

pub(crate) fn check_len(what: &'static str, got: usize, want: usize) -> Result<(), KernelError> {
    if got == want {
        Ok(())
    } else {
        Err(KernelError::size(what, want, got))
    }
}

/// A 16x8 conv-like op's bias, in the type the model stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias16<'a> {
    /// No bias input.
    None,
    /// An int32 bias (`quantized_bias_type` INT32 in the op's options).
    Int32(&'a [i32]),
    /// An int64 bias, what TensorFlow's converter writes.
    Int64(&'a [i64]),
}

impl Bias16<'_> {
    pub(crate) fn len(self) -> Option<usize> {
        match self {
            Bias16::None => None,
            Bias16::Int32(b) => Some(b.len()),
            Bias16::Int64(b) => Some(b.len()),
        }
    }

    /// The bias widened to int64 (where the bias type does not change the arithmetic).
    pub(crate) fn widened(self) -> Option<Vec<i64>> {
        match self {
            Bias16::None => None,
            Bias16::Int32(b) => Some(b.iter().map(|&b| i64::from(b)).collect()),
            Bias16::Int64(b) => Some(b.to_vec()),
        }
    }
}

impl<'a> From<Option<&'a [i64]>> for Bias16<'a> {
    fn from(b: Option<&'a [i64]>) -> Self {
        b.map_or(Bias16::None, Bias16::Int64)
    }
}

impl<'a> From<Option<&'a [i32]>> for Bias16<'a> {
    fn from(b: Option<&'a [i32]>) -> Self {
        b.map_or(Bias16::None, Bias16::Int32)
    }
}

pub(crate) fn check_bias(bias: Bias16, channels: usize) -> Result<(), KernelError> {
    match bias.len() {
        Some(len) => check_len("bias", len, channels),
        None => Ok(()),
    }
}

/// Prepared 16x8 CONV_2D / DEPTHWISE_CONV_2D, reusable across geometries with
/// `out_channels` outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvInt16 {
    rq: Requant16,
}

impl ConvInt16 {
    /// `filter_scales` has one entry per output channel, or one for all. Errors on a
    /// non-positive or non-finite scale, a nonzero activation zero point, a scale count
    /// that fits neither layout, or a rescale factor of 128 or more.
    pub fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        out_channels: usize,
    ) -> Result<Self, KernelError> {
        Requant16::convolution(input, filter_scales, output, activation, out_channels)
            .map(|rq| ConvInt16 { rq })
    }

    /// The per-channel fixed-point multipliers, as TFLite stores them.
    pub fn multipliers(&self) -> &[QuantizedMultiplier] {
        &self.rq.multipliers
    }

    /// The int16 range the fused activation leaves.
    pub fn activation_range(&self) -> (i32, i32) {
        (self.rq.act_min, self.rq.act_max)
    }

    fn check(
        &self,
        g: &ConvGeometry,
        depthwise: bool,
        input: &[i16],
        filter: &[i8],
        bias: Bias16,
        out: &[i16],
    ) -> Result<(), KernelError> {
        let e = g.extents(depthwise)?;
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
        check_bias(bias, g.out_c)
    }

    /// CONV_2D: `filter` is `[out_c, k_h, k_w, in_c]`. The bias type picks LiteRT's
    /// kernel (see the module docs).
    pub fn conv2d<'b>(
        &self,
        g: &ConvGeometry,
        input: &[i16],
        filter: &[i8],
        bias: impl Into<Bias16<'b>>,
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        let bias = bias.into();
        self.check(g, false, input, filter, bias, out)?;
        match bias {
            Bias16::Int64(bias) => g.for_each_output_pixel(
                Some(bias),
                out,
                |acc, b, oy, ox| {
                    g.conv2d_window((b, oy, ox), input, filter, acc, dot, i64::wrapping_add)
                },
                |acc, dst| self.emit(acc, dst),
            ),
            Bias16::None => {
                return Err(KernelError::Options {
                    what: "CONV_2D bias",
                    found: "none".into(),
                    allowed: "an int64 or int32 bias input: LiteRT's 16x8 CONV_2D refuses \
                              the op without one (a zero bias is fine)",
                })
            }
            Bias16::Int32(bias) => {
                g.for_each_output_pixel(
                    Some(bias),
                    out,
                    |acc, b, oy, ox| {
                        g.conv2d_window(
                            (b, oy, ox),
                            input,
                            filter,
                            acc,
                            // The GEMM's int32 sums wrap where int64 ones would not.
                            |x, w| dot(x, w) as i32,
                            i32::wrapping_add,
                        )
                    },
                    |acc, dst| {
                        for (c, (o, &a)) in dst.iter_mut().zip(acc).enumerate() {
                            *o = self.rq.output_narrow(a, c);
                        }
                    },
                )
            }
        }
        Ok(())
    }

    /// DEPTHWISE_CONV_2D: `filter` is `[1, k_h, k_w, out_c]`; output channel
    /// `c * depth_multiplier + j` reads input channel `c`. The bias is int64 (LiteRT
    /// refuses an int32 one here).
    pub fn depthwise(
        &self,
        g: &ConvGeometry,
        input: &[i16],
        filter: &[i8],
        bias: Option<&[i64]>,
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        self.check(g, true, input, filter, bias.into(), out)?;
        g.for_each_output_pixel(
            bias,
            out,
            |acc, b, oy, ox| {
                g.depthwise_window((b, oy, ox), input, filter, acc, |a, x, w| {
                    a.wrapping_add(i64::from(x) * i64::from(w))
                })
            },
            |acc, dst| self.emit(acc, dst),
        );
        Ok(())
    }

    fn emit(&self, acc: &[i64], dst: &mut [i16]) {
        for (c, (o, &a)) in dst.iter_mut().zip(acc).enumerate() {
            *o = self.rq.output(a, c);
        }
    }
}

/// `sum(x * w)` in int64, as TFLite's 16x8 kernels accumulate (each product fits 24
/// bits, so only depths past 2^39 could wrap). Compiled for AVX2 where the CPU has it: the
/// convolutions are most of a 16x8 model's time.
pub(crate) fn dot(x: &[i16], w: &[i8]) -> i64 {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::active() >= crate::kernels::simd::Level::Avx2 {
        // SAFETY: the active level guarantees AVX2.
        return unsafe { dot_avx2(x, w) };
    }
    dot_blocks(x, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(x: &[i16], w: &[i8]) -> i64 {
    dot_blocks(x, w)
}

/// Products summed in blocks this long in int32 first, which vectorises (int64 lanes do
/// not multiply): a product is at most 2^15 * 2^7 = 2^22 in magnitude, so 256 of them stay
/// within 2^30, and the int64 total is exact, the same as summing in int64 throughout.
const DOT_BLOCK: usize = 256;

#[inline(always)]
fn dot_blocks(x: &[i16], w: &[i8]) -> i64 {
    x.chunks(DOT_BLOCK)
        .zip(w.chunks(DOT_BLOCK))
        .fold(0i64, |total, (xs, ws)| {
            let block: i32 = xs
                .iter()
                .zip(ws)
                .map(|(&x, &w)| i32::from(x) * i32::from(w))
                .sum();
            total.wrapping_add(i64::from(block))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The int64 sum the kernels must give, one product at a time.
    fn dot_reference(x: &[i16], w: &[i8]) -> i64 {
        x.iter()
            .zip(w)
            .map(|(&x, &w)| i64::from(x) * i64::from(w))
            .sum()
    }

    #[test]
    fn blocked_dot_is_exact_at_the_extremes() {
        // Every product at its largest, +2^22: a block of 256 sums to 2^30, the whole to
        // 1000 * 2^22, past int32.
        let x = vec![i16::MIN; 1000];
        let w = vec![i8::MIN; 1000];
        assert_eq!(dot(&x, &w), 1000 * (1i64 << 22));
        assert_eq!(dot_blocks(&x, &w), 1000 * (1i64 << 22));
        let x = vec![i16::MAX; 777];
        assert_eq!(dot(&x, &w), -777 * 32767 * 128);
    }

    proptest::proptest! {
        #[test]
        fn blocked_dot_matches_the_int64_reference(
            pairs in proptest::collection::vec((proptest::num::i16::ANY, proptest::num::i8::ANY), 0..1200)
        ) {
            let (x, w): (Vec<i16>, Vec<i8>) = pairs.into_iter().unzip();
            proptest::prop_assert_eq!(dot(&x, &w), dot_reference(&x, &w));
            proptest::prop_assert_eq!(dot_blocks(&x, &w), dot_reference(&x, &w));
        }
    }

    fn q(scale: f32) -> QParams {
        QParams::new(scale, 0)
    }

    /// A 1x1 convolution over a 1x2 image, worked by hand.
    #[test]
    fn one_by_one_conv_by_hand() {
        // factor 0.5 * 0.25 / 0.5 = 0.25 -> multiplier 2^30, shift -1 -> reduced 2^14,
        // total shift 16: (acc * 2^14 + 2^15) >> 16 = round-half-up(acc / 4).
        let conv = ConvInt16::new(q(0.5), &[0.25], q(0.5), FusedActivation::None, 1).unwrap();
        let g = ConvGeometry {
            batch: 1,
            in_h: 1,
            in_w: 2,
            in_c: 2,
            out_h: 1,
            out_w: 2,
            out_c: 1,
            k_h: 1,
            k_w: 1,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
            depth_multiplier: 1,
        };
        let mut out = [0i16; 2];
        // pixel 0: 100 * 3 + (-20) * 2 + bias 6 = 266 -> 66.5 -> 67; pixel 1:
        // -6 * 3 + 1 * 2 + 6 = -10 -> -2.5 -> -2 (ties up, not away from zero).
        conv.conv2d(&g, &[100, -20, -6, 1], &[3, 2], Some(&[6i64][..]), &mut out)
            .unwrap();
        assert_eq!(out, [67, -2]);
    }

    #[test]
    fn a_nonzero_output_zero_point_is_refused() {
        let err = ConvInt16::new(
            q(0.5),
            &[0.25],
            QParams::new(0.5, 1),
            FusedActivation::None,
            1,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                KernelError::Params {
                    what: "output zero point",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_factor_of_128_is_refused() {
        let err = ConvInt16::new(q(1.0), &[128.0], q(1.0), FusedActivation::None, 1).unwrap_err();
        assert!(matches!(err, KernelError::Rescale { .. }), "{err:?}");
    }
}
