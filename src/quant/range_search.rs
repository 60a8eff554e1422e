//! Ranges better than min/max, found on a tensor's calibration histogram
//! ([`super::histogram`]) without running the model again: percentile, minimum expected
//! quantization error, and the KL/entropy threshold.
//!
//! Percentile and entropy follow ONNX Runtime's histogram calibrators (its
//! `HistogramCollector`, non-symmetric mode) step for step, so that the same histogram
//! gives the same thresholds (`tests/range_search.rs` checks that against ONNX Runtime).
//! Every range returned by [`refined_range`] contains 0 (TFLite's activations must
//! represent it) and lies within the observed range widened to 0.

use super::calibration::TensorRange;
use super::histogram::Histogram;
use super::plan::params_for_range;

/// How to choose a tensor's range from its histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeMethod {
    /// Keep this percentage of the values (99.9, 99.99, 99.999): half of the rest is cut
    /// from each tail.
    Percentile(f64),
    /// The range whose int8 quantization has the least expected squared error.
    MinMse,
    /// The threshold whose 128-level quantization of the distribution diverges least from
    /// it (TensorRT's KL method, as ONNX Runtime computes it).
    Entropy,
}

/// Quantized levels of the entropy method: 128, ONNX Runtime's default, TensorRT's choice.
pub const ENTROPY_QUANTIZED_BINS: usize = 128;

/// The range `method` picks on `histogram`, widened to contain 0. None when the histogram
/// counted nothing or the percentile is not in (0, 100].
pub fn refined_range(histogram: &Histogram, method: RangeMethod) -> Option<TensorRange> {
    if histogram.total() == 0 {
        return None;
    }
    let (lo, hi) = match method {
        RangeMethod::Percentile(p) => percentile_thresholds(histogram, p)?,
        RangeMethod::MinMse => return Some(min_mse_range(histogram)),
        RangeMethod::Entropy => entropy_thresholds(histogram, ENTROPY_QUANTIZED_BINS)?,
    };
    Some(TensorRange {
        min: (lo.min(0.0)) as f32,
        max: (hi.max(0.0)) as f32,
    })
}

/// ONNX Runtime's non-symmetric percentile thresholds: the cumulative distribution (each
/// bin's share in f64, summed in bin order) is searched for `(100 - p) / 200` and for one
/// minus that; each threshold is the left edge of the first bin whose cumulative share
/// reaches its target (so the upper one drops the bin where the cut falls), then kept
/// within the observed min and max. Not widened to 0. None when nothing was counted or
/// `p` is not in (0, 100].
pub fn percentile_thresholds(histogram: &Histogram, percentile: f64) -> Option<(f64, f64)> {
    if !(percentile > 0.0 && percentile <= 100.0) {
        return None;
    }
    let counts = histogram.counts();
    let total = histogram.total();
    if total == 0 {
        return None;
    }
    let mut cdf = Vec::with_capacity(counts.len());
    let mut sum = 0f64;
    for &c in counts {
        sum += c as f64 / total as f64;
        cdf.push(sum);
    }
    let cut_each_side = (100.0 - percentile) / 200.0;
    // The first bin whose cumulative share reaches `target` (numpy's searchsorted, left).
    let first_reaching = |target: f64| cdf.partition_point(|&c| c < target);
    let lo = histogram.edge(first_reaching(cut_each_side));
    let hi = histogram.edge(first_reaching(1.0 - cut_each_side));
    Some(within_observed(histogram, lo, hi))
}

/// `(lo, hi)` with `lo` raised to the observed min and `hi` lowered to the observed max.
fn within_observed(histogram: &Histogram, lo: f64, hi: f64) -> (f64, f64) {
    let observed = histogram.range();
    (
        lo.max(f64::from(observed.min)),
        hi.min(f64::from(observed.max)),
    )
}

/// One candidate of the entropy search: its thresholds and its KL divergence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntropyCandidate {
    pub lo: f64,
    pub hi: f64,
    pub divergence: f64,
}

