//! In-memory samples: one array per model input, first axis = samples.

use std::path::PathBuf;

use ndarray::{ArrayD, Axis};

use crate::error::Result;
use crate::graph::DType;

/// One input's samples, first axis = samples.
///
/// In a [`Dataset`] the remaining axes are the input's shape without its batch dim when
/// that dim is 1, else the whole input shape; [`Dataset::sample`] puts the batch dim back.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleArray {
    F32(ArrayD<f32>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
    I8(ArrayD<i8>),
}

macro_rules! with_array {
    ($value:expr, $array:ident => $body:expr) => {
        match $value {
            SampleArray::F32($array) => $body,
            SampleArray::I32($array) => $body,
            SampleArray::I64($array) => $body,
            SampleArray::U8($array) => $body,
            SampleArray::I8($array) => $body,
        }
    };
}

macro_rules! map_array {
    ($value:expr, $array:ident => $body:expr) => {
        match $value {
            SampleArray::F32($array) => SampleArray::F32($body),
            SampleArray::I32($array) => SampleArray::I32($body),
            SampleArray::I64($array) => SampleArray::I64($body),
            SampleArray::U8($array) => SampleArray::U8($body),
            SampleArray::I8($array) => SampleArray::I8($body),
        }
    };
}

pub(crate) use with_array;

impl SampleArray {
    /// Number of samples (the length of the first axis; 0 for a 0-d array).
    pub fn len(&self) -> usize {
        self.shape().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match self {
            SampleArray::F32(_) => DType::F32,
            SampleArray::I32(_) => DType::I32,
            SampleArray::I64(_) => DType::I64,
            SampleArray::U8(_) => DType::U8,
            SampleArray::I8(_) => DType::I8,
        }
    }

    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    /// The only sample of an array of one (as a streamed sample comes), with a leading
    /// batch dim of 1 added when `add_batch`: the same array as `sample(0, add_batch)`,
    /// without copying the values.
    fn into_only_sample(self, add_batch: bool) -> SampleArray {
        map_array!(self, a => {
            let one = a.index_axis_move(Axis(0), 0);
            if add_batch {
                one.insert_axis(Axis(0))
            } else {
                one
            }
        })
    }

    /// Sample `i`, with a leading batch dim of 1 added when `add_batch`.
    fn sample(&self, i: usize, add_batch: bool) -> SampleArray {
        map_array!(self, a => {
            let view = a.index_axis(Axis(0), i);
            if add_batch {
                view.insert_axis(Axis(0)).to_owned()
            } else {
                view.to_owned()
            }
        })
    }
}

/// Samples for every model input, validated against the model's input specs.
///
/// An `.npy` file is not held in memory: it is validated when loaded, in bounded chunks,
/// and each sample is read from the file when asked for, so memory does not grow with the
/// number of samples. Other sources are held in memory.
#[derive(Debug)]
pub struct Dataset {
    /// The file or folder the samples came from, for messages.
    pub source: PathBuf,
    /// One entry per model input, in model input order.
    pub(crate) inputs: Vec<(String, Samples)>,
    /// Each input's full shape (batch dim included), parallel to `inputs`: the shape
    /// [`Dataset::sample`] gives. Kept because `[N, 3]` samples feed both a `[1, 3]` and
    /// a `[3]` input, and only the spec says which.
    pub(crate) input_shapes: Vec<Vec<usize>>,
}

/// One input's samples.
#[derive(Debug)]
pub(crate) enum Samples {
    Memory(SampleArray),
    File(super::lazy::NpySamples),
}

impl Samples {
    fn len(&self) -> usize {
        match self {
            Samples::Memory(a) => a.len(),
            Samples::File(f) => f.len(),
        }
    }

    /// The dtype and the shape (samples first, batch dim of 1 dropped) of the whole array.
    fn stored(&self) -> (DType, Vec<usize>) {
        match self {
            Samples::Memory(a) => (a.dtype(), a.shape().to_vec()),
            Samples::File(f) => (f.dtype(), f.stored_shape()),
        }
    }

    /// Sample `i` as stored (samples first), the sample axis of length 1 kept.
    fn get(&self, i: usize) -> Result<std::borrow::Cow<'_, SampleArray>> {
        match self {
            Samples::Memory(a) => Ok(std::borrow::Cow::Borrowed(a)),
            Samples::File(f) => f.read(i).map(std::borrow::Cow::Owned),
        }
    }
}

