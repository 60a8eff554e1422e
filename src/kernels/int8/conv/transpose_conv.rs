//! int8 TRANSPOSE_CONV on NHWC data, bit-exact with LiteRT's optimized builtin kernel
//! on x86 (ai-edge-litert 2.3.0, no XNNPACK).
//!
//! TFLite's layouts: input `[batch, in_h, in_w, in_c]`, filter `[out_c, k_h, k_w, in_c]`
//! (symmetric int8, one scale per output channel on axis 0, or one for all), optional
//! int32 bias `[out_c]` (TFLite's input 3), output `[batch, out_h, out_w, out_c]` with the
//! output size given by the op (its constant input 0), not derived.
//!
//! # What LiteRT runs
//!
//! `transpose_conv.cc` registers the `kGenericOptimized` kernel, which for int8 calls
//! `optimized_integer_ops::TransposeConvV2`:
//!
//! 1. per batch, a GEMM (`cpu_backend_gemm`, int32 destination, no output stage) of the
//!    HWOI-transposed filter with the input columns, the input zero point handled as a
//!    GEMM zero point: every input pixel times every tap, exactly, in int32;
//! 2. `Col2im` scatters those products into an int32 scratch image: input pixel `(iy, ix)`
//!    and tap `(ky, kx)` land on output pixel `(iy * stride_h + ky - pad_top,
//!    ix * stride_w + kx - pad_left)`, dropped when that lies outside the output;
//! 3. `BiasAdd` adds the bias per channel;
//! 4. `optimized_ops::Quantize` (the double-rounding build) requantizes each channel with
//!    its own multiplier, adds the output zero point and clamps to the fused
//!    activation's range. Its NEON loop, compiled for SSE through NEON_2_SSE, takes whole
//!    groups of 8 channels (`vqrdmulhq_s32` then `vrshlq_s32`: the right shift rounds
//!    ties *up*); the last `out_c % 8` channels go through the scalar
//!    `MultiplyByQuantizedMultiplier`, whose right shift rounds ties *away from zero*.
//!    This is the same split as DEPTHWISE_CONV_2D's (see [`super`]).
//!
//! The integer sums are exact, so only step 4 can round; the per-channel rule above
//! matches LiteRT on every element of `tests/fixtures/kernels/transpose_conv_matmul_resize/tconv_*.npz`, including
//! a probe with exact ties on 8 vector and 4 scalar channels, where "ties up everywhere"
//! and "ties away everywhere" each miss dozens of elements.
//!
//! The multipliers come from TFLite's `PopulateConvolutionQuantizationParams`:
//! `f64(input_scale) * f64(filter_scale[c]) / f64(output_scale)`, one scale broadcast to
//! every channel when the filter is per-tensor.
//!
//! # Padding
//!
//! TFLite pads a transpose convolution as the forward convolution it inverts: it runs
//! `ComputePaddingHeightWidth` on the *output* size (dilation 1). SAME:
//! `total = (ceil(out / stride) - 1) * stride + k - out` (at least 0), `pad_top =
//! total / 2` and the odd row goes to the bottom; VALID: no padding. `Col2im` then walks
//! `(out + pad_top + pad_bottom - k) / stride + 1` input rows (columns likewise); LiteRT
//! never checks that against the real input size, so a mismatched model reads out of
//! bounds there. Here that is an error.

use super::{check_len, Requant, Rounding, ScaleProduct};
use crate::graph::{FusedActivation, Padding};
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::{Arithmetic, QParams};
use crate::kernels::window::Extents;
use crate::kernels::KernelError;

/// Shapes and stepping of one TRANSPOSE_CONV (all NHWC; `out_*` is the op's given
/// output shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransposeConvGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub padding: Padding,
}

/// The padding TFLite derives for a transpose convolution, in output pixels: the
/// forward convolution's padding of the output image. `bottom - top` and
/// `right - left` are 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransposeConvPadding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

/// One spatial axis: `(pad_before, pad_after)` as TFLite's `ComputePaddingWithOffset`
/// gives them for an input (here: the output image) of `size`, and the number of
/// input rows `Col2im` then expects. Signed like TFLite's ints; `None` on overflow.
fn axis(padding: Padding, size: usize, k: usize, stride: usize) -> Option<(i64, i64, i64)> {
    let (size, k, stride) = (
        i64::try_from(size).ok()?,
        i64::try_from(k).ok()?,
        i64::try_from(stride).ok()?,
    );
    // C's truncating division, as in TFLite (Rust's `/` on i64 truncates too).
    let conv_out = match padding {
        Padding::Same => size.checked_add(stride - 1)? / stride,
        Padding::Valid => size.checked_add(stride)?.checked_sub(k)? / stride,
    };
    let total = (conv_out - 1)
        .checked_mul(stride)?
        .checked_add(k)?
        .checked_sub(size)?
        .max(0);
    let (before, after) = (total / 2, total / 2 + total % 2);
    let columns = (size + before + after - k) / stride + 1;
    Some((before, after, columns))
}

