//! The int8 conv-like kernels (`kernels::int8::conv`: CONV_2D, DEPTHWISE_CONV_2D,
//! FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL) against LiteRT.
//!
//! Each vector holds one op's int8 input(s), filter, bias, quantization parameters and
//! attributes as LiteRT 2.3.0 ran them, and LiteRT's int8 output; the kernels must
//! reproduce that output exactly. CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED:
//! `tests/fixtures/kernels/conv_*.npz` (`scripts/kernel_vectors/make_conv_vectors.py`
//! documents the keys); TRANSPOSE_CONV / BATCH_MATMUL:
//! `tests/fixtures/kernels/transpose_conv_matmul_resize/{tconv,bmm}_*.npz`
//! (`scripts/kernel_vectors/make_transpose_conv_matmul_resize_vectors.py`, a batch that also
//! made the RESIZE_BILINEAR vectors of `tests/int8_resize_kernels.rs`; the folder keeps the
//! batch's name).

mod common;

use common::kernel_vectors::{mismatches, single_run_vectors, Vector};

use std::path::{Path, PathBuf};

use qdbg::graph::Padding;
use qdbg::kernels::fixed_point::QuantizedMultiplier;
use qdbg::kernels::int8::conv::batch_matmul::BatchMatMulInt8;
use qdbg::kernels::int8::conv::transpose_conv::{TransposeConvGeometry, TransposeConvInt8};
use qdbg::kernels::int8::conv::{requantize, ConvGeometry, ConvInt8, FullyConnectedInt8, Rounding};

/// The `kind` codes the vector scripts store: `conv_*` vectors...
const CONV_2D: i32 = 0;
const DEPTHWISE_CONV_2D: i32 = 1;
const FULLY_CONNECTED: i32 = 2;
/// ... and `transpose_conv_matmul_resize/*` vectors.
const TRANSPOSE_CONV: i32 = 0;
const BATCH_MATMUL: i32 = 1;

const MATMUL_LIKE_DIR: &str = "kernels/transpose_conv_matmul_resize";

fn open(path: &Path) -> Vector {
    Vector::open(path, &path.file_stem().unwrap().to_string_lossy())
}

/// `tests/fixtures/kernels/conv_*.npz`.
fn conv_vectors() -> Vec<PathBuf> {
    single_run_vectors("kernels", "conv_")
}

/// The TRANSPOSE_CONV and BATCH_MATMUL vectors of their batch's folder.
fn matmul_like_vectors() -> Vec<PathBuf> {
    let mut files = single_run_vectors(MATMUL_LIKE_DIR, "tconv_");
    files.extend(single_run_vectors(MATMUL_LIKE_DIR, "bmm_"));
    files
}

fn fixture(name: &str) -> PathBuf {
    common::fixture(MATMUL_LIKE_DIR).join(name)
}

struct Outcome {
    name: String,
    kind: i32,
    elements: usize,
    mismatches: usize,
    max_lsb: i32,
}

