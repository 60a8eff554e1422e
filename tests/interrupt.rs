//! Ctrl-C / SIGTERM during `qdbg debug`: a real process, signalled once progress shows.
//! The statistics of the samples done are kept and written, the exit code says which
//! signal stopped the run, and the partial numbers equal those of a full run on just the
//! samples that were covered.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use ndarray::{s, Array4};

struct Stopped {
    code: Option<i32>,
    stderr: String,
}

/// Runs `qdbg debug` on the demo model and data in `dir`, sends `signal` as soon as the
/// first progress line appears, and waits for the process to finish.
fn debug_and_signal(dir: &Path, extra: &[&str], signal: i32) -> Stopped {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .arg("debug")
        .arg(dir.join("model.tflite"))
        .arg("--data")
        .arg(dir.join("debug.npy"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running qdbg");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let mut signalled = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        // Logs get one progress line per tenth of the samples.
        if !signalled && line.starts_with("debugging: ") {
            // SAFETY: kill only sends a signal to the child we spawned.
            assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
            signalled = true;
        }
    }
    assert!(signalled, "no progress line seen:\n{stderr}");
    let status = child.wait().unwrap();
    Stopped {
        code: status.code(),
        stderr,
    }
}

fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.tflite", "debug.npy"] {
        std::fs::copy(common::repo().join("demo").join(f), dir.path().join(f)).unwrap();
    }
    dir
}

/// N from "... cover N of 100 samples".
fn covered(stderr: &str) -> usize {
    let at = stderr
        .find(" cover ")
        .expect("a note on the samples covered")
        + " cover ".len();
    let rest = &stderr[at..];
    let n: usize = rest[..rest.find(' ').unwrap()].parse().unwrap();
    assert!(rest.contains("of 100 samples"), "{stderr}");
    n
}

/// The demo's layers as TensorFlow's debugger lists them (demo/expected.json).
fn tensorflow_layer_names() -> Vec<String> {
    let text = std::fs::read_to_string(common::repo().join("demo/expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["layer_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["tensor_name"].as_str().unwrap().to_string())
        .collect()
}

fn csv_rows(path: &Path) -> (String, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .collect::<Vec<_>>()
        .join(",");
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn first_samples_csv(dir: &Path, n: usize) -> String {
    use qdbg::data::{load_dataset, InputSpec};
    use qdbg::quant::calibration::{dataset_digest, sha256_hex};
    let model = dir.join("model.tflite");
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let specs = InputSpec::for_graph(&graph);
    let all = load_dataset(&dir.join("debug.npy"), &specs, &Default::default()).unwrap();
    let calibration = qdbg::quant::Calibration::load_matching(
        &qdbg::quant::Calibration::default_path(&model),
        &sha256_hex(&std::fs::read(&model).unwrap()),
        &dataset_digest(&all).unwrap(),
    )
    .expect("the interrupted run saved its calibration");

    let samples: Array4<f32> = ndarray_npy::read_npy(dir.join("debug.npy")).unwrap();
    let first = dir.join("first.npy");
    ndarray_npy::write_npy(&first, &samples.slice(s![..n, .., .., ..]).to_owned()).unwrap();
    let first = load_dataset(&first, &specs, &Default::default()).unwrap();

    let plan = qdbg::quant::plan::plan_activations(&graph, &calibration);
    let quantized =
        qdbg::quant::quantize::quantize_graph(&graph, &plan, &Default::default()).unwrap();
    let mode = qdbg::debug::VerifyMode::PerLayer;
    let report = qdbg::debug::Debugger::new(&graph, &quantized, &candle_core::Device::Cpu)
        .unwrap()
        .run(&first, None, mode, &Default::default(), &mut |_| {})
        .unwrap();
    assert_eq!(report.samples, n);
    let out = dir.join("first.csv");
    qdbg::debug::report::write_csv(&out, &report.layers, mode, &[]).unwrap();
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn ctrl_c_keeps_the_statistics_so_far() {
    let dir = demo_copy();
    let csv = dir.path().join("layers.csv");
    std::fs::write(&csv, "an older report\n").unwrap();
    let stopped = debug_and_signal(dir.path(), &["--csv", csv.to_str().unwrap()], libc::SIGINT);
    assert_eq!(stopped.code, Some(130), "{}", stopped.stderr);
    assert!(
        stopped
            .stderr
            .contains("note: interrupted by Ctrl-C (SIGINT)"),
        "{}",
        stopped.stderr
    );
    let n = covered(&stopped.stderr);
    assert!((1..100).contains(&n), "{}", stopped.stderr);

    // TensorFlow's header and one row per layer TensorFlow's debugger lists.
    let (header, rows) = csv_rows(&csv);
    assert_eq!(
        header,
        "op_name,tensor_idx,num_elements,stddev,mean_error,max_abs_error,mean_squared_error,\
         range,rmse/scale,scale,zero_point,tensor_name"
    );
    let names: Vec<String> = rows.iter().map(|r| r[11].clone()).collect();
    assert_eq!(names, tensorflow_layer_names());

    // The partial statistics are those of the first n samples: the debugger run to the
    // end on exactly those samples, with the calibration the interrupted run used (the
    // one saved beside the model, from all 100 samples), writes the same CSV.
    let first_n = first_samples_csv(dir.path(), n);
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), first_n);
}

#[test]
fn sigterm_keeps_the_statistics_so_far_in_csv_and_json() {
    let dir = demo_copy();
    let csv = dir.path().join("layers.csv");
    let json = dir.path().join("layers.json");
    let stopped = debug_and_signal(
        dir.path(),
        &[
            "--csv",
            csv.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
        libc::SIGTERM,
    );
    assert_eq!(stopped.code, Some(143), "{}", stopped.stderr);
    assert!(stopped.stderr.contains("SIGTERM"), "{}", stopped.stderr);
    let n = covered(&stopped.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["samples"].as_u64(), Some(n as u64));
    let (_, rows) = csv_rows(&csv);
    assert_eq!(rows.len(), tensorflow_layer_names().len());
}
