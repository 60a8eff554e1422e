//! qdbg's two int8 arithmetics against LiteRT 2.3.0 on single-op models
//! (`tests/fixtures/xnnpack/`, made by `scripts/kernel_vectors/make_xnnpack_vectors.py`):
//! with [`Arithmetic::Xnnpack`] every output equals what LiteRT's default XNNPACK delegate
//! computed, with [`Arithmetic::Builtin`] what its builtin kernels computed, element for
//! element. The cases are chosen so the two runtimes disagree on some outputs of every op
//! XNNPACK computes differently, so each comparison can fail.

mod common;

use common::kernel_vectors::Vector;

use std::path::{Path, PathBuf};

use candle_core::Device;
use ndarray::{ArrayD, Axis};
use qdbg::data::SampleArray;
use qdbg::exec::{tensor_from_sample, Executor};
use qdbg::kernels::int8::Arithmetic;
use qdbg::ops::int8_tensor::int8_values;

fn cases() -> Vec<PathBuf> {
    let dir = common::fixture("xnnpack");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tflite"))
        .collect();
    models.sort();
    assert!(
        models.len() >= 20,
        "expected the generated cases in {}",
        dir.display()
    );
    models
}

/// `key`'s int8 array, if the vector has one (the inputs and outputs are numbered).
fn read_i8(v: &mut Vector, key: &str) -> Option<ArrayD<i8>> {
    if v.has(key) {
        Some(v.i8s(key))
    } else {
        None
    }
}

/// Runs every sample of the case through qdbg with `arithmetic`; returns, per sample, the
/// model's outputs as int8.
fn run(model: &Path, inputs: &[ArrayD<i8>], arithmetic: Arithmetic) -> Vec<Vec<Vec<i8>>> {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let exec = Executor::with_arithmetic(&graph, &Device::Cpu, arithmetic).unwrap();
    let samples = inputs[0].len_of(Axis(0));
    (0..samples)
        .map(|s| {
            let sample: Vec<_> = inputs
                .iter()
                .map(|a| {
                    let one = SampleArray::I8(a.index_axis(Axis(0), s).to_owned());
                    tensor_from_sample(&one, &Device::Cpu).unwrap()
                })
                .collect();
            exec.run(&sample)
                .unwrap()
                .iter()
                .map(|t| int8_values(t).unwrap().to_vec())
                .collect()
        })
        .collect()
}

#[test]
fn each_arithmetic_equals_its_runtime_bit_for_bit() {
    let mut disagreements = 0usize;
    let mut summary = Vec::new();
    for model in cases() {
        let name = model.file_stem().unwrap().to_string_lossy().to_string();
        let mut vector = Vector::open(&model.with_extension("npz"), &name);
        let inputs: Vec<ArrayD<i8>> = (0..)
            .map_while(|k| read_i8(&mut vector, &format!("input_{k}")))
            .collect();
        assert!(!inputs.is_empty(), "{name}: no inputs in the vectors");
        for (arithmetic, key) in [
            (Arithmetic::Xnnpack, "xnnpack"),
            (Arithmetic::Builtin, "builtin"),
        ] {
            let ours = run(&model, &inputs, arithmetic);
            for k in 0.. {
                let Some(want) = read_i8(&mut vector, &format!("{key}_{k}")) else {
                    assert!(k > 0, "{name}: no {key} outputs in the vectors");
                    break;
                };
                for (s, sample) in ours.iter().enumerate() {
                    let want: Vec<i8> = want.index_axis(Axis(0), s).iter().copied().collect();
                    let got = &sample[k];
                    let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
                    assert_eq!(
                        (got.len(), wrong),
                        (want.len(), 0),
                        "{name}: sample {s}, output {k}: {wrong} of {} elements differ from LiteRT's {key} run",
                        want.len()
                    );
                }
            }
        }
        let differ: usize = (0..)
            .map_while(|k| {
                let x = read_i8(&mut vector, &format!("xnnpack_{k}"))?;
                let b = read_i8(&mut vector, &format!("builtin_{k}"))?;
                Some(x.iter().zip(&b).filter(|(x, b)| x != b).count())
            })
            .sum();
        disagreements += differ;
        summary.push(format!("{name}: runtimes differ on {differ}"));
    }
    eprintln!("{}", summary.join("\n"));
    // The vectors must tell the two arithmetics apart, or the test above proves nothing.
    assert!(
        disagreements > 500,
        "only {disagreements} outputs differ between XNNPACK and builtin"
    );
}
