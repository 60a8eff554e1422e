//! 16x8 kernels: int16 activations (symmetric, zero point 0), int8 weights and int64
//! biases, bit-exact with LiteRT's builtin kernels (ai-edge-litert 2.3.0 on x86-64, no
//! XNNPACK, which does not run 16x8 ops). Like `kernels::int8`, each kernel is a pure
//! function on slices whose constructor derives TFLite's `Prepare` parameters from
//! [`QParams`]; the API mirrors the int8 kernels' so an int16 executor can call both
//! the same way.
//!
//! LiteRT runs most 16x8 ops with its reference kernels, so unlike int8 there are no
//! vector/scalar rounding splits to reproduce; what differs from int8 is the arithmetic
//! itself: 64-bit accumulators rescaled by TFLite's int64 `MultiplyByQuantizedMultiplier`
//! (a 16-bit multiplier, one rounding: [`QuantizedMultiplier::apply_wide`]) in the
//! convolutions, a 15-bit (not 20-bit) headroom shift in ADD / SUB, and a power-of-two
//! ADD / SUB path with saturating int16 arithmetic. One exception to "reference only":
//! an ADD of two same-shaped inputs runs LiteRT's element-wise loop, in 16-lane blocks
//! whose input rescale rounds once where the reference rounds twice ([`binary`]).
//!
//! What is here, by op (each with LiteRT vectors in `tests/int16_kernels.rs`):
//! CONV_2D / DEPTHWISE_CONV_2D ([`conv`]; CONV_2D's int32 bias runs another LiteRT
//! kernel, see [`Bias16`]), FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL, ADD / SUB /
//! MUL, MAXIMUM / MINIMUM ([`binary::MinMax`], shared with int8), pooling, MEAN, SUM and
//! REDUCE_MAX ([`reduce`], the int8 kernels), LOGISTIC / TANH, RELU / RELU6 and
//! LEAKY_RELU ([`activation`]), RSQRT and GELU (interpolated tables: [`lut`]), SOFTMAX,
//! CONCATENATION, PAD, RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR and the int8 <-> int16
//! QUANTIZE. The pure data-movement ops (RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, SPLIT,
//! SLICE, STRIDED_SLICE, GATHER) need no kernel: LiteRT keeps their quantization and moves
//! codes untouched (checked on its vectors), and the executor's movement code is
//! type-agnostic.
//!
//! Every kernel here is wired into the executor (each op family's `eval_int16`) and into
//! whole-model 16x8 (`quant::int16_plan`); `tests/int16_model.rs` runs models holding them
//! against TensorFlow's 16x8 parameters and LiteRT's values.
//!
//! What LiteRT 2.3.0 refuses in 16x8 (so no kernel here): RELU_N1_TO_1, HARD_SWISH,
//! SQUARED_DIFFERENCE (which TensorFlow's converter writes anyway: the file fails at
//! invoke), DEPTH_TO_SPACE, SPACE_TO_DEPTH, an int32 DEPTHWISE_CONV_2D bias, a CONV_2D
//! without a bias, and PADV2 as the converter writes it (float32 constant value). DIV,
//! SQRT and PRELU run in LiteRT's int16 kernels but the converter never quantizes them to
//! 16x8 (`scripts/kernel_vectors/make_int16_vectors.py` lists the probes).
//!
//! [`QuantizedMultiplier::apply_wide`]: crate::kernels::fixed_point::QuantizedMultiplier::apply_wide

pub mod activation;
pub mod batch_matmul;
pub mod binary;
pub mod conv;
pub mod fully_connected;
pub mod lut;
pub mod movement;
pub mod pool;
pub mod reduce;
pub mod requantize;
pub mod resize;
pub mod softmax;
pub mod transpose_conv;

pub use crate::kernels::int8::QParams;
pub use conv::{Bias16, ConvInt16};
pub use fully_connected::FullyConnectedInt16;

use crate::graph::FusedActivation;
use crate::kernels::error::{allowed, KernelError};
use crate::kernels::int8::fused_activation_range_within;

/// The int16 code range.
pub const INT16_RANGE: (i32, i32) = (i16::MIN as i32, i16::MAX as i32);

/// An int16 activation's quantization: a positive finite scale and zero point 0, which
/// LiteRT's `Prepare` requires of every 16x8 activation tensor. `what` names the tensor
/// ("input", "output").
pub(crate) fn check_symmetric(
    scale_name: &'static str,
    zero_point_name: &'static str,
    q: QParams,
) -> Result<(), KernelError> {
    crate::kernels::int8::check_scale(scale_name, q)?;
    if q.zero_point == 0 {
        Ok(())
    } else {
        Err(KernelError::params(
            zero_point_name,
            q.zero_point,
            allowed::ZERO,
        ))
    }
}

/// The int16 range a fused activation leaves (TFLite's
/// `CalculateActivationRangeQuantized` for an int16 output).
pub fn fused_activation_range(activation: FusedActivation, output: QParams) -> (i32, i32) {
    fused_activation_range_within(activation, output, INT16_RANGE)
}

/// TFLite's `CheckedLog2`: the nearest integer to `log2(x)` (computed in f32 as TFLite
/// does) and whether `x` is within 0.1% (in log2) of that power of two. Decides whether
/// LiteRT takes the power-of-two int16 paths.
pub fn checked_log2(x: f32) -> (i32, bool) {
    let log2 = x.ln() * (1.0f32 / 2.0f32.ln());
    let rounded = log2.round();
    (rounded as i32, (log2 - rounded).abs() < 1e-3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_ranges_use_the_int16_bounds() {
        // scale 2^-10: 6.0 -> 6144, and RELU leaves the int16 top.
        let q = QParams::new(1.0 / 1024.0, 0);
        assert_eq!(fused_activation_range(FusedActivation::Relu6, q), (0, 6144));
        assert_eq!(fused_activation_range(FusedActivation::Relu, q), (0, 32767));
        // scale 1e-5: 6.0 is 600000 steps, past the int16 top.
        let q = QParams::new(1e-5, 0);
        assert_eq!(
            fused_activation_range(FusedActivation::ReluN1To1, q),
            (-32768, 32767)
        );
    }

    #[test]
    fn powers_of_two_within_a_thousandth_of_a_bit() {
        assert_eq!(checked_log2(0.25), (-2, true));
        assert_eq!(checked_log2(1.0 / 4096.0), (-12, true));
        // 2^(-12 + 0.0005) is close enough; 2^(-12 + 0.002) is not.
        assert_eq!(checked_log2(2f32.powf(-11.9995)), (-12, true));
        assert!(!checked_log2(2f32.powf(-11.998)).1);
        assert!(!checked_log2(0.3).1);
    }

    #[test]
    fn a_nonzero_int16_zero_point_is_refused() {
        let err =
            check_symmetric("input scale", "input zero point", QParams::new(0.1, 3)).unwrap_err();
        assert_eq!(
            err,
            KernelError::Params {
                what: "input zero point",
                value: 3.0,
                allowed: allowed::ZERO
            }
        );
    }
}
