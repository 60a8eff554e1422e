//! The window geometry of the convolution-like kernels, and which taps of a window fall
//! inside the input.
//!
//! [`ConvGeometry`] is the one geometry of CONV_2D and DEPTHWISE_CONV_2D, int8 and float
//! (`depthwise_f32::DepthwiseGeometry` is its name there). The other window kernels keep
//! their own because their fields differ, not by accident: pooling
//! (`pool_f32::PoolGeometry`, also the argmax pooling's) has one channel count and no
//! dilation; the pointwise convolution (`pointwise_f32::PointwiseGeometry`) has no window
//! at all, only strides; TRANSPOSE_CONV (`int8::conv::transpose_conv::TransposeConvGeometry`)
//! takes TFLite's padding mode, since its padding follows from the output size; resizing
//! (`resize_f32::ResizeGeometry`) has no window.
//!
//! The float convolution kernels split each output row into border pixels (some taps in
//! the padding, handled with their own tap range) and interior pixels (every tap inside,
//! no checks): [`tap_range`] and [`interior`] (x86 only: the other targets run the plain
//! loops).

use super::KernelError;

/// Shape and stepping of one CONV_2D or DEPTHWISE_CONV_2D. NHWC input
/// `[batch, in_h, in_w, in_c]`, output `[batch, out_h, out_w, out_c]`; padding is given
/// as the rows / columns added before the image (TFLite's SAME puts any odd one after,
/// which needs no parameter: taps past the end are skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    /// Depthwise only (`out_c = in_c * depth_multiplier`); must be 1 for CONV_2D.
    pub depth_multiplier: usize,
}

/// Element counts of the three tensors a geometry describes, overflow-checked.
pub(crate) struct Extents {
    pub(crate) input: usize,
    pub(crate) filter: usize,
    pub(crate) output: usize,
}

