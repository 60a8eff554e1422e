//! int8 MEAN, SUM and REDUCE_MAX, bit-exact with what LiteRT's optimized
//! `reduce.cc` runs on x86.
//!
//! MEAN takes one of two paths, as in LiteRT:
//! * 4-D input, `keep_dims`, axes exactly {1, 2} (global average pooling):
//!   `optimized_integer_ops::Mean`. Its parameters come from float arithmetic
//!   (`real_scale = in_scale / (H*W * out_scale)`, a rounded float bias for the zero
//!   points); channels are summed in int32 and rescaled. Channels in 16-wide blocks
//!   take the vector rescale, whose final right shift rounds half *up*
//!   (`vrshlq_s32`), the remaining channels the scalar one, which rounds half away
//!   from zero. (LiteRT splits the channels across threads when it has several; the
//!   blocks here are those of a single-threaded interpreter.)
//! * otherwise `reference_ops::QuantizedMeanOrSum`: int32 sums, the
//!   `in_scale / out_scale` multiplier folded with `1 / count` in integer arithmetic.
//!
//! With [`Arithmetic::Xnnpack`], MEAN runs as LiteRT's default XNNPACK delegate runs it
//! (any axes): the int32 sum less `count * in_zero_point`, converted to f32, times
//! `in_scale / out_scale / count` (f32), rounded to nearest even, plus the output zero
//! point. SUM and REDUCE_MAX give the same integers either way (measured).
//!
//! SUM uses `optimized_ops::QuantizedMeanOrSum`, which rescales the int32 sums in
//! float. REDUCE_MAX takes the raw maximum; TFLite requires equal input and output
//! parameters for it.

use super::neon_emulation as neon;
use super::{check_scale, requantize_f32, Arithmetic, QParams};
use crate::kernels::element::QuantizedElement;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::KernelError;

/// The shapes of a reduction: which input axes collapse, and the output layout.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reduction {
    input_shape: Vec<usize>,
    /// Resolved axes, deduplicated, in the order given (as TFLite resolves them).
    axes: Vec<usize>,
    output_shape: Vec<usize>,
    /// Number of input elements reduced into each output element.
    count: usize,
    output_len: usize,
}

impl Reduction {
    fn new(input_shape: &[usize], axes: &[i32], keep_dims: bool) -> Result<Self, KernelError> {
        let rank = input_shape.len() as i64;
        let mut resolved: Vec<usize> = Vec::new();
        if rank > 0 {
            for &a in axes {
                let a = i64::from(a);
                let r = if a < 0 { a + rank } else { a };
                if !(0..rank).contains(&r) {
                    return Err(KernelError::shape(
                        "reduction axis",
                        format!("in [-{rank}, {rank}) for rank {rank}"),
                        a,
                    ));
                }
                if !resolved.contains(&(r as usize)) {
                    resolved.push(r as usize);
                }
            }
        }
        let mut output_shape = Vec::new();
        for (i, &d) in input_shape.iter().enumerate() {
            if !resolved.contains(&i) {
                output_shape.push(d);
            } else if keep_dims {
                output_shape.push(1);
            }
        }
        let checked = |dims: Vec<usize>| {
            dims.into_iter()
                .try_fold(1usize, |acc, d| acc.checked_mul(d))
                .ok_or_else(|| KernelError::overflow("input shape", input_shape))
        };
        checked(input_shape.to_vec())?;
        let count = checked(resolved.iter().map(|&a| input_shape[a]).collect())?;
        let output_len = checked(output_shape.clone())?;
        Ok(Reduction {
            input_shape: input_shape.to_vec(),
            axes: resolved,
            output_shape,
            count,
            output_len,
        })
    }

    fn check_lengths<T, U>(&self, input: &[T], out: &[U]) -> Result<(), KernelError> {
        let in_len: usize = self.input_shape.iter().product();
        if input.len() != in_len {
            return Err(KernelError::size("input", in_len, input.len()));
        }
        if out.len() != self.output_len {
            return Err(KernelError::size("output", self.output_len, out.len()));
        }
        Ok(())
    }

