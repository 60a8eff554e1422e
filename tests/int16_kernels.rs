//! The 16x8 kernels (`kernels::int16`: int16 activations, int8 weights, int64 biases)
//! against LiteRT.
//!
//! Each vector, `tests/fixtures/kernels/int16_<case>.npz`
//! (`scripts/kernel_vectors/make_int16_vectors.py` documents the keys), holds one op's
//! inputs, quantization parameters and options as LiteRT 2.3.0's builtin kernels ran them
//! and LiteRT's output; the kernels must reproduce that output exactly. Every vector on
//! disk is run: its op name picks the kernel, and an op no test knows fails
//! [`every_int16_vector_is_tested`].

mod common;

use common::kernel_vectors::{activation_from_code, single_run_vectors, Vector};

use std::path::{Path, PathBuf};

use ndarray_npy::ReadableElement;
use qdbg::graph::{FusedActivation, Padding};
use qdbg::kernels::int16::activation::{
    LeakyRelu, LutActivation, LutFunction, Relu, ReluKind, SIGMOID_TABLE,
};
use qdbg::kernels::int16::batch_matmul::BatchMatMulInt16;
use qdbg::kernels::int16::binary::{AddPath, AddSubInt16, MinMax, MulInt16};
use qdbg::kernels::int16::conv::ConvGeometry;
use qdbg::kernels::int16::lut::Lut16;
use qdbg::kernels::int16::movement::{concatenate, pad};
use qdbg::kernels::int16::pool::{Pool2d, PoolKind};
use qdbg::kernels::int16::reduce::{Mean, ReduceMax, Sum};
use qdbg::kernels::int16::requantize::Requantize;
use qdbg::kernels::int16::resize::{ResizeBilinearInt8, ResizeDims, ResizeNearest};
use qdbg::kernels::int16::softmax::SoftmaxInt16;
use qdbg::kernels::int16::transpose_conv::{TransposeConvGeometry, TransposeConvInt16};
use qdbg::kernels::int16::{Bias16, ConvInt16, FullyConnectedInt16, QParams};

/// The op families, by the builtin op names the vectors store.
const CONV_FAMILY: &[&str] = &["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"];
const TRANSPOSE_CONV: &[&str] = &["TRANSPOSE_CONV"];
const BATCH_MATMUL: &[&str] = &["BATCH_MATMUL"];
const MIN_MAX: &[&str] = &["MAXIMUM", "MINIMUM"];
const REDUCE_MAX: &[&str] = &["REDUCE_MAX"];
const SUM: &[&str] = &["SUM"];
const PURE_MOVEMENT: &[&str] = &[
    "RESHAPE",
    "TRANSPOSE",
    "SPLIT",
    "SLICE",
    "STRIDED_SLICE",
    "GATHER",
];
const RELU_FAMILY: &[&str] = &["RELU", "RELU6", "LEAKY_RELU"];
const TABLE: &[&str] = &["RSQRT", "GELU"];
const REQUANTIZE: &[&str] = &["QUANTIZE"];
const BINARY: &[&str] = &["ADD", "SUB", "MUL"];
const POOL: &[&str] = &["AVERAGE_POOL_2D", "MAX_POOL_2D"];
const MEAN: &[&str] = &["MEAN"];
const LUT: &[&str] = &["LOGISTIC", "TANH"];
const SOFTMAX: &[&str] = &["SOFTMAX"];
const MOVEMENT: &[&str] = &[
    "CONCATENATION",
    "PAD",
    "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
];

fn vectors() -> Vec<PathBuf> {
    single_run_vectors("kernels", "int16_")
}

fn open(path: &Path) -> Vector {
    Vector::open(path, &path.file_stem().unwrap().to_string_lossy())
}

fn op_name(v: &mut Vector) -> String {
    let raw = v.array::<u8>("op");
    String::from_utf8(raw.iter().copied().collect()).unwrap()
}

