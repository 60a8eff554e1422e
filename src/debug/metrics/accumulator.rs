//! [`LayerAccumulator`]: a layer's samples folded into its [`LayerMetrics`].

use super::*;

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
