//! Numpy broadcasting of two int8 operands, walked the way LiteRT walks it: TFLite's
//! `ProcessBroadcastShapes` decides between a flat pass, its five-fold loop nest and the
//! generic per-element loop, and that choice decides which elements get vector
//! arithmetic ([`BroadcastPlan`]). The reference kernels (DIV, SQUARED_DIFFERENCE,
//! PRELU) always take the per-element loop ([`Broadcast`]).

use crate::kernels::KernelError;

/// The broadcast output shape of two shapes under numpy rules (aligned at the
/// trailing axis; each pair of extents equal or one of them 1). The float ops use it too
/// (`ops::broadcast_shape`).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, KernelError> {
    let rank = a.len().max(b.len());
    let ext_a = extend(a, rank);
    let ext_b = extend(b, rank);
    ext_a
        .iter()
        .zip(&ext_b)
        .enumerate()
        .map(|(i, (&x, &y))| match (x, y) {
            _ if x == y => Ok(x),
            (1, _) => Ok(y),
            (_, 1) => Ok(x),
            _ => Err(KernelError::shape(
                "second operand shape",
                format!("one that broadcasts with {a:?} (equal or 1 on each axis)"),
                format!("{b:?} (axis {i}: {y} vs {x})"),
            )),
        })
        .collect()
}

pub(super) fn extend(shape: &[usize], rank: usize) -> Vec<usize> {
    let mut v = vec![1; rank - shape.len()];
    v.extend_from_slice(shape);
    v
}

pub(super) fn element_count(shape: &[usize]) -> Result<usize, KernelError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| KernelError::overflow("shape", shape))
}

/// Both operands' lengths match their shapes and the output's the broadcast shape's.
fn check_operand_lengths<T, U>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &[U],
    out_len: usize,
) -> Result<(), KernelError> {
    for (what, len, shape) in [
        ("first input", a.len(), a_shape),
        ("second input", b.len(), b_shape),
    ] {
        let want = element_count(shape)?;
        if len != want {
            return Err(KernelError::size(what, want, len));
        }
    }
    if out.len() != out_len {
        return Err(KernelError::size("output", out_len, out.len()));
    }
    Ok(())
}

/// How TFLite's `ProcessBroadcastShapes` (reference/process_broadcast_shapes.h)
/// classifies a pair of shapes; this decides which loop, and so which mix of vector
/// and scalar arithmetic, LiteRT applies to each element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BroadcastPlan {
    /// Equal shapes once padded to a common rank: one flat pass over `len` elements.
    Elementwise { len: usize },
    /// The five-fold loop nest of `optimized_ops::BinaryBroadcastFiveFold`. The
    /// "fast-broadcasting" operand, the one iterated as `input1` there, has
    /// `y0*y1*y2*y4` elements and the other `y0*y2*y3*y4`; `swapped` says the
    /// fast-broadcasting operand is the op's second input, whose quantization
    /// parameters then play the first input's role.
    FiveFold { swapped: bool, y: [usize; 5] },
    /// Any other broadcast: the per-element reference loop.
    Generic {
        out_shape: Vec<usize>,
        strides_a: Vec<usize>,
        strides_b: Vec<usize>,
    },
}

