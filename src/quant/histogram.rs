//! Bounded histograms of activation values, collected in the calibration's one pass so
//! that better ranges (percentile, minimum-MSE, entropy: [`super::range_search`]) can be
//! found later without running the model again.
//!
//! Layout: a fixed, even number of bins spanning `[-half_span, half_span]`, where
//! `half_span` is a power of two (or 0 while every value seen is 0). Signed values, not
//! absolute ones: TFLite's int8 activations are asymmetric, so the two tails are cut
//! separately. The span is symmetric about zero so that 0 is always a bin edge (a range
//! found on edges contains 0 exactly where the quantizer needs it) and so that ONNX
//! Runtime's entropy calibrator, which assumes that layout, can be run on it as an oracle.
//!
//! Growth: ONNX Runtime's collector widens its histogram by adding bins of the old width,
//! so its memory grows with the data. Here the bin count is fixed and the span only ever
//! doubles: a wider histogram's bin is then exactly `2^k` bins of a narrower one, so
//! merging moves whole counts and never splits one between bins. Each sample's histogram
//! takes the smallest power-of-two span that holds it; merging two histograms is exact,
//! commutative and associative, so the result is the same whatever the thread count or
//! the order the samples finish in. The price: the span is up to twice the largest |value|,
//! so only a quarter of the bins may lie between 0 and the farther observed end.

use serde::{Deserialize, Serialize};

use super::calibration::TensorRange;

/// Bins of every calibration histogram: 2048, as ONNX Runtime's percentile calibrator
/// and TensorRT's entropy calibrator use.
pub const CALIBRATION_HISTOGRAM_BINS: usize = 2048;

/// A histogram of a tensor's values over `[-half_span, half_span]` (see the module).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SavedHistogram", into = "SavedHistogram")]
pub struct Histogram {
    /// A power of two, or 0 when every value counted was 0 (all counts in the bin just
    /// right of zero).
    half_span: f64,
    counts: Vec<u64>,
    /// The exact smallest and largest value counted.
    range: TensorRange,
}

impl Histogram {
    /// The histogram of `values`, whose min and max are `range` (the caller has them
    /// already), in `bins` bins. `bins` must be an even power of two; values must be
    /// finite.
    pub fn of_values(values: &[f32], range: TensorRange, bins: usize) -> Histogram {
        assert!(
            bins >= 2 && bins.is_power_of_two(),
            "a histogram needs an even power-of-two bin count, not {bins}"
        );
        let largest = f64::from(range.min.abs().max(range.max.abs()));
        let half_span = power_of_two_at_least(largest);
        let mut counts = vec![0u64; bins];
        let center = bins / 2;
        if half_span == 0.0 {
            counts[center] = values.len() as u64;
        } else {
            count_into(&mut counts, values, half_span);
        }
        Histogram {
            half_span,
            counts,
            range,
        }
    }

    /// The histogram of an evenly spaced subset of `values` (every `stride`-th, from the
    /// first) of at most about `most` values, `range` being the min and max of all of them.
    /// `stride` is chosen coprime with `channels` (the innermost dimension's size), so
    /// that in a channels-last tensor every channel is sampled, not the same few.
    pub fn of_sampled_values(
        values: &[f32],
        range: TensorRange,
        bins: usize,
        most: usize,
        channels: usize,
    ) -> Histogram {
        let mut stride = values.len().div_ceil(most.max(1)).max(1);
        while stride > 1 && gcd(stride, channels.max(1)) != 1 {
            stride += 1;
        }
        if stride == 1 {
            return Histogram::of_values(values, range, bins);
        }
        let sampled: Vec<f32> = values.iter().step_by(stride).copied().collect();
        Histogram::of_values(&sampled, range, bins)
    }

    /// Adds `other`'s counts: the narrower of the two is folded into the wider one's bins
    /// (exactly: the spans differ by a power of two). Both must have the same bin count.
    pub fn merge(&mut self, other: &Histogram) {
        assert_eq!(
            self.counts.len(),
            other.counts.len(),
            "merging histograms of different bin counts"
        );
        if other.half_span > self.half_span {
            let mut wider = other.clone();
            wider.add_narrower(self);
            *self = wider;
        } else {
            self.add_narrower(other);
        }
    }

