//! The vector float DEPTHWISE_CONV_2D and direct CONV_2D kernels against their scalar
//! bodies (`Level::Scalar`), for every kernel level this CPU offers, on random shapes,
//! strides, dilations, paddings (VALID, SAME and arbitrary asymmetric ones), channel
//! counts with vector tails, depth multipliers, biases and fused clamps. The scalar
//! bodies are the ones the float oracle (tests/float_oracle.rs) checks against LiteRT.
//!
//! The vector kernels add the same products in the same order but with FMA (one
//! rounding instead of two), so each output may differ by a few ulps of the sum of the
//! magnitudes of its terms; the bound below is that sum times 1e-5, computed by running
//! the scalar kernel on absolute values.

use proptest::prelude::*;
use qdbg::kernels::conv_f32::{conv2d_at, filter_hwio};
use qdbg::kernels::depthwise_f32::{
    depthwise_conv2d_at, depthwise_conv2d_at_uninit, DepthwiseGeometry,
};
use qdbg::kernels::im2col_f32;
use qdbg::kernels::int8::conv::ConvGeometry;
use qdbg::kernels::pointwise_f32::PackedPointwise;
use qdbg::kernels::simd::{self, Level};

/// One spatial axis: input size, window, stride, dilation, padding before, output size.
#[derive(Clone, Copy, Debug)]
struct Axis {
    size: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    out: usize,
}

/// VALID, SAME (TFLite's split: the odd cell after) or an arbitrary padding on each side
/// of up to `k - 1` cells (asymmetric either way).
fn axis(max_size: usize) -> impl Strategy<Value = Axis> {
    (
        1..=max_size,
        1usize..=5,
        1usize..=3,
        1usize..=2,
        0u8..3,
        0usize..5,
        0usize..5,
    )
        .prop_filter_map(
            "window larger than the padded input",
            |(size, k, stride, dilation, mode, before, after)| {
                let span = (k - 1) * dilation + 1;
                let (pad, total) = match mode {
                    0 => (0, 0),
                    1 => {
                        let out = size.div_ceil(stride);
                        let total = ((out - 1) * stride + span).saturating_sub(size);
                        (total / 2, total)
                    }
                    _ => (before.min(k - 1), before.min(k - 1) + after.min(k - 1)),
                };
                let padded = size + total;
                (padded >= span).then(|| Axis {
                    size,
                    k,
                    stride,
                    dilation,
                    pad,
                    out: (padded - span) / stride + 1,
                })
            },
        )
}

fn clamp() -> impl Strategy<Value = Option<(f32, f32)>> {
    prop_oneof![
        Just(None),
        Just(Some((0.0, f32::INFINITY))),
        Just(Some((0.0, 6.0))),
        Just(Some((-1.0, 1.0))),
    ]
}

fn values(n: usize, bound: f32) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-bound..bound, n)
}

/// Every level this CPU has, the scalar reference first.
fn levels() -> Vec<Level> {
    let levels = simd::available();
    assert_eq!(levels[0], Level::Scalar);
    levels
}

/// `got` against `want` within `1e-5 * magnitude` per element.
fn assert_close(got: &[f32], want: &[f32], magnitude: &[f32], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(magnitude).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * m,
            "{what}: element {i}: got {g}, want {w} (magnitude {m})"
        );
    }
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// A DEPTHWISE_CONV_2D case: geometry, input, filter, bias, clamp.
type DwCase = (
    DepthwiseGeometry,
    Vec<f32>,
    Vec<f32>,
    Vec<f32>,
    Option<(f32, f32)>,
);

fn depthwise_case() -> impl Strategy<Value = DwCase> {
    (
        1usize..=2,
        axis(12),
        axis(22),
        1usize..=70,
        prop_oneof![3 => Just(1usize), 1 => Just(2usize)],
    )
        .prop_flat_map(|(batch, h, w, in_c, m)| {
            let g = DepthwiseGeometry {
                batch,
                in_h: h.size,
                in_w: w.size,
                in_c,
                depth_multiplier: m,
                out_c: in_c * m,
                out_h: h.out,
                out_w: w.out,
                k_h: h.k,
                k_w: w.k,
                stride_h: h.stride,
                stride_w: w.stride,
                dilation_h: h.dilation,
                dilation_w: w.dilation,
                pad_top: h.pad,
                pad_left: w.pad,
            };
            let out_c = in_c * m;
            (
                Just(g),
                values(batch * h.size * w.size * in_c, 2.0),
                values(h.k * w.k * out_c, 1.0),
                prop_oneof![Just(Vec::new()), values(out_c, 1.0)],
                clamp(),
            )
        })
}

/// A direct CONV_2D case: geometry, input, OHWI filter, bias.
type ConvCase = (ConvGeometry, Vec<f32>, Vec<f32>, Vec<f32>);

