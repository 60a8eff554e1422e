//! Per-layer error metrics with TensorFlow's aggregation: each metric is computed per
//! sample on `diff = dequantized int8 output - float output`, then averaged over samples
//! with a NaN-skipping mean (so `max_abs_error` is the mean of per-sample maxima).
//! Only running sums are kept: memory does not grow with the number of samples.

use std::mem::MaybeUninit;

use serde::Serialize;

/// TensorFlow's five default metrics of one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleMetrics {
    pub num_elements: f64,
    pub stddev: f64,
    pub mean_error: f64,
    pub max_abs_error: f64,
    pub mean_squared_error: f64,
}

/// The default metrics of one sample's `diff`. `stddev` is the population standard
/// deviation (numpy's default, `ddof=0`), as TensorFlow computes it.
pub fn sample_metrics(diff: &[f64]) -> SampleMetrics {
    let n = diff.len() as f64;
    if diff.is_empty() {
        return SampleMetrics {
            num_elements: 0.0,
            stddev: f64::NAN,
            mean_error: f64::NAN,
            max_abs_error: f64::NAN,
            mean_squared_error: f64::NAN,
        };
    }
    let mean = diff.iter().sum::<f64>() / n;
    let variance = diff.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n;
    SampleMetrics {
        num_elements: n,
        stddev: variance.sqrt(),
        mean_error: mean,
        max_abs_error: diff.iter().fold(0f64, |m, d| m.max(d.abs())),
        mean_squared_error: diff.iter().map(|d| d * d).sum::<f64>() / n,
    }
}

/// A NaN-skipping running mean (numpy's `nanmean`): NaN when every value was NaN.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NanMean {
    sum: f64,
    count: usize,
}

impl NanMean {
    pub fn add(&mut self, v: f64) {
        if !v.is_nan() {
            self.sum += v;
            self.count += 1;
        }
    }

    pub fn value(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }
}

/// The default metrics of one layer, accumulated over samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerAccumulator {
    /// The layer's int8 step (scale, zero point): histograms for the KL divergence count
    /// values per step, the finest binning the int8 output can show.
    step: Option<(f64, i64)>,
    float_hist: [u64; 256],
    quant_hist: [u64; 256],
    /// Errors in units of the layer's scale (what the dashboard's error histogram shows).
    error_hist: [u64; ERROR_BINS],
    num_elements: NanMean,
    stddev: NanMean,
    mean_error: NanMean,
    max_abs_error: NanMean,
    mean_squared_error: NanMean,
    /// Pooled sums over all samples, for the metrics TensorFlow does not have.
    signal_power: f64,
    noise_power: f64,
    abs_error: f64,
    max_abs_global: f64,
    elements: usize,
    sum_f: f64,
    sum_q: f64,
    sum_q2: f64,
    dot: f64,
    saturated: usize,
    /// Some sample was measured without the extras' sums: they are NaN.
    extras_missing: bool,
    pub samples: usize,
}

/// A layer's metrics as reported.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LayerMetrics {
    pub num_elements: f64,
    pub stddev: f64,
    pub mean_error: f64,
    pub max_abs_error: f64,
    pub mean_squared_error: f64,
    /// Signal-to-quantization-noise ratio in dB, pooled over all samples.
    pub sqnr_db: f64,
    /// Cosine similarity of float and dequantized outputs, pooled over all samples.
    pub cosine: f64,
    /// Mean absolute error over all elements of all samples.
    pub mean_abs_error: f64,
    /// Largest absolute error over all samples (TensorFlow's is a mean of maxima).
    pub max_abs_error_global: f64,
    /// Pearson correlation of float and dequantized outputs, pooled.
    pub correlation: f64,
    /// Fraction of int8 outputs at -128 or 127: clipping by a too-narrow range.
    pub saturation: f64,
    /// KL divergence of the float values' distribution from the int8 values', both
    /// binned by the layer's int8 steps, pooled over all samples.
    pub kl_divergence: f64,
}

/// The names `--metrics` accepts, in the order the CSV writes them.
pub const EXTRA_METRICS: [&str; 7] = [
    "sqnr_db",
    "cosine",
    "mean_abs_error",
    "max_abs_error_global",
    "kl_divergence",
    "correlation",
    "saturation",
];

/// Bins of the error histogram: steps of a quarter of the layer's scale, centred on zero;
/// the two end bins also hold everything beyond them.
pub const ERROR_BINS: usize = 33;
/// Width of one error bin, in units of the layer's scale.
pub const ERROR_BIN_WIDTH: f64 = 0.25;

/// The error-histogram bin of an error measured in units of the layer's scale.
pub fn error_bin(error_in_scales: f64) -> usize {
    let half = (ERROR_BINS / 2) as f64;
    let k = (error_in_scales / ERROR_BIN_WIDTH).round();
    // NaN clamps to the centre rather than poisoning an end bin.
    (if k.is_nan() {
        0.0
    } else {
        k.clamp(-half, half)
    } + half) as usize
}

/// One layer's value and error distributions, pooled over the samples seen.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerHistograms {
    pub scale: f64,
    pub zero_point: i64,
    /// Float reference values per int8 step: bin `q + 128` counts values that quantize to `q`.
    pub float: Vec<u64>,
    /// Dequantized int8 values per int8 step, binned like `float`.
    pub dequantized: Vec<u64>,
    /// `dequantized - float` in [`ERROR_BIN_WIDTH`] steps of the scale, [`ERROR_BINS`] bins.
    pub error: Vec<u64>,
}

impl LayerMetrics {
    /// An extra metric by its `--metrics` name.
    pub fn extra(&self, name: &str) -> Option<f64> {
        Some(match name {
            "sqnr_db" => self.sqnr_db,
            "cosine" => self.cosine,
            "mean_abs_error" => self.mean_abs_error,
            "max_abs_error_global" => self.max_abs_error_global,
            "correlation" => self.correlation,
            "saturation" => self.saturation,
            "kl_divergence" => self.kl_divergence,
            _ => return None,
        })
    }
}

/// One sample's contribution to a layer's statistics: computed on its own (on any thread)
/// and merged into a [`LayerAccumulator`] in sample order with [`LayerAccumulator::add`].
#[derive(Clone, Debug)]
pub struct LayerSample {
    metrics: SampleMetrics,
    signal_power: f64,
    noise_power: f64,
    abs_error: f64,
    elements: usize,
    sum_f: f64,
    sum_q: f64,
    sum_q2: f64,
    dot: f64,
    saturated: usize,
    /// Whether the sums behind qdbg's extra metrics (SQNR, cosine, mean absolute error,
    /// correlation, saturation) were counted: a measurement for TensorFlow's statistics
    /// alone skips them, about half of the work.
    extras: bool,
    /// Float and int8 values per int8 step, and errors per [`ERROR_BIN_WIDTH`] of the
    /// scale (boxed: 4 KiB that only layers with a step need).
    hist: Option<Box<Histograms>>,
}

