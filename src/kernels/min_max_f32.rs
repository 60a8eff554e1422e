//! The minimum and maximum of f32 values: the calibration's pass over every value of every
//! activation, compiled for the widest vectors the CPU has (the dispatch is
//! [`super::simd::widest_build`], shared with the debugger's error sums).

super::simd::widest_build! {
    /// Min and max of `values`, `(inf, -inf)` when empty; NaN in both when any value is
    /// NaN, so a caller's finiteness check sees it.
    pub fn min_max(values: &[f32]) -> (f32, f32) = min_max_body;
}

/// Sixteen lanes of plain comparisons (one `min`/`max` instruction each; a NaN never wins
/// a comparison, so it is tracked on its own).
#[inline(always)]
fn min_max_body(values: &[f32]) -> (f32, f32) {
    const LANES: usize = 16;
    let (mut lo, mut hi) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
    let mut nan = [false; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let x = c[l];
            lo[l] = if x < lo[l] { x } else { lo[l] };
            hi[l] = if x > hi[l] { x } else { hi[l] };
            nan[l] |= x.is_nan();
        }
    }
    for (l, &x) in chunks.remainder().iter().enumerate() {
        lo[l] = if x < lo[l] { x } else { lo[l] };
        hi[l] = if x > hi[l] { x } else { hi[l] };
        nan[l] |= x.is_nan();
    }
    if nan.contains(&true) {
        return (f32::NAN, f32::NAN);
    }
    (
        lo.iter().copied().fold(f32::INFINITY, f32::min),
        hi.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{available, Level};

    fn naive(values: &[f32]) -> (f32, f32) {
        values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            })
    }

    /// Every build (scalar, AVX2, AVX-512) gives the plain fold's min and max, on lengths
    /// around the lane count; a NaN anywhere makes both NaN.
    #[test]
    fn min_max_matches_a_plain_fold() {
        let mut state = 99u64;
        for n in [1usize, 7, 15, 16, 17, 33, 1000] {
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 100.0
                })
                .collect();
            let mut with_nan = values.clone();
            with_nan[n / 2] = f32::NAN;
            for level in available() {
                let got = if level == Level::Scalar {
                    min_max_body(&values)
                } else {
                    min_max(level, &values)
                };
                assert_eq!(got, naive(&values), "n {n}, {level:?}");
                let (lo, hi) = min_max(level, &with_nan);
                assert!(lo.is_nan() && hi.is_nan(), "n {n}, {level:?}");
            }
        }
    }
}
