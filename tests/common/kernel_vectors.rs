//! LiteRT kernel vectors (`tests/fixtures/kernels/**.npz`, made by the scripts in
//! `scripts/kernel_vectors/`): one op's int8 inputs, quantization parameters and
//! attributes, and the int8 output LiteRT computed from them, read by the kernel tests.
//!
//! Two layouts exist, both read here. The element-wise, pooling, reduction and activation
//! vectors (`misc_<case>.npz`, `reference_math/<case>.npz`) store several samples of one
//! op along a leading axis and name zero points `<tensor>_zp`; [`check`] runs them sample
//! by sample. The conv-like and resize vectors (`conv_<case>.npz`,
//! `transpose_conv_matmul_resize/<case>.npz`) store one op run (its batch axis is the op's
//! own) and name zero points `<tensor>_zero_point`; their harnesses compare the whole
//! output with [`mismatches`].

use std::fs::File;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{NpzReader, ReadableElement};

use qdbg::graph::FusedActivation;
use qdbg::kernels::int8::QParams;
use qdbg::kernels::KernelError;

pub struct Vector {
    pub name: String,
    npz: NpzReader<File>,
    keys: Vec<String>,
}

impl Vector {
    /// The vector at `path`, named `name` in failures.
    pub fn open(path: &Path, name: &str) -> Self {
        let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut npz = NpzReader::new(file).unwrap();
        // numpy's savez stores `key.npy`; the reader accepts either spelling.
        let keys = npz
            .names()
            .unwrap()
            .into_iter()
            .map(|k| k.strip_suffix(".npy").unwrap_or(&k).to_string())
            .collect();
        Vector {
            name: name.to_string(),
            npz,
            keys,
        }
    }

    /// Whether the vector stores `key` (optional entries such as a bias).
    pub fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    pub fn array<T: ReadableElement>(&mut self, key: &str) -> ArrayD<T> {
        self.npz
            .by_name::<ndarray::OwnedRepr<T>, IxDyn>(key)
            .unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name))
    }

    /// `key` if it is stored with element type `T`, else `None` (for vectors whose
    /// dtypes say which kernel variant ran).
    pub fn try_array<T: ReadableElement>(&mut self, key: &str) -> Option<ArrayD<T>> {
        self.npz.by_name::<ndarray::OwnedRepr<T>, IxDyn>(key).ok()
    }

    pub fn i8s(&mut self, key: &str) -> ArrayD<i8> {
        self.array(key)
    }

    /// `key`'s elements in storage (row-major) order.
    pub fn vec<T: ReadableElement + Copy>(&mut self, key: &str) -> Vec<T> {
        self.array::<T>(key).iter().copied().collect()
    }

    pub fn scalar<T: ReadableElement + Copy>(&mut self, key: &str) -> T {
        let a = self.array::<T>(key);
        assert_eq!(a.len(), 1, "{}: {key} should be a scalar", self.name);
        *a.iter().next().unwrap()
    }

    pub fn ints(&mut self, key: &str) -> Vec<i32> {
        self.vec(key)
    }

    /// An int32 scalar that counts something (a stride, a pad).
    pub fn usize(&mut self, key: &str) -> usize {
        let v = self.scalar::<i32>(key);
        usize::try_from(v).unwrap_or_else(|_| panic!("{}: {key} = {v}", self.name))
    }

    /// An int32 scalar used as a flag (0 or not).
    pub fn flag(&mut self, key: &str) -> bool {
        self.scalar::<i32>(key) != 0
    }

    /// `<prefix>_scale` with `<prefix>_zp` or `<prefix>_zero_point` (the scripts spell
    /// the zero point both ways; see the module docs).
    pub fn qparams(&mut self, prefix: &str) -> QParams {
        let short = format!("{prefix}_zp");
        let zero_point = if self.has(&short) {
            short
        } else {
            format!("{prefix}_zero_point")
        };
        QParams::new(
            self.scalar::<f32>(&format!("{prefix}_scale")),
            self.scalar::<i32>(&zero_point),
        )
    }

    /// TFLite's fused activation code, as the vector scripts store it under `key`
    /// (usually "activation").
    pub fn activation_at(&mut self, key: &str) -> FusedActivation {
        activation_from_code(self.scalar::<i32>(key))
    }

    pub fn activation(&mut self) -> FusedActivation {
        self.activation_at("activation")
    }
}

/// TFLite's fused activation codes the vectors use (NONE, RELU, RELU_N1_TO_1, RELU6).
pub fn activation_from_code(code: i32) -> FusedActivation {
    match code {
        0 => FusedActivation::None,
        1 => FusedActivation::Relu,
        2 => FusedActivation::ReluN1To1,
        3 => FusedActivation::Relu6,
        other => panic!("activation code {other} not expected in the vectors"),
    }
}

