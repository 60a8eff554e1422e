//! The float executor against LiteRT, tensor by tensor: every intermediate tensor of
//! every fixture must match LiteRT's builtin kernels within 1e-4 of the tensor's range.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor as CTensor};
use ndarray::Axis;
use ndarray_npy::NpzReader;
use qdbg::exec::Executor;
use qdbg::graph::DType;

/// Loads `NAME.inputs.npz` as one candle tensor per model input, per sample.
fn load_inputs(graph: &qdbg::graph::Graph, path: &Path) -> Vec<Vec<CTensor>> {
    let mut npz = NpzReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut per_input = Vec::new();
    for &id in &graph.inputs {
        let t = graph.tensor(id);
        let key = format!("{}.npy", t.name);
        let arr = common::read_any(&mut npz, &key);
        per_input.push(arr);
    }
    let samples = per_input[0].len_of(Axis(0));
    (0..samples)
        .map(|s| {
            graph
                .inputs
                .iter()
                .zip(&per_input)
                .map(|(&id, arr)| {
                    let t = graph.tensor(id);
                    let v: Vec<f32> = arr
                        .index_axis(Axis(0), s)
                        .iter()
                        .map(|&x| x as f32)
                        .collect();
                    let c = CTensor::from_vec(v, t.shape.clone(), &Device::Cpu).unwrap();
                    if t.dtype == DType::F32 {
                        c
                    } else {
                        c.to_dtype(candle_core::DType::I64).unwrap()
                    }
                })
                .collect()
        })
        .collect()
}

fn check_fixture(name: &str) {
    let model = common::fixture(&format!("{name}.tflite"));
    let inputs = common::fixture(&format!("{name}.inputs.npz"));
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let oracle = common::litert_dump(&model, &inputs, dir.path());
    assert!(!oracle.is_empty(), "{name}: the oracle returned no tensors");

    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let samples = load_inputs(&graph, &inputs);
    // ours[tensor][sample] = flattened values
    let mut ours: Vec<Vec<Vec<f64>>> = vec![Vec::new(); graph.tensors.len()];
    for sample in &samples {
        exec.run_observed(sample, &mut |id, value| {
            let v = value
                .to_dtype(candle_core::DType::F64)
                .and_then(|v| v.flatten_all())
                .and_then(|v| v.to_vec1::<f64>())
                .unwrap();
            ours[id].push(v);
            Ok(())
        })
        .unwrap();
    }

    let mut failures = Vec::new();
    let mut compared = 0;
    for (idx, expected) in &oracle {
        let tensor = graph.tensor(*idx);
        let producer = graph
            .nodes
            .iter()
            .find(|n| n.outputs.contains(idx))
            .map_or("input".to_string(), |n| {
                format!("#{} {}", n.source_index, n.op.name())
            });
        compared += 1;
        if let (true, Some(data)) = (ours[*idx].is_empty(), &tensor.data) {
            // Folded at load time (float16 weights behind DEQUANTIZE): compare the constant.
            let values: Vec<f64> = data.to_f32().unwrap().iter().map(|&v| v as f64).collect();
            ours[*idx] = vec![values; samples.len()];
        }
        if ours[*idx].len() != samples.len() {
            failures.push(format!(
                "t{idx} '{}' ({producer}): not computed",
                tensor.name
            ));
            continue;
        }
        let lo = expected.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = expected.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let tolerance = 1e-4 * (hi - lo).max(1e-6);
        let mut worst = 0f64;
        for (s, got) in ours[*idx].iter().enumerate() {
            let want = expected.index_axis(Axis(0), s);
            assert_eq!(
                want.len(),
                got.len(),
                "t{idx} '{}': element count",
                tensor.name
            );
            for (a, b) in want.iter().zip(got) {
                // Equal values (infinities included) and NaN against NaN agree; a NaN
                // against a number must fail, and `f64::max` would drop it.
                let diff = if a == b || (a.is_nan() && b.is_nan()) {
                    0.0
                } else {
                    (a - b).abs()
                };
                if diff.is_nan() || diff > worst {
                    worst = diff;
                }
                if worst.is_nan() {
                    break;
                }
            }
        }
        if worst > tolerance || worst.is_nan() {
            failures.push(format!(
                "t{idx} '{}' ({producer}): max abs error {worst:e} > {tolerance:e} (range {lo}..{hi})",
                tensor.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {compared} tensors differ from LiteRT:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{name}: {compared} tensors match LiteRT");
}

macro_rules! fixture_tests {
    ($($name:ident),*) => { $( #[test] fn $name() { check_fixture(stringify!($name)); } )* };
}

fixture_tests!(
    conv_ops,
    dense_ops,
    elementwise_ops,
    reduce_ops,
    shape_ops,
    resize_ops,
    activation_ops,
    multi_io,
    f16_weights,
    quant_dequant,
    mobilenet_v3_small,
    pow_ops
);