/// ONNX Runtime's entropy thresholds (before it keeps them within min/max, which
/// [`entropy_thresholds`] does): for each half width `i` from `quantized_bins / 2` bins to
/// half the histogram, the bins `center - i .. center + i + 1` (the clipped tails added to
/// the end bins) are the reference distribution P; Q merges the slice's raw counts into
/// `quantized_bins` groups of `len / quantized_bins` bins (the remainder goes to the last
/// group's count but not its spread) and spreads each group's count evenly, in whole
/// counts, over the group's bins where P is non-zero (ONNX Runtime gives that value to all
/// of the group's bins, zero ones included; kept so as to agree with it). Both are then
/// smoothed (zeros become 1e-4, taken from the non-zero bins in f32, as ONNX Runtime
/// does) and compared by KL(P || Q). The divergence is computed in f64 here, in f32 there:
/// near-ties can order differently.
pub fn entropy_candidates(histogram: &Histogram, quantized_bins: usize) -> Vec<EntropyCandidate> {
    let hist = histogram.counts();
    let bins = hist.len();
    let center = bins / 2;
    let half_quantized = quantized_bins / 2;
    if quantized_bins == 0 || half_quantized > center {
        return Vec::new();
    }
    let mut prefix = Vec::with_capacity(bins + 1);
    prefix.push(0u64);
    for &c in hist {
        prefix.push(prefix.last().copied().unwrap_or(0) + c);
    }
    let mut out = Vec::with_capacity(center - half_quantized + 1);
    let mut p = Vec::with_capacity(bins);
    let mut q = Vec::with_capacity(bins);
    for i in half_quantized..=center {
        let start = center - i;
        let end = (center + i + 1).min(bins);
        let slice = &hist[start..end];
        p.clear();
        p.extend_from_slice(slice);
        p[0] += prefix[start];
        let last = p.len() - 1;
        p[last] += prefix[bins] - prefix[end];
        let merged = slice.len() / quantized_bins;
        q.clear();
        q.resize(slice.len(), 0u64);
        for group in 0..quantized_bins {
            let (a, b) = (group * merged, group * merged + merged);
            let mut count: u64 = slice[a..b].iter().sum();
            if group == quantized_bins - 1 {
                count += slice[quantized_bins * merged..].iter().sum::<u64>();
            }
            let nonzero = p[a..b].iter().filter(|&&x| x != 0).count() as u64;
            if nonzero != 0 {
                q[a..b].iter_mut().for_each(|x| *x = count / nonzero);
            }
        }
        let divergence = match (smoothed(&p), smoothed(&q)) {
            (Some(sp), Some(sq)) => kl_divergence(&sp, &sq),
            _ => f64::INFINITY,
        };
        out.push(EntropyCandidate {
            lo: histogram.edge(start),
            hi: histogram.edge(end),
            divergence,
        });
    }
    out
}

/// Zero bins raised to 1e-4 and the same mass taken evenly from the others, in f32 as
/// ONNX Runtime's `smooth_distribution` does it. None when every bin is zero.
fn smoothed(counts: &[u64]) -> Option<Vec<f32>> {
    const EPS: f64 = 1e-4;
    let zeros = counts.iter().filter(|&&c| c == 0).count();
    let nonzeros = counts.len() - zeros;
    if nonzeros == 0 {
        return None;
    }
    let taken = EPS * zeros as f64 / nonzeros as f64;
    let (raise, lower) = (EPS as f32, (-taken) as f32);
    Some(
        counts
            .iter()
            .map(|&c| if c == 0 { raise } else { c as f32 + lower })
            .collect(),
    )
}

/// KL(P || Q) of two unnormalised distributions (normalised here), natural log.
fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    let p_total: f64 = p.iter().map(|&x| f64::from(x)).sum();
    let q_total: f64 = q.iter().map(|&x| f64::from(x)).sum();
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let (a, b) = (f64::from(a) / p_total, f64::from(b) / q_total);
            if a == 0.0 {
                0.0
            } else if b <= 0.0 {
                f64::INFINITY
            } else {
                a * (a / b).ln()
            }
        })
        .sum()
}

/// ONNX Runtime's entropy thresholds: the candidate of least divergence (the first of
/// equals), kept within the observed min and max. Not widened to 0. None when the
/// histogram has fewer than `quantized_bins` bins.
pub fn entropy_thresholds(histogram: &Histogram, quantized_bins: usize) -> Option<(f64, f64)> {
    let candidates = entropy_candidates(histogram, quantized_bins);
    let best = candidates
        .iter()
        .fold(None::<&EntropyCandidate>, |best, c| match best {
            Some(b) if b.divergence <= c.divergence => Some(b),
            _ => Some(c),
        })?;
    Some(within_observed(histogram, best.lo, best.hi))
}

