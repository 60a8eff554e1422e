//! int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED on NHWC data, bit-exact with
//! LiteRT's optimized builtin kernels on x86 (ai-edge-litert 2.3.0, no XNNPACK).
//!
//! Activations are int8 with a per-tensor scale and zero point; filters are symmetric
//! int8 (zero point 0) with one scale per output channel (CONV_2D / FULLY_CONNECTED:
//! axis 0 of `[out, kh, kw, in]` / `[out, in]`; depthwise: axis 3 of `[1, kh, kw, out]`)
//! or one scale for all; biases are int32 with scale `input_scale * filter_scale[c]`.
//!
//! Each output is `clamp(zp_out + requantize(bias[c] + sum((x - zp_in) * w)))`, where
//! taps that fall in the padding contribute nothing (TFLite's im2col fills them with the
//! input zero point), and `requantize` multiplies by the channel's real factor
//! `input_scale * filter_scale[c] / output_scale`, turned into a Q31 multiplier and a
//! shift exactly as TFLite's `Prepare` does (see [`ConvInt8::new`] and
//! [`FullyConnectedInt8::new`] for the one place where the ops differ).
//!
//! # Rounding: what LiteRT really runs on x86
//!
//! TFLite's reference `MultiplyByQuantizedMultiplier` is gemmlowp's double rounding:
//! a rounding doubling high multiply (ties towards +inf), then a rounding right shift
//! whose ties go away from zero. LiteRT 2.3.0 is built without `TFLITE_SINGLE_ROUNDING`,
//! but its optimized int8 kernels mostly do not call that function:
//!
//! * CONV_2D and FULLY_CONNECTED go through `cpu_backend_gemm`, which on x86 with AVX
//!   is ruy. Matrix * vector products (one output pixel, one FC row) go through
//!   TFLite's `CustomGemv`, NEON code compiled for SSE through `NEON_2_SSE`. Both do the
//!   same two steps, but the right shift rounds ties *up* (towards +inf): ruy with a
//!   nudge-and-shift, NEON with `vqrdmulh` + `vrshl`.
//! * DEPTHWISE_CONV_2D accumulates in int32 and then requantizes with
//!   `optimized_ops::Quantize`, whose NEON(-on-SSE) loop handles output channels eight
//!   at a time (ties up, as above) and leaves the last `out_c % 8` channels to the scalar
//!   reference function (ties away from zero).
//!
//! This was established against LiteRT, not only read from the source: on vectors with
//! exact ties (`tests/fixtures/kernels/conv_*pow2_ties.npz`), pure reference rounding,
//! single rounding and "ties up everywhere" each mismatch LiteRT on dozens of elements,
//! while the per-op rule above matches every element (`tests/int8_conv_kernels.rs`).
//! The first rounding step behaves identically on every path, so only the second one
//! is a [`Rounding`] choice. On x86 CPUs without AVX, cpu_backend_gemm would use
//! gemmlowp (reference rounding) instead; qdbg does not model that.

use super::{fused_activation_range, requantize_f32, Arithmetic, QParams};
use crate::graph::FusedActivation;
use crate::kernels::fixed_point::{saturating_rounding_doubling_high_mul, QuantizedMultiplier};

/// Shape and stepping of one CONV_2D or DEPTHWISE_CONV_2D. NHWC input
/// `[batch, in_h, in_w, in_c]`, output `[batch, out_h, out_w, out_c]`; padding is given
/// as the rows / columns added before the image (TFLite's SAME puts any odd one after,
/// which needs no parameter: taps past the end are skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
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
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    /// Depthwise only (`out_c = in_c * depth_multiplier`); must be 1 for CONV_2D.
    pub depth_multiplier: usize,
}

/// Element counts of the three tensors a geometry describes, overflow-checked.
pub(crate) struct Extents {
    pub(crate) input: usize,
    pub(crate) filter: usize,
    pub(crate) output: usize,
}

