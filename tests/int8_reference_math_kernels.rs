//! The int8 DIV, SQUARED_DIFFERENCE, RSQRT, SQRT, PRELU and GELU kernels against
//! LiteRT: each `tests/fixtures/kernels/reference_math/<case>.npz` holds one op's int8 inputs,
//! quantization parameters and attributes, and the int8 output that LiteRT 2.3.0
//! (builtin kernels, no delegates) computed from them. Made by
//! `scripts/kernel_vectors/make_reference_math_vectors.py`. Every case must match exactly.

use std::fs::File;
use std::path::PathBuf;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;

use qdbg::graph::FusedActivation;
use qdbg::kernels::int8::binary::{Div, SquaredDifference};
use qdbg::kernels::int8::unary::{Gelu, Prelu, Rsqrt, Sqrt};
use qdbg::kernels::int8::QParams;

struct Vector {
    name: String,
    npz: NpzReader<File>,
}

impl Vector {
    fn open(case: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kernels/reference_math")
            .join(format!("{case}.npz"));
        let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Vector {
            name: case.to_string(),
            npz: NpzReader::new(file).unwrap(),
        }
    }

    fn i8s(&mut self, key: &str) -> ArrayD<i8> {
        self.npz
            .by_name::<ndarray::OwnedRepr<i8>, IxDyn>(key)
            .unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name))
    }

    fn scalar<T: ndarray_npy::ReadableElement + Copy>(&mut self, key: &str) -> T {
        let a = self
            .npz
            .by_name::<ndarray::OwnedRepr<T>, IxDyn>(key)
            .unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name));
        *a.iter().next().expect("empty scalar")
    }

    fn qparams(&mut self, prefix: &str) -> QParams {
        QParams::new(
            self.scalar::<f32>(&format!("{prefix}_scale")),
            self.scalar::<i32>(&format!("{prefix}_zp")),
        )
    }

    fn activation(&mut self) -> FusedActivation {
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
fn sample_shape(a: &ArrayD<i8>) -> Vec<usize> {
    a.shape()[1..].to_vec()
}

fn sample(a: &ArrayD<i8>, s: usize) -> Vec<i8> {
    a.index_axis(ndarray::Axis(0), s).iter().copied().collect()
}

/// Runs `kernel` on every sample and compares with LiteRT's output exactly,
/// reporting the mismatch count and the largest difference in LSBs.
fn check(
    v: &Vector,
    expected: &ArrayD<i8>,
    mut kernel: impl FnMut(usize, &mut [i8]) -> Result<(), String>,
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

type Binary = Box<dyn Fn(&[i8], &[usize], &[i8], &[usize], &mut [i8]) -> Result<(), String>>;

fn binary(case: &str) {
    let mut v = Vector::open(case);
    let (a, b, out) = (v.i8s("in0"), v.i8s("in1"), v.i8s("out"));
    let (qa, qb, qo) = (v.qparams("in0"), v.qparams("in1"), v.qparams("out"));
    let (sa, sb) = (sample_shape(&a), sample_shape(&b));
    let run: Binary = match case.split('_').next().unwrap() {
        "div" => {
            let k = Div::new(qa, qb, qo, v.activation()).unwrap();
            Box::new(move |x, xs, y, ys, o| k.run(x, xs, y, ys, o))
        }
        "sqdiff" => {
            let k = SquaredDifference::new(qa, qb, qo).unwrap();
            Box::new(move |x, xs, y, ys, o| k.run(x, xs, y, ys, o))
        }
        "prelu" => {
            let k = Prelu::new(qa, qb, qo).unwrap();
            Box::new(move |x, xs, y, ys, o| k.run(x, xs, y, ys, o))
        }
        _ => unreachable!("{case}"),
    };
    assert_eq!(
        qdbg::kernels::int8::binary::broadcast_shape(&sa, &sb).unwrap(),
        sample_shape(&out),
        "{case}"
    );
    check(&v, &out, |s, o| {
        run(&sample(&a, s), &sa, &sample(&b, s), &sb, o)
    });
}

type Unary = Box<dyn Fn(&[i8], &mut [i8]) -> Result<(), String>>;

fn unary(case: &str) {
    let mut v = Vector::open(case);
    let (x, out) = (v.i8s("in0"), v.i8s("out"));
    let (qi, qo) = (v.qparams("in0"), v.qparams("out"));
    let run: Unary = match case.split('_').next().unwrap() {
        "rsqrt" => {
            let k = Rsqrt::new(qi, qo).unwrap();
            Box::new(move |i, o| k.run(i, o))
        }
        "sqrt" => {
            let k = Sqrt::new(qi, qo).unwrap();
            Box::new(move |i, o| k.run(i, o))
        }
        "gelu" => {
            let approximate = v.scalar::<bool>("approximate");
            assert_eq!(approximate, case == "gelu_approx", "{case}: flag");
            let k = Gelu::new(approximate, qi, qo).unwrap();
            Box::new(move |i, o| k.run(i, o))
        }
        _ => unreachable!("{case}"),
    };
    check(&v, &out, |s, o| run(&sample(&x, s), o));
}

macro_rules! cases {
    ($($name:ident => $body:expr;)*) => {
        $(#[test] fn $name() { $body })*
        /// Every vector on disk has a test above (none is silently skipped).
        #[test]
        fn every_vector_is_tested() {
            let tested = [$(stringify!($name)),*];
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernels/reference_math");
            let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    Some(name.strip_suffix(".npz")?.to_string())
                })
                .collect();
            on_disk.sort();
            for case in &on_disk {
                assert!(tested.contains(&case.as_str()), "{case}.npz has no test");
            }
            assert_eq!(on_disk.len(), tested.len(), "a tested vector is missing on disk");
        }
    };
}

cases! {
    div_bcast_relu => binary("div_bcast_relu");
    div_same => binary("div_same");
    div_first_bcast => binary("div_first_bcast");
    div_generic_bcast => binary("div_generic_bcast");
    div_relu6 => binary("div_relu6");
    sqdiff_same => binary("sqdiff_same");
    sqdiff_bcast => binary("sqdiff_bcast");
    sqdiff_scales => binary("sqdiff_scales");
    rsqrt => unary("rsqrt");
    rsqrt_wide => unary("rsqrt_wide");
    sqrt => unary("sqrt");
    sqrt_wide => unary("sqrt_wide");
    prelu_channel => binary("prelu_channel");
    prelu_spatial => binary("prelu_spatial");
    gelu_approx => unary("gelu_approx");
    gelu_exact => unary("gelu_exact");
}
