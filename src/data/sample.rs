//! In-memory samples: one array per model input, first axis = samples.

use std::path::PathBuf;

use ndarray::{ArrayD, Axis};

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
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The file or folder the samples came from, for messages.
    pub source: PathBuf,
    /// One array per model input, in model input order.
    pub inputs: Vec<(String, SampleArray)>,
    /// Each input's full shape (batch dim included), parallel to `inputs`: the shape
    /// [`Dataset::sample`] gives. Kept because `[N, 3]` samples feed both a `[1, 3]` and
    /// a `[3]` input, and only the spec says which.
    pub input_shapes: Vec<Vec<usize>>,
}

impl Dataset {
    pub fn num_samples(&self) -> usize {
        self.inputs.first().map_or(0, |(_, a)| a.len())
    }

    /// Sample `i` of every input, in model input order, each shaped like its model input.
    ///
    /// # Panics
    /// If `i >= self.num_samples()`.
    pub fn sample(&self, i: usize) -> Vec<SampleArray> {
        self.inputs
            .iter()
            .enumerate()
            .map(|(k, (_, array))| {
                // The stored rank counts the sample axis; equal ranks mean the batch dim
                // was dropped on load and has to come back.
                let add_batch = self
                    .input_shapes
                    .get(k)
                    .is_some_and(|shape| shape.len() == array.shape().len());
                array.sample(i, add_batch)
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
        let ds = Dataset {
            source: PathBuf::from("x.npz"),
            inputs: vec![
                ("batched".into(), SampleArray::F32(stored.clone())),
                ("flat".into(), SampleArray::F32(stored)),
            ],
            input_shapes: vec![vec![1, 2], vec![2]],
        };
        assert_eq!(ds.num_samples(), 2);
        let s = ds.sample(1);
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
