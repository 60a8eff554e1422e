//! Quantization parameters from ranges, as TensorFlow's converter computes them.

use crate::graph::QuantParams;

/// Asymmetric int8 parameters for an activation observed in `[min, max]`.
///
/// The range is first widened to include 0 (zero must be exactly representable: padding
/// and ReLU produce it). Scale and zero point then follow the converter as its Python
/// path runs it (`legacy_float_scale`): the scale spans the range over 255 steps in f32
/// arithmetic on the f32 ends, and the zero point is solved from the min end alone, in
/// f64 against that f32 scale, then rounded to f32 before it is rounded (half away from
/// zero) and clamped. The last f32 rounding decides ties: a range symmetric about zero
/// solves to about -0.5, and which side of it the f32 value lands on depends on the range
/// (TensorFlow's models: [-1, 1] gets -1, [-12.558222, 12.558222] gets 0 (g11322)).
pub fn activation_params(min: f32, max: f32) -> QuantParams {
    activation_params_wide(min as f64, max as f64)
}

/// [`activation_params`] for a range already in f64 (a calibrated range the planner
/// widened, as TensorFlow's quantizer does, in double precision).
pub fn activation_params_wide(min: f64, max: f64) -> QuantParams {
    let (qmin, qmax) = (-128f64, 127f64);
    let rmin = min.min(0.0);
    let rmax = max.max(0.0);
    if (rmax - rmin).abs() < f64::EPSILON {
        // An all-zero tensor: any scale represents it; TensorFlow uses 1 and qmin.
        return QuantParams::per_tensor(1.0, qmin as i64);
    }
    let scale = (rmax as f32 - rmin as f32) / (qmax - qmin) as f32;
    let from_min = (qmin - rmin / f64::from(scale)) as f32;
    let zero_point = if from_min < qmin as f32 {
        qmin
    } else if from_min > qmax as f32 {
        qmax
    } else {
        f64::from(from_min.round())
    };
    QuantParams::per_tensor(scale, zero_point as i64)
}

/// Half the narrowest symmetric weight range TensorFlow's quantizer keeps.
const WEIGHT_NEAR_ZERO_HALF_RANGE: f64 = 0.5e-6;

/// Symmetric int8 weight scales in [-127, 127], one per slice along `axis` (per channel).
pub fn symmetric_weight_scales(values: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    let channels = shape.get(axis).copied().unwrap_or(1).max(1);
    let mut max_abs = vec![0f32; channels];
    for_each_channel_run(values, shape, axis, |run| match run {
        ChannelRun::Across(row) => {
            for (m, v) in max_abs.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
        ChannelRun::Within(c, row) => max_abs[c] = max_abs[c].max(largest_abs(row)),
    });
    // A channel whose symmetric range is narrower than 1e-6 (dead or all-zero weights) is
    // widened to [-5e-7, 5e-7], as TensorFlow's quantizer does (`kNearZeroTolerance / 2`):
    // its weights round to 0 and its bias keeps a scale the int32 range can hold, where a
    // scale of 1e-11 would saturate the bias.
    max_abs
        .into_iter()
        .map(|m| (f64::from(m).max(WEIGHT_NEAR_ZERO_HALF_RANGE) / 127.0) as f32)
        .collect()
}

/// One symmetric int8 scale in [-127, 127] for all of `values`, with the same near-zero
/// floor as [`symmetric_weight_scales`].
pub fn symmetric_scale(values: &[f32]) -> f32 {
    (f64::from(largest_abs(values)).max(WEIGHT_NEAR_ZERO_HALF_RANGE) / 127.0) as f32
}

/// The largest `|v|` of `values` (NaN skipped, as `f32::max` does), in 16 independent
/// lanes: one `f32::max` chain waits on each comparison in turn.
fn largest_abs(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (m, v) in lanes.iter_mut().zip(chunk) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |m, v| m.max(v.abs()));
    lanes.iter().fold(tail, |m, &v| m.max(v))
}

