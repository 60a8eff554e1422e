//! Which taps of a convolution window fall inside the input, along one axis: the float
//! convolution kernels split each output row into border pixels (some taps in the
//! padding, handled with their own tap range) and interior pixels (every tap inside, no
//! checks).

/// The taps `k0..k1` of output position `o` that read inside `0..size`, where tap `k`
/// reads `o * stride + k * dilation - pad`. Empty (`k0 == k1`) when none does. Valid taps
/// are contiguous because the position grows with `k`.
pub(crate) fn tap_range(
    o: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    size: usize,
    k: usize,
) -> (usize, usize) {
    let start = o * stride;
    let k0 = if start >= pad {
        0
    } else {
        (pad - start).div_ceil(dilation)
    };
    let k1 = if start >= size + pad {
        0
    } else {
        (size + pad - start).div_ceil(dilation).min(k)
    };
    if k0 >= k1 {
        (0, 0)
    } else {
        (k0, k1)
    }
}

/// The output positions `lo..hi` (within `0..out`) whose every tap reads inside
/// `0..size`; `k >= 1`.
pub(crate) fn interior(
    out: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    size: usize,
    k: usize,
) -> (usize, usize) {
    let span = (k - 1) * dilation;
    // The last tap must land before `size`: o * stride + span - pad < size.
    let hi = if size + pad <= span {
        0
    } else {
        (size + pad - span).div_ceil(stride).min(out)
    };
    // The first tap must not land before 0: o * stride >= pad.
    let lo = pad.div_ceil(stride).min(hi);
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a tap-by-tap check, over every small case.
    #[test]
    fn ranges_match_brute_force() {
        for size in 1..7 {
            for k in 1..5 {
                for stride in 1..4 {
                    for dilation in 1..4 {
                        for pad in 0..6 {
                            let out = 9;
                            let inside = |o: usize, t: usize| {
                                let p = (o * stride + t * dilation) as isize - pad as isize;
                                p >= 0 && (p as usize) < size
                            };
                            let (lo, hi) = interior(out, stride, dilation, pad, size, k);
                            for o in 0..out {
                                let want: Vec<usize> = (0..k).filter(|&t| inside(o, t)).collect();
                                let (k0, k1) = tap_range(o, stride, dilation, pad, size, k);
                                assert_eq!((k0..k1).collect::<Vec<_>>(), want, "o {o}");
                                assert_eq!(
                                    (lo..hi).contains(&o),
                                    want.len() == k,
                                    "o {o} size {size} k {k} s {stride} d {dilation} p {pad}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