impl ConvGeometry {
    /// Checks that the geometry is usable and returns the slice lengths it implies.
    /// `depthwise` selects the filter layout (`[1, kh, kw, out_c]` vs
    /// `[out_c, kh, kw, in_c]`).
    pub(crate) fn extents(&self, depthwise: bool) -> Result<Extents, String> {
        let g = self;
        if g.stride_h == 0 || g.stride_w == 0 || g.dilation_h == 0 || g.dilation_w == 0 {
            return Err(format!(
                "strides ({}, {}) and dilations ({}, {}) must be at least 1",
                g.stride_h, g.stride_w, g.dilation_h, g.dilation_w
            ));
        }
        if g.k_h == 0 || g.k_w == 0 {
            return Err(format!("empty {}x{} filter window", g.k_h, g.k_w));
        }
        let too_big = || format!("convolution geometry {g:?} overflows");
        let product = |dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(too_big)
        };
        if depthwise {
            if g.depth_multiplier == 0 || g.in_c.checked_mul(g.depth_multiplier) != Some(g.out_c) {
                return Err(format!(
                    "depthwise output channels {} != input channels {} x depth multiplier {}",
                    g.out_c, g.in_c, g.depth_multiplier
                ));
            }
        } else if g.depth_multiplier != 1 {
            return Err(format!(
                "CONV_2D takes depth multiplier 1, got {}",
                g.depth_multiplier
            ));
        }
        // The furthest tap a window reaches, as a signed offset from the padded origin:
        // the kernels index with isize, so it must fit.
        for (out, stride, k, dilation, pad) in [
            (g.out_h, g.stride_h, g.k_h, g.dilation_h, g.pad_top),
            (g.out_w, g.stride_w, g.k_w, g.dilation_w, g.pad_left),
        ] {
            let reach = out
                .saturating_sub(1)
                .checked_mul(stride)
                .and_then(|r| r.checked_add((k - 1).checked_mul(dilation)?));
            if reach.is_none_or(|r| r > isize::MAX as usize) || pad > isize::MAX as usize {
                return Err(too_big());
            }
        }
        Ok(Extents {
            input: product(&[g.batch, g.in_h, g.in_w, g.in_c])?,
            filter: if depthwise {
                product(&[g.k_h, g.k_w, g.out_c])?
            } else {
                product(&[g.out_c, g.k_h, g.k_w, g.in_c])?
            },
            output: product(&[g.batch, g.out_h, g.out_w, g.out_c])?,
        })
    }

    /// Input row index of tap `k` of output row `o`, or `None` when it lies in the padding.
    pub(crate) fn source(
        o: usize,
        stride: usize,
        k: usize,
        dilation: usize,
        pad: usize,
        size: usize,
    ) -> Option<usize> {
        // `extents` bounded these products by isize::MAX.
        let pos = (o * stride + k * dilation) as isize - pad as isize;
        (pos >= 0 && (pos as usize) < size).then_some(pos as usize)
    }
}

/// How the second requantization step (the rounding right shift) breaks ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Towards +inf: ruy's x86 kernels and TFLite's NEON code compiled for SSE.
    HalfUp,
    /// Away from zero: TFLite's scalar `MultiplyByQuantizedMultiplier` (gemmlowp's
    /// `RoundingDivideByPOT`), i.e. [`QuantizedMultiplier::apply`].
    HalfAwayFromZero,
}

/// `acc * multiplier`, rounded in two steps like TFLite: a rounding doubling high
/// multiply by the Q31 significand (after the left shift of a multiplier >= 1), then a
/// rounding right shift that breaks ties as `rounding` says.
pub fn requantize(acc: i32, m: QuantizedMultiplier, rounding: Rounding) -> i32 {
    match rounding {
        Rounding::HalfAwayFromZero => m.apply(acc),
        Rounding::HalfUp => {
            let left = m.shift.max(0);
            let right = (-m.shift).max(0);
            // Wrapping like the SIMD shift it mirrors; constructors keep `left` <= 30.
            let shifted = acc.wrapping_mul(1i32.wrapping_shl(left as u32));
            let high = saturating_rounding_doubling_high_mul(shifted, m.multiplier);
            if right == 0 {
                high
            } else {
                // In i64 the nudge cannot overflow; the result always fits i32 again.
                ((i64::from(high) + (1i64 << (right - 1))) >> right) as i32
            }
        }
    }
}

/// What TFLite's `Prepare` derives from the quantization parameters, shared by the
/// three ops: offsets, one multiplier per output channel, the fused activation's range.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Requant {
    pub(crate) input_offset: i32,
    pub(crate) output_zero_point: i32,
    pub(crate) multipliers: Vec<QuantizedMultiplier>,
    pub(crate) act_min: i32,
    pub(crate) act_max: i32,
    /// XNNPACK's per-channel f32 factors `input * filter / output` (f32, in that order),
    /// kept so [`Requant::set_arithmetic`] can switch without the scales again.
    xnnpack_scales: Vec<f32>,
    /// `Some` when the op requantizes like XNNPACK (see [`super::Arithmetic`]).
    pub(crate) float_scales: Option<Vec<f32>>,
}