type Histograms = ([u64; 256], [u64; 256], [u64; ERROR_BINS]);

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
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::simd::{active, Level};
            if active() >= Level::Avx512 {
                // SAFETY: the CPU has AVX-512 F/BW/VL (checked by `active`).
                return unsafe {
                    measure_avx512(step, float, quant, saturated, dequantized, extras)
                };
            }
            if active() >= Level::Avx2 {
                // SAFETY: the CPU has AVX2 and FMA (checked by `active`).
                return unsafe { measure_avx2(step, float, quant, saturated, dequantized, extras) };
            }
        }
        measure_body(step, float, quant, saturated, dequantized, extras)
    }
}

/// [`measure_body`] compiled for AVX2: the same operations in the same order (fused only
/// where written as `mul_add`, which every build fuses), so the same results, in wider
/// vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn measure_avx2(
    step: Option<(f64, i64)>,
    float: Values<'_>,
    quant: Values<'_>,
    saturated: usize,
    dequantized: Option<&mut [MaybeUninit<f32>]>,
    extras: bool,
) -> LayerSample {
    measure_body(step, float, quant, saturated, dequantized, extras)
}

/// [`measure_body`] for AVX-512: eight f64 lanes per instruction, same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn measure_avx512(
    step: Option<(f64, i64)>,
    float: Values<'_>,
    quant: Values<'_>,
    saturated: usize,
    dequantized: Option<&mut [MaybeUninit<f32>]>,
    extras: bool,
) -> LayerSample {
    measure_body(step, float, quant, saturated, dequantized, extras)
}

#[inline(always)]
fn measure_body(
    step: Option<(f64, i64)>,
    float: Values<'_>,
    quant: Values<'_>,
    saturated: usize,
    mut dequantized: Option<&mut [MaybeUninit<f32>]>,
    extras: bool,
) -> LayerSample {
    // Only the raw int8 path can leave the extras out; the others count everything.
    let extras = extras || !matches!((float, quant), (Values::F32(_), Values::Int8 { .. }));
    let n = float.len().min(quant.len());
    let hist_step = step.filter(|(s, _)| *s > 0.0);
    let mut counts = hist_step.map(|_| Box::<BinCounts>::default());
    let mut sums = LaneSums::default();
    // With the raw int8 values known, their own sums are counted exactly in integers.
    let int_steps = quant.integer_steps(step);
    let mut steps = StepTotals::default();
    let (mut fbuf, mut qbuf) = ([0f32; BLOCK], [0f32; BLOCK]);
    let mut sbuf = [0i32; BLOCK];
    let (mut x, mut qx) = ([0f32; BLOCK], [0f32; BLOCK]);
    let mut bins = [[0u8; BLOCK]; 3];
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let f: &[f32] = match float {
            Values::F32(v) => &v[start..start + len],
            _ => {
                float.fill(start, &mut fbuf[..len]);
                &fbuf[..len]
            }
        };
        if let Some(out) = dequantized.as_deref_mut() {
            quant.fill_uninit(start, &mut out[start..start + len]);
        }
        match (quant, int_steps) {
            (Values::Int8 { raw, .. }, Some((scale, zp))) => {
                sums.add_int8_block(&mut steps, f, &raw[start..start + len], scale, zp, extras);
            }
            (_, Some((_, zp))) => {
                quant.fill(start, &mut qbuf[..len]);
                quant.raw_i32(start, &mut sbuf[..len]);
                sums.add_block(Some((&mut steps, &sbuf[..len], zp)), f, &qbuf[..len]);
            }
            _ => {
                quant.fill(start, &mut qbuf[..len]);
                sums.add_block(None, f, &qbuf[..len]);
            }
        }
        if let (Some(c), Some((scale, zp))) = (counts.as_deref_mut(), hist_step) {
            // Positions in int8 steps, in f32 as TFLite's quantizer computes them; bins
            // in loops that vectorise; then the counting. (`qbuf` holds the dequantized
            // values whenever the raw ones are not known.)
            let (scale, zp) = (scale as f32, zp.clamp(-(1 << 24), 1 << 24) as i32);
            let (x, qx) = (&mut x[..len], &mut qx[..len]);
            for (x, &f) in x.iter_mut().zip(f.iter()) {
                *x = f / scale;
            }
            if !quant.steps_from_zero_point(start, zp, qx) {
                for (qx, &q) in qx.iter_mut().zip(qbuf[..len].iter()) {
                    *qx = q / scale;
                }
            }
            let [fb, qb, eb] = &mut bins;
            for (b, &x) in fb[..len].iter_mut().zip(x.iter()) {
                *b = step_bin(x, zp);
            }
            if !quant.raw_bins(start, &mut qb[..len]) {
                for (b, &qx) in qb[..len].iter_mut().zip(qx.iter()) {
                    *b = step_bin(qx, zp);
                }
            }
            for ((b, &x), &qx) in eb[..len].iter_mut().zip(x.iter()).zip(qx.iter()) {
                *b = error_step_bin(qx - x);
            }
            c.count(&fb[..len], &qb[..len], &eb[..len]);
        }
    }
    let total = sums.total(int_steps.map(|(scale, _)| (f64::from(scale), &steps)));
    // Raw int8 values given whole are counted here; otherwise the caller counted them.
    let saturated = match quant {
        Values::Int8 { .. } if int_steps.is_some() => steps.saturated as usize,
        _ => saturated,
    };
    let metrics = if n == 0 {
        sample_metrics(&[])
    } else {
        let count = n as f64;
        let mean = total.diff / count;
        // One pass: E[d^2] - mean^2 in f64. Quantization errors have a mean of the order
        // of their spread, so the cancellation costs a few of f64's 16 digits (TensorFlow
        // computes this in f32); a second pass over the data cost a quarter of the time.
        let variance = (total.diff_sq / count - mean * mean).max(0.0);
        SampleMetrics {
            num_elements: count,
            stddev: variance.sqrt(),
            mean_error: mean,
            max_abs_error: total.max_abs,
            mean_squared_error: total.diff_sq / count,
        }
    };
    LayerSample {
        metrics,
        signal_power: total.sig,
        noise_power: total.diff_sq,
        abs_error: total.abs,
        elements: n,
        sum_f: total.f,
        sum_q: total.q,
        sum_q2: total.q2,
        dot: total.dot,
        saturated,
        extras,
        hist: counts.map(|c| Box::new(c.totals())),
    }
}

