//! int8 kernels with TFLite's integer arithmetic, bit-compatible with LiteRT's builtin
//! kernels. Each kernel is a pure function on slices; `prepare`-style constructors turn
//! real scales and zero points into the fixed-point parameters exactly as TFLite's
//! `Prepare` step does, so callers only deal in [`QParams`].

pub mod activation;
pub mod batch_matmul;
pub mod conv;
pub mod elementwise;
pub mod math;
pub mod packed;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod softmax;
pub mod transpose_conv;

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

/// The int8 range a fused activation leaves, as TFLite's
/// `CalculateActivationRangeQuantized` computes it: the activation's real bounds
/// quantized with the output's parameters, intersected with [-128, 127].
pub fn fused_activation_range(
    activation: crate::graph::FusedActivation,
    output: QParams,
) -> (i32, i32) {
    use crate::graph::FusedActivation as A;
    // Saturating: a tiny output scale puts the quantized bound far outside i32.
    let quantize = |real: f32| {
        output
            .zero_point
            .saturating_add((real / output.scale).round() as i32)
    };
    let (lo, hi) = (-128, 127);
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
