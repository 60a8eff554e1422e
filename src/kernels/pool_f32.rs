//! Float average and max pooling on NHWC data, with TFLite's border rule: windows are
//! clipped to the image, and an average divides by the cells it actually covered.

#[derive(Clone, Copy, Debug)]
pub struct PoolGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub channels: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl PoolGeometry {
    /// Rows `[start, end)` of the input under output row `oy` (likewise for columns).
    fn clip(origin: isize, k: usize, size: usize) -> (usize, usize) {
        let start = origin.max(0) as usize;
        let end = (origin + k as isize).clamp(0, size as isize) as usize;
        (start.min(end), end)
    }

    fn for_each_window(&self, mut f: impl FnMut(usize, (usize, usize), (usize, usize))) {
        for b in 0..self.batch {
            for oy in 0..self.out_h {
                let y0 = (oy * self.stride_h) as isize - self.pad_top as isize;
                let rows = Self::clip(y0, self.k_h, self.in_h);
                for ox in 0..self.out_w {
                    let x0 = (ox * self.stride_w) as isize - self.pad_left as isize;
                    let cols = Self::clip(x0, self.k_w, self.in_w);
                    let o = ((b * self.out_h + oy) * self.out_w + ox) * self.channels;
                    f(o, (b * self.in_h + rows.0, b * self.in_h + rows.1), cols);
                }
            }
        }
    }
}

pub fn average_pool(g: &PoolGeometry, input: &[f32], out: &mut [f32]) {
    let c = g.channels;
    g.for_each_window(|o, rows, cols| {
        let acc = &mut out[o..o + c];
        acc.fill(0.0);
        for y in rows.0..rows.1 {
            for x in cols.0..cols.1 {
                let p = (y * g.in_w + x) * c;
                for (a, &v) in acc.iter_mut().zip(&input[p..p + c]) {
                    *a += v;
                }
            }
        }
        let count = ((rows.1 - rows.0) * (cols.1 - cols.0)).max(1) as f32;
        acc.iter_mut().for_each(|a| *a /= count);
    });
}

pub fn max_pool(g: &PoolGeometry, input: &[f32], out: &mut [f32]) {
    let c = g.channels;
    g.for_each_window(|o, rows, cols| {
        let acc = &mut out[o..o + c];
        acc.fill(f32::NEG_INFINITY);
        for y in rows.0..rows.1 {
            for x in cols.0..cols.1 {
                let p = (y * g.in_w + x) * c;
                for (a, &v) in acc.iter_mut().zip(&input[p..p + c]) {
                    *a = a.max(v);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2x2 image, 2x2 window, stride 2, SAME-style padding of one pixel after: the
    /// window at (0,0) covers all four cells, so the average divides by 4, not by the
    /// window's nominal size only when clipped. A 3x3 image shows the clipping.
    #[test]
    fn average_ignores_padding_cells() {
        // 3x3 image, 2x2 window, stride 2 -> 2x2 output; SAME pads one pixel after.
        let g = PoolGeometry {
            batch: 1,
            in_h: 3,
            in_w: 3,
            channels: 1,
            out_h: 2,
            out_w: 2,
            k_h: 2,
            k_w: 2,
            stride_h: 2,
            stride_w: 2,
            pad_top: 0,
            pad_left: 0,
        };
        let input = [1., 2., 3., 4., 5., 6., 7., 8., 9.];
        let mut out = [0f32; 4];
        average_pool(&g, &input, &mut out);
        // (1+2+4+5)/4, (3+6)/2, (7+8)/2, 9/1
        assert_eq!(out, [3.0, 4.5, 7.5, 9.0]);
        max_pool(&g, &input, &mut out);
        assert_eq!(out, [5.0, 6.0, 8.0, 9.0]);
    }
}