/// The histogram bin (`q + 128`) of a value `x` int8 steps from the zero point:
/// `clamp(round(x) + zp, -128, 127) + 128`, `round` rounding half away from zero without
/// a call to libm: `trunc(x + copysign(0.5 - 2^-25, x))` is how LLVM lowers `roundf` (the
/// constant just under 0.5 keeps 0.49999997 from rounding up). Clamping `x` first changes
/// no bin and keeps the conversion in range; NaN lands at the zero point's bin.
#[inline(always)]
fn step_bin(x: f32, zp: i32) -> u8 {
    ((round_small(x) + zp).clamp(-128, 127) + 128) as u8
}

/// `round(x)` (half away from zero) of `x` clamped to +-1000, NaN as 0, as an i32.
#[inline(always)]
fn round_small(x: f32) -> i32 {
    let x = if x.is_nan() {
        0.0
    } else {
        x.clamp(-1000.0, 1000.0)
    };
    // SAFETY: finite and within +-1000.5, so it fits an i32. The checked `as` conversion
    // would not vectorise and cost four times the rest of the binning.
    unsafe { (x + 0.499_999_97f32.copysign(x)).to_int_unchecked::<i32>() }
}

/// [`error_bin`] for an error of `e` int8 steps, in f32 without libm (as [`step_bin`]).
#[inline(always)]
fn error_step_bin(e: f32) -> u8 {
    let half = (ERROR_BINS / 2) as i32;
    (round_small(e / ERROR_BIN_WIDTH as f32).clamp(-half, half) + half) as u8
}

/// Histogram counts while a sample is measured: four interleaved copies of each
/// histogram, so runs of values in the same bin (the usual case) do not wait on each
/// other's increments. u32 is enough: a tensor holds fewer than 2^30 elements. The error
/// histogram is padded to 64 bins so that a `u8` bin masked to 6 bits needs no bounds check.
struct BinCounts {
    float: [[u32; 256]; 4],
    quant: [[u32; 256]; 4],
    error: [[u32; 64]; 4],
}

impl Default for BinCounts {
    fn default() -> Self {
        BinCounts {
            float: [[0; 256]; 4],
            quant: [[0; 256]; 4],
            error: [[0; 64]; 4],
        }
    }
}

impl BinCounts {
    #[inline(always)]
    fn count(&mut self, float: &[u8], quant: &[u8], error: &[u8]) {
        let n = float.len().min(quant.len()).min(error.len());
        let (float, quant, error) = (&float[..n], &quant[..n], &error[..n]);
        let quads = float
            .chunks_exact(4)
            .zip(quant.chunks_exact(4))
            .zip(error.chunks_exact(4));
        for ((f, q), e) in quads {
            for copy in 0..4 {
                self.float[copy][usize::from(f[copy])] += 1;
                self.quant[copy][usize::from(q[copy])] += 1;
                self.error[copy][usize::from(e[copy] & 63)] += 1;
            }
        }
        let tail = n / 4 * 4;
        for i in tail..n {
            self.float[0][usize::from(float[i])] += 1;
            self.quant[0][usize::from(quant[i])] += 1;
            self.error[0][usize::from(error[i] & 63)] += 1;
        }
    }

    fn totals(&self) -> Histograms {
        fn merge<const N: usize, const M: usize>(copies: &[[u32; N]; 4]) -> [u64; M] {
            std::array::from_fn(|b| copies.iter().map(|c| u64::from(c[b])).sum())
        }
        (merge(&self.float), merge(&self.quant), merge(&self.error))
    }
}

/// Values converted per block before summing (fits L1 twice over with its partner).
const BLOCK: usize = 512;
/// Independent partial sums per quantity: enough to fill AVX-512 lanes of f32.
const LANES: usize = 16;

/// One side of a comparison, as stored.
#[derive(Clone, Copy)]
enum Values<'a> {
    F64(&'a [f64]),
    /// Dequantized values with the raw int8 values they came from (for the int8 histogram).
    F64WithRaw(&'a [f64], &'a [i64]),
    F32(&'a [f32]),
    /// Raw per-tensor int8 values, dequantized on the fly in f32.
    Int8 {
        raw: &'a [i8],
        scale: f32,
        zero_point: i64,
    },
}

impl Values<'_> {
    fn len(&self) -> usize {
        match self {
            Values::F64(v) | Values::F64WithRaw(v, _) => v.len(),
            Values::F32(v) => v.len(),
            Values::Int8 { raw, .. } => raw.len(),
        }
    }

    /// Values `start..start + out.len()` as f32 into `out`.
    // Inlined into the AVX2 build of the measurement, as everything it calls per element.
    #[inline(always)]
    fn fill(&self, start: usize, out: &mut [f32]) {
        self.each_f32(start, out, |o, x| *o = x);
    }

    /// [`Values::fill`] into memory not yet initialised (every element is written).
    #[inline(always)]
    fn fill_uninit(&self, start: usize, out: &mut [MaybeUninit<f32>]) {
        self.each_f32(start, out, |o, x| {
            o.write(x);
        });
    }

    /// Each of the values from `start` on as f32, handed to `put` with its slot of `out`.
    #[inline(always)]
    fn each_f32<T>(&self, start: usize, out: &mut [T], put: impl Fn(&mut T, f32)) {
        let range = start..start + out.len();
        match self {
            Values::F64(v) | Values::F64WithRaw(v, _) => {
                for (o, &x) in out.iter_mut().zip(&v[range]) {
                    put(o, x as f32);
                }
            }
            Values::F32(v) => {
                for (o, &x) in out.iter_mut().zip(&v[range]) {
                    put(o, x);
                }
            }
            Values::Int8 {
                raw,
                scale,
                zero_point,
            } => {
                // i32 arithmetic (exact for int8 minus a zero point) converts to f32 in
                // vector instructions, which i64 does not before AVX-512.
                let zp = (*zero_point).clamp(-(1 << 24), 1 << 24) as i32;
                for (o, &r) in out.iter_mut().zip(&raw[range]) {
                    put(o, (i32::from(r) - zp) as f32 * scale);
                }
            }
        }
    }

    /// The scale and zero point the raw int8 values dequantize with, when the raw values
    /// are known (with `step`, the layer's, for values given dequantized) and the zero
    /// point is one [`StepSums`] can hold.
    #[inline(always)]
    fn integer_steps(&self, step: Option<(f64, i64)>) -> Option<(f32, i32)> {
        let (scale, zp) = match (self, step) {
            (
                Values::Int8 {
                    scale, zero_point, ..
                },
                _,
            ) => (*scale, *zero_point),
            (Values::F64WithRaw(..), Some((scale, zp))) => (scale as f32, zp),
            _ => return None,
        };
        STEP_ZERO_POINTS.contains(&zp).then_some((scale, zp as i32))
    }

    /// Each raw int8 value from `start` on (clamped to int8), handed to `put` with its
    /// slot of `out`; false when the raw values are not known.
    #[inline(always)]
    fn each_raw<T>(&self, start: usize, out: &mut [T], put: impl Fn(&mut T, i32)) -> bool {
        let range = start..start + out.len();
        match self {
            Values::F64WithRaw(_, raw) => {
                for (o, &r) in out.iter_mut().zip(&raw[range]) {
                    put(o, r.clamp(-128, 127) as i32);
                }
            }
            Values::Int8 { raw, .. } => {
                for (o, &r) in out.iter_mut().zip(&raw[range]) {
                    put(o, i32::from(r));
                }
            }
            _ => return false,
        }
        true
    }

    /// The raw int8 values from `start` on (clamped to int8), into `out`; only called
    /// when [`Values::integer_steps`] found them.
    #[inline(always)]
    fn raw_i32(&self, start: usize, out: &mut [i32]) {
        if !self.each_raw(start, out, |o, r| *o = r) {
            out.fill(0);
        }
    }

    /// The raw int8 values from `start` on minus the zero point (their exact position in
    /// int8 steps), into `steps`; false when the raw values are not known.
    #[inline(always)]
    fn steps_from_zero_point(&self, start: usize, zp: i32, steps: &mut [f32]) -> bool {
        self.each_raw(start, steps, |s, r| *s = (r - zp) as f32)
    }

    /// The int8 histogram bins (`value + 128`) of the raw values from `start` on, into
    /// `bins`; false when the raw values are not known.
    #[inline(always)]
    fn raw_bins(&self, start: usize, bins: &mut [u8]) -> bool {
        let range = start..start + bins.len();
        match self {
            Values::F64WithRaw(_, raw) => {
                for (b, &r) in bins.iter_mut().zip(&raw[range]) {
                    *b = (r.clamp(-128, 127) + 128) as u8;
                }
            }
            Values::Int8 { raw, .. } => {
                for (b, &r) in bins.iter_mut().zip(&raw[range]) {
                    *b = (r as u8) ^ 0x80;
                }
            }
            _ => return false,
        }
        true
    }
}