fn run_conv_vector(path: &Path) -> Outcome {
    let mut v = open(path);
    let kind = v.scalar::<i32>("kind");
    let input_q = v.qparams("input");
    let output_q = v.qparams("output");
    let filter_scales = v.vec::<f32>("filter_scales");
    assert!(
        v.vec::<i32>("filter_zero_points").iter().all(|&z| z == 0),
        "symmetric filters only"
    );
    let act = v.activation();
    let input_arr = v.array::<i8>("input");
    let filter_arr = v.array::<i8>("filter");
    let expected = v.array::<i8>("output");
    let bias = v.has("bias").then(|| v.vec::<i32>("bias"));
    let input: Vec<i8> = input_arr.iter().copied().collect();
    let filter: Vec<i8> = filter_arr.iter().copied().collect();
    let mut out = vec![0i8; expected.len()];

    if kind == FULLY_CONNECTED {
        let (rows, depth) = (input_arr.shape()[0], input_arr.shape()[1]);
        let units = filter_arr.shape()[0];
        if filter_scales.len() > 1 {
            assert_eq!(v.scalar::<i32>("quantized_dimension"), 0);
        }
        let fc = FullyConnectedInt8::new(input_q, &filter_scales, output_q, act, units).unwrap();
        fc.run(rows, depth, &input, &filter, bias.as_deref(), &mut out)
            .unwrap();
    } else {
        let depthwise = kind == DEPTHWISE_CONV_2D;
        assert!(depthwise || kind == CONV_2D, "unknown kind {kind}");
        let (is, fs, os) = (input_arr.shape(), filter_arr.shape(), expected.shape());
        let g = ConvGeometry {
            batch: is[0],
            in_h: is[1],
            in_w: is[2],
            in_c: is[3],
            out_h: os[1],
            out_w: os[2],
            out_c: os[3],
            k_h: fs[1],
            k_w: fs[2],
            stride_h: v.usize("stride_h"),
            stride_w: v.usize("stride_w"),
            dilation_h: v.usize("dilation_h"),
            dilation_w: v.usize("dilation_w"),
            pad_top: v.usize("pad_top"),
            pad_left: v.usize("pad_left"),
            depth_multiplier: v.usize("depth_multiplier"),
        };
        // The stored pads come from the generator's copy of TFLite's SAME rule; check
        // them, and LiteRT's output size, against qdbg's own padding helper.
        let padding = if v.scalar::<i32>("padding_same") != 0 {
            Padding::Same
        } else {
            Padding::Valid
        };
        let (top, _, out_h) =
            qdbg::ops::spatial_padding(padding, g.in_h, g.k_h, g.stride_h, g.dilation_h).unwrap();
        let (left, _, out_w) =
            qdbg::ops::spatial_padding(padding, g.in_w, g.k_w, g.stride_w, g.dilation_w).unwrap();
        assert_eq!(
            (top, left, out_h, out_w),
            (g.pad_top, g.pad_left, g.out_h, g.out_w)
        );
        if filter_scales.len() > 1 {
            // Per-channel axis: output channels are the filter's last axis in depthwise.
            let axis = if depthwise { 3 } else { 0 };
            assert_eq!(v.scalar::<i32>("quantized_dimension"), axis);
        }
        let op = ConvInt8::new(input_q, &filter_scales, output_q, act, g.out_c).unwrap();
        if depthwise {
            op.depthwise(&g, &input, &filter, bias.as_deref(), &mut out)
        } else {
            op.conv2d(&g, &input, &filter, bias.as_deref(), &mut out)
        }
        .unwrap();
    }
    let litert: Vec<i8> = expected.iter().copied().collect();
    let (mismatches, max_lsb) = mismatches(&out, &litert);
    Outcome {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        kind,
        elements: litert.len(),
        mismatches,
        max_lsb,
    }
}

