//! Direct float depthwise convolution on NHWC data.

use super::window::ConvGeometry;

/// Shape and stepping of one depthwise convolution: the conv-like kernels' one window
/// geometry, [`ConvGeometry`] (`out_c = in_c * depth_multiplier`), by the name the float
/// depthwise kernels have always used.
pub type DepthwiseGeometry = ConvGeometry;

/// `filter` is `[k_h, k_w, out_c]` (TFLite's `[1, kh, kw, out_c]`), `bias` has `out_c`
/// entries or none. Output channel `c * m + j` reads input channel `c`.
pub fn depthwise_conv2d(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    depthwise_conv2d_at(
        crate::kernels::simd::active(),
        g,
        input,
        filter,
        bias,
        None,
        out,
    )
}

/// [`depthwise_conv2d`] at an explicit kernel level (capped to what the CPU has), with
/// an optional fused clamp `(lo, hi)` (RELU, RELU6, RELU_N1_TO_1) applied as each output
/// is stored, which saves the activation its own pass over the tensor. NaN passes
/// through the clamp, as in TFLite's `min(max(x, lo), hi)`.
///
/// With AVX2 or AVX-512 and a depth multiplier of 1, vectors of channels accumulate over
/// the window's taps with FMA (one rounding per step instead of two: a difference far
/// inside the float oracle's tolerance); other multipliers run the scalar body.
pub fn depthwise_conv2d_at(
    level: crate::kernels::simd::Level,
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    out: &mut [f32],
) {
    // SAFETY: `out` is initialised memory of `out.len()` floats.
    let vector = unsafe {
        depthwise_vector(
            level,
            g,
            input,
            filter,
            bias,
            clamp,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    if !vector {
        depthwise_body(g, input, filter, bias, clamp, out)
    }
}

/// [`depthwise_conv2d_at`] into an uninitialised output (no zero fill first: that was a
/// pass over every output of the op). The vector kernels write every element; where they
/// do not apply, the output is zeroed and the scalar body runs.
pub fn depthwise_conv2d_at_uninit(
    level: crate::kernels::simd::Level,
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    out: &mut [std::mem::MaybeUninit<f32>],
) {
    // SAFETY: `out` is `out.len()` writable floats; the vector kernels only write to it.
    let vector = unsafe {
        depthwise_vector(
            level,
            g,
            input,
            filter,
            bias,
            clamp,
            out.as_mut_ptr().cast(),
            out.len(),
        )
    };
    if !vector {
        for o in out.iter_mut() {
            o.write(0.0);
        }
        // SAFETY: every element was just initialised; MaybeUninit<f32> has f32's layout.
        let out =
            unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) };
        depthwise_body(g, input, filter, bias, clamp, out)
    }
}

/// Runs the vector kernel when it applies (writing every one of the geometry's outputs,
/// without reading them) and says whether it did.
///
/// # Safety
/// `out` points to `out_len` floats the caller may write.
#[allow(clippy::too_many_arguments)]
unsafe fn depthwise_vector(
    level: crate::kernels::simd::Level,
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    out: *mut f32,
    out_len: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{supported, Level};
        let level = supported(level);
        if level >= Level::Avx2 && vector_path_fits(g, input, filter, bias, out_len) {
            if level >= Level::Avx512 {
                // SAFETY: `supported` caps the level at what the CPU has, so AVX-512F is
                // present; `vector_path_fits` checked the lengths the kernel reads and
                // writes.
                unsafe { depthwise_avx512(g, input, filter, bias, clamp, out) };
            } else {
                // SAFETY: as above, for AVX2 and FMA.
                unsafe { depthwise_avx2(g, input, filter, bias, clamp, out) };
            }
            return true;
        }
    }
    let _ = (level, g, input, filter, bias, clamp, out, out_len);
    false
}