/// The shape of one sample of an array stored as [samples, ...].
pub fn sample_shape(a: &ArrayD<i8>) -> Vec<usize> {
    a.shape()[1..].to_vec()
}

pub fn sample(a: &ArrayD<i8>, s: usize) -> Vec<i8> {
    a.index_axis(ndarray::Axis(0), s).iter().copied().collect()
}

/// Elements of `ours` that differ from LiteRT's, and the largest difference in LSBs.
pub fn mismatches(ours: &[i8], litert: &[i8]) -> (usize, i32) {
    assert_eq!(ours.len(), litert.len(), "output lengths differ");
    ours.iter().zip(litert).fold((0, 0), |(n, max), (&a, &b)| {
        let d = (i32::from(a) - i32::from(b)).abs();
        (n + usize::from(d != 0), max.max(d))
    })
}

/// Runs `kernel` on every sample and compares with LiteRT's output exactly,
/// reporting the mismatch count and the largest difference in LSBs.
pub fn check(
    v: &Vector,
    expected: &ArrayD<i8>,
    mut kernel: impl FnMut(usize, &mut [i8]) -> Result<(), KernelError>,
) {
    let samples = expected.shape()[0];
    let (mut total_mismatches, mut max_diff, mut total) = (0usize, 0i32, 0usize);
    for s in 0..samples {
        let want = sample(expected, s);
        let mut got = vec![0i8; want.len()];
        kernel(s, &mut got).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let (n, d) = mismatches(&got, &want);
        total_mismatches += n;
        max_diff = max_diff.max(d);
        total += want.len();
    }
    assert!(total > 0, "{}: empty vector", v.name);
    assert_eq!(
        total_mismatches, 0,
        "{}: {total_mismatches} of {total} outputs differ from LiteRT, by up to {max_diff} LSB",
        v.name
    );
}

/// The sampled vectors (`kernels/misc_<case>.npz` and `kernels/reference_math/<case>.npz`)
/// by case name. The case names of the two folders do not overlap.
pub fn open_case(case: &str) -> Vector {
    let misc = crate::common::fixture(&format!("kernels/misc_{case}.npz"));
    let path = if misc.exists() {
        misc
    } else {
        crate::common::fixture(&format!("kernels/reference_math/{case}.npz"))
    };
    Vector::open(&path, case)
}

/// The op family, and so the test file, a sampled vector belongs to, by the op its case
/// name starts with (the kernels' own families: `kernels/int8/{binary,unary,pool,reduce,
/// softmax}`).
pub fn family(case: &str) -> Option<&'static str> {
    let op = case.split('_').next()?;
    Some(match op {
        "add" | "sub" | "mul" | "maximum" | "minimum" | "div" | "sqdiff" => "binary",
        "avgpool" | "maxpool" | "mean" | "sum" | "reduce" => "pool_reduce",
        "softmax" | "logistic" | "tanh" | "hard" | "relu" | "relu6" | "leaky" | "requantize"
        | "rsqrt" | "sqrt" | "prelu" | "gelu" => "unary",
        _ => return None,
    })
}

/// Every sampled vector of `family_name` on disk is in `tested`, and every sampled vector
/// on disk has a family (so none falls between the test files unseen).
pub fn assert_every_vector_tested(family_name: &str, tested: &[&str]) {
    let mut on_disk: Vec<String> = Vec::new();
    for (dir, prefix) in [("kernels", "misc_"), ("kernels/reference_math", "")] {
        for entry in std::fs::read_dir(crate::common::fixture(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(case) = name
                .strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(".npz"))
            {
                on_disk.push(case.to_string());
            }
        }
    }
    // (`kernels/` also holds the conv-like and SUB vectors; without `misc_` they are not
    // listed above.)
    on_disk.retain(|case| {
        let f = family(case);
        assert!(
            f.is_some(),
            "vector {case} belongs to no kernel test family"
        );
        f == Some(family_name)
    });
    on_disk.sort();
    for case in &on_disk {
        assert!(tested.contains(&case.as_str()), "vector {case} has no test");
    }
    assert_eq!(
        on_disk.len(),
        tested.len(),
        "a tested {family_name} vector is missing on disk"
    );
}

/// The single-run vectors of `tests/fixtures/kernels/<dir>` whose file names start with
/// `prefix`, sorted.
pub fn single_run_vectors(dir: &str, prefix: &str) -> Vec<PathBuf> {
    let dir = crate::common::fixture(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".npz")
        })
        .collect();
    files.sort();
    files
}
