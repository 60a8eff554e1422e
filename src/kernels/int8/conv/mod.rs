//! int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED on NHWC data, bit-exact with
//! LiteRT's optimized builtin kernels on x86 (ai-edge-litert 2.3.0, no XNNPACK). The
//! family's other members, which share the requantization below, have their own
//! files: [`transpose_conv`] and [`batch_matmul`]; the packed (SIMD) variants of
//! these kernels are in `int8::packed`.
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
//! while the per-op rule above matches every element (`tests/int8_conv_family_kernels.rs`).
//! The first rounding step behaves identically on every path, so only the second one
//! is a [`Rounding`] choice. On x86 CPUs without AVX, cpu_backend_gemm would use
//! gemmlowp (reference rounding) instead; qdbg does not model that.

pub mod batch_matmul;
mod fully_connected;
mod requant;
#[cfg(test)]
mod tests;
pub mod transpose_conv;

pub use crate::kernels::window::ConvGeometry;
pub use fully_connected::FullyConnectedInt8;
pub(crate) use requant::{check_bias, check_len, Requant, ScaleProduct};
pub use requant::{requantize, Rounding};

use super::{Arithmetic, QParams};
use crate::graph::FusedActivation;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::KernelError;

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
    ) -> Result<Self, KernelError> {
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

    /// CONV_2D: `filter` is `[out_c, k_h, k_w, in_c]`.
    pub fn conv2d(
        &self,
        g: &ConvGeometry,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        out: &mut [i8],
    ) -> Result<(), KernelError> {
        self.check(g, false, input, filter, bias, out)?;
        let off = self.rq.input_offset;
        g.for_each_output_pixel(
            bias,
            out,
            |acc, b, oy, ox| {
                g.conv2d_window(
                    (b, oy, ox),
                    input,
                    filter,
                    acc,
                    |px, w| dot(px, w, off),
                    i32::wrapping_add,
                )
            },
            // Every CONV_2D shape goes through ruy or CustomGemv on x86.
            |acc, dst| {
                for (c, (o, &a)) in dst.iter_mut().zip(acc).enumerate() {
                    *o = self.rq.output(a, c, Rounding::HalfUp);
                }
            },
        );
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
    ) -> Result<(), KernelError> {
        self.check(g, true, input, filter, bias, out)?;
        let off = self.rq.input_offset;
        // LiteRT's requantization loop does whole groups of 8 channels with vector code
        // and the rest with the scalar reference function; see the module docs.
        let vector_channels = g.out_c - g.out_c % 8;
        g.for_each_output_pixel(
            bias,
            out,
            |acc, b, oy, ox| {
                g.depthwise_window((b, oy, ox), input, filter, acc, |a, x, w| {
                    a.wrapping_add((i32::from(x) + off) * i32::from(w))
                })
            },
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