/// Whether the vector kernel can take `g`: depth multiplier 1, a non-empty window, non-zero
/// steps, and slices at least as long as the geometry says (so its unchecked reads and
/// writes stay inside them).
#[cfg(target_arch = "x86_64")]
fn vector_path_fits(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out_len: usize,
) -> bool {
    let c = g.in_c;
    g.depth_multiplier == 1
        && g.k_h > 0
        && g.k_w > 0
        && g.stride_h > 0
        && g.stride_w > 0
        && g.dilation_h > 0
        && g.dilation_w > 0
        && filter.len() >= g.k_h * g.k_w * c
        && input.len() >= g.batch * g.in_h * g.in_w * c
        && out_len >= g.batch * g.out_h * g.out_w * c
        && (bias.is_empty() || bias.len() == c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_avx2(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    out: *mut f32,
) {
    depthwise_vec::<crate::kernels::vec_f32::Avx2>(g, input, filter, bias, clamp, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn depthwise_avx512(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    out: *mut f32,
) {
    depthwise_vec::<crate::kernels::vec_f32::Avx512>(g, input, filter, bias, clamp, out)
}

/// Offsets (in floats) from one tile's first tap and first pixel to the others.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Steps {
    /// Taps inside the input along each axis.
    n_ky: usize,
    n_kx: usize,
    /// Input: to the next tap row / tap column / output pixel of the tile.
    x_row: usize,
    x_col: usize,
    x_px: usize,
    /// Filter: to the next tap row / tap column.
    w_row: usize,
    w_col: usize,
    /// Output: to the next pixel of the tile.
    o_px: usize,
}

/// What every tile of one call shares.
#[cfg(target_arch = "x86_64")]
struct Shared<S: crate::kernels::vec_f32::F32Vec> {
    bias: Option<*const f32>,
    clamp: Option<(S, S)>,
    /// The channel tail's lanes (`c % LANES` of them), if there is a tail.
    tail: Option<S::Mask>,
}

/// `P` neighbouring output pixels of one row times `V` channel vectors: each filter
/// vector is loaded once per tap and serves the `P` pixels, and the `P * V` independent
/// accumulators keep the FMA units busy instead of waiting on one chain's latency.
/// `TAIL` makes the (single, `V == 1`) vector a masked channel tail.
///
/// # Safety
/// `x` is the input at the tile's first pixel's first tap and `w` the filter there;
/// every offset that `s` and the channel vectors produce lies inside the input, filter,
/// bias and output slices (the caller derives `s` from the taps inside the image).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile<
    S: crate::kernels::vec_f32::F32Vec,
    const P: usize,
    const V: usize,
    const TAIL: bool,
>(
    s: &Steps,
    sh: &Shared<S>,
    x: *const f32,
    w: *const f32,
    bias_at: usize,
    o: *mut f32,
) {
    let l = S::LANES;
    let m = match sh.tail {
        Some(m) => m,
        None => S::mask(l),
    };
    let load = |p: *const f32| if TAIL { S::load_part(p, m) } else { S::load(p) };
    let mut acc = [[S::zero(); V]; P];
    if let Some(b) = sh.bias {
        for v in 0..V {
            let bv = load(b.add(bias_at + v * l));
            for a in acc.iter_mut() {
                a[v] = bv;
            }
        }
    }
    for ky in 0..s.n_ky {
        let (xr, wr) = (x.add(ky * s.x_row), w.add(ky * s.w_row));
        for kx in 0..s.n_kx {
            let (xt, wt) = (xr.add(kx * s.x_col), wr.add(kx * s.w_col));
            for v in 0..V {
                let wv = load(wt.add(v * l));
                for (p, a) in acc.iter_mut().enumerate() {
                    a[v] = S::fma(load(xt.add(p * s.x_px + v * l)), wv, a[v]);
                }
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        for (v, &r) in a.iter().enumerate() {
            let r = match sh.clamp {
                Some((lo, hi)) => r.clamp(lo, hi),
                None => r,
            };
            let dst = o.add(p * s.o_px + v * l);
            if TAIL {
                r.store_part(dst, m)
            } else {
                r.store(dst)
            }
        }
    }
}

/// Every channel of a group of `P` pixels: `P` interior pixels share one set of taps,
/// a single (border) pixel takes four channel vectors at a time for parallelism.
///
/// # Safety
/// As [`tile`], for channels `0..c`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn group<S: crate::kernels::vec_f32::F32Vec, const P: usize>(
    s: &Steps,
    sh: &Shared<S>,
    c: usize,
    x: *const f32,
    w: *const f32,
    o: *mut f32,
) {
    let l = S::LANES;
    let full = c - c % l;
    let mut cb = 0;
    if P == 1 {
        while cb + 4 * l <= full {
            tile::<S, 1, 4, false>(s, sh, x.add(cb), w.add(cb), cb, o.add(cb));
            cb += 4 * l;
        }
    }
    while cb < full {
        tile::<S, P, 1, false>(s, sh, x.add(cb), w.add(cb), cb, o.add(cb));
        cb += l;
    }
    if cb < c {
        tile::<S, P, 1, true>(s, sh, x.add(cb), w.add(cb), cb, o.add(cb));
    }
}

/// The vector kernel for depth multiplier 1.
///
/// When border pixels (some taps in the left/right padding) make up a quarter of a row
/// or more (small maps with wide windows, e.g. 7x7 with 5x5 taps, where they are most of
/// it), the input is first copied with its horizontal padding made explicit zeros: every
/// pixel then takes the grouped interior path, and the copy costs a small fraction of the
/// taps it saves from the single-pixel path. Elsewhere it costs more than it saves.
///
/// # Safety
/// The CPU has `S`'s features, and `vector_path_fits(g, ..)` holds.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn depthwise_vec<S: crate::kernels::vec_f32::F32Vec>(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    out: *mut f32,
) {
    let c = g.in_c;
    if c == 0 {
        return;
    }
    let (x_lo, x_hi) =
        super::window::interior(g.out_w, g.stride_w, g.dilation_w, g.pad_left, g.in_w, g.k_w);
    let border = g.out_w - (x_hi - x_lo);
    if border == 0 || border * 4 < g.out_w {
        return depthwise_rows::<S>(g, input, filter, bias, clamp, out);
    }
    let span = (g.k_w - 1) * g.dilation_w + 1;
    let pad_right = ((g.out_w - 1) * g.stride_w + span).saturating_sub(g.pad_left + g.in_w);
    let width = g.pad_left + g.in_w + pad_right;
    let mut padded = vec![0f32; g.batch * g.in_h * width * c];
    for (dst, src) in padded
        .chunks_exact_mut(width * c)
        .zip(input.chunks_exact(g.in_w * c))
    {
        dst[g.pad_left * c..][..g.in_w * c].copy_from_slice(src);
    }
    let g2 = DepthwiseGeometry {
        in_w: width,
        pad_left: 0,
        ..*g
    };
    // `padded` holds exactly `batch * in_h * width * c` floats, so `g2` fits it.
    depthwise_rows::<S>(&g2, &padded, filter, bias, clamp, out)
}

/// Each output row splits into border pixels (one at a time, with the taps that fall
/// inside the image) and interior pixels (every tap inside, in groups of 8 or 4 that
/// share filter loads).
///
/// # Safety
/// As [`depthwise_vec`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn depthwise_rows<S: crate::kernels::vec_f32::F32Vec>(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    out: *mut f32,
) {
    use super::window::{interior, tap_range};
    let c = g.in_c;
    let sh = Shared::<S> {
        bias: (bias.len() == c).then_some(bias.as_ptr()),
        clamp: clamp.map(|(lo, hi)| (S::splat(lo), S::splat(hi))),
        tail: (!c.is_multiple_of(S::LANES)).then(|| S::mask(c % S::LANES)),
    };
    let (x_lo, x_hi) = interior(g.out_w, g.stride_w, g.dilation_w, g.pad_left, g.in_w, g.k_w);
    let base = Steps {
        n_ky: 0,
        n_kx: g.k_w,
        x_row: g.dilation_h * g.in_w * c,
        x_col: g.dilation_w * c,
        x_px: g.stride_w * c,
        w_row: g.k_w * c,
        w_col: c,
        o_px: c,
    };
    let (ip, fp, op) = (input.as_ptr(), filter.as_ptr(), out);
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            let (ky0, ky1) = tap_range(oy, g.stride_h, g.dilation_h, g.pad_top, g.in_h, g.k_h);
            let row = Steps {
                n_ky: ky1 - ky0,
                ..base
            };
            // Input row of the first tap inside; with no tap inside nothing is read and
            // any in-bounds row does.
            let iy0 = if ky1 > ky0 {
                oy * g.stride_h + ky0 * g.dilation_h - g.pad_top
            } else {
                0
            };
            let x_row0 = (b * g.in_h + iy0) * g.in_w;
            let o_row = op.add((b * g.out_h + oy) * g.out_w * c);
            let mut ox = 0;
            while ox < g.out_w {
                // SAFETY (every tile below): the taps used are those `tap_range` /
                // `interior` found inside the image, so each input offset is a pixel of
                // image `b` and each filter offset a tap of the `[k_h, k_w, c]` filter;
                // channels stay below `c`; pixel `ox + p < out_w` of output row `oy`.
                // A group that would overrun the interior shifts left to end at its
                // end instead, overlapping the previous group: the overlapped pixels are
                // computed twice, identically, which beats single-pixel stragglers.
                let inside = ox >= x_lo && ox < x_hi;
                if inside && x_hi - x_lo >= 8 {
                    let at = ox.min(x_hi - 8);
                    let x = ip.add((x_row0 + at * g.stride_w - g.pad_left) * c);
                    group::<S, 8>(&row, &sh, c, x, fp.add(ky0 * g.k_w * c), o_row.add(at * c));
                    ox = at + 8;
                } else if inside && x_hi - x_lo >= 4 {
                    let at = ox.min(x_hi - 4);
                    let x = ip.add((x_row0 + at * g.stride_w - g.pad_left) * c);
                    group::<S, 4>(&row, &sh, c, x, fp.add(ky0 * g.k_w * c), o_row.add(at * c));
                    ox = at + 4;
                } else {
                    let (kx0, kx1) =
                        tap_range(ox, g.stride_w, g.dilation_w, g.pad_left, g.in_w, g.k_w);
                    let px = Steps {
                        n_kx: kx1 - kx0,
                        ..row
                    };
                    let ix = if kx1 > kx0 {
                        ox * g.stride_w + kx0 * g.dilation_w - g.pad_left
                    } else {
                        0
                    };
                    let x = ip.add((x_row0 + ix) * c);
                    let w = fp.add((ky0 * g.k_w + kx0) * c);
                    group::<S, 1>(&px, &sh, c, x, w, o_row.add(ox * c));
                    ox += 1;
                }
            }
        }
    }
}