impl BroadcastPlan {
    pub fn new(a: &[usize], b: &[usize]) -> Result<Self, KernelError> {
        let out_shape = broadcast_shape(a, b)?;
        let rank = out_shape.len();
        let (ea, eb) = (extend(a, rank), extend(b, rank));
        element_count(&ea)?;
        element_count(&eb)?;
        let len = element_count(&out_shape)?;
        if ea == eb {
            return Ok(BroadcastPlan::Elementwise { len });
        }
        // The innermost axis where the extents differ decides which input
        // "broadcasts fast"; the other input is the one walked contiguously.
        let first_fast = (0..rank)
            .rev()
            .find(|&i| ea[i] != eb[i])
            .map(|i| ea[i] == 1)
            .unwrap_or(true);
        let (sa, sb) = if first_fast { (&ea, &eb) } else { (&eb, &ea) };
        let mut y = [1usize; 5];
        let mut i = rank as isize - 1;
        let at = |s: &Vec<usize>, i: isize| s[i as usize];
        // Same consolidation order as TFLite: y4 (equal), y3 (a is 1), y2 (equal),
        // y1 (b is 1), y0 (equal). Products cannot overflow: each is bounded by
        // an operand's element count, checked above.
        while i >= 0 && at(sa, i) == at(sb, i) {
            y[4] *= at(sb, i);
            i -= 1;
        }
        while i >= 0 && at(sa, i) == 1 {
            y[3] *= at(sb, i);
            i -= 1;
        }
        while i >= 0 && at(sa, i) == at(sb, i) {
            y[2] *= at(sa, i);
            i -= 1;
        }
        while i >= 0 && at(sb, i) == 1 {
            y[1] *= at(sa, i);
            i -= 1;
        }
        while i >= 0 && at(sa, i) == at(sb, i) {
            y[0] *= at(sb, i);
            i -= 1;
        }
        if i >= 0 {
            return Ok(BroadcastPlan::Generic {
                strides_a: broadcast_strides(&ea, &out_shape),
                strides_b: broadcast_strides(&eb, &out_shape),
                out_shape,
            });
        }
        Ok(BroadcastPlan::FiveFold {
            swapped: !first_fast,
            y,
        })
    }
}

/// Row-major strides of `shape` seen through `out_shape`, 0 on broadcast axes.
pub(super) fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = if shape[i] == 1 && out_shape[i] != 1 {
            0
        } else {
            s
        };
        s *= shape[i];
    }
    strides
}

