//! The packed (SIMD) int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels against
//! the scalar reference kernels, on random shapes, strides, paddings, dilations, zero
//! points, per-channel and per-tensor scales, biases, fused activations and batch sizes,
//! for every kernel level this CPU offers. The results must be identical integers: the
//! reference kernels are the ones checked against LiteRT (tests/int8_conv_family_kernels.rs).

mod common;

use proptest::prelude::*;
use qdbg::graph::FusedActivation;
use qdbg::kernels::int8::conv::{ConvGeometry, ConvInt8, FullyConnectedInt8};
use qdbg::kernels::int8::{Arithmetic, QParams};
use qdbg::kernels::simd::{self, Level};

/// Quantization parameters: either ordinary random scales, or powers of two, which make
/// exact rounding ties (the cases where the rounding rules differ) frequent.
#[derive(Clone, Debug)]
struct Quant {
    input: QParams,
    output: QParams,
    filter_scales: Vec<f32>,
    activation: FusedActivation,
}

fn quant(channels: usize) -> impl Strategy<Value = Quant> {
    let random = (
        1e-3f32..1.0,
        -128i32..=127,
        1e-3f32..1.0,
        -128i32..=127,
        prop::collection::vec(1e-4f32..0.05, channels),
        any::<bool>(),
        common::fused_activation(),
    )
        .prop_map(|(si, zi, so, zo, fs, per_tensor, activation)| Quant {
            input: QParams::new(si, zi),
            output: QParams::new(so, zo),
            filter_scales: if per_tensor { fs[..1].to_vec() } else { fs },
            activation,
        });
    let ties = (
        -128i32..=127,
        -128i32..=127,
        prop::collection::vec(0i32..12, channels),
        common::fused_activation(),
    )
        .prop_map(|(zi, zo, exps, activation)| Quant {
            input: QParams::new(1.0, zi),
            output: QParams::new(1.0, zo),
            filter_scales: exps.iter().map(|&e| 0.5f32.powi(e)).collect(),
            activation,
        });
    prop_oneof![3 => random, 1 => ties]
}

fn int8s(n: usize) -> impl Strategy<Value = Vec<i8>> {
    prop::collection::vec(any::<i8>(), n)
}

fn bias(n: usize) -> impl Strategy<Value = Option<Vec<i32>>> {
    prop_oneof![
        Just(None),
        prop::collection::vec(-5000i32..5000, n).prop_map(Some),
        // Large biases drive accumulators towards the ends of i32 and the clamps.
        prop::collection::vec(-(1i32 << 28)..(1 << 28), n).prop_map(Some),
    ]
}

/// A geometry with TFLite's SAME or VALID padding, as `ops::spatial_padding` derives it.
#[derive(Clone, Copy, Debug)]
struct Shape {
    batch: usize,
    in_h: usize,
    in_w: usize,
    in_c: usize,
    k: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
    same: bool,
}

fn padding(
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    same: bool,
) -> Option<(usize, usize)> {
    let effective = (k - 1) * dilation + 1;
    if same {
        let out = input.div_ceil(stride);
        let needed = ((out - 1) * stride + effective).saturating_sub(input);
        Some((needed / 2, out))
    } else if input >= effective {
        Some((0, (input - effective) / stride + 1))
    } else {
        None
    }
}

impl Shape {
    fn geometry(&self, out_c: usize, depth_multiplier: usize) -> Option<ConvGeometry> {
        let (pad_top, out_h) = padding(
            self.in_h,
            self.k.0,
            self.stride.0,
            self.dilation.0,
            self.same,
        )?;
        let (pad_left, out_w) = padding(
            self.in_w,
            self.k.1,
            self.stride.1,
            self.dilation.1,
            self.same,
        )?;
        Some(ConvGeometry {
            batch: self.batch,
            in_h: self.in_h,
            in_w: self.in_w,
            in_c: self.in_c,
            out_h,
            out_w,
            out_c,
            k_h: self.k.0,
            k_w: self.k.1,
            stride_h: self.stride.0,
            stride_w: self.stride.1,
            dilation_h: self.dilation.0,
            dilation_w: self.dilation.1,
            pad_top,
            pad_left,
            depth_multiplier,
        })
    }
}

fn shape(max_c: usize) -> impl Strategy<Value = Shape> {
    (
        1usize..=2,
        1usize..=10,
        1usize..=10,
        1usize..=max_c,
        (1usize..=5, 1usize..=5),
        (1usize..=3, 1usize..=3),
        (1usize..=2, 1usize..=2),
        any::<bool>(),
    )
        .prop_map(
            |(batch, in_h, in_w, in_c, k, stride, dilation, same)| Shape {
                batch,
                in_h,
                in_w,
                in_c,
                k,
                stride,
                dilation,
                same,
            },
        )
}