fn conv_case() -> impl Strategy<Value = ConvCase> {
    // Up to 70 output channels: past 64 the vector path declines and the scalar body
    // runs, so the boundary is covered too.
    (1usize..=2, axis(10), axis(22), 1usize..=6, 1usize..=70).prop_flat_map(
        |(batch, h, w, in_c, out_c)| {
            let g = ConvGeometry {
                batch,
                in_h: h.size,
                in_w: w.size,
                in_c,
                out_h: h.out,
                out_w: w.out,
                out_c,
                k_h: h.k,
                k_w: w.k,
                stride_h: h.stride,
                stride_w: w.stride,
                dilation_h: h.dilation,
                dilation_w: w.dilation,
                pad_top: h.pad,
                pad_left: w.pad,
                depth_multiplier: 1,
            };
            (
                Just(g),
                values(batch * h.size * w.size * in_c, 2.0),
                values(out_c * h.k * w.k * in_c, 1.0),
                prop_oneof![Just(Vec::new()), values(out_c, 1.0)],
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn conv_levels_match_scalar((g, input, ohwi, bias) in conv_case()) {
        let n = g.batch * g.out_h * g.out_w * g.out_c;
        let hwio = filter_hwio(&ohwi, g.out_c, g.k_h, g.k_w, g.in_c);
        let mut want = vec![f32::NAN; n];
        conv2d_at(Level::Scalar, &g, &input, &hwio, &bias, &mut want);
        let mut magnitude = vec![0f32; n];
        conv2d_at(Level::Scalar, &g, &abs(&input), &abs(&hwio), &abs(&bias), &mut magnitude);
        for level in levels() {
            // NaN-filled: an output the kernel forgets to write fails the comparison.
            let mut got = vec![f32::NAN; n];
            conv2d_at(level, &g, &input, &hwio, &bias, &mut got);
            assert_close(&got, &want, &magnitude, &format!("{level:?} {g:?}"));
        }
    }

    /// The im2col path (rows of window taps times the flattened OHWI filter, through the
    /// packed GEMM at every level, the scalar one included) against the direct kernel's
    /// scalar body.
    #[test]
    fn im2col_conv_matches_the_direct_scalar_kernel((g, input, ohwi, bias) in conv_case()) {
        let n = g.batch * g.out_h * g.out_w * g.out_c;
        let hwio = filter_hwio(&ohwi, g.out_c, g.k_h, g.k_w, g.in_c);
        let mut want = vec![f32::NAN; n];
        conv2d_at(Level::Scalar, &g, &input, &hwio, &bias, &mut want);
        let mut magnitude = vec![0f32; n];
        conv2d_at(Level::Scalar, &g, &abs(&input), &abs(&hwio), &abs(&bias), &mut magnitude);
        let patch = im2col_f32::patch_len(&g);
        for level in std::iter::once(Level::Scalar).chain(levels()) {
            let packed = PackedPointwise::for_level(&ohwi, g.out_c, patch, &bias, level)
                .expect("sizes agree");
            let mut got = vec![f32::NAN; n];
            im2col_f32::conv2d(&g, &input, &packed, None, &mut got);
            assert_close(&got, &want, &magnitude, &format!("im2col {level:?} {g:?}"));
        }
    }

    #[test]
    fn depthwise_levels_match_scalar((g, input, filter, bias, clamp) in depthwise_case()) {
        let n = g.batch * g.out_h * g.out_w * g.out_c;
        let mut want = vec![f32::NAN; n];
        depthwise_conv2d_at(Level::Scalar, &g, &input, &filter, &bias, clamp, &mut want);
        let mut magnitude = vec![0f32; n];
        depthwise_conv2d_at(
            Level::Scalar,
            &g,
            &abs(&input),
            &abs(&filter),
            &abs(&bias),
            None,
            &mut magnitude,
        );
        for level in levels() {
            // NaN-filled: an output the kernel forgets to write fails the comparison.
            let mut got = vec![f32::NAN; n];
            depthwise_conv2d_at(level, &g, &input, &filter, &bias, clamp, &mut got);
            assert_close(&got, &want, &magnitude, &format!("{level:?} {g:?} {clamp:?}"));
            // The entry point for an uninitialised output (what the op uses) gives the
            // same values; NaN-filled again so a skipped element shows.
            let mut raw = vec![std::mem::MaybeUninit::new(f32::NAN); n];
            depthwise_conv2d_at_uninit(level, &g, &input, &filter, &bias, clamp, &mut raw);
            // SAFETY: every element was initialised (to NaN) before the call.
            let filled: Vec<f32> = raw.iter().map(|v| unsafe { v.assume_init() }).collect();
            assert_eq!(
                filled.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{level:?} {g:?}"
            );
        }
    }
}

/// The clamp keeps NaN (TFLite's `min(max(x, lo), hi)`) and bounds everything else, at
/// every level, in the vector body, the tail and the scalar code alike.
#[test]
fn depthwise_clamp_bounds_and_keeps_nan() {
    let g = DepthwiseGeometry {
        batch: 1,
        in_h: 1,
        in_w: 12,
        in_c: 19,
        depth_multiplier: 1,
        out_c: 19,
        out_h: 1,
        out_w: 12,
        k_h: 1,
        k_w: 1,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: 0,
        pad_left: 0,
    };
    let mut input: Vec<f32> = (0..12 * 19).map(|i| (i as f32 - 100.0) * 0.1).collect();
    input[5] = f32::NAN;
    input[12 * 19 - 1] = f32::NAN;
    for level in levels() {
        let mut out = vec![0f32; 12 * 19];
        depthwise_conv2d_at(
            level,
            &g,
            &input,
            &[1.0; 19],
            &[],
            Some((0.0, 6.0)),
            &mut out,
        );
        for (i, (&o, &x)) in out.iter().zip(&input).enumerate() {
            if x.is_nan() {
                assert!(o.is_nan(), "{level:?} element {i}: {o}");
            } else {
                assert_eq!(o, x.clamp(0.0, 6.0), "{level:?} element {i}");
            }
        }
    }
}