/// How the real per-channel factor is formed from f32 scales.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScaleProduct {
    /// `PopulateConvolutionQuantizationParams` (conv, depthwise, per-channel FC):
    /// `f64(input) * f64(filter) / f64(output)`.
    Double,
    /// `GetQuantizedConvolutionMultipler` (per-tensor FC): the product
    /// `input * filter` is taken in f32 before widening.
    FloatProduct,
}

impl Requant {
    pub(crate) fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        channels: usize,
        product: ScaleProduct,
    ) -> Result<Self, String> {
        if channels == 0 {
            return Err("no output channels".into());
        }
        if filter_scales.len() != 1 && filter_scales.len() != channels {
            return Err(format!(
                "{} filter scales for {channels} output channels (need 1 or {channels})",
                filter_scales.len()
            ));
        }
        for (what, q) in [("input", input), ("output", output)] {
            if !(q.scale.is_finite() && q.scale > 0.0) {
                return Err(format!("{what} scale {} is not a positive number", q.scale));
            }
            if !(-128..=127).contains(&q.zero_point) {
                return Err(format!(
                    "{what} zero point {} is outside int8",
                    q.zero_point
                ));
            }
        }
        if let Some(s) = filter_scales
            .iter()
            .find(|s| !(s.is_finite() && **s >= 0.0))
        {
            return Err(format!("filter scale {s} is not a non-negative number"));
        }
        let multipliers = (0..channels)
            .map(|c| {
                // One scale means per-tensor: TFLite broadcasts it to every channel.
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
                // A shift past 30 means a factor of 2^30 or more: no real model has one,
                // and the left shift would lose the accumulator entirely.
                if !real.is_finite() || m.shift > 30 {
                    return Err(format!(
                        "channel {c}: rescale factor {real} (input {} x filter {f} / output {}) is out of range",
                        input.scale, output.scale
                    ));
                }
                Ok(m)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let (act_min, act_max) = activation_range(activation, output);
        let xnnpack_scales = (0..channels)
            .map(|c| {
                let f = filter_scales[if filter_scales.len() == 1 { 0 } else { c }];
                input.scale * f / output.scale
            })
            .collect();
        Ok(Requant {
            input_offset: -input.zero_point,
            output_zero_point: output.zero_point,
            multipliers,
            act_min,
            act_max,
            xnnpack_scales,
            float_scales: None,
        })
    }

    /// Chooses whose requantization [`Requant::output`] (and the packed kernels) apply.
    /// XNNPACK refuses a convolution or fully-connected op whose factor reaches 256 in
    /// any channel; LiteRT then runs its builtin kernel, so such an op keeps the builtin
    /// arithmetic here too.
    pub(crate) fn set_arithmetic(&mut self, arithmetic: Arithmetic) {
        self.float_scales = match arithmetic {
            Arithmetic::Xnnpack if self.xnnpack_scales.iter().all(|s| *s < 256.0) => {
                Some(self.xnnpack_scales.clone())
            }
            _ => None,
        };
    }

    pub(crate) fn output(&self, acc: i32, channel: usize, rounding: Rounding) -> i8 {
        if let Some(scales) = &self.float_scales {
            return requantize_f32(
                acc,
                scales[channel],
                self.output_zero_point,
                self.act_min,
                self.act_max,
            ) as i8;
        }
        let v = requantize(acc, self.multipliers[channel], rounding)
            .saturating_add(self.output_zero_point);
        v.clamp(self.act_min, self.act_max) as i8
    }
}

/// [`fused_activation_range`], guarded against output scales so small that quantizing
/// the activation's bounds overflows i32 there: below 1e-6 every nonzero bound lies
/// millions of steps from the zero point, so only the zero point can bind.
fn activation_range(activation: FusedActivation, output: QParams) -> (i32, i32) {
    if output.scale >= 1e-6 {
        return fused_activation_range(activation, output);
    }
    match activation {
        FusedActivation::Relu | FusedActivation::Relu6 => (output.zero_point.max(-128), 127),
        _ => (-128, 127),
    }
}

pub(crate) fn check_len(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what} has {got} elements, the geometry needs {want}"
        ))
    }
}

pub(crate) fn check_bias(bias: Option<&[i32]>, channels: usize) -> Result<(), String> {
    match bias {
        Some(b) => check_len("bias", b.len(), channels),
        None => Ok(()),
    }
}

/// Prepared int8 CONV_2D / DEPTHWISE_CONV_2D: the parameters TFLite's `Prepare`
/// computes, reusable across calls with any geometry that has `out_channels` outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvInt8 {
    pub(crate) rq: Requant,
}

