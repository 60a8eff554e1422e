//! Matching a stored array against a model input: shape, dtype and value checks.

use std::fmt;
use std::path::Path;

use ndarray::{ArrayD, Axis, Dimension};

use super::npy::{fmt_shape, RawArray};
use super::{InputSpec, SampleArray};
use crate::error::{Error, Result};
use crate::graph::DType;

/// Where an array came from, for messages: `data.npz (array 'x')`.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub path: &'a Path,
    pub entry: Option<&'a str>,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(entry) = self.entry {
            write!(f, " (array '{entry}')")?;
        }
        Ok(())
    }
}

/// The dtypes a [`SampleArray`] can hold.
pub(crate) fn check_supported_dtype(spec: &InputSpec, dataset: &Path) -> Result<()> {
    match spec.dtype {
        DType::F32 | DType::I32 | DType::I64 | DType::U8 | DType::I8 => Ok(()),
        other => Err(Error::data(
            dataset,
            format!(
                "model input '{}' has dtype {other}, which qdbg cannot feed from a dataset yet \
                 (supported: float32, int32, int64, uint8, int8)",
                spec.name
            ),
        )),
    }
}

/// What one sample of `spec` looks like in the stored array: the batch dim of 1 dropped.
pub(crate) fn per_sample_shape(spec: &InputSpec) -> &[usize] {
    match spec.shape.split_first() {
        Some((1, rest)) => rest,
        _ => &spec.shape,
    }
}

/// `[N, 224, 224, 3] float32`
pub(crate) fn expected_text(spec: &InputSpec) -> String {
    let mut dims = vec!["N".to_string()];
    dims.extend(per_sample_shape(spec).iter().map(usize::to_string));
    format!("[{}] {}", dims.join(", "), spec.dtype)
}

/// Checks `raw` against `spec` and converts it to the layout a [`super::Dataset`] keeps.
pub(crate) fn to_samples(
    raw: RawArray,
    spec: &InputSpec,
    origin: Origin<'_>,
) -> Result<SampleArray> {
    let squeeze_batch = check_header(raw.shape(), raw.dtype(), spec, origin)?;
    let array = convert_dtype(raw, spec, origin)?;
    Ok(if squeeze_batch {
        squeeze_axis_1(array)
    } else {
        array
    })
}

/// What can be checked from an array's shape and dtype alone (an `.npy` header): the
/// shape fits the input, there is at least one sample, the dtype converts. `Ok(true)` when
/// each sample carries its own batch dim of 1, to be dropped.
pub(crate) fn check_header(
    shape: &[usize],
    dtype: DType,
    spec: &InputSpec,
    origin: Origin<'_>,
) -> Result<bool> {
    let squeeze_batch = check_shape(shape, dtype, spec, origin)?;
    let samples = shape.first().copied().unwrap_or(0);
    if samples == 0 {
        return Err(Error::data(
            origin.path,
            format!(
                "empty dataset: the array for model input '{}'{} has shape {} (0 samples); \
                 the first axis counts samples and needs at least one",
                spec.name,
                entry_suffix(origin),
                fmt_shape(shape)
            ),
        ));
    }
    if !converts(spec.dtype, dtype) {
        let hint = dtype_hint(spec.dtype, dtype);
        return Err(mismatch(spec, origin, shape, dtype, &hint));
    }
    Ok(squeeze_batch)
}

/// Drops axis 1, checked to have length 1.
pub(crate) fn squeeze_axis_1(array: SampleArray) -> SampleArray {
    match array {
        SampleArray::F32(a) => SampleArray::F32(a.index_axis_move(Axis(1), 0)),
        SampleArray::I32(a) => SampleArray::I32(a.index_axis_move(Axis(1), 0)),
        SampleArray::I64(a) => SampleArray::I64(a.index_axis_move(Axis(1), 0)),
        SampleArray::U8(a) => SampleArray::U8(a.index_axis_move(Axis(1), 0)),
        SampleArray::I8(a) => SampleArray::I8(a.index_axis_move(Axis(1), 0)),
    }
}

