//! Quantization parameters from ranges, as TensorFlow's converter computes them.

use crate::graph::QuantParams;

/// Asymmetric int8 parameters for an activation observed in `[min, max]`.
///
/// The range is first widened to include 0 (zero must be exactly representable: padding
/// and ReLU produce it). Scale and zero point then follow the converter's "nudging": the
/// scale spans the range over 255 steps, and the zero point is solved from whichever end
/// (min or max) carries the smaller rounding error, then rounded and clamped.
pub fn activation_params(min: f32, max: f32) -> QuantParams {
    let (qmin, qmax) = (-128f64, 127f64);
    let rmin = (min as f64).min(0.0);
    let rmax = (max as f64).max(0.0);
    if (rmax - rmin).abs() < f64::EPSILON {
        // An all-zero tensor: any scale represents it; TensorFlow uses 1 and qmin.
        return QuantParams::per_tensor(1.0, qmin as i64);
    }
    let scale = (rmax - rmin) / (qmax - qmin);
    let from_min = qmin - rmin / scale;
    let from_min_error = qmin.abs() + (rmin / scale).abs();
    let from_max = qmax - rmax / scale;
    let from_max_error = qmax.abs() + (rmax / scale).abs();
    let zero_point = if from_min_error < from_max_error {
        from_min
    } else {
        from_max
    };
    let zero_point = if zero_point < qmin {
        qmin
    } else if zero_point > qmax {
        qmax
    } else {
        zero_point.round()
    };
    QuantParams::per_tensor(scale as f32, zero_point as i64)
}

/// Symmetric int8 weight scales in [-127, 127], one per slice along `axis` (per channel).
pub fn symmetric_weight_scales(values: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    let channels = shape.get(axis).copied().unwrap_or(1).max(1);
    let inner: usize = shape.get(axis + 1..).map_or(1, |s| s.iter().product());
    let mut max_abs = vec![0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = (i / inner.max(1)) % channels;
        max_abs[c] = max_abs[c].max(v.abs());
    }
    max_abs
        .into_iter()
        .map(|m| {
            if m == 0.0 {
                1.0
            } else {
                (m as f64 / 127.0) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_params_by_hand() {
        // [0, 6]: scale 6/255; zero point from min: -128 - 0 = -128
        let p = activation_params(0.0, 6.0);
        assert!((p.scale[0] - 6.0 / 255.0).abs() < 1e-9);
        assert_eq!(p.zero_point[0], -128);
        // [-1, 1]: scale 2/255; from min: -128 + 127.5 = -0.5 (error 128+127.5);
        // from max: 127 - 127.5 = -0.5 (error 127+127.5, smaller) -> round(-0.5) = -1
        let p = activation_params(-1.0, 1.0);
        assert_eq!(p.zero_point[0], -1);
        // A positive-only range is widened to include 0.
        let p = activation_params(2.0, 4.0);
        assert!((p.scale[0] - 4.0 / 255.0).abs() < 1e-9);
        assert_eq!(p.zero_point[0], -128);
        // All zeros.
        let p = activation_params(0.0, 0.0);
        assert_eq!((p.scale[0], p.zero_point[0]), (1.0, -128));
    }

    #[test]
    fn weight_scales_per_channel() {
        // shape [2, 3], axis 0: rows [1, -2, 0.5] and [0, 0, 0]
        let s = symmetric_weight_scales(&[1.0, -2.0, 0.5, 0.0, 0.0, 0.0], &[2, 3], 0);
        assert!((s[0] - 2.0 / 127.0).abs() < 1e-9);
        assert_eq!(s[1], 1.0);
    }
}
