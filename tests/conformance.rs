//! qdbg's quantizer against TensorFlow's on models with the structures real published
//! models have (tests/fixtures/conformance, made by scripts/make_conformance.sh):
//! detection heads of reshaped convolutions joined by concatenations, near-zero and
//! all-zero branches, chains of same-scale ops, float16 weights.
//!
//! The oracles: TensorFlow's own int8 model of each float model (its parameters and its
//! file size, committed), and LiteRT (the test oracle venv), which runs the float model,
//! TensorFlow's int8 model and qdbg's int8 model on the same data for output SQNR.

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::exec::Executor;
use qdbg::graph::{DType, Graph, Op};
use qdbg::quant::plan::plan_activations;
use qdbg::quant::quantize::{quantize_graph, QuantizeOptions};
use qdbg::quant::{calibrate, Calibration};

fn conformance(name: &str) -> PathBuf {
    common::fixture(&format!("conformance/{name}"))
}

fn calibrated(model: &Path, inputs: &Path) -> (Graph, Calibration) {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let data = load_dataset(
        inputs,
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    (graph, cal)
}

/// qdbg's full-int8 model of `model` (float I/O, as TensorFlow's), as file bytes.
fn qdbg_int8(model: &Path, inputs: &Path) -> (Graph, Vec<u8>) {
    let (graph, cal) = calibrated(model, inputs);
    let plan = plan_activations(&graph, &cal);
    let q = quantize_graph(&graph, &plan, &QuantizeOptions::default()).unwrap();
    let original = std::fs::read(model).unwrap();
    let bytes = qdbg::tflite::model_bytes(&q.graph, Some(&original)).unwrap();
    (q.graph, bytes)
}

/// Every int8 activation TensorFlow's model names, compared with the tensor of the same
/// name in qdbg's: (compared, mismatches).
fn compare_params(ours: &Graph, tf: &Graph) -> (usize, Vec<String>) {
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for t in &tf.tensors {
        let Some(tq) = &t.quant else { continue };
        if t.dtype != DType::I8 || t.is_constant() || tq.is_per_channel() {
            continue;
        }
        let Some(id) = ours.tensor_by_name(&t.name) else {
            continue;
        };
        let Some(oq) = &ours.tensor(id).quant else {
            mismatches.push(format!("{}: TF int8, qdbg float", t.name));
            continue;
        };
        compared += 1;
        let rel = ((oq.scale[0] - tq.scale[0]) / tq.scale[0]).abs();
        if rel > 1e-6 || oq.zero_point[0] != tq.zero_point[0] {
            mismatches.push(format!(
                "{}: qdbg scale {} zp {} vs TF scale {} zp {}",
                t.name, oq.scale[0], oq.zero_point[0], tq.scale[0], tq.zero_point[0]
            ));
        }
    }
    (compared, mismatches)
}

/// int8 -> int8 QUANTIZE ops: the requantizes a quantizer inserted.
fn requantizes(g: &Graph) -> usize {
    g.nodes
        .iter()
        .filter(|n| {
            n.op == Op::Quantize
                && n.input(0)
                    .is_some_and(|i| matches!(g.tensor(i).dtype, DType::I8 | DType::I16))
        })
        .count()
}

/// Per model output, SQNR in dB of `model`'s outputs against the float model's, both run
/// by LiteRT on `inputs`.
fn litert_output_sqnr(float: &Path, model: &Path, inputs: &Path, dir: &Path) -> Vec<f64> {
    let outputs = |p: &Path| {
        let g = qdbg::tflite::read_model(p).unwrap();
        let sub = dir.join(format!("dump-{}", p.file_name().unwrap().to_string_lossy()));
        std::fs::create_dir_all(&sub).unwrap();
        let dump = common::litert_dump(p, inputs, &sub);
        g.outputs
            .iter()
            .map(|o| dump.iter().find(|(i, _)| i == o).unwrap().1.clone())
            .collect::<Vec<_>>()
    };
    let (reference, got) = (outputs(float), outputs(model));
    reference
        .iter()
        .zip(&got)
        .map(|(r, g)| {
            let signal: f64 = r.iter().map(|v| v * v).sum();
            let noise: f64 = r.iter().zip(g.iter()).map(|(a, b)| (a - b).powi(2)).sum();
            if noise == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (signal / noise).log10()
            }
        })
        .collect()
}