/// The stored dtypes each input dtype is fed from (the conversions of `convert_dtype`).
fn converts(want: DType, got: DType) -> bool {
    matches!(
        (want, got),
        (DType::F32, DType::F32 | DType::F16 | DType::F64)
            | (DType::I32 | DType::I64, DType::I32 | DType::I64)
            | (DType::U8, DType::U8)
            | (DType::I8, DType::I8)
    )
}

fn entry_suffix(origin: Origin<'_>) -> String {
    origin
        .entry
        .map(|e| format!(" (array '{e}')"))
        .unwrap_or_default()
}

/// `Ok(true)` when each sample carries its own batch dim of 1, which is then dropped.
fn check_shape(
    shape: &[usize],
    dtype: DType,
    spec: &InputSpec,
    origin: Origin<'_>,
) -> Result<bool> {
    let per_sample = per_sample_shape(spec);
    let squeeze = match shape.split_first() {
        Some((_, rest)) if rest == per_sample => Some(false),
        Some((_, rest)) if rest == spec.shape.as_slice() => Some(true),
        _ => None,
    };
    squeeze.ok_or_else(|| {
        let hint = shape_hint(shape, spec);
        mismatch(spec, origin, shape, dtype, &hint)
    })
}

fn shape_hint(shape: &[usize], spec: &InputSpec) -> String {
    let per_sample = per_sample_shape(spec);
    let rest = shape.split_first().map_or(&[][..], |(_, rest)| rest);
    let mut sorted_rest = rest.to_vec();
    let mut sorted_want = per_sample.to_vec();
    sorted_rest.sort_unstable();
    sorted_want.sort_unstable();
    if shape.is_empty() {
        "the array is a scalar; the first axis must count samples".to_string()
    } else if shape == per_sample && !per_sample.is_empty() {
        format!(
            "this looks like a single sample without a sample axis; add one \
             (e.g. `arr[None]`) to get {}",
            fmt_shape(&[&[1], per_sample].concat())
        )
    } else if rest != per_sample && sorted_rest == sorted_want {
        format!(
            "the dims are in a different order (NCHW vs NHWC?); transpose each sample \
             to {}",
            fmt_shape(per_sample)
        )
    } else {
        format!(
            "the first axis counts samples and the rest must be {} (or {})",
            fmt_shape(per_sample),
            fmt_shape(&spec.shape)
        )
    }
}

fn mismatch(
    spec: &InputSpec,
    origin: Origin<'_>,
    shape: &[usize],
    dtype: DType,
    hint: &str,
) -> Error {
    Error::InputMismatch {
        tensor: spec.name.clone(),
        expected: expected_text(spec),
        actual: format!("{} {dtype} in {origin}", fmt_shape(shape)),
        hint: format!("; {hint}"),
    }
}

fn convert_dtype(raw: RawArray, spec: &InputSpec, origin: Origin<'_>) -> Result<SampleArray> {
    let converted = match (spec.dtype, raw) {
        (DType::F32, RawArray::F32(a) | RawArray::F16(a)) => {
            check_floats(&a, spec, origin)?;
            SampleArray::F32(a)
        }
        // numpy's default float type: nobody should have to cast to feed a float32 model.
        (DType::F32, RawArray::F64(a)) => {
            check_floats(&a, spec, origin)?;
            SampleArray::F32(a.mapv(|v| v as f32))
        }
        (DType::I32, RawArray::I32(a)) => SampleArray::I32(a),
        // numpy's default integer type on Linux and macOS.
        (DType::I32, RawArray::I64(a)) => SampleArray::I32(narrow_i64(a, spec, origin)?),
        (DType::I64, RawArray::I64(a)) => SampleArray::I64(a),
        // numpy's default integer type on Windows before numpy 2; widening is exact.
        (DType::I64, RawArray::I32(a)) => SampleArray::I64(a.mapv(i64::from)),
        (DType::U8, RawArray::U8(a)) => SampleArray::U8(a),
        (DType::I8, RawArray::I8(a)) => SampleArray::I8(a),
        (want, raw) => {
            let hint = dtype_hint(want, raw.dtype());
            return Err(mismatch(spec, origin, raw.shape(), raw.dtype(), &hint));
        }
    };
    Ok(converted)
}