impl TransposeConvGeometry {
    /// TFLite's padding for this geometry (`ComputePaddingHeightWidth` on the output
    /// size). Errors on a zero stride or filter size, or sizes that overflow.
    pub fn padding_values(&self) -> Result<TransposeConvPadding, KernelError> {
        self.spatial().map(|(p, _)| p)
    }

    /// Padding plus the input rows / columns `Col2im` walks.
    fn spatial(&self) -> Result<(TransposeConvPadding, (i64, i64)), KernelError> {
        let g = self;
        if g.stride_h == 0 || g.stride_w == 0 {
            return Err(KernelError::shape(
                "strides (h, w)",
                "each at least 1",
                format!("({}, {})", g.stride_h, g.stride_w),
            ));
        }
        if g.k_h == 0 || g.k_w == 0 {
            return Err(KernelError::shape(
                "filter window",
                "at least 1x1",
                format!("{}x{}", g.k_h, g.k_w),
            ));
        }
        let too_big = || KernelError::overflow("transpose convolution geometry", g);
        let (top, bottom, rows) =
            axis(g.padding, g.out_h, g.k_h, g.stride_h).ok_or_else(too_big)?;
        let (left, right, cols) =
            axis(g.padding, g.out_w, g.k_w, g.stride_w).ok_or_else(too_big)?;
        // All four pads are in [0, k] by construction.
        let pad = TransposeConvPadding {
            top: top as usize,
            bottom: bottom as usize,
            left: left as usize,
            right: right as usize,
        };
        Ok((pad, (rows, cols)))
    }

    /// Checks that the geometry is usable and consistent, and returns the padding and
    /// the slice lengths it implies.
    pub(crate) fn extents(&self) -> Result<(TransposeConvPadding, Extents), KernelError> {
        let g = self;
        let (pad, (rows, cols)) = self.spatial()?;
        if i64::try_from(g.in_h) != Ok(rows) || i64::try_from(g.in_w) != Ok(cols) {
            return Err(KernelError::shape(
                "input height x width",
                format!(
                    "{rows}x{cols}, what a {}x{} output with a {}x{} filter, stride ({}, {}) \
                     and {:?} padding comes from",
                    g.out_h, g.out_w, g.k_h, g.k_w, g.stride_h, g.stride_w, g.padding
                ),
                format!("{}x{}", g.in_h, g.in_w),
            ));
        }
        let too_big = || KernelError::overflow("transpose convolution geometry", g);
        let product = |dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(too_big)
        };
        // The furthest output row a tap reaches before the padding is taken off, as
        // the kernel indexes it: must fit isize.
        for (size, stride, k) in [(g.in_h, g.stride_h, g.k_h), (g.in_w, g.stride_w, g.k_w)] {
            let reach = size
                .saturating_sub(1)
                .checked_mul(stride)
                .and_then(|r| r.checked_add(k));
            if reach.is_none_or(|r| r > isize::MAX as usize) {
                return Err(too_big());
            }
        }
        Ok((
            pad,
            Extents {
                input: product(&[g.batch, g.in_h, g.in_w, g.in_c])?,
                filter: product(&[g.out_c, g.k_h, g.k_w, g.in_c])?,
                output: product(&[g.batch, g.out_h, g.out_w, g.out_c])?,
            },
        ))
    }
}

