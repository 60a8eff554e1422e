//! The requantization of int32 accumulators shared by the conv-like kernels: TFLite's
//! multipliers per output channel, the two rounding steps (see `conv/mod.rs` for which op
//! rounds how), XNNPACK's float form, and the fused activation's clamp.

use crate::graph::FusedActivation;
use crate::kernels::fixed_point::{saturating_rounding_doubling_high_mul, QuantizedMultiplier};
use crate::kernels::int8::{
    check_int8_zero_point, check_scale, fused_activation_range, requantize_f32, Arithmetic, QParams,
};
use crate::kernels::KernelError;

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
        check_scale("input scale", input)?;
        check_int8_zero_point("input zero point", input)?;
        check_scale("output scale", output)?;
        check_int8_zero_point("output zero point", output)?;
        if let Some(s) = filter_scales
            .iter()
            .find(|s| !(s.is_finite() && **s >= 0.0))
        {
            return Err(KernelError::params(
                "filter scale",
                *s,
                "a non-negative finite number",
            ));
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

/// A buffer of `got` elements where the geometry needs `want`.
pub(crate) fn check_len(what: &'static str, got: usize, want: usize) -> Result<(), KernelError> {
    if got == want {
        Ok(())
    } else {
        Err(KernelError::size(what, want, got))
    }
}

pub(crate) fn check_bias(bias: Option<&[i32]>, channels: usize) -> Result<(), KernelError> {
    match bias {
        Some(b) => check_len("bias", b.len(), channels),
        None => Ok(()),
    }
}