impl ConvGeometry {
    /// Checks that the geometry is usable and returns the slice lengths it implies.
    /// `depthwise` selects the filter layout (`[1, kh, kw, out_c]` vs
    /// `[out_c, kh, kw, in_c]`).
    pub(crate) fn extents(&self, depthwise: bool) -> Result<Extents, KernelError> {
        let g = self;
        if g.stride_h == 0 || g.stride_w == 0 || g.dilation_h == 0 || g.dilation_w == 0 {
            return Err(KernelError::shape(
                "strides and dilations (h, w, h, w)",
                "each at least 1",
                format!(
                    "({}, {}, {}, {})",
                    g.stride_h, g.stride_w, g.dilation_h, g.dilation_w
                ),
            ));
        }
        if g.k_h == 0 || g.k_w == 0 {
            return Err(KernelError::shape(
                "filter window",
                "at least 1x1",
                format!("{}x{}", g.k_h, g.k_w),
            ));
        }
        let too_big = || KernelError::overflow("convolution geometry", g);
        let product = |dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(too_big)
        };
        if depthwise {
            if g.depth_multiplier == 0 || g.in_c.checked_mul(g.depth_multiplier) != Some(g.out_c) {
                return Err(KernelError::shape(
                    "depthwise output channel count",
                    format!(
                        "input channels {} x depth multiplier {}",
                        g.in_c, g.depth_multiplier
                    ),
                    g.out_c,
                ));
            }
        } else if g.depth_multiplier != 1 {
            return Err(KernelError::shape(
                "CONV_2D depth multiplier",
                1,
                g.depth_multiplier,
            ));
        }
        // The furthest tap a window reaches, as a signed offset from the padded origin:
        // the kernels index with isize, so it must fit.
        for (out, stride, k, dilation, pad) in [
            (g.out_h, g.stride_h, g.k_h, g.dilation_h, g.pad_top),
            (g.out_w, g.stride_w, g.k_w, g.dilation_w, g.pad_left),
        ] {
            let reach = out
                .saturating_sub(1)
                .checked_mul(stride)
                .and_then(|r| r.checked_add((k - 1).checked_mul(dilation)?));
            if reach.is_none_or(|r| r > isize::MAX as usize) || pad > isize::MAX as usize {
                return Err(too_big());
            }
        }
        Ok(Extents {
            input: product(&[g.batch, g.in_h, g.in_w, g.in_c])?,
            filter: if depthwise {
                product(&[g.k_h, g.k_w, g.out_c])?
            } else {
                product(&[g.out_c, g.k_h, g.k_w, g.in_c])?
            },
            output: product(&[g.batch, g.out_h, g.out_w, g.out_c])?,
        })
    }

    /// Input row index of tap `k` of output row `o`, or `None` when it lies in the padding.
    pub(crate) fn source(
        o: usize,
        stride: usize,
        k: usize,
        dilation: usize,
        pad: usize,
        size: usize,
    ) -> Option<usize> {
        // `extents` bounded these products by isize::MAX.
        let pos = (o * stride + k * dilation) as isize - pad as isize;
        (pos >= 0 && (pos as usize) < size).then_some(pos as usize)
    }

    /// Calls `f(input_offset, tap)` for every tap of output pixel `(b, oy, ox)` that lies
    /// inside the image: the offset of the input pixel's first channel and the tap's
    /// index `ky * k_w + kx`. Padded taps are skipped, which is how the integer kernels
    /// make them contribute nothing.
    #[inline(always)]
    pub(crate) fn for_each_tap(
        &self,
        b: usize,
        oy: usize,
        ox: usize,
        mut f: impl FnMut(usize, usize),
    ) {
        let g = self;
        for ky in 0..g.k_h {
            let Some(iy) = Self::source(oy, g.stride_h, ky, g.dilation_h, g.pad_top, g.in_h) else {
                continue;
            };
            for kx in 0..g.k_w {
                let Some(ix) = Self::source(ox, g.stride_w, kx, g.dilation_w, g.pad_left, g.in_w)
                else {
                    continue;
                };
                f(((b * g.in_h + iy) * g.in_w + ix) * g.in_c, ky * g.k_w + kx);
            }
        }
    }

    /// The reference loop of the integer CONV_2D / DEPTHWISE_CONV_2D, whatever the
    /// element and accumulator types (int8 with int32 sums, int16 with int64): for every
    /// output pixel, `acc` (one accumulator per output channel) starts at `bias` (or
    /// zero), `accumulate(acc, b, oy, ox)` adds the window's products, and
    /// `emit(acc, dst)` requantizes the sums into the pixel's outputs. The caller has
    /// checked the slices against [`Self::extents`].
    #[inline(always)]
    pub(crate) fn for_each_output_pixel<A: Copy + Default, O>(
        &self,
        bias: Option<&[A]>,
        out: &mut [O],
        mut accumulate: impl FnMut(&mut [A], usize, usize, usize),
        mut emit: impl FnMut(&[A], &mut [O]),
    ) {
        let g = self;
        let mut acc = vec![A::default(); g.out_c];
        let mut pixels = out.chunks_exact_mut(g.out_c.max(1));
        for b in 0..g.batch {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    match bias {
                        Some(bias) => acc.copy_from_slice(bias),
                        None => acc.fill(A::default()),
                    }
                    accumulate(&mut acc, b, oy, ox);
                    if let Some(dst) = pixels.next() {
                        emit(&acc, dst);
                    }
                }
            }
        }
    }

    /// CONV_2D's window sums for output pixel `(b, oy, ox)`: `dot(pixel, taps)` of every
    /// input pixel inside the window against each output channel's filter taps
    /// (`filter` `[out_c, k_h, k_w, in_c]`), added to `acc` with `add`.
    #[inline(always)]
    pub(crate) fn conv2d_window<X, A: Copy>(
        &self,
        (b, oy, ox): (usize, usize, usize),
        input: &[X],
        filter: &[i8],
        acc: &mut [A],
        dot: impl Fn(&[X], &[i8]) -> A,
        add: impl Fn(A, A) -> A,
    ) {
        let g = self;
        let window = g.k_h * g.k_w * g.in_c;
        self.for_each_tap(b, oy, ox, |px, tap| {
            let px = &input[px..][..g.in_c];
            for (oc, a) in acc.iter_mut().enumerate() {
                let w = &filter[oc * window + tap * g.in_c..][..g.in_c];
                *a = add(*a, dot(px, w));
            }
        });
    }

    /// DEPTHWISE_CONV_2D's window sums for output pixel `(b, oy, ox)`: output channel
    /// `c * depth_multiplier + j` accumulates `mac(acc, x, w)` of input channel `c`
    /// (`filter` `[1, k_h, k_w, out_c]`).
    #[inline(always)]
    pub(crate) fn depthwise_window<X: Copy, A: Copy>(
        &self,
        (b, oy, ox): (usize, usize, usize),
        input: &[X],
        filter: &[i8],
        acc: &mut [A],
        mac: impl Fn(A, X, i8) -> A,
    ) {
        let g = self;
        let m = g.depth_multiplier;
        self.for_each_tap(b, oy, ox, |px, tap| {
            let px = &input[px..][..g.in_c];
            let w = &filter[tap * g.out_c..][..g.out_c];
            for ((&x, a), w) in px
                .iter()
                .zip(acc.chunks_exact_mut(m))
                .zip(w.chunks_exact(m))
            {
                for (a, &w) in a.iter_mut().zip(w) {
                    *a = mac(*a, x, w);
                }
            }
        });
    }
}

/// The taps `k0..k1` of output position `o` that read inside `0..size`, where tap `k`
/// reads `o * stride + k * dilation - pad`. Empty (`k0 == k1`) when none does. Valid taps
/// are contiguous because the position grows with `k`.
#[cfg(target_arch = "x86_64")]
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
#[cfg(target_arch = "x86_64")]
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

#[cfg(all(test, target_arch = "x86_64"))]
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
