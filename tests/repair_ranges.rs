//! Issue 18's integer-only remedy through the rule language: `range:TENSOR=METHOD` quantizes
//! one tensor with a range found on its calibration histogram. On `repair_outliers` (image
//! samples in [-1, 1] with 8 of 307,200 pixels at +-40, which the model's first op clips to
//! [-1, 1] anyway), the written model keeps every op int8 and LiteRT's outputs of it are as
//! close to the float model's as keeping the clip float makes them, far closer than the
//! min/max model's. Every number asserted is computed here from LiteRT's outputs, or by hand.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::ArrayD;

const FIXTURE: &str = "repair_outliers";

fn qdbg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("running qdbg")
}

fn fixture_paths() -> (PathBuf, PathBuf) {
    (
        common::fixture(&format!("{FIXTURE}.tflite")),
        common::fixture(&format!("{FIXTURE}.inputs.npz")),
    )
}

/// The model's only output as LiteRT computes it, real-valued.
fn litert_output(model: &Path, inputs: &Path, dir: &Path) -> ArrayD<f64> {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let id = graph.outputs[0];
    let tensor = graph.tensor(id);
    let dump = common::litert_dump(model, inputs, dir);
    let (_, values) = dump.into_iter().find(|(i, _)| *i == id).unwrap();
    match (&tensor.quant, tensor.dtype.is_float()) {
        (Some(q), false) => {
            let (scale, zp) = (f64::from(q.scale[0]), q.zero_point[0] as f64);
            values.mapv(|v| (v - zp) * scale)
        }
        _ => values,
    }
}

fn sqnr_db(float: &ArrayD<f64>, other: &ArrayD<f64>) -> f64 {
    let signal: f64 = float.iter().map(|f| f * f).sum();
    let noise: f64 = float
        .iter()
        .zip(other)
        .map(|(f, q)| (q - f) * (q - f))
        .sum();
    10.0 * (signal / noise).log10()
}

/// Writes the model `rules` select (with a fresh calibration) and returns it.
fn select(rules: &[&str], out: &Path) -> Output {
    let (model, inputs) = fixture_paths();
    let mut args = vec![
        "select",
        model.to_str().unwrap(),
        "--data",
        inputs.to_str().unwrap(),
        "--recalibrate",
        "-o",
        out.to_str().unwrap(),
    ];
    for r in rules {
        args.extend(["--deny", r]);
    }
    qdbg(&args)
}

/// The ops of a written model, by type.
fn op_types(model: &Path) -> Vec<String> {
    let graph = qdbg::tflite::read_model(model).unwrap();
    graph
        .nodes
        .iter()
        .map(|n| n.op.display_name().to_string())
        .collect()
}

#[test]
fn a_percentile_range_on_the_input_fixes_the_model_and_keeps_it_integer() {
    let dir = tempfile::tempdir().unwrap();
    let (float_model, inputs) = fixture_paths();
    let float = litert_output(&float_model, &inputs, &dir.path().join("f"));

    let min_max = dir.path().join("min_max.tflite");
    let out = select(&[], &min_max);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ranged = dir.path().join("ranged.tflite");
    let out = select(&["range:image=percentile:99.99"], &ranged);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("'image' [-40.000000, 40.000000] -> [-1.000000, 1.000000]"),
        "the report names the tensor and both ranges:\n{stdout}"
    );
    let clip_float = dir.path().join("clip_float.tflite");
    let out = select(&["op:RELU_N1_TO_1"], &clip_float);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Still integer-only: the QUANTIZE of the float input, int8 ops, the DEQUANTIZE of the
    // output; the clip's float twin would add a float RELU_N1_TO_1.
    let ops = op_types(&ranged);
    assert_eq!(
        ops,
        [
            "QUANTIZE",
            "RELU_N1_TO_1",
            "CONV_2D",
            "CONV_2D",
            "MEAN",
            "FULLY_CONNECTED",
            "DEQUANTIZE"
        ]
    );
    let graph = qdbg::tflite::read_model(&ranged).unwrap();
    let quantized_input = graph.tensor(graph.nodes[0].outputs[0]);
    let q = quantized_input.quant.as_ref().unwrap();
    // By hand: every clean pixel lies in [-1, 1] and both ends occur (the images are clipped
    // there), the 8 outliers are far fewer than the 0.005% (15 values) the percentile cuts
    // from each tail: the range is [-1, 1], scale 2/255 (min/max: 80/255).
    assert!(
        (f64::from(q.scale[0]) - 2.0 / 255.0).abs() < 1e-7,
        "scale {}",
        q.scale[0]
    );

    let sqnr =
        |m: &Path, tag: &str| sqnr_db(&float, &litert_output(m, &inputs, &dir.path().join(tag)));
    let (min_max_db, ranged_db, clip_float_db) = (
        sqnr(&min_max, "a"),
        sqnr(&ranged, "b"),
        sqnr(&clip_float, "c"),
    );
    assert!(
        ranged_db > min_max_db + 10.0,
        "range {ranged_db:.2} dB vs min/max {min_max_db:.2} dB"
    );
    assert!(
        (ranged_db - clip_float_db).abs() < 1.0,
        "range {ranged_db:.2} dB vs clip float {clip_float_db:.2} dB"
    );
}

#[test]
fn a_range_rule_naming_no_tensor_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = select(
        &["range:imgae=percentile:99.99"],
        &dir.path().join("x.tflite"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'imgae'") && err.contains("qdbg inspect"),
        "{err}"
    );
    let out = select(
        &["range:image=percentile:120"],
        &dir.path().join("x.tflite"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("percentile:P"), "{err}");
    assert!(!dir.path().join("x.tflite").exists());
}

#[test]
fn qdbg_fix_finds_the_range_alone_and_stays_integer_only() {
    let dir = tempfile::tempdir().unwrap();
    let (float_model, inputs) = fixture_paths();
    let fixed = dir.path().join("fixed.tflite");
    let json = dir.path().join("fix.json");
    let out = qdbg(&[
        "fix",
        float_model.to_str().unwrap(),
        "--data",
        inputs.to_str().unwrap(),
        "--target",
        "sqnr_db >= 40",
        "--integer-only",
        "--holdout",
        "0",
        "-o",
        fixed.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let chosen = &report["candidates"][report["verdict"]["chosen"].as_u64().unwrap() as usize];
    assert_eq!(chosen["float_ops"], 0, "{chosen}");
    let remedies = chosen["remedies"].as_array().unwrap();
    assert!(
        remedies.iter().all(|r| r["kind"] == "range"),
        "integer-only remedies only: {remedies:?}"
    );
    // The promise holds in LiteRT: the written model's outputs against the float model's.
    let float = litert_output(&float_model, &inputs, &dir.path().join("f"));
    let got = sqnr_db(
        &float,
        &litert_output(&fixed, &inputs, &dir.path().join("q")),
    );
    assert!(got >= 40.0, "LiteRT sqnr {got:.2} dB");
    let ops = op_types(&fixed);
    assert_eq!(
        ops.iter()
            .filter(|op| *op == "QUANTIZE" || *op == "DEQUANTIZE")
            .count(),
        2,
        "only the borders convert: {ops:?}"
    );
}
