//! `.npy` samples streamed from the file: checked once when loaded, in chunks of bounded
//! size, then read one sample at a time when the executor asks for it. Memory stays the
//! same whether the file holds a hundred samples or a million.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::convert::{self, Origin};
use super::npy::{header_span, parse_header, NpyHeader, RawArray};
use super::{InputSpec, SampleArray};
use crate::error::{Error, Result};
use crate::graph::DType;

/// Bytes decoded at a time while checking the file on load.
const CHUNK_BYTES: usize = 4 << 20;

#[derive(Debug)]
pub(crate) struct NpySamples {
    path: PathBuf,
    /// Samples are read by seeking; the debugger may run on another thread.
    file: Mutex<File>,
    header: NpyHeader,
    spec: InputSpec,
    samples: usize,
    /// The dims after the sample axis, as stored.
    rest: Vec<usize>,
    sample_bytes: usize,
    /// Whether each stored sample carries a batch dim of 1 that is dropped.
    squeeze: bool,
}

/// Opens `path` for streaming after checking all of it against `spec` (shape, dtype,
/// NaN/Inf, int64 values that int32 cannot hold), with the same messages as the
/// in-memory loader. `None` for Fortran-order files, whose samples are not contiguous:
/// those are read whole.
pub(crate) fn open(path: &Path, spec: &InputSpec) -> Result<Option<NpySamples>> {
    open_in_chunks(path, spec, CHUNK_BYTES)
}

fn open_in_chunks(path: &Path, spec: &InputSpec, chunk_bytes: usize) -> Result<Option<NpySamples>> {
    let io = |e: std::io::Error| Error::io(path, e);
    let data_err =
        |reason: String| Error::data(path, format!("model input '{}': {reason}", spec.name));
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();

    // The header's length field says how much to read; never more than the file holds.
    let mut first = Vec::with_capacity(10);
    (&mut file).take(10).read_to_end(&mut first).map_err(io)?;
    let span = header_span(&first).unwrap_or(first.len());
    let span = usize::try_from(len).map_or(span, |len| span.min(len));
    let mut prefix = vec![0u8; span];
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.read_exact(&mut prefix).map_err(io)?;
    let header = parse_header(&prefix, len).map_err(data_err)?;
    if header.fortran {
        return Ok(None);
    }

    let origin = Origin { path, entry: None };
    let squeeze = convert::check_header(&header.shape, header.dtype(), spec, origin)?;
    let samples = header.shape.first().copied().unwrap_or(0);
    let rest = header.shape.get(1..).unwrap_or_default().to_vec();
    // The header was checked against the file's size, so this cannot overflow.
    let sample_bytes = rest.iter().product::<usize>() * header.elem_size();

    let per_chunk = (chunk_bytes / sample_bytes.max(1)).max(1);
    let mut floats = convert::FloatScan::default();
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(header.data_start as u64))
        .map_err(io)?;
    for start in (0..samples).step_by(per_chunk) {
        let count = per_chunk.min(samples - start);
        buf.resize(count * sample_bytes, 0);
        file.read_exact(&mut buf).map_err(io)?;
        let shape: Vec<usize> = [&[count][..], &rest].concat();
        let raw = header.decode(&shape, &buf).map_err(data_err)?;
        let scan = match &raw {
            RawArray::F16(a) | RawArray::F32(a) => Some(convert::float_problems(a)),
            RawArray::F64(a) => Some(convert::float_problems(a)),
            RawArray::I64(a) if spec.dtype == DType::I32 => {
                if let Some((mut index, value)) = convert::first_unnarrowable(a) {
                    index[0] += start;
                    return Err(convert::narrow_error(
                        spec,
                        origin,
                        &header.shape,
                        &index,
                        value,
                    ));
                }
                None
            }
            _ => None,
        };
        if let Some(scan) = scan {
            if floats.first.is_none() {
                floats.first = scan.first.map(|(i, what)| (i + start, what));
            }
            floats.bad_samples += scan.bad_samples;
        }
    }
    if let Some(first) = floats.first {
        return Err(convert::float_error(
            spec,
            origin,
            first,
            floats.bad_samples,
            samples,
        ));
    }
    Ok(Some(NpySamples {
        path: path.to_path_buf(),
        file: Mutex::new(file),
        header,
        spec: spec.clone(),
        samples,
        rest,
        sample_bytes,
        squeeze,
    }))
}

impl NpySamples {
    pub(crate) fn len(&self) -> usize {
        self.samples
    }

    /// The dtype samples are converted to: the model input's.
    pub(crate) fn dtype(&self) -> DType {
        self.spec.dtype
    }

