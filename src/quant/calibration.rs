//! Calibration: the range of every activation over the representative dataset, recorded
//! as TFLite's calibrator does (running absolute min/max over all samples, not averaged).
//!
//! A calibration is saved next to the model and tied to the model's and the dataset's
//! content hashes, so every later quantization (each new denylist) reuses it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::Tensor as CTensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{Dataset, SampleArray};
use crate::error::{Error, Result};
use crate::exec::{tensor_from_owned_sample, Executor, FloatOutputCache};
use crate::graph::{Graph, TensorId};
use crate::kernels::{min_max_f32, simd};
use crate::quant::histogram::{Histogram, CALIBRATION_HISTOGRAM_BINS};
use crate::quant::range_search::{refined_range, RangeMethod};

/// Bumped whenever the file's meaning changes; older files are recomputed, not misread.
/// 4: each range carries the histogram of its tensor's values.
pub const CALIBRATION_VERSION: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorRange {
    pub min: f32,
    pub max: f32,
}

impl TensorRange {
    fn include(&mut self, other: TensorRange) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub version: u32,
    pub model_sha256: String,
    /// BLAKE3 of the samples ([`dataset_digest`]).
    pub dataset_blake3: String,
    pub samples: usize,
    /// Observed range of every non-constant tensor, by tensor index.
    pub ranges: BTreeMap<TensorId, NamedRange>,
    /// Ranges that replace the observed ones when the activations are planned
    /// ([`Calibration::with_ranges`]); never saved.
    #[serde(skip)]
    pub overrides: BTreeMap<TensorId, TensorRange>,
    /// Ranges already searched on the histograms, shared by this calibration's clones.
    #[serde(skip)]
    refined: RefinedRanges,
}

/// A memo of [`Calibration::refined_range`]: a search over a histogram takes milliseconds
/// (the MSE and entropy methods try hundreds of ranges), and the repair search asks for the
/// same tensor's ranges once per candidate model it builds. Clones share it, as they share
/// the histograms it is computed from.
#[derive(Clone, Default)]
struct RefinedRanges(Arc<Mutex<RefinedByTensor>>);

/// Each tensor's searched ranges, by method (`None`: the method had no answer).
type RefinedByTensor = HashMap<(TensorId, MethodKey), Option<TensorRange>>;

/// A [`RangeMethod`] as a hashable key (the percentile by its bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum MethodKey {
    Percentile(u64),
    MinMse,
    Entropy,
}

impl From<RangeMethod> for MethodKey {
    fn from(method: RangeMethod) -> Self {
        match method {
            RangeMethod::Percentile(p) => MethodKey::Percentile(p.to_bits()),
            RangeMethod::MinMse => MethodKey::MinMse,
            RangeMethod::Entropy => MethodKey::Entropy,
        }
    }
}

impl PartialEq for RefinedRanges {
    /// A memo says nothing about the calibration: any two are equal.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for RefinedRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefinedRanges")
    }
}

/// A range with the tensor's name, so the file can be read (and checked) by a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedRange {
    pub name: String,
    #[serde(flatten)]
    pub range: TensorRange,
    /// The distribution of the values behind `range`, for the range searches of
    /// [`crate::quant::range_search`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

impl Calibration {
    /// The range the activation plan uses for `id`: an override, else the observed one.
    pub fn range(&self, id: TensorId) -> Option<TensorRange> {
        self.overrides
            .get(&id)
            .copied()
            .or_else(|| self.observed_range(id))
    }

    /// The range observed during calibration, whatever the overrides.
    pub fn observed_range(&self, id: TensorId) -> Option<TensorRange> {
        self.ranges.get(&id).map(|r| r.range)
    }

    /// The histogram of `id`'s calibration values, if it was recorded.
    pub fn histogram(&self, id: TensorId) -> Option<&Histogram> {
        self.ranges.get(&id)?.histogram.as_ref()
    }