/// The range, on bin edges (each end raised or lowered to the observed min or max when
/// the edge lies beyond it), whose int8 quantization by TFLite's asymmetric scheme (scale
/// and zero point as [`params_for_range`] chooses them) has the least expected squared
/// error over the histogram's values. Each bin's values are taken as spread evenly over
/// the bin: those inside the representable range cost the rounding error of a uniform
/// value, `scale^2 / 12`; those beyond it cost their squared distance to the nearest
/// representable end (integrated over the bin's part beyond it). Every pair of ends is
/// tried (at most (bins/2 + 1)^2 pairs, each in constant time from prefix sums); of equal
/// errors the widest range is kept. The range contains 0.
pub fn min_mse_range(histogram: &Histogram) -> TensorRange {
    let observed = histogram.range();
    let (min0, max0) = (
        f64::from(observed.min.min(0.0)),
        f64::from(observed.max.max(0.0)),
    );
    let bins = histogram.counts().len();
    let center = bins / 2;
    let width = histogram.bin_width();
    if histogram.half_span() == 0.0 {
        return TensorRange { min: 0.0, max: 0.0 };
    }
    let error = ExpectedError::new(histogram);
    // Candidate ends: the edges from the one at or below min0 up to 0, and from 0 up to
    // the one at or above max0, each kept within [min0, max0].
    let lowest_edge =
        ((min0 / width).floor() as i64 + center as i64).clamp(0, center as i64) as usize;
    let highest_edge =
        ((max0 / width).ceil() as i64 + center as i64).clamp(center as i64, bins as i64) as usize;
    let mut best: Option<(f64, TensorRange)> = None;
    for lo_edge in lowest_edge..=center {
        let lo = histogram.edge(lo_edge).max(min0);
        for hi_edge in (center..=highest_edge).rev() {
            let hi = histogram.edge(hi_edge).min(max0);
            let range = TensorRange {
                min: lo as f32,
                max: hi as f32,
            };
            let e = error.of(range);
            if best.is_none_or(|(b, _)| e < b) {
                best = Some((e, range));
            }
        }
    }
    best.map_or(TensorRange { min: 0.0, max: 0.0 }, |(_, r)| r)
}

/// The expected squared error of quantizing a histogram's values with a given range, in
/// constant time per range (see [`min_mse_range`]).
pub struct ExpectedError<'a> {
    histogram: &'a Histogram,
    /// Prefix sums over bins of n, n*c and n*c^2 (c: the bin's center).
    n: Vec<f64>,
    nc: Vec<f64>,
    ncc: Vec<f64>,
}

impl<'a> ExpectedError<'a> {
    pub fn new(histogram: &'a Histogram) -> Self {
        let counts = histogram.counts();
        let (mut n, mut nc, mut ncc) = (vec![0.0], vec![0.0], vec![0.0]);
        let width = histogram.bin_width();
        for (k, &c) in counts.iter().enumerate() {
            let c = c as f64;
            let mid = histogram.edge(k) + width / 2.0;
            n.push(n[k] + c);
            nc.push(nc[k] + c * mid);
            ncc.push(ncc[k] + c * mid * mid);
        }
        ExpectedError {
            histogram,
            n,
            nc,
            ncc,
        }
    }

