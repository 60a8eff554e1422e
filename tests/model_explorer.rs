//! `qdbg debug --model-explorer`: per-layer statistics as Google Model Explorer node data.
//!
//! Two oracles, both Model Explorer's own code: how its TFLite adapter names each op's node
//! (`tests/fixtures/model_explorer/*.nodes.json`, made by the pinned adapter with
//! `scripts/make_model_explorer_refs.sh`), and its Python `node_data_builder`, which must
//! rebuild the file field for field (`tests/oracle/model_explorer_node_data.py`). The
//! values are the CSV's, written by the same run.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn qdbg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("running qdbg")
}

/// The op nodes Model Explorer's adapter made for a model: node id -> (label, outputs).
fn adapter_nodes(reference: &str) -> HashMap<String, (String, Vec<String>)> {
    let path = common::repo()
        .join("tests/fixtures/model_explorer")
        .join(reference);
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let graphs = doc["graphs"].as_array().unwrap();
    assert_eq!(graphs.len(), 1, "{reference}: one subgraph");
    graphs[0]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            let outputs = op["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect();
            (
                op["id"].as_str().unwrap().to_string(),
                (op["label"].as_str().unwrap().to_string(), outputs),
            )
        })
        .collect()
}

/// Runs `qdbg debug` on a copy of `model` (the calibration it saves stays out of the tree)
/// and returns the node data and the CSV's rows.
fn debug_run(model: &str, data: &str, extra: &[&str]) -> (Value, Vec<HashMap<String, String>>) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(Path::new(model).file_name().unwrap());
    std::fs::copy(common::repo().join(model), &copy).unwrap();
    let csv = dir.path().join("layers.csv");
    let node_data = dir.path().join("node_data.json");
    let mut args = vec![
        "debug",
        copy.to_str().unwrap(),
        "--data",
        data,
        "--csv",
        csv.to_str().unwrap(),
        "--model-explorer",
        node_data.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = qdbg(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&node_data).unwrap()).unwrap();
    check_with_node_data_builder(&node_data, &doc);
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    let header = reader.headers().unwrap().clone();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    (doc, rows)
}

/// Model Explorer's `node_data_builder` takes every field and writes the same document.
fn check_with_node_data_builder(path: &PathBuf, doc: &Value) {
    let out = Command::new(common::oracle_python())
        .arg(common::repo().join("tests/oracle/model_explorer_node_data.py"))
        .arg(path)
        .output()
        .expect("running the node_data_builder oracle");
    assert!(
        out.status.success(),
        "node_data_builder refused the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(&rebuilt, doc, "node_data_builder writes another document");
}

/// Every CSV row's value lands on the node Model Explorer draws for the op that
/// produced the row's tensor (the worst row for an op with several), and nothing else.
fn check_against_adapter(
    doc: &Value,
    rows: &[HashMap<String, String>],
    reference: &str,
    metric: &str,
) {
    let nodes = adapter_nodes(reference);
    let results = doc["results"].as_object().unwrap();
    let mut want: HashMap<&str, f64> = HashMap::new();
    for row in rows {
        let tensor = &row["tensor_name"];
        let (id, (label, _)) = nodes
            .iter()
            .find(|(_, (_, outputs))| outputs.contains(tensor))
            .unwrap_or_else(|| panic!("{reference}: no node outputs '{tensor}'"));
        assert_eq!(
            label,
            &row["op_name"].to_lowercase(),
            "{reference}: node {id} for '{tensor}'"
        );
        let value: f64 = row[metric].parse().unwrap();
        let slot = want.entry(id.as_str()).or_insert(value);
        *slot = slot.max(value);
    }
    assert_eq!(
        results.len(),
        want.len(),
        "{reference}: one result per layer's node"
    );
    for (id, value) in want {
        let got = results
            .get(id)
            .unwrap_or_else(|| panic!("{reference}: node {id} has no value"))["value"]
            .as_f64()
            .unwrap();
        // The CSV prints with fewer digits than JSON.
        assert!(
            (got - value).abs() <= 1e-6 * value.abs().max(1.0),
            "{reference}: node {id}: {got} vs the CSV's {value}"
        );
    }
}

#[test]
fn demo_layers_land_on_model_explorer_nodes() {
    let (doc, rows) = debug_run("demo/model.tflite", "demo/debug.npy", &[]);
    assert!(!rows.is_empty());
    assert_eq!(doc["name"], "qdbg rmse/scale");
    // rmse/scale is coloured in fixed bands, ending at the largest value.
    let thresholds = doc["thresholds"].as_array().unwrap();
    assert_eq!(thresholds[0]["value"], 0.35);
    assert_eq!(thresholds[1]["value"], 0.7);
    check_against_adapter(&doc, &rows, "model.nodes.json", "rmse/scale");
}

/// hand_landmark_lite keeps float16 weights: the reader folds its DEQUANTIZE ops away, so
/// the ops' positions in qdbg's graph are not the file's operator indices the viewer uses.
#[test]
fn a_float16_model_keeps_the_files_node_ids() {
    let (doc, rows) = debug_run(
        "tests/fixtures/corpus/hand_landmark_lite.tflite",
        "tests/fixtures/corpus/hand_landmark_lite.inputs.npz",
        &["--model-explorer-metric", "rmse/scale"],
    );
    check_against_adapter(&doc, &rows, "hand_landmark_lite.nodes.json", "rmse/scale");
}

#[test]
fn another_metric_gets_a_gradient_oriented_by_what_is_better() {
    let (doc, rows) = debug_run(
        "demo/model.tflite",
        "demo/debug.npy",
        &["--model-explorer-metric", "sqnr_db", "--metrics", "sqnr_db"],
    );
    assert_eq!(doc["name"], "qdbg sqnr_db");
    let gradient = doc["gradient"].as_array().unwrap();
    // Low SQNR is bad: stop 0 (the smallest value) is red.
    assert_eq!(gradient[0]["bgColor"], "#f44336");
    assert_eq!(gradient[2]["bgColor"], "#4caf50");
    // The CSV's per-layer SQNR is the oracle for the values; infinite ones (exact layers)
    // cannot be JSON and are left out, as a row without value.
    let finite: Vec<_> = rows
        .into_iter()
        .filter(|r| r["sqnr_db"].parse::<f64>().is_ok_and(f64::is_finite))
        .collect();
    let results = doc["results"].as_object().unwrap();
    assert!(!finite.is_empty() && results.len() <= finite.len());
}

#[test]
fn an_unknown_metric_is_a_usage_error() {
    let out = qdbg(&[
        "debug",
        "demo/model.tflite",
        "--data",
        "demo/debug.npy",
        "--model-explorer",
        "/nonexistent/never-written.json",
        "--model-explorer-metric",
        "loss",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--model-explorer-metric") && err.contains("rmse/scale"),
        "{err}"
    );
}
