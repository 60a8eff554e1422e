//! The real-world corpus: the float .tflite models MediaPipe publishes (tests/fixtures/corpus,
//! made by scripts/make_corpus.sh from the pinned PyPI wheel), each checked against its
//! oracles, the conformance table of issue 16:
//!
//! (a) qdbg runs the float model as LiteRT does: every output within 1e-4 of its range;
//! (b) qdbg quantizes it (calibration on NAME.inputs.npz) and LiteRT runs qdbg's and
//!     TensorFlow's int8 models (NAME.tf_int8.tflite): each output's SQNR against the float
//!     model's is at least TensorFlow's - 0.5 dB;
//! (c) qdbg's int8 file is at most 1.02 x TensorFlow's;
//! (d) qdbg's per-layer debugger (XNNPACK arithmetic, as TensorFlow's debugger runs) agrees
//!     with TensorFlow's `layer_statistics_dump` (NAME.tf_debug.csv): at least 95% of
//!     TensorFlow's rows have a qdbg row of the same tensor name whose mean squared error is
//!     within 5% (or both are below 1e-9).
//!
//! Models where TensorFlow itself fails (manifest.json says why) are checked on (a) only,
//! and their int8 SQNR is printed. What does not hold today is listed in `KNOWN_GAPS`: the
//! test fails on any miss not listed there, and on any listed gap that no longer misses.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use ndarray::ArrayD;
use ndarray_npy::NpzReader;
use qdbg::data::{load_dataset, Dataset, ImageOptions, InputSpec};
use qdbg::debug::{Debugger, VerifyMode};
use qdbg::exec::{tensor_from_sample, Executor};
use qdbg::graph::Graph;
use qdbg::kernels::int8::Arithmetic;
use qdbg::quant::calibrate;
use qdbg::quant::plan::plan_activations;
use qdbg::quant::quantize::{quantize_graph, QuantizeOptions};

/// The models of the wheel, in table order.
const MODELS: &[&str] = &[
    "face_detection_short_range",
    "face_detection_full_range_sparse",
    "face_landmark",
    "face_landmark_with_attention",
    "hand_landmark_lite",
    "hand_landmark_full",
    "hand_recrop",
    "iris_landmark",
    "palm_detection_lite",
    "palm_detection_full",
    "pose_detection",
    "pose_landmark_full",
    "selfie_segmentation",
    "selfie_segmentation_landscape",
];