#[inline(always)]
fn depthwise_body(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    out: &mut [f32],
) {
    let out_c = g.out_c;
    debug_assert_eq!(input.len(), g.batch * g.in_h * g.in_w * g.in_c);
    debug_assert_eq!(filter.len(), g.k_h * g.k_w * out_c);
    debug_assert_eq!(out.len(), g.batch * g.out_h * g.out_w * out_c);
    for b in 0..g.batch {
        let image = &input[b * g.in_h * g.in_w * g.in_c..][..g.in_h * g.in_w * g.in_c];
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let o = ((b * g.out_h + oy) * g.out_w + ox) * out_c;
                let acc = &mut out[o..o + out_c];
                if bias.len() == out_c {
                    acc.copy_from_slice(bias);
                } else {
                    acc.fill(0.0);
                }
                for ky in 0..g.k_h {
                    // Signed arithmetic: padding makes the first taps fall before row 0.
                    let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
                    if iy < 0 || iy >= g.in_h as isize {
                        continue;
                    }
                    for kx in 0..g.k_w {
                        let ix =
                            (ox * g.stride_w + kx * g.dilation_w) as isize - g.pad_left as isize;
                        if ix < 0 || ix >= g.in_w as isize {
                            continue;
                        }
                        let pixel = (iy as usize * g.in_w + ix as usize) * g.in_c;
                        let in_row = &image[pixel..pixel + g.in_c];
                        let w_row = &filter[(ky * g.k_w + kx) * out_c..][..out_c];
                        if g.depth_multiplier == 1 {
                            for ((a, &x), &w) in acc.iter_mut().zip(in_row).zip(w_row) {
                                *a += x * w;
                            }
                        } else {
                            let m = g.depth_multiplier;
                            for (c, &x) in in_row.iter().enumerate() {
                                for j in 0..m {
                                    acc[c * m + j] += x * w_row[c * m + j];
                                }
                            }
                        }
                    }
                }
                if let Some((lo, hi)) = clamp {
                    for a in acc.iter_mut() {
                        // Not f32::clamp: NaN must pass through, as in TFLite.
                        *a = hi_min(hi, lo_max(lo, *a));
                    }
                }
            }
        }
    }
}

