//! Direct float depthwise convolution on NHWC data.

/// Shape and stepping of one depthwise convolution.
#[derive(Clone, Copy, Debug)]
pub struct DepthwiseGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub depth_multiplier: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl DepthwiseGeometry {
    pub fn out_c(&self) -> usize {
        self.in_c * self.depth_multiplier
    }
}

/// `filter` is `[k_h, k_w, out_c]` (TFLite's `[1, kh, kw, out_c]`), `bias` has `out_c`
/// entries or none. Output channel `c * m + j` reads input channel `c`.
///
/// With AVX2 and a depth multiplier of 1, 8 channels at a time accumulate in a register
/// over every tap of the window, with FMA (one rounding per step instead of two: a
/// difference far inside the float oracle's tolerance).
pub fn depthwise_conv2d(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::active() >= crate::kernels::simd::Level::Avx2 {
        // SAFETY: the active level guarantees AVX2.
        unsafe { depthwise_avx2(g, input, filter, bias, out) };
        return;
    }
    depthwise_body(g, input, filter, bias, out)
}

/// Windows up to this many taps take the register-accumulating AVX2 path.
#[cfg(target_arch = "x86_64")]
const MAX_TAPS: usize = 64;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_avx2(
    g: &DepthwiseGeometry,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    if g.depth_multiplier != 1 || g.k_h * g.k_w > MAX_TAPS {
        return depthwise_body(g, input, filter, bias, out);
    }
    let c = g.in_c;
    let full = c - c % 8;
    if filter.len() < g.k_h * g.k_w * c
        || input.len() < g.batch * g.in_h * g.in_w * c
        || out.len() < g.batch * g.out_h * g.out_w * c
    {
        return depthwise_body(g, input, filter, bias, out);
    }
    let mut taps = [(0usize, 0usize); MAX_TAPS];
    let mut o = 0;
    for b in 0..g.batch {
        let image = &input[b * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                // The window's taps inside the image: (input offset, filter offset).
                let mut n = 0;
                for ky in 0..g.k_h {
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
                        taps[n] = (
                            (iy as usize * g.in_w + ix as usize) * c,
                            (ky * g.k_w + kx) * c,
                        );
                        n += 1;
                    }
                }
                let dst = &mut out[o..o + c];
                // Every tap offset points at a whole pixel of `c` channels inside
                // `image` / `filter`, and `cb + 8 <= full <= c`: the reads stay inside.
                let (ip, fp) = (image.as_ptr(), filter.as_ptr());
                // Four independent accumulators: one FMA chain would wait on its own
                // latency at every tap.
                let mut cb = 0;
                while cb + 32 <= full {
                    let mut acc = [_mm256_setzero_ps(); 4];
                    if bias.len() == c {
                        for (v, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_loadu_ps(bias.as_ptr().add(cb + 8 * v));
                        }
                    }
                    for &(xi, wi) in &taps[..n] {
                        for (v, a) in acc.iter_mut().enumerate() {
                            let x = _mm256_loadu_ps(ip.add(xi + cb + 8 * v));
                            let w = _mm256_loadu_ps(fp.add(wi + cb + 8 * v));
                            *a = _mm256_fmadd_ps(x, w, *a);
                        }
                    }
                    for (v, a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(dst.as_mut_ptr().add(cb + 8 * v), *a);
                    }
                    cb += 32;
                }
                while cb < full {
                    let mut acc = if bias.len() == c {
                        _mm256_loadu_ps(bias.as_ptr().add(cb))
                    } else {
                        _mm256_setzero_ps()
                    };
                    for &(xi, wi) in &taps[..n] {
                        let x = _mm256_loadu_ps(ip.add(xi + cb));
                        let w = _mm256_loadu_ps(fp.add(wi + cb));
                        acc = _mm256_fmadd_ps(x, w, acc);
                    }
                    _mm256_storeu_ps(dst.as_mut_ptr().add(cb), acc);
                    cb += 8;
                }
                for ch in full..c {
                    let mut a = if bias.len() == c { bias[ch] } else { 0.0 };
                    for &(xi, wi) in &taps[..n] {
                        a += image[xi + ch] * filter[wi + ch];
                    }
                    dst[ch] = a;
                }
                o += c;
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
    out: &mut [f32],
) {
    let out_c = g.out_c();
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
            }
        }
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