/// Criteria that do not hold today: (model, criterion, measured value, reason).
/// Criteria: "runs" (qdbg runs the model at all), "float", "sqnr", "size", "csv".
/// "N of M parameters differ" counts the int8 activations TensorFlow's model has whose
/// scale or zero point in qdbg's model differs (`QDBG_CORPUS_DETAIL=1` prints them and
/// every CSV row off by more than 5%).
/// A measured value starting with "varies" marks a criterion whose outcome has been seen
/// both ways on this machine: either outcome is accepted.
///
/// Sensitivity: the numbers move with the float kernels qdbg calibrates with (candle's and
/// its own, picked by CPU features at run time): `QDBG_KERNELS=scalar` moves SQNRs by up to
/// 0.4 dB (hand_landmark_full's second output by 7 dB) and CSV rows by a point or two, with
/// the same outcomes. (While this test was written, builds from two git worktrees shared one
/// target directory and sometimes ran each other's code: the "early runs" with other bias
/// and near-zero weight scales were main's newer quantizer, which these numbers now use.)
#[rustfmt::skip]
const KNOWN_GAPS: &[(&str, &str, &str, &str)] = &[
    ("face_landmark_with_attention", "runs", "refused",
     "custom ops Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks are not implemented"),
    ("face_detection_short_range", "size", "1.022", "not investigated: qdbg's file 2.2% larger"),
    ("face_landmark", "sqnr", "30.8/30.7 27.3/30.9",
     "all 95 activation parameters equal TF's; the second output (face flag) loses 3.6 dB: not yet analysed"),
    ("face_landmark", "csv", "92%", "all activation parameters equal TF's; 8 rows off: not yet analysed"),
    ("hand_landmark_lite", "csv", "92%",
     "all parameters equal TF's; rows off: the FULLY_CONNECTED heads and their LOGISTICs (7-25% from TF's MSE)"),
    ("hand_landmark_full", "csv", "92%",
     "all parameters equal TF's; rows off: the FULLY_CONNECTED heads and their LOGISTICs (7-45%)"),
    ("hand_recrop", "sqnr", "34.6/35.6", "all 60 activation parameters equal TF's: not yet analysed"),
    ("hand_recrop", "size", "1.028", "not investigated: qdbg's file 2.8% larger"),
    ("hand_recrop", "csv", "86%", "all activation parameters equal TF's; 2 TF rows have no qdbg row"),
    ("iris_landmark", "csv", "89%", "all 167 activation parameters equal TF's; rows off not yet analysed"),
    ("palm_detection_lite", "csv", "92%", "all 117 activation parameters equal TF's; rows off not yet analysed"),
    ("palm_detection_full", "sqnr", "5.2/5.3 9.1/10.5", "all 137 activation parameters equal TF's: not yet analysed"),
    ("palm_detection_full", "csv", "91%", "all activation parameters equal TF's; rows off not yet analysed"),
    ("pose_landmark_full", "float", "1.8e-3",
     "output 3 (range -1623..245): max error 2.5 against LiteRT's builtin kernels; not investigated"),
    ("selfie_segmentation", "float", "2.4e-4",
     "output (range 0..1) 2.4e-4 from LiteRT's XNNPACK run (the only LiteRT path with its custom op)"),
];

fn corpus(name: &str) -> PathBuf {
    common::fixture(&format!("corpus/{name}"))
}