    /// A range for `id` found by `method` on its calibration histogram (contains 0, within
    /// the observed range widened to 0). None when `id` has no histogram (a calibration
    /// of another version, a tensor never observed) or the method has no answer
    /// ([`crate::quant::range_search::refined_range`]).
    pub fn refined_range(&self, id: TensorId, method: RangeMethod) -> Option<TensorRange> {
        let key = (id, MethodKey::from(method));
        // A poisoned memo (a panic elsewhere) is only a lost speed-up.
        let known = self
            .refined
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied());
        if let Some(known) = known {
            return known;
        }
        let range = refined_range(self.histogram(id)?, method);
        if let Ok(mut memo) = self.refined.0.lock() {
            memo.insert(key, range);
        }
        range
    }

    /// This calibration with `ranges` replacing the observed range of their tensors when
    /// the activations are planned ([`crate::quant::plan::plan_activations`]), as if the
    /// calibrator had recorded them: they are pinned after TensorFlow's in-place widening
    /// (a range the user chose is the range the converter would have read) and then
    /// propagate through same-scale ops as any calibrated range does. Earlier overrides of
    /// other tensors are kept.
    pub fn with_ranges(&self, ranges: &BTreeMap<TensorId, TensorRange>) -> Calibration {
        let mut cal = self.clone();
        cal.overrides.extend(ranges.iter().map(|(&id, &r)| (id, r)));
        cal
    }

    /// Where the calibration of `model` is kept: beside it.
    pub fn default_path(model: &Path) -> PathBuf {
        let mut name = model.file_name().unwrap_or_default().to_os_string();
        name.push(".qdbg-calibration.json");
        model.with_file_name(name)
    }

    /// Loads a saved calibration if it exists, is of this version and matches both hashes.
    pub fn load_matching(path: &Path, model_sha256: &str, dataset_blake3: &str) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let cal: Calibration = serde_json::from_str(&text).ok()?;
        (cal.version == CALIBRATION_VERSION
            && cal.model_sha256 == model_sha256
            && cal.dataset_blake3 == dataset_blake3)
            .then_some(cal)
    }

    /// Whether it has a range for every float tensor a calibration of `graph` records (its
    /// float inputs and every float op output). A saved file that matches the model and data
    /// but lacks one (edited by hand, cut short) is not reused: the ops reading that tensor
    /// would otherwise stay float with no error.
    pub fn covers(&self, graph: &Graph) -> bool {
        let float = |id: &TensorId| graph.tensor(*id).dtype.is_float();
        graph
            .inputs
            .iter()
            .chain(graph.nodes.iter().flat_map(|n| n.outputs.iter()))
            .filter(|id| float(id))
            .all(|id| self.ranges.contains_key(id))
    }

    /// Writes the calibration atomically (temp file in the same folder, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text =
            serde_json::to_string_pretty(self).map_err(|e| Error::Internal(e.to_string()))?;
        crate::atomic::write_bytes_atomic(path, text.as_bytes())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash of the samples as the model receives them (after any image conversion and
/// normalisation), so the same data in another file format matches, and the same images
/// with another `--mean`/`--std` do not. BLAKE3, each sample on its own (in parallel),
/// then the digests in sample order. The calibration computes the per-sample digests
/// from the samples it loads anyway ([`calibrate_keeping_outputs`]), so the data is not
/// read a second time for it.
const HASH_BUFFER: usize = 1 << 16;

pub fn dataset_digest(dataset: &Dataset) -> Result<String> {
    let digests: Vec<Result<[u8; 32]>> = (0..dataset.num_samples())
        .into_par_iter()
        .map(|i| Ok(sample_digest(&dataset.sample(i)?)))
        .collect();
    let digests = digests.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(combine_digests(dataset, &digests))
}

/// The dataset's digest from its samples' digests, in sample order.
fn combine_digests(dataset: &Dataset, samples: &[[u8; 32]]) -> String {
    let mut hasher = blake3::Hasher::new();
    for name in dataset.input_names() {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
    }
    hasher.update(&(samples.len() as u64).to_le_bytes());
    for digest in samples {
        hasher.update(digest);
    }
    hasher.finalize().to_hex().to_string()
}

/// BLAKE3 of one sample: each input's dtype, shape and values in little-endian bytes.
fn sample_digest(inputs: &[SampleArray]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for input in inputs {
        hasher.update(format!("{:?}{:?};", input.dtype(), input.shape()).as_bytes());
        feed_values(&mut hasher, input);
    }
    hasher.finalize().into()
}

fn feed_values(hasher: &mut blake3::Hasher, sample: &SampleArray) {
    if let (true, SampleArray::F32(a)) = (cfg!(target_endian = "little"), sample) {
        if let Some(values) = a.as_slice() {
            // SAFETY: any f32 is 4 initialised bytes, and u8 has no alignment; on a
            // little-endian machine these are the values' little-endian bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    values.as_ptr().cast::<u8>(),
                    std::mem::size_of_val(values),
                )
            };
            hasher.update(bytes);
            return;
        }
    }
    // Through a buffer: one `update` per element costs more than the hashing.
    let mut bytes = Vec::with_capacity(HASH_BUFFER + 8);
    let mut feed = |le: &[u8]| {
        bytes.extend_from_slice(le);
        if bytes.len() >= HASH_BUFFER {
            hasher.update(&bytes);
            bytes.clear();
        }
    };
    match sample {
        SampleArray::F32(a) => a.iter().for_each(|v| feed(&v.to_le_bytes())),
        SampleArray::I32(a) => a.iter().for_each(|v| feed(&v.to_le_bytes())),
        SampleArray::I64(a) => a.iter().for_each(|v| feed(&v.to_le_bytes())),
        SampleArray::U8(a) => a.iter().for_each(|v| feed(&[*v])),
        SampleArray::I8(a) => a.iter().for_each(|v| feed(&v.to_le_bytes())),
    }
    hasher.update(&bytes);
}