/// Every level this CPU has (`QDBG_KERNELS` does not cap this list; it caps `active`).
fn levels() -> Vec<Level> {
    simd::available()
}

/// The levels the tests iterate are the ones the build's architecture has, and
/// `Scalar`, the reference, first. On aarch64 plain NEON always exists, and a CPU that
/// has the dot product extension (qemu's `-cpu max`) adds the second NEON level.
#[test]
fn levels_cover_this_architecture() {
    let levels = levels();
    assert_eq!(levels[0], Level::Scalar);
    assert!(levels.contains(&simd::detected()));
    if cfg!(target_arch = "aarch64") {
        assert!(levels.contains(&Level::Neon), "{levels:?}");
        assert!(levels
            .iter()
            .all(|l| matches!(l, Level::Scalar | Level::Neon | Level::NeonDot)));
    }
}

/// Everything one CONV_2D case needs.
/// A CONV_2D case: shape, output channels, parameters, input, filter, bias.
type ConvCase = (Shape, usize, Quant, Vec<i8>, Vec<i8>, Option<Vec<i32>>);

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (shape(24), 1usize..=40).prop_flat_map(|(s, out_c)| {
        let input_len = s.batch * s.in_h * s.in_w * s.in_c;
        let filter_len = out_c * s.k.0 * s.k.1 * s.in_c;
        (
            Just(s),
            Just(out_c),
            quant(out_c),
            int8s(input_len),
            int8s(filter_len),
            bias(out_c),
        )
    })
}

/// Pointwise shapes (1x1, stride 1, no padding): the VNNI kernel reads them in place
/// when the depth is a multiple of 4, so both depth kinds are drawn.
fn pointwise_case() -> impl Strategy<Value = ConvCase> {
    (
        1usize..=2,
        1usize..=12,
        1usize..=12,
        1usize..=20,
        any::<bool>(),
        1usize..=70,
    )
        .prop_flat_map(|(batch, h, w, c4, aligned, out_c)| {
            let in_c = if aligned { c4 * 4 } else { c4 * 4 - 1 };
            let s = Shape {
                batch,
                in_h: h,
                in_w: w,
                in_c,
                k: (1, 1),
                stride: (1, 1),
                dilation: (1, 1),
                same: true,
            };
            let input_len = batch * h * w * in_c;
            (
                Just(s),
                Just(out_c),
                quant(out_c),
                int8s(input_len),
                int8s(out_c * in_c),
                bias(out_c),
            )
        })
}

/// Both requantizations: LiteRT's builtin fixed point, and XNNPACK's f32 epilogue (which
/// the vector levels compute in their own lanes).
fn arithmetic(xnnpack: bool) -> Arithmetic {
    if xnnpack {
        Arithmetic::Xnnpack
    } else {
        Arithmetic::Builtin
    }
}

