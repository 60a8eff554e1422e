//! int8 BATCH_MATMUL with broadcast batch dimensions, bit-exact with LiteRT's builtin
//! kernel on x86 (ai-edge-litert 2.3.0).
//!
//! `out[..., i, j] = sum_k (lhs[..., i, k] - lhs_zp) * (rhs[..., k, j] - rhs_zp)`, where
//! `adj_x` / `adj_y` say that an operand is stored with its last two axes swapped
//! (`[..., K, M]` / `[..., N, K]`), and the batch axes (all but the last two, ranks 2 to
//! 5) broadcast numpy-style.
//!
//! # What LiteRT runs
//!
//! LiteRT's `batch_matmul.cc` registers only the reference kernel (`Register_BATCH_MATMUL`
//! returns `Register_BATCH_MATMUL_REF`, and the 2.3.0 wheel has no optimized BatchMatMul
//! symbol). `Eval` transposes the operands into scratch buffers so the RHS is "column
//! major" (`[..., N, K]`) and the LHS `[..., M, K]`, may fold LHS batches into rows when
//! the RHS has a 1 in front of its matrix, and calls
//! `reference_ops::BatchMatMul<int8_t, int32_t>`: an exact int32 sum (wrapping) of the
//! offset products, then the scalar `MultiplyByQuantizedMultiplier` (double rounding,
//! the right shift rounding ties *away from zero*: [`Rounding::HalfAwayFromZero`]), plus
//! the output zero point, clamped to [-128, 127] (BATCH_MATMUL has no fused activation).
//! None of the reshuffling changes a value, so this module computes the formula above
//! directly. A probe with exact ties (`transpose_conv_matmul_resize/bmm_pow2_ties.npz`) tells the rounding apart:
//! ties up misses 24 of its 84 elements, ties away none.
//!
//! The multiplier is `Prepare`'s `GetQuantizedConvolutionMultipler`: the product
//! `lhs_scale * rhs_scale` taken in f32, then divided by the output scale in f64.

use super::{requantize, Rounding};
use crate::kernels::element::QuantizedElement;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::{check_int8_zero_point, check_scale, QParams};
use crate::kernels::KernelError;

/// Prepared int8 BATCH_MATMUL: what TFLite's `Prepare` derives from the three
/// tensors' quantization and the op's adjoint flags.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMatMulInt8 {
    multiplier: QuantizedMultiplier,
    lhs_offset: i32,
    rhs_offset: i32,
    output_zero_point: i32,
    adj_x: bool,
    adj_y: bool,
}

/// Where one broadcast matrix multiply reads and writes.
struct Plan {
    /// Output shape, rank of the larger operand.
    out_shape: Vec<usize>,
    /// The broadcast batch axes (the output's leading axes).
    batch: Vec<usize>,
    rank: usize,
    m: usize,
    k: usize,
    n: usize,
}

fn product(shape: &[usize]) -> Result<usize, KernelError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| KernelError::overflow("shape", shape))
}

