//! The int8 TRANSPOSE_CONV / BATCH_MATMUL / RESIZE_BILINEAR kernels against LiteRT.
//!
//! Each `tests/fixtures/kernels/transpose_conv_matmul_resize/*.npz` holds one op's int8 inputs, quantization
//! parameters and attributes as LiteRT 2.3.0 ran them, and LiteRT's int8 output
//! (`scripts/kernel_vectors/make_transpose_conv_matmul_resize_vectors.py` documents the keys). The kernels must
//! reproduce that output exactly.

mod common;

use common::activation_from_code;

use std::fs::File;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, ReadableElement};
use qdbg::graph::Padding;
use qdbg::kernels::fixed_point::QuantizedMultiplier;
use qdbg::kernels::int8::batch_matmul::BatchMatMulInt8;
use qdbg::kernels::int8::conv::{requantize, Rounding};
use qdbg::kernels::int8::resize::{ResizeBilinearInt8, ResizeDims};
use qdbg::kernels::int8::transpose_conv::{TransposeConvGeometry, TransposeConvInt8};
use qdbg::kernels::int8::QParams;

const TRANSPOSE_CONV: i32 = 0;
const BATCH_MATMUL: i32 = 1;
const RESIZE_BILINEAR: i32 = 2;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kernels/transpose_conv_matmul_resize")
}

fn vectors() -> Vec<PathBuf> {
    let dir = fixtures();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".npz")
        })
        .collect();
    files.sort();
    files
}

struct Vector {
    npz: NpzReader<File>,
    names: Vec<String>,
}

impl Vector {
    fn open(path: &Path) -> Self {
        let mut npz = NpzReader::new(File::open(path).unwrap()).unwrap();
        let names = npz.names().unwrap();
        Vector { npz, names }
    }

    fn has(&self, key: &str) -> bool {
        self.names
            .iter()
            .any(|n| n == key || *n == format!("{key}.npy"))
    }

    fn array<T: ReadableElement>(&mut self, key: &str) -> ArrayD<T> {
        self.npz
            .by_name::<OwnedRepr<T>, IxDyn>(&format!("{key}.npy"))
            .unwrap_or_else(|e| panic!("npz entry {key}: {e}"))
    }

    fn vec<T: ReadableElement + Clone>(&mut self, key: &str) -> Vec<T> {
        self.array::<T>(key).iter().cloned().collect()
    }

    fn scalar<T: ReadableElement + Copy>(&mut self, key: &str) -> T {
        let a = self.array::<T>(key);
        assert_eq!(a.len(), 1, "{key} should be a scalar");
        *a.iter().next().unwrap()
    }

    fn usize(&mut self, key: &str) -> usize {
        usize::try_from(self.scalar::<i32>(key)).unwrap()
    }

    fn flag(&mut self, key: &str) -> bool {
        self.scalar::<i32>(key) != 0
    }

    fn qparams(&mut self, which: &str) -> QParams {
        QParams::new(
            self.scalar::<f32>(&format!("{which}_scale")),
            self.scalar::<i32>(&format!("{which}_zero_point")),
        )
    }
}

/// Elements that differ from LiteRT and the largest difference, in LSBs.
fn compare(ours: &[i8], litert: &[i8]) -> (usize, i32) {
    assert_eq!(ours.len(), litert.len());
    ours.iter().zip(litert).fold((0, 0), |(n, max), (&a, &b)| {
        let d = (i32::from(a) - i32::from(b)).abs();
        (n + usize::from(d != 0), max.max(d))
    })
}

struct Outcome {
    name: String,
    kind: i32,
    elements: usize,
    mismatches: usize,
    max_lsb: i32,
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

fn run_vector(path: &Path) -> Outcome {
    let mut v = Vector::open(path);
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
            let act = activation_from_code(v.scalar::<i32>("activation"));
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
        RESIZE_BILINEAR => {
            let input = v.array::<i8>("input");
            let size = v.vec::<i32>("size");
            let (is, os) = (input.shape(), expected.shape());
            assert_eq!((size[0] as usize, size[1] as usize), (os[1], os[2]));
            let d = ResizeDims {
                batch: is[0],
                in_h: is[1],
                in_w: is[2],
                channels: is[3],
                out_h: os[1],
                out_w: os[2],
            };
            let input_q = v.qparams("input");
            assert_eq!(input_q, output_q, "the converter shares resize parameters");
            let op = ResizeBilinearInt8::new(
                input_q,
                output_q,
                v.flag("align_corners"),
                v.flag("half_pixel_centers"),
            )
            .unwrap();
            let x: Vec<i8> = input.iter().copied().collect();
            op.run(&d, &x, &mut out).unwrap();
        }
        other => panic!("unknown kind {other}"),
    }
    let litert: Vec<i8> = expected.iter().copied().collect();
    let (mismatches, max_lsb) = compare(&out, &litert);
    Outcome {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        kind,
        elements: litert.len(),
        mismatches,
        max_lsb,
    }
}

#[test]
fn kernels_match_litert_exactly() {
    let outcomes: Vec<Outcome> = vectors().iter().map(|p| run_vector(p)).collect();
    for o in &outcomes {
        eprintln!(
            "{:32} {:5} elements: {} mismatching, max {} LSB",
            o.name, o.elements, o.mismatches, o.max_lsb
        );
    }
    // Guard against a vacuous pass: every op kind, and the rounding probes, are there.
    for kind in [TRANSPOSE_CONV, BATCH_MATMUL, RESIZE_BILINEAR] {
        assert!(
            outcomes.iter().filter(|o| o.kind == kind).count() >= 5,
            "too few vectors of kind {kind} in tests/fixtures/kernels"
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
fn rounding_probes_tell_the_rules_apart() {
    // TRANSPOSE_CONV: 12 channels, 8 vector (ties up) + 4 scalar (ties away).
    let mut v = Vector::open(&fixtures().join("tconv_pow2_ties.npz"));
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
        compare(&requantize_all(&acc, g.out_c, m, zp, rule), &litert).0
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
    let mut v = Vector::open(&fixtures().join("bmm_pow2_ties.npz"));
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
    let misses = |r: Rounding| compare(&requantize_all(&acc, 1, m, zp, |_| r), &litert).0;
    assert_eq!(misses(Rounding::HalfAwayFromZero), 0);
    assert!(misses(Rounding::HalfUp) > 10);
}