/// Every running sum of a [`LayerSample`], one per lane, in `T`.
#[derive(Default)]
struct PerLane<T> {
    diff: [T; LANES],
    diff_sq: [T; LANES],
    abs: [T; LANES],
    max_abs: [T; LANES],
    sig: [T; LANES],
    f: [T; LANES],
    q: [T; LANES],
    q2: [T; LANES],
    dot: [T; LANES],
}

/// The sums across blocks, in f64.
type LaneSums = PerLane<f64>;

/// One block's sums, in f32.
type BlockSums = PerLane<f32>;

/// The lanes of [`LaneSums`] combined.
struct Sums {
    diff: f64,
    diff_sq: f64,
    abs: f64,
    max_abs: f64,
    sig: f64,
    f: f64,
    q: f64,
    q2: f64,
    dot: f64,
}

/// One block's sums: `f[i]` against `q(i)`, the dequantized value of element `i` with
/// its raw int8 value (used when `STEPS`: then `q`'s own sums are left to [`StepSums`],
/// else summed in f32 lanes too). Every build of every caller runs these same operations
/// in the same order, so the sums agree bit for bit: products are fused into their sums
/// with `mul_add` (one instruction with FMA, the same bits without), and the largest
/// difference is a plain comparison (one `vmaxps`; `f32::max`'s NaN handling cost three
/// instructions per lane), which skips a NaN.
///
/// The accumulators are local arrays, one register each: as fields of a struct the
/// compiler kept them in memory, loading and storing each per value (2.8x slower).
#[inline(always)]
fn block_sums<const STEPS: bool, const EXTRAS: bool, S: Copy>(
    f: &[f32],
    source: &[S],
    value: impl Fn(S) -> (f32, i32),
    zp: i32,
) -> (BlockSums, StepSums) {
    let (mut diff, mut diff_sq, mut abs, mut max_abs) =
        ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let (mut sig, mut sum_f, mut dot) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let (mut sum_q, mut sum_q2) = ([0f32; LANES], [0f32; LANES]);
    let (mut s1, mut s2, mut sat) = ([0i32; LANES], [0i32; LANES], [0i32; LANES]);
    // A macro, not a closure: a closure holding the accumulators by reference kept them
    // in memory too.
    macro_rules! lane {
        ($l:expr, $f:expr, $q:expr, $r:expr) => {{
            let (l, f, q, r): (usize, f32, f32, i32) = ($l, $f, $q, $r);
            let d = q - f;
            diff[l] += d;
            diff_sq[l] = d.mul_add(d, diff_sq[l]);
            let a = d.abs();
            max_abs[l] = if a > max_abs[l] { a } else { max_abs[l] };
            if !EXTRAS {
                // TensorFlow's statistics only (see `LayerSample::extras`).
            } else if STEPS {
                abs[l] += a;
                sig[l] = f.mul_add(f, sig[l]);
                sum_f[l] += f;
                dot[l] = f.mul_add(q, dot[l]);
                let st = r - zp;
                s1[l] += st;
                s2[l] += st * st;
                sat[l] += i32::from(r == -128 || r == 127);
            } else {
                abs[l] += a;
                sig[l] = f.mul_add(f, sig[l]);
                sum_f[l] += f;
                dot[l] = f.mul_add(q, dot[l]);
                sum_q[l] += q;
                sum_q2[l] = q.mul_add(q, sum_q2[l]);
            }
        }};
    }
    // Whole lane groups as arrays (no bounds checks), then the tail.
    let n = f.len().min(source.len());
    let mut groups = f[..n]
        .chunks_exact(LANES)
        .zip(source[..n].chunks_exact(LANES));
    for (fc, sc) in &mut groups {
        // Chunks of exactly LANES: the conversions cannot fail.
        let fc: &[f32; LANES] = fc.try_into().expect("a whole lane group");
        let sc: &[S; LANES] = sc.try_into().expect("a whole lane group");
        for l in 0..LANES {
            let (q, r) = value(sc[l]);
            lane!(l, fc[l], q, r);
        }
    }
    let tail = n / LANES * LANES;
    for (l, (&x, &sv)) in f[tail..n].iter().zip(&source[tail..n]).enumerate() {
        let (q, r) = value(sv);
        lane!(l, x, q, r);
    }
    let b = BlockSums {
        diff,
        diff_sq,
        abs,
        max_abs,
        sig,
        f: sum_f,
        q: sum_q,
        q2: sum_q2,
        dot,
    };
    let t = StepSums {
        s: s1,
        s2,
        saturated: sat,
    };
    (b, t)
}