/// Values of one tensor in one sample that its histogram counts, at most (about): an
/// evenly spaced subset of larger tensors. Counting a value costs about as much as the
/// float model spends computing it (~0.5 ns: MobileNetV3-small computes 3.5 million values
/// in 1.8 ms), so counting all of them would more than double the calibration; 100 samples
/// still give each tensor's histogram 400,000 or more values (99.999% leaves 4 in the
/// tails). The range itself is always every value's min and max.
pub const HISTOGRAM_VALUES_PER_SAMPLE: usize = 4096;

/// The range and histogram of `value`'s elements.
fn observe(value: &CTensor) -> candle_core::Result<(TensorRange, Histogram)> {
    let channels = value.dims().last().copied().unwrap_or(1);
    let of = |values: &[f32]| {
        let range = range_of(values);
        // A non-finite range is refused by the caller; its histogram is never used.
        let finite = if range.min.is_finite() && range.max.is_finite() {
            range
        } else {
            TensorRange { min: 0.0, max: 0.0 }
        };
        (
            range,
            Histogram::of_sampled_values(
                values,
                finite,
                CALIBRATION_HISTOGRAM_BINS,
                HISTOGRAM_VALUES_PER_SAMPLE,
                channels,
            ),
        )
    };
    // Read in place when the value sits contiguous in host memory (always, on the CPU):
    // candle's own min/max reductions took a third of the calibration's time.
    {
        let (storage, layout) = value.storage_and_layout();
        if let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(of(&v[start..end]));
        }
    }
    let flat = value.flatten_all()?.to_dtype(candle_core::DType::F32)?;
    Ok(of(&flat.to_vec1::<f32>()?))
}

/// Min and max of `values` ({0, 0} when empty); NaN in both when any value is NaN, so the
/// caller's finiteness check sees it. Compiled for the widest vectors the CPU has: the
/// calibration reads every value of every activation.
fn range_of(values: &[f32]) -> TensorRange {
    if values.is_empty() {
        return TensorRange { min: 0.0, max: 0.0 };
    }
    let (min, max) = min_max_f32::min_max(simd::active(), values);
    TensorRange { min, max }
}

