//! LiteRT kernel vectors (`tests/fixtures/kernels/**.npz`, made by the scripts in
//! `scripts/kernel_vectors/`): one op's int8 inputs, quantization parameters and
//! attributes, and the int8 output LiteRT computed from them, read by the kernel tests.

use std::fs::File;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;

use qdbg::graph::FusedActivation;
use qdbg::kernels::int8::QParams;

pub struct Vector {
    pub name: String,
    npz: NpzReader<File>,
}

impl Vector {
    /// The vector at `path`, named `name` in failures.
    pub fn open(path: &Path, name: &str) -> Self {
        let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Vector {
            name: name.to_string(),
            npz: NpzReader::new(file).unwrap(),
        }
    }

    pub fn i8s(&mut self, key: &str) -> ArrayD<i8> {
        self.npz
            .by_name::<ndarray::OwnedRepr<i8>, IxDyn>(key)
            .unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name))
    }

    pub fn scalar<T: ndarray_npy::ReadableElement + Copy>(&mut self, key: &str) -> T {
        let a = self
            .npz
            .by_name::<ndarray::OwnedRepr<T>, IxDyn>(key)
            .unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name));
        *a.iter().next().expect("empty scalar")
    }

    pub fn ints(&mut self, key: &str) -> Vec<i32> {
        self.npz
            .by_name::<ndarray::OwnedRepr<i32>, IxDyn>(key)
            .unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name))
            .iter()
            .copied()
            .collect()
    }

    pub fn qparams(&mut self, prefix: &str) -> QParams {
        QParams::new(
            self.scalar::<f32>(&format!("{prefix}_scale")),
            self.scalar::<i32>(&format!("{prefix}_zp")),
        )
    }

    /// TFLite's fused activation code, as the vector scripts store it.
    pub fn activation(&mut self) -> FusedActivation {
        match self.scalar::<i32>("activation") {
            0 => FusedActivation::None,
            1 => FusedActivation::Relu,
            2 => FusedActivation::ReluN1To1,
            3 => FusedActivation::Relu6,
            other => panic!("{}: unexpected fused activation {other}", self.name),
        }
    }
}

/// The shape of one sample of an array stored as [samples, ...].
pub fn sample_shape(a: &ArrayD<i8>) -> Vec<usize> {
    a.shape()[1..].to_vec()
}

pub fn sample(a: &ArrayD<i8>, s: usize) -> Vec<i8> {
    a.index_axis(ndarray::Axis(0), s).iter().copied().collect()
}

/// Runs `kernel` on every sample and compares with LiteRT's output exactly,
/// reporting the mismatch count and the largest difference in LSBs.
pub fn check(
    v: &Vector,
    expected: &ArrayD<i8>,
    mut kernel: impl FnMut(usize, &mut [i8]) -> Result<(), qdbg::kernels::KernelError>,
) {
    let samples = expected.shape()[0];
    let (mut mismatches, mut max_diff, mut total) = (0usize, 0i32, 0usize);
    for s in 0..samples {
        let want = sample(expected, s);
        let mut got = vec![0i8; want.len()];
        kernel(s, &mut got).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        for (&g, &w) in got.iter().zip(&want) {
            let d = (i32::from(g) - i32::from(w)).abs();
            mismatches += usize::from(d != 0);
            max_diff = max_diff.max(d);
        }
        total += want.len();
    }
    assert!(total > 0, "{}: empty vector", v.name);
    assert_eq!(
        mismatches, 0,
        "{}: {mismatches} of {total} outputs differ from LiteRT, by up to {max_diff} LSB",
        v.name
    );
}