/// LiteRT's model outputs (tests/oracle/litert_outputs.py), in the model's output order.
fn litert_outputs(model: &Path, inputs: &Path, resolver: &str, dir: &Path) -> Vec<ArrayD<f64>> {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let out = dir.join(format!(
        "out-{}.npz",
        model.file_name().unwrap().to_string_lossy()
    ));
    let result = Command::new(common::oracle_python())
        .arg(common::repo().join("tests/oracle/litert_outputs.py"))
        .arg(model)
        .arg(inputs)
        .arg(&out)
        .arg("--resolver")
        .arg(resolver)
        .output()
        .expect("running the LiteRT oracle");
    assert!(
        result.status.success(),
        "litert_outputs.py failed on {}: {}",
        model.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    let mut npz = NpzReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    graph
        .outputs
        .iter()
        .map(|o| common::read_any(&mut npz, &format!("t{o}.npy")))
        .collect()
}

/// qdbg's float outputs, [output][sample] flattened.
fn qdbg_float(graph: &Graph, data: &Dataset) -> Result<Vec<Vec<Vec<f32>>>, String> {
    let exec = Executor::new(graph, &Device::Cpu).map_err(|e| e.to_string())?;
    let mut outs = vec![Vec::new(); graph.outputs.len()];
    for i in 0..data.num_samples() {
        let inputs: Vec<_> = data
            .sample(i)
            .unwrap()
            .iter()
            .map(|s| tensor_from_sample(s, &Device::Cpu).unwrap())
            .collect();
        let values = exec.run(&inputs).map_err(|e| e.to_string())?;
        for (k, v) in values.iter().enumerate() {
            outs[k].push(v.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
    }
    Ok(outs)
}

/// Worst over outputs of max |qdbg - LiteRT| / range(LiteRT).
fn float_error(ours: &[Vec<Vec<f32>>], litert: &[ArrayD<f64>]) -> f64 {
    ours.iter()
        .zip(litert)
        .map(|(o, l)| {
            let lo = l.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let worst = o
                .iter()
                .flatten()
                .zip(l.iter())
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            assert_eq!(o.iter().map(Vec::len).sum::<usize>(), l.len());
            if std::env::var_os("QDBG_CORPUS_DETAIL").is_some() {
                eprintln!("  float output: max err {worst:e}, LiteRT range {lo}..{hi}");
            }
            worst / (hi - lo).max(1e-12)
        })
        .fold(0.0, f64::max)
}

fn sqnr(reference: &[ArrayD<f64>], got: &[ArrayD<f64>]) -> Vec<f64> {
    reference
        .iter()
        .zip(got)
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

/// TensorFlow's debugger rows: (op, tensor name, mean squared error).
fn tf_rows(path: &Path) -> Vec<(String, String, f64)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let (op, mse, name) = (
        col("op_name"),
        col("mean_squared_error"),
        col("tensor_name"),
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[op].to_string(),
                r[name].to_string(),
                r[mse].parse().unwrap(),
            )
        })
        .collect()
}

#[derive(Default)]
struct Row {
    kind: String,
    /// (criterion, holds, measured value as printed)
    results: Vec<(String, bool, String)>,
    float_err: String,
    sqnr: String,
    size: String,
    csv: String,
}

fn check(name: &str, dir: &Path) -> Row {
    let model = corpus(&format!("{name}.tflite"));
    let inputs = corpus(&format!("{name}.inputs.npz"));
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let mut row = Row {
        kind: qdbg::graph::ModelKind::of(&graph).describe(),
        ..Row::default()
    };
    let custom = row.kind.contains("custom ops");
    let resolver = if custom {
        "default"
    } else {
        "builtin_without_default_delegates"
    };

    // (a) float, against LiteRT.
    if let Err(e) = graph.check_supported() {
        row.results
            .push(("runs".to_string(), false, "refused".to_string()));
        row.float_err = "refused".to_string();
        eprintln!("  {name}: {e}");
        return row;
    }
    let data = load_dataset(
        &inputs,
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let ours = match qdbg_float(&graph, &data) {
        Ok(o) => o,
        Err(e) => {
            row.results
                .push(("runs".to_string(), false, "refused".to_string()));
            row.float_err = format!("refused: {e}");
            return row;
        }
    };
    let float_ref = litert_outputs(&model, &inputs, resolver, dir);
    let err = float_error(&ours, &float_ref);
    row.float_err = format!("{err:.1e}");
    row.results
        .push(("float".to_string(), err <= 1e-4, row.float_err.clone()));

    // (b) quantize.
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let plan = plan_activations(&graph, &cal);
    let q = quantize_graph(&graph, &plan, &QuantizeOptions::default()).unwrap();
    let original = std::fs::read(&model).unwrap();
    let bytes = qdbg::tflite::model_bytes(&q.graph, Some(&original)).unwrap();
    let keep = std::env::var_os("QDBG_CORPUS_KEEP").map(PathBuf::from);
    let ours_path = keep
        .as_deref()
        .unwrap_or(dir)
        .join(format!("{name}.qdbg_int8.tflite"));
    std::fs::write(&ours_path, &bytes).unwrap();
    let our_sqnr = sqnr(
        &float_ref,
        &litert_outputs(&ours_path, &inputs, resolver, dir),
    );

    let tf_path = corpus(&format!("{name}.tf_int8.tflite"));
    if !tf_path.exists() {
        row.sqnr = our_sqnr
            .iter()
            .map(|o| format!("{o:.1}/TF failed"))
            .collect::<Vec<_>>()
            .join(" ");
        row.size = "-".into();
        row.csv = "-".into();
        return row;
    }
    let tf_sqnr = sqnr(
        &float_ref,
        &litert_outputs(&tf_path, &inputs, "builtin_without_default_delegates", dir),
    );
    row.sqnr = our_sqnr
        .iter()
        .zip(&tf_sqnr)
        .map(|(o, t)| format!("{o:.1}/{t:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let sqnr_ok = our_sqnr.iter().zip(&tf_sqnr).all(|(o, t)| *o >= t - 0.5);
    row.results
        .push(("sqnr".to_string(), sqnr_ok, row.sqnr.clone()));

    // (c) size.
    let tf_size = std::fs::metadata(&tf_path).unwrap().len() as f64;
    let ratio = bytes.len() as f64 / tf_size;
    row.size = format!("{ratio:.3}");
    row.results
        .push(("size".to_string(), ratio <= 1.02, row.size.clone()));

    // (d) the per-layer debugger against TensorFlow's CSV.
    let debugger = Debugger::new(&graph, &q, &Device::Cpu)
        .unwrap()
        .with_arithmetic(Arithmetic::Xnnpack)
        .unwrap();
    let stats = debugger
        .run(
            &data,
            None,
            VerifyMode::PerLayer,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap()
        .layers;
    // TensorFlow's row for each of qdbg's: the same tensor name, else (where TensorFlow's
    // converter renamed the tensor, e.g. fusing a PAD's paddings into a depthwise
    // convolution's name) the row at the same position with the same op.
    let by_name: HashMap<&str, usize> = stats
        .iter()
        .enumerate()
        .map(|(i, s)| (s.info.tensor_name.as_str(), i))
        .collect();
    let tf = tf_rows(&corpus(&format!("{name}.tf_debug.csv")));
    let tf_graph = qdbg::tflite::read_model(&tf_path).unwrap();
    let (mut agree, mut renamed, mut unmatched, mut params_differ) = (0, 0, 0, 0);
    let detail = std::env::var_os("QDBG_CORPUS_DETAIL").is_some();
    for (i, (op, n, t)) in tf.iter().enumerate() {
        let ours = by_name.get(n.as_str()).copied().or_else(|| {
            let same_op = stats.len() == tf.len() && stats[i].info.op_name == op.as_str();
            renamed += usize::from(same_op);
            same_op.then_some(i)
        });
        let Some(k) = ours else {
            unmatched += 1;
            continue;
        };
        let o = stats[k]
            .per_layer
            .map_or(f64::NAN, |m| m.mean_squared_error);
        if (o - t).abs() <= 0.05 * t.abs() || (o.abs() < 1e-9 && t.abs() < 1e-9) {
            agree += 1;
            continue;
        }
        // Whether qdbg's output parameters differ from TensorFlow's for this tensor.
        let ours_q = (stats[k].info.scale, stats[k].info.zero_point);
        let tf_q = tf_graph
            .tensor_by_name(n)
            .and_then(|id| tf_graph.tensor(id).quant.as_ref())
            .map(|q| (q.scale[0], q.zero_point[0]));
        let differ = tf_q.is_none_or(|(s, z)| ((ours_q.0 - s) / s).abs() > 1e-5 || ours_q.1 != z);
        params_differ += usize::from(differ);
        if detail {
            eprintln!("  {op} {n}: qdbg {o:e} TF {t:e}; params qdbg {ours_q:?} TF {tf_q:?}");
        }
    }
    let pct = 100.0 * agree as f64 / tf.len().max(1) as f64;
    row.csv = format!("{pct:.0}% ({agree}/{})", tf.len());
    if detail {
        let (mut compared, mut differ) = (0, 0);
        for t in &tf_graph.tensors {
            let (Some(tq), Some(id)) = (&t.quant, q.graph.tensor_by_name(&t.name)) else {
                continue;
            };
            if t.is_constant() || tq.is_per_channel() {
                continue;
            }
            compared += 1;
            let same = q.graph.tensor(id).quant.as_ref().is_some_and(|oq| {
                ((oq.scale[0] - tq.scale[0]) / tq.scale[0]).abs() <= 1e-5
                    && oq.zero_point[0] == tq.zero_point[0]
            });
            differ += usize::from(!same);
        }
        eprintln!("  {name}: {differ} of {compared} activation parameters differ from TF's");
        eprintln!(
            "  {name}: {} rows qdbg, {} TF; {renamed} matched by position, {unmatched} unmatched; \
             {params_differ} of the rows off have output parameters other than TF's",
            stats.len(),
            tf.len()
        );
    }
    row.results
        .push(("csv".to_string(), pct >= 95.0, format!("{pct:.0}%")));
    row
}

/// Set in the process that checks one model (see [`in_own_process`]).
const CHILD: &str = "QDBG_CORPUS_CHILD";

/// The child's side: check one model, print its row as tab-separated lines on stdout.
fn child(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let row = check(name, dir.path());
    println!(
        "CORPUS-ROW\t{}\t{}\t{}\t{}\t{}",
        row.kind, row.float_err, row.sqnr, row.size, row.csv
    );
    for (criterion, holds, measured) in &row.results {
        println!(
            "CORPUS-RESULT\t{criterion}\t{}\t{measured}",
            u8::from(*holds)
        );
    }
}

/// Each model is checked in a process of its own (this test binary, re-run with [`CHILD`]
/// set), as `qdbg` runs one model per process, so no model's result can depend on the
/// models checked before it (see KNOWN_GAPS' comment).
fn in_own_process(name: &str) -> Row {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "published_models_match_their_oracles",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, name)
        .output()
        .expect("re-running the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| l.starts_with("  ")) {
        eprintln!("{line}");
    }
    assert!(
        out.status.success(),
        "{name}: the child process failed:\n{stdout}\n{stderr}"
    );
    let mut row = Row::default();
    // (libtest prints "test NAME ... " before the child's first line.)
    for line in stdout
        .lines()
        .filter_map(|l| l.find("CORPUS-").map(|i| &l[i..]))
    {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["CORPUS-ROW", kind, float_err, sqnr, size, csv] => {
                row.kind = kind.to_string();
                row.float_err = float_err.to_string();
                row.sqnr = sqnr.to_string();
                row.size = size.to_string();
                row.csv = csv.to_string();
            }
            ["CORPUS-RESULT", criterion, holds, measured] => {
                row.results
                    .push((criterion.to_string(), *holds == "1", measured.to_string()))
            }
            _ => {}
        }
    }
    assert!(
        !row.kind.is_empty(),
        "{name}: no row from the child:\n{stdout}"
    );
    row
}

#[test]
fn published_models_match_their_oracles() {
    if let Ok(name) = std::env::var(CHILD) {
        return child(&name);
    }
    let mut failures = Vec::new();
    eprintln!(
        "| model | kind | float max err / range | SQNR dB qdbg/TF per output | size qdbg/TF | CSV rows within 5% |"
    );
    eprintln!("|---|---|---|---|---|---|");
    // QDBG_CORPUS_ONLY=a,b checks only those models (the gaps of the others are not checked).
    let only = std::env::var("QDBG_CORPUS_ONLY").ok();
    for name in MODELS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|m| m == *name))
        {
            continue;
        }
        // QDBG_CORPUS_ONE_PROCESS=1: all models in this process.
        let row = if std::env::var_os("QDBG_CORPUS_ONE_PROCESS").is_some() {
            check(name, tempfile::tempdir().unwrap().path())
        } else {
            in_own_process(name)
        };
        eprintln!(
            "| {name} | {} | {} | {} | {} | {} |",
            row.kind, row.float_err, row.sqnr, row.size, row.csv
        );
        for (criterion, holds, measured) in &row.results {
            let gap = KNOWN_GAPS
                .iter()
                .find(|(m, c, _, _)| m == name && c == criterion);
            let varies = gap.is_some_and(|(_, _, measured, _)| measured.starts_with("varies"));
            match (holds, gap) {
                (false, None) => failures.push(format!(
                    "{name}: {criterion} misses ({measured}) and is not in KNOWN_GAPS"
                )),
                (true, Some(_)) if !varies => failures.push(format!(
                    "{name}: {criterion} now holds ({measured}): remove it from KNOWN_GAPS"
                )),
                _ => {}
            }
        }
    }
    for (m, c, _, _) in KNOWN_GAPS {
        assert!(
            MODELS.contains(m),
            "KNOWN_GAPS names unknown model {m} ({c})"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