/// Sums of the int8 steps `s = raw - zero_point` (and of `s^2`, and of the saturated
/// values), exact in integers: with the steps known, `sum(q) = scale * sum(s)` and
/// `sum(q^2) = scale^2 * sum(s^2)` need no float sums, and are exact where f32 lanes
/// would round. i32 lanes hold a block (32 values a lane, `|s| <= 383`); totals are i64.
#[derive(Default)]
struct StepSums {
    s: [i32; LANES],
    s2: [i32; LANES],
    saturated: [i32; LANES],
}

/// The zero points whose steps [`StepSums`] can hold (int8 zero points, with room).
const STEP_ZERO_POINTS: std::ops::RangeInclusive<i64> = -256..=255;

/// [`StepSums`] over every block.
#[derive(Default, Clone, Copy)]
struct StepTotals {
    s: i64,
    s2: i64,
    saturated: i64,
}

impl StepTotals {
    fn add(&mut self, b: &StepSums) {
        self.s += b.s.iter().map(|&v| i64::from(v)).sum::<i64>();
        self.s2 += b.s2.iter().map(|&v| i64::from(v)).sum::<i64>();
        self.saturated += b.saturated.iter().map(|&v| i64::from(v)).sum::<i64>();
    }
}

impl LaneSums {
    /// A block of float values and their int8 twins given raw: dequantized (as
    /// [`Values::fill`] does) and summed in one pass, nothing stored between.
    #[inline(always)]
    fn add_int8_block(
        &mut self,
        steps: &mut StepTotals,
        f: &[f32],
        raw: &[i8],
        scale: f32,
        zp: i32,
        extras: bool,
    ) {
        let n = f.len().min(raw.len());
        let raw = &raw[..n];
        let dequantize = |r: i8| {
            let r = i32::from(r);
            ((r - zp) as f32 * scale, r)
        };
        let (b, t) = if extras {
            block_sums::<true, true, i8>(&f[..n], raw, dequantize, zp)
        } else {
            block_sums::<true, false, i8>(&f[..n], raw, dequantize, zp)
        };
        self.widen(&b);
        steps.add(&t);
    }

    /// A block of float values and dequantized values given as f32 (`q`), with their int8
    /// steps when known: the same sums as [`LaneSums::add_int8_block`] when they are.
    #[inline(always)]
    fn add_block(&mut self, steps: Option<(&mut StepTotals, &[i32], i32)>, f: &[f32], q: &[f32]) {
        let n = f.len().min(q.len());
        let (f, q) = (&f[..n], &q[..n]);
        match steps {
            Some((totals, raw, zp)) => {
                let raw = &raw[..n];
                let mut pairs = [(0f32, 0i32); BLOCK];
                for (p, (&q, &r)) in pairs.iter_mut().zip(q.iter().zip(raw)) {
                    *p = (q, r);
                }
                let (b, t) = block_sums::<true, true, (f32, i32)>(f, &pairs[..n], |p| p, zp);
                self.widen(&b);
                totals.add(&t);
            }
            None => {
                let (b, _) = block_sums::<false, true, f32>(f, q, |q| (q, 0), 0);
                self.widen(&b);
            }
        }
    }

    #[inline(always)]
    fn widen(&mut self, b: &BlockSums) {
        let widen = |total: &mut [f64; LANES], part: &[f32; LANES]| {
            for (t, &p) in total.iter_mut().zip(part) {
                *t += f64::from(p);
            }
        };
        widen(&mut self.diff, &b.diff);
        widen(&mut self.diff_sq, &b.diff_sq);
        widen(&mut self.abs, &b.abs);
        widen(&mut self.sig, &b.sig);
        widen(&mut self.f, &b.f);
        widen(&mut self.q, &b.q);
        widen(&mut self.q2, &b.q2);
        widen(&mut self.dot, &b.dot);
        for (m, &p) in self.max_abs.iter_mut().zip(&b.max_abs) {
            let p = f64::from(p);
            *m = if p > *m { p } else { *m };
        }
    }

    /// The lanes combined; `q` and `q2` from the int8 steps when they were counted (with
    /// the scale they dequantize with).
    fn total(&self, steps: Option<(f64, &StepTotals)>) -> Sums {
        let (q, q2) = match steps {
            Some((scale, t)) => (scale * t.s as f64, scale * scale * t.s2 as f64),
            None => (lanes_sum(&self.q), lanes_sum(&self.q2)),
        };
        Sums {
            diff: lanes_sum(&self.diff),
            diff_sq: lanes_sum(&self.diff_sq),
            abs: lanes_sum(&self.abs),
            max_abs: self.max_abs.iter().fold(0f64, |m, &v| m.max(v)),
            sig: lanes_sum(&self.sig),
            f: lanes_sum(&self.f),
            q,
            q2,
            dot: lanes_sum(&self.dot),
        }
    }
}

/// Lanes added pairwise in a fixed order.
fn lanes_sum(v: &[f64; LANES]) -> f64 {
    let mut half = [0f64; LANES / 2];
    for (i, h) in half.iter_mut().enumerate() {
        *h = v[i] + v[i + LANES / 2];
    }
    ((half[0] + half[4]) + (half[2] + half[6])) + ((half[1] + half[5]) + (half[3] + half[7]))
}

impl Default for LayerAccumulator {
    fn default() -> Self {
        LayerAccumulator {
            step: None,
            float_hist: [0; 256],
            quant_hist: [0; 256],
            error_hist: [0; ERROR_BINS],
            num_elements: NanMean::default(),
            stddev: NanMean::default(),
            mean_error: NanMean::default(),
            max_abs_error: NanMean::default(),
            mean_squared_error: NanMean::default(),
            signal_power: 0.0,
            noise_power: 0.0,
            abs_error: 0.0,
            max_abs_global: 0.0,
            elements: 0,
            sum_f: 0.0,
            sum_q: 0.0,
            sum_q2: 0.0,
            dot: 0.0,
            saturated: 0,
            extras_missing: false,
            samples: 0,
        }
    }
}

impl LayerAccumulator {
    /// An accumulator that also histograms values per int8 step of the layer's output.
    pub fn for_layer(scale: f64, zero_point: i64) -> Self {
        LayerAccumulator {
            step: Some((scale, zero_point)),
            ..Default::default()
        }
    }

    /// Adds one sample: the float reference, the dequantized int8 result, and how many
    /// of the int8 values sit at -128 or 127.
    pub fn add_sample(&mut self, float: &[f64], dequantized: &[f64], saturated: usize) {
        self.add(&LayerSample::new(self.step, float, dequantized, saturated));
    }

    /// The step (scale, zero point) [`LayerSample::new`] needs to histogram a sample for
    /// this layer.
    pub fn step(&self) -> Option<(f64, i64)> {
        self.step
    }

