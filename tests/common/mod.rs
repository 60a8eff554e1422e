//! Helpers shared by the integration tests: fixture paths and the LiteRT oracle.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ndarray::ArrayD;
use ndarray_npy::NpzReader;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// The oracle venv's python: `QDBG_ORACLE_PYTHON` if set, else whatever
/// `tests/oracle/setup.sh` creates (cached under ~/.cache/qdbg). The oracle is required:
/// without it these tests fail rather than pass vacuously.
pub fn oracle_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Ok(p) = std::env::var("QDBG_ORACLE_PYTHON") {
                return PathBuf::from(p);
            }
            let out = Command::new("bash")
                .arg(repo().join("tests/oracle/setup.sh"))
                .output()
                .expect("running tests/oracle/setup.sh");
            assert!(
                out.status.success(),
                "tests/oracle/setup.sh failed (the LiteRT oracle is needed):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            PathBuf::from(
                stdout
                    .lines()
                    .last()
                    .expect("setup.sh printed no path")
                    .trim(),
            )
        })
        .clone()
}

/// Runs LiteRT (builtin kernels, no delegates) on `inputs` and returns every
/// non-constant tensor it computed, keyed by tensor index, first axis = samples.
pub fn litert_dump(model: &Path, inputs: &Path, out_dir: &Path) -> Vec<(usize, ArrayD<f64>)> {
    litert_dump_with(model, inputs, out_dir, "builtin_without_default_delegates")
}

/// [`litert_dump`] with another of `litert_dump.py`'s resolvers: "default" is LiteRT's
/// default runtime (XNNPACK applied node by node), the only one that runs MediaPipe's
/// custom ops.
pub fn litert_dump_with(
    model: &Path,
    inputs: &Path,
    out_dir: &Path,
    resolver: &str,
) -> Vec<(usize, ArrayD<f64>)> {
    let out = out_dir.join("litert.npz");
    let status = Command::new(oracle_python())
        .arg(repo().join("tests/oracle/litert_dump.py"))
        .arg(model)
        .arg(inputs)
        .arg(&out)
        .arg("--resolver")
        .arg(resolver)
        .status()
        .expect("running the LiteRT oracle");
    assert!(
        status.success(),
        "litert_dump.py failed on {}",
        model.display()
    );
    let mut npz = NpzReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut tensors = Vec::new();
    for name in npz.names().unwrap() {
        let key = name.trim_end_matches(".npy");
        let Some(idx) = key.strip_prefix('t').and_then(|s| s.parse::<usize>().ok()) else {
            continue;
        };
        tensors.push((idx, read_any(&mut npz, &name)));
    }
    tensors.sort_by_key(|(i, _)| *i);
    tensors
}

/// Reads an npz entry of any numeric dtype as f64.
pub fn read_any(npz: &mut NpzReader<std::fs::File>, name: &str) -> ArrayD<f64> {
    macro_rules! try_type {
        ($t:ty) => {
            if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<$t>, ndarray::IxDyn>(name) {
                return a.mapv(|v| v as f64);
            }
        };
    }
    try_type!(f32);
    try_type!(f64);
    try_type!(i32);
    try_type!(i64);
    try_type!(i8);
    try_type!(u8);
    try_type!(i16);
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<bool>, ndarray::IxDyn>(name) {
        return a.mapv(|v| if v { 1.0 } else { 0.0 });
    }
    panic!("npz entry {name} has an unsupported dtype");
}
/// qdbg's executor on every sample of `inputs` (an .npz keyed `NAME.npy` by input tensor
/// name, first axis samples): every tensor's values per sample, as the oracle dump holds
/// LiteRT's (indexed by tensor id; empty where nothing was computed). `label` names the
/// model in a failure.
pub fn qdbg_values(
    label: &str,
    graph: &qdbg::graph::Graph,
    inputs: &Path,
) -> (usize, Vec<Vec<Vec<f64>>>) {
    use candle_core::{Device, Tensor as CTensor};
    use ndarray::Axis;
    let mut npz = NpzReader::new(std::fs::File::open(inputs).unwrap()).unwrap();
    let arrays: Vec<_> = graph
        .inputs
        .iter()
        .map(|&id| read_any(&mut npz, &format!("{}.npy", graph.tensor(id).name)))
        .collect();
    let samples = arrays[0].len_of(Axis(0));
    let exec = qdbg::exec::Executor::new(graph, &Device::Cpu).unwrap();
    let mut ours: Vec<Vec<Vec<f64>>> = vec![Vec::new(); graph.tensors.len()];
    for s in 0..samples {
        let sample: Vec<CTensor> = graph
            .inputs
            .iter()
            .zip(&arrays)
            .map(|(&id, a)| {
                let v: Vec<f32> = a.index_axis(Axis(0), s).iter().map(|&x| x as f32).collect();
                CTensor::from_vec(v, graph.tensor(id).shape.clone(), &Device::Cpu).unwrap()
            })
            .collect();
        exec.run_observed(&sample, &mut |id, value| {
            let v = value
                .to_dtype(candle_core::DType::F64)
                .and_then(|v| v.flatten_all())
                .and_then(|v| v.to_vec1::<f64>())
                .unwrap();
            ours[id].push(v);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    }
    (samples, ours)
}

pub mod kernel_vectors;
pub mod synthetic;
pub mod tf_debugger;
pub mod tf_quantizer;

/// Every fused activation a TFLite op can carry: the property tests' draw.
pub fn fused_activation() -> impl proptest::strategy::Strategy<Value = qdbg::graph::FusedActivation>
{
    use proptest::prelude::{prop_oneof, Just};
    use qdbg::graph::FusedActivation;
    prop_oneof![
        Just(FusedActivation::None),
        Just(FusedActivation::Relu),
        Just(FusedActivation::Relu6),
        Just(FusedActivation::ReluN1To1),
    ]
}