fn check_conv(
    s: Shape,
    out_c: usize,
    q: &Quant,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    xnnpack: bool,
) -> Result<(), TestCaseError> {
    let Some(g) = s.geometry(out_c, 1) else {
        return Ok(()); // VALID with a window larger than the input: no such op
    };
    let op = ConvInt8::new(q.input, &q.filter_scales, q.output, q.activation, out_c)
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .with_arithmetic(arithmetic(xnnpack));
    let out_len = g.batch * g.out_h * g.out_w * out_c;
    let mut want = vec![0i8; out_len];
    op.conv2d(&g, input, filter, bias, &mut want)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for level in levels() {
        let packed = op
            .pack_conv2d(filter, bias, (s.k.0, s.k.1, s.in_c), level)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(packed.level(), level);
        let mut got = vec![0i8; out_len];
        packed
            .run(&g, input, &mut got)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got, &want, "level {:?}, geometry {:?}", level, g);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn conv2d_matches_reference((s, out_c, q, input, filter, bias) in conv_case(), xnnpack in any::<bool>()) {
        check_conv(s, out_c, &q, &input, &filter, bias.as_deref(), xnnpack)?;
    }

    #[test]
    fn pointwise_conv2d_matches_reference((s, out_c, q, input, filter, bias) in pointwise_case(), xnnpack in any::<bool>()) {
        check_conv(s, out_c, &q, &input, &filter, bias.as_deref(), xnnpack)?;
    }

    #[test]
    fn depthwise_matches_reference(
        (s, multiplier, q, input, filter, bias) in (shape(40), prop_oneof![4 => Just(1usize), 1 => Just(2usize)])
            .prop_flat_map(|(s, m)| {
                let out_c = s.in_c * m;
                (
                    Just(s),
                    Just(m),
                    quant(out_c),
                    int8s(s.batch * s.in_h * s.in_w * s.in_c),
                    int8s(s.k.0 * s.k.1 * out_c),
                    bias(out_c),
                )
            }),
        xnnpack in any::<bool>()
    ) {
        let out_c = s.in_c * multiplier;
        let Some(g) = s.geometry(out_c, multiplier) else { return Ok(()) };
        let op = ConvInt8::new(q.input, &q.filter_scales, q.output, q.activation, out_c)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .with_arithmetic(arithmetic(xnnpack));
        let out_len = g.batch * g.out_h * g.out_w * out_c;
        let mut want = vec![0i8; out_len];
        op.depthwise(&g, &input, &filter, bias.as_deref(), &mut want).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for level in levels() {
            let packed = op
                .pack_depthwise(&filter, bias.as_deref(), s.k, level)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(packed.level(), level);
            let mut got = vec![0i8; out_len];
            packed.run(&g, &input, &mut got).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, &want, "level {:?}, geometry {:?}", level, g);
        }
    }

    #[test]
    fn fully_connected_matches_reference(
        (rows, depth, units, q, input, filter, bias) in (1usize..=6, 0usize..=80, 1usize..=50)
            .prop_flat_map(|(rows, depth, units)| (
                Just(rows),
                Just(depth),
                Just(units),
                quant(units),
                int8s(rows * depth),
                int8s(units * depth),
                bias(units),
            )),
        xnnpack in any::<bool>()
    ) {
        let op = FullyConnectedInt8::new(q.input, &q.filter_scales, q.output, q.activation, units)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .with_arithmetic(arithmetic(xnnpack));
        let mut want = vec![0i8; rows * units];
        op.run(rows, depth, &input, &filter, bias.as_deref(), &mut want).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for level in levels() {
            let packed = op.pack(&filter, bias.as_deref(), depth, level).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(packed.level(), level);
            let mut got = vec![0i8; rows * units];
            packed.run(rows, &input, &mut got).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, &want, "level {:?}, {}x{}x{}", level, rows, depth, units);
        }
    }
}

/// MobileNet-sized shapes once each (the random ones above are small): the 224x224 stem,
/// a wide pointwise layer, a 5x5 depthwise with a channel tail. On one thread, and in a
/// pool of three, where the large convolutions split their rows across threads.
#[test]
fn mobilenet_shapes_match_reference() {
    for threads in [1, 3] {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(check_mobilenet_shapes);
    }
}

fn check_mobilenet_shapes() {
    let mut seed = 0x9E37_79B9u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as i8
    };
    let q = |n: usize| {
        let scales: Vec<f32> = (0..n).map(|c| 0.002 + 0.0001 * c as f32).collect();
        ConvInt8::new(
            QParams::new(0.02, -3),
            &scales,
            QParams::new(0.05, 7),
            FusedActivation::Relu6,
            n,
        )
        .unwrap()
    };
    let cases = [
        (224, 3, 16, 3, 2, false),
        (28, 96, 576, 1, 1, false),
        (14, 120, 120, 5, 1, true),
        (7, 576, 576, 5, 1, true),
    ];
    for (hw, in_c, out_c, k, stride, depthwise) in cases {
        let shape = Shape {
            batch: 1,
            in_h: hw,
            in_w: hw,
            in_c,
            k: (k, k),
            stride: (stride, stride),
            dilation: (1, 1),
            same: true,
        };
        let g = shape.geometry(out_c, 1).unwrap();
        let input: Vec<i8> = (0..hw * hw * in_c).map(|_| next()).collect();
        let filter_len = if depthwise {
            k * k * out_c
        } else {
            out_c * k * k * in_c
        };
        let filter: Vec<i8> = (0..filter_len).map(|_| next()).collect();
        let bias: Vec<i32> = (0..out_c).map(|c| c as i32 * 37 - 2000).collect();
        let op = q(out_c);
        let mut want = vec![0i8; g.out_h * g.out_w * out_c];
        if depthwise {
            op.depthwise(&g, &input, &filter, Some(&bias), &mut want)
                .unwrap();
        } else {
            op.conv2d(&g, &input, &filter, Some(&bias), &mut want)
                .unwrap();
        }
        for level in levels() {
            let mut got = vec![0i8; want.len()];
            if depthwise {
                op.pack_depthwise(&filter, Some(&bias), (k, k), level)
                    .unwrap()
                    .run(&g, &input, &mut got)
                    .unwrap();
            } else {
                op.pack_conv2d(&filter, Some(&bias), (k, k, in_c), level)
                    .unwrap()
                    .run(&g, &input, &mut got)
                    .unwrap();
            }
            assert!(got == want, "level {level:?}, {g:?}");
        }
    }
}
