//! Float bilinear and nearest-neighbour resizing of NHWC images with TFLite's
//! coordinate rules (`align_corners`, `half_pixel_centers`).

#[derive(Clone, Copy, Debug)]
pub struct ResizeGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub channels: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub align_corners: bool,
    pub half_pixel_centers: bool,
}

/// Ratio between input and output coordinates along one axis.
fn axis_scale(input: usize, output: usize, align_corners: bool) -> f32 {
    if align_corners && output > 1 {
        (input as f32 - 1.0) / (output as f32 - 1.0)
    } else {
        input as f32 / output as f32
    }
}

/// Source position of output index `i`: `(position, lower index, upper index)`.
fn bilinear_source(i: usize, scale: f32, half_pixel: bool, size: usize) -> (f32, usize, usize) {
    let pos = if half_pixel {
        (i as f32 + 0.5) * scale - 0.5
    } else {
        i as f32 * scale
    };
    let last = size.saturating_sub(1) as f32;
    let lower = pos.floor().clamp(0.0, last);
    let upper = pos.ceil().clamp(0.0, last);
    (pos, lower as usize, upper as usize)
}

pub fn bilinear(g: &ResizeGeometry, input: &[f32], out: &mut [f32]) {
    let c = g.channels;
    let sy = axis_scale(g.in_h, g.out_h, g.align_corners);
    let sx = axis_scale(g.in_w, g.out_w, g.align_corners);
    let xs: Vec<_> = (0..g.out_w)
        .map(|x| bilinear_source(x, sx, g.half_pixel_centers, g.in_w))
        .collect();
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            let (y, y0, y1) = bilinear_source(oy, sy, g.half_pixel_centers, g.in_h);
            let dy = y - y0 as f32;
            for (ox, &(x, x0, x1)) in xs.iter().enumerate() {
                let dx = x - x0 as f32;
                let at = |yy: usize, xx: usize| ((b * g.in_h + yy) * g.in_w + xx) * c;
                let (p00, p01, p10, p11) = (at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1));
                let o = ((b * g.out_h + oy) * g.out_w + ox) * c;
                for ch in 0..c {
                    out[o + ch] = input[p00 + ch] * (1.0 - dy) * (1.0 - dx)
                        + input[p10 + ch] * dy * (1.0 - dx)
                        + input[p01 + ch] * (1.0 - dy) * dx
                        + input[p11 + ch] * dy * dx;
                }
            }
        }
    }
}

/// Index of the input pixel nearest to output index `i`.
fn nearest_source(i: usize, input: usize, output: usize, align: bool, half_pixel: bool) -> usize {
    let scale = axis_scale(input, output, align);
    let offset = if half_pixel { 0.5 } else { 0.0 };
    let pos = (i as f32 + offset) * scale;
    // TFLite rounds half away from zero when aligning corners, floors otherwise.
    let idx = if align { pos.round() } else { pos.floor() };
    (idx.max(0.0) as usize).min(input.saturating_sub(1))
}

pub fn nearest(g: &ResizeGeometry, input: &[f32], out: &mut [f32]) {
    let c = g.channels;
    let xs: Vec<usize> = (0..g.out_w)
        .map(|x| nearest_source(x, g.in_w, g.out_w, g.align_corners, g.half_pixel_centers))
        .collect();
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            let iy = nearest_source(oy, g.in_h, g.out_h, g.align_corners, g.half_pixel_centers);
            for (ox, &ix) in xs.iter().enumerate() {
                let p = ((b * g.in_h + iy) * g.in_w + ix) * c;
                let o = ((b * g.out_h + oy) * g.out_w + ox) * c;
                out[o..o + c].copy_from_slice(&input[p..p + c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(in_w: usize, out_w: usize, align: bool, half: bool) -> ResizeGeometry {
        ResizeGeometry {
            batch: 1,
            in_h: 1,
            in_w,
            channels: 1,
            out_h: 1,
            out_w,
            align_corners: align,
            half_pixel_centers: half,
        }
    }

    /// A 1x2 row [0, 10] upsampled to 1x4, worked by hand for each coordinate rule.
    #[test]
    fn bilinear_coordinate_rules() {
        let mut out = [0f32; 4];
        // scale 0.5: sources 0, 0.5, 1, 1.5 (clamped to 1)
        bilinear(&geometry(2, 4, false, false), &[0., 10.], &mut out);
        assert_eq!(out, [0., 5., 10., 10.]);
        // align corners: scale 1/3, sources 0, 1/3, 2/3, 1
        bilinear(&geometry(2, 4, true, false), &[0., 10.], &mut out);
        for (o, e) in out.iter().zip([0., 10. / 3., 20. / 3., 10.]) {
            assert!((o - e).abs() < 1e-5);
        }
        // half pixel: sources -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
        bilinear(&geometry(2, 4, false, true), &[0., 10.], &mut out);
        assert_eq!(out, [0., 2.5, 7.5, 10.]);
    }

    #[test]
    fn nearest_coordinate_rules() {
        let input = [0., 1., 2.];
        let mut out = [0f32; 2];
        // scale 1.5: floor(0), floor(1.5)
        nearest(&geometry(3, 2, false, false), &input, &mut out);
        assert_eq!(out, [0., 1.]);
        // align corners: scale 2: round(0), round(2)
        nearest(&geometry(3, 2, true, false), &input, &mut out);
        assert_eq!(out, [0., 2.]);
        // half pixel: floor(0.75), floor(2.25)
        nearest(&geometry(3, 2, false, true), &input, &mut out);
        assert_eq!(out, [0., 2.]);
    }
}
