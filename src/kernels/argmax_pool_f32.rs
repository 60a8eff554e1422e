//! Max pooling with argmax and max unpooling (MediaPipe's `MaxPoolingWithArgmax2D` and
//! `MaxUnpooling2D`) as LiteRT's runtime computes them. LiteRT has no kernel of its own
//! for these custom ops; its XNNPACK delegate runs them, and these reproduce XNNPACK's
//! results, indices included (checked against LiteRT by `tests/custom_ops.rs`):
//! - the pooling window moves by its own size (XNNPACK has no other stride for them);
//! - an index is the position in the window, column by column: `kx * k_h + ky`;
//! - SAME padding repeats the border pixels rather than padding with -inf, and the first
//!   maximum in that column-major order wins, so a window hanging over the top or left
//!   edge names its first real row or column by index 0 along that axis;
//! - unpooling writes each value at the position its index names inside the value's own
//!   window, zeros elsewhere; windows do not overlap, so no position is written twice.

/// The pooling geometry is max/average pooling's; these kernels take the stride to be the
/// window (the one configuration LiteRT's runtime runs; the op checks it).
pub use super::pool_f32::PoolGeometry;

/// Pools `input` (`[batch, in_h, in_w, channels]`) into `values` and `indices` (both
/// `[batch, out_h, out_w, channels]`).
pub fn argmax_pool(g: &PoolGeometry, input: &[f32], values: &mut [f32], indices: &mut [u32]) {
    let c = g.channels;
    if c == 0 || g.in_h == 0 || g.in_w == 0 {
        return;
    }
    // The input row / column a window element reads: padding repeats the border.
    let row = |oy: usize, ky: usize| (oy * g.k_h + ky).saturating_sub(g.pad_top).min(g.in_h - 1);
    let col = |ox: usize, kx: usize| (ox * g.k_w + kx).saturating_sub(g.pad_left).min(g.in_w - 1);
    let mut out = values.chunks_exact_mut(c).zip(indices.chunks_exact_mut(c));
    for n in 0..g.batch {
        let image = &input[n * g.in_h * g.in_w * c..(n + 1) * g.in_h * g.in_w * c];
        let pixel = |y: usize, x: usize| &image[(y * g.in_w + x) * c..(y * g.in_w + x + 1) * c];
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let Some((best, best_index)) = out.next() else {
                    return;
                };
                best.copy_from_slice(pixel(row(oy, 0), col(ox, 0)));
                best_index.fill(0);
                for kx in 0..g.k_w {
                    for ky in 0..g.k_h {
                        if kx == 0 && ky == 0 {
                            continue;
                        }
                        let k = (kx * g.k_h + ky) as u32;
                        let p = pixel(row(oy, ky), col(ox, kx));
                        for ((b, i), &v) in best.iter_mut().zip(best_index.iter_mut()).zip(p) {
                            if v > *b {
                                *b = v;
                                *i = k;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Scatters `values` (`[batch, in_h, in_w, channels]`, `in_*` the pooled size here) into
/// `out` (`[batch, in_h * k_h, in_w * k_w, channels]`, zero-filled by the caller) at the
/// positions `indices` name. An index outside the window is an error: it returns the
/// element's flat position and the index.
pub fn unpool(
    g: &PoolGeometry,
    values: &[f32],
    indices: &[u32],
    out: &mut [f32],
) -> Result<(), (usize, u32)> {
    let c = g.channels;
    let (out_h, out_w) = (g.in_h * g.k_h, g.in_w * g.k_w);
    let window = (g.k_h * g.k_w) as u32;
    for (pos, (&v, &k)) in values.iter().zip(indices).enumerate() {
        if k >= window {
            return Err((pos, k));
        }
        let (ch, pixel) = (pos % c, pos / c);
        let (x, y, n) = (
            pixel % g.in_w,
            (pixel / g.in_w) % g.in_h,
            pixel / (g.in_w * g.in_h),
        );
        let (k, k_h) = (k as usize, g.k_h);
        let (oy, ox) = (y * k_h + k % k_h, x * g.k_w + k / k_h);
        out[((n * out_h + oy) * out_w + ox) * c + ch] = v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(in_h: usize, in_w: usize, k_h: usize, k_w: usize) -> PoolGeometry {
        PoolGeometry {
            batch: 1,
            in_h,
            in_w,
            channels: 1,
            out_h: in_h / k_h,
            out_w: in_w / k_w,
            k_h,
            k_w,
            stride_h: k_h,
            stride_w: k_w,
            pad_top: 0,
            pad_left: 0,
        }
    }

    #[test]
    fn indices_run_down_each_window_column() {
        // One 2x3 window; the maximum is in row 1, column 0: index 0 * 2 + 1.
        let g = geometry(2, 3, 2, 3);
        let (mut v, mut i) = ([0.0], [9]);
        argmax_pool(&g, &[0.0, 0.5, 0.2, 3.0, -1.0, 2.0], &mut v, &mut i);
        assert_eq!((v[0], i[0]), (3.0, 1));
        // Ties keep the first in column order: (0, 1) comes after (1, 0).
        argmax_pool(&g, &[0.0, 3.0, 0.2, 3.0, -1.0, 2.0], &mut v, &mut i);
        assert_eq!(i[0], 1);
    }

    #[test]
    fn same_padding_repeats_the_first_row() {
        // A 3x1 window over a 2x1 image with one padded row on top: the window reads rows
        // (0, 0, 1); row 0 holding the maximum is named by the first element, index 0.
        let g = PoolGeometry {
            pad_top: 1,
            out_h: 1,
            ..geometry(2, 1, 3, 1)
        };
        let (mut v, mut i) = ([0.0], [9]);
        argmax_pool(&g, &[5.0, 1.0], &mut v, &mut i);
        assert_eq!((v[0], i[0]), (5.0, 0));
    }

    #[test]
    fn unpool_inverts_pool_positions() {
        let g = geometry(2, 4, 2, 2);
        let input = [1.0, 9.0, 2.0, 3.0, 4.0, 0.0, 8.0, 7.0];
        let (mut v, mut i) = ([0.0; 2], [0; 2]);
        argmax_pool(&g, &input, &mut v, &mut i);
        let pooled = PoolGeometry {
            in_h: 1,
            in_w: 2,
            ..g
        };
        let mut out = [0.0; 8];
        unpool(&pooled, &v, &i, &mut out).unwrap();
        assert_eq!(out, [0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 8.0, 0.0]);
        assert_eq!(unpool(&pooled, &v, &[0, 4], &mut out), Err((1, 4)));
    }
}
