//! Mixed int8 / int16 models chosen by rules (`qdbg select --int16`, `qdbg quantize
//! --int16`): the refusals, the denylist file's keywords, and the demo's broken stem
//! repaired by int16 as float fallback repairs it, measured in LiteRT.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{ArrayD, Axis};
use qdbg::select::Rule;

fn qdbg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("running qdbg")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The demo copied into a temporary folder (its calibration is saved beside the model).
fn demo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.tflite", "debug.npy", "labels.txt"] {
        std::fs::copy(common::repo().join("demo").join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn path(dir: &Path, f: &str) -> String {
    dir.join(f).to_str().unwrap().to_string()
}

/// The layer the demo was built to break (demo/expected.json, from the script that made it).
fn demo_stem() -> String {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("demo/expected.json")).unwrap(),
    )
    .unwrap();
    expected["stem_tensor"].as_str().unwrap().to_string()
}

#[test]
fn an_int16_rule_naming_an_op_without_a_16x8_kernel_is_refused() {
    let dir = demo_dir();
    let d = dir.path();
    for command in ["select", "quantize"] {
        let o = qdbg(&[
            command,
            &path(d, "model.tflite"),
            "--data",
            &path(d, "debug.npy"),
            "--int16-op",
            "hard_swish",
            "-o",
            &path(d, "out.tflite"),
        ]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("HARD_SWISH")
                && err.contains("cannot compute in 16x8")
                && err.contains("LiteRT has no 16x8 kernel")
                && err.contains("keep it float instead (--deny op:HARD_SWISH)"),
            "{command}: {err}"
        );
        assert!(!d.join("out.tflite").exists(), "{command} wrote a model");
    }
    // quantize has no debugger statistics for metric rules: it says where they work.
    let o = qdbg(&[
        "quantize",
        &path(d, "model.tflite"),
        "--data",
        &path(d, "debug.npy"),
        "--int16",
        "rmse/scale > 0.7",
        "-o",
        &path(d, "out.tflite"),
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("qdbg select --int16"), "{err}");
}

#[test]
fn select_int16_lists_what_stays_int8_and_its_denylist_round_trips() {
    let dir = demo_dir();
    let d = dir.path();
    let o = qdbg(&[
        "select",
        &path(d, "model.tflite"),
        "--data",
        &path(d, "debug.npy"),
        "--int16",
        "rmse/scale > 0.01",
        "--deny-op",
        "MEAN",
        "--save-denylist",
        &path(d, "rules.txt"),
        "-o",
        &path(d, "mixed.tflite"),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    // The demo's six HARD_SWISH (LiteRT has no 16x8 kernel for them) stay int8, listed.
    let left: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("picked by an int16 rule but left int8 (6;"))
        .skip(1)
        .take_while(|l| l.starts_with("  #"))
        .collect();
    assert_eq!(left.len(), 6, "{out}");
    assert!(left.iter().all(|l| l.contains("HARD_SWISH")), "{out}");
    let cell = |row: &str| -> usize {
        let line = out.lines().find(|l| l.starts_with(row)).expect(row);
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    assert!(cell("int16 ops") > 0, "{out}");
    assert!(cell("int16 islands") > 0, "{out}");
    let rules = std::fs::read_to_string(d.join("rules.txt")).unwrap();
    let lines: Vec<&str> = rules.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, ["float op:MEAN", "int16 rmse/scale > 0.01"]);
    // Read back, the file makes the same model and writes itself again unchanged.
    let o = qdbg(&[
        "select",
        &path(d, "model.tflite"),
        "--data",
        &path(d, "debug.npy"),
        "--deny-file",
        &path(d, "rules.txt"),
        "--save-denylist",
        &path(d, "again.txt"),
        "-o",
        &path(d, "again.tflite"),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(rules, std::fs::read_to_string(d.join("again.txt")).unwrap());
    assert_eq!(
        std::fs::read(d.join("mixed.tflite")).unwrap(),
        std::fs::read(d.join("again.tflite")).unwrap()
    );
    // The written model is mixed: int16 ops beside int8 ones, MEAN float.
    let g = qdbg::tflite::read_model(&d.join("mixed.tflite")).unwrap();
    let ops_of = |dtype| {
        g.nodes
            .iter()
            .filter(|n| n.op.name() != "QUANTIZE" && n.op.name() != "DEQUANTIZE")
            .filter(|n| g.tensor(n.outputs[0]).dtype == dtype)
            .count()
    };
    assert_eq!(ops_of(qdbg::graph::DType::I16), cell("int16 ops"));
    assert!(ops_of(qdbg::graph::DType::I8) >= 6);
    assert_eq!(ops_of(qdbg::graph::DType::F32), 3, "the three MEANs");
}

/// The demo's debug set as an npz keyed by the input's name (what litert_dump.py reads).
fn demo_inputs(dir: &Path) -> PathBuf {
    let graph = qdbg::tflite::read_model(&common::repo().join("demo/model.tflite")).unwrap();
    let debug: ndarray::Array4<f32> =
        ndarray_npy::read_npy(common::repo().join("demo/debug.npy")).unwrap();
    let path = dir.join("inputs.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&path).unwrap());
    npz.add_array(graph.tensor(graph.inputs[0]).name.as_str(), &debug)
        .unwrap();
    npz.finish().unwrap();
    path
}

/// LiteRT's output of `model` on `inputs`, one row per sample.
fn litert_output(model: &Path, inputs: &Path, scratch: &Path) -> ArrayD<f64> {
    let graph = qdbg::tflite::read_model(model).unwrap();
    // Read from the file: tensor ids are the file's indices, as the dump keys them.
    let output = graph.outputs[0];
    common::litert_dump(model, inputs, scratch)
        .into_iter()
        .find(|(idx, _)| *idx == output)
        .map(|(_, v)| v)
        .expect("LiteRT computed no output")
}

/// The pooled SQNR (dB) of `got` against `reference` and the share of samples whose
/// argmax agrees, both computed here from LiteRT's numbers.
fn sqnr_and_agreement(reference: &ArrayD<f64>, got: &ArrayD<f64>) -> (f64, f64) {
    let signal: f64 = reference.iter().map(|v| v * v).sum();
    let noise: f64 = reference
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    let argmax = |row: ndarray::ArrayViewD<f64>| {
        row.iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0
    };
    let samples = reference.len_of(Axis(0));
    let same = (0..samples)
        .filter(|&s| argmax(reference.index_axis(Axis(0), s)) == argmax(got.index_axis(Axis(0), s)))
        .count();
    (
        10.0 * (signal / noise).log10(),
        same as f64 / samples as f64,
    )
}

/// Issue 19 item 5: the demo's stem convolution is the layer int8 breaks (its input plane
/// of raw ink values sets a coarse input scale). Computing that one layer in 16x8 meets
/// the target that keeping it float meets, where full int8 misses it; each model is
/// written by `qdbg select` and measured in LiteRT against LiteRT's float model.
/// The target (output SQNR >= 12 dB and the float model's top-1 kept on >= 95% of the
/// debug set) is this test's own choice.
#[test]
fn int16_on_the_broken_layer_recovers_the_target_float_fallback_recovers_in_litert() {
    let dir = demo_dir();
    let d = dir.path();
    let stem = format!("name:{}", demo_stem());
    let mut written = Vec::new();
    for (label, rule) in [
        ("full int8", vec![]),
        ("stem float", vec!["--deny", stem.as_str()]),
        ("stem int16", vec!["--int16", stem.as_str()]),
    ] {
        let out = path(d, &format!("{}.tflite", label.replace(' ', "_")));
        let mut args = vec![
            "select",
            &path(d, "model.tflite"),
            "--data",
            &path(d, "debug.npy"),
            "-o",
            &out,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(rule.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = qdbg(&args);
        assert!(o.status.success(), "{label}: {}", text(&o).1);
        written.push((label, PathBuf::from(out)));
    }
    let stem_int16 = qdbg::tflite::read_model(&written[2].1).unwrap();
    let int16_ops = stem_int16
        .nodes
        .iter()
        .filter(|n| n.op.name() == "CONV_2D")
        .filter(|n| stem_int16.tensor(n.outputs[0]).dtype == qdbg::graph::DType::I16)
        .count();
    assert_eq!(int16_ops, 1, "only the stem is int16");

    let inputs = demo_inputs(d);
    let scratch = tempfile::tempdir().unwrap();
    let float = litert_output(&d.join("model.tflite"), &inputs, scratch.path());
    let mut measured = Vec::new();
    for (label, model) in &written {
        let (sqnr, same) =
            sqnr_and_agreement(&float, &litert_output(model, &inputs, scratch.path()));
        eprintln!(
            "{label}: LiteRT sqnr {sqnr:.1} dB, same top-1 {:.0}%",
            100.0 * same
        );
        measured.push((label, sqnr >= 12.0 && same >= 0.95, sqnr, same));
    }
    let meets: Vec<bool> = measured.iter().map(|m| m.1).collect();
    assert_eq!(meets, [false, true, true], "{measured:?}");
}

/// A mixed model as `qdbg select --int16` writes it (several int16 islands, int16 ADDs
/// among them, int8 ops between them): LiteRT computes every int8 and int16 tensor as
/// qdbg's executor does, bit for bit. (No float op here: a float op's output differs from
/// LiteRT's in the last float bits, which int16's fine steps turn into one-step differences
/// after a QUANTIZE.)
#[test]
fn a_mixed_model_written_by_select_runs_bit_exact_in_litert() {
    assert_mixed_bit_exact("rmse/scale > 0.3");
}

fn assert_mixed_bit_exact(int16_rule: &str) {
    let dir = demo_dir();
    let d = dir.path();
    let o = qdbg(&[
        "select",
        &path(d, "model.tflite"),
        "--data",
        &path(d, "debug.npy"),
        "--int16",
        int16_rule,
        "-o",
        &path(d, "mixed.tflite"),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    let model = d.join("mixed.tflite");
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let inputs = demo_inputs(d);
    let oracle = common::litert_dump(&model, &inputs, d);
    let (samples, ours) = common::qdbg_values("mixed (select --int16)", &graph, &inputs);
    let (mut compared, mut int16, mut failures) = (0, 0, Vec::new());
    for (idx, expected) in &oracle {
        let t = graph.tensor(*idx);
        if !matches!(t.dtype, qdbg::graph::DType::I8 | qdbg::graph::DType::I16) {
            continue;
        }
        compared += 1;
        int16 += usize::from(t.dtype == qdbg::graph::DType::I16);
        assert_eq!(ours[*idx].len(), samples, "t{idx} not computed");
        let differ = (0..samples)
            .flat_map(|s| {
                expected
                    .index_axis(Axis(0), s)
                    .iter()
                    .zip(&ours[*idx][s])
                    .map(|(a, b)| a != b)
                    .collect::<Vec<_>>()
            })
            .filter(|&d| d)
            .count();
        if differ > 0 {
            failures.push(format!("t{idx} {} '{}': {differ} differ", t.dtype, t.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        int16 >= 8 && compared > int16,
        "{int16} int16 of {compared}"
    );
}

/// The dashboard's engine, driven as the event loop drives it: a row marked int16 (`i`
/// makes an `int16 name:` rule) is answered with the row marked and the int16 cost, and
/// its experiment evaluates the mixed model, meeting the target LiteRT measured above.
#[test]
fn the_dashboard_engine_marks_costs_and_evaluates_an_int16_row() {
    use qdbg::tui::action::{Action, Effect};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let dir = demo_dir();
    let d = dir.path();
    let loaded = qdbg::session::Loaded::read(
        "dashboard",
        &d.join("model.tflite"),
        &d.join("debug.npy"),
        None,
        &qdbg::data::ImageOptions::default(),
        qdbg::exec::DeviceChoice::Cpu,
    )
    .unwrap();
    let (tx, mut news) = tokio::sync::mpsc::unbounded_channel();
    let engine = qdbg::tui::worker::start(
        qdbg::tui::worker::EngineInputs {
            loaded,
            recalibrate: false,
            mode: qdbg::debug::VerifyMode::PerLayer,
            arithmetic: qdbg::kernels::int8::Arithmetic::Builtin,
        },
        tx,
        Instant::now(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut next = || {
        runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(300), news.recv()).await })
            .expect("engine news within 5 minutes")
            .expect("the engine is running")
    };
    // The debugger's rows and statistics, as the dashboard holds them when it ends.
    let mut report = None;
    loop {
        match next() {
            Action::DebugUpdated { report: r, .. } => report = Some(r),
            Action::DebugEnded { .. } => break,
            Action::DebugFailed(reason) => panic!("{reason}"),
            _ => {}
        }
    }
    let report = report.expect("the debugger's statistics");
    let stem = demo_stem();
    let row = report
        .layers
        .iter()
        .position(|l| l.info.tensor_name == stem)
        .expect("the stem's row");
    let rules = vec![Rule::Int16(Box::new(Rule::Name(stem)))];
    engine.submit(Effect::Recompute {
        generation: 1,
        rules: rules.clone(),
        report: Arc::clone(&report),
    });
    engine.submit(Effect::Evaluate {
        id: 1,
        rules,
        report: Arc::clone(&report),
    });
    let (mut cost, mut metrics, mut marked) = (None, None, None);
    while metrics.is_none() {
        match next() {
            Action::Int16Rows { int16, .. } => marked = Some(int16),
            Action::Costed { cost: c, .. } => cost = Some(c),
            Action::Evaluated { id: 1, result } => metrics = Some(result.unwrap()),
            Action::CostFailed { reason, .. } | Action::DebugFailed(reason) => panic!("{reason}"),
            _ => {}
        }
    }
    let cost = cost.expect("the cost came before the evaluation ended");
    assert_eq!((cost.int16_ops, cost.int16_islands), (1, 1));
    assert!(cost.int16_activation_bytes > 0);
    assert!(cost.latency_vs_int8.is_some_and(|r| r > 1.0));
    let (evaluated_cost, m) = metrics.unwrap();
    assert_eq!(evaluated_cost, cost);
    assert!(
        m.sqnr_db >= 12.0 && m.argmax_agreement >= 0.95,
        "sqnr {} agreement {}",
        m.sqnr_db,
        m.argmax_agreement
    );
    let marked = marked.expect("the rows' marks");
    let expected: Vec<bool> = (0..report.layers.len()).map(|k| k == row).collect();
    assert_eq!(marked, expected);
    engine.shutdown();
}