    /// Calls `f(output_index, value)` for every input element, row-major; the
    /// output index runs over the kept axes in order.
    fn for_each<T: QuantizedElement>(&self, input: &[T], mut f: impl FnMut(usize, T)) {
        let rank = self.input_shape.len();
        // Output strides of the input axes: 0 on reduced ones.
        let mut strides = vec![0usize; rank];
        let mut s = 1;
        for i in (0..rank).rev() {
            if !self.axes.contains(&i) {
                strides[i] = s;
                s *= self.input_shape[i];
            }
        }
        let mut idx = vec![0usize; rank];
        let mut o = 0usize;
        for &v in input {
            f(o, v);
            for d in (0..rank).rev() {
                idx[d] += 1;
                o += strides[d];
                if idx[d] < self.input_shape[d] {
                    break;
                }
                o -= strides[d] * idx[d];
                idx[d] = 0;
            }
        }
    }

    /// The int32 sums TFLite accumulates (wrapping, as its unsigned adds do).
    fn sums<T: QuantizedElement>(&self, input: &[T]) -> Vec<i32> {
        let mut axes = self.axes.clone();
        axes.sort_unstable();
        if let (&[batch, h, w, depth], &[1, 2]) = (&self.input_shape[..], &axes[..]) {
            // Over H and W of NHWC (global average pooling, MobileNet's squeeze-excite):
            // whole pixels added into the channels' sums, in order. Wrapping integer sums
            // do not depend on the order, so this equals the element walk below.
            return spatial_sums(input, batch, h * w, depth);
        }
        let mut sums = vec![0i32; self.output_len];
        self.for_each(input, |o, v| sums[o] = sums[o].wrapping_add(v.to_i32()));
        sums
    }
}

/// Per image and channel, the wrapping int32 sum over the `hw` pixels of NHWC `input`
/// (`[batch, hw, depth]`): pixel rows added into a channel-wide accumulator, which
/// vectorises (a strided walk per channel did not).
fn spatial_sums<T: QuantizedElement>(
    input: &[T],
    batch: usize,
    hw: usize,
    depth: usize,
) -> Vec<i32> {
    let mut sums = vec![0i32; batch * depth];
    if depth == 0 {
        return sums;
    }
    for (acc, image) in sums
        .chunks_exact_mut(depth)
        .zip(input.chunks_exact((hw * depth).max(1)))
    {
        for pixel in image.chunks_exact(depth) {
            for (a, &v) in acc.iter_mut().zip(pixel) {
                *a = a.wrapping_add(v.to_i32());
            }
        }
    }
    sums
}

#[derive(Clone, Debug, PartialEq)]
enum MeanPath {
    /// `optimized_integer_ops::Mean` over H and W of an NHWC tensor.
    Spatial {
        multiplier: QuantizedMultiplier,
        bias: i32,
        batch: usize,
        hw: usize,
        depth: usize,
    },
    /// `reference_ops::QuantizedMeanOrSum` with the count folded into the multiplier.
    General {
        multiplier: QuantizedMultiplier,
        in_zero_point: i32,
        out_zero_point: i32,
    },
    /// XNNPACK's mean (module docs).
    Xnnpack {
        scale: f32,
        in_zero_point: i32,
        out_zero_point: i32,
    },
}

/// `reference_ops::QuantizedMeanOrSum`'s parameters: the `input / output` multiplier
/// with `1 / count` folded in.
fn general_mean_path(reduction: &Reduction, input: QParams, output: QParams) -> MeanPath {
    let base = QuantizedMultiplier::from_real(f64::from(input.scale) / f64::from(output.scale));
    let n = reduction.count as i64;
    // Fold 1/n in: shift the multiplier up by floor(log2 n) (capped so the
    // product fits and the final shift stays >= -31), then divide by n.
    let multiplier = if n > 0 {
        let shift = (63 - (n as u64).leading_zeros() as i32)
            .min(32)
            .min(31 + base.shift);
        QuantizedMultiplier {
            multiplier: ((i64::from(base.multiplier) << shift) / n) as i32,
            shift: base.shift - shift,
        }
    } else {
        base
    };
    MeanPath::General {
        multiplier,
        in_zero_point: input.zero_point,
        out_zero_point: output.zero_point,
    }
}

/// Prepared int8 MEAN.
#[derive(Clone, Debug, PartialEq)]
pub struct Mean {
    reduction: Reduction,
    path: MeanPath,
    /// The path [`Mean::with_arithmetic`] switches to for XNNPACK.
    xnnpack: MeanPath,
}

