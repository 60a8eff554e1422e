//! The int8 single-input kernels (`kernels::int8::unary` and `softmax`: LOGISTIC, TANH,
//! HARD_SWISH, RELU, RELU6, LEAKY_RELU, requantizing QUANTIZE, RSQRT, SQRT, PRELU (its
//! alpha a second, constant operand), GELU, SOFTMAX) against LiteRT: each vector holds one
//! op's int8 input, quantization parameters and attributes, and the int8 output that
//! LiteRT 2.3.0 (builtin kernels, no delegates) computed from them. The vectors are
//! `tests/fixtures/kernels/misc_<case>.npz` (`scripts/kernel_vectors/make_misc_vectors.py`)
//! and `tests/fixtures/kernels/reference_math/<case>.npz`
//! (`scripts/kernel_vectors/make_reference_math_vectors.py`); the scripts and folders keep
//! the names of the batches they were made in. Every case must match exactly.

mod common;

use common::kernel_vectors::{
    assert_every_vector_tested, check, open_case, sample, sample_shape, Vector,
};

use qdbg::kernels::int8::softmax::Softmax;
use qdbg::kernels::int8::unary::{
    Gelu, HardSwish, LeakyRelu, Lut, Prelu, Relu, ReluKind, Requantize, Rsqrt, Sqrt,
};
use qdbg::kernels::int8::QParams;
use qdbg::kernels::KernelError;

/// A prepared single-input kernel: `(input, depth of the last axis, output)`.
type UnaryKernel = Box<dyn Fn(&[i8], usize, &mut [i8]) -> Result<(), KernelError>>;

fn unary(case: &str, make: impl FnOnce(&mut Vector, QParams, QParams) -> UnaryKernel) {
    let mut v = open_case(case);
    let (x, out) = (v.i8s("in0"), v.i8s("out"));
    let (qi, qo) = (v.qparams("in0"), v.qparams("out"));
    let depth = *x.shape().last().unwrap();
    let k = make(&mut v, qi, qo);
    check(&v, &out, |s, o| k(&sample(&x, s), depth, o));
}

/// PRELU: the input and its alpha, broadcast into the input's shape.
fn prelu(case: &str) {
    let mut v = open_case(case);
    let (x, alpha, out) = (v.i8s("in0"), v.i8s("in1"), v.i8s("out"));
    let (qx, qa, qo) = (v.qparams("in0"), v.qparams("in1"), v.qparams("out"));
    let (sx, sa) = (sample_shape(&x), sample_shape(&alpha));
    assert_eq!(
        qdbg::kernels::int8::binary::broadcast_shape(&sx, &sa).unwrap(),
        sample_shape(&out),
        "{case}"
    );
    let k = Prelu::new(qx, qa, qo).unwrap();
    check(&v, &out, |s, o| {
        k.run(&sample(&x, s), &sx, &sample(&alpha, s), &sa, o)
    });
}

macro_rules! cases {
    ($($name:ident => $body:expr;)*) => {
        $(#[test] fn $name() { $body })*
        /// Every unary vector on disk has a test above (none is silently skipped).
        #[test]
        fn every_vector_is_tested() {
            assert_every_vector_tested("unary", &[$(stringify!($name)),*]);
        }
    };
}

cases! {
    softmax => unary("softmax", |v, i, o| {
        let k = Softmax::new(v.scalar::<f32>("beta"), i, o).unwrap();
        Box::new(move |x, depth, y| k.run(x, depth, y))
    });
    softmax_narrow => unary("softmax_narrow", |v, i, o| {
        let k = Softmax::new(v.scalar::<f32>("beta"), i, o).unwrap();
        Box::new(move |x, depth, y| k.run(x, depth, y))
    });
    logistic => unary("logistic", |_, i, o| {
        let k = Lut::logistic(i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    tanh => unary("tanh", |_, i, o| {
        let k = Lut::tanh(i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    hard_swish => unary("hard_swish", |_, i, o| {
        let k = HardSwish::new(i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    relu => unary("relu", |_, i, o| {
        let k = Relu::new(ReluKind::Relu, i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    relu6 => unary("relu6", |_, i, o| {
        let k = Relu::new(ReluKind::Relu6, i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    leaky_relu => unary("leaky_relu", |v, i, o| {
        let k = LeakyRelu::new(v.scalar::<f32>("alpha"), i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    requantize => unary("requantize", |_, i, o| {
        let k = Requantize::new(i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    rsqrt => unary("rsqrt", |_, i, o| {
        let k = Rsqrt::new(i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    rsqrt_wide => unary("rsqrt_wide", |_, i, o| {
        let k = Rsqrt::new(i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    sqrt => unary("sqrt", |_, i, o| {
        let k = Sqrt::new(i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    sqrt_wide => unary("sqrt_wide", |_, i, o| {
        let k = Sqrt::new(i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    gelu_approx => unary("gelu_approx", |v, i, o| {
        assert!(v.scalar::<bool>("approximate"), "gelu_approx: flag");
        let k = Gelu::new(true, i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    gelu_exact => unary("gelu_exact", |v, i, o| {
        assert!(!v.scalar::<bool>("approximate"), "gelu_exact: flag");
        let k = Gelu::new(false, i, o).unwrap();
        Box::new(move |x, _, y| k.run(x, y))
    });
    prelu_channel => prelu("prelu_channel");
    prelu_spatial => prelu("prelu_spatial");
}
