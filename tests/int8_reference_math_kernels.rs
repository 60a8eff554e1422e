//! The int8 DIV, SQUARED_DIFFERENCE, RSQRT, SQRT, PRELU and GELU kernels against
//! LiteRT: each `tests/fixtures/kernels/reference_math/<case>.npz` holds one op's int8 inputs,
//! quantization parameters and attributes, and the int8 output that LiteRT 2.3.0
//! (builtin kernels, no delegates) computed from them. Made by
//! `scripts/kernel_vectors/make_reference_math_vectors.py`. Every case must match exactly.

mod common;

use common::kernel_vectors::{check, sample, sample_shape, Vector};

use qdbg::kernels::int8::binary::{Div, SquaredDifference};
use qdbg::kernels::int8::unary::{Gelu, Prelu, Rsqrt, Sqrt};

/// `tests/fixtures/kernels/reference_math/<case>.npz`.
fn open(case: &str) -> Vector {
    Vector::open(
        &common::fixture(&format!("kernels/reference_math/{case}.npz")),
        case,
    )
}

type Binary = Box<
    dyn Fn(&[i8], &[usize], &[i8], &[usize], &mut [i8]) -> Result<(), qdbg::kernels::KernelError>,
>;

fn binary(case: &str) {
    let mut v = open(case);
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

type Unary = Box<dyn Fn(&[i8], &mut [i8]) -> Result<(), qdbg::kernels::KernelError>>;

fn unary(case: &str) {
    let mut v = open(case);
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
            let dir = common::fixture("kernels/reference_math");
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