fn check_scales(input: QParams, output: QParams) -> Result<(), KernelError> {
    check_scale("input scale", input)?;
    check_scale("output scale", output)
}

impl Mean {
    pub fn new(
        input_shape: &[usize],
        axes: &[i32],
        keep_dims: bool,
        input: QParams,
        output: QParams,
    ) -> Result<Self, KernelError> {
        check_scales(input, output)?;
        let reduction = Reduction::new(input_shape, axes, keep_dims)?;
        let spatial = keep_dims
            && input_shape.len() == 4
            && (reduction.axes == [1, 2] || reduction.axes == [2, 1]);
        let path = if spatial {
            // optimized_integer_ops::Mean computes its parameters in float.
            let hw = input_shape[1] * input_shape[2];
            let count = hw as f32;
            let mut temp = input.zero_point as f32 * input.scale / output.scale;
            temp = if temp > 0.0 { temp + 0.5 } else { temp - 0.5 };
            let real_scale = input.scale / (count * output.scale);
            MeanPath::Spatial {
                multiplier: QuantizedMultiplier::from_real(f64::from(real_scale)),
                bias: output.zero_point.wrapping_sub(temp as i32),
                batch: input_shape[0],
                hw,
                depth: input_shape[3],
            }
        } else {
            general_mean_path(&reduction, input, output)
        };
        let xnnpack = MeanPath::Xnnpack {
            scale: input.scale / output.scale / reduction.count as f32,
            in_zero_point: input.zero_point,
            out_zero_point: output.zero_point,
        };
        Ok(Mean {
            reduction,
            path,
            xnnpack,
        })
    }

    /// Compute like `arithmetic` (LiteRT's builtin kernels unless told otherwise).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        if arithmetic == Arithmetic::Xnnpack {
            self.path = self.xnnpack.clone();
        }
        self
    }

    /// MEAN of a 16x8 model: LiteRT runs `reference_ops::QuantizedMeanOrSum` for int16
    /// whatever the axes (the optimized spatial mean is int8 / uint8 only), so every int16
    /// MEAN takes the general path. Run it with [`Mean::run_int16`].
    pub fn new_int16(
        input_shape: &[usize],
        axes: &[i32],
        keep_dims: bool,
        input: QParams,
        output: QParams,
    ) -> Result<Self, KernelError> {
        check_scales(input, output)?;
        let reduction = Reduction::new(input_shape, axes, keep_dims)?;
        let path = general_mean_path(&reduction, input, output);
        Ok(Mean {
            reduction,
            xnnpack: path.clone(),
            path,
        })
    }

    /// [`Mean::run`] on int16 codes (a [`Mean::new_int16`] op).
    pub fn run_int16(&self, input: &[i16], out: &mut [i16]) -> Result<(), KernelError> {
        self.reduction.check_lengths(input, out)?;
        if input.is_empty() {
            out.fill(0);
            return Ok(());
        }
        let MeanPath::General {
            multiplier,
            in_zero_point,
            out_zero_point,
        } = &self.path
        else {
            return Err(KernelError::Options {
                what: "MEAN preparation",
                found: "an int8 one".into(),
                allowed: "int16 data needs a MEAN made by Mean::new_int16",
            });
        };
        let n = self.reduction.count as i64;
        for (o, sum) in out.iter_mut().zip(self.reduction.sums(input)) {
            let shifted = (i64::from(sum) - i64::from(*in_zero_point) * n) as i32;
            let v = multiplier.apply(shifted).wrapping_add(*out_zero_point);
            *o = i16::saturate(v);
        }
        Ok(())
    }

    pub fn output_shape(&self) -> &[usize] {
        &self.reduction.output_shape
    }

    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        self.reduction.check_lengths(input, out)?;
        if input.is_empty() {
            // LiteRT fills the output with T's quiet NaN, which is 0 for int8.
            out.fill(0);
            return Ok(());
        }
        match &self.path {
            MeanPath::Spatial {
                multiplier,
                bias,
                batch,
                hw,
                depth,
            } => {
                let (batch, hw, depth) = (*batch, *hw, *depth);
                let blocks = depth / 16 * 16;
                let sums = spatial_sums(input, batch, hw, depth);
                for b in 0..batch {
                    for c in 0..depth {
                        let sum = sums[b * depth + c];
                        let scaled = if c < blocks {
                            neon::multiply_by_quantized_multiplier(
                                sum,
                                multiplier.multiplier,
                                multiplier.shift,
                            )
                        } else {
                            multiplier.apply(sum)
                        };
                        out[b * depth + c] = scaled.wrapping_add(*bias).clamp(-128, 127) as i8;
                    }
                }
            }
            MeanPath::General {
                multiplier,
                in_zero_point,
                out_zero_point,
            } => {
                let n = self.reduction.count as i64;
                for (o, sum) in out.iter_mut().zip(self.reduction.sums(input)) {
                    let shifted = (i64::from(sum) - i64::from(*in_zero_point) * n) as i32;
                    let v = multiplier.apply(shifted).wrapping_add(*out_zero_point);
                    *o = v.clamp(-128, 127) as i8;
                }
            }
            MeanPath::Xnnpack {
                scale,
                in_zero_point,
                out_zero_point,
            } => {
                let n = self.reduction.count as i64;
                for (o, sum) in out.iter_mut().zip(self.reduction.sums(input)) {
                    let centred = (i64::from(sum) - i64::from(*in_zero_point) * n) as i32;
                    *o = requantize_f32(centred, *scale, *out_zero_point, -128, 127) as i8;
                }
            }
        }
        Ok(())
    }
}

