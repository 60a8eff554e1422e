//! Float CONV_2D with many channels as one matrix product: the input's windows laid out as
//! rows (im2col in NHWC order: for each output pixel, each tap's `in_c` channels one after
//! another, zeros where the window hangs over the padding), times the filter as
//! `[out_c][k_h * k_w * in_c]`, which is its OHWI layout flattened. The product runs
//! through the packed 1x1 kernel ([`PackedPointwise`]), so a 3x3 convolution costs one copy
//! of its input per tap plus a GEMM, with no layout permutes (candle's path turns NHWC into
//! NCHW, pads, runs its own im2col and turns the result back).
//!
//! Every output sums the same products as the direct kernel ([`super::conv_f32`]), in tap
//! then channel order, so the two agree to a few ulps of the sum of magnitudes
//! (tests/float_conv_kernels.rs checks it on random shapes).

use std::mem::MaybeUninit;

use super::pointwise_f32::{PackedPointwise, PointwiseGeometry};
use super::window::ConvGeometry;

/// The length of one im2col row: a window's taps times its input channels.
pub fn patch_len(g: &ConvGeometry) -> usize {
    g.k_h * g.k_w * g.in_c
}

/// Whether im2col plus the packed GEMM is the better path: enough output channels that
/// the GEMM's register tiles fill (fewer go to the direct kernel, which keeps one pixel's
/// outputs in registers).
pub fn suits(out_c: usize, k_h: usize, k_w: usize) -> bool {
    out_c > 64 && !(k_h == 1 && k_w == 1)
}

/// Packs an OHWI filter (and its bias, empty or `out_c` long) for [`conv2d`]; `None` when
/// the sizes disagree.
pub fn pack_filter(
    filter_ohwi: &[f32],
    out_c: usize,
    k_h: usize,
    k_w: usize,
    in_c: usize,
    bias: &[f32],
) -> Option<PackedPointwise> {
    PackedPointwise::new(filter_ohwi, out_c, k_h * k_w * in_c, bias)
}

/// Writes `g`'s input windows as rows of [`patch_len`] floats, one row per output pixel in
/// NHWC order. Panics when the slice lengths do not match `g`.
pub fn im2col(g: &ConvGeometry, input: &[f32], rows: &mut [f32]) {
    assert_eq!(
        rows.len(),
        g.batch * g.out_h * g.out_w * patch_len(g),
        "im2col rows size"
    );
    im2col_from(g, input, 0, rows)
}

/// [`im2col`]'s rows for the output pixels from `first` on (as many as `rows` holds).
fn im2col_from(g: &ConvGeometry, input: &[f32], first: usize, rows: &mut [f32]) {
    let in_c = g.in_c;
    let patch = patch_len(g);
    assert_eq!(
        input.len(),
        g.batch * g.in_h * g.in_w * in_c,
        "im2col input size"
    );
    assert!(
        rows.len().is_multiple_of(patch)
            && first + rows.len() / patch <= g.batch * g.out_h * g.out_w,
        "im2col rows outside the output"
    );
    // A window's row of taps is one contiguous run of the input when it is dense and
    // inside the image: copied at once.
    let dense_taps = g.dilation_w == 1;
    for (n, dst) in rows.chunks_exact_mut(patch).enumerate() {
        let pixel = first + n;
        let (b, oy, ox) = (
            pixel / (g.out_h * g.out_w),
            pixel / g.out_w % g.out_h,
            pixel % g.out_w,
        );
        let image = &input[b * g.in_h * g.in_w * in_c..][..g.in_h * g.in_w * in_c];
        let x0 = (ox * g.stride_w) as isize - g.pad_left as isize;
        for ky in 0..g.k_h {
            let iy = (oy * g.stride_h + ky * g.dilation_h) as isize - g.pad_top as isize;
            let taps = &mut dst[ky * g.k_w * in_c..][..g.k_w * in_c];
            if iy < 0 || iy >= g.in_h as isize {
                taps.fill(0.0);
                continue;
            }
            let line = &image[iy as usize * g.in_w * in_c..][..g.in_w * in_c];
            let last = x0 + ((g.k_w - 1) * g.dilation_w) as isize;
            if dense_taps && x0 >= 0 && last < g.in_w as isize {
                taps.copy_from_slice(&line[x0 as usize * in_c..][..g.k_w * in_c]);
                continue;
            }
            for kx in 0..g.k_w {
                let ix = x0 + (kx * g.dilation_w) as isize;
                let tap = &mut taps[kx * in_c..][..in_c];
                if ix < 0 || ix >= g.in_w as isize {
                    tap.fill(0.0);
                } else {
                    tap.copy_from_slice(&line[ix as usize * in_c..][..in_c]);
                }
            }
        }
    }
}

