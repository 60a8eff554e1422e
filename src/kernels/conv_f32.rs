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
    #[cfg(target_arch = "x86_64")]
    if super::simd::active() >= super::simd::Level::Avx2 {
        // SAFETY: the active level guarantees AVX2.
        unsafe { conv2d_avx2(g, input, filter, bias, out) };
        return;
    }
    conv2d_body(g, input, filter, bias, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv2d_avx2(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    // Whole vectors of output channels keep one pixel's accumulators in registers.
    match (g.out_c % 8, g.out_c / 8) {
        (0, 1) => conv2d_fma::<1>(g, input, filter, bias, out),
        (0, 2) => conv2d_fma::<2>(g, input, filter, bias, out),
        (0, 3) => conv2d_fma::<3>(g, input, filter, bias, out),
        (0, 4) => conv2d_fma::<4>(g, input, filter, bias, out),
        (0, 5) => conv2d_fma::<5>(g, input, filter, bias, out),
        (0, 6) => conv2d_fma::<6>(g, input, filter, bias, out),
        (0, 7) => conv2d_fma::<7>(g, input, filter, bias, out),
        (0, 8) => conv2d_fma::<8>(g, input, filter, bias, out),
        _ => conv2d_body(g, input, filter, bias, out),
    }
}

/// [`conv2d_body`] for `out_c == 8 * NV`, accumulating with FMA (one rounding per step
/// instead of two: a difference far inside the float oracle's tolerance).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv2d_fma<const NV: usize>(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let oc = g.out_c;
    debug_assert_eq!(oc, 8 * NV);
    debug_assert_eq!(out.len(), g.batch * g.out_h * g.out_w * oc);
    let mut dst = out.as_mut_ptr();
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let mut acc = [_mm256_setzero_ps(); NV];
                if bias.len() == oc {
                    for (v, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_loadu_ps(bias.as_ptr().add(8 * v));
                    }
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
                        for (&x, w) in px.iter().zip(taps.chunks_exact(oc)) {
                            let xv = _mm256_set1_ps(x);
                            for (v, a) in acc.iter_mut().enumerate() {
                                *a =
                                    _mm256_fmadd_ps(xv, _mm256_loadu_ps(w.as_ptr().add(8 * v)), *a);
                            }
                        }
                    }
                }
                for (v, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(dst.add(8 * v), *a);
                }
                dst = dst.add(oc);
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