    /// Expected squared error per value when quantizing with `range`'s parameters.
    pub fn of(&self, range: TensorRange) -> f64 {
        let params = params_for_range(range);
        let scale = f64::from(params.scale[0]);
        let zero_point = params.zero_point[0] as f64;
        let lowest = (-128.0 - zero_point) * scale;
        let highest = (127.0 - zero_point) * scale;
        let bins = self.histogram.counts().len();
        let width = self.histogram.bin_width();
        let center = (bins / 2) as i64;
        let bin_of =
            |x: f64| ((x / width).floor() as i64 + center).clamp(0, bins as i64 - 1) as usize;
        let (low_bin, high_bin) = (bin_of(lowest), bin_of(highest));
        let rounding = scale * scale / 12.0;
        let spread = width * width / 12.0;
        // Bins wholly below `lowest` / above `highest`: n * ((c - end)^2 + w^2/12) summed.
        let beyond = |from: usize, to: usize, end: f64| {
            let (s0, s1, s2) = (
                self.n[to] - self.n[from],
                self.nc[to] - self.nc[from],
                self.ncc[to] - self.ncc[from],
            );
            s2 - 2.0 * end * s1 + end * end * s0 + spread * s0
        };
        let mut total = beyond(0, low_bin, lowest) + beyond(high_bin + 1, bins, highest);
        // Bins wholly inside: rounding error only.
        if high_bin > low_bin + 1 {
            total += (self.n[high_bin] - self.n[low_bin + 1]) * rounding;
        }
        let counts = self.histogram.counts();
        let mut edge_bin = |k: usize| {
            let (l, r) = (self.histogram.edge(k), self.histogram.edge(k + 1));
            let density = counts[k] as f64 / width;
            let below = if l < lowest {
                ((lowest - l).powi(3) - (lowest - r.min(lowest)).powi(3)) / 3.0
            } else {
                0.0
            };
            let above = if r > highest {
                ((r - highest).powi(3) - (l.max(highest) - highest).powi(3)) / 3.0
            } else {
                0.0
            };
            let inside = (r.min(highest) - l.max(lowest)).max(0.0);
            total += density * (below + above + inside * rounding);
        };
        edge_bin(low_bin);
        if high_bin != low_bin {
            edge_bin(high_bin);
        }
        let n = self.n[bins];
        if n == 0.0 {
            0.0
        } else {
            total / n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[f32], bins: usize) -> Histogram {
        let min = values.iter().copied().fold(f32::INFINITY, f32::min);
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Histogram::of_values(values, TensorRange { min, max }, bins)
    }

    #[test]
    fn percentile_cuts_each_tail_and_stays_within_min_max() {
        // 8 bins of width 1 over [-4, 4], counts 1 0 0 4 4 0 0 1 (values seen in
        // [-3.5, 3.5]): cumulative shares 0.1 0.1 0.1 0.5 0.9 0.9 0.9 1.0.
        let range = TensorRange {
            min: -3.5,
            max: 3.5,
        };
        let h = Histogram::from_parts(4.0, vec![1, 0, 0, 4, 4, 0, 0, 1], range).unwrap();
        // 70: 0.15 from each side; 0.15 is first reached at bin 3 (left edge -1), 0.85 at
        // bin 4 (left edge 0).
        assert_eq!(percentile_thresholds(&h, 70.0), Some((-1.0, 0.0)));
        // 95: 0.025 is reached at bin 0 (edge -4, raised to the min -3.5), 0.975 at bin 7
        // (left edge 3).
        assert_eq!(percentile_thresholds(&h, 95.0), Some((-3.5, 3.0)));
        // Widened to contain 0.
        let r = refined_range(&h, RangeMethod::Percentile(70.0)).unwrap();
        assert_eq!((r.min, r.max), (-1.0, 0.0));
        assert_eq!(percentile_thresholds(&h, 0.0), None);
        assert_eq!(percentile_thresholds(&h, 100.5), None);
    }

    /// `bulk` values evenly over [0, 1) and one at 100. For a range [0, h] (scale h/255,
    /// zero point -128, so h is representable) with 1 < h < 100 the expected error per
    /// value is about (100 - h)^2 / N for the clipped outlier plus (bulk / N) (h/255)^2 / 12
    /// of rounding, least at h = 100 a / (a + b) with a = 1/N, b = bulk / (N 255^2 12).
    fn outlier_case(bulk: usize) -> (TensorRange, f64) {
        let mut values: Vec<f32> = (0..bulk).map(|k| k as f32 / bulk as f32).collect();
        values.push(100.0);
        let r = min_mse_range(&histogram(&values, 2048));
        let n = (bulk + 1) as f64;
        let (a, b) = (1.0 / n, bulk as f64 / (n * 255.0 * 255.0 * 12.0));
        (r, 100.0 * a / (a + b))
    }

    #[test]
    fn min_mse_matches_the_closed_form_on_an_outlier() {
        // 10,000 values: the optimum keeps most of the outlier (h ~ 98.7); a million:
        // clipping it pays (h ~ 43.8). Bins are 0.125 wide.
        for bulk in [10_000, 1_000_000] {
            let (r, expect) = outlier_case(bulk);
            assert_eq!(r.min, 0.0);
            assert!(
                (f64::from(r.max) - expect).abs() < 0.5,
                "{bulk}: {r:?} vs {expect}"
            );
        }
    }
}
