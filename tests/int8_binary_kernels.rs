//! The int8 binary kernels (`kernels::int8::binary`: ADD, SUB, MUL, MAXIMUM, MINIMUM, DIV,
//! SQUARED_DIFFERENCE) against LiteRT: each vector holds one op's int8 inputs, quantization
//! parameters and attributes, and the int8 output that LiteRT 2.3.0 (builtin kernels, no
//! delegates) computed from them. The vectors are `tests/fixtures/kernels/misc_<case>.npz`
//! (`scripts/kernel_vectors/make_misc_vectors.py`) and
//! `tests/fixtures/kernels/reference_math/<case>.npz`
//! (`scripts/kernel_vectors/make_reference_math_vectors.py`); the scripts and folders keep
//! the names of the batches they were made in. Every case must match exactly.

mod common;

use common::kernel_vectors::{assert_every_vector_tested, check, open_case, sample, sample_shape};

use qdbg::kernels::int8::binary::{Add, Div, MinMax, Mul, SquaredDifference, Sub};
use qdbg::kernels::KernelError;

type Run = Box<dyn Fn(&[i8], &[i8], &mut [i8]) -> Result<(), KernelError>>;

fn binary(case: &str) {
    let mut v = open_case(case);
    let (a, b, out) = (v.i8s("in0"), v.i8s("in1"), v.i8s("out"));
    let (qa, qb, qo) = (v.qparams("in0"), v.qparams("in1"), v.qparams("out"));
    let (sa, sb) = (sample_shape(&a), sample_shape(&b));
    assert_eq!(
        qdbg::kernels::int8::binary::broadcast_shape(&sa, &sb).unwrap(),
        sample_shape(&out),
        "{case}"
    );
    let run: Run = match case.split('_').next().unwrap() {
        "add" => {
            let k = Add::new(qa, qb, qo, v.activation()).unwrap();
            Box::new(move |x, y, o| k.run(x, &sa, y, &sb, o))
        }
        "sub" => {
            let k = Sub::new(qa, qb, qo, v.activation()).unwrap();
            Box::new(move |x, y, o| k.run(x, &sa, y, &sb, o))
        }
        "mul" => {
            let k = Mul::new(qa, qb, qo, v.activation()).unwrap();
            Box::new(move |x, y, o| k.run(x, &sa, y, &sb, o))
        }
        "maximum" => Box::new(move |x, y, o| MinMax::Maximum.run(x, &sa, y, &sb, o)),
        "minimum" => Box::new(move |x, y, o| MinMax::Minimum.run(x, &sa, y, &sb, o)),
        "div" => {
            let k = Div::new(qa, qb, qo, v.activation()).unwrap();
            Box::new(move |x, y, o| k.run(x, &sa, y, &sb, o))
        }
        "sqdiff" => {
            let k = SquaredDifference::new(qa, qb, qo).unwrap();
            Box::new(move |x, y, o| k.run(x, &sa, y, &sb, o))
        }
        _ => unreachable!("{case}"),
    };
    check(&v, &out, |s, o| run(&sample(&a, s), &sample(&b, s), o));
}

macro_rules! cases {
    ($($name:ident => $body:expr;)*) => {
        $(#[test] fn $name() { $body })*
        /// Every binary vector on disk has a test above (none is silently skipped).
        #[test]
        fn every_vector_is_tested() {
            assert_every_vector_tested("binary", &[$(stringify!($name)),*]);
        }
    };
}

cases! {
    add_bcast_relu => binary("add_bcast_relu");
    add_same => binary("add_same");
    add_scalar_bcast => binary("add_scalar_bcast");
    add_first_bcast => binary("add_first_bcast");
    add_generic_bcast => binary("add_generic_bcast");
    sub_bcast => binary("sub_bcast");
    sub_same => binary("sub_same");
    mul_se => binary("mul_se");
    mul_same => binary("mul_same");
    mul_scalar_bcast => binary("mul_scalar_bcast");
    maximum => binary("maximum");
    minimum => binary("minimum");
    div_bcast_relu => binary("div_bcast_relu");
    div_same => binary("div_same");
    div_first_bcast => binary("div_first_bcast");
    div_generic_bcast => binary("div_generic_bcast");
    div_relu6 => binary("div_relu6");
    sqdiff_same => binary("sqdiff_same");
    sqdiff_bcast => binary("sqdiff_bcast");
    sqdiff_scales => binary("sqdiff_scales");
}