/// Runs the float model over every sample and records each activation's range.
/// `progress` is told how many samples are done.
///
/// Samples run in parallel, one chunk of a few samples per thread of rayon's pool at a time
/// (`threads::sample_chunk`: only a chunk's ranges and histograms are held), and merge in
/// sample order:
/// min, max and the histograms (whose merge is exact and order-free) do not depend on the
/// order, and the first failing sample is the one reported.
pub fn calibrate(
    executor: &Executor,
    dataset: &Dataset,
    model_sha256: String,
    progress: &mut dyn FnMut(usize),
) -> Result<Calibration> {
    calibrate_keeping_outputs(executor, dataset, model_sha256, None, progress)
}

/// [`calibrate`], remembering each sample's final float outputs in `outputs` (for the
/// debugger and denylist evaluations on the same data, which then skip the float model).
pub fn calibrate_keeping_outputs(
    executor: &Executor,
    dataset: &Dataset,
    model_sha256: String,
    outputs: Option<&FloatOutputCache>,
    progress: &mut dyn FnMut(usize),
) -> Result<Calibration> {
    let all = 0..dataset.num_samples();
    calibrate_samples(executor, dataset, all, model_sha256, outputs, progress)
}

/// [`calibrate_keeping_outputs`] on the samples `samples` of `dataset` only (a search that
/// holds the others out calibrates without them); `progress` counts from 0.
pub fn calibrate_samples(
    executor: &Executor,
    dataset: &Dataset,
    samples: std::ops::Range<usize>,
    model_sha256: String,
    outputs: Option<&FloatOutputCache>,
    progress: &mut dyn FnMut(usize),
) -> Result<Calibration> {
    let graph = executor.graph();
    let mut ranges: BTreeMap<TensorId, (TensorRange, Histogram)> = BTreeMap::new();
    let samples = samples.start.min(dataset.num_samples())..samples.end.min(dataset.num_samples());
    let total = samples.len();
    let chunk = crate::threads::sample_chunk();
    let mut done = 0;
    let mut digests = Vec::with_capacity(total);
    while done < total {
        let end = (done + chunk).min(total);
        let per_sample: Vec<Result<SampleRanges>> = (samples.start + done..samples.start + end)
            .into_par_iter()
            .map(|i| sample_ranges(executor, dataset, i, outputs))
            .collect();
        for sample in per_sample {
            let sample = sample?;
            digests.push(sample.digest);
            for (id, r, h) in sample.ranges {
                match ranges.entry(id) {
                    std::collections::btree_map::Entry::Occupied(mut acc) => {
                        let (range, histogram) = acc.get_mut();
                        range.include(r);
                        histogram.merge(&h);
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert((r, h));
                    }
                }
            }
        }
        done = end;
        progress(done);
    }
    Ok(Calibration {
        version: CALIBRATION_VERSION,
        model_sha256,
        dataset_blake3: combine_digests(dataset, &digests),
        samples: total,
        ranges: ranges
            .into_iter()
            .map(|(id, (range, histogram))| {
                (
                    id,
                    NamedRange {
                        name: graph.tensor(id).name.clone(),
                        range,
                        histogram: Some(histogram),
                    },
                )
            })
            .collect(),
        overrides: BTreeMap::new(),
        refined: RefinedRanges::default(),
    })
}

/// One sample's contribution to the calibration: its activation ranges and histograms,
/// and its digest.
struct SampleRanges {
    ranges: Vec<(TensorId, TensorRange, Histogram)>,
    digest: [u8; 32],
}

