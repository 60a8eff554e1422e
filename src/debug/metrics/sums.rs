//! The measurement's passes over the values: per block, the float and int8 sides converted
//! to f32 once, summed in independent lanes (and the int8 steps in integers), the three
//! histograms binned, in one loop that vectorises. Compiled once per instruction set
//! (see `measure`).

use super::*;

crate::kernels::simd::widest_build! {
    /// [`measure_body`] compiled for the widest vectors `level` allows: the same operations
    /// in the same order (fused only where written as `mul_add`, which every build fuses),
    /// so the same results, in wider vectors.
    pub(super) fn measure(
        step: Option<(f64, i64)>,
        float: Values<'_>,
        quant: Values<'_>,
        saturated: usize,
        dequantized: Option<&mut [MaybeUninit<f32>]>,
        extras: bool,
    ) -> LayerSample = measure_body;
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
pub(super) enum Values<'a> {
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
    pub(super) fn fill_uninit(&self, start: usize, out: &mut [MaybeUninit<f32>]) {
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
pub(super) const STEP_ZERO_POINTS: std::ops::RangeInclusive<i64> = -256..=255;

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

#[cfg(test)]
mod tests;