/// A contiguous run of a per-channel tensor's values (see [`for_each_channel_run`]).
pub enum ChannelRun<'a> {
    /// `axis` is the last one: value `k` belongs to channel `k`.
    Across(&'a [f32]),
    /// Every value belongs to channel `c` (a row of the axes after `axis`).
    Within(usize, &'a [f32]),
}

/// Walks `values` (a tensor of `shape`) in memory order, in runs that line up with its
/// slices along `axis`. The runs are long and contiguous whichever the axis: finding each
/// value's channel by division cost ~10 ns a weight.
pub fn for_each_channel_run(
    values: &[f32],
    shape: &[usize],
    axis: usize,
    mut f: impl FnMut(ChannelRun<'_>),
) {
    let channels = shape.get(axis).copied().unwrap_or(1).max(1);
    let inner: usize = shape
        .get(axis + 1..)
        .map_or(1, |s| s.iter().product::<usize>())
        .max(1);
    if inner == 1 {
        values
            .chunks(channels)
            .for_each(|row| f(ChannelRun::Across(row)));
    } else {
        for (r, row) in values.chunks(inner).enumerate() {
            f(ChannelRun::Within(r % channels, row));
        }
    }
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
        // [-1, 1]: scale 2/255 in f32 (0.007843137718737125, a little above 2/255), so
        // -128 + 1/scale = -0.50000757 -> -1, the zero point in TensorFlow's models.
        let p = activation_params(-1.0, 1.0);
        assert_eq!(p.zero_point[0], -1);
        // [-12.558222, 12.558222] (g11322's CONCATENATION): the f32 scale 0.09849585592746735
        // is a little below 25.116444/255, so the min end solves to -0.49999812 -> 0, as
        // TensorFlow's int8 model of tests/fixtures/generated/g11322 has it.
        let p = activation_params(-12.558222, 12.558222);
        assert_eq!((p.scale[0], p.zero_point[0]), (0.098495856, 0));
        // [-0.2, 1] (g30503's LEAKY_RELU): scale 1.2/255 in f32 = 0.0047058826; -128 +
        // 0.2/scale = -85.5 exactly in f32 -> -86 (half away from zero), TensorFlow's zero
        // point in tests/fixtures/generated/g30503 (an f64 solution, -85.4999995, gives -85).
        let p = activation_params(-0.2, 1.0);
        assert_eq!((p.scale[0], p.zero_point[0]), (0.0047058826, -86));
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
        // An all-zero channel: TensorFlow's int8 model of tests/fixtures/generated/g48
        // (1e-9 weights) quantizes such a channel with scale 1e-6 / 254 and its bias fits.
        assert_eq!(s[1], (0.5e-6f64 / 127.0) as f32);
        // shape [2, 2, 3] (values 0..12, odd ones negative). Axis 2, the last (depthwise
        // weights): channel c holds values c, c+3, c+6, c+9 -> largest |v| 9, 10, 11.
        let values: Vec<f32> = (0..12)
            .map(|v| if v % 2 == 1 { -(v as f32) } else { v as f32 })
            .collect();
        let s = symmetric_weight_scales(&values, &[2, 2, 3], 2);
        let expect = [9.0f64, 10.0, 11.0].map(|m| (m / 127.0) as f32);
        assert_eq!(s, expect);
        // Axis 1, a middle one: channel 0 holds 0..3 and 6..9, channel 1 holds 3..6 and
        // 9..12 -> largest |v| 8 and 11. A NaN is skipped as f32::max skips it.
        let mut with_nan = values.clone();
        with_nan[4] = f32::NAN;
        let s = symmetric_weight_scales(&with_nan, &[2, 2, 3], 1);
        let expect = [8.0f64, 11.0].map(|m| (m / 127.0) as f32);
        assert_eq!(s, expect);
    }
}