impl ConvInt8 {
    /// `filter_scales` has one entry per output channel, or one for all (per-tensor).
    /// Multipliers are `f64(input) * f64(filter[c]) / f64(output)` as in TFLite's
    /// `PopulateConvolutionQuantizationParams`. Fused TANH / SIGN_BIT clamp nothing, as
    /// in TFLite's int8 conv. Errors on non-positive or non-finite scales, zero points
    /// outside int8, a scale count that fits neither layout, or a rescale factor >= 2^30.
    pub fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        out_channels: usize,
    ) -> Result<Self, String> {
        Requant::new(
            input,
            filter_scales,
            output,
            activation,
            out_channels,
            ScaleProduct::Double,
        )
        .map(|rq| ConvInt8 { rq })
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

    fn check(
        &self,
        g: &ConvGeometry,
        depthwise: bool,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        out: &[i8],
    ) -> Result<(), String> {
        let e = g.extents(depthwise)?;
        if g.out_c != self.rq.multipliers.len() {
            return Err(format!(
                "geometry has {} output channels, the op was prepared for {}",
                g.out_c,
                self.rq.multipliers.len()
            ));
        }
        check_len("input", input.len(), e.input)?;
        check_len("filter", filter.len(), e.filter)?;
        check_len("output", out.len(), e.output)?;
        check_bias(bias, g.out_c)
    }

    /// CONV_2D: `filter` is `[out_c, k_h, k_w, in_c]`.
    pub fn conv2d(
        &self,
        g: &ConvGeometry,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        out: &mut [i8],
    ) -> Result<(), String> {
        self.check(g, false, input, filter, bias, out)?;
        let off = self.rq.input_offset;
        let window = g.k_h * g.k_w * g.in_c;
        let mut acc = vec![0i32; g.out_c];
        let mut pixels = out.chunks_exact_mut(g.out_c.max(1));
        for b in 0..g.batch {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    init_acc(&mut acc, bias);
                    for ky in 0..g.k_h {
                        let Some(iy) = ConvGeometry::source(
                            oy,
                            g.stride_h,
                            ky,
                            g.dilation_h,
                            g.pad_top,
                            g.in_h,
                        ) else {
                            continue;
                        };
                        for kx in 0..g.k_w {
                            let Some(ix) = ConvGeometry::source(
                                ox,
                                g.stride_w,
                                kx,
                                g.dilation_w,
                                g.pad_left,
                                g.in_w,
                            ) else {
                                continue;
                            };
                            let px = &input[((b * g.in_h + iy) * g.in_w + ix) * g.in_c..][..g.in_c];
                            let tap = (ky * g.k_w + kx) * g.in_c;
                            for (oc, a) in acc.iter_mut().enumerate() {
                                let w = &filter[oc * window + tap..][..g.in_c];
                                *a = a.wrapping_add(dot(px, w, off));
                            }
                        }
                    }
                    // Every CONV_2D shape goes through ruy or CustomGemv on x86.
                    if let Some(dst) = pixels.next() {
                        for (c, (o, &a)) in dst.iter_mut().zip(&acc).enumerate() {
                            *o = self.rq.output(a, c, Rounding::HalfUp);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// DEPTHWISE_CONV_2D: `filter` is `[1, k_h, k_w, out_c]`; output channel
    /// `c * depth_multiplier + j` reads input channel `c`.
    pub fn depthwise(
        &self,
        g: &ConvGeometry,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        out: &mut [i8],
    ) -> Result<(), String> {
        self.check(g, true, input, filter, bias, out)?;
        let off = self.rq.input_offset;
        let m = g.depth_multiplier;
        // LiteRT's requantization loop does whole groups of 8 channels with vector code
        // and the rest with the scalar reference function; see the module docs.
        let vector_channels = g.out_c - g.out_c % 8;
        let mut acc = vec![0i32; g.out_c];
        let mut pixels = out.chunks_exact_mut(g.out_c.max(1));
        for b in 0..g.batch {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    init_acc(&mut acc, bias);
                    for ky in 0..g.k_h {
                        let Some(iy) = ConvGeometry::source(
                            oy,
                            g.stride_h,
                            ky,
                            g.dilation_h,
                            g.pad_top,
                            g.in_h,
                        ) else {
                            continue;
                        };
                        for kx in 0..g.k_w {
                            let Some(ix) = ConvGeometry::source(
                                ox,
                                g.stride_w,
                                kx,
                                g.dilation_w,
                                g.pad_left,
                                g.in_w,
                            ) else {
                                continue;
                            };
                            let px = &input[((b * g.in_h + iy) * g.in_w + ix) * g.in_c..][..g.in_c];
                            let w = &filter[(ky * g.k_w + kx) * g.out_c..][..g.out_c];
                            for ((&x, a), w) in px
                                .iter()
                                .zip(acc.chunks_exact_mut(m))
                                .zip(w.chunks_exact(m))
                            {
                                let x = i32::from(x) + off;
                                for (a, &w) in a.iter_mut().zip(w) {
                                    *a = a.wrapping_add(x * i32::from(w));
                                }
                            }
                        }
                    }
                    if let Some(dst) = pixels.next() {
                        for (c, (o, &a)) in dst.iter_mut().zip(&acc).enumerate() {
                            let rounding = if c < vector_channels {
                                Rounding::HalfUp
                            } else {
                                Rounding::HalfAwayFromZero
                            };
                            *o = self.rq.output(a, c, rounding);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn init_acc(acc: &mut [i32], bias: Option<&[i32]>) {
    match bias {
        Some(b) => acc.copy_from_slice(b),
        None => acc.fill(0),
    }
}

/// `sum((x + input_offset) * w)`. Each product fits easily (|x + offset| <= 255); the
/// sum wraps like TFLite's int32 accumulators instead of panicking on absurd depths.
fn dot(x: &[i8], w: &[i8], input_offset: i32) -> i32 {
    // The same loop compiled for AVX2 where the CPU has it: the default x86-64 target
    // only allows SSE2, which leaves most of the int8 conv time on the table.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { dot_avx2(x, w, input_offset) };
    }
    dot_portable(x, w, input_offset)
}

#[inline(always)]
fn dot_portable(x: &[i8], w: &[i8], input_offset: i32) -> i32 {
    x.iter().zip(w).fold(0i32, |s, (&x, &w)| {
        s.wrapping_add((i32::from(x) + input_offset) * i32::from(w))
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(x: &[i8], w: &[i8], input_offset: i32) -> i32 {
    dot_portable(x, w, input_offset)
}

/// Prepared int8 FULLY_CONNECTED: `[rows, depth] x [units, depth]^T -> [rows, units]`.
/// Flattening the input to rows and `keep_num_dims` are the caller's business.
#[derive(Clone, Debug, PartialEq)]
pub struct FullyConnectedInt8 {
    pub(crate) rq: Requant,
}

impl FullyConnectedInt8 {
    /// `filter_scales` has one entry per unit, or one for all. TFLite treats a single
    /// scale (even for one unit) as per-tensor and then multiplies `input * filter` in
    /// f32 before dividing in f64 (`GetQuantizedConvolutionMultipler`); several scales
    /// take the all-f64 per-channel formula. Like TFLite's `Prepare`, only NONE / RELU /
    /// RELU_N1_TO_1 / RELU6 may be fused. Other errors as [`ConvInt8::new`].
    pub fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        units: usize,
    ) -> Result<Self, String> {
        if matches!(activation, FusedActivation::Tanh | FusedActivation::SignBit) {
            return Err(format!(
                "FULLY_CONNECTED cannot fuse {activation:?} on int8 data"
            ));
        }
        let product = if filter_scales.len() == 1 {
            ScaleProduct::FloatProduct
        } else {
            ScaleProduct::Double
        };
        Requant::new(input, filter_scales, output, activation, units, product)
            .map(|rq| FullyConnectedInt8 { rq })
    }

    /// Requantize like `arithmetic` (LiteRT's builtin kernels unless told otherwise).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.rq.set_arithmetic(arithmetic);
        self
    }

    /// The per-unit fixed-point multipliers, as TFLite stores them.
    pub fn multipliers(&self) -> &[QuantizedMultiplier] {
        &self.rq.multipliers
    }

    /// The int8 range the fused activation leaves.
    pub fn activation_range(&self) -> (i32, i32) {
        (self.rq.act_min, self.rq.act_max)
    }

    /// `input` is `[rows, depth]`, `filter` `[units, depth]`, `out` `[rows, units]`.
    pub fn run(
        &self,
        rows: usize,
        depth: usize,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        out: &mut [i8],
    ) -> Result<(), String> {
        let units = self.rq.multipliers.len();
        let size = |a: usize, b: usize| {
            a.checked_mul(b)
                .ok_or_else(|| format!("fully connected shape {rows}x{depth}x{units} overflows"))
        };
        check_len("input", input.len(), size(rows, depth)?)?;
        check_len("filter", filter.len(), size(units, depth)?)?;
        check_len("output", out.len(), size(rows, units)?)?;
        check_bias(bias, units)?;
        if depth == 0 {
            // No products: every output is the requantized bias (or zero).
            for dst in out.chunks_exact_mut(units) {
                for (u, o) in dst.iter_mut().enumerate() {
                    let acc = bias.map_or(0, |b| b[u]);
                    *o = self.rq.output(acc, u, Rounding::HalfUp);
                }
            }
            return Ok(());
        }
        for (x, dst) in input.chunks_exact(depth).zip(out.chunks_exact_mut(units)) {
            for ((u, o), w) in dst.iter_mut().enumerate().zip(filter.chunks_exact(depth)) {
                let acc = dot(x, w, self.rq.input_offset).wrapping_add(bias.map_or(0, |b| b[u]));
                // Both ruy (several rows) and CustomGemv (one row) round ties up.
                *o = self.rq.output(acc, u, Rounding::HalfUp);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(
        in_hw: (usize, usize),
        in_c: usize,
        out_hw: (usize, usize),
        out_c: usize,
    ) -> ConvGeometry {
        ConvGeometry {
            batch: 1,
            in_h: in_hw.0,
            in_w: in_hw.1,
            in_c,
            out_h: out_hw.0,
            out_w: out_hw.1,
            out_c,
            k_h: 1,
            k_w: 1,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
            depth_multiplier: 1,
        }
    }

    #[test]
    fn second_rounding_step_breaks_ties_as_told() {
        // 0.125 = 0.5 * 2^-2: multiplier 2^30, shift -2. -20 * 0.125 = -2.5 exactly; the
        // high multiply gives -10 exactly, then -10 / 4 = -2.5 is the tie.
        let m = QuantizedMultiplier::from_real(0.125);
        assert_eq!(requantize(-20, m, Rounding::HalfUp), -2);
        assert_eq!(requantize(-20, m, Rounding::HalfAwayFromZero), -3);
        assert_eq!(requantize(20, m, Rounding::HalfUp), 3);
        assert_eq!(requantize(20, m, Rounding::HalfAwayFromZero), 3);
        // Double rounding: -21 * 0.125 = -2.625, but the high multiply first rounds
        // -10.5 up to -10, and -10 / 4 = -2.5 is a tie again (single rounding: -3).
        assert_eq!(requantize(-21, m, Rounding::HalfUp), -2);
        assert_eq!(requantize(-21, m, Rounding::HalfAwayFromZero), -3);
        // The high multiply's own tie goes up on both paths: 0.5 * -3 = -1.5 -> -1.
        let half = QuantizedMultiplier::from_real(0.5);
        assert_eq!(requantize(-3, half, Rounding::HalfUp), -1);
        assert_eq!(requantize(-3, half, Rounding::HalfAwayFromZero), -1);
        // A multiplier above 1 shifts left first: 3.0 = 0.75 * 2^2.
        assert_eq!(
            requantize(-7, QuantizedMultiplier::from_real(3.0), Rounding::HalfUp),
            -21
        );
    }

    /// 3x3 input of ones above the zero point, 3x3 filter of ones, SAME: each output
    /// counts its in-image taps (corner 4, edge 6, centre 9). Padded taps must add
    /// nothing, not (pad - zero point) * w.
    #[test]
    fn padding_taps_contribute_nothing() {
        let mut g = geometry((3, 3), 1, (3, 3), 1);
        g.k_h = 3;
        g.k_w = 3;
        g.pad_top = 1;
        g.pad_left = 1;
        // input 0.5 * filter 2 / output 1 = 1.0: the accumulator comes out unchanged.
        let op = ConvInt8::new(
            QParams::new(0.5, 10),
            &[2.0],
            QParams::new(1.0, -3),
            FusedActivation::None,
            1,
        )
        .unwrap();
        let input = [11i8; 9];
        let mut out = [0i8; 9];
        op.conv2d(&g, &input, &[1; 9], None, &mut out).unwrap();
        assert_eq!(out, [1, 3, 1, 3, 6, 3, 1, 3, 1]); // counts - 3 (output zero point)
        g.depth_multiplier = 1;
        op.depthwise(&g, &input, &[1; 9], Some(&[100]), &mut out)
            .unwrap();
        assert_eq!(out, [101, 103, 101, 103, 106, 103, 101, 103, 101]);
    }

    /// One pixel, two input channels, two filters, bias, ReLU6. input scale 0.5, zp 4;
    /// filter scales 0.25 / 0.5; output scale 0.25, zp -10, so the factors are 0.5 and 1.
    #[test]
    fn conv_by_hand() {
        let g = geometry((1, 1), 2, (1, 1), 2);
        let op = ConvInt8::new(
            QParams::new(0.5, 4),
            &[0.25, 0.5],
            QParams::new(0.25, -10),
            FusedActivation::Relu6,
            2,
        )
        .unwrap();
        // ReLU6: 0 -> -10, 6 / 0.25 = 24 -> 14.
        assert_eq!(op.activation_range(), (-10, 14));
        // x - zp = (3, -6). Channel 0: 3*5 + -6*2 + 8 = 11; * 0.5 = 5.5 -> 6; -10 + 6 = -4.
        // Channel 1: 3*-1 + -6*-7 + 0 = 39 -> 39 - 10 = 29 -> clamped to 14.
        let mut out = [0i8; 2];
        op.conv2d(&g, &[7, -2], &[5, 2, -1, -7], Some(&[8, 0]), &mut out)
            .unwrap();
        assert_eq!(out, [-4, 14]);
    }

    /// Nine depthwise channels: the first eight round the 2.5 tie up, the ninth (the
    /// scalar tail of LiteRT's requantization loop) away from zero.
    #[test]
    fn depthwise_tail_channels_round_away_from_zero() {
        let mut g = geometry((1, 1), 9, (1, 1), 9);
        g.depth_multiplier = 1;
        // input 1 * filter 0.125 / output 1 = 0.125; accumulators -20 -> -2.5.
        let op = ConvInt8::new(
            QParams::new(1.0, 0),
            &[0.125],
            QParams::new(1.0, 0),
            FusedActivation::None,
            9,
        )
        .unwrap();
        let mut out = [0i8; 9];
        op.depthwise(&g, &[-4; 9], &[5; 9], None, &mut out).unwrap();
        assert_eq!(out, [-2, -2, -2, -2, -2, -2, -2, -2, -3]);
        // Positive ties round up everywhere.
        op.depthwise(&g, &[4; 9], &[5; 9], None, &mut out).unwrap();
        assert_eq!(out, [3; 9]);
    }

    /// Depth multiplier 2: output channel 2c + j reads input channel c.
    #[test]
    fn depth_multiplier_pairs_channels() {
        let mut g = geometry((1, 1), 2, (1, 1), 4);
        g.depth_multiplier = 2;
        let op = ConvInt8::new(
            QParams::new(1.0, 1),
            &[1.0],
            QParams::new(1.0, 0),
            FusedActivation::None,
            4,
        )
        .unwrap();
        let mut out = [0i8; 4];
        // x - zp = (2, -3); filter (1, 2, 3, 4): 2, 4, -9, -12.
        op.depthwise(&g, &[3, -2], &[1, 2, 3, 4], None, &mut out)
            .unwrap();
        assert_eq!(out, [2, 4, -9, -12]);
    }

    #[test]
    fn fully_connected_by_hand() {
        // input 0.5 zp -1, filter 0.5, output 1 zp 3: factor 0.25.
        let fc = FullyConnectedInt8::new(
            QParams::new(0.5, -1),
            &[0.5],
            QParams::new(1.0, 3),
            FusedActivation::Relu,
            2,
        )
        .unwrap();
        let mut out = [0i8; 4];
        // Row 0: x - zp = (2, 4). Unit 0: 2*3 + 4*1 + 2 = 12 -> 3 -> 6.
        //   Unit 1: 2*-5 + 4*-1 - 4 = -18 -> -4.5 -> tie rounds up to -4 -> -1 -> ReLU 3.
        // Row 1: x - zp = (-6, 0). Unit 0: -18 + 2 = -16 -> -4 -> -1 -> 3.
        //   Unit 1: 30 - 4 = 26 -> 6.5 -> 7 -> 10.
        fc.run(
            2,
            2,
            &[1, 3, -7, -1],
            &[3, 1, -5, -1],
            Some(&[2, -4]),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [6, 3, 3, 10]);
        assert_eq!(fc.activation_range(), (3, 127));
    }

    /// Per-tensor FULLY_CONNECTED multiplies the scales in f32 first; conv (and
    /// per-channel FC) in f64. Values from TFLite's formulas, evaluated in numpy:
    /// f32(0.1 * 0.3) / 0.7 -> (1472560299, -4); 0.1 * 0.3 / 0.7 in f64 -> (1472560321, -4).
    #[test]
    fn per_tensor_fully_connected_takes_the_float_product() {
        let (i, o) = (QParams::new(0.1, 0), QParams::new(0.7, 0));
        let fc = FullyConnectedInt8::new(i, &[0.3], o, FusedActivation::None, 3).unwrap();
        let expect_f32 = QuantizedMultiplier {
            multiplier: 1_472_560_299,
            shift: -4,
        };
        let expect_f64 = QuantizedMultiplier {
            multiplier: 1_472_560_321,
            shift: -4,
        };
        assert_eq!(fc.multipliers(), &[expect_f32; 3]);
        let fc = FullyConnectedInt8::new(i, &[0.3, 0.3], o, FusedActivation::None, 2).unwrap();
        assert_eq!(fc.multipliers(), &[expect_f64; 2]);
        let conv = ConvInt8::new(i, &[0.3], o, FusedActivation::None, 2).unwrap();
        assert_eq!(conv.multipliers(), &[expect_f64; 2]);
    }

    #[test]
    fn bad_parameters_are_errors() {
        let q = QParams::new(0.1, 0);
        let none = FusedActivation::None;
        assert!(ConvInt8::new(q, &[0.1, 0.2], q, none, 3).is_err()); // 2 scales, 3 channels
        assert!(ConvInt8::new(q, &[], q, none, 1).is_err());
        assert!(ConvInt8::new(q, &[0.1], q, none, 0).is_err());
        assert!(ConvInt8::new(QParams::new(0.0, 0), &[0.1], q, none, 1).is_err());
        assert!(ConvInt8::new(q, &[f32::NAN], q, none, 1).is_err());
        assert!(ConvInt8::new(q, &[-0.1], q, none, 1).is_err());
        assert!(ConvInt8::new(q, &[0.1], QParams::new(0.1, 200), none, 1).is_err());
        assert!(ConvInt8::new(
            QParams::new(1e30, 0),
            &[1e30],
            QParams::new(1e-30, 0),
            none,
            1
        )
        .is_err());
        assert!(FullyConnectedInt8::new(q, &[0.1], q, FusedActivation::Tanh, 1).is_err());
        // A tiny output scale must not overflow the activation range computation.
        let tiny = QParams::new(1e-30, 5);
        let op = ConvInt8::new(
            QParams::new(1e-30, 0),
            &[0.1],
            tiny,
            FusedActivation::Relu6,
            1,
        )
        .unwrap();
        assert_eq!(op.activation_range(), (5, 127));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let op = ConvInt8::new(
            QParams::new(1.0, 0),
            &[1.0],
            QParams::new(1.0, 0),
            FusedActivation::None,
            2,
        )
        .unwrap();
        let g = geometry((2, 2), 1, (2, 2), 2);
        let (input, filter, mut out) = ([0i8; 4], [0i8; 2], [0i8; 8]);
        assert!(op.conv2d(&g, &input, &filter, None, &mut out).is_ok());
        assert!(op.conv2d(&g, &input[..3], &filter, None, &mut out).is_err());
        assert!(op.conv2d(&g, &input, &filter[..1], None, &mut out).is_err());
        assert!(op.conv2d(&g, &input, &filter, None, &mut out[..7]).is_err());
        assert!(op
            .conv2d(&g, &input, &filter, Some(&[1]), &mut out)
            .is_err());
        let wrong_channels = geometry((2, 2), 1, (2, 2), 3);
        assert!(op
            .conv2d(&wrong_channels, &input, &[0; 3], None, &mut [0; 12])
            .is_err());
        let mut zero_stride = g;
        zero_stride.stride_h = 0;
        assert!(op
            .conv2d(&zero_stride, &input, &filter, None, &mut out)
            .is_err());
        let mut dm = g;
        dm.depth_multiplier = 2;
        assert!(op.conv2d(&dm, &input, &filter, None, &mut out).is_err());
        // Depthwise with 1 input channel and multiplier 1 cannot have 2 outputs.
        assert!(op.depthwise(&g, &input, &filter, None, &mut out).is_err());
        let mut huge = g;
        huge.stride_w = usize::MAX;
        assert!(op.conv2d(&huge, &input, &filter, None, &mut out).is_err());
        huge = g;
        huge.batch = usize::MAX;
        assert!(op.conv2d(&huge, &input, &filter, None, &mut out).is_err());
        let fc = FullyConnectedInt8::new(
            QParams::new(1.0, 0),
            &[1.0],
            QParams::new(1.0, 0),
            FusedActivation::None,
            2,
        )
        .unwrap();
        assert!(fc.run(2, 3, &[0; 6], &[0; 6], None, &mut [0; 4]).is_ok());
        assert!(fc.run(2, 3, &[0; 5], &[0; 6], None, &mut [0; 4]).is_err());
        assert!(fc
            .run(usize::MAX, 3, &[0; 6], &[0; 6], None, &mut [0; 4])
            .is_err());
        assert!(fc
            .run(2, 3, &[0; 6], &[0; 6], Some(&[0; 3]), &mut [0; 4])
            .is_err());
        // Depth 0: the outputs are the requantized biases.
        let mut out = [0i8; 4];
        fc.run(2, 0, &[], &[], Some(&[-5, 7]), &mut out).unwrap();
        assert_eq!(out, [-5, 7, -5, 7]);
    }
}