#[test]
fn conv_kernels_match_litert_exactly() {
    let outcomes: Vec<Outcome> = conv_vectors().iter().map(|p| run_conv_vector(p)).collect();
    for o in &outcomes {
        eprintln!(
            "{:40} {:5} elements: {} mismatching, max {} LSB",
            o.name, o.elements, o.mismatches, o.max_lsb
        );
    }
    // Guard against a vacuous pass: every op kind, and the rounding probes, are there.
    for kind in [CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED] {
        assert!(
            outcomes.iter().filter(|o| o.kind == kind).count() >= 4,
            "too few vectors of kind {kind} in tests/fixtures/kernels"
        );
    }
    assert!(
        outcomes
            .iter()
            .filter(|o| o.name.contains("pow2_ties"))
            .count()
            >= 3
    );
    let bad: Vec<&Outcome> = outcomes.iter().filter(|o| o.mismatches > 0).collect();
    assert!(
        bad.is_empty(),
        "not bit-exact with LiteRT: {}",
        bad.iter()
            .map(|o| format!(
                "{} ({} of {} elements, max {} LSB)",
                o.name, o.mismatches, o.elements, o.max_lsb
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// The rounding probes must actually decide between rounding rules, or the main test
/// could pass with the wrong one. For the FULLY_CONNECTED probes (a plain matmul, easy to
/// redo here) requantize the accumulators both ways: LiteRT's ties-up rule matches every
/// element, the reference ties-away rule must miss some.
#[test]
fn fc_rounding_probes_tell_the_rules_apart() {
    let probes: Vec<PathBuf> = conv_vectors()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("fc_pow2_ties"))
        .collect();
    assert!(!probes.is_empty());
    let mut away_misses = 0;
    for path in &probes {
        let mut v = open(path);
        let (input_q, output_q) = (v.qparams("input"), v.qparams("output"));
        let filter_scale = v.vec::<f32>("filter_scales")[0];
        // Powers of two: the factor is exact, 2^-k with k >= 2, so halves are reachable.
        let factor = f64::from(input_q.scale * filter_scale) / f64::from(output_q.scale);
        assert_eq!(factor.log2().fract(), 0.0);
        assert!(factor <= 0.25 && !v.has("bias"));
        let input = v.array::<i8>("input");
        let filter = v.array::<i8>("filter");
        let litert = v.array::<i8>("output");
        let m = QuantizedMultiplier::from_real(factor);
        let (rows, depth) = (input.shape()[0], input.shape()[1]);
        let units = filter.shape()[0];
        for r in 0..rows {
            for u in 0..units {
                let acc: i32 = (0..depth)
                    .map(|d| {
                        (i32::from(input[[r, d]]) - input_q.zero_point) * i32::from(filter[[u, d]])
                    })
                    .sum();
                let out = |rounding| {
                    (requantize(acc, m, rounding) + output_q.zero_point).clamp(-128, 127) as i8
                };
                assert_eq!(out(Rounding::HalfUp), litert[[r, u]], "{}", path.display());
                away_misses += usize::from(out(Rounding::HalfAwayFromZero) != litert[[r, u]]);
            }
        }
    }
    assert!(away_misses > 0, "the FC probes contain no deciding ties");
}

/// The geometry of a TRANSPOSE_CONV vector, its pads checked against the generator's
/// copy of TFLite's rule.
fn tconv_geometry(v: &mut Vector) -> TransposeConvGeometry {
    let input = v.array::<i8>("input");
    let filter = v.array::<i8>("filter");
    let out_shape = v.vec::<i32>("output_shape");
    let (is, fs) = (input.shape(), filter.shape());
    let os: Vec<usize> = out_shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap())
        .collect();
    assert_eq!(os[0], is[0], "batch");
    assert_eq!(os[3], fs[0], "output channels");
    assert_eq!(is[3], fs[3], "input channels");
    let g = TransposeConvGeometry {
        batch: is[0],
        in_h: is[1],
        in_w: is[2],
        in_c: is[3],
        out_h: os[1],
        out_w: os[2],
        out_c: os[3],
        k_h: fs[1],
        k_w: fs[2],
        stride_h: v.usize("stride_h"),
        stride_w: v.usize("stride_w"),
        padding: if v.flag("padding_same") {
            Padding::Same
        } else {
            Padding::Valid
        },
    };
    let pad = g.padding_values().unwrap();
    assert_eq!(
        (pad.top, pad.left),
        (v.usize("pad_top"), v.usize("pad_left"))
    );
    g
}

fn run_matmul_like_vector(path: &Path) -> Outcome {
    let mut v = open(path);
    let kind = v.scalar::<i32>("kind");
    let output_q = v.qparams("output");
    let expected = v.array::<i8>("output");
    let mut out = vec![0i8; expected.len()];
    match kind {
        TRANSPOSE_CONV => {
            let g = tconv_geometry(&mut v);
            let filter_scales = v.vec::<f32>("filter_scales");
            assert!(
                v.vec::<i32>("filter_zero_points").iter().all(|&z| z == 0),
                "symmetric filters only"
            );
            if filter_scales.len() > 1 {
                assert_eq!(v.scalar::<i32>("quantized_dimension"), 0);
            }
            let act = v.activation();
            let input_q = v.qparams("input");
            let bias = v.has("bias").then(|| v.vec::<i32>("bias"));
            let op =
                TransposeConvInt8::new(input_q, &filter_scales, output_q, act, g.out_c).unwrap();
            op.run(
                &g,
                &v.vec::<i8>("input"),
                &v.vec::<i8>("filter"),
                bias.as_deref(),
                &mut out,
            )
            .unwrap();
        }
        BATCH_MATMUL => {
            let (lhs, rhs) = (v.array::<i8>("lhs"), v.array::<i8>("rhs"));
            let op = BatchMatMulInt8::new(
                v.qparams("lhs"),
                v.qparams("rhs"),
                output_q,
                v.flag("adj_x"),
                v.flag("adj_y"),
            )
            .unwrap();
            assert_eq!(
                op.output_shape(lhs.shape(), rhs.shape()).unwrap(),
                expected.shape()
            );
            let (l, r): (Vec<i8>, Vec<i8>) =
                (lhs.iter().copied().collect(), rhs.iter().copied().collect());
            op.run(lhs.shape(), &l, rhs.shape(), &r, &mut out).unwrap();
        }
        other => panic!("unknown kind {other}"),
    }
    let litert: Vec<i8> = expected.iter().copied().collect();
    let (mismatches, max_lsb) = mismatches(&out, &litert);
    Outcome {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        kind,
        elements: litert.len(),
        mismatches,
        max_lsb,
    }
}

#[test]
fn transpose_conv_and_batch_matmul_match_litert_exactly() {
    let outcomes: Vec<Outcome> = matmul_like_vectors()
        .iter()
        .map(|p| run_matmul_like_vector(p))
        .collect();
    for o in &outcomes {
        eprintln!(
            "{:32} {:5} elements: {} mismatching, max {} LSB",
            o.name, o.elements, o.mismatches, o.max_lsb
        );
    }
    // Guard against a vacuous pass: every op kind, and the rounding probes, are there.
    for kind in [TRANSPOSE_CONV, BATCH_MATMUL] {
        assert!(
            outcomes.iter().filter(|o| o.kind == kind).count() >= 5,
            "too few vectors of kind {kind} in tests/fixtures/kernels/transpose_conv_matmul_resize"
        );
    }
    assert!(outcomes.iter().any(|o| o.name == "tconv_pow2_ties"));
    assert!(outcomes.iter().any(|o| o.name == "bmm_pow2_ties"));
    let bad: Vec<&Outcome> = outcomes.iter().filter(|o| o.mismatches > 0).collect();
    assert!(
        bad.is_empty(),
        "not bit-exact with LiteRT: {}",
        bad.iter()
            .map(|o| format!(
                "{} ({} of {} elements, max {} LSB)",
                o.name, o.mismatches, o.elements, o.max_lsb
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// Requantizes accumulators with per-channel rounding rules, as LiteRT's last step.
fn requantize_all(
    acc: &[i32],
    channels: usize,
    m: QuantizedMultiplier,
    zero_point: i32,
    rounding: impl Fn(usize) -> Rounding,
) -> Vec<i8> {
    acc.iter()
        .enumerate()
        .map(|(i, &a)| {
            (requantize(a, m, rounding(i % channels)) + zero_point).clamp(-128, 127) as i8
        })
        .collect()
}

/// The rounding probes must decide between rounding rules, or the main test could pass
/// with the wrong one. Redo the probes' exact integer sums here and requantize them
/// under each candidate rule: only LiteRT's matches every element.
#[test]
fn transpose_conv_and_batch_matmul_rounding_probes_tell_the_rules_apart() {
    // TRANSPOSE_CONV: 12 channels, 8 vector (ties up) + 4 scalar (ties away).
    let mut v = open(&fixture("tconv_pow2_ties.npz"));
    let g = tconv_geometry(&mut v);
    let pad = g.padding_values().unwrap();
    let (x, w) = (v.vec::<i8>("input"), v.vec::<i8>("filter"));
    let zp_in = v.scalar::<i32>("input_zero_point");
    let litert = v.vec::<i8>("output");
    assert!(!v.has("bias"));
    let mut acc = vec![0i32; g.out_h * g.out_w * g.out_c];
    for iy in 0..g.in_h {
        for ix in 0..g.in_w {
            for ky in 0..g.k_h {
                for kx in 0..g.k_w {
                    let oy = (iy * g.stride_h + ky) as isize - pad.top as isize;
                    let ox = (ix * g.stride_w + kx) as isize - pad.left as isize;
                    if oy < 0 || ox < 0 || oy as usize >= g.out_h || ox as usize >= g.out_w {
                        continue;
                    }
                    for oc in 0..g.out_c {
                        for ic in 0..g.in_c {
                            let xv = i32::from(x[(iy * g.in_w + ix) * g.in_c + ic]) - zp_in;
                            let wv = i32::from(w[((oc * g.k_h + ky) * g.k_w + kx) * g.in_c + ic]);
                            acc[(oy as usize * g.out_w + ox as usize) * g.out_c + oc] += xv * wv;
                        }
                    }
                }
            }
        }
    }
    let m = QuantizedMultiplier::from_real(2f64.powi(-3));
    let zp = v.scalar::<i32>("output_zero_point");
    let misses = |rule: &dyn Fn(usize) -> Rounding| {
        mismatches(&requantize_all(&acc, g.out_c, m, zp, rule), &litert).0
    };
    assert_eq!(
        misses(&|c| if c < 8 {
            Rounding::HalfUp
        } else {
            Rounding::HalfAwayFromZero
        }),
        0
    );
    assert!(misses(&|_| Rounding::HalfUp) > 10);
    assert!(misses(&|_| Rounding::HalfAwayFromZero) > 10);

    // BATCH_MATMUL (reference kernel): ties away from zero everywhere.
    let mut v = open(&fixture("bmm_pow2_ties.npz"));
    let (lhs, rhs) = (v.array::<i8>("lhs"), v.array::<i8>("rhs"));
    assert!(!v.flag("adj_x") && !v.flag("adj_y"));
    let (zl, zr) = (
        v.scalar::<i32>("lhs_zero_point"),
        v.scalar::<i32>("rhs_zero_point"),
    );
    let (b, mm, k) = (lhs.shape()[0], lhs.shape()[1], lhs.shape()[2]);
    let n = rhs.shape()[2];
    let mut acc = Vec::new();
    for bb in 0..b {
        for i in 0..mm {
            for j in 0..n {
                acc.push(
                    (0..k)
                        .map(|kk| {
                            (i32::from(lhs[[bb, i, kk]]) - zl) * (i32::from(rhs[[bb, kk, j]]) - zr)
                        })
                        .sum::<i32>(),
                );
            }
        }
    }
    let m = QuantizedMultiplier::from_real(0.25);
    let zp = v.scalar::<i32>("output_zero_point");
    let litert = v.vec::<i8>("output");
    let misses = |r: Rounding| mismatches(&requantize_all(&acc, 1, m, zp, |_| r), &litert).0;
    assert_eq!(misses(Rounding::HalfAwayFromZero), 0);
    assert!(misses(Rounding::HalfUp) > 10);
}
