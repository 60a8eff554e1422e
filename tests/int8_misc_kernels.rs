//! The int8 elementwise, pooling, reduction, softmax and activation kernels
//! against LiteRT: each `tests/fixtures/kernels/misc_<case>.npz` holds one op's
//! int8 inputs, quantization parameters and attributes, and the int8 output that
//! LiteRT 2.3.0 (builtin kernels, no delegates) computed from them. Made by
//! `scripts/kernel_vectors/make_misc_vectors.py`. Every case must match exactly.

mod common;

use common::kernel_vectors::{check, sample, sample_shape, Vector};

use qdbg::graph::Padding;
use qdbg::kernels::int8::binary::{Add, MinMax, Mul, Sub};
use qdbg::kernels::int8::pool::{Pool2d, PoolKind};
use qdbg::kernels::int8::reduce::{Mean, ReduceMax, Sum};
use qdbg::kernels::int8::softmax::Softmax;
use qdbg::kernels::int8::unary::{HardSwish, LeakyRelu, Lut, Relu, ReluKind, Requantize};
use qdbg::kernels::int8::QParams;

/// `tests/fixtures/kernels/misc_<case>.npz`.
fn open(case: &str) -> Vector {
    Vector::open(&common::fixture(&format!("kernels/misc_{case}.npz")), case)
}

fn binary(case: &str) {
    let mut v = open(case);
    let (a, b, out) = (v.i8s("in0"), v.i8s("in1"), v.i8s("out"));
    let (qa, qb, qo) = (v.qparams("in0"), v.qparams("in1"), v.qparams("out"));
    let (sa, sb) = (sample_shape(&a), sample_shape(&b));
    let op = case.split('_').next().unwrap();
    type Run = Box<dyn Fn(&[i8], &[i8], &mut [i8]) -> Result<(), qdbg::kernels::KernelError>>;
    let run: Run = match op {
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
        _ => unreachable!("{case}"),
    };
    check(&v, &out, |s, o| run(&sample(&a, s), &sample(&b, s), o));
}

fn pool(case: &str, kind: PoolKind) {
    let mut v = open(case);
    let (x, out) = (v.i8s("in0"), v.i8s("out"));
    let shape: [usize; 4] = sample_shape(&x).try_into().unwrap();
    let filter = v.ints("filter");
    let stride = v.ints("stride");
    let padding = match v.scalar::<i32>("padding") {
        0 => Padding::Same,
        _ => Padding::Valid,
    };
    let p = Pool2d::new(
        kind,
        shape,
        (filter[0] as usize, filter[1] as usize),
        (stride[0] as usize, stride[1] as usize),
        padding,
        v.activation(),
        v.qparams("in0"),
        v.qparams("out"),
    )
    .unwrap();
    assert_eq!(p.output_shape().to_vec(), sample_shape(&out), "{case}");
    check(&v, &out, |s, o| p.run(&sample(&x, s), o));
}

fn reduce(case: &str) {
    let mut v = open(case);
    let (x, out) = (v.i8s("in0"), v.i8s("out"));
    let axes = v.ints("axes");
    let keep = v.scalar::<bool>("keep_dims");
    let (qi, qo) = (v.qparams("in0"), v.qparams("out"));
    let shape = sample_shape(&x);
    type Run = Box<dyn Fn(&[i8], &mut [i8]) -> Result<(), qdbg::kernels::KernelError>>;
    let (run, out_shape): (Run, Vec<usize>) = if case.starts_with("mean") {
        let k = Mean::new(&shape, &axes, keep, qi, qo).unwrap();
        let s = k.output_shape().to_vec();
        (Box::new(move |i, o| k.run(i, o)), s)
    } else if case.starts_with("sum") {
        let k = Sum::new(&shape, &axes, keep, qi, qo).unwrap();
        let s = k.output_shape().to_vec();
        (Box::new(move |i, o| k.run(i, o)), s)
    } else {
        let k = ReduceMax::new(&shape, &axes, keep, qi, qo).unwrap();
        let s = k.output_shape().to_vec();
        (Box::new(move |i, o| k.run(i, o)), s)
    };
    assert_eq!(out_shape, sample_shape(&out), "{case}");
    check(&v, &out, |s, o| run(&sample(&x, s), o));
}

/// A prepared single-input kernel: `(input, depth of the last axis, output)`.
type UnaryKernel = Box<dyn Fn(&[i8], usize, &mut [i8]) -> Result<(), qdbg::kernels::KernelError>>;

fn unary(case: &str, make: impl FnOnce(&mut Vector, QParams, QParams) -> UnaryKernel) {
    let mut v = open(case);
    let (x, out) = (v.i8s("in0"), v.i8s("out"));
    let (qi, qo) = (v.qparams("in0"), v.qparams("out"));
    let depth = *x.shape().last().unwrap();
    let k = make(&mut v, qi, qo);
    check(&v, &out, |s, o| k(&sample(&x, s), depth, o));
}

macro_rules! cases {
    ($($name:ident => $body:expr;)*) => {
        $(#[test] fn $name() { $body })*
        /// Every vector on disk has a test above (none is silently skipped).
        #[test]
        fn every_vector_is_tested() {
            let tested = [$(stringify!($name)),*];
            let dir = common::fixture("kernels");
            let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    Some(name.strip_prefix("misc_")?.strip_suffix(".npz")?.to_string())
                })
                .collect();
            on_disk.sort();
            for case in &on_disk {
                assert!(tested.contains(&case.as_str()), "misc_{case}.npz has no test");
            }
            assert_eq!(on_disk.len(), tested.len(), "a tested vector is missing on disk");
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
    avgpool_same => pool("avgpool_same", PoolKind::Average);
    avgpool_valid => pool("avgpool_valid", PoolKind::Average);
    avgpool_relu6 => pool("avgpool_relu6", PoolKind::Average);
    maxpool_same => pool("maxpool_same", PoolKind::Max);
    maxpool_valid => pool("maxpool_valid", PoolKind::Max);
    mean_hw => reduce("mean_hw");
    mean_hw_batch2 => reduce("mean_hw_batch2");
    mean_c => reduce("mean_c");
    mean_h_keep => reduce("mean_h_keep");
    sum_hw => reduce("sum_hw");
    reduce_max => reduce("reduce_max");
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
}
