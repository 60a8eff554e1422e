//! int8 AVERAGE_POOL_2D and MAX_POOL_2D on NHWC data, bit-exact with LiteRT's
//! `optimized_integer_ops::AveragePool` / `MaxPool`.
//!
//! Both pool the raw int8 values: TFLite requires (in debug builds only) that input
//! and output share scale and zero point, and the converter guarantees it. Windows
//! are clipped to the image; the average divides the int32 window sum by the number
//! of cells actually covered, rounding half away from zero
//! (`(sum ± count/2) / count` with C's truncating division). The vector and scalar
//! paths of those kernels compute the same values, so no lane emulation is needed.

use super::{fused_activation_range_within, QParams};
use crate::graph::{FusedActivation, Padding};
use crate::kernels::element::QuantizedElement;
use crate::kernels::KernelError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Average,
    Max,
}

/// A prepared int8 2-D pooling op for one input shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool2d {
    kind: PoolKind,
    /// Input [batch, height, width, channels].
    input: [usize; 4],
    out_h: usize,
    out_w: usize,
    filter_h: usize,
    filter_w: usize,
    stride_h: usize,
    stride_w: usize,
    pad_top: usize,
    pad_left: usize,
    /// The fused activation and output quantization, from which each element type's
    /// clamp range follows (int8 here, int16 for the 16x8 kernels).
    activation: FusedActivation,
    output: QParams,
}

/// TFLite's `ComputeOutSize` and `ComputePaddingWithOffset` for one axis: SAME gives
/// `ceil(in / stride)` outputs, VALID `(in - filter) / stride + 1`; the leading pad
/// is half the total, the odd cell goes at the end.
fn axis_geometry(
    padding: Padding,
    size: usize,
    filter: usize,
    stride: usize,
) -> Result<(usize, usize), KernelError> {
    let (size_i, filter_i, stride_i) = (size as i64, filter as i64, stride as i64);
    let out = match padding {
        Padding::Same => (size_i + stride_i - 1) / stride_i,
        Padding::Valid => (size_i + stride_i - filter_i) / stride_i,
    };
    if out < 0 {
        return Err(KernelError::shape(
            "VALID pool window",
            format!("at most the axis size, {size}"),
            filter,
        ));
    }
    let total = ((out - 1) * stride_i + filter_i - size_i).max(0);
    Ok((out as usize, (total / 2) as usize))
}