    /// Adds the counts of `narrower` (`narrower.half_span <= self.half_span`).
    fn add_narrower(&mut self, narrower: &Histogram) {
        let center = self.counts.len() as i64 / 2;
        if narrower.half_span == 0.0 || self.half_span == 0.0 {
            // All of `narrower`'s values are 0: its counts sit in its center bin.
            let total: u64 = narrower.counts.iter().sum();
            self.counts[center as usize] += total;
        } else if self.half_span == narrower.half_span {
            // The common case once the span has settled: bin for bin.
            for (a, b) in self.counts.iter_mut().zip(&narrower.counts) {
                *a += b;
            }
        } else {
            // The spans differ by 2^shift: an arithmetic shift is the floor division.
            let shift = (self.half_span / narrower.half_span).log2().round() as u32;
            let shift = shift.min(63);
            for (j, &n) in narrower.counts.iter().enumerate() {
                if n != 0 {
                    let bin = center + ((j as i64 - center) >> shift);
                    self.counts[bin as usize] += n;
                }
            }
        }
        self.range.min = self.range.min.min(narrower.range.min);
        self.range.max = self.range.max.max(narrower.range.max);
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The bins' edges, `counts().len() + 1` of them, from `-half_span` to `half_span`
    /// (exact in f32: multiples of a power of two). All 0 for an all-zero histogram.
    pub fn edges(&self) -> Vec<f64> {
        (0..=self.counts.len()).map(|k| self.edge(k)).collect()
    }

    /// Edge `k` (0 ..= bins).
    pub fn edge(&self, k: usize) -> f64 {
        let center = self.counts.len() as f64 / 2.0;
        (k as f64 - center) * self.bin_width()
    }

    pub fn bin_width(&self) -> f64 {
        2.0 * self.half_span / self.counts.len() as f64
    }

    pub fn half_span(&self) -> f64 {
        self.half_span
    }

    /// The smallest and largest value counted (the calibrated range).
    pub fn range(&self) -> TensorRange {
        self.range
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// A histogram from its parts, for tests and for ranges found elsewhere: `counts`
    /// (an even power of two of them) over `[-half_span, half_span]` (a power of two, or
    /// 0 with every count in the center bin), values observed in `range`.
    pub fn from_parts(
        half_span: f64,
        counts: Vec<u64>,
        range: TensorRange,
    ) -> Result<Histogram, String> {
        SavedHistogram {
            half_span,
            bins: counts.len(),
            range,
            counts: CountsText::from_counts(&counts),
        }
        .try_into()
    }
}

/// Values binned per pass of [`count_into`]: their bin indices fit in a small buffer.
const BIN_BATCH: usize = 512;

/// Adds `values` (all within `[-half_span, half_span]`, `half_span` a power of two > 0)
/// to `counts`.
///
/// Bins per unit value are a power of two, so `v * per_unit` is exact and its floor is the
/// bin's offset from the center bin, without any rounding (a tiny negative value lands left
/// of zero, not on it). The indices of a batch are computed first, in a loop the compiler
/// vectorises (truncation corrected to the floor, no call to `floor`, which costs more than
/// all the rest on baseline x86-64), then counted into four sub-histograms in turn:
/// consecutive values often fall in the same bin (ReLU's zeros), and one counter would make
/// each increment wait for the previous one.
fn count_into(counts: &mut [u64], values: &[f32], half_span: f64) {
    let bins = counts.len();
    // Sub-histograms pay for themselves only on values several times the bins (zeroing
    // and adding them up costs as much as counting 8 values a bin): a small tensor (an
    // SE block's 1x1xC) is counted straight into `counts`.
    if values.len() < 8 * bins {
        let mut index = [0u32; BIN_BATCH];
        for batch in values.chunks(BIN_BATCH) {
            let index = &mut index[..batch.len()];
            bin_indices(index, batch, bins, half_span);
            for &i in index.iter() {
                counts[i as usize] += 1;
            }
        }
        return;
    }
    thread_local! {
        static LANES: std::cell::RefCell<Vec<[u32; 4]>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LANES.with_borrow_mut(|lanes| {
        lanes.clear();
        lanes.resize(bins, [0; 4]);
        let mut index = [0u32; BIN_BATCH];
        // u32 sub-counts: flushed before any could overflow.
        for block in values.chunks(1 << 31) {
            for batch in block.chunks(BIN_BATCH) {
                let index = &mut index[..batch.len()];
                bin_indices(index, batch, bins, half_span);
                let mut quads = index.chunks_exact(4);
                for q in &mut quads {
                    lanes[q[0] as usize][0] += 1;
                    lanes[q[1] as usize][1] += 1;
                    lanes[q[2] as usize][2] += 1;
                    lanes[q[3] as usize][3] += 1;
                }
                for &i in quads.remainder() {
                    lanes[i as usize][0] += 1;
                }
            }
            for (c, l) in counts.iter_mut().zip(lanes.iter_mut()) {
                *c += u64::from(l[0]) + u64::from(l[1]) + u64::from(l[2]) + u64::from(l[3]);
                *l = [0; 4];
            }
        }
    });
}

/// The bin of each of `values` (see [`count_into`]).
fn bin_indices(index: &mut [u32], values: &[f32], bins: usize, half_span: f64) {
    let center = bins / 2;
    let per_unit = center as f64 / half_span;
    let per_unit_f32 = per_unit as f32;
    if per_unit_f32.is_normal() {
        let center = center as i32;
        let reach = center as f32;
        // The largest f32 below `reach`: a value on the span's upper end goes in the last
        // bin (as numpy's does). Clamping in f32 keeps the loop free of integer min/max,
        // which baseline x86-64 cannot vectorise.
        let below_reach = f32::from_bits(reach.to_bits() - 1);
        for (i, &v) in index.iter_mut().zip(values) {
            // Within [-center, center) for values within the span; `max`/`min` also turn
            // a NaN into a bound.
            let x = (v * per_unit_f32).max(-reach).min(below_reach);
            // SAFETY: x is finite and within i32's range.
            let t: i32 = unsafe { x.to_int_unchecked() };
            let floor = t - i32::from(v < 0.0 && (x != t as f32 || x == 0.0));
            *i = (floor + center) as u32;
        }
    } else {
        // Spans so small (below 2^-117) or large that `per_unit` is no normal f32.
        let top = bins as i64 - 1;
        for (i, &v) in index.iter_mut().zip(values) {
            let floor = (f64::from(v) * per_unit).floor() as i64;
            *i = (floor + center as i64).clamp(0, top) as u32;
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The smallest power of two >= `x` (0 for 0).
fn power_of_two_at_least(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let mut p = 2f64.powi(x.log2().ceil() as i32);
    // log2 may round either way near a power of two.
    while p < x {
        p *= 2.0;
    }
    while p / 2.0 >= x {
        p /= 2.0;
    }
    p
}

/// The saved form: counts as one line of text (run-length coded) rather than an array a
/// pretty-printed JSON file would spread over 2048 lines.
#[derive(Serialize, Deserialize)]
struct SavedHistogram {
    half_span: f64,
    bins: usize,
    #[serde(flatten)]
    range: TensorRange,
    counts: CountsText,
}

/// Counts separated by spaces; a run of `r` equal counts `c` is written `c*r`.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct CountsText(String);

impl CountsText {
    fn from_counts(counts: &[u64]) -> CountsText {
        use std::fmt::Write;
        // Written in place: a `format!` per count was most of the cost of saving.
        let mut text = String::with_capacity(counts.len() * 4);
        let mut i = 0;
        while i < counts.len() {
            let c = counts[i];
            let run = counts[i..].iter().take_while(|&&x| x == c).count();
            if !text.is_empty() {
                text.push(' ');
            }
            // Writing to a String cannot fail.
            if run >= 3 {
                let _ = write!(text, "{c}*{run}");
                i += run;
            } else {
                let _ = write!(text, "{c}");
                i += 1;
            }
        }
        CountsText(text)
    }

    /// The counts, refused once there are more than `bins` (a file cannot make it
    /// allocate more than its header says).
    fn to_counts(&self, bins: usize) -> Result<Vec<u64>, String> {
        let mut counts = Vec::with_capacity(bins);
        for token in self.0.split_ascii_whitespace() {
            let bad = || format!("histogram count '{token}' is not a count or count*run");
            match token.split_once('*') {
                Some((c, r)) => {
                    let c: u64 = c.parse().map_err(|_| bad())?;
                    let r: usize = r.parse().map_err(|_| bad())?;
                    if r > bins - counts.len() {
                        return Err(format!("histogram has more counts than its {bins} bins"));
                    }
                    counts.extend(std::iter::repeat_n(c, r));
                }
                None => counts.push(token.parse().map_err(|_| bad())?),
            }
            if counts.len() > bins {
                return Err(format!("histogram has more counts than its {bins} bins"));
            }
        }
        Ok(counts)
    }
}

impl From<Histogram> for SavedHistogram {
    fn from(h: Histogram) -> SavedHistogram {
        SavedHistogram {
            half_span: h.half_span,
            bins: h.counts.len(),
            range: h.range,
            counts: CountsText::from_counts(&h.counts),
        }
    }
}

impl TryFrom<SavedHistogram> for Histogram {
    type Error = String;
    fn try_from(s: SavedHistogram) -> Result<Histogram, String> {
        if s.bins < 2 || !s.bins.is_power_of_two() || s.bins > 1 << 24 {
            return Err(format!(
                "histogram bin count {} is not a power of two >= 2",
                s.bins
            ));
        }
        let span_ok = s.half_span == 0.0
            || (s.half_span.is_finite()
                && s.half_span > 0.0
                && s.half_span == power_of_two_at_least(s.half_span));
        if !span_ok {
            return Err(format!(
                "histogram half span {} is not 0 or a power of two",
                s.half_span
            ));
        }
        if !(s.range.min.is_finite() && s.range.max.is_finite() && s.range.min <= s.range.max) {
            return Err(format!(
                "histogram range {:?} is not a finite min <= max",
                s.range
            ));
        }
        let counts = s.counts.to_counts(s.bins)?;
        if counts.len() != s.bins {
            return Err(format!(
                "histogram has {} counts for {} bins",
                counts.len(),
                s.bins
            ));
        }
        let center = s.bins / 2;
        if s.half_span == 0.0
            && counts
                .iter()
                .enumerate()
                .any(|(i, &c)| i != center && c != 0)
        {
            return Err("an all-zero histogram has counts away from its center bin".into());
        }
        Ok(Histogram {
            half_span: s.half_span,
            counts,
            range: s.range,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: f32, max: f32) -> TensorRange {
        TensorRange { min, max }
    }

    #[test]
    fn values_land_in_the_bins_their_edges_say() {
        // max |v| = 3 -> half span 4, 8 bins of width 1: edges -4..4.
        let values = [-3.0, -0.5, -1e-30, 0.0, 0.25, 1.0, 2.999, 3.0];
        let h = Histogram::of_values(&values, range(-3.0, 3.0), 8);
        assert_eq!(h.half_span(), 4.0);
        assert_eq!(
            h.edges(),
            vec![-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0]
        );
        // -3 -> [-3,-2) bin 1; -0.5 and -1e-30 -> [-1,0) bin 3; 0 and 0.25 -> bin 4;
        // 1 -> bin 5; 2.999 -> bin 6; 3 -> bin 7.
        assert_eq!(h.counts(), &[0, 1, 0, 2, 2, 1, 1, 1]);
        // The largest value on the span's end goes in the last bin (as numpy's does).
        let h = Histogram::of_values(&[-4.0, 4.0], range(-4.0, 4.0), 8);
        assert_eq!(h.counts(), &[1, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn large_inputs_count_as_small_ones() {
        // 1000 values take the direct path (fewer than 8 per bin of 256), 20 copies of them
        // the sub-histograms: the counts must be 20 times as many.
        let values: Vec<f32> = (0..1000)
            .map(|k| ((k * 7919) % 1000) as f32 / 97.0 - 3.3)
            .collect();
        let r = range(-3.3, 999.0 / 97.0 - 3.3);
        let one = Histogram::of_values(&values, r, 256);
        let many: Vec<f32> = values.iter().copied().cycle().take(20_000).collect();
        let twenty = Histogram::of_values(&many, r, 256);
        let expect: Vec<u64> = one.counts().iter().map(|c| c * 20).collect();
        assert_eq!(twenty.counts(), &expect[..]);
        assert_eq!(one.total(), 1000);
    }

    #[test]
    fn merging_is_exact_and_order_free() {
        let a = Histogram::of_values(&[0.5, -0.75, 0.9], range(-0.75, 0.9), 8);
        let b = Histogram::of_values(&[3.5, -3.9, 0.1], range(-3.9, 3.5), 8);
        let z = Histogram::of_values(&[0.0, 0.0], range(0.0, 0.0), 8);
        let all = [0.5, -0.75, 0.9, 3.5, -3.9, 0.1, 0.0, 0.0];
        let direct = Histogram::of_values(&all, range(-3.9, 3.5), 8);
        for order in [[&a, &b, &z], [&z, &b, &a], [&b, &z, &a], [&z, &a, &b]] {
            let mut m = order[0].clone();
            m.merge(order[1]);
            m.merge(order[2]);
            assert_eq!(m, direct, "{order:?}");
        }
    }

    #[test]
    fn saved_form_round_trips_and_bad_files_are_refused() {
        let h = Histogram::of_values(&[1.0, 1.0, -7.0, 0.0, 0.0, 0.0], range(-7.0, 1.0), 16);
        let text = serde_json::to_string(&h).unwrap();
        assert!(text.contains("\"counts\":\"0 1 0*6 3 2 0*6\""), "{text}");
        assert_eq!(serde_json::from_str::<Histogram>(&text).unwrap(), h);
        let bad = text.replace("0*6 3", "0*5 3");
        assert!(serde_json::from_str::<Histogram>(&bad).is_err());
        let bad = text.replace("\"half_span\":8.0", "\"half_span\":6.0");
        assert!(serde_json::from_str::<Histogram>(&bad).is_err(), "{bad}");
    }
}