/// Prepared int8 SUM (`optimized_ops::QuantizedMeanOrSum` with `compute_sum`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sum {
    reduction: Reduction,
    scale: f32,
    bias: f32,
    out_zero_point: i32,
}

impl Sum {
    pub fn new(
        input_shape: &[usize],
        axes: &[i32],
        keep_dims: bool,
        input: QParams,
        output: QParams,
    ) -> Result<Self, KernelError> {
        check_scales(input, output)?;
        let reduction = Reduction::new(input_shape, axes, keep_dims)?;
        let scale = input.scale / output.scale;
        // `-input_zero_point * scale * num_elements_in_axis`, evaluated left to right
        // in float.
        let bias = (-input.zero_point) as f32 * scale * reduction.count as f32;
        Ok(Sum {
            reduction,
            scale,
            bias,
            out_zero_point: output.zero_point,
        })
    }

    pub fn output_shape(&self) -> &[usize] {
        &self.reduction.output_shape
    }

    pub fn run<T: QuantizedElement>(&self, input: &[T], out: &mut [T]) -> Result<(), KernelError> {
        self.reduction.check_lengths(input, out)?;
        for (o, sum) in out.iter_mut().zip(self.reduction.sums(input)) {
            // Separate multiply and add (LiteRT's x86 build has no FMA contraction
            // here), then round half away from zero; `as` saturates where C's
            // conversion would be undefined.
            let v = (sum as f32 * self.scale + self.bias).round() as i32;
            *o = T::saturate(v.saturating_add(self.out_zero_point));
        }
        Ok(())
    }
}

/// Prepared REDUCE_MAX, int8 or int16 (16x8): the raw maximum (the type's smallest code
/// for an empty reduction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReduceMax {
    reduction: Reduction,
}

impl ReduceMax {
    pub fn new(
        input_shape: &[usize],
        axes: &[i32],
        keep_dims: bool,
        input: QParams,
        output: QParams,
    ) -> Result<Self, KernelError> {
        if input != output {
            // reduce.cc: TF_LITE_ENSURE_EQ on scale and zero point.
            return Err(KernelError::UnequalParams { input, output });
        }
        Ok(ReduceMax {
            reduction: Reduction::new(input_shape, axes, keep_dims)?,
        })
    }

    pub fn output_shape(&self) -> &[usize] {
        &self.reduction.output_shape
    }