fn dtype_hint(want: DType, got: DType) -> String {
    match want {
        DType::I8 | DType::U8 if got.is_float() => format!(
            "this input is quantized; save values already quantized to {want} \
             (round(x / scale) + zero_point, then `.astype(np.{want})`), or feed an image folder"
        ),
        DType::F32 if !got.is_float() => format!(
            "qdbg feeds values as they are stored: apply the model's preprocessing, \
             then save with `.astype(np.float32)` (got {got})"
        ),
        _ => format!("save the array with `.astype(np.{want})`"),
    }
}

fn narrow_i64(a: ArrayD<i64>, spec: &InputSpec, origin: Origin<'_>) -> Result<ArrayD<i32>> {
    if let Some((index, value)) = first_unnarrowable(&a) {
        return Err(narrow_error(spec, origin, a.shape(), &index, value));
    }
    Ok(a.mapv(|v| v as i32))
}

/// The first value (and its index) that does not fit in int32.
pub(crate) fn first_unnarrowable(a: &ArrayD<i64>) -> Option<(Vec<usize>, i64)> {
    a.indexed_iter()
        .find(|(_, v)| i32::try_from(**v).is_err())
        .map(|(index, v)| (index.slice().to_vec(), *v))
}

/// `shape` is the whole array's, `index` the value's in it.
pub(crate) fn narrow_error(
    spec: &InputSpec,
    origin: Origin<'_>,
    shape: &[usize],
    index: &[usize],
    value: i64,
) -> Error {
    Error::InputMismatch {
        tensor: spec.name.clone(),
        expected: expected_text(spec),
        actual: format!("{} int64 in {origin}", fmt_shape(shape)),
        hint: format!(
            "; value {value} at index {} (sample {}) does not fit in int32, so the \
             array cannot be narrowed; check the data or the model's input dtype",
            fmt_shape(index),
            index.first().copied().unwrap_or(0)
        ),
    }
}

/// NaN/Inf (or float64 beyond float32's range) would silently poison calibration ranges.
pub(crate) fn check_floats<T: Copy + Into<f64>>(
    a: &ArrayD<T>,
    spec: &InputSpec,
    origin: Origin<'_>,
) -> Result<()> {
    let scan = float_problems(a);
    match scan.first {
        None => Ok(()),
        Some(first) => Err(float_error(
            spec,
            origin,
            first,
            scan.bad_samples,
            a.len_of(Axis(0)),
        )),
    }
}

/// Samples holding a value that is not a finite float32: the first (index, what) and
/// how many, over the samples along axis 0.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FloatScan {
    pub first: Option<(usize, &'static str)>,
    pub bad_samples: usize,
}

pub(crate) fn float_problems<T: Copy + Into<f64>>(a: &ArrayD<T>) -> FloatScan {
    let bad_value = |v: f64| {
        if v.is_nan() {
            Some("NaN")
        } else if v.is_infinite() {
            Some("Inf")
        } else if v.abs() > f64::from(f32::MAX) {
            Some("a value beyond float32's range")
        } else {
            None
        }
    };
    // One comparison catches all three (NaN compares false): a fold without an early exit
    // vectorises, where `find_map` over every value cost a few percent of a whole debug
    // run. Only a sample that fails it is scanned again to say what is wrong.
    let all_usable = |values: &[T]| {
        values.iter().fold(true, |ok, v| {
            let v: f64 = (*v).into();
            ok & (v.abs() <= f64::from(f32::MAX))
        })
    };
    let mut scan = FloatScan::default();
    for (i, sample) in a.outer_iter().enumerate() {
        if sample.as_slice().is_some_and(all_usable) {
            continue;
        }
        if let Some(what) = sample.iter().find_map(|v| bad_value((*v).into())) {
            scan.first.get_or_insert((i, what));
            scan.bad_samples += 1;
        }
    }
    scan
}

pub(crate) fn float_error(
    spec: &InputSpec,
    origin: Origin<'_>,
    (i, what): (usize, &str),
    bad_samples: usize,
    total: usize,
) -> Error {
    Error::data(
        origin.path,
        format!(
            "model input '{}'{}: sample {i} contains {what} ({bad_samples} of {total} samples \
             are affected); it would poison the calibration ranges, so fix or drop \
             those samples",
            spec.name,
            entry_suffix(origin),
        ),
    )
}
