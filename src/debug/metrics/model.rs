//! [`ModelAccumulator`]: the model's final outputs, float against int8.

use super::*;

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
