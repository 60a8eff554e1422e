//! The float pointwise (1x1 CONV_2D) kernel, every level this CPU has, against a plain
//! f64 evaluation of `act(bias + x . W)` on random shapes (output channel counts that
//! leave every kind of panel tail, row counts that leave every kind of row tile),
//! strides, activations, with and without a bias. The SIMD levels sum in another order
//! and with FMA, so results are compared within the worst-case bound of an `in_c`-term
//! f32 sum; a wrong lane, row or panel is off by far more.

mod common;

use proptest::prelude::*;
use qdbg::graph::FusedActivation;
use qdbg::kernels::pointwise_f32::{fused_clamp, PackedPointwise, PointwiseGeometry};
use qdbg::kernels::simd::{self, Level};

#[derive(Clone, Debug)]
struct Case {
    g: PointwiseGeometry,
    in_c: usize,
    out_c: usize,
    input: Vec<f32>,
    weights_oi: Vec<f32>,
    bias: Vec<f32>,
    activation: FusedActivation,
}

fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-4f32..4.0, n)
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        (1usize..=9, 1usize..=9),
        (1usize..=3, 1usize..=3),
        1usize..=70,
        1usize..=100,
        any::<bool>(),
        common::fused_activation(),
    )
        .prop_flat_map(
            |(batch, (in_h, in_w), (sh, sw), in_c, out_c, with_bias, act)| {
                // TFLite's SAME output size; a 1x1 filter never pads.
                let g = PointwiseGeometry {
                    batch,
                    in_h,
                    in_w,
                    out_h: in_h.div_ceil(sh),
                    out_w: in_w.div_ceil(sw),
                    stride_h: sh,
                    stride_w: sw,
                };
                (
                    Just(g),
                    Just((in_c, out_c, act)),
                    values(batch * in_h * in_w * in_c),
                    values(out_c * in_c),
                    values(if with_bias { out_c } else { 0 }),
                )
            },
        )
        .prop_map(
            |(g, (in_c, out_c, activation), input, weights_oi, bias)| Case {
                g,
                in_c,
                out_c,
                input,
                weights_oi,
                bias,
                activation,
            },
        )
}

/// Output `(row, o)` in f64 and the sum of the magnitudes of its terms (the scale of
/// its rounding error).
fn reference(c: &Case) -> Vec<(f64, f64)> {
    let g = &c.g;
    let clamp = fused_clamp(c.activation)
        .expect("ReLU family")
        .map(|(lo, hi)| (lo as f64, hi as f64));
    let mut out = Vec::new();
    for b in 0..g.batch {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let px = (b * g.in_h + oy * g.stride_h) * g.in_w + ox * g.stride_w;
                let x = &c.input[px * c.in_c..][..c.in_c];
                for o in 0..c.out_c {
                    let w = &c.weights_oi[o * c.in_c..][..c.in_c];
                    let bias = c.bias.get(o).map_or(0.0, |&b| b as f64);
                    let terms = x.iter().zip(w).map(|(&x, &w)| x as f64 * w as f64);
                    let sum = bias + terms.clone().sum::<f64>();
                    let scale = bias.abs() + terms.map(f64::abs).sum::<f64>();
                    let v = match clamp {
                        Some((lo, hi)) => sum.clamp(lo, hi),
                        None => sum,
                    };
                    out.push((v, scale));
                }
            }
        }
    }
    out
}

/// Runs `c` on `level`, into a buffer with sentinels after the output (a store past the
/// end would overwrite them) and NaN in it (an element left unwritten stays NaN).
fn run(c: &Case, level: Level) -> Vec<f32> {
    let packed =
        PackedPointwise::for_level(&c.weights_oi, c.out_c, c.in_c, &c.bias, level).unwrap();
    assert_eq!(packed.level(), expected_level(level));
    let n = c.g.rows() * c.out_c;
    let mut buf = vec![f32::NAN; n + 64];
    buf[n..].fill(12345.0);
    let clamp = fused_clamp(c.activation).unwrap();
    packed.run(&c.input, &c.g, clamp, &mut buf[..n]);
    assert!(
        buf[n..].iter().all(|&v| v == 12345.0),
        "wrote past the output"
    );
    buf.truncate(n);
    buf
}

/// The kernel family a level runs: aarch64 runs the scalar pointwise kernel.
fn expected_level(level: Level) -> Level {
    match level {
        Level::Avx2 | Level::Avx512 => level,
        _ => Level::Scalar,
    }
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let want = reference(c);
    for level in simd::available() {
        let got = run(c, level);
        prop_assert_eq!(got.len(), want.len());
        for (i, (&g, &(w, scale))) in got.iter().zip(&want).enumerate() {
            // The worst case of an (in_c + 1)-term f32 sum, in units of the f32 epsilon
            // (twice the unit roundoff), plus the f32 rounding of the result.
            let tol = (c.in_c as f64 + 2.0) * f32::EPSILON as f64 * scale;
            prop_assert!(
                (g as f64 - w).abs() <= tol,
                "{level:?}: row {} channel {}: got {g}, want {w} (tolerance {tol})",
                i / c.out_c,
                i % c.out_c
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_level_matches_the_reference(c in case()) {
        check(&c)?;
    }
}

/// The levels iterated above include the best one this CPU has, so the SIMD kernels do
/// run here when the CPU has them.
#[test]
fn the_best_level_is_tested() {
    let levels = simd::available();
    assert!(levels.contains(&simd::detected()));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        assert!(levels.contains(&Level::Avx2));
    }
}

/// Shapes of MobileNetV3-small's pointwise layers (rows, in, out), including the tall
/// narrow ones and the one-row squeeze-excite ones, each activation.
#[test]
fn network_shapes() {
    let shapes = [
        (3136, 16, 72),
        (784, 72, 24),
        (196, 96, 40),
        (49, 288, 96),
        (49, 96, 576),
        (1, 576, 1024),
        (1, 16, 8),
        (1, 144, 40),
    ];
    for (i, (rows, in_c, out_c)) in shapes.into_iter().enumerate() {
        let gen = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|j| (((j * 7919 + seed * 104729) % 2003) as f32 - 1001.0) / 500.0)
                .collect()
        };
        let c = Case {
            g: PointwiseGeometry::dense(rows),
            in_c,
            out_c,
            input: gen(rows * in_c, i),
            weights_oi: gen(out_c * in_c, i + 1),
            bias: if i % 2 == 0 {
                gen(out_c, i + 2)
            } else {
                Vec::new()
            },
            activation: [
                FusedActivation::None,
                FusedActivation::Relu,
                FusedActivation::Relu6,
                FusedActivation::ReluN1To1,
            ][i % 4],
        };
        check(&c).unwrap();
    }
}

/// The clamps keep NaN (a debugger should show where NaNs appear, not hide them as 0).
#[test]
fn nan_passes_through_the_clamps() {
    for level in simd::available() {
        let packed = PackedPointwise::for_level(&[1.0; 40], 20, 2, &[], level).unwrap();
        let mut out = vec![0f32; 20];
        packed.run(
            &[f32::NAN, 1.0],
            &PointwiseGeometry::dense(1),
            Some((0.0, 6.0)),
            &mut out,
        );
        assert!(out.iter().all(|v| v.is_nan()), "{level:?}: {out:?}");
    }
}

#[test]
fn mismatched_sizes_are_refused() {
    assert!(PackedPointwise::for_level(&[1.0; 6], 2, 2, &[], Level::Scalar).is_none());
    assert!(PackedPointwise::for_level(&[1.0; 4], 2, 2, &[1.0], Level::Scalar).is_none());
}