/// `max(lo, x)` that keeps a NaN `x` (TFLite's `std::max(x, lo)`).
#[inline(always)]
fn lo_max(lo: f32, x: f32) -> f32 {
    if x < lo {
        lo
    } else {
        x
    }
}

/// `min(hi, x)` that keeps a NaN `x`.
#[inline(always)]
fn hi_min(hi: f32, x: f32) -> f32 {
    if x > hi {
        hi
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3x3 input, one channel, 2x2 filter of ones, VALID, stride 1: each output is the
    /// sum of a 2x2 window, computed by hand below.
    #[test]
    fn sums_windows_by_hand() {
        let g = DepthwiseGeometry {
            batch: 1,
            in_h: 3,
            in_w: 3,
            in_c: 1,
            depth_multiplier: 1,
            out_c: 1,
            out_h: 2,
            out_w: 2,
            k_h: 2,
            k_w: 2,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        };
        let input = [1., 2., 3., 4., 5., 6., 7., 8., 9.];
        let mut out = [0f32; 4];
        depthwise_conv2d(&g, &input, &[1.; 4], &[0.5], &mut out);
        // 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9, each plus the bias 0.5
        assert_eq!(out, [12.5, 16.5, 24.5, 28.5]);
    }

    /// Depth multiplier 2 with SAME padding on a 1x1 image: only the centre tap reads data.
    #[test]
    fn multiplier_and_padding() {
        let g = DepthwiseGeometry {
            batch: 1,
            in_h: 1,
            in_w: 1,
            in_c: 2,
            depth_multiplier: 2,
            out_c: 4,
            out_h: 1,
            out_w: 1,
            k_h: 3,
            k_w: 3,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 1,
            pad_left: 1,
        };
        let mut filter = vec![100f32; 9 * 4];
        filter[4 * 4..5 * 4].copy_from_slice(&[1., 2., 3., 4.]); // centre tap
        let mut out = [0f32; 4];
        depthwise_conv2d(&g, &[10., 20.], &filter, &[], &mut out);
        assert_eq!(out, [10., 20., 60., 80.]);
    }
}
