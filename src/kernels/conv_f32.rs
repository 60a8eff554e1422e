//! Direct float CONV_2D on NHWC data, for small convolutions (a network's stem: a 3x3
//! window over 3 channels) where candle's path (permute to NCHW, explicit padding,
//! im2col, GEMM, permute back) spends more time moving data than multiplying.
//!
//! Each output pixel accumulates `sum over taps and input channels of x * w[tap][ic][..]`
//! into its `out_c` outputs, so the inner loop runs over output channels and vectorizes.
//! Padding taps are skipped (TFLite pads with zeros). The summation order differs from
//! candle's GEMM, so results differ from it in the last bits only; the float oracle
//! (tests/float_oracle.rs) bounds the difference against LiteRT.

use super::int8::conv::ConvGeometry;

/// Whether the direct kernel is the better choice: few output channels keep the
/// accumulators of one pixel in registers.
pub fn suits(out_c: usize, k_h: usize, k_w: usize) -> bool {
    out_c <= 64 && !(k_h == 1 && k_w == 1)
}

/// Re-lays out an OHWI filter as `[k_h][k_w][in_c][out_c]` (what the kernel reads).
pub fn filter_hwio(
    filter_ohwi: &[f32],
    out_c: usize,
    k_h: usize,
    k_w: usize,
    in_c: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; filter_ohwi.len()];
    for o in 0..out_c {
        for t in 0..k_h * k_w {
            for i in 0..in_c {
                out[(t * in_c + i) * out_c + o] = filter_ohwi[(o * k_h * k_w + t) * in_c + i];
            }
        }
    }
    out
}

/// `out = bias + conv(input, filter)`; `filter` from [`filter_hwio`], `bias` empty or
/// `out_c` long. Slice lengths must match `g` (checked by the caller).
pub fn conv2d(g: &ConvGeometry, input: &[f32], filter: &[f32], bias: &[f32], out: &mut [f32]) {
    conv2d_at(super::simd::active(), g, input, filter, bias, out)
}

/// [`conv2d`] at an explicit kernel level (capped to what the CPU has).
///
/// With AVX2 or AVX-512 the output channels (up to 64) of several neighbouring output
/// pixels accumulate in registers with FMA (one rounding per step instead of two: a
/// difference far inside the float oracle's tolerance); a channel count that is not a
/// whole number of vectors ends in a masked vector.
pub fn conv2d_at(
    level: super::simd::Level,
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::simd::{supported, Level};
        let level = supported(level);
        if level >= Level::Avx2 && vector_path_fits(g, input, filter, bias, out) {
            let oc = g.out_c;
            let tail = !oc.is_multiple_of(16);
            if level >= Level::Avx512 {
                // SAFETY: `supported` caps the level at what the CPU has, so AVX-512F is
                // present; `vector_path_fits` checked the slice lengths the kernel reads.
                unsafe {
                    match (oc.div_ceil(16), tail) {
                        (1, false) => conv_avx512::<1, 8, false>(g, input, filter, bias, out),
                        (1, true) => conv_avx512::<1, 8, true>(g, input, filter, bias, out),
                        (2, false) => conv_avx512::<2, 8, false>(g, input, filter, bias, out),
                        (2, true) => conv_avx512::<2, 8, true>(g, input, filter, bias, out),
                        (3, false) => conv_avx512::<3, 4, false>(g, input, filter, bias, out),
                        (3, true) => conv_avx512::<3, 4, true>(g, input, filter, bias, out),
                        (4, false) => conv_avx512::<4, 4, false>(g, input, filter, bias, out),
                        _ => conv_avx512::<4, 4, true>(g, input, filter, bias, out),
                    }
                }
            } else {
                let tail = !oc.is_multiple_of(8);
                // SAFETY: as above, for AVX2 and FMA. Sixteen ymm registers: the
                // pixel count shrinks as the channel vectors grow.
                unsafe {
                    match (oc.div_ceil(8), tail) {
                        (1, false) => conv_avx2::<1, 8, false>(g, input, filter, bias, out),
                        (1, true) => conv_avx2::<1, 8, true>(g, input, filter, bias, out),
                        (2, false) => conv_avx2::<2, 4, false>(g, input, filter, bias, out),
                        (2, true) => conv_avx2::<2, 4, true>(g, input, filter, bias, out),
                        (3, false) => conv_avx2::<3, 3, false>(g, input, filter, bias, out),
                        (3, true) => conv_avx2::<3, 3, true>(g, input, filter, bias, out),
                        (4, false) => conv_avx2::<4, 2, false>(g, input, filter, bias, out),
                        (4, true) => conv_avx2::<4, 2, true>(g, input, filter, bias, out),
                        (5, false) => conv_avx2::<5, 2, false>(g, input, filter, bias, out),
                        (5, true) => conv_avx2::<5, 2, true>(g, input, filter, bias, out),
                        (6, false) => conv_avx2::<6, 1, false>(g, input, filter, bias, out),
                        (6, true) => conv_avx2::<6, 1, true>(g, input, filter, bias, out),
                        (7, false) => conv_avx2::<7, 1, false>(g, input, filter, bias, out),
                        (7, true) => conv_avx2::<7, 1, true>(g, input, filter, bias, out),
                        (8, false) => conv_avx2::<8, 1, false>(g, input, filter, bias, out),
                        _ => conv_avx2::<8, 1, true>(g, input, filter, bias, out),
                    }
                }
            }
            return;
        }
    }
    let _ = level;
    conv2d_body(g, input, filter, bias, out)
}

