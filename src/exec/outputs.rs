//! The float model's final outputs per sample of one dataset, remembered by whichever step
//! runs the float model over it first (calibration, the debugger, a denylist evaluation) so
//! that the steps after it do not run the float model again only to get them.
//!
//! Bounded: when a dataset's outputs would take more than [`FloatOutputCache::BUDGET`]
//! bytes (models with image-sized outputs, huge datasets), nothing is kept and every step
//! computes them itself.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::Tensor as CTensor;

use crate::error::{Error, Result};

/// One sample's float outputs, one vector per model output.
pub type SampleOutputs = Arc<Vec<Vec<f32>>>;

pub struct FloatOutputCache {
    samples: usize,
    kept: Mutex<Vec<Option<SampleOutputs>>>,
}

impl FloatOutputCache {
    /// The most memory the outputs of one dataset may take.
    pub const BUDGET: usize = 64 << 20;

    /// An empty cache for a dataset of `samples` samples.
    pub fn new(samples: usize) -> Self {
        FloatOutputCache {
            samples,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Sample `i`'s outputs, if some step has remembered them.
    pub fn get(&self, i: usize) -> Option<SampleOutputs> {
        self.lock().get(i).cloned().flatten()
    }

    /// Keeps sample `i`'s outputs (the model's output tensors, as the float executor
    /// returned them), unless the whole dataset's would exceed [`Self::BUDGET`]. Returns
    /// them as host vectors either way.
    pub fn remember(&self, i: usize, outputs: &[CTensor]) -> Result<SampleOutputs> {
        let host = Arc::new(
            outputs
                .iter()
                .map(host_f32)
                .collect::<Result<Vec<Vec<f32>>>>()?,
        );
        let per_sample: usize = host.iter().map(|o| o.len() * 4).sum();
        if i < self.samples && per_sample.saturating_mul(self.samples) <= Self::BUDGET {
            let mut kept = self.lock();
            if kept.len() <= i {
                kept.resize(i + 1, None);
            }
            kept[i] = Some(Arc::clone(&host));
        }
        Ok(host)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<SampleOutputs>>> {
        // Entries are written whole, so a panic elsewhere cannot leave one half-written:
        // a poisoned lock still guards a consistent cache.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A tensor's values on the host as f32 (the float executor computes in f32).
/// Calls `f` with `t`'s values as f32 on the host: borrowed in place when `t` is a
/// contiguous f32 tensor in CPU memory (the debugger's float twins: copying each of their
/// outputs out, 11 MB per MobileNet sample, was a twentieth of a debug run), converted
/// through [`host_f32`] otherwise.
pub fn with_host_f32<R>(t: &CTensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            if let Some(values) = v.get(start..end) {
                return Ok(f(values));
            }
        }
    }
    Ok(f(&host_f32(t)?))
}

pub fn host_f32(t: &CTensor) -> Result<Vec<f32>> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| Error::candle("reading a tensor's values to the host as f32", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn remembers_within_the_budget_only() {
        let t = CTensor::from_slice(&[1.0f32, 2.0], 2, &Device::Cpu).unwrap();
        let cache = FloatOutputCache::new(3);
        assert!(cache.get(1).is_none());
        assert_eq!(
            *cache.remember(1, std::slice::from_ref(&t)).unwrap(),
            vec![vec![1.0, 2.0]]
        );
        assert_eq!(*cache.get(1).unwrap(), vec![vec![1.0, 2.0]]);
        assert!(cache.get(0).is_none() && cache.get(2).is_none());
        // 8 bytes x 2^24 samples is over the 64 MiB budget: returned, not kept.
        let big = FloatOutputCache::new(1 << 24);
        assert_eq!(big.remember(0, &[t]).unwrap().len(), 1);
        assert!(big.get(0).is_none());
    }
}