/// Element offsets of every batch matrix of `shape` (rank >= 2, extended to `rank`
/// with leading 1s), walked in the order of the broadcast batch shape `batch`.
fn batch_starts(shape: &[usize], rank: usize, batch: &[usize]) -> Vec<usize> {
    let mut ext = vec![1usize; rank - shape.len()];
    ext.extend_from_slice(shape);
    let matrix = ext[rank - 2] * ext[rank - 1];
    // Row-major strides of the batch axes, 0 where this operand broadcasts.
    let mut strides = vec![0usize; rank - 2];
    let mut s = matrix;
    for i in (0..rank - 2).rev() {
        strides[i] = if ext[i] == 1 { 0 } else { s };
        s *= ext[i];
    }
    let total: usize = batch.iter().product();
    let mut starts = Vec::with_capacity(total);
    let mut index = vec![0usize; rank - 2];
    for _ in 0..total {
        starts.push(index.iter().zip(&strides).map(|(i, s)| i * s).sum());
        // Odometer increment, last axis fastest.
        for axis in (0..rank - 2).rev() {
            index[axis] += 1;
            if index[axis] < batch[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    starts
}

impl BatchMatMulInt8 {
    /// Errors on non-positive or non-finite scales, zero points outside int8, or a
    /// rescale factor of 2^30 or more.
    pub fn new(
        lhs: QParams,
        rhs: QParams,
        output: QParams,
        adj_x: bool,
        adj_y: bool,
    ) -> Result<Self, KernelError> {
        check_scale("lhs scale", lhs)?;
        check_int8_zero_point("lhs zero point", lhs)?;
        check_scale("rhs scale", rhs)?;
        check_int8_zero_point("rhs zero point", rhs)?;
        check_scale("output scale", output)?;
        check_int8_zero_point("output zero point", output)?;
        Ok(BatchMatMulInt8 {
            multiplier: multiplier(lhs, rhs, output, 30)?,
            lhs_offset: -lhs.zero_point,
            rhs_offset: -rhs.zero_point,
            output_zero_point: output.zero_point,
            adj_x,
            adj_y,
        })
    }

    /// The fixed-point multiplier, as TFLite stores it.
    pub fn multiplier(&self) -> QuantizedMultiplier {
        self.multiplier
    }

    /// The output shape for operands of these shapes, as TFLite's `Prepare` computes
    /// it: broadcast batch axes, then `[M, N]`. Errors where TFLite's `Prepare` would:
    /// ranks outside 2..=5, batch axes that do not broadcast, or mismatched inner
    /// dimensions.
    pub fn output_shape(
        &self,
        lhs_shape: &[usize],
        rhs_shape: &[usize],
    ) -> Result<Vec<usize>, KernelError> {
        Layout::new(self.adj_x, self.adj_y)
            .plan(lhs_shape, rhs_shape)
            .map(|p| p.out_shape)
    }

    /// Runs the op on operands in their stored layouts (`adj_*` as prepared); `out`
    /// holds [`Self::output_shape`] elements. Errors (leaving `out` untouched) when the
    /// shapes do not fit each other or the slices.
    pub fn run(
        &self,
        lhs_shape: &[usize],
        lhs: &[i8],
        rhs_shape: &[usize],
        rhs: &[i8],
        out: &mut [i8],
    ) -> Result<(), KernelError> {
        let layout = Layout::new(self.adj_x, self.adj_y);
        let offsets = (self.lhs_offset, self.rhs_offset);
        layout.run(lhs_shape, lhs, rhs_shape, rhs, offsets, out, |acc| {
            // The int32 sum wraps like TFLite's; the exact int64 one truncated is that.
            let v = requantize(acc as i32, self.multiplier, Rounding::HalfAwayFromZero)
                .saturating_add(self.output_zero_point);
            v.clamp(-128, 127) as i8
        })
    }
}

/// `Prepare`'s multiplier (`GetQuantizedConvolutionMultipler`: the scale product in
/// f32, the division in f64); errors on a shift past `max_shift` (30 for int8's 32-bit
/// rescale, 7 for int16's int64 one).
pub(crate) fn multiplier(
    lhs: QParams,
    rhs: QParams,
    output: QParams,
    max_shift: i32,
) -> Result<QuantizedMultiplier, KernelError> {
    let real = f64::from(lhs.scale * rhs.scale) / f64::from(output.scale);
    let multiplier = QuantizedMultiplier::from_real(real);
    if !real.is_finite() || multiplier.shift > max_shift {
        // The lhs plays the input's part, the rhs the filter's.
        return Err(KernelError::Rescale {
            channel: None,
            input_scale: lhs.scale,
            filter_scale: rhs.scale,
            output_scale: output.scale,
            factor: real,
        });
    }
    Ok(multiplier)
}

/// The operands' storage layouts (`adj_x` / `adj_y`) and the matrix walk every
/// BATCH_MATMUL shares, whatever its element type (int8 here, int16 in
/// `kernels::int16::batch_matmul`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    adj_x: bool,
    adj_y: bool,
}

impl Layout {
    pub(crate) fn new(adj_x: bool, adj_y: bool) -> Self {
        Layout { adj_x, adj_y }
    }

    fn plan(&self, lhs_shape: &[usize], rhs_shape: &[usize]) -> Result<Plan, KernelError> {
        for (what, s) in [("lhs rank", lhs_shape), ("rhs rank", rhs_shape)] {
            if !(2..=5).contains(&s.len()) {
                return Err(KernelError::shape(
                    what,
                    "2 to 5 (BATCH_MATMUL's ranks)",
                    format!("{} (shape {s:?})", s.len()),
                ));
            }
            product(s)?;
        }
        let rank = lhs_shape.len().max(rhs_shape.len());
        let ext = |s: &[usize]| {
            let mut e = vec![1usize; rank - s.len()];
            e.extend_from_slice(s);
            e
        };
        let (l, r) = (ext(lhs_shape), ext(rhs_shape));
        let mut batch = Vec::with_capacity(rank - 2);
        for i in 0..rank - 2 {
            batch.push(match (l[i], r[i]) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => {
                    return Err(KernelError::shape(
                        "batch axes of lhs and rhs",
                        "equal or 1 on each axis (broadcastable)",
                        format!("{lhs_shape:?} and {rhs_shape:?}"),
                    ))
                }
            });
        }
        let (m, k_lhs) = if self.adj_x {
            (l[rank - 1], l[rank - 2])
        } else {
            (l[rank - 2], l[rank - 1])
        };
        let (k_rhs, n) = if self.adj_y {
            (r[rank - 1], r[rank - 2])
        } else {
            (r[rank - 2], r[rank - 1])
        };
        if k_lhs != k_rhs {
            return Err(KernelError::shape(
                "rhs inner dimension",
                format!(
                    "the lhs's, {k_lhs} (lhs {lhs_shape:?}, adj_x {})",
                    self.adj_x
                ),
                format!("{k_rhs} (rhs {rhs_shape:?}, adj_y {})", self.adj_y),
            ));
        }
        let mut out_shape = batch.clone();
        out_shape.extend([m, n]);
        product(&out_shape)?;
        Ok(Plan {
            out_shape,
            batch,
            rank,
            m,
            k: k_lhs,
            n,
        })
    }

    /// The output shape (see [`BatchMatMulInt8::output_shape`]).
    pub(crate) fn output_shape(
        &self,
        lhs_shape: &[usize],
        rhs_shape: &[usize],
    ) -> Result<Vec<usize>, KernelError> {
        self.plan(lhs_shape, rhs_shape).map(|p| p.out_shape)
    }

    /// Every output element: `emit` of the exact (int64) sum of
    /// `(lhs + lhs_offset) * (rhs + rhs_offset)` over the inner axis. Checks the shapes
    /// and slices first, leaving `out` untouched on error.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run<T: QuantizedElement>(
        &self,
        lhs_shape: &[usize],
        lhs: &[T],
        rhs_shape: &[usize],
        rhs: &[T],
        (lhs_offset, rhs_offset): (i32, i32),
        out: &mut [T],
        emit: impl Fn(i64) -> T,
    ) -> Result<(), KernelError> {
        let p = self.plan(lhs_shape, rhs_shape)?;
        for (what, got, want) in [
            ("lhs", lhs.len(), product(lhs_shape)?),
            ("rhs", rhs.len(), product(rhs_shape)?),
            ("output", out.len(), product(&p.out_shape)?),
        ] {
            if got != want {
                return Err(KernelError::size(what, want, got));
            }
        }
        let (m, k, n) = (p.m, p.k, p.n);
        if m == 0 || n == 0 {
            return Ok(());
        }
        // Now the batch count is at most `out.len()`, so listing the batches is cheap.
        let lhs_starts = batch_starts(lhs_shape, p.rank, &p.batch);
        let rhs_starts = batch_starts(rhs_shape, p.rank, &p.batch);
        // Element (i, kk) of an LHS matrix and (kk, j) of an RHS matrix in storage.
        let lhs_at = |i: usize, kk: usize| if self.adj_x { kk * m + i } else { i * k + kk };
        let rhs_at = |kk: usize, j: usize| if self.adj_y { j * k + kk } else { kk * n + j };
        let mut lhs_row = vec![0i64; k];
        let mut rhs_col = vec![0i64; k];
        for ((&ls, &rs), dst) in lhs_starts
            .iter()
            .zip(&rhs_starts)
            .zip(out.chunks_exact_mut(m * n))
        {
            let (a, b) = (&lhs[ls..], &rhs[rs..]);
            for j in 0..n {
                for (kk, v) in rhs_col.iter_mut().enumerate() {
                    *v = i64::from(b[rhs_at(kk, j)].to_i32() + rhs_offset);
                }
                for i in 0..m {
                    for (kk, v) in lhs_row.iter_mut().enumerate() {
                        *v = i64::from(a[lhs_at(i, kk)].to_i32() + lhs_offset);
                    }
                    let acc = lhs_row
                        .iter()
                        .zip(&rhs_col)
                        .fold(0i64, |s, (&x, &y)| s.wrapping_add(x * y));
                    dst[i * n + j] = emit(acc);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(adj_x: bool, adj_y: bool) -> BatchMatMulInt8 {
        let q = QParams::new(1.0, 0);
        BatchMatMulInt8::new(q, q, q, adj_x, adj_y).unwrap()
    }

    /// [[1, 2], [3, 4]] x [[5, 6], [7, 8]] = [[19, 22], [43, 50]], in every storage
    /// layout the adjoint flags allow.
    #[test]
    fn plain_and_adjoint_layouts() {
        let (a, at) = ([1i8, 2, 3, 4], [1i8, 3, 2, 4]);
        let (b, bt) = ([5i8, 6, 7, 8], [5i8, 7, 6, 8]);
        let want = [19i8, 22, 43, 50];
        for (adj_x, adj_y, lhs, rhs) in [
            (false, false, a, b),
            (true, false, at, b),
            (false, true, a, bt),
            (true, true, at, bt),
        ] {
            let op = unit(adj_x, adj_y);
            let mut out = [0i8; 4];
            op.run(&[2, 2], &lhs, &[2, 2], &rhs, &mut out).unwrap();
            assert_eq!(out, want, "adj_x {adj_x} adj_y {adj_y}");
        }
    }

    /// Zero points, the multiplier and ties: lhs scale 0.5 zp 1, rhs scale 0.5 zp -2,
    /// output scale 1 zp 3: factor 0.25.
    #[test]
    fn requantization_by_hand() {
        let op = BatchMatMulInt8::new(
            QParams::new(0.5, 1),
            QParams::new(0.5, -2),
            QParams::new(1.0, 3),
            false,
            false,
        )
        .unwrap();
        assert_eq!(
            op.multiplier(),
            QuantizedMultiplier {
                multiplier: 1 << 30,
                shift: -1
            }
        );
        // lhs 1x2 (x - 1) = (2, -1); rhs 2x3 (x + 2) = [[1, 2, -3], [3, -4, 5]].
        // acc = (2 - 3, 4 + 4, -6 - 5) = (-1, 8, -11) -> * 0.25 = -0.25, 2, -2.75.
        // Double rounding: the high multiply halves first (-0.5 -> 0 (up), 4, -5.5 -> -5),
        // then the right shift by 1 rounds ties away from zero: 0, 2, -2.5 -> -3.
        let mut out = [0i8; 3];
        op.run(&[1, 2], &[3, 0], &[2, 3], &[-1, 0, -5, 1, -6, 3], &mut out)
            .unwrap();
        assert_eq!(out, [3, 5, 0]);
        // Clamped at both ends of int8.
        let big = BatchMatMulInt8::new(
            QParams::new(1.0, 0),
            QParams::new(1.0, 0),
            QParams::new(1.0, 0),
            false,
            false,
        )
        .unwrap();
        let mut out = [0i8; 2];
        big.run(&[1, 1], &[100], &[1, 2], &[100, -100], &mut out)
            .unwrap();
        assert_eq!(out, [127, -128]);
    }

    /// Batch broadcasting: lhs [2, 1, 1, 1] x rhs [3, 1, 1] -> [2, 3, 1, 1], out[a][b]
    /// = lhs[a] * rhs[b].
    #[test]
    fn batches_broadcast() {
        let op = unit(false, false);
        assert_eq!(
            op.output_shape(&[2, 1, 1, 1], &[3, 1, 1]).unwrap(),
            vec![2, 3, 1, 1]
        );
        let mut out = [0i8; 6];
        op.run(&[2, 1, 1, 1], &[2, 3], &[3, 1, 1], &[1, 5, 7], &mut out)
            .unwrap();
        assert_eq!(out, [2, 10, 14, 3, 15, 21]);
        // A rank-2 rhs is shared by every lhs batch.
        let mut out = [0i8; 4];
        op.run(&[2, 1, 2], &[1, 2, 3, 4], &[2, 2], &[1, 0, 0, 1], &mut out)
            .unwrap();
        assert_eq!(out, [1, 2, 3, 4]);
    }

    /// The multiplier takes the scale product in f32 first, like TFLite's
    /// `GetQuantizedConvolutionMultipler`: f32(0.1 * 0.3) / 0.7 -> (1472560299, -4).
    #[test]
    fn multiplier_takes_the_float_product() {
        let op = BatchMatMulInt8::new(
            QParams::new(0.1, 0),
            QParams::new(0.3, 0),
            QParams::new(0.7, 0),
            false,
            false,
        )
        .unwrap();
        assert_eq!(
            op.multiplier(),
            QuantizedMultiplier {
                multiplier: 1_472_560_299,
                shift: -4
            }
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let q = QParams::new(1.0, 0);
        assert!(BatchMatMulInt8::new(QParams::new(0.0, 0), q, q, false, false).is_err());
        assert!(BatchMatMulInt8::new(q, QParams::new(1.0, 128), q, false, false).is_err());
        assert!(BatchMatMulInt8::new(q, q, QParams::new(f32::NAN, 0), false, false).is_err());
        assert!(BatchMatMulInt8::new(
            QParams::new(1e20, 0),
            QParams::new(1e20, 0),
            QParams::new(1e-20, 0),
            false,
            false
        )
        .is_err());
        let op = unit(false, false);
        let mut out = [0i8; 4];
        assert!(op.run(&[2, 2], &[0; 4], &[2, 2], &[0; 4], &mut out).is_ok());
        // Inner dimensions disagree.
        assert!(op
            .run(&[2, 3], &[0; 6], &[2, 2], &[0; 4], &mut out)
            .is_err());
        // Slices that do not match their shapes.
        assert!(op
            .run(&[2, 2], &[0; 3], &[2, 2], &[0; 4], &mut out)
            .is_err());
        assert!(op
            .run(&[2, 2], &[0; 4], &[2, 2], &[0; 4], &mut out[..3])
            .is_err());
        // Ranks outside 2..=5, batches that do not broadcast, absurd sizes.
        assert!(op.run(&[4], &[0; 4], &[2, 2], &[0; 4], &mut out).is_err());
        assert!(op
            .run(&[1, 1, 1, 1, 2, 2], &[0; 4], &[2, 2], &[0; 4], &mut out)
            .is_err());
        assert!(op
            .run(&[2, 1, 2], &[0; 4], &[3, 2, 1], &[0; 6], &mut [0; 6])
            .is_err());
        assert!(op
            .run(&[usize::MAX, 2, 2], &[0; 4], &[2, 2], &[0; 4], &mut out)
            .is_err());
        // Empty matrices are fine: no outputs, or outputs that are the zero point.
        assert!(op.run(&[0, 2], &[], &[2, 2], &[0; 4], &mut []).is_ok());
        let mut out = [9i8; 4];
        op.run(&[2, 0], &[], &[0, 2], &[], &mut out).unwrap();
        assert_eq!(out, [0; 4]);
        // A huge batch of empty matrices allocates nothing.
        assert!(op
            .run(&[1 << 40, 0, 2], &[], &[2, 2], &[0; 4], &mut [])
            .is_ok());
    }
}