impl Dataset {
    /// A dataset of arrays already in memory, first axis = samples; `input_shapes` are the
    /// model inputs' full shapes (see [`Dataset::sample`]).
    pub fn from_arrays(
        source: PathBuf,
        inputs: Vec<(String, SampleArray)>,
        input_shapes: Vec<Vec<usize>>,
    ) -> Self {
        Dataset {
            source,
            inputs: inputs
                .into_iter()
                .map(|(n, a)| (n, Samples::Memory(a)))
                .collect(),
            input_shapes,
        }
    }

    pub fn num_samples(&self) -> usize {
        self.inputs.first().map_or(0, |(_, a)| a.len())
    }

    /// The model inputs' names, in order.
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|(n, _)| n.as_str())
    }

    /// Input `k`'s stored dtype and shape: samples first, the batch dim of 1 dropped when
    /// the model input has one.
    pub fn stored(&self, k: usize) -> Option<(DType, Vec<usize>)> {
        self.inputs.get(k).map(|(_, a)| a.stored())
    }

    /// Input `k`'s sample `i` as stored: the sample axis (of 1) kept, the batch dim of 1
    /// dropped as in [`Dataset::stored`]. For hashing and exporting the data as stored.
    pub fn stored_sample(&self, k: usize, i: usize) -> Result<SampleArray> {
        let (_, stored) = self
            .inputs
            .get(k)
            .ok_or_else(|| crate::Error::Internal(format!("the dataset has no input #{k}")))?;
        match stored {
            Samples::Memory(a) => Ok(map_array!(a, x => x
                .slice_axis(Axis(0), ndarray::Slice::from(i..i + 1))
                .to_owned())),
            Samples::File(f) => f.read(i),
        }
    }

    /// Sample `i` of every input, in model input order, each shaped like its model input.
    /// Reading fails only when a streamed file can no longer be read (or was changed
    /// after loading).
    ///
    /// # Panics
    /// If `i >= self.num_samples()`.
    pub fn sample(&self, i: usize) -> Result<Vec<SampleArray>> {
        self.inputs
            .iter()
            .enumerate()
            .map(|(k, (_, stored))| {
                let array = stored.get(i)?;
                // The stored rank counts the sample axis; equal ranks mean the batch dim
                // was dropped on load and has to come back.
                let add_batch = self
                    .input_shapes
                    .get(k)
                    .is_some_and(|shape| shape.len() == array.shape().len());
                Ok(match array {
                    // A streamed sample comes alone, as sample 0.
                    std::borrow::Cow::Owned(a) => a.into_only_sample(add_batch),
                    std::borrow::Cow::Borrowed(a) => a.sample(i, add_batch),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, ArrayD, IxDyn};

    #[test]
    fn sample_restores_batch_dim_only_where_the_spec_has_one() {
        // Two samples of a [1, 2] input and of a [2] input, stored identically.
        let stored = array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn();
        let ds = Dataset::from_arrays(
            PathBuf::from("x.npz"),
            vec![
                ("batched".into(), SampleArray::F32(stored.clone())),
                ("flat".into(), SampleArray::F32(stored)),
            ],
            vec![vec![1, 2], vec![2]],
        );
        assert_eq!(ds.num_samples(), 2);
        let s = ds.sample(1).unwrap();
        let want_batched = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![3.0f32, 4.0]).unwrap();
        let want_flat = ArrayD::from_shape_vec(IxDyn(&[2]), vec![3.0f32, 4.0]).unwrap();
        assert_eq!(
            s,
            vec![SampleArray::F32(want_batched), SampleArray::F32(want_flat)]
        );
    }

    #[test]
    fn len_dtype_shape() {
        let a = SampleArray::I8(ArrayD::zeros(IxDyn(&[5, 2, 3])));
        assert_eq!(
            (a.len(), a.dtype(), a.shape()),
            (5, DType::I8, &[5, 2, 3][..])
        );
        assert!(!a.is_empty());
        let scalar = SampleArray::U8(ArrayD::zeros(IxDyn(&[])));
        assert_eq!(scalar.len(), 0);
    }
}