    /// Merges one sample measured on its own. Merging samples in sample order gives the
    /// same sums, bit for bit, as adding them one by one on a single thread: each sample's
    /// partial sums are computed alone either way, then added here in the same order.
    pub fn add(&mut self, s: &LayerSample) {
        let m = &s.metrics;
        self.num_elements.add(m.num_elements);
        self.stddev.add(m.stddev);
        self.mean_error.add(m.mean_error);
        self.max_abs_error.add(m.max_abs_error);
        self.mean_squared_error.add(m.mean_squared_error);
        self.signal_power += s.signal_power;
        self.noise_power += s.noise_power;
        self.abs_error += s.abs_error;
        self.max_abs_global = self.max_abs_global.max(m.max_abs_error);
        self.elements += s.elements;
        self.sum_f += s.sum_f;
        self.sum_q += s.sum_q;
        self.sum_q2 += s.sum_q2;
        self.dot += s.dot;
        self.saturated += s.saturated;
        self.extras_missing |= !s.extras;
        if let Some(h) = &s.hist {
            for (acc, v) in self.float_hist.iter_mut().zip(&h.0) {
                *acc += v;
            }
            for (acc, v) in self.quant_hist.iter_mut().zip(&h.1) {
                *acc += v;
            }
            for (acc, v) in self.error_hist.iter_mut().zip(&h.2) {
                *acc += v;
            }
        }
        self.samples += 1;
    }

    /// KL(float || int8) of the value distributions over the layer's 256 int8 steps;
    /// empty int8 bins get a 1e-10 floor so a float value the int8 output cannot take
    /// counts as a large, finite divergence.
    fn kl_divergence(&self) -> f64 {
        let n = self.float_hist.iter().sum::<u64>() as f64;
        let m = self.quant_hist.iter().sum::<u64>() as f64;
        if self.step.is_none() || n == 0.0 || m == 0.0 {
            return f64::NAN;
        }
        self.float_hist
            .iter()
            .zip(&self.quant_hist)
            .filter(|(&f, _)| f > 0)
            .map(|(&f, &q)| {
                let p = f as f64 / n;
                let q = (q as f64 / m).max(1e-10);
                p * (p / q).ln()
            })
            .sum()
    }

    /// The value and error distributions so far; `None` without a usable int8 step.
    pub fn histograms(&self) -> Option<LayerHistograms> {
        let (scale, zero_point) = self.step.filter(|(s, _)| *s > 0.0)?;
        Some(LayerHistograms {
            scale,
            zero_point,
            float: self.float_hist.to_vec(),
            dequantized: self.quant_hist.to_vec(),
            error: self.error_hist.to_vec(),
        })
    }

