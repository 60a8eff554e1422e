//! The int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED kernels against LiteRT.
//!
//! Each `tests/fixtures/kernels/conv_*.npz` holds one op's int8 input, filter, bias,
//! quantization parameters and attributes as LiteRT 2.3.0 ran them, and LiteRT's int8
//! output (`scripts/kernel_vectors/make_conv_vectors.py` documents the keys). The
//! kernels must reproduce that output exactly.

mod common;

use common::activation_from_code;

use std::fs::File;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, ReadableElement};
use qdbg::graph::Padding;
use qdbg::kernels::fixed_point::QuantizedMultiplier;
use qdbg::kernels::int8::conv::{requantize, ConvGeometry, ConvInt8, FullyConnectedInt8, Rounding};
use qdbg::kernels::int8::QParams;

const CONV_2D: i32 = 0;
const DEPTHWISE_CONV_2D: i32 = 1;
const FULLY_CONNECTED: i32 = 2;

fn vectors() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernels");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("conv_") && name.ends_with(".npz")
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

fn run_vector(path: &Path) -> Outcome {
    let mut v = Vector::open(path);
    let kind = v.scalar::<i32>("kind");
    let input_q = v.qparams("input");
    let output_q = v.qparams("output");
    let filter_scales = v.vec::<f32>("filter_scales");
    assert!(
        v.vec::<i32>("filter_zero_points").iter().all(|&z| z == 0),
        "symmetric filters only"
    );
    let act = activation_from_code(v.scalar::<i32>("activation"));
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
    let files = vectors();
    let outcomes: Vec<Outcome> = files.iter().map(|p| run_vector(p)).collect();
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
    let probes: Vec<PathBuf> = vectors()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("fc_pow2_ties"))
        .collect();
    assert!(!probes.is_empty());
    let mut away_misses = 0;
    for path in &probes {
        let mut v = Vector::open(path);
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
