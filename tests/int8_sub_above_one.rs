//! int8 SUB with a real output multiplier above 1, against LiteRT 2.3.0 (builtin
//! kernels, no delegates): `tests/fixtures/kernels/sub_gt1_*`, made by
//! `scripts/kernel_vectors/make_sub_above_one_vectors.py`. TensorFlow's quantizer
//! writes such SUBs for near-constant outputs; LiteRT runs them (its ADD aborts), and
//! what it computes depends on the compiled loop an element takes and on whether its
//! arena runs the SUB in place. Every output must match exactly.

mod common;

use common::kernel_vectors::{activation_from_code, mismatches, Vector};

use std::path::PathBuf;

use candle_core::{Device, Tensor as CTensor};
use ndarray::ArrayD;

use qdbg::exec::Executor;
use qdbg::graph::{BinaryKind, Op};
use qdbg::kernels::int8::binary::{Add, Sub};
use qdbg::kernels::int8::QParams;

fn fixture(name: &str) -> PathBuf {
    common::fixture("kernels").join(name)
}

/// `tests/fixtures/kernels/<name>`.
fn open(name: &str) -> Vector {
    Vector::open(&fixture(name), name)
}

fn qparams(scales: &[f32], zps: &[i32]) -> [QParams; 3] {
    [0, 1, 2].map(|i| QParams::new(scales[i], zps[i]))
}

fn assert_exact(what: &str, got: &[i8], want: &[i8]) {
    let (n, worst) = mismatches(got, want);
    assert_eq!(
        n,
        0,
        "{what}: {n} of {} outputs differ from LiteRT, by up to {worst} LSB",
        want.len()
    );
}

/// Every pair of int8 inputs: a flat SUB (the vectorized loop) and a broadcast one.
#[test]
fn every_input_pair() {
    let mut v = open("sub_gt1_pairs.npz");
    let codes: Vec<i8> = (-128..=127).collect();

    let [q1, q2, qo] = qparams(&v.vec("same_scales"), &v.vec("same_zps"));
    let act = activation_from_code(v.scalar("same_activation"));
    let a: Vec<i8> = (0..65536).map(|i| codes[i / 256]).collect();
    let b: Vec<i8> = (0..65536).map(|i| codes[i % 256]).collect();
    let want: Vec<i8> = v.vec("same_out");
    let mut got = vec![0i8; 65536];
    Sub::new(q1, q2, qo, act)
        .unwrap()
        .run(&a, &[65536], &b, &[65536], &mut got)
        .unwrap();
    assert_exact("flat, every pair", &got, &want);

    let [q1, q2, qo] = qparams(&v.vec("bcast_scales"), &v.vec("bcast_zps"));
    let act = activation_from_code(v.scalar("bcast_activation"));
    let want: Vec<i8> = v.vec("bcast_out");
    Sub::new(q1, q2, qo, act)
        .unwrap()
        .run(&codes, &[256, 1], &codes, &[1, 256], &mut got)
        .unwrap();
    assert_exact("broadcast, every pair", &got, &want);
}

/// Random inputs: multipliers from just above 1 to 2^30, flat (with scalar tails),
/// scalar, five-fold and generic broadcasts, every fused activation LiteRT accepts.
#[test]
fn parameter_sets() {
    let mut v = open("sub_gt1_cases.npz");
    let scales: Vec<f32> = v.vec("scales");
    let zps: Vec<i32> = v.vec("zps");
    let acts: Vec<i32> = v.vec("activation");
    let a_dims: Vec<i32> = v.vec("a_dims");
    let b_dims: Vec<i32> = v.vec("b_dims");
    let samples: Vec<i32> = v.vec("samples");
    let (in0, in1, out): (Vec<i8>, Vec<i8>, Vec<i8>) = (v.vec("in0"), v.vec("in1"), v.vec("out"));
    let dims = |all: &[i32], c: usize| -> Vec<usize> {
        all[c * 6..c * 6 + 6]
            .iter()
            .take_while(|&&d| d >= 0)
            .map(|&d| d as usize)
            .collect()
    };
    let (mut ia, mut ib, mut io, mut total) = (0usize, 0usize, 0usize, 0usize);
    let mut broadcast_cases = 0;
    for c in 0..acts.len() {
        let [q1, q2, qo] = qparams(&scales[c * 3..], &zps[c * 3..]);
        let (sa, sb) = (dims(&a_dims, c), dims(&b_dims, c));
        let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
        let rank = sa.len().max(sb.len());
        let pad = |s: &[usize]| {
            let mut p = vec![1; rank - s.len()];
            p.extend_from_slice(s);
            p
        };
        let (pa, pb) = (pad(&sa), pad(&sb));
        broadcast_cases += usize::from(pa != pb);
        let no: usize = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).product();
        let sub = Sub::new(q1, q2, qo, activation_from_code(acts[c]))
            .unwrap_or_else(|e| panic!("case {c}: LiteRT runs it, qdbg refuses: {e}"));
        for s in 0..samples[c] as usize {
            let mut got = vec![0i8; no];
            sub.run(&in0[ia..ia + na], &sa, &in1[ib..ib + nb], &sb, &mut got)
                .unwrap();
            assert_exact(
                &format!("case {c} ({sa:?} - {sb:?}, {q1:?} {q2:?} {qo:?}) sample {s}"),
                &got,
                &out[io..io + no],
            );
            (ia, ib, io) = (ia + na, ib + nb, io + no);
            total += no;
        }
    }
    assert_eq!((ia, ib, io), (in0.len(), in1.len(), out.len()));
    assert!(acts.len() >= 40 && broadcast_cases >= 20 && total > 10_000);
}