    pub fn metrics(&self) -> LayerMetrics {
        // Not measured is not zero: NaN, as for a layer without samples.
        let extra = |v: f64| if self.extras_missing { f64::NAN } else { v };
        LayerMetrics {
            num_elements: self.num_elements.value(),
            stddev: self.stddev.value(),
            mean_error: self.mean_error.value(),
            max_abs_error: self.max_abs_error.value(),
            mean_squared_error: self.mean_squared_error.value(),
            sqnr_db: extra(10.0 * (self.signal_power / self.noise_power).log10()),
            cosine: extra(self.dot / (self.signal_power.sqrt() * self.sum_q2.sqrt())),
            mean_abs_error: extra(self.abs_error / self.elements.max(1) as f64),
            max_abs_error_global: self.max_abs_global,
            correlation: extra({
                let n = self.elements as f64;
                let cov = self.dot - self.sum_f * self.sum_q / n;
                let var_f = self.signal_power - self.sum_f * self.sum_f / n;
                let var_q = self.sum_q2 - self.sum_q * self.sum_q / n;
                cov / (var_f * var_q).sqrt()
            }),
            saturation: extra(self.saturated as f64 / self.elements.max(1) as f64),
            kl_divergence: self.kl_divergence(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// diff = [1, -1, 2, 0]: mean 0.5; squares 1, 1, 4, 0 -> mse 1.5;
    /// variance = mse - mean^2 = 1.25 -> stddev sqrt(1.25); max |diff| 2.
    #[test]
    fn sample_metrics_by_hand() {
        let m = sample_metrics(&[1.0, -1.0, 2.0, 0.0]);
        assert_eq!(m.num_elements, 4.0);
        assert_eq!(m.mean_error, 0.5);
        assert_eq!(m.mean_squared_error, 1.5);
        assert!((m.stddev - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(m.max_abs_error, 2.0);
    }

    /// Two samples with per-sample maxima 2 and 4: TensorFlow reports their mean, 3.
    #[test]
    fn samples_are_averaged_like_nanmean() {
        let mut acc = LayerAccumulator::default();
        acc.add_sample(&[0.0, 0.0], &[2.0, 0.0], 0);
        acc.add_sample(&[0.0, 0.0], &[4.0, 0.0], 1);
        let m = acc.metrics();
        assert_eq!(m.max_abs_error, 3.0);
        // mse per sample: 2 and 8 -> mean 5
        assert_eq!(m.mean_squared_error, 5.0);
        // pooled: |errors| 2, 0, 4, 0 -> mean 1.5, global max 4; 1 of 4 saturated
        assert_eq!(m.mean_abs_error, 1.5);
        assert_eq!(m.max_abs_error_global, 4.0);
        assert_eq!(m.saturation, 0.25);
        let mut nm = NanMean::default();
        nm.add(f64::NAN);
        nm.add(1.0);
        nm.add(3.0);
        assert_eq!(nm.value(), 2.0);
    }

    /// Scale 0.5, zero point 0: values 0.4 and 1.0 quantize to steps 1 and 2; the int8
    /// results 0.5 and 1.0 (errors +0.1 = 0.2 scales -> bin 16+1, and 0 -> centre bin 16).
    #[test]
    fn histograms_by_hand() {
        let mut acc = LayerAccumulator::for_layer(0.5, 0);
        acc.add_sample(&[0.4, 1.0], &[0.5, 1.0], 0);
        let h = acc
            .histograms()
            .expect("a layer with a scale has histograms");
        assert_eq!(h.float[128 + 1], 1);
        assert_eq!(h.float[128 + 2], 1);
        assert_eq!(h.dequantized[128 + 1], 1);
        assert_eq!(h.dequantized[128 + 2], 1);
        assert_eq!(h.error[16], 1);
        assert_eq!(h.error[17], 1);
        assert_eq!(h.error.iter().sum::<u64>(), 2);
        // Far errors land in the end bins.
        assert_eq!(error_bin(-100.0), 0);
        assert_eq!(error_bin(100.0), ERROR_BINS - 1);
        assert_eq!(error_bin(f64::NAN), ERROR_BINS / 2);
        assert!(LayerAccumulator::default().histograms().is_none());
    }
}

/// Final outputs of the float model against the int8 model (first output, which is the
/// prediction for classifiers), with accuracies when labels are given.
#[derive(Clone, Debug, Default)]
pub struct ModelAccumulator {
    squared_error: f64,
    elements: usize,
    signal_power: f64,
    dot: f64,
    float_norm: f64,
    quant_norm: f64,
    argmax_agree: usize,
    top5_agree: usize,
    float_top1: usize,
    float_top5: usize,
    quant_top1: usize,
    quant_top5: usize,
    labelled: usize,
    samples: usize,
}

/// Model-level metrics as reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ModelMetrics {
    pub samples: usize,
    pub mse: f64,
    pub sqnr_db: f64,
    pub cosine: f64,
    /// Fraction of samples where both models pick the same class.
    pub argmax_agreement: f64,
    /// Fraction of samples where the int8 model's top class is in the float model's top 5.
    pub top5_agreement: f64,
    pub float_top1: Option<f64>,
    pub float_top5: Option<f64>,
    pub int8_top1: Option<f64>,
    pub int8_top5: Option<f64>,
}

fn top_k(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

impl ModelAccumulator {
    pub fn add_sample(&mut self, float: &[f64], quant: &[f64], label: Option<i64>) {
        for (f, q) in float.iter().zip(quant) {
            self.squared_error += (q - f) * (q - f);
            self.signal_power += f * f;
            self.dot += f * q;
            self.float_norm += f * f;
            self.quant_norm += q * q;
        }
        self.elements += float.len();
        let (ft, qt) = (top_k(float, 5), top_k(quant, 5));
        if let (Some(&f0), Some(&q0)) = (ft.first(), qt.first()) {
            self.argmax_agree += usize::from(f0 == q0);
            self.top5_agree += usize::from(ft.contains(&q0));
        }
        if let Some(label) = label.and_then(|l| usize::try_from(l).ok()) {
            self.labelled += 1;
            self.float_top1 += usize::from(ft.first() == Some(&label));
            self.float_top5 += usize::from(ft.contains(&label));
            self.quant_top1 += usize::from(qt.first() == Some(&label));
            self.quant_top5 += usize::from(qt.contains(&label));
        }
        self.samples += 1;
    }

    pub fn metrics(&self) -> ModelMetrics {
        let n = self.samples.max(1) as f64;
        let labelled = (self.labelled > 0).then_some(self.labelled as f64);
        ModelMetrics {
            samples: self.samples,
            mse: self.squared_error / self.elements.max(1) as f64,
            sqnr_db: 10.0 * (self.signal_power / self.squared_error).log10(),
            cosine: self.dot / (self.float_norm.sqrt() * self.quant_norm.sqrt()),
            argmax_agreement: self.argmax_agree as f64 / n,
            top5_agreement: self.top5_agree as f64 / n,
            float_top1: labelled.map(|l| self.float_top1 as f64 / l),
            float_top5: labelled.map(|l| self.float_top5 as f64 / l),
            int8_top1: labelled.map(|l| self.quant_top1 as f64 / l),
            int8_top5: labelled.map(|l| self.quant_top5 as f64 / l),
        }
    }
}

#[cfg(test)]
mod fast_bin_tests {
    use super::*;

    /// The libm-free binning equals the plain formulas, halves and edges included.
    #[test]
    fn fast_bins_equal_the_rounding_formulas() {
        let mut values: Vec<f32> = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -2.5,
            0.499_999_97,
            -0.499_999_97,
            127.5,
            -128.5,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            4.125,
            -4.125,
        ];
        let mut state = 12345u64;
        for _ in 0..100_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            values.push((unit - 0.5) * 600.0);
            // Exact halves and quarters, where rounding direction matters.
            values.push(((state >> 20) % 1200) as f32 / 2.0 - 300.0);
            values.push(((state >> 30) % 1200) as f32 / 8.0 - 75.0);
        }
        for &x in &values {
            for zp in [-128i32, -3, 0, 5, 127] {
                let plain = if x.is_finite() {
                    (((x.round() as i64).saturating_add(i64::from(zp))).clamp(-128, 127) + 128)
                        as u8
                } else if x.is_nan() {
                    (zp.clamp(-128, 127) + 128) as u8
                } else if x > 0.0 {
                    255
                } else {
                    0
                };
                assert_eq!(step_bin(x, zp), plain, "x {x} zp {zp}");
            }
            assert_eq!(
                usize::from(error_step_bin(x)),
                error_bin(f64::from(x)),
                "x {x}"
            );
        }
    }
}

#[cfg(test)]
mod pooled_tests {
    use super::*;

    /// float [1, 2, 3], int8 result [1, 2, 4]: cosine = 17 / (sqrt(14) sqrt(21)),
    /// correlation of (1,2,3) with (1,2,4) = 1.5 / sqrt(1 * 2.3333) by hand.
    #[test]
    fn cosine_and_correlation_by_hand() {
        let mut acc = LayerAccumulator::default();
        acc.add_sample(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0], 0);
        let m = acc.metrics();
        assert!((m.cosine - 17.0 / (14f64.sqrt() * 21f64.sqrt())).abs() < 1e-12);
        assert!((m.correlation - 1.5 / (1.0f64 * (7.0 / 3.0)).sqrt()).abs() < 1e-12);
        // signal 14, noise 1 -> 10 log10(14)
        assert!((m.sqnr_db - 10.0 * 14f64.log10()).abs() < 1e-12);
    }
}

#[cfg(test)]
mod kl_tests {
    use super::*;

    /// Scale 1, zero point 0: values land in the bins of their rounded value.
    /// float [0, 1] vs int8 [0, 0]: p = (0.5, 0.5), q = (1, floor 1e-10) ->
    /// 0.5 ln(0.5) + 0.5 ln(0.5 / 1e-10), worked out by hand.
    #[test]
    fn kl_by_hand() {
        let mut acc = LayerAccumulator::for_layer(1.0, 0);
        acc.add_sample(&[0.0, 1.0], &[0.0, 0.0], 0);
        let want = 0.5 * 0.5f64.ln() + 0.5 * (0.5f64 / 1e-10).ln();
        assert!((acc.metrics().kl_divergence - want).abs() < 1e-9);
        let mut same = LayerAccumulator::for_layer(1.0, 0);
        same.add_sample(&[2.2, -3.1], &[2.0, -3.0], 0);
        assert_eq!(same.metrics().kl_divergence, 0.0);
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;

    /// Two samples, three classes, labels [0, 2]: worked by hand.
    #[test]
    fn model_metrics_by_hand() {
        let mut acc = ModelAccumulator::default();
        acc.add_sample(&[0.7, 0.2, 0.1], &[0.6, 0.3, 0.1], Some(0));
        acc.add_sample(&[0.2, 0.5, 0.3], &[0.2, 0.3, 0.5], Some(2));
        let m = acc.metrics();
        // squared errors: 0.01 + 0.01 + 0 + 0 + 0.04 + 0.04 = 0.10 over 6 elements
        assert!((m.mse - 0.1 / 6.0).abs() < 1e-12);
        // argmax: (0, 0) agree, (1, 2) differ
        assert_eq!(m.argmax_agreement, 0.5);
        assert_eq!(m.top5_agreement, 1.0);
        // float is right on sample 0 only; int8 on both
        assert_eq!(m.float_top1, Some(0.5));
        assert_eq!(m.int8_top1, Some(1.0));
    }
}

#[cfg(test)]
mod instruction_set_tests {
    use super::*;

    /// The AVX2 and AVX-512 builds of the measurement give the scalar build's sums and
    /// histograms bit for bit (same lanes, same order, the same multiply-adds fused), on a
    /// length that leaves a tail in the last block and in the last lane group; with the
    /// dequantized values written alongside, the same values as `dequantize_int8`'s.
    #[test]
    fn every_build_measures_the_same() {
        let n = 3 * BLOCK + 13;
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let float: Vec<f32> = (0..n).map(|_| next() * 20.0).collect();
        let raw: Vec<i8> = float
            .iter()
            .map(|&f| ((f / 0.07).round() + next() * 3.0).clamp(-128.0, 127.0) as i8)
            .collect();
        let params = crate::graph::QuantParams::per_tensor(0.07, -3);
        let expected = crate::ops::dequantize_int8(&raw, &[n], &params).unwrap();
        let measure = |level: u8, write: bool, extras: bool| {
            let (float, quant) = (
                Values::F32(&float),
                Values::Int8 {
                    raw: &raw,
                    scale: 0.07,
                    zero_point: -3,
                },
            );
            let step = Some((f64::from(0.07f32), -3));
            let mut values = vec![MaybeUninit::new(f32::NAN); n];
            let out = write.then_some(&mut values[..]);
            let sample = match level {
                #[cfg(target_arch = "x86_64")]
                1 => unsafe { measure_avx2(step, float, quant, 0, out, extras) },
                #[cfg(target_arch = "x86_64")]
                2 => unsafe { measure_avx512(step, float, quant, 0, out, extras) },
                _ => measure_body(step, float, quant, 0, out, extras),
            };
            if write {
                // SAFETY: initialised above (and overwritten by the measurement).
                let values: Vec<f32> = values.iter().map(|v| unsafe { v.assume_init() }).collect();
                assert_eq!(values, expected, "level {level}");
            }
            sample
        };
        let measure = |level: u8| {
            let sample = measure(level, false, true);
            assert_eq!(
                format!("{:?}", measure(level, true, true)),
                format!("{sample:?}"),
                "level {level}"
            );
            // Without the extras: TensorFlow's statistics (and the histograms) the same.
            let tf_only = measure(level, true, false);
            assert_eq!(tf_only.metrics, sample.metrics, "level {level}");
            assert_eq!(tf_only.noise_power, sample.noise_power, "level {level}");
            assert_eq!(tf_only.hist, sample.hist, "level {level}");
            assert!(!tf_only.extras && sample.extras);
            // Reported as not measured, not as zero.
            let mut acc = LayerAccumulator::default();
            acc.add(&tf_only);
            let m = acc.metrics();
            assert_eq!(m.mean_squared_error, sample.metrics.mean_squared_error);
            assert!(m.sqnr_db.is_nan() && m.cosine.is_nan() && m.mean_abs_error.is_nan());
            assert!(m.correlation.is_nan() && m.saturation.is_nan());
            format!("{sample:?}")
        };
        let scalar = measure(0);
        let detected = crate::kernels::simd::detected();
        if detected >= crate::kernels::simd::Level::Avx2 {
            assert_eq!(measure(1), scalar);
        }
        if detected >= crate::kernels::simd::Level::Avx512 {
            assert_eq!(measure(2), scalar);
        }
    }

    /// An int8 output measured from its raw values (`from_int8_output`, what the debugger
    /// runs) and from the same values given dequantized in f64 with their raw values
    /// (`from_int8`, the path with user metrics) is the same sample, bit for bit; also with
    /// a zero point beyond the integer sums' reach, where both add f32 values instead.
    #[test]
    fn raw_and_dequantized_int8_measure_the_same() {
        let n = 2 * BLOCK + 37;
        let float: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let raw: Vec<i8> = (0..n)
            .map(|i| ((i * 53 % 256) as i32 - 128) as i8)
            .collect();
        for (scale, zp) in [(0.011f32, -5i64), (0.011, 300)] {
            let params = crate::graph::QuantParams::per_tensor(scale, zp);
            let dequantized = crate::ops::dequantize_int8(&raw, &[n], &params).unwrap();
            let from_raw = LayerSample::from_int8_output(scale, zp, &float, &raw, true, true, None);
            let from_f64 = LayerSample::from_int8(
                (f64::from(scale), zp),
                &float.iter().map(|&f| f64::from(f)).collect::<Vec<_>>(),
                &dequantized
                    .iter()
                    .map(|&q| f64::from(q))
                    .collect::<Vec<_>>(),
                &raw.iter().map(|&r| i64::from(r)).collect::<Vec<_>>(),
            );
            assert_eq!(
                format!("{from_raw:?}"),
                format!("{from_f64:?}"),
                "zero point {zp}"
            );
            // The sums against a hand-written f64 loop: exact (to f64 rounding) from the
            // integer steps; f32 lane sums beyond their reach.
            let tolerance = if STEP_ZERO_POINTS.contains(&zp) {
                1e-12
            } else {
                1e-5
            };
            let steps: Vec<f64> = raw.iter().map(|&r| (i64::from(r) - zp) as f64).collect();
            let scale = f64::from(scale);
            let sum_q: f64 = steps.iter().sum::<f64>() * scale;
            let sum_q2: f64 = steps.iter().map(|s| s * s).sum::<f64>() * scale * scale;
            assert!(
                (from_raw.sum_q - sum_q).abs() <= tolerance * sum_q.abs(),
                "zero point {zp}"
            );
            assert!(
                (from_raw.sum_q2 - sum_q2).abs() <= tolerance * sum_q2,
                "zero point {zp}"
            );
            let saturated = raw.iter().filter(|&&r| r == -128 || r == 127).count();
            assert_eq!(from_raw.saturated, saturated);
        }
    }
}