impl Pool2d {
    /// `input_shape` is NHWC; `filter` and `stride` are (height, width). LiteRT
    /// pools raw values, so only `output` (for the fused activation's range) enters
    /// the arithmetic; `input` is checked against it as TFLite's debug build does.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: PoolKind,
        input_shape: [usize; 4],
        filter: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
        activation: FusedActivation,
        input: QParams,
        output: QParams,
    ) -> Result<Self, KernelError> {
        if filter.0 == 0 || filter.1 == 0 || stride.0 == 0 || stride.1 == 0 {
            return Err(KernelError::shape(
                "pool filter and stride (h, w)",
                "each at least 1",
                format!("{filter:?} and {stride:?}"),
            ));
        }
        if input.zero_point != output.zero_point || (input.scale - output.scale).abs() > 1e-6 {
            return Err(KernelError::UnequalParams { input, output });
        }
        let (out_h, pad_top) = axis_geometry(padding, input_shape[1], filter.0, stride.0)?;
        let (out_w, pad_left) = axis_geometry(padding, input_shape[2], filter.1, stride.1)?;
        input_shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| KernelError::overflow("pool input shape", input_shape))?;
        Ok(Pool2d {
            kind,
            input: input_shape,
            out_h,
            out_w,
            filter_h: filter.0,
            filter_w: filter.1,
            stride_h: stride.0,
            stride_w: stride.1,
            pad_top,
            pad_left,
            activation,
            output,
        })
    }

    /// NHWC output shape.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.input[0], self.out_h, self.out_w, self.input[3]]
    }

    /// The covered input range `[start, end)` along one axis for an output index.
    fn window(out: usize, stride: usize, pad: usize, filter: usize, size: usize) -> (usize, usize) {
        let origin = (out * stride) as i64 - pad as i64;
        let start = origin.max(0);
        let end = (origin + filter as i64).min(size as i64);
        (start as usize, end.max(start) as usize)
    }

    /// Pools int8 codes, or int16 codes of a 16x8 model (LiteRT's int16 pooling is the
    /// same arithmetic; only the clamp range differs).
    pub fn run<T: QuantizedElement>(&self, input: &[T], out: &mut [T]) -> Result<(), KernelError> {
        let [batch, in_h, in_w, depth] = self.input;
        let (act_min, act_max) =
            fused_activation_range_within(self.activation, self.output, (T::MIN, T::MAX));
        let in_len = batch * in_h * in_w * depth;
        let out_len = batch * self.out_h * self.out_w * depth;
        if input.len() != in_len {
            return Err(KernelError::size("input", in_len, input.len()));
        }
        if out.len() != out_len {
            return Err(KernelError::size("output", out_len, out.len()));
        }
        let mut acc = vec![0i32; depth];
        for b in 0..batch {
            for oy in 0..self.out_h {
                let (y0, y1) = Self::window(oy, self.stride_h, self.pad_top, self.filter_h, in_h);
                for ox in 0..self.out_w {
                    let (x0, x1) =
                        Self::window(ox, self.stride_w, self.pad_left, self.filter_w, in_w);
                    let o = ((b * self.out_h + oy) * self.out_w + ox) * depth;
                    let dst = &mut out[o..o + depth];
                    match self.kind {
                        PoolKind::Average => {
                            // int32 sums and count as in TFLite; wrapping (where C
                            // would overflow) only matters for absurd window sizes.
                            let count = ((y1 - y0) * (x1 - x0)) as i32;
                            if count == 0 {
                                // LiteRT's AveragePool returns false: "effective
                                // filter size is 0" fails the invoke.
                                return Err(KernelError::shape(
                                    "average pool window",
                                    "at least one input cell",
                                    format!("none at output row {oy}, column {ox}"),
                                ));
                            }
                            acc.fill(0);
                            for y in y0..y1 {
                                for x in x0..x1 {
                                    let p = ((b * in_h + y) * in_w + x) * depth;
                                    for (a, &v) in acc.iter_mut().zip(&input[p..p + depth]) {
                                        *a = a.wrapping_add(v.to_i32());
                                    }
                                }
                            }
                            for (d, &a) in dst.iter_mut().zip(&acc) {
                                // Round half away from zero: C's division truncates.
                                let half = count / 2;
                                let avg = if a > 0 {
                                    a.wrapping_add(half).wrapping_div(count)
                                } else {
                                    a.wrapping_sub(half).wrapping_div(count)
                                };
                                *d = T::saturate(avg.max(act_min).min(act_max));
                            }
                        }
                        PoolKind::Max => {
                            // The accumulator starts at the activation minimum, so
                            // an empty window yields it (as in LiteRT).
                            dst.fill(T::saturate(act_min));
                            for y in y0..y1 {
                                for x in x0..x1 {
                                    let p = ((b * in_h + y) * in_w + x) * depth;
                                    for (d, &v) in dst.iter_mut().zip(&input[p..p + depth]) {
                                        *d = (*d).max(v);
                                    }
                                }
                            }
                            for d in dst.iter_mut() {
                                *d = T::saturate(d.to_i32().max(act_min).min(act_max));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(kind: PoolKind, shape: [usize; 4], padding: Padding, act: FusedActivation) -> Pool2d {
        let q = QParams::new(0.5, -1);
        Pool2d::new(kind, shape, (2, 2), (2, 2), padding, act, q, q).unwrap()
    }

    #[test]
    fn average_rounds_half_away_from_zero_and_clips_windows() {
        // 3x3 image, 2x2 window, stride 2, SAME: out 2x2, total pad 1 at the end.
        let p = pool(
            PoolKind::Average,
            [1, 3, 3, 1],
            Padding::Same,
            FusedActivation::None,
        );
        assert_eq!(p.output_shape(), [1, 2, 2, 1]);
        let input = [1i8, 2, 3, 4, 5, 6, 7, 8, -9];
        let mut out = [0i8; 4];
        p.run(&input, &mut out).unwrap();
        // (1+2+4+5)/4 = 3; (3+6)/2 = 4.5 -> 5; (7+8)/2 = 7.5 -> 8; -9/1
        assert_eq!(out, [3, 5, 8, -9]);
        let input = [-1i8, -2, 0, 0, 0, 0, 0, 0, 0];
        p.run(&input, &mut out).unwrap();
        // -3/4 = -0.75 -> -1 ((-3 - 2) / 4 truncates to -1)
        assert_eq!(out[0], -1);
    }

    #[test]
    fn max_and_fused_relu() {
        // zero point -1: RELU clamps below at -1 + 0 = -1.
        let p = pool(
            PoolKind::Max,
            [1, 2, 4, 1],
            Padding::Valid,
            FusedActivation::Relu,
        );
        assert_eq!(p.output_shape(), [1, 1, 2, 1]);
        let mut out = [0i8; 2];
        p.run(&[-5, -7, 3, 9, -3, -2, 4, -8], &mut out).unwrap();
        assert_eq!(out, [-1, 9]);
    }

    #[test]
    fn bad_geometry_is_an_error() {
        let q = QParams::new(0.5, 0);
        let act = FusedActivation::None;
        // VALID with a window wider than the image plus a stride: negative size.
        assert!(Pool2d::new(
            PoolKind::Max,
            [1, 1, 1, 1],
            (3, 3),
            (1, 1),
            Padding::Valid,
            act,
            q,
            q
        )
        .is_err());
        assert!(Pool2d::new(
            PoolKind::Max,
            [1, 2, 2, 1],
            (1, 1),
            (0, 1),
            Padding::Same,
            act,
            q,
            q
        )
        .is_err());
        let other = QParams::new(0.25, 0);
        assert!(Pool2d::new(
            PoolKind::Max,
            [1, 2, 2, 1],
            (1, 1),
            (1, 1),
            Padding::Same,
            act,
            q,
            other
        )
        .is_err());
        let p = pool(PoolKind::Average, [1, 3, 3, 1], Padding::Same, act);
        assert!(p.run(&[0i8; 8], &mut [0i8; 4]).is_err());
    }
}