/// A per-tensor quantization stored as `<key>_scales` / `<key>_zps`.
fn qparams(v: &mut Vector, key: &str) -> QParams {
    let scales = v.vec::<f32>(&format!("{key}_scales"));
    let zps = v.vec::<i64>(&format!("{key}_zps"));
    assert_eq!(scales.len(), 1, "{}: {key} is not per-tensor", v.name);
    QParams::new(scales[0], i32::try_from(zps[0]).unwrap())
}

fn output_qparams(v: &mut Vector) -> QParams {
    QParams::new(
        v.scalar::<f32>("out_scale"),
        i32::try_from(v.scalar::<i64>("out_zp")).unwrap(),
    )
}

fn option(v: &mut Vector, name: &str) -> i32 {
    v.scalar::<i32>(&format!("opt_{name}"))
}

fn activation(v: &mut Vector) -> FusedActivation {
    activation_from_code(option(v, "fusedActivationFunction"))
}

/// One vector's result: how many of LiteRT's outputs the kernel reproduced.
struct Outcome {
    name: String,
    op: String,
    elements: usize,
    mismatches: usize,
    max_lsb: i64,
}

fn compare<T: Copy + Into<i64>>(name: &str, op: &str, ours: &[T], litert: &[T]) -> Outcome {
    assert_eq!(ours.len(), litert.len(), "{name}: output lengths differ");
    let (mismatches, max_lsb) = ours.iter().zip(litert).fold((0, 0), |(n, m), (&a, &b)| {
        let d = (a.into() - b.into()).abs();
        (n + usize::from(d != 0), m.max(d))
    });
    Outcome {
        name: name.to_string(),
        op: op.to_string(),
        elements: litert.len(),
        mismatches,
        max_lsb,
    }
}

fn data<T: ReadableElement + Copy>(v: &mut Vector, key: &str) -> (Vec<T>, Vec<usize>) {
    let a = v.array::<T>(key);
    (a.iter().copied().collect(), a.shape().to_vec())
}

/// A bias input as stored: int64 as the converter writes it, int32 (the `*_bias_int32`
/// vectors: the options' `quantized_bias_type` INT32), or none (stored as an empty array).
enum StoredBias {
    None,
    Int32(Vec<i32>),
    Int64(Vec<i64>),
}

impl StoredBias {
    fn read(v: &mut Vector, key: &str) -> StoredBias {
        if !v.has(key) {
            return StoredBias::None;
        }
        if let Some(b) = v.try_array::<i32>(key) {
            assert!(v.name.contains("bias_int32"), "{}: int32 bias", v.name);
            return StoredBias::Int32(b.iter().copied().collect());
        }
        let b = v.vec::<i64>(key);
        if b.is_empty() {
            StoredBias::None
        } else {
            StoredBias::Int64(b)
        }
    }

    fn get(&self) -> Bias16<'_> {
        match self {
            StoredBias::None => Bias16::None,
            StoredBias::Int32(b) => Bias16::Int32(b),
            StoredBias::Int64(b) => Bias16::Int64(b),
        }
    }

    fn int64(&self) -> Option<&[i64]> {
        match self {
            StoredBias::None => None,
            StoredBias::Int64(b) => Some(b),
            StoredBias::Int32(_) => panic!("an int32 bias where LiteRT takes only int64"),
        }
    }
}