/// What LiteRT refuses: SUB and ADD at a multiplier of exactly 1 and ADD above it (the
/// process aborts), fused RELU6 / RELU_N1_TO_1 bounds beyond int32 (Prepare fails).
#[test]
fn refused_like_litert() {
    let mut v = open("sub_gt1_refused.npz");
    let ops: Vec<i32> = v.vec("op");
    let scales: Vec<f32> = v.vec("scales");
    let zps: Vec<i32> = v.vec("zps");
    let acts: Vec<i32> = v.vec("activation");
    let outcome: Vec<i32> = v.vec("outcome");
    assert!(outcome.contains(&1) && outcome.contains(&2));
    for r in 0..ops.len() {
        let [q1, q2, qo] = qparams(&scales[r * 3..], &zps[r * 3..]);
        let act = activation_from_code(acts[r]);
        let refused = match ops[r] {
            0 => Sub::new(q1, q2, qo, act).is_err(),
            _ => Add::new(q1, q2, qo, act).is_err(),
        };
        assert!(
            refused,
            "row {r}: LiteRT refuses (outcome {}), qdbg accepts",
            outcome[r]
        );
    }
}

/// Whole models: LiteRT's arena decides from the graph whether SUB runs in place, and
/// in place the vectorized loop is never taken. qdbg's executor must make the same
/// decision; running the kernel with the other decision must not match (so each model
/// tells the two apart).
#[test]
fn whole_models_in_place_or_not() {
    for name in [
        "inplace_input0",
        "inplace_input1",
        "separate",
        "reshape_root",
        "four_bytes",
        "five_bytes",
    ] {
        let model = fixture(&format!("sub_gt1_model_{name}.tflite"));
        let mut v = open(&format!("sub_gt1_model_{name}.npz"));
        let x: ArrayD<f32> = v.array("x");
        let y: ArrayD<f32> = v.array("y");
        let want: ArrayD<i8> = v.array("sub_out");
        let in_place = v.scalar::<i32>("in_place") == 1;

        let graph = qdbg::tflite::read_model(&model).unwrap();
        let exec = Executor::new(&graph, &Device::Cpu).unwrap();
        let node = graph
            .nodes
            .iter()
            .find(|n| {
                matches!(
                    n.op,
                    Op::Binary {
                        kind: BinaryKind::Sub,
                        ..
                    }
                )
            })
            .expect("a SUB");
        let Op::Binary {
            activation: act, ..
        } = node.op
        else {
            unreachable!()
        };
        let (ta, tb, to) = (
            node.input(0).unwrap(),
            node.input(1).unwrap(),
            node.outputs[0],
        );
        let q = |id: usize| {
            let p = graph.tensor(id).quant.as_ref().unwrap();
            QParams::new(p.scale[0], p.zero_point[0] as i32)
        };
        let sub = Sub::new(q(ta), q(tb), q(to), act).unwrap();

        let mut other_mismatches = 0;
        for s in 0..x.shape()[0] {
            let sample: Vec<CTensor> = [&x, &y]
                .iter()
                .zip(&graph.inputs)
                .map(|(a, &id)| {
                    let t = graph.tensor(id);
                    let vals: Vec<f32> =
                        a.index_axis(ndarray::Axis(0), s).iter().copied().collect();
                    CTensor::from_vec(vals, t.shape.clone(), &Device::Cpu).unwrap()
                })
                .collect();
            let mut seen: Vec<Option<Vec<i8>>> = vec![None; graph.tensors.len()];
            exec.run_observed(&sample, &mut |id, value| {
                if [ta, tb, to].contains(&id) {
                    let vals = value
                        .to_dtype(candle_core::DType::F64)
                        .and_then(|v| v.flatten_all())
                        .and_then(|v| v.to_vec1::<f64>())
                        .unwrap();
                    seen[id] = Some(vals.iter().map(|&f| f as i8).collect());
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected: Vec<i8> = want
                .index_axis(ndarray::Axis(0), s)
                .iter()
                .copied()
                .collect();
            let got = seen[to].as_ref().expect("SUB output observed");
            assert_exact(&format!("{name} sample {s}"), got, &expected);

            // The kernel on the same inputs with the opposite in-place decision.
            let (a, b) = (seen[ta].as_ref().unwrap(), seen[tb].as_ref().unwrap());
            let mut other = vec![0i8; expected.len()];
            sub.clone()
                .in_place(!in_place)
                .run(
                    a,
                    &graph.tensor(ta).shape,
                    b,
                    &graph.tensor(tb).shape,
                    &mut other,
                )
                .unwrap();
            other_mismatches += mismatches(&other, &expected).0;
        }
        assert!(
            other_mismatches > 0,
            "{name}: the vectors do not tell in place (LiteRT: {in_place}) from not"
        );
    }
}
