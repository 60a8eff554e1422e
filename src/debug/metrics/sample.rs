//! Measuring one sample of one layer: the constructors of [`LayerSample`].

use super::*;

impl LayerSample {
    /// Measures one sample: the float reference, the dequantized int8 result, how many of
    /// the int8 values sit at -128 or 127, and the layer's step (for the histograms).
    pub fn new(
        step: Option<(f64, i64)>,
        float: &[f64],
        dequantized: &[f64],
        saturated: usize,
    ) -> Self {
        Self::measure(step, float, dequantized, None, saturated)
    }

    /// [`LayerSample::new`] for an int8 output given raw as well (`raw[i]` the int8 value
    /// `dequantized[i]` was made from with the per-tensor `step`): the int8 histogram reads
    /// the raw values' bins directly, saturation is counted here, and the sums of the
    /// dequantized values and of their squares (for cosine and correlation) are exact
    /// integer sums of the steps `raw - zp` times the scale, where `new` adds f32 values.
    ///
    /// Otherwise the same result as `new`: dequantizing gives `(raw - zp) * scale` to within
    /// a relative 2^-24 (one f32 rounding), so dividing by the scale and rounding, as `new`
    /// bins, gives back `raw - zp` exactly for every int8 value.
    pub fn from_int8(step: (f64, i64), float: &[f64], dequantized: &[f64], raw: &[i64]) -> Self {
        let saturated = raw.iter().filter(|&&x| x <= -128 || x >= 127).count();
        Self::measure(Some(step), float, dequantized, Some(raw), saturated)
    }

    /// [`LayerSample::from_int8`] straight from what the executors hold: the float twin's
    /// f32 output and the int8 output's raw values with its per-tensor `scale` and
    /// `zero_point`. Dequantizes as [`crate::ops::quantize::dequantize_values`] does (in
    /// f32), so the result equals `from_int8` on the converted slices, bit for bit, without
    /// materialising them.
    ///
    /// Without `histograms` the three histograms are not counted (about half the work):
    /// the sample then carries none, as one measured without a step. Without `extras`,
    /// only TensorFlow's statistics are (see [`LayerSample::extras`]).
    ///
    /// `dequantized`, when given (as long as `raw`), receives every dequantized value,
    /// `(raw - zero_point) as f32 * scale`: what [`crate::ops::dequantize_int8`] computes
    /// for a zero point within +-2^23, written in the same pass as the measurement (the
    /// debugger's next layers read it).
    pub fn from_int8_output(
        scale: f32,
        zero_point: i64,
        float: &[f32],
        raw: &[i8],
        histograms: bool,
        extras: bool,
        dequantized: Option<&mut [MaybeUninit<f32>]>,
    ) -> Self {
        let out_len = dequantized.as_deref().map_or(usize::MAX, <[_]>::len);
        let n = float.len().min(raw.len()).min(out_len);
        let quant = Values::Int8 {
            raw: &raw[..n],
            scale,
            zero_point,
        };
        let dequantized = dequantized.map(|out| {
            // Whatever the measurement does not reach (only with mismatched lengths).
            let (measured, rest) = out.split_at_mut(n);
            let whole = Values::Int8 {
                raw,
                scale,
                zero_point,
            };
            whole.fill_uninit(n, rest);
            measured
        });
        // Counted with the sums, unless the zero point is out of their reach.
        let saturated = if STEP_ZERO_POINTS.contains(&zero_point) {
            0
        } else {
            raw.iter().filter(|&&x| x == -128 || x == 127).count()
        };
        Self::measure_values(
            histograms.then_some((f64::from(scale), zero_point)),
            Values::F32(&float[..n]),
            quant,
            saturated,
            dequantized,
            extras,
        )
    }

    fn measure(
        step: Option<(f64, i64)>,
        float: &[f64],
        dequantized: &[f64],
        raw: Option<&[i64]>,
        saturated: usize,
    ) -> Self {
        let q = match raw {
            Some(raw) => Values::F64WithRaw(dequantized, raw),
            None => Values::F64(dequantized),
        };
        Self::measure_values(step, Values::F64(float), q, saturated, None, true)
    }

    /// Every sum in blocks: each block of values is converted to f32 once (in L1), then
    /// summed in [`LANES`] independent f32 lanes (32 values each) so the loop vectorises
    /// in full-width registers; each block's lane sums are then added to f64 lane totals,
    /// combined in a fixed order at the end. So an f32 rounding error can only build up
    /// over 32 values (relative error ~1e-7 on the statistics, which TensorFlow itself
    /// accumulates in f32), and the result depends only on the values, not on the thread,
    /// the instruction set or how the values were stored (f64 inputs are rounded to f32:
    /// the debugger's values are f32 to begin with).
    /// `dequantized`, when given, receives `quant`'s values as f32 (whole: the caller
    /// makes it as long as the measurement).
    fn measure_values(
        step: Option<(f64, i64)>,
        float: Values<'_>,
        quant: Values<'_>,
        saturated: usize,
        dequantized: Option<&mut [MaybeUninit<f32>]>,
        extras: bool,
    ) -> Self {
        let level = crate::kernels::simd::active();
        measure(level, step, float, quant, saturated, dequantized, extras)
    }
}