    /// Samples first, then each sample's shape as the dataset keeps it.
    pub(crate) fn stored_shape(&self) -> Vec<usize> {
        let rest = if self.squeeze {
            self.rest.get(1..).unwrap_or_default()
        } else {
            &self.rest
        };
        [&[self.samples][..], rest].concat()
    }

    /// Sample `i`, converted like the whole array would be, with its sample axis (of 1).
    pub(crate) fn read(&self, i: usize) -> Result<SampleArray> {
        let changed = |reason: String| {
            Error::data(
                &self.path,
                format!(
                    "sample {i} cannot be read any more ({reason}); the file changed after \
                     it was loaded: run again on a file that stays put"
                ),
            )
        };
        let shape: Vec<usize> = [&[1][..], &self.rest].concat();
        let at = self.header.data_start as u64 + (i as u64) * self.sample_bytes as u64;
        // The file is shared by the sample workers: held only while reading.
        let (values, bytes) = {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            file.seek(SeekFrom::Start(at))
                .map_err(|e| changed(e.to_string()))?;
            if self.header.is_native_f32() {
                // The common case (numpy's float32 on x86 and Arm): read in place.
                let values = self.header.read_f32(&shape, &mut *file).map_err(changed)?;
                (Some(values), Vec::new())
            } else {
                let mut buf = vec![0u8; self.sample_bytes];
                file.read_exact(&mut buf)
                    .map_err(|e| changed(e.to_string()))?;
                (None, buf)
            }
        };
        let raw = match values {
            Some(values) => values,
            None => self.header.decode(&shape, &bytes).map_err(changed)?,
        };
        let origin = Origin {
            path: &self.path,
            entry: None,
        };
        convert::to_samples(raw, &self.spec, origin).map_err(|e| changed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn, ShapeBuilder};

    fn spec(shape: &[usize], dtype: DType) -> InputSpec {
        InputSpec {
            name: "x".into(),
            shape: shape.to_vec(),
            dtype,
        }
    }

    fn write<T: ndarray_npy::WritableElement>(path: &Path, shape: &[usize], v: Vec<T>) {
        let a = ArrayD::from_shape_vec(IxDyn(shape), v).unwrap();
        ndarray_npy::write_npy(path, &a).unwrap();
    }

    #[test]
    fn problems_in_later_chunks_are_counted_over_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npy");
        // 10 samples of [1, 2] float64; samples 5 and 8 hold NaN / Inf.
        let mut v: Vec<f64> = (0..20).map(f64::from).collect();
        v[10] = f64::NAN;
        v[17] = f64::INFINITY;
        write(&path, &[10, 1, 2], v);
        // 3 samples of 16 bytes per chunk: the bad ones are in chunks 1 and 2.
        let err = open_in_chunks(&path, &spec(&[1, 2], DType::F32), 48).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sample 5 contains NaN (2 of 10 samples are affected)"),
            "{text}"
        );

        let path = dir.path().join("ids.npy");
        let mut ids: Vec<i64> = (0..12).collect();
        ids[9] = 1 << 40;
        write(&path, &[6, 2], ids);
        let err = open_in_chunks(&path, &spec(&[2], DType::I32), 16).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("[6, 2] int64") && text.contains("at index [4, 1] (sample 4)"),
            "{text}"
        );
    }

    #[test]
    fn samples_read_back_converted_and_squeezed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npy");
        write(&path, &[3, 1, 2], vec![0.5f64, 1.5, 2.5, 3.5, 4.5, 5.5]);
        let s = open_in_chunks(&path, &spec(&[1, 2], DType::F32), 16)
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.len(), s.dtype(), s.stored_shape()),
            (3, DType::F32, vec![3, 2])
        );
        let want = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![4.5f32, 5.5]).unwrap();
        assert_eq!(s.read(2).unwrap(), SampleArray::F32(want));
    }

    #[test]
    fn a_file_cut_after_loading_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npy");
        write(&path, &[4, 2], vec![0f32; 8]);
        let s = open(&path, &spec(&[1, 2], DType::F32)).unwrap().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 8)
            .unwrap();
        assert!(s.read(0).is_ok());
        let text = s.read(3).unwrap_err().to_string();
        assert!(text.contains("sample 3 cannot be read any more"), "{text}");
    }

    #[test]
    fn fortran_order_is_left_to_the_whole_file_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        let a = ndarray::Array2::<f32>::zeros((3, 2).f());
        ndarray_npy::write_npy(&path, &a).unwrap();
        assert!(open(&path, &spec(&[2], DType::F32)).unwrap().is_none());
    }
}
