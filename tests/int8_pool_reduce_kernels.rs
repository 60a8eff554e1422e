//! The int8 pooling and reduction kernels (`kernels::int8::pool` and `reduce`:
//! AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, SUM, REDUCE_MAX) against LiteRT: each
//! `tests/fixtures/kernels/misc_<case>.npz` holds one op's int8 inputs, quantization
//! parameters and attributes, and the int8 output that LiteRT 2.3.0 (builtin kernels, no
//! delegates) computed from them. Made by `scripts/kernel_vectors/make_misc_vectors.py`
//! (the script and the `misc_` prefix keep the name of the batch they were made in).
//! Every case must match exactly.

mod common;

use common::kernel_vectors::{assert_every_vector_tested, check, open_case, sample, sample_shape};

use qdbg::graph::Padding;
use qdbg::kernels::int8::pool::{Pool2d, PoolKind};
use qdbg::kernels::int8::reduce::{Mean, ReduceMax, Sum};
use qdbg::kernels::KernelError;

fn pool(case: &str, kind: PoolKind) {
    let mut v = open_case(case);
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
    let mut v = open_case(case);
    let (x, out) = (v.i8s("in0"), v.i8s("out"));
    let axes = v.ints("axes");
    let keep = v.scalar::<bool>("keep_dims");
    let (qi, qo) = (v.qparams("in0"), v.qparams("out"));
    let shape = sample_shape(&x);
    type Run = Box<dyn Fn(&[i8], &mut [i8]) -> Result<(), KernelError>>;
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

macro_rules! cases {
    ($($name:ident => $body:expr;)*) => {
        $(#[test] fn $name() { $body })*
        /// Every pooling and reduction vector on disk has a test above (none is silently
        /// skipped).
        #[test]
        fn every_vector_is_tested() {
            assert_every_vector_tested("pool_reduce", &[$(stringify!($name)),*]);
        }
    };
}

cases! {
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
}