fn run_conv_family(v: &mut Vector, op: &str) -> Outcome {
    let input_q = qparams(v, "in0");
    let output_q = output_qparams(v);
    let filter_scales = v.vec::<f32>("in1_scales");
    assert!(
        v.vec::<i64>("in1_zps").iter().all(|&z| z == 0),
        "{}: symmetric filters only",
        v.name
    );
    let act = activation(v);
    let (input, in_shape) = data::<i16>(v, "in0");
    let (filter, f_shape) = data::<i8>(v, "in1");
    let (expected, out_shape) = data::<i16>(v, "out");
    let bias = StoredBias::read(v, "in2");
    let mut out = vec![0i16; expected.len()];
    if op == "FULLY_CONNECTED" {
        let units = f_shape[0];
        let depth = f_shape[1];
        let rows = input.len() / depth;
        if filter_scales.len() > 1 {
            assert_eq!(v.scalar::<i32>("in1_qdim"), 0);
        }
        FullyConnectedInt16::new(input_q, &filter_scales, output_q, act, units)
            .unwrap()
            .run(rows, depth, &input, &filter, bias.get(), &mut out)
            .unwrap();
    } else {
        let depthwise = op == "DEPTHWISE_CONV_2D";
        let padding = if option(v, "padding") == 0 {
            Padding::Same
        } else {
            Padding::Valid
        };
        let (stride_h, stride_w) = (option(v, "strideH") as usize, option(v, "strideW") as usize);
        let dil_h = option(v, "dilationHFactor") as usize;
        let dil_w = option(v, "dilationWFactor") as usize;
        let (k_h, k_w) = (f_shape[1], f_shape[2]);
        let (top, _, out_h) =
            qdbg::ops::spatial_padding(padding, in_shape[1], k_h, stride_h, dil_h).unwrap();
        let (left, _, out_w) =
            qdbg::ops::spatial_padding(padding, in_shape[2], k_w, stride_w, dil_w).unwrap();
        assert_eq!((out_h, out_w), (out_shape[1], out_shape[2]), "{}", v.name);
        let g = ConvGeometry {
            batch: in_shape[0],
            in_h: in_shape[1],
            in_w: in_shape[2],
            in_c: in_shape[3],
            out_h,
            out_w,
            out_c: out_shape[3],
            k_h,
            k_w,
            stride_h,
            stride_w,
            dilation_h: dil_h,
            dilation_w: dil_w,
            pad_top: top,
            pad_left: left,
            depth_multiplier: if depthwise {
                option(v, "depthMultiplier") as usize
            } else {
                1
            },
        };
        if filter_scales.len() > 1 {
            assert_eq!(v.scalar::<i32>("in1_qdim"), if depthwise { 3 } else { 0 });
        }
        let conv = ConvInt16::new(input_q, &filter_scales, output_q, act, g.out_c).unwrap();
        if depthwise {
            conv.depthwise(&g, &input, &filter, bias.int64(), &mut out)
        } else {
            conv.conv2d(&g, &input, &filter, bias.get(), &mut out)
        }
        .unwrap();
    }
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_transpose_conv(v: &mut Vector, op: &str) -> Outcome {
    // TFLite's inputs: output shape, filter, input, bias.
    let out_dims = v.vec::<i32>("in0");
    let (filter, f_shape) = data::<i8>(v, "in1");
    let (input, in_shape) = data::<i16>(v, "in2");
    let (expected, out_shape) = data::<i16>(v, "out");
    assert_eq!(
        out_dims,
        out_shape.iter().map(|&d| d as i32).collect::<Vec<_>>()
    );
    let filter_scales = v.vec::<f32>("in1_scales");
    let bias = StoredBias::read(v, "in3");
    let padding = if option(v, "padding") == 0 {
        Padding::Same
    } else {
        Padding::Valid
    };
    let g = TransposeConvGeometry {
        batch: in_shape[0],
        in_h: in_shape[1],
        in_w: in_shape[2],
        in_c: in_shape[3],
        out_h: out_shape[1],
        out_w: out_shape[2],
        out_c: out_shape[3],
        k_h: f_shape[1],
        k_w: f_shape[2],
        stride_h: option(v, "strideH") as usize,
        stride_w: option(v, "strideW") as usize,
        padding,
    };
    let mut out = vec![0i16; expected.len()];
    TransposeConvInt16::new(
        qparams(v, "in2"),
        &filter_scales,
        output_qparams(v),
        activation(v),
        g.out_c,
    )
    .unwrap()
    .run(&g, &input, &filter, bias.get(), &mut out)
    .unwrap();
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_batch_matmul(v: &mut Vector, op: &str) -> Outcome {
    let (lhs, l_shape) = data::<i16>(v, "in0");
    let (rhs, r_shape) = data::<i16>(v, "in1");
    let (expected, out_shape) = data::<i16>(v, "out");
    let (adj_x, adj_y) = (option(v, "adjX") != 0, option(v, "adjY") != 0);
    let k = BatchMatMulInt16::new(
        qparams(v, "in0"),
        qparams(v, "in1"),
        output_qparams(v),
        adj_x,
        adj_y,
    )
    .unwrap();
    assert_eq!(k.output_shape(&l_shape, &r_shape).unwrap(), out_shape);
    let mut out = vec![0i16; expected.len()];
    k.run(&l_shape, &lhs, &r_shape, &rhs, &mut out).unwrap();
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_min_max(v: &mut Vector, op: &str) -> Outcome {
    let (a, a_shape) = data::<i16>(v, "in0");
    let (b, b_shape) = data::<i16>(v, "in1");
    let (expected, _) = data::<i16>(v, "out");
    // LiteRT compares codes: the converter gives all three one quantization.
    let q = output_qparams(v);
    assert_eq!((qparams(v, "in0"), qparams(v, "in1")), (q, q), "{}", v.name);
    let kind = if op == "MAXIMUM" {
        MinMax::Maximum
    } else {
        MinMax::Minimum
    };
    let mut out = vec![0i16; expected.len()];
    kind.run(&a, &a_shape, &b, &b_shape, &mut out).unwrap();
    compare(&v.name.clone(), op, &out, &expected)
}

/// SUM and REDUCE_MAX (MEAN has its own runner: its int16 kernel is prepared apart).
fn run_sum_or_max(v: &mut Vector, op: &str) -> Outcome {
    let (x, shape) = data::<i16>(v, "in0");
    let (expected, out_shape) = data::<i16>(v, "out");
    let axes = v.vec::<i32>("in1");
    let (keep_dims, input, output) = (
        option(v, "keepDims") != 0,
        qparams(v, "in0"),
        output_qparams(v),
    );
    let mut out = vec![0i16; expected.len()];
    let shape_out = if op == "SUM" {
        let k = Sum::new(&shape, &axes, keep_dims, input, output).unwrap();
        k.run(&x, &mut out).unwrap();
        k.output_shape().to_vec()
    } else {
        let k = ReduceMax::new(&shape, &axes, keep_dims, input, output).unwrap();
        k.run(&x, &mut out).unwrap();
        k.output_shape().to_vec()
    };
    assert_eq!(shape_out, out_shape, "{}", v.name);
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_relu_family(v: &mut Vector, op: &str) -> Outcome {
    let (x, _) = data::<i16>(v, "in0");
    let (expected, _) = data::<i16>(v, "out");
    let (input, output) = (qparams(v, "in0"), output_qparams(v));
    let mut out = vec![0i16; expected.len()];
    match op {
        "RSQRT" => Lut16::rsqrt(input, output).unwrap().run(&x, &mut out),
        "GELU" => Lut16::gelu(v.scalar::<i32>("opt_approximate") != 0, input, output)
            .unwrap()
            .run(&x, &mut out),
        "LEAKY_RELU" => LeakyRelu::new(v.scalar::<f32>("opt_alpha"), input, output)
            .unwrap()
            .run_int16(&x, &mut out),
        _ => {
            let kind = if op == "RELU6" {
                ReluKind::Relu6
            } else {
                ReluKind::Relu
            };
            Relu::new_int16(kind, input, output)
                .unwrap()
                .run_int16(&x, &mut out)
        }
    }
    .unwrap();
    compare(&v.name.clone(), op, &out, &expected)
}

/// The pure data-movement ops have no int16 kernel of their own: qdbg's executor moves
/// quantized codes with the same type-agnostic code for every width (`ops::layout`,
/// `ops::slicing`). What that relies on is checked against LiteRT here: its 16x8 output
/// has the input's quantization, and every output code is an input code (nothing is
/// rescaled); RESHAPE, TRANSPOSE and SPLIT (all its outputs) keep every code, each as
/// often as the input has it.
fn check_moves_codes(v: &mut Vector, op: &str) -> Outcome {
    // SPLIT's first input is the axis.
    let input_key = if op == "SPLIT" { "in1" } else { "in0" };
    let (x, _) = data::<i16>(v, input_key);
    assert_eq!(qparams(v, input_key), output_qparams(v), "{}", v.name);
    let codes: std::collections::HashSet<i16> = x.iter().copied().collect();
    let mut outputs = vec![data::<i16>(v, "out").0];
    for k in 1.. {
        match v.try_array::<i16>(&format!("out{k}")) {
            Some(o) => outputs.push(o.iter().copied().collect()),
            None => break,
        }
    }
    let (elements, foreign) = outputs.iter().fold((0, 0), |(n, f), o| {
        (
            n + o.len(),
            f + o.iter().filter(|c| !codes.contains(c)).count(),
        )
    });
    if ["RESHAPE", "TRANSPOSE", "SPLIT"].contains(&op) {
        let mut all: Vec<i16> = outputs.concat();
        let mut input = x.clone();
        all.sort_unstable();
        input.sort_unstable();
        assert_eq!(all, input, "{}: codes not kept one for one", v.name);
    }
    Outcome {
        name: v.name.clone(),
        op: op.to_string(),
        elements,
        mismatches: foreign,
        max_lsb: 0,
    }
}

fn run_requantize(v: &mut Vector, op: &str) -> Outcome {
    let rq = Requantize::new(qparams(v, "in0"), output_qparams(v)).unwrap();
    let in_i8 = v.try_array::<i8>("in0").is_some();
    let name = v.name.clone();
    // The vector's dtypes say which direction it is.
    macro_rules! go {
        ($input:expr, $out_ty:ty) => {{
            let (expected, _) = data::<$out_ty>(v, "out");
            let mut out = vec![<$out_ty>::default(); expected.len()];
            rq.run(&$input, &mut out).unwrap();
            compare(&name, op, &out, &expected)
        }};
    }
    let out_is_i8 = v.try_array::<i8>("out").is_some();
    match (in_i8, out_is_i8) {
        (true, false) => go!(data::<i8>(v, "in0").0, i16),
        (false, true) => go!(data::<i16>(v, "in0").0, i8),
        (false, false) => go!(data::<i16>(v, "in0").0, i16),
        (true, true) => panic!("{name}: int8 -> int8 is not an int16 vector"),
    }
}

fn run_binary(v: &mut Vector, op: &str) -> Outcome {
    let (in1, in2, out_q) = (qparams(v, "in0"), qparams(v, "in1"), output_qparams(v));
    let act = activation(v);
    let (a, a_shape) = data::<i16>(v, "in0");
    let (b, b_shape) = data::<i16>(v, "in1");
    let (expected, _) = data::<i16>(v, "out");
    let mut out = vec![0i16; expected.len()];
    if op == "MUL" {
        MulInt16::new(in1, in2, out_q, act)
            .unwrap()
            .run(&a, &a_shape, &b, &b_shape, &mut out)
            .unwrap();
    } else {
        let pot = option(v, "potScaleInt16") != 0;
        let k = if op == "ADD" {
            AddSubInt16::add(in1, in2, out_q, act, pot)
        } else {
            AddSubInt16::sub(in1, in2, out_q, act, pot)
        }
        .unwrap();
        // The power-of-two vectors must really reach that path (and only they).
        assert_eq!(
            matches!(k.path(), AddPath::PowerOfTwo { .. }),
            v.name.contains("_pot"),
            "{}: path {:?}",
            v.name,
            k.path()
        );
        k.run(&a, &a_shape, &b, &b_shape, &mut out).unwrap();
    }
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_pool(v: &mut Vector, op: &str) -> Outcome {
    let (input, shape) = data::<i16>(v, "in0");
    let (expected, out_shape) = data::<i16>(v, "out");
    let padding = if option(v, "padding") == 0 {
        Padding::Same
    } else {
        Padding::Valid
    };
    let kind = if op == "MAX_POOL_2D" {
        PoolKind::Max
    } else {
        PoolKind::Average
    };
    let pool = Pool2d::new(
        kind,
        [shape[0], shape[1], shape[2], shape[3]],
        (
            option(v, "filterHeight") as usize,
            option(v, "filterWidth") as usize,
        ),
        (option(v, "strideH") as usize, option(v, "strideW") as usize),
        padding,
        activation(v),
        qparams(v, "in0"),
        output_qparams(v),
    )
    .unwrap();
    assert_eq!(pool.output_shape().to_vec(), out_shape, "{}", v.name);
    let mut out = vec![0i16; expected.len()];
    pool.run(&input, &mut out).unwrap();
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_movement(v: &mut Vector, op: &str) -> Outcome {
    let (expected, out_shape) = data::<i16>(v, "out");
    let out_q = output_qparams(v);
    let mut out = vec![0i16; expected.len()];
    let (x, shape) = data::<i16>(v, "in0");
    match op {
        "CONCATENATION" => {
            let (y, y_shape) = data::<i16>(v, "in1");
            let (qx, qy) = (qparams(v, "in0"), qparams(v, "in1"));
            assert_eq!(activation(v), FusedActivation::None);
            let inputs = [(&x[..], &shape[..], qx), (&y[..], &y_shape[..], qy)];
            concatenate(&inputs, option(v, "axis"), out_q, &mut out).unwrap();
        }
        "PAD" => {
            let p = v.vec::<i32>("in1");
            let paddings: Vec<[usize; 2]> = p
                .chunks_exact(2)
                .map(|c| [c[0] as usize, c[1] as usize])
                .collect();
            pad(&x, &shape, &paddings, 0, &mut out).unwrap();
        }
        _ => {
            let size = v.vec::<i32>("in1");
            assert_eq!(size, [out_shape[1] as i32, out_shape[2] as i32]);
            let d = ResizeDims {
                batch: shape[0],
                in_h: shape[1],
                in_w: shape[2],
                channels: shape[3],
                out_h: out_shape[1],
                out_w: out_shape[2],
            };
            let (align, half) = (
                option(v, "alignCorners") != 0,
                option(v, "halfPixelCenters") != 0,
            );
            if op == "RESIZE_BILINEAR" {
                ResizeBilinearInt8::new(qparams(v, "in0"), out_q, align, half)
                    .unwrap()
                    .run_int16(&d, &x, &mut out)
                    .unwrap();
            } else {
                ResizeNearest::new(align, half)
                    .run(&d, &x, &mut out)
                    .unwrap();
            }
        }
    }
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_mean(v: &mut Vector, op: &str) -> Outcome {
    let (x, shape) = data::<i16>(v, "in0");
    let (expected, out_shape) = data::<i16>(v, "out");
    let axes = v.vec::<i32>("in1");
    let keep_dims = option(v, "keepDims") != 0;
    let mean = Mean::new_int16(
        &shape,
        &axes,
        keep_dims,
        qparams(v, "in0"),
        output_qparams(v),
    )
    .unwrap();
    assert_eq!(mean.output_shape(), &out_shape[..], "{}", v.name);
    let mut out = vec![0i16; expected.len()];
    mean.run_int16(&x, &mut out).unwrap();
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_lut(v: &mut Vector, op: &str) -> Outcome {
    let (x, _) = data::<i16>(v, "in0");
    let (expected, _) = data::<i16>(v, "out");
    let function = if op == "TANH" {
        LutFunction::Tanh
    } else {
        LutFunction::Logistic
    };
    let mut out = vec![0i16; expected.len()];
    LutActivation::new(function, qparams(v, "in0"), output_qparams(v))
        .unwrap()
        .run(&x, &mut out)
        .unwrap();
    compare(&v.name.clone(), op, &out, &expected)
}

fn run_softmax(v: &mut Vector, op: &str) -> Outcome {
    let (x, shape) = data::<i16>(v, "in0");
    let (expected, _) = data::<i16>(v, "out");
    let beta = v.scalar::<f32>("opt_beta");
    let mut out = vec![0i16; expected.len()];
    SoftmaxInt16::new(qparams(v, "in0"), output_qparams(v), beta)
        .unwrap()
        .run(&x, *shape.last().unwrap(), &mut out)
        .unwrap();
    compare(&v.name.clone(), op, &out, &expected)
}

/// Runs one vector with the kernel its op names.
fn run_vector(path: &Path) -> Outcome {
    let mut v = open(path);
    let op = op_name(&mut v);
    match op.as_str() {
        "TRANSPOSE_CONV" => run_transpose_conv(&mut v, "TRANSPOSE_CONV"),
        "BATCH_MATMUL" => run_batch_matmul(&mut v, "BATCH_MATMUL"),
        "REDUCE_MAX" => run_sum_or_max(&mut v, "REDUCE_MAX"),
        "SUM" => run_sum_or_max(&mut v, "SUM"),
        o if PURE_MOVEMENT.contains(&o) => check_moves_codes(&mut v, o),
        o if RELU_FAMILY.contains(&o) || TABLE.contains(&o) => run_relu_family(&mut v, o),
        o if MIN_MAX.contains(&o) => run_min_max(&mut v, o),
        o if CONV_FAMILY.contains(&o) => run_conv_family(&mut v, o),
        o if REQUANTIZE.contains(&o) => run_requantize(&mut v, o),
        o if BINARY.contains(&o) => run_binary(&mut v, o),
        o if POOL.contains(&o) => run_pool(&mut v, o),
        o if MOVEMENT.contains(&o) => run_movement(&mut v, o),
        o if MEAN.contains(&o) => run_mean(&mut v, o),
        o if LUT.contains(&o) => run_lut(&mut v, o),
        o if SOFTMAX.contains(&o) => run_softmax(&mut v, o),
        other => panic!("{}: no int16 kernel test for op {other}", v.name),
    }
}

/// Runs every vector of `family` and asserts each is bit-exact; at least `min` vectors.
fn check_family(family: &[&str], min: usize) {
    let mut outcomes = Vec::new();
    for path in vectors() {
        let mut v = open(&path);
        if family.contains(&op_name(&mut v).as_str()) {
            outcomes.push(run_vector(&path));
        }
    }
    for o in &outcomes {
        eprintln!(
            "{:40} {:18} {:6} elements: {} mismatching, max {} LSB",
            o.name, o.op, o.elements, o.mismatches, o.max_lsb
        );
    }
    assert!(
        outcomes.len() >= min,
        "only {} vectors of {family:?} in tests/fixtures/kernels",
        outcomes.len()
    );
    let bad: Vec<String> = outcomes
        .iter()
        .filter(|o| o.mismatches > 0)
        .map(|o| {
            format!(
                "{} ({} of {} elements, max {} LSB)",
                o.name, o.mismatches, o.elements, o.max_lsb
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "not bit-exact with LiteRT: {}",
        bad.join("; ")
    );
}

#[test]
fn conv_family_matches_litert_exactly() {
    check_family(CONV_FAMILY, 9);
}

/// The FULLY_CONNECTED tie probes must decide between rescaling rules, or the test above
/// could pass with the wrong one: TFLite's int64 `MultiplyByQuantizedMultiplier` (16-bit
/// multiplier, ties up, the convolutions' rule) must miss some of LiteRT's outputs there.
#[test]
fn fc_tie_probes_tell_the_rules_apart() {
    use qdbg::kernels::fixed_point::QuantizedMultiplier;
    let mut probes = 0;
    for path in vectors()
        .iter()
        .filter(|p| p.to_string_lossy().contains("fc_pow2_ties"))
    {
        probes += 1;
        let mut v = open(path);
        let (input, _) = data::<i16>(&mut v, "in0");
        let (filter, f_shape) = data::<i8>(&mut v, "in1");
        let (expected, _) = data::<i16>(&mut v, "out");
        let (units, depth) = (f_shape[0], f_shape[1]);
        let scales = v.vec::<f32>("in1_scales");
        let (in_s, out_s) = (qparams(&mut v, "in0").scale, output_qparams(&mut v).scale);
        let (mut reduced_misses, mut away_misses) = (0, 0);
        for (i, &want) in expected.iter().enumerate() {
            let (r, u) = (i / units, i % units);
            let acc: i64 = (0..depth)
                .map(|d| i64::from(input[r * depth + d]) * i64::from(filter[u * depth + d]))
                .sum();
            let f = scales[if scales.len() == 1 { 0 } else { u }];
            // Powers of two: the f32 and f64 products are the same exact factor.
            let m =
                QuantizedMultiplier::from_real(f64::from(in_s) * f64::from(f) / f64::from(out_s));
            let sat = |x: i32| x.clamp(-32768, 32767) as i16;
            reduced_misses += usize::from(sat(m.apply_wide(acc)) != want);
            away_misses += usize::from(sat(m.apply_wide_away_from_zero(acc)) != want);
        }
        assert_eq!(away_misses, 0, "{}", v.name);
        assert!(
            reduced_misses > 0,
            "{}: no tie tells the rules apart",
            v.name
        );
    }
    assert!(probes >= 2);
}

#[test]
fn transpose_conv_matches_litert_exactly() {
    check_family(TRANSPOSE_CONV, 5);
}

#[test]
fn batch_matmul_matches_litert_exactly() {
    check_family(BATCH_MATMUL, 2);
}

#[test]
fn maximum_minimum_and_reduce_max_match_litert_exactly() {
    check_family(MIN_MAX, 2);
    check_family(REDUCE_MAX, 2);
}

#[test]
fn data_movement_keeps_codes_and_quantization_in_litert() {
    check_family(PURE_MOVEMENT, 6);
}

#[test]
fn sum_matches_litert_exactly() {
    check_family(SUM, 2);
}

#[test]
fn relu_relu6_and_leaky_relu_match_litert_exactly() {
    check_family(RELU_FAMILY, 4);
}

#[test]
fn rsqrt_and_gelu_tables_match_litert_exactly() {
    check_family(TABLE, 2);
}

#[test]
fn requantize_matches_litert_exactly() {
    check_family(REQUANTIZE, 5);
}

#[test]
fn add_sub_mul_match_litert_exactly() {
    check_family(BINARY, 11);
}

#[test]
fn pooling_matches_litert_exactly() {
    check_family(POOL, 4);
}

#[test]
fn logistic_and_tanh_match_litert_exactly() {
    check_family(LUT, 5);
}

/// The kernels' sigmoid table is LiteRT's: re-derived here from the probe vector, whose
/// TANH inputs read entry `i` uninterpolated at code `128 * i` (output `table[i] - 32768`)
/// and the last entry's step at code `254 * 128 + 127` (see `TanhTableProbe` in the
/// vector script).
#[test]
fn the_sigmoid_table_is_the_one_litert_reads() {
    let path = common::fixture("kernels/int16_tanh_table_probe.npz");
    let mut v = open(&path);
    let (x, _) = data::<i16>(&mut v, "in0");
    let (out, _) = data::<i16>(&mut v, "out");
    assert_eq!(qparams(&mut v, "in0").scale, 1.0 / 6144.0);
    let mut table: Vec<i32> = (0..255)
        .map(|i| {
            assert_eq!(i32::from(x[i]), 128 * i as i32);
            i32::from(out[i]) + 32768
        })
        .collect();
    assert_eq!(x[255], 254 * 128 + 127);
    table.push(table[254] + i32::from(out[255]) - i32::from(out[254]));
    let ours: Vec<i32> = SIGMOID_TABLE.iter().map(|&e| i32::from(e)).collect();
    assert_eq!(ours, table);
}

#[test]
fn softmax_matches_litert_exactly() {
    check_family(SOFTMAX, 3);
}

#[test]
fn mean_matches_litert_exactly() {
    check_family(MEAN, 2);
}

#[test]
fn concatenation_pad_and_resize_match_litert_exactly() {
    check_family(MOVEMENT, 5);
}

/// Every int16 vector on disk names an op one of the tests above runs.
#[test]
fn every_int16_vector_is_tested() {
    let known: Vec<&str> = [
        CONV_FAMILY,
        TRANSPOSE_CONV,
        BATCH_MATMUL,
        MIN_MAX,
        REDUCE_MAX,
        SUM,
        PURE_MOVEMENT,
        RELU_FAMILY,
        TABLE,
        REQUANTIZE,
        BINARY,
        POOL,
        MOVEMENT,
        MEAN,
        LUT,
        SOFTMAX,
    ]
    .concat();
    let files = vectors();
    assert!(!files.is_empty());
    for path in files {
        let mut v = open(&path);
        let op = op_name(&mut v);
        assert!(
            known.contains(&op.as_str()),
            "{}: op {op} has no int16 kernel test",
            v.name
        );
    }
}
