//! int8 kernels with TFLite's integer arithmetic, bit-compatible with LiteRT's builtin
//! kernels. Each kernel is a pure function on slices; `prepare`-style constructors turn
//! real scales and zero points into the fixed-point parameters exactly as TFLite's
//! `Prepare` step does, so callers only deal in [`QParams`].
//!
//! [`Arithmetic`] picks whose integer arithmetic the kernels reproduce: LiteRT's builtin
//! kernels (the default) or the XNNPACK delegate that LiteRT applies by default on CPU,
//! which rescales several ops in f32 instead of fixed point.

pub mod binary;
pub mod conv;
mod fixed_point_x86;
pub(crate) mod neon_emulation;
pub mod packed;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod softmax;
pub mod unary;

/// The conv-like kernels' old paths (`int8::batch_matmul`, `int8::transpose_conv`), from
/// before they joined their family in [`conv`].
pub use conv::{batch_matmul, transpose_conv};

use super::error::{allowed, KernelError};

/// Whose int8 arithmetic the kernels reproduce, bit for bit.
///
/// LiteRT runs int8 ops either with its builtin kernels (fixed-point multipliers, as the
/// TFLite reference defines them) or, by default on CPU, through the XNNPACK delegate,
/// whose kernels rescale CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, MEAN
/// and MUL in f32 (`round_ties_even(f32(acc) * scale)`), LEAKY_RELU with an 8-bit
/// fixed-point slope and RESIZE_BILINEAR with 11-bit weights. The two differ by one step
/// on a few outputs in a thousand; on tiny tensors (1x1xC squeeze-excite paths) that moves
/// a layer's error statistics by tens of percent, which is why TensorFlow's
/// QuantizationDebugger (LiteRT with XNNPACK) prints other numbers than the builtin
/// kernels give. The rules were measured against LiteRT 2.3.0 / TensorFlow 2.21 on x86-64
/// (`scripts/kernel_vectors/make_xnnpack_vectors.py`); XNNPACK on Arm rounds its
/// convolutions differently and is not reproduced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arithmetic {
    /// LiteRT's builtin kernels (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`).
    #[default]
    Builtin,
    /// LiteRT's default XNNPACK delegate on x86-64 (what `tf.lite.Interpreter` and
    /// TensorFlow's QuantizationDebugger run).
    Xnnpack,
}

impl Arithmetic {
    pub fn name(self) -> &'static str {
        match self {
            Arithmetic::Builtin => "builtin",
            Arithmetic::Xnnpack => "xnnpack",
        }
    }

    pub fn parse(s: &str) -> Option<Arithmetic> {
        match s.trim().to_ascii_lowercase().as_str() {
            "builtin" | "litert" | "reference" => Some(Arithmetic::Builtin),
            "xnnpack" => Some(Arithmetic::Xnnpack),
            _ => None,
        }
    }
}

/// XNNPACK's f32 requantization: the int32 accumulator converted to f32 (rounded to
/// nearest even, as `cvtdq2ps` does), multiplied by `scale` in f32, rounded to nearest
/// even, plus the zero point, clamped to `[min, max]`. XNNPACK clamps in the float domain
/// before converting; clamping after a saturating conversion gives the same integers
/// because the bounds lie within int8.
#[inline]
pub fn requantize_f32(acc: i32, scale: f32, zero_point: i32, min: i32, max: i32) -> i32 {
    let scaled = (acc as f32 * scale).round_ties_even();
    // `as` saturates (and maps NaN to 0, which cannot occur for finite scales).
    (scaled as i32).saturating_add(zero_point).clamp(min, max)
}

/// Per-tensor affine quantization: `real = scale * (q - zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl QParams {
    pub fn new(scale: f32, zero_point: i32) -> Self {
        QParams { scale, zero_point }
    }
}

/// A quantization scale the kernels can divide by: finite and positive. `what` names the
/// scale ("input scale").
pub(crate) fn check_scale(what: &'static str, q: QParams) -> Result<(), KernelError> {
    if q.scale.is_finite() && q.scale > 0.0 {
        Ok(())
    } else {
        Err(KernelError::params(what, q.scale, allowed::POSITIVE))
    }
}

/// A zero point that fits int8 (the reference kernels' int8 paths assume it). `what`
/// names the zero point ("output zero point").
pub(crate) fn check_int8_zero_point(what: &'static str, q: QParams) -> Result<(), KernelError> {
    if (-128..=127).contains(&q.zero_point) {
        Ok(())
    } else {
        Err(KernelError::params(what, q.zero_point, allowed::INT8))
    }
}

/// An element-wise unary kernel's output has its input's length.
pub(crate) fn check_lengths(input: &[i8], out: &[i8]) -> Result<(), KernelError> {
    if input.len() == out.len() {
        Ok(())
    } else {
        Err(KernelError::size("output", input.len(), out.len()))
    }
}

/// The int8 range a fused activation leaves, as TFLite's
/// `CalculateActivationRangeQuantized` computes it: the activation's real bounds
/// quantized with the output's parameters, intersected with [-128, 127].
pub fn fused_activation_range(
    activation: crate::graph::FusedActivation,
    output: QParams,
) -> (i32, i32) {
    fused_activation_range_within(activation, output, (-128, 127))
}

/// [`fused_activation_range`] for an output type whose codes span `(lo, hi)`: the int16
/// kernels call it with the int16 range, as TFLite's function takes the output type's.
pub fn fused_activation_range_within(
    activation: crate::graph::FusedActivation,
    output: QParams,
    (lo, hi): (i32, i32),
) -> (i32, i32) {
    use crate::graph::FusedActivation as A;
    // Saturating: a tiny output scale puts the quantized bound far outside i32.
    let quantize = |real: f32| {
        output
            .zero_point
            .saturating_add((real / output.scale).round() as i32)
    };
    match activation {
        A::Relu => (lo.max(quantize(0.0)), hi),
        A::Relu6 => (lo.max(quantize(0.0)), hi.min(quantize(6.0))),
        A::ReluN1To1 => (lo.max(quantize(-1.0)), hi.min(quantize(1.0))),
        A::None | A::Tanh | A::SignBit => (lo, hi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::FusedActivation;

    #[test]
    fn activation_ranges_by_hand() {
        // scale 0.05, zero point -100: 0.0 -> -100, 6.0 -> -100 + 120 = 20
        let q = QParams::new(0.05, -100);
        assert_eq!(
            fused_activation_range(FusedActivation::Relu6, q),
            (-100, 20)
        );
        assert_eq!(
            fused_activation_range(FusedActivation::Relu, q),
            (-100, 127)
        );
        // -1 -> -120, 1 -> -80
        assert_eq!(
            fused_activation_range(FusedActivation::ReluN1To1, q),
            (-120, -80)
        );
        // a zero point far below the range clamps at -128
        let q = QParams::new(0.01, -200);
        assert_eq!(
            fused_activation_range(FusedActivation::Relu, q),
            (-128, 127)
        );
    }
}
