//! Float reductions over a contiguous run of axes, the shape MobileNet's squeeze-excite
//! MEAN over height and width takes on NHWC data. The input is viewed as
//! `[outer, reduced, inner]`, so the inner loop runs over contiguous channels.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
    Max,
}

/// Reduces `input`, laid out as `[outer, reduced, inner]`, to `[outer, inner]`.
pub fn reduce_middle(
    reduction: Reduction,
    input: &[f32],
    outer: usize,
    reduced: usize,
    inner: usize,
    out: &mut [f32],
) {
    for o in 0..outer {
        let acc = &mut out[o * inner..(o + 1) * inner];
        let init = if reduction == Reduction::Max {
            f32::NEG_INFINITY
        } else {
            0.0
        };
        acc.fill(init);
        for r in 0..reduced {
            let row = &input[(o * reduced + r) * inner..][..inner];
            match reduction {
                Reduction::Max => acc.iter_mut().zip(row).for_each(|(a, &v)| *a = a.max(v)),
                _ => acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v),
            }
        }
        if reduction == Reduction::Mean && reduced > 0 {
            let n = reduced as f32;
            acc.iter_mut().for_each(|a| *a /= n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [1, 2, 2, 2] NHWC, mean over H and W: each channel's four values averaged by hand.
    #[test]
    fn mean_over_spatial_axes() {
        let input = [1., 10., 2., 20., 3., 30., 4., 40.];
        let mut out = [0f32; 2];
        reduce_middle(Reduction::Mean, &input, 1, 4, 2, &mut out);
        assert_eq!(out, [2.5, 25.0]);
        reduce_middle(Reduction::Max, &input, 1, 4, 2, &mut out);
        assert_eq!(out, [4.0, 40.0]);
        reduce_middle(Reduction::Sum, &input, 1, 4, 2, &mut out);
        assert_eq!(out, [10.0, 100.0]);
    }
}
