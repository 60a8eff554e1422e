//! Why an int8 kernel refused to run, as data: which parameter, shape, buffer or value,
//! what it was and what the kernel needs. The op layer wraps it
//! ([`crate::error::OpError::Kernel`]) and the executor adds the op and tensor
//! ([`crate::Error::OpFailed`]), so the text here never repeats them.

use super::int8::QParams;

/// What an int8 kernel refuses. Every variant carries the refused thing's name (`what`)
/// and the values involved; `Display` turns them into one clause of the final message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// A quantization parameter (scale, zero point, a multiplier derived from scales, an
    /// op coefficient such as LEAKY_RELU's alpha) the kernel cannot compute with, as
    /// TFLite's `Prepare` would refuse it or its fixed-point arithmetic cannot hold it.
    #[error("{what} is {value}; it must be {allowed}")]
    Params {
        /// e.g. "output zero point", "first input scale", "MUL output multiplier".
        what: &'static str,
        value: f64,
        /// The range or value accepted, e.g. "an int8 value, -128 to 127".
        allowed: &'static str,
    },

    /// The rescale factor `input scale x filter scale / output scale` (BATCH_MATMUL: lhs
    /// x rhs / output) is not a fixed-point multiplier TFLite can represent.
    #[error(
        "{}rescale factor {factor} (input scale {input_scale} x filter scale \
         {filter_scale} / output scale {output_scale}) is outside the range of TFLite's \
         fixed-point multipliers",
        channel.map(|c| format!("output channel {c}: ")).unwrap_or_default()
    )]
    Rescale {
        /// The output channel, for per-channel quantization.
        channel: Option<usize>,
        input_scale: f32,
        filter_scale: f32,
        output_scale: f32,
        factor: f64,
    },

    /// An op whose int8 kernel passes values through unchanged (pooling, REDUCE_MAX)
    /// needs the same quantization on its input and output (TFLite's `Prepare` checks it).
    #[error(
        "input quantization (scale {}, zero point {}) and output quantization (scale {}, \
         zero point {}) differ; this int8 kernel needs them equal",
        input.scale, input.zero_point, output.scale, output.zero_point
    )]
    UnequalParams { input: QParams, output: QParams },

    /// An op option the int8 kernel does not implement or that contradicts another.
    #[error("{what} {found} is not supported: {allowed}")]
    Options {
        /// e.g. "fused activation".
        what: &'static str,
        found: String,
        allowed: &'static str,
    },

    /// Shapes, ranks, axes or window geometry that do not fit the kernel or each other.
    /// `expected` and `found` are the values rendered (dims, ranks, counts).
    #[error("{what} is {found}, expected {expected}")]
    Shape {
        /// e.g. "reduction axis", "lhs rank", "filter window".
        what: &'static str,
        expected: String,
        found: String,
    },

    /// A buffer whose length is not what its shape or geometry implies.
    #[error("{what} has {found} elements, expected {expected}")]
    Size {
        /// e.g. "input", "output", "bias".
        what: &'static str,
        expected: usize,
        found: usize,
    },

    /// Dimensions whose element count (or furthest index) does not fit in memory's
    /// address range.
    #[error("{what} {dims} has more elements than can be addressed")]
    Overflow { what: &'static str, dims: String },

    /// A value the kernel refuses at run time, where TFLite's kernel fails its invoke.
    #[error("{what} element {index} {problem}")]
    Data {
        /// e.g. "DIV divisor", "RSQRT input".
        what: &'static str,
        index: usize,
        /// e.g. "equals its zero point (division by zero)".
        problem: &'static str,
    },
}

impl KernelError {
    pub(crate) fn params(what: &'static str, value: impl Into<f64>, allowed: &'static str) -> Self {
        KernelError::Params {
            what,
            value: value.into(),
            allowed,
        }
    }