impl TransposeConvGeometry {
    /// The integer TRANSPOSE_CONV's scatter, whatever the element and accumulator types
    /// (int8 with int32 sums, int16 with int64): per batch, `acc` (the whole output
    /// image) starts at the bias, every input pixel adds `dot(pixel, taps)` of each tap
    /// and output channel at the output pixel the tap lands on, and `emit(acc, dst)`
    /// requantizes one output pixel. The caller has checked the slices against
    /// [`Self::extents`], which also gave `pad`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn scatter<X, A: Copy + Default, O>(
        &self,
        pad: &TransposeConvPadding,
        input: &[X],
        filter: &[i8],
        bias: Option<&[A]>,
        out: &mut [O],
        dot: impl Fn(&[X], &[i8]) -> A,
        add: impl Fn(A, A) -> A,
        mut emit: impl FnMut(&[A], &mut [O]),
    ) {
        let g = self;
        let oc = g.out_c;
        let image = g.out_h * g.out_w * oc;
        let tap_stride = g.k_h * g.k_w * g.in_c;
        let mut acc = vec![A::default(); image];
        for (b, dst) in out.chunks_exact_mut(image.max(1)).enumerate() {
            match bias {
                Some(bias) => acc
                    .chunks_exact_mut(oc)
                    .for_each(|a| a.copy_from_slice(bias)),
                None => acc.fill(A::default()),
            }
            for iy in 0..g.in_h {
                for ix in 0..g.in_w {
                    let px = &input[((b * g.in_h + iy) * g.in_w + ix) * g.in_c..][..g.in_c];
                    for ky in 0..g.k_h {
                        // `extents` bounded these by isize::MAX.
                        let oy = (iy * g.stride_h + ky) as isize - pad.top as isize;
                        if oy < 0 || oy as usize >= g.out_h {
                            continue;
                        }
                        for kx in 0..g.k_w {
                            let ox = (ix * g.stride_w + kx) as isize - pad.left as isize;
                            if ox < 0 || ox as usize >= g.out_w {
                                continue;
                            }
                            let at = (oy as usize * g.out_w + ox as usize) * oc;
                            let tap = (ky * g.k_w + kx) * g.in_c;
                            for (o, a) in acc[at..at + oc].iter_mut().enumerate() {
                                let w = &filter[o * tap_stride + tap..][..g.in_c];
                                *a = add(*a, dot(px, w));
                            }
                        }
                    }
                }
            }
            for (px_out, px_acc) in dst.chunks_exact_mut(oc).zip(acc.chunks_exact(oc)) {
                emit(px_acc, px_out);
            }
        }
    }
}

/// Prepared int8 TRANSPOSE_CONV: the parameters TFLite's `Prepare` computes, reusable
/// across calls with any geometry that has `out_channels` outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct TransposeConvInt8 {
    rq: Requant,
}

