//! Ground-truth labels: one integer class per sample.

use std::path::Path;

use ndarray::ArrayD;

use super::npy::{fmt_shape, parse_npy, RawArray};
use crate::error::{Error, Result};

/// Reads labels from an `.npy` of any integer dtype (shape `[N]` or `[N, 1]`) or from a
/// text file with one integer per line. With `expected_samples`, the count must match.
pub fn load_labels(path: &Path, expected_samples: Option<usize>) -> Result<Vec<i64>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_labels(&bytes, path, expected_samples)
}

/// [`load_labels`] on bytes already in memory; `path` picks the format by its extension
/// and labels errors.
pub fn parse_labels(
    bytes: &[u8],
    path: &Path,
    expected_samples: Option<usize>,
) -> Result<Vec<i64>> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let labels = match extension.as_deref() {
        Some("npy") => labels_from_npy(path, bytes)?,
        Some("npz") => return Err(Error::data(
            path,
            "labels must be an .npy array or a text file with one integer per line, not an .npz",
        )),
        _ => labels_from_text(path, bytes)?,
    };
    if labels.is_empty() {
        return Err(Error::data(path, "the labels file holds no labels"));
    }
    if let Some(n) = expected_samples {
        if labels.len() != n {
            return Err(Error::data(
                path,
                format!(
                    "{} labels for {n} samples; give exactly one label per sample, in sample order",
                    labels.len()
                ),
            ));
        }
    }
    Ok(labels)
}

fn labels_from_npy(path: &Path, bytes: &[u8]) -> Result<Vec<i64>> {
    let raw = parse_npy(bytes).map_err(|reason| Error::data(path, reason))?;
    let (shape, dtype) = (raw.shape().to_vec(), raw.dtype());
    match shape.as_slice() {
        [_] | [_, 1] => {}
        _ => {
            return Err(Error::data(
                path,
                format!(
                    "labels must have shape [N] or [N, 1], got {} {dtype}; save class indices, \
                     e.g. `np.argmax(one_hot, axis=1)` for one-hot labels",
                    fmt_shape(&shape)
                ),
            ))
        }
    }
    fn widen<T: Copy + Into<i64>>(a: ArrayD<T>) -> Vec<i64> {
        a.iter().map(|&v| v.into()).collect()
    }
    let labels = match raw {
        RawArray::I8(a) => widen(a),
        RawArray::U8(a) => widen(a),
        RawArray::I16(a) => widen(a),
        RawArray::U16(a) => widen(a),
        RawArray::I32(a) => widen(a),
        RawArray::U32(a) => widen(a),
        RawArray::I64(a) => a.iter().copied().collect(),
        RawArray::U64(a) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, &v) in a.iter().enumerate() {
                let v = i64::try_from(v).map_err(|_| {
                    Error::data(
                        path,
                        format!("label {i} is {v}, which does not fit in int64"),
                    )
                })?;
                out.push(v);
            }
            out
        }
        RawArray::F16(_) | RawArray::F32(_) | RawArray::F64(_) => {
            return Err(Error::data(
                path,
                format!(
                    "labels are {dtype} but must be integer class indices; save them with \
                     `.astype(np.int64)`"
                ),
            ))
        }
    };
    Ok(labels)
}

fn labels_from_text(path: &Path, bytes: &[u8]) -> Result<Vec<i64>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::data(
            path,
            format!(
                "not a text file ({e}); labels must be an .npy array or a text file with \
                 one integer per line"
            ),
        )
    })?;
    // Editors and `print` leave trailing newlines; a blank line anywhere else would
    // shift every later label onto the wrong sample.
    // Windows editors may start the file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let used = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let mut labels = Vec::with_capacity(used);
    for (i, line) in lines.iter().take(used).enumerate() {
        if line.is_empty() {
            return Err(Error::data(
                path,
                format!(
                    "line {} is blank; each line up to the last label must hold one integer \
                     class index, or later labels would land on the wrong samples",
                    i + 1
                ),
            ));
        }
        let label = line.parse::<i64>().map_err(|_| {
            let shown: String = line.chars().take(40).collect();
            let ellipsis = if line.chars().count() > 40 { "..." } else { "" };
            Error::data(
                path,
                format!(
                    "line {}: '{shown}{ellipsis}' is not an integer; each line must hold \
                     exactly one integer class index",
                    i + 1
                ),
            )
        })?;
        labels.push(label);
    }
    Ok(labels)
}