fn check_model(name: &str) {
    let float = conformance(&format!("{name}.tflite"));
    let inputs = conformance(&format!("{name}.inputs.npz"));
    let tf_path = conformance(&format!("{name}.tf_int8.tflite"));
    let tf = qdbg::tflite::read_model(&tf_path).unwrap();
    let (ours, bytes) = qdbg_int8(&float, &inputs);

    let (compared, mismatches) = compare_params(&ours, &tf);
    assert!(
        mismatches.is_empty(),
        "{name}: {} of {compared} activations differ from TensorFlow's:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(compared >= 5, "{name}: only {compared} tensors compared");
    assert_eq!(
        requantizes(&ours),
        requantizes(&tf),
        "{name}: requantize count differs from TensorFlow's"
    );

    let tf_size = std::fs::metadata(&tf_path).unwrap().len() as f64;
    assert!(
        bytes.len() as f64 <= 1.02 * tf_size,
        "{name}: qdbg's int8 file is {} bytes, TensorFlow's {tf_size}",
        bytes.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let ours_path = dir.path().join(format!("{name}.qdbg_int8.tflite"));
    std::fs::write(&ours_path, &bytes).unwrap();
    let tf_sqnr = litert_output_sqnr(&float, &tf_path, &inputs, dir.path());
    let our_sqnr = litert_output_sqnr(&float, &ours_path, &inputs, dir.path());
    eprintln!("{name}: output SQNR qdbg {our_sqnr:?} dB, TensorFlow {tf_sqnr:?} dB");
    for (k, (o, t)) in our_sqnr.iter().zip(&tf_sqnr).enumerate() {
        assert!(
            *o >= t - 0.5,
            "{name} output {k}: qdbg's int8 model {o:.2} dB, TensorFlow's {t:.2} dB"
        );
    }
}

#[test]
fn detection_heads_match_tensorflow() {
    check_model("detect_heads");
}

#[test]
fn near_zero_branches_match_tensorflow() {
    check_model("near_zero");
}

#[test]
fn same_scale_chains_match_tensorflow() {
    check_model("same_scale_chains");
}

/// float16 weights: qdbg's int8 model of the float16 file is no bigger than TensorFlow's
/// int8 model of the float32 file: no float weights left behind.
#[test]
fn float16_source_gives_an_int8_model_as_small_as_tensorflows() {
    let inputs = conformance("detect_heads.inputs.npz");
    let (from_f16, bytes) = qdbg_int8(&conformance("detect_heads.f16.tflite"), &inputs);
    let tf_path = conformance("detect_heads.tf_int8.tflite");
    let tf_size = std::fs::metadata(&tf_path).unwrap().len() as f64;
    assert!(
        bytes.len() as f64 <= 1.02 * tf_size,
        "qdbg's int8 file from float16 weights is {} bytes, TensorFlow's int8 {tf_size}",
        bytes.len()
    );
    let written = qdbg::tflite::read_model_bytes(&bytes, Path::new("f16_int8")).unwrap();
    assert!(
        !written
            .tensors
            .iter()
            .any(|t| t.is_constant() && t.dtype.is_float() && t.num_elements() > 16),
        "a float weight was left in the int8 file"
    );
    let _ = from_f16;
}

/// A float island of a selective model keeps its weights as the source stored them:
/// float16 behind a DEQUANTIZE (as TensorFlow's converter writes them), not widened to
/// float32; LiteRT runs the file and its outputs are as close to float as qdbg's own run.
#[test]
fn float_islands_keep_float16_weights() {
    let model = conformance("detect_heads.f16.tflite");
    let inputs = conformance("detect_heads.inputs.npz");
    let (graph, cal) = calibrated(&model, &inputs);
    let plan = plan_activations(&graph, &cal);
    let first_conv = graph
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::Conv2d(_)))
        .unwrap();
    let options = QuantizeOptions {
        keep_float: [first_conv].into_iter().collect(),
        ..QuantizeOptions::default()
    };
    let selective = quantize_graph(&graph, &plan, &options).unwrap();
    let original = std::fs::read(&model).unwrap();
    let bytes = qdbg::tflite::model_bytes(&selective.graph, Some(&original)).unwrap();

    let written = qdbg::tflite::read_model_bytes(&bytes, Path::new("selective")).unwrap();
    let float16: Vec<&qdbg::graph::Tensor> = written
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::F16)
        .collect();
    // The denied convolution's weights and bias, and nothing else.
    assert_eq!(float16.len(), 2, "{:?}", written.folded);
    assert_eq!(written.folded.len(), 2);
    // (The reader widens the float16 weights again: those are its folded outputs.)
    let widened: Vec<usize> = written.folded.iter().map(|f| f.output).collect();
    assert!(
        !written
            .tensors
            .iter()
            .enumerate()
            .any(|(i, t)| t.is_constant()
                && t.dtype == DType::F32
                && t.num_elements() > 16
                && !widened.contains(&i)),
        "a float32 copy of a weight was written"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("selective.tflite");
    std::fs::write(&path, &bytes).unwrap();
    let full = qdbg_int8(&model, &inputs).1;
    let full_path = dir.path().join("full.tflite");
    std::fs::write(&full_path, &full).unwrap();
    assert!(
        bytes.len() < full.len() + 1024,
        "selective {} vs full {}",
        bytes.len(),
        full.len()
    );
    let sel = litert_output_sqnr(&model, &path, &inputs, dir.path());
    let int8 = litert_output_sqnr(&model, &full_path, &inputs, dir.path());
    eprintln!("selective (first conv float16) {sel:?} dB, full int8 {int8:?} dB");
    for (s, f) in sel.iter().zip(&int8) {
        assert!(*s >= f - 0.5, "selective {s:.2} dB vs full int8 {f:.2} dB");
    }
}