/// Output pixels per block: each block's im2col rows (at most `BLOCK * patch` floats) stay
/// in cache for its GEMM.
const BLOCK: usize = 64;

/// `out = clamp(bias + conv(input, filter))` with `filter` from [`pack_filter`]; `out`
/// (`batch * out_h * out_w * out_c` long) may start uninitialised and is written whole.
/// Panics when the slice lengths do not match `g` or the packed filter.
///
/// The output pixels are split across the workers when the op runs outside them (see
/// [`crate::threads::parts_for_one_op`]); each block's sums are the same either way.
pub fn conv2d_uninit(
    g: &ConvGeometry,
    input: &[f32],
    filter: &PackedPointwise,
    clamp: Option<(f32, f32)>,
    out: &mut [MaybeUninit<f32>],
) {
    use rayon::prelude::*;
    let patch = patch_len(g);
    assert_eq!(filter.in_c(), patch, "im2col filter size");
    assert_eq!(filter.out_c(), g.out_c, "im2col output channels");
    let pixels = g.batch * g.out_h * g.out_w;
    assert_eq!(out.len(), pixels * g.out_c, "im2col output size");
    // Pixels `first..` into `out`, block by block through one im2col buffer.
    let blocks = |first: usize, out: &mut [MaybeUninit<f32>]| {
        let mut rows = Vec::new();
        for (k, out) in out.chunks_mut(BLOCK * g.out_c).enumerate() {
            let n = out.len() / g.out_c;
            rows.resize(n * patch, 0.0);
            im2col_from(g, input, first + k * BLOCK, &mut rows);
            filter.run_uninit(&rows, &PointwiseGeometry::dense(n), clamp, out);
        }
    };
    let parts = crate::threads::parts_for_one_op();
    if parts > 1 && pixels >= 2 * BLOCK {
        let per_part = pixels.div_ceil(parts).div_ceil(BLOCK) * BLOCK;
        out.par_chunks_mut(per_part * g.out_c)
            .enumerate()
            .for_each(|(p, out)| blocks(p * per_part, out));
    } else {
        blocks(0, out);
    }
}

/// [`conv2d_uninit`] into an initialised buffer.
pub fn conv2d(
    g: &ConvGeometry,
    input: &[f32],
    filter: &PackedPointwise,
    clamp: Option<(f32, f32)>,
    out: &mut [f32],
) {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the kernel only stores
    // initialised floats, so `out` stays initialised.
    let out = unsafe {
        std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<MaybeUninit<f32>>(), out.len())
    };
    conv2d_uninit(g, input, filter, clamp, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2x2 window, stride 1, one padding cell on top and left, two channels: every
    /// row by hand.
    #[test]
    fn rows_hold_each_windows_taps_with_zeros_for_padding() {
        let g = ConvGeometry {
            batch: 1,
            in_h: 2,
            in_w: 2,
            in_c: 2,
            out_h: 2,
            out_w: 2,
            out_c: 1,
            k_h: 2,
            k_w: 2,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 1,
            pad_left: 1,
            depth_multiplier: 1,
        };
        // Pixel (y, x) holds channels [10y + x, -(10y + x)].
        let input = [0.0, -0.0, 1.0, -1.0, 10.0, -10.0, 11.0, -11.0];
        let mut rows = vec![f32::NAN; 4 * 8];
        im2col(&g, &input, &mut rows);
        #[rustfmt::skip]
        let want = [
            // output (0, 0): taps (-1,-1) (-1,0) (0,-1) (0,0)
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0,
            // output (0, 1): taps (-1,0) (-1,1) (0,0) (0,1)
            0.0, 0.0, 0.0, 0.0, 0.0, -0.0, 1.0, -1.0,
            // output (1, 0): taps (0,-1) (0,0) (1,-1) (1,0)
            0.0, 0.0, 0.0, -0.0, 0.0, 0.0, 10.0, -10.0,
            // output (1, 1): taps (0,0) (0,1) (1,0) (1,1)
            0.0, -0.0, 1.0, -1.0, 10.0, -10.0, 11.0, -11.0,
        ];
        assert_eq!(rows, want);
    }
}