/// Whether the vector kernel can take `g`: 1..=64 output channels, a non-empty window,
/// non-zero steps, and slices at least as long as the geometry says (so its unchecked
/// reads and writes stay inside them).
#[cfg(target_arch = "x86_64")]
fn vector_path_fits(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &[f32],
) -> bool {
    (1..=64).contains(&g.out_c)
        && g.in_c > 0
        && g.k_h > 0
        && g.k_w > 0
        && g.stride_h > 0
        && g.stride_w > 0
        && g.dilation_h > 0
        && g.dilation_w > 0
        && filter.len() >= g.k_h * g.k_w * g.in_c * g.out_c
        && input.len() >= g.batch * g.in_h * g.in_w * g.in_c
        && out.len() >= g.batch * g.out_h * g.out_w * g.out_c
        && (bias.is_empty() || bias.len() == g.out_c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn conv_avx512<const V: usize, const P: usize, const TAIL: bool>(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    conv_vec::<super::vec_f32::Avx512, V, P, TAIL>(g, input, filter, bias, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_avx2<const V: usize, const P: usize, const TAIL: bool>(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    conv_vec::<super::vec_f32::Avx2, V, P, TAIL>(g, input, filter, bias, out)
}

/// Offsets (in floats) from one tile's first tap and first pixel to the others.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Steps {
    /// Taps inside the input along each axis.
    n_ky: usize,
    n_kx: usize,
    in_c: usize,
    /// Input: to the next tap row / tap column / output pixel of the tile.
    x_row: usize,
    x_col: usize,
    x_px: usize,
    /// Filter: to the next tap row / tap column (input channels step by `out_c`).
    w_row: usize,
    w_col: usize,
    out_c: usize,
}

/// `Q` output pixels of one row (every tap of the steps' window inside the input), all
/// `out_c` channels as `V` vectors (the last masked by `m` when `TAIL`): each filter
/// vector is loaded once per tap and input channel and serves the `Q` pixels, and the
/// `Q * V` independent accumulators keep the FMA units busy.
///
/// # Safety
/// `x` is the input at the first pixel's first tap, `w` the filter there; every offset
/// that `s` produces lies inside the input, filter and output slices; `o` is the first
/// pixel's output and `Q` pixels of `out_c` floats follow it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn conv_tile<S: super::vec_f32::F32Vec, const V: usize, const Q: usize, const TAIL: bool>(
    s: &Steps,
    x: *const f32,
    w: *const f32,
    bias: Option<*const f32>,
    m: S::Mask,
    o: *mut f32,
) {
    let l = S::LANES;
    let load = |p: *const f32, v: usize| {
        if TAIL && v == V - 1 {
            S::load_part(p, m)
        } else {
            S::load(p)
        }
    };
    let mut acc = [[S::zero(); V]; Q];
    if let Some(b) = bias {
        for v in 0..V {
            let bv = load(b.add(v * l), v);
            for a in acc.iter_mut() {
                a[v] = bv;
            }
        }
    }
    for ky in 0..s.n_ky {
        for kx in 0..s.n_kx {
            let xt = x.add(ky * s.x_row + kx * s.x_col);
            let wt = w.add(ky * s.w_row + kx * s.w_col);
            for ic in 0..s.in_c {
                let wi = wt.add(ic * s.out_c);
                let mut wv = [S::zero(); V];
                for (v, wv) in wv.iter_mut().enumerate() {
                    *wv = load(wi.add(v * l), v);
                }
                for (p, a) in acc.iter_mut().enumerate() {
                    let xb = S::broadcast(xt.add(p * s.x_px + ic));
                    for v in 0..V {
                        a[v] = S::fma(xb, wv[v], a[v]);
                    }
                }
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        for (v, r) in a.iter().enumerate() {
            let dst = o.add(p * s.out_c + v * l);
            if TAIL && v == V - 1 {
                r.store_part(dst, m)
            } else {
                r.store(dst)
            }
        }
    }
}

/// The vector kernel for `out_c` in `(V - 1) * LANES + 1 ..= V * LANES` (`TAIL` when not a
/// multiple of `LANES`). Each output row splits into interior pixels (every tap inside),
/// in tiles of `P` (the last tile of a row shifted left to overlap its neighbour rather
/// than leave stragglers; overlapped pixels are computed twice, identically), and border
/// pixels, one at a time with the taps inside.
///
/// # Safety
/// The CPU has `S`'s features, and `vector_path_fits(g, ..)` holds.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn conv_vec<S: super::vec_f32::F32Vec, const V: usize, const P: usize, const TAIL: bool>(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    use super::window::{interior, tap_range};
    let (ic, oc) = (g.in_c, g.out_c);
    let m = S::mask(oc - (V - 1) * S::LANES);
    let bias = (bias.len() == oc).then_some(bias.as_ptr());
    let (x_lo, x_hi) = interior(g.out_w, g.stride_w, g.dilation_w, g.pad_left, g.in_w, g.k_w);
    let base = Steps {
        n_ky: 0,
        n_kx: g.k_w,
        in_c: ic,
        x_row: g.dilation_h * g.in_w * ic,
        x_col: g.dilation_w * ic,
        x_px: g.stride_w * ic,
        w_row: g.k_w * ic * oc,
        w_col: ic * oc,
        out_c: oc,
    };
    let (ip, fp, op) = (input.as_ptr(), filter.as_ptr(), out.as_mut_ptr());
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
            let w_row0 = fp.add(ky0 * base.w_row);
            let o_row = op.add((b * g.out_h + oy) * g.out_w * oc);
            let mut ox = 0;
            while ox < g.out_w {
                // SAFETY (both tiles): the taps used are those `tap_range` / `interior`
                // found inside the image, so each input offset is a pixel of image `b`
                // and each filter offset a tap of the filter; pixels `ox..ox + Q` are
                // below `out_w` (a tile starts at `x_hi - P >= x_lo` at the latest).
                if ox >= x_lo && x_hi - x_lo >= P && ox < x_hi {
                    let at = ox.min(x_hi - P);
                    let x = ip.add((x_row0 + at * g.stride_w - g.pad_left) * ic);
                    conv_tile::<S, V, P, TAIL>(&row, x, w_row0, bias, m, o_row.add(at * oc));
                    ox = at + P;
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
                    let x = ip.add((x_row0 + ix) * ic);
                    let w = w_row0.add(kx0 * base.w_col);
                    conv_tile::<S, V, 1, TAIL>(&px, x, w, bias, m, o_row.add(ox * oc));
                    ox += 1;
                }
            }
        }
    }
}

#[inline(always)]
fn conv2d_body(g: &ConvGeometry, input: &[f32], filter: &[f32], bias: &[f32], out: &mut [f32]) {
    let oc = g.out_c;
    let mut pixels = out.chunks_exact_mut(oc.max(1));
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let Some(acc) = pixels.next() else { return };
                if bias.len() == oc {
                    acc.copy_from_slice(bias);
                } else {
                    acc.fill(0.0);
                }
                for ky in 0..g.k_h {
                    let Some(iy) =
                        ConvGeometry::source(oy, g.stride_h, ky, g.dilation_h, g.pad_top, g.in_h)
                    else {
                        continue;
                    };
                    for kx in 0..g.k_w {
                        let Some(ix) = ConvGeometry::source(
                            ox,
                            g.stride_w,
                            kx,
                            g.dilation_w,
                            g.pad_left,
                            g.in_w,
                        ) else {
                            continue;
                        };
                        let px = &input[((b * g.in_h + iy) * g.in_w + ix) * g.in_c..][..g.in_c];
                        let taps = &filter[(ky * g.k_w + kx) * g.in_c * oc..][..g.in_c * oc];
                        for (&x, w) in px.iter().zip(taps.chunks_exact(oc.max(1))) {
                            for (a, &w) in acc.iter_mut().zip(w) {
                                *a += x * w;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain six-fold loop over the OHWI filter, on a padded, strided,
    /// dilated case with a bias.
    #[test]
    fn matches_naive_convolution() {
        let g = ConvGeometry {
            batch: 2,
            in_h: 7,
            in_w: 6,
            in_c: 3,
            out_h: 4,
            out_w: 3,
            out_c: 5,
            k_h: 3,
            k_w: 2,
            stride_h: 2,
            stride_w: 2,
            dilation_h: 1,
            dilation_w: 2,
            pad_top: 1,
            pad_left: 0,
            depth_multiplier: 1,
        };
        let input: Vec<f32> = (0..2 * 7 * 6 * 3)
            .map(|i| ((i * 7) % 11) as f32 - 5.0)
            .collect();
        let ohwi: Vec<f32> = (0..5 * 3 * 2 * 3)
            .map(|i| ((i * 5) % 7) as f32 * 0.5 - 1.0)
            .collect();
        let bias = [0.5, -1.0, 2.0, 0.0, 0.25];
        let mut got = vec![0f32; 2 * 4 * 3 * 5];
        conv2d(&g, &input, &filter_hwio(&ohwi, 5, 3, 2, 3), &bias, &mut got);
        for b in 0..2 {
            for oy in 0..4 {
                for ox in 0..3 {
                    for o in 0..5 {
                        let mut want = bias[o];
                        for ky in 0..3 {
                            for kx in 0..2 {
                                let iy = (oy * 2 + ky) as isize - 1;
                                let ix = (ox * 2 + kx * 2) as isize;
                                if !(0..7).contains(&iy) || ix >= 6 {
                                    continue;
                                }
                                for i in 0..3 {
                                    let x =
                                        input[((b * 7 + iy as usize) * 6 + ix as usize) * 3 + i];
                                    want += x * ohwi[((o * 3 + ky) * 2 + kx) * 3 + i];
                                }
                            }
                        }
                        let at = ((b * 4 + oy) * 3 + ox) * 5 + o;
                        // Small integers and halves: every sum is exact in f32.
                        assert_eq!(got[at], want, "b {b} y {oy} x {ox} o {o}");
                    }
                }
            }
        }
    }
}