fn sample_ranges(
    executor: &Executor,
    dataset: &Dataset,
    i: usize,
    outputs: Option<&FloatOutputCache>,
) -> Result<SampleRanges> {
    let graph = executor.graph();
    let sample = dataset.sample(i)?;
    let digest = sample_digest(&sample);
    let inputs = sample
        .into_iter()
        .map(|s| tensor_from_owned_sample(s, executor.device()))
        .collect::<Result<Vec<_>>>()?;
    let mut ranges = Vec::new();
    let finals = executor.run_observed(&inputs, &mut |id, value| {
        if !graph.tensor(id).dtype.is_float() {
            return Ok(());
        }
        let (r, histogram) = observe(value).map_err(|e| {
            Error::candle(
                format!("reading tensor '{}' for its range", graph.tensor(id).name),
                e,
            )
        })?;
        if !(r.min.is_finite() && r.max.is_finite()) {
            return Err(Error::Data {
                path: dataset.source.clone(),
                reason: format!(
                    "sample {i} makes tensor '{}' non-finite ({}..{}); calibration needs finite activations",
                    graph.tensor(id).name, r.min, r.max
                ),
            });
        }
        ranges.push((id, r, histogram));
        Ok(())
    })?;
    if let Some(cache) = outputs {
        cache.remember(i, &finals)?;
    }
    Ok(SampleRanges { ranges, digest })
}

/// Where a calibration came from, for the user.
#[derive(Debug)]
pub enum CalibrationSource {
    /// Reused from this file (same model and data).
    Reused(PathBuf),
    /// Computed now and saved to this file.
    Saved(PathBuf),
    /// Computed now; saving failed (read-only folder?), so the next run computes it again.
    NotSaved(Error),
    /// Computed now on these samples only (a search holding the rest out), not saved: the
    /// file beside the model stays the calibration on all the data.
    Samples(std::ops::Range<usize>),
}

/// The calibration of `model` on `dataset`: the saved one beside the model when its hashes
/// match (unless `recalibrate`), else a fresh one, saved for next time.
pub fn calibrate_or_load(
    model: &Path,
    executor: &Executor,
    dataset: &Dataset,
    recalibrate: bool,
    outputs: Option<&FloatOutputCache>,
    progress: &mut dyn FnMut(usize),
) -> Result<(Calibration, CalibrationSource)> {
    let all = 0..dataset.num_samples();
    calibrate_or_load_samples(
        model,
        executor,
        dataset,
        all,
        recalibrate,
        outputs,
        progress,
    )
}

/// [`calibrate_or_load`] on `samples` only: all of them as it does; a part computed afresh
/// and not saved ([`CalibrationSource::Samples`]).
pub fn calibrate_or_load_samples(
    model: &Path,
    executor: &Executor,
    dataset: &Dataset,
    samples: std::ops::Range<usize>,
    recalibrate: bool,
    outputs: Option<&FloatOutputCache>,
    progress: &mut dyn FnMut(usize),
) -> Result<(Calibration, CalibrationSource)> {
    let model_bytes = std::fs::read(model).map_err(|e| Error::io(model, e))?;
    let model_sha = sha256_hex(&model_bytes);
    if samples != (0..dataset.num_samples()) {
        let cal = calibrate_samples(
            executor,
            dataset,
            samples.clone(),
            model_sha,
            outputs,
            progress,
        )?;
        return Ok((cal, CalibrationSource::Samples(samples)));
    }
    let path = Calibration::default_path(model);
    if !recalibrate {
        if let Some(cal) = Calibration::load_matching(&path, &model_sha, &dataset_digest(dataset)?)
            .filter(|cal| cal.covers(executor.graph()))
        {
            return Ok((cal, CalibrationSource::Reused(path)));
        }
    }
    let cal = calibrate_keeping_outputs(executor, dataset, model_sha, outputs, progress)?;
    let source = match cal.save(&path) {
        Ok(()) => CalibrationSource::Saved(path),
        Err(e) => CalibrationSource::NotSaved(e),
    };
    Ok((cal, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range of a slice (each build's min and max: `kernels::min_max_f32`'s tests), of
    /// one with a NaN, and of none.
    #[test]
    fn range_of_values_with_nan_and_of_none() {
        let r = range_of(&[3.0, -2.5, 7.25, 0.0]);
        assert_eq!((r.min, r.max), (-2.5, 7.25));
        let r = range_of(&[1.0, f32::NAN, 2.0]);
        assert!(r.min.is_nan() && r.max.is_nan());
        assert_eq!(range_of(&[]), TensorRange { min: 0.0, max: 0.0 });
    }
}
