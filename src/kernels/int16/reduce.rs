//! 16x8 MEAN: LiteRT's `reduce.cc` runs `reference_ops::QuantizedMeanOrSum` for int16
//! inputs whatever the axes: int32 sums, the `input_scale / output_scale` multiplier with
//! `1 / count` folded in, TFLite's double rounding, saturated to int16. That is int8's
//! general MEAN path, so the int8 kernel prepares it: [`Mean::new_int16`], then
//! [`Mean::run_int16`].
//!
//! SUM is int8's too ([`Sum`], generic over the element): int32 sums rescaled in f32
//! (`optimized_ops::QuantizedMeanOrSum`), saturated to int16.
//!
//! REDUCE_MAX compares codes and needs the input's quantization on the output, as in int8:
//! the int8 kernel is generic over the element ([`ReduceMax`]).

pub use crate::kernels::int8::reduce::{Mean, ReduceMax, Sum};
