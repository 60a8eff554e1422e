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

use common::tf_quantizer::{calibrated, compare_params, qdbg_int8, requantizes, sqnr_db};
use qdbg::graph::{DType, Op};
use qdbg::quant::plan::plan_activations;
use qdbg::quant::quantize::{quantize_graph, QuantizeOptions};

fn conformance(name: &str) -> PathBuf {
    common::fixture(&format!("conformance/{name}"))
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
            let (r, g): (Vec<f64>, Vec<f64>) =
                (r.iter().copied().collect(), g.iter().copied().collect());
            sqnr_db(&r, &g)
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
    let (graph, _, cal) = calibrated(&model, &inputs);
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