    pub fn run<T: QuantizedElement>(&self, input: &[T], out: &mut [T]) -> Result<(), KernelError> {
        self.reduction.check_lengths(input, out)?;
        out.fill(T::saturate(T::MIN));
        self.reduction
            .for_each(input, |o, v| out[o] = out[o].max(v));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_shapes_and_axis_resolution() {
        let q = QParams::new(0.1, 0);
        let m = Mean::new(&[1, 4, 5, 3], &[-3, 2, 1], true, q, q).unwrap();
        assert_eq!(m.output_shape(), &[1, 1, 1, 3]);
        assert!(matches!(m.path, MeanPath::Spatial { .. }));
        let m = Mean::new(&[1, 4, 5, 3], &[3], false, q, q).unwrap();
        assert_eq!(m.output_shape(), &[1, 4, 5]);
        assert!(matches!(m.path, MeanPath::General { .. }));
        // Without keep_dims the spatial kernel is not used.
        let m = Mean::new(&[1, 4, 5, 3], &[1, 2], false, q, q).unwrap();
        assert!(matches!(m.path, MeanPath::General { .. }));
        assert!(Mean::new(&[1, 4], &[2], false, q, q).is_err());
        assert!(Mean::new(&[1, 4], &[-3], false, q, q).is_err());
    }

    #[test]
    fn general_mean_by_hand() {
        // Same scale in and out: multiplier 0.5 * 2^1; count 4 folds in as
        // shift 2: (2^30 << 2) / 4 = 2^30, shift 1 - 2 = -1 -> x * 2^30 * 2 / 2^32 / 2.
        let q = QParams::new(0.25, 3);
        let m = Mean::new(&[2, 4], &[1], false, q, q).unwrap();
        let mut out = [0i8; 2];
        // Row sums 10 and -7: (10 - 12) / 4 = -0.5 -> -1 (half away) + 3 = 2;
        // (-7 - 12) / 4 = -4.75 -> -5 + 3 = -2.
        m.run(&[1, 2, 3, 4, -1, -2, -3, -1], &mut out).unwrap();
        assert_eq!(out, [2, -2]);
    }

    #[test]
    fn spatial_mean_by_hand() {
        // in scale 0.5, zp 0, out scale 0.5, zp 1, 2x2 window: real scale 0.25
        // (2^30, shift -1), bias 1. Channel sums 6 and -6 -> 1.5 and -1.5.
        let m = Mean::new(
            &[1, 2, 2, 2],
            &[1, 2],
            true,
            QParams::new(0.5, 0),
            QParams::new(0.5, 1),
        )
        .unwrap();
        let mut out = [0i8; 2];
        m.run(&[1, -1, 2, -2, 1, -1, 2, -2], &mut out).unwrap();
        // Scalar lanes (fewer than 16 channels) round half away from zero.
        assert_eq!(out, [2 + 1, -2 + 1]);
    }

    #[test]
    fn vector_lanes_round_half_up() {
        // 16 channels: all take the vector rescale; -1.5 rounds up to -1.
        let m = Mean::new(
            &[1, 2, 2, 16],
            &[1, 2],
            true,
            QParams::new(0.5, 0),
            QParams::new(0.5, 0),
        )
        .unwrap();
        let mut input = [0i8; 64];
        for px in 0..4 {
            input[px * 16] = -1;
            input[px * 16 + 1] = 1;
            input[px * 16 + 2] = if px < 2 { -1 } else { -2 }; // sum -6 -> -1.5
        }
        let mut out = [0i8; 16];
        m.run(&input, &mut out).unwrap();
        // sums -4 -> -1, 4 -> 1, -6 -> -1.5 -> -1 (half up; the scalar path gives -2)
        assert_eq!(&out[..3], &[-1, 1, -1]);
    }

    #[test]
    fn sum_and_max_by_hand() {
        let s = Sum::new(
            &[2, 3],
            &[1],
            true,
            QParams::new(0.5, 1),
            QParams::new(1.0, -2),
        )
        .unwrap();
        assert_eq!(s.output_shape(), &[2, 1]);
        let mut out = [0i8; 2];
        // (3+4+5 - 3*1) * 0.5 = 4.5 -> 5 - 2 = 3; (-1+0+1 - 3) * 0.5 = -1.5 -> -2 - 2 = -4
        s.run(&[3, 4, 5, -1, 0, 1], &mut out).unwrap();
        assert_eq!(out, [3, -4]);
        let q = QParams::new(0.5, 1);
        let r = ReduceMax::new(&[2, 3], &[0], false, q, q).unwrap();
        let mut out = [0i8; 3];
        r.run(&[3, -4, 5, -1, 0, 9], &mut out).unwrap();
        assert_eq!(out, [3, 0, 9]);
        assert!(ReduceMax::new(&[2, 3], &[0], false, q, QParams::new(0.5, 0)).is_err());
        assert!(r.run(&[0; 5], &mut out).is_err());
    }
}