    pub(crate) fn shape(what: &'static str, expected: impl ToString, found: impl ToString) -> Self {
        KernelError::Shape {
            what,
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    pub(crate) fn size(what: &'static str, expected: usize, found: usize) -> Self {
        KernelError::Size {
            what,
            expected,
            found,
        }
    }

    pub(crate) fn overflow(what: &'static str, dims: impl std::fmt::Debug) -> Self {
        KernelError::Overflow {
            what,
            dims: format!("{dims:?}"),
        }
    }
}

/// What `Params::allowed` says for the common checks, worded once.
pub(crate) mod allowed {
    pub const POSITIVE: &str = "a positive finite number";
    pub const INT8: &str = "an int8 value, -128 to 127";
    pub const BELOW_ONE: &str = "a value in (0, 1), as TFLite's Prepare requires";
    pub const ZERO: &str = "0: LiteRT's 16x8 kernels need symmetric int16 activations";
}

/// Each variant from a kernel given the bad input it names (values worked out by hand
/// from the inputs, not read back from the kernels), and never a panic.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{FusedActivation, Padding};
    use crate::kernels::int8::binary::Div;
    use crate::kernels::int8::conv::batch_matmul::BatchMatMulInt8;
    use crate::kernels::int8::conv::{ConvInt8, FullyConnectedInt8};
    use crate::kernels::int8::pool::{Pool2d, PoolKind};

    const NONE: FusedActivation = FusedActivation::None;

    fn q() -> QParams {
        QParams::new(0.1, 0)
    }

    #[test]
    fn a_zero_point_outside_int8_is_params() {
        let err = ConvInt8::new(q(), &[0.1], QParams::new(0.1, 300), NONE, 1).unwrap_err();
        assert_eq!(
            err,
            KernelError::Params {
                what: "output zero point",
                value: 300.0,
                allowed: allowed::INT8
            }
        );
        let err = ConvInt8::new(QParams::new(-0.5, 0), &[0.1], q(), NONE, 1).unwrap_err();
        assert!(
            matches!(err, KernelError::Params { what: "input scale", value, .. } if value == -0.5),
            "{err:?}"
        );
    }

    #[test]
    fn a_rescale_factor_of_2_pow_31_is_rescale_on_its_channel() {
        // Channel 1: 1.0 x 2^31 / 1.0 = 2^31, past the 2^30 limit; channel 0 is fine.
        let one = QParams::new(1.0, 0);
        let err = ConvInt8::new(one, &[0.5, 2f32.powi(31)], one, NONE, 2).unwrap_err();
        assert_eq!(
            err,
            KernelError::Rescale {
                channel: Some(1),
                input_scale: 1.0,
                filter_scale: 2f32.powi(31),
                output_scale: 1.0,
                factor: 2f64.powi(31),
            }
        );
    }

    #[test]
    fn pooling_across_two_scales_is_unequal_params() {
        let (input, output) = (QParams::new(0.1, 0), QParams::new(0.2, 0));
        let err = Pool2d::new(
            PoolKind::Max,
            [1, 2, 2, 1],
            (1, 1),
            (1, 1),
            Padding::Valid,
            NONE,
            input,
            output,
        )
        .unwrap_err();
        assert_eq!(err, KernelError::UnequalParams { input, output });
    }

    #[test]
    fn a_fused_tanh_on_fully_connected_is_options() {
        let err = FullyConnectedInt8::new(q(), &[0.1], q(), FusedActivation::Tanh, 1).unwrap_err();
        assert!(
            matches!(&err, KernelError::Options { what: "fused activation", found, .. } if found == "Tanh"),
            "{err:?}"
        );
    }

    #[test]
    fn mismatched_inner_dimensions_are_shape() {
        // [2, 3] x [4, 5]: the lhs's 3 columns against the rhs's 4 rows.
        let mm = BatchMatMulInt8::new(q(), q(), q(), false, false).unwrap();
        let err = mm.output_shape(&[2, 3], &[4, 5]).unwrap_err();
        assert!(
            matches!(&err, KernelError::Shape { what: "rhs inner dimension", found, .. } if found.starts_with('4')),
            "{err:?}"
        );
        let err = mm.output_shape(&[6], &[6, 1]).unwrap_err();
        assert!(
            matches!(&err, KernelError::Shape { what: "lhs rank", found, .. } if found.starts_with('1')),
            "{err:?}"
        );
    }

    #[test]
    fn an_output_buffer_too_short_is_size() {
        // [a0, a1] / [b]: two outputs, one slot given.
        let div = Div::new(q(), q(), q(), NONE).unwrap();
        let err = div.run(&[1, 2], &[2], &[3], &[1], &mut [0]).unwrap_err();
        assert_eq!(
            err,
            KernelError::Size {
                what: "output",
                expected: 2,
                found: 1
            }
        );
    }

    #[test]
    fn a_shape_past_usize_is_overflow() {
        let mm = BatchMatMulInt8::new(q(), q(), q(), false, false).unwrap();
        let err = mm.output_shape(&[usize::MAX, 2], &[2, 2]).unwrap_err();
        assert!(
            matches!(err, KernelError::Overflow { what: "shape", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_divisor_on_its_zero_point_is_data() {
        // The divisor's zero point is 5: its element 1, 5, is a real 0.
        let div = Div::new(q(), QParams::new(0.1, 5), q(), NONE).unwrap();
        let err = div
            .run(&[1, 2], &[2], &[7, 5], &[2], &mut [0, 0])
            .unwrap_err();
        assert_eq!(
            err,
            KernelError::Data {
                what: "DIV divisor",
                index: 1,
                problem: "equals its zero point (division by zero)"
            }
        );
    }

    #[test]
    fn the_message_names_what_was_refused_with_its_value() {
        let err = KernelError::params("output zero point", 300, allowed::INT8);
        let text = err.to_string();
        assert!(
            text.contains("output zero point") && text.contains("300") && text.contains("-128"),
            "{text}"
        );
    }
}