impl TransposeConvInt8 {
    /// `filter_scales` has one entry per output channel (axis 0 of the OHWI filter), or
    /// one for all. Multipliers as TFLite's `PopulateConvolutionQuantizationParams`
    /// computes them (all in f64), shared with CONV_2D; the activation range as
    /// `CalculateActivationRangeQuantized` (TANH / SIGN_BIT clamp nothing). Errors on
    /// non-positive or non-finite scales, zero points outside int8, a scale count that
    /// is neither 1 nor `out_channels`, or a rescale factor of 2^30 or more.
    pub fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        out_channels: usize,
    ) -> Result<Self, KernelError> {
        Requant::new(
            input,
            filter_scales,
            output,
            activation,
            out_channels,
            ScaleProduct::Double,
        )
        .map(|rq| TransposeConvInt8 { rq })
    }

    /// Requantize like `arithmetic` (LiteRT's builtin kernels unless told otherwise).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.rq.set_arithmetic(arithmetic);
        self
    }

    /// The per-channel fixed-point multipliers, as TFLite stores them.
    pub fn multipliers(&self) -> &[QuantizedMultiplier] {
        &self.rq.multipliers
    }

    /// The int8 range the fused activation leaves.
    pub fn activation_range(&self) -> (i32, i32) {
        (self.rq.act_min, self.rq.act_max)
    }

    /// Runs the op: `input` NHWC, `filter` `[out_c, k_h, k_w, in_c]`, `bias` `[out_c]`,
    /// `out` NHWC with the geometry's output size. Errors (and leaves `out` untouched)
    /// when the slices or the geometry do not fit together or the prepared channel count.
    pub fn run(
        &self,
        g: &TransposeConvGeometry,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        out: &mut [i8],
    ) -> Result<(), KernelError> {
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
        if let Some(b) = bias {
            check_len("bias", b.len(), g.out_c)?;
        }
        let off = self.rq.input_offset;
        // LiteRT's requantization loop: whole groups of 8 channels in vector code.
        let vector_channels = g.out_c - g.out_c % 8;
        g.scatter(
            &pad,
            input,
            filter,
            bias,
            out,
            // |x - zp| <= 255, so each product fits; the sum wraps like TFLite's int32
            // accumulators.
            |px, w| {
                px.iter().zip(w).fold(0i32, |s, (&x, &w)| {
                    s.wrapping_add((i32::from(x) + off) * i32::from(w))
                })
            },
            i32::wrapping_add,
            |acc, dst| {
                for (c, (o, &a)) in dst.iter_mut().zip(acc).enumerate() {
                    let rounding = if c < vector_channels {
                        Rounding::HalfUp
                    } else {
                        Rounding::HalfAwayFromZero
                    };
                    *o = self.rq.output(a, c, rounding);
                }
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(
        in_hw: (usize, usize),
        out_hw: (usize, usize),
        k: (usize, usize),
        stride: usize,
        padding: Padding,
    ) -> TransposeConvGeometry {
        TransposeConvGeometry {
            batch: 1,
            in_h: in_hw.0,
            in_w: in_hw.1,
            in_c: 1,
            out_h: out_hw.0,
            out_w: out_hw.1,
            out_c: 1,
            k_h: k.0,
            k_w: k.1,
            stride_h: stride,
            stride_w: stride,
            padding,
        }
    }

    fn unit(out_channels: usize) -> TransposeConvInt8 {
        TransposeConvInt8::new(
            QParams::new(1.0, 0),
            &[1.0],
            QParams::new(1.0, 0),
            FusedActivation::None,
            out_channels,
        )
        .unwrap()
    }

    #[test]
    fn padding_follows_tflite() {
        // SAME, out 10, k 3, stride 2: the conv would give 5 outputs, total pad
        // 4 * 2 + 3 - 10 = 1: 0 before, 1 after.
        let g = geometry((5, 5), (10, 10), (3, 3), 2, Padding::Same);
        let p = g.padding_values().unwrap();
        assert_eq!((p.top, p.bottom, p.left, p.right), (0, 1, 0, 1));
        // SAME, out 9, k 4, stride 2: 5 outputs, total 8 + 4 - 9 = 3: 1 before, 2 after.
        let g = geometry((5, 5), (9, 9), (4, 4), 2, Padding::Same);
        let p = g.padding_values().unwrap();
        assert_eq!((p.top, p.bottom), (1, 2));
        // VALID never pads.
        let g = geometry((4, 4), (9, 9), (3, 3), 2, Padding::Valid);
        let p = g.padding_values().unwrap();
        assert_eq!((p.top, p.bottom, p.left, p.right), (0, 0, 0, 0));
    }

    /// One input pixel of value 2 (zero point 0) through a 3x3 filter 1..9, stride 2,
    /// VALID: the output is the filter times 2.
    #[test]
    fn single_pixel_paints_the_filter() {
        let g = geometry((1, 1), (3, 3), (3, 3), 2, Padding::Valid);
        let op = unit(1);
        let filter: Vec<i8> = (1..=9).collect();
        let mut out = [0i8; 9];
        op.run(&g, &[2], &filter, None, &mut out).unwrap();
        assert_eq!(out, [2, 4, 6, 8, 10, 12, 14, 16, 18]);
    }

    /// A 1x2 row of ones, 1x3 filter of ones, stride 2, VALID: the taps of the two
    /// pixels overlap in the middle column. Output 1x5: 1 1 2 1 1, plus bias 10.
    #[test]
    fn overlapping_taps_add_up() {
        let g = geometry((1, 2), (1, 5), (1, 3), 2, Padding::Valid);
        let op = unit(1);
        let mut out = [0i8; 5];
        op.run(&g, &[1, 1], &[1, 1, 1], Some(&[10]), &mut out)
            .unwrap();
        assert_eq!(out, [11, 11, 12, 11, 11]);
        // SAME on a 1x4 output: total pad (2 - 1) * 2 + 3 - 4 = 1, 0 before: the same
        // picture cut to 4 columns.
        let g = geometry((1, 2), (1, 4), (1, 3), 2, Padding::Same);
        let mut out = [0i8; 4];
        op.run(&g, &[1, 1], &[1, 1, 1], Some(&[10]), &mut out)
            .unwrap();
        assert_eq!(out, [11, 11, 12, 11]);
    }

    /// Input zero point, per-channel scales, ReLU, and the 8-channel vector / scalar
    /// split of the requantization: channel 8 is the scalar tail.
    #[test]
    fn requantization_by_hand() {
        // input 1 zp 3; filter 0.125 for all nine channels; output 1 zp 0: factor 0.125.
        let op = TransposeConvInt8::new(
            QParams::new(1.0, 3),
            &[0.125],
            QParams::new(1.0, 0),
            FusedActivation::None,
            9,
        )
        .unwrap();
        let mut g = geometry((1, 1), (1, 1), (1, 1), 1, Padding::Valid);
        g.out_c = 9;
        // x - zp = -1 - 3 = -4; weights 5: acc -20 -> -2.5, a tie: up on the 8
        // vector channels, away from zero on the ninth.
        let mut out = [0i8; 9];
        op.run(&g, &[-1], &[5; 9], None, &mut out).unwrap();
        assert_eq!(out, [-2, -2, -2, -2, -2, -2, -2, -2, -3]);
        // Positive ties round up everywhere.
        op.run(&g, &[7], &[5; 9], None, &mut out).unwrap();
        assert_eq!(out, [3; 9]);

        // Per-channel: factors 0.5 and 1; ReLU with output zero point -10.
        let op = TransposeConvInt8::new(
            QParams::new(0.5, 0),
            &[1.0, 2.0],
            QParams::new(1.0, -10),
            FusedActivation::Relu,
            2,
        )
        .unwrap();
        assert_eq!(op.activation_range(), (-10, 127));
        g.out_c = 2;
        let mut out = [0i8; 2];
        // acc = 7 * (3, -4) + bias (0, 6) = (21, -22): 10.5 -> 11 (scalar tail: away
        // from zero, same as up here) -> 1; -22 -> -32 -> clamped to -10.
        op.run(&g, &[7], &[3, -4], Some(&[0, 6]), &mut out).unwrap();
        assert_eq!(out, [1, -10]);
    }

    #[test]
    fn multipliers_are_per_channel_f64() {
        let op = TransposeConvInt8::new(
            QParams::new(0.1, 0),
            &[0.3, 0.6],
            QParams::new(0.7, 0),
            FusedActivation::None,
            2,
        )
        .unwrap();
        // 0.1 * 0.3 / 0.7 in f64, as in the conv kernels: (1472560321, -4).
        assert_eq!(
            op.multipliers()[0],
            QuantizedMultiplier {
                multiplier: 1_472_560_321,
                shift: -4
            }
        );
        assert_eq!(op.multipliers()[1].shift, -3);
    }

    #[test]
    fn bad_parameters_are_errors() {
        let q = QParams::new(0.1, 0);
        let none = FusedActivation::None;
        assert!(TransposeConvInt8::new(q, &[0.1, 0.2], q, none, 3).is_err());
        assert!(TransposeConvInt8::new(q, &[], q, none, 1).is_err());
        assert!(TransposeConvInt8::new(q, &[0.1], q, none, 0).is_err());
        assert!(TransposeConvInt8::new(QParams::new(-1.0, 0), &[0.1], q, none, 1).is_err());
        assert!(TransposeConvInt8::new(q, &[f32::INFINITY], q, none, 1).is_err());
        assert!(TransposeConvInt8::new(q, &[0.1], QParams::new(0.1, -129), none, 1).is_err());
        assert!(TransposeConvInt8::new(
            QParams::new(1e30, 0),
            &[1e30],
            QParams::new(1e-30, 0),
            none,
            1
        )
        .is_err());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let op = unit(1);
        let g = geometry((2, 2), (4, 4), (3, 3), 2, Padding::Same);
        let (input, filter, mut out) = ([0i8; 4], [0i8; 9], [0i8; 16]);
        assert!(op.run(&g, &input, &filter, None, &mut out).is_ok());
        assert!(op.run(&g, &input[..3], &filter, None, &mut out).is_err());
        assert!(op.run(&g, &input, &filter[..8], None, &mut out).is_err());
        assert!(op.run(&g, &input, &filter, None, &mut out[..15]).is_err());
        assert!(op
            .run(&g, &input, &filter, Some(&[0, 0]), &mut out)
            .is_err());
        // An input size the output shape does not come from.
        let mut wrong = g;
        wrong.in_h = 3;
        assert!(op.run(&wrong, &[0; 6], &filter, None, &mut out).is_err());
        // Output channels the op was not prepared for.
        let mut wide = g;
        wide.out_c = 2;
        assert!(op.run(&wide, &input, &[0; 18], None, &mut [0; 32]).is_err());
        let mut zero = g;
        zero.stride_w = 0;
        assert!(op.run(&zero, &input, &filter, None, &mut out).is_err());
        zero = g;
        zero.k_h = 0;
        assert!(op.run(&zero, &input, &[], None, &mut out).is_err());
        let mut huge = g;
        huge.out_w = usize::MAX;
        assert!(op.run(&huge, &input, &filter, None, &mut out).is_err());
        huge = g;
        huge.batch = usize::MAX;
        assert!(op.run(&huge, &input, &filter, None, &mut out).is_err());
        // A VALID filter taller than the output fits no input at all.
        let tall = geometry((1, 1), (1, 1), (3, 1), 1, Padding::Valid);
        assert!(op.run(&tall, &[0], &[0; 3], None, &mut [0]).is_err());
    }
}
