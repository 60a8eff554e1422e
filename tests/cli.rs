//! The `qdbg` binary as users drive it: output, files written, exit codes and messages.

mod common;

use std::process::{Command, Output};

use ndarray::Axis;
use ndarray_npy::NpzReader;

fn qdbg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("running qdbg")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn inspect_lists_the_ops_the_fixture_was_built_with() {
    let out = qdbg(&["inspect", "tests/fixtures/conv_ops.tflite", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // tests/fixtures/README.md: conv_ops is 3 CONV_2D, 2 DEPTHWISE_CONV_2D, 2 TRANSPOSE_CONV, 1 ADD.
    let count = |op: &str| {
        json["op_counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["op"] == op)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    assert_eq!(count("CONV_2D"), 3);
    assert_eq!(count("DEPTHWISE_CONV_2D"), 2);
    assert_eq!(count("TRANSPOSE_CONV"), 2);
    assert_eq!(count("ADD"), 1);
    assert_eq!(json["inputs"][0]["name"], "image");
    assert_eq!(
        json["inputs"][0]["shape"],
        serde_json::json!([1, 10, 10, 3])
    );

    let table = qdbg(&["inspect", "tests/fixtures/conv_ops.tflite"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("DEPTHWISE_CONV_2D") && text.contains("[1,10,10,3] float32"));
}

#[test]
fn inspect_reports_folded_float16_weights() {
    let out = qdbg(&["inspect", "tests/fixtures/f16_weights.tflite"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The fixture script asserts 6 DEQUANTIZE ops on FLOAT16 constants.
    assert!(text.contains("folded at load time: 6 DEQUANTIZE"), "{text}");
    assert!(!text.contains("  DEQUANTIZE "), "{text}");
}

/// `qdbg run` writes each model output, [samples, ...], equal to LiteRT's outputs.
#[test]
fn run_writes_outputs_that_match_litert() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.npz");
    let model = common::fixture("multi_io.tflite");
    let inputs = common::fixture("multi_io.inputs.npz");
    let out = qdbg(&[
        "run",
        model.to_str().unwrap(),
        "--data",
        inputs.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let graph = qdbg::tflite::read_model(&model).unwrap();
    let oracle = common::litert_dump(&model, &inputs, dir.path());
    let mut npz = NpzReader::new(std::fs::File::open(&out_path).unwrap()).unwrap();
    for &id in &graph.outputs {
        let name = &graph.tensor(id).name;
        let ours = common::read_any(&mut npz, &format!("{name}.npy"));
        let (_, want) = oracle
            .iter()
            .find(|(i, _)| *i == id)
            .expect("oracle output");
        assert_eq!(ours.len_of(Axis(0)), 3, "{name}: one row per sample");
        // LiteRT keeps the batch dim; ours drops it: compare element by element.
        assert_eq!(ours.len(), want.len(), "{name}");
        for (a, b) in ours.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-4, "{name}: {a} vs {b}");
        }
    }
}

/// `qdbg quantize`: writes the model, saves the calibration beside the model, reuses it on
/// the next run and recomputes it with --recalibrate.
#[test]
fn quantize_calibrates_once_and_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("conv_ops.tflite");
    std::fs::copy(common::fixture("conv_ops.tflite"), &model).unwrap();
    let data = common::fixture("conv_ops.inputs.npz");
    let out = dir.path().join("conv_ops_int8.tflite");
    let args = [
        "quantize",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let first = qdbg(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(text.contains("saved to"), "{text}");
    assert!(dir
        .path()
        .join("conv_ops.tflite.qdbg-calibration.json")
        .exists());
    assert!(out.exists());
    let second = qdbg(&args);
    assert!(String::from_utf8_lossy(&second.stdout).contains("calibration: reused"));
    let mut again = args.to_vec();
    again.push("--recalibrate");
    let third = qdbg(&again);
    assert!(String::from_utf8_lossy(&third.stdout).contains("saved to"));

    // The written model is int8 inside, float at the edges.
    let graph = qdbg::tflite::read_model(&out).unwrap();
    assert_eq!(graph.tensor(graph.inputs[0]).dtype, qdbg::graph::DType::F32);
    assert!(graph
        .nodes
        .iter()
        .any(|n| n.op.name() == "CONV_2D"
            && graph.tensor(n.outputs[0]).dtype == qdbg::graph::DType::I8));
}

/// The saved calibration is keyed on the samples as the model receives them: the same
/// image folder with another `--mean` is other data (the ranges differ) and recalibrates;
/// the same options reuse it.
#[test]
fn another_normalisation_is_another_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("conv_ops.tflite");
    std::fs::copy(common::fixture("conv_ops.tflite"), &model).unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for k in 0..2u8 {
        let img = image::RgbImage::from_fn(10, 10, |x, y| {
            image::Rgb([x as u8 * 20 + k, y as u8 * 20, 100 + k * 50])
        });
        img.save(images.join(format!("{k}.png"))).unwrap();
    }
    let out = dir.path().join("int8.tflite");
    let run = |mean: &str| {
        let o = qdbg(&[
            "quantize",
            model.to_str().unwrap(),
            "--data",
            images.to_str().unwrap(),
            "--mean",
            mean,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(run("0").contains("saved to"));
    assert!(run("0").contains("calibration: reused"));
    let other = run("0.5");
    assert!(other.contains("saved to"), "{other}");
}

#[test]
fn quantize_int8_io_makes_integer_inputs_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.tflite");
    let model = dir.path().join("multi_io.tflite");
    std::fs::copy(common::fixture("multi_io.tflite"), &model).unwrap();
    let o = qdbg(&[
        "quantize",
        model.to_str().unwrap(),
        "--data",
        "tests/fixtures/multi_io.inputs.npz",
        "--int8-io",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let graph = qdbg::tflite::read_model(&out).unwrap();
    for &id in graph.inputs.iter().chain(&graph.outputs) {
        assert_eq!(
            graph.tensor(id).dtype,
            qdbg::graph::DType::I8,
            "{}",
            graph.tensor(id).name
        );
    }
    assert!(!graph
        .nodes
        .iter()
        .any(|n| n.op.name() == "QUANTIZE" || n.op.name() == "DEQUANTIZE"));
}

/// `qdbg debug --csv`: TensorFlow's columns in TensorFlow's order (extra metrics between
/// the five defaults and `scale, zero_point, tensor_name`), one row per int8 layer, the
/// same rows as TensorFlow's debugger (tests/fixtures/dense_ops.tf_debug.csv).
/// `qdbg debug` on a copy of the dense_ops fixture with `--csv` and `extra` arguments: the
/// output, the CSV's path, and the folder holding both (kept while it lives).
fn debug_dense_ops(extra: &[&str]) -> (Output, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("dense_ops.tflite");
    std::fs::copy(common::fixture("dense_ops.tflite"), &model).unwrap();
    let csv_path = dir.path().join("layers.csv");
    let data = common::fixture("dense_ops.inputs.npz");
    let mut args = vec![
        "debug",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--csv",
        csv_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (qdbg(&args), csv_path, dir)
}

#[test]
fn debug_writes_tensorflow_compatible_csv() {
    let (o, csv_path, _dir) = debug_dense_ops(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("rmse/scale"));
    let mut ours = csv::Reader::from_path(&csv_path).unwrap();
    let mut tf = csv::Reader::from_path(common::fixture("dense_ops.tf_debug.csv")).unwrap();
    let (oh, th) = (
        ours.headers().unwrap().clone(),
        tf.headers().unwrap().clone(),
    );
    let ours_cols: Vec<&str> = oh.iter().collect();
    let tf_cols: Vec<&str> = th.iter().collect();
    assert_eq!(&ours_cols[..7], &tf_cols[..7]);
    assert_eq!(
        &ours_cols[ours_cols.len() - 3..],
        &tf_cols[tf_cols.len() - 3..]
    );
    let names = |r: &mut csv::Reader<std::fs::File>, col: usize| -> Vec<String> {
        r.records().map(|x| x.unwrap()[col].to_string()).collect()
    };
    assert_eq!(
        names(&mut ours, ours_cols.len() - 1),
        names(&mut tf, tf_cols.len() - 1)
    );
}

/// `qdbg debug --metrics ...`: the extra metrics asked for are measured (the CSV alone
/// leaves their sums out, as NaN): a number on every row, mean_abs_error within the
/// per-sample maxima TensorFlow's max_abs_error averages, saturation a fraction.
#[test]
fn debug_measures_the_extra_metrics_it_is_asked_for() {
    let (o, csv_path, _dir) = debug_dense_ops(&["--metrics", "sqnr_db,mean_abs_error,saturation"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (sqnr, mae, sat, max_abs) = (
        col("sqnr_db"),
        col("mean_abs_error"),
        col("saturation"),
        col("max_abs_error"),
    );
    let mut rows = 0;
    for record in reader.records() {
        let r = record.unwrap();
        let v = |c: usize| r[c].parse::<f64>().unwrap();
        // +inf where a layer is exact; NaN only where it was not measured.
        assert!(!v(sqnr).is_nan(), "sqnr_db {}", &r[sqnr]);
        assert!(v(mae) >= 0.0 && v(mae) <= v(max_abs), "{r:?}");
        assert!((0.0..=1.0).contains(&v(sat)), "{r:?}");
        rows += 1;
    }
    assert!(rows > 0);
}

/// `qdbg debug FLOAT --int8 TF_INT8 --int8-arithmetic xnnpack --csv`: TensorFlow's own int8
/// MobileNetV3, debugged with the arithmetic TensorFlow's debugger runs. Every row's
/// mean_squared_error in the written CSV within 5% (or 1e-9) of the CSV TensorFlow printed
/// (tests/fixtures/mobilenet_v3_small.tf_debug.csv), and the same rows in the same order.
#[test]
fn debug_with_xnnpack_arithmetic_prints_tensorflows_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("layers.csv");
    let o = qdbg(&[
        "debug",
        common::fixture("mobilenet_v3_small.tflite")
            .to_str()
            .unwrap(),
        "--int8",
        common::fixture("mobilenet_v3_small.int8.tflite")
            .to_str()
            .unwrap(),
        "--data",
        common::fixture("mobilenet_v3_small.inputs.npz")
            .to_str()
            .unwrap(),
        "--int8-arithmetic",
        "xnnpack",
        "--csv",
        csv_path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = |path: &std::path::Path| -> Vec<(String, String, f64)> {
        let mut r = csv::Reader::from_path(path).unwrap();
        let cols: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
        let at = |name: &str| cols.iter().position(|c| c == name).unwrap();
        let (op, mse, name) = (at("op_name"), at("mean_squared_error"), at("tensor_name"));
        r.records()
            .map(|x| {
                let x = x.unwrap();
                (
                    x[op].to_string(),
                    x[name].to_string(),
                    x[mse].parse().unwrap(),
                )
            })
            .collect()
    };
    let ours = rows(&csv_path);
    let tf = rows(&common::fixture("mobilenet_v3_small.tf_debug.csv"));
    assert_eq!(ours.len(), tf.len());
    for ((op, name, m), (top, tname, t)) in ours.iter().zip(&tf) {
        assert_eq!((op, name), (top, tname));
        assert!(
            (m - t).abs() <= 0.05 * t.abs() || (m - t).abs() <= 1e-9,
            "{op} {name}: qdbg {m:e}, TensorFlow {t:e}"
        );
    }
}

/// The main job: `qdbg` with no arguments debugs the bundled demo. Its float top-1 on the
/// debug set must equal the one LiteRT measured when the demo was made
/// (demo/expected.json, 98/100), and full int8 must lose at least 3 points, the demo's
/// reason to exist.
#[test]
fn main_job_debugs_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.tflite", "debug.npy", "labels.txt"] {
        std::fs::copy(common::repo().join("demo").join(f), dir.path().join(f)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .env("QDBG_DEMO_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("demo/expected.json")).unwrap(),
    )
    .unwrap();
    let float_top1 = expected["debug_set"]["float"]["top1"].as_f64().unwrap();
    let accuracy = text
        .lines()
        .find(|l| l.starts_with("accuracy:"))
        .unwrap_or_else(|| panic!("no accuracy line in:\n{text}"));
    let pick = |label: &str| -> f64 {
        let at = accuracy
            .find(label)
            .unwrap_or_else(|| panic!("no '{label}' in {accuracy}"));
        let rest = &accuracy[at + label.len()..];
        rest.trim_start()
            .split('%')
            .next()
            .unwrap()
            .trim()
            .parse::<f64>()
            .unwrap()
            / 100.0
    };
    let (ours_float, ours_int8) = (pick("float top-1"), pick("int8 top-1"));
    assert!(
        (ours_float - float_top1).abs() < 1e-9,
        "float top-1 {ours_float} vs LiteRT's {float_top1}"
    );
    assert!(
        ours_float - ours_int8 >= 0.03,
        "int8 top-1 {ours_int8} is not 3 points below float {ours_float}"
    );
    assert!(text.contains("rmse/scale"));
}

/// The tutorial's workflow on the demo: `rmse/scale > 0.7` finds the stem convolution (the
/// layer the demo was built to break, named in demo/expected.json), and keeping the picked
/// layers float brings top-1 back within 1 point of float; the denylist file round-trips.
#[test]
fn select_restores_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.tflite", "debug.npy", "labels.txt"] {
        std::fs::copy(common::repo().join("demo").join(f), dir.path().join(f)).unwrap();
    }
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let o = qdbg(&[
        "select",
        &p("model.tflite"),
        "--data",
        &p("debug.npy"),
        "--labels",
        &p("labels.txt"),
        "--deny",
        "rmse/scale > 0.7",
        "--save-denylist",
        &p("deny.txt"),
        "-o",
        &p("selective.tflite"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("demo/expected.json")).unwrap(),
    )
    .unwrap();
    let stem = expected["stem_tensor"].as_str().unwrap();
    assert!(text.contains(stem), "the stem is not kept float:\n{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("top-1 accuracy"))
        .expect("accuracy row");
    let cells: Vec<f64> = row
        .split_whitespace()
        .filter_map(|c| c.strip_suffix('%'))
        .map(|c| c.parse().unwrap())
        .collect();
    let (float, full, selective) = (cells[0], cells[1], cells[2]);
    assert!(float - full >= 3.0, "{row}");
    assert!(float - selective <= 1.0, "{row}");
    assert!(std::fs::read_to_string(dir.path().join("deny.txt"))
        .unwrap()
        .contains("rmse/scale > 0.7"));
    // The written selective model loads and runs.
    let graph = qdbg::tflite::read_model(&dir.path().join("selective.tflite")).unwrap();
    assert!(graph
        .nodes
        .iter()
        .any(|n| n.op.name() == "CONV_2D"
            && graph.tensor(n.outputs[0]).dtype == qdbg::graph::DType::F32));
    // Refused denylists (names that match nothing, everything float): tests/bad_inputs.rs.
}

/// `qdbg eval` on the demo's float model: top-1 on the debug set equals what LiteRT measured
/// when the demo was made (demo/expected.json).
#[test]
fn eval_reports_accuracy_like_litert() {
    let o = qdbg(&[
        "eval",
        "demo/model.tflite",
        "demo/model.tflite",
        "--data",
        "demo/debug.npy",
        "--labels",
        "demo/labels.txt",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("demo/expected.json")).unwrap(),
    )
    .unwrap();
    let want = 100.0 * expected["debug_set"]["float"]["top1"].as_f64().unwrap();
    let row = text
        .lines()
        .find(|l| l.contains('%') && l.ends_with("demo/model.tflite"))
        .unwrap();
    let top1: f64 = row
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!((top1 - want).abs() < 1e-9, "{row} vs {want}");
    assert!(row.contains("100.0%"), "a model agrees with itself: {row}");
    assert_eq!(
        qdbg(&["eval", "demo/model.tflite", "--data", "demo/no_such.npy"])
            .status
            .code(),
        Some(2)
    );
}

/// `--threads` sizes the pool samples run on; the CSV is the same byte for byte whatever
/// the number, and 0 threads is a usage error.
#[test]
fn debug_csv_is_the_same_on_any_number_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model.tflite");
    std::fs::copy(common::repo().join("demo/model.tflite"), &model).unwrap();
    let csv = |threads: &str| {
        let path = tmp.path().join(format!("layers-{threads}.csv"));
        let out = qdbg(&[
            "debug",
            model.to_str().unwrap(),
            "--data",
            "demo/debug.npy",
            "--csv",
            path.to_str().unwrap(),
            "--threads",
            threads,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(path).unwrap()
    };
    assert_eq!(csv("1"), csv("3"));
    let out = qdbg(&[
        "debug",
        model.to_str().unwrap(),
        "--data",
        "demo/debug.npy",
        "--threads",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
