//! int8 kernels with TFLite's integer arithmetic, bit-compatible with LiteRT's builtin
//! kernels. Each kernel is a pure function on slices; `prepare`-style constructors turn
//! real scales and zero points into the fixed-point parameters exactly as TFLite's
//! `Prepare` step does, so callers only deal in [`QParams`].

pub mod activation;
pub mod conv;
pub mod elementwise;
pub mod pool;
pub mod reduce;
pub mod softmax;

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