/// Calls `f(out_index, a_index, b_index)` for every output element, row-major.
pub(super) fn for_each_broadcast(
    out_shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = out_shape.len();
    let total: usize = out_shape.iter().product();
    let mut idx = vec![0usize; rank];
    let (mut ia, mut ib) = (0usize, 0usize);
    for o in 0..total {
        f(o, ia, ib);
        // Odometer increment, keeping the operand offsets in step.
        for d in (0..rank).rev() {
            idx[d] += 1;
            ia += sa[d];
            ib += sb[d];
            if idx[d] < out_shape[d] {
                break;
            }
            ia -= sa[d] * idx[d];
            ib -= sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/// The five-fold loop nest of TFLite's `BinaryBroadcastFiveFold`: `a` is the
/// fast-broadcasting operand. With `y4 > 1` the innermost call is an elementwise
/// pass over `y4` elements; otherwise a scalar of `a` is broadcast over `y3`.
pub(super) fn five_fold(
    y: [usize; 5],
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
    mut elementwise: impl FnMut(&[i8], &[i8], &mut [i8]),
    mut scalar: impl FnMut(i8, &[i8], &mut [i8]),
) {
    let [y0, y1, y2, y3, y4] = y;
    let (mut pa, mut po, mut b_reset) = (0usize, 0usize, 0usize);
    for _ in 0..y0 {
        let mut pb = b_reset;
        for _ in 0..y1 {
            pb = b_reset;
            for _ in 0..y2 {
                if y4 > 1 {
                    for _ in 0..y3 {
                        elementwise(&a[pa..pa + y4], &b[pb..pb + y4], &mut out[po..po + y4]);
                        pb += y4;
                        po += y4;
                    }
                    pa += y4;
                } else {
                    scalar(a[pa], &b[pb..pb + y3], &mut out[po..po + y3]);
                    pb += y3;
                    po += y3;
                    pa += 1;
                }
            }
        }
        b_reset = pb;
    }
}

/// Checks operand and output lengths against their shapes, returning the plan.
pub(super) fn plan_for<T>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &[T],
) -> Result<BroadcastPlan, KernelError> {
    let plan = BroadcastPlan::new(a_shape, b_shape)?;
    let out_len = element_count(&broadcast_shape(a_shape, b_shape)?)?;
    check_operand_lengths(a, a_shape, b, b_shape, out, out_len)?;
    Ok(plan)
}

/// Runs a binary op through LiteRT's dispatch: flat elementwise, five-fold, or the
/// generic per-element loop (`scalar_op`, reference arithmetic, original operand order).
#[allow(clippy::too_many_arguments)]
pub(super) fn dispatch<P: Copy>(
    plan: &BroadcastPlan,
    params: P,
    switched: P,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
    elementwise: impl Fn(&P, &[i8], &[i8], &mut [i8]),
    scalar_broadcast: impl Fn(&P, i8, &[i8], &mut [i8]),
    scalar_op: impl Fn(&P, i8, i8) -> i8,
) {
    match plan {
        BroadcastPlan::Elementwise { .. } => elementwise(&params, a, b, out),
        BroadcastPlan::FiveFold { swapped, y } => {
            let (p, fa, fb) = if *swapped {
                (switched, b, a)
            } else {
                (params, a, b)
            };
            five_fold(
                *y,
                fa,
                fb,
                out,
                |x, y, o| elementwise(&p, x, y, o),
                |s, y, o| scalar_broadcast(&p, s, y, o),
            );
        }
        BroadcastPlan::Generic {
            out_shape,
            strides_a,
            strides_b,
        } => for_each_broadcast(out_shape, strides_a, strides_b, |o, ia, ib| {
            out[o] = scalar_op(&params, a[ia], b[ib]);
        }),
    }
}

/// Numpy broadcasting of two operands: the output shape and each operand's
/// element strides seen through it (0 on broadcast axes), after checking the
/// slice lengths against the shapes.
pub(crate) struct Broadcast {
    pub(crate) out_shape: Vec<usize>,
    strides_a: Vec<usize>,
    strides_b: Vec<usize>,
}

impl Broadcast {
    /// For operands of any element type (the int16 kernels use it too).
    pub(crate) fn new<T, U>(
        a: &[T],
        a_shape: &[usize],
        b: &[T],
        b_shape: &[usize],
        out: &[U],
    ) -> Result<Self, KernelError> {
        let out_shape = broadcast_shape(a_shape, b_shape)?;
        let out_len = element_count(&out_shape)?;
        check_operand_lengths(a, a_shape, b, b_shape, out, out_len)?;
        let rank = out_shape.len();
        Ok(Broadcast {
            strides_a: broadcast_strides(&extend(a_shape, rank), &out_shape),
            strides_b: broadcast_strides(&extend(b_shape, rank), &out_shape),
            out_shape,
        })
    }

    /// Calls `f(out_index, a_index, b_index)` for every output element, row-major.
    pub(crate) fn for_each(&self, f: impl FnMut(usize, usize, usize)) {
        for_each_broadcast(&self.out_shape, &self.strides_a, &self.strides_b, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_plans_follow_tflite() {
        // Squeeze-excite: the second input broadcasts fast -> swapped, y4 = C.
        assert_eq!(
            BroadcastPlan::new(&[1, 7, 7, 40], &[1, 1, 1, 40]).unwrap(),
            BroadcastPlan::FiveFold {
                swapped: true,
                y: [1, 1, 1, 49, 40]
            }
        );
        // Per-pixel scalar: y4 = 1, the scalar-broadcast loop over C.
        assert_eq!(
            BroadcastPlan::new(&[1, 6, 6, 20], &[1, 6, 6, 1]).unwrap(),
            BroadcastPlan::FiveFold {
                swapped: true,
                y: [1, 1, 36, 20, 1]
            }
        );
        assert_eq!(
            BroadcastPlan::new(&[2, 3], &[2, 3]).unwrap(),
            BroadcastPlan::Elementwise { len: 6 }
        );
        // Lower rank operand is padded with leading 1s.
        assert_eq!(
            BroadcastPlan::new(&[5], &[2, 3, 5]).unwrap(),
            BroadcastPlan::FiveFold {
                swapped: false,
                y: [1, 1, 1, 6, 5]
            }
        );
        assert!(matches!(
            BroadcastPlan::new(&[3, 1, 4, 1], &[1, 5, 1, 6]).unwrap(),
            BroadcastPlan::Generic { .. }
        ));
        assert!(BroadcastPlan::new(&[2, 3], &[3, 2]).is_err());
    }
}
