//! Model-level metrics per output, against LiteRT: on a model with two outputs, the SQNR,
//! MSE and cosine of each output (and pooled, and which is the worst) that `qdbg debug`
//! reports are those of LiteRT's outputs of the float model and of qdbg's int8 model, as
//! `qdbg quantize` writes it, computed here from LiteRT's values; and a denylist's
//! evaluation measures each output as the debugger does.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::Device;
use ndarray::ArrayD;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::debug::{Debugger, VerifyMode};
use qdbg::exec::Executor;
use qdbg::quant::{calibrate, plan::plan_activations};
use qdbg::select::selection::Selector;
use qdbg::select::Rule;

fn qdbg(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("running qdbg");
    assert!(
        out.status.success(),
        "qdbg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Each model output as LiteRT computes it, real-valued (an int8 output dequantized), in
/// the model's output order, with its name.
fn litert_outputs(model: &Path, inputs: &Path, dir: &Path) -> Vec<(String, ArrayD<f64>)> {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let dump = common::litert_dump(model, inputs, dir);
    graph
        .outputs
        .iter()
        .map(|&id| {
            let tensor = graph.tensor(id);
            let (_, values) = dump
                .iter()
                .find(|(i, _)| *i == id)
                .unwrap_or_else(|| panic!("LiteRT's dump lacks output {}", tensor.name));
            let values = match (&tensor.quant, tensor.dtype.is_float()) {
                (Some(q), false) => {
                    let (scale, zp) = (f64::from(q.scale[0]), q.zero_point[0] as f64);
                    values.mapv(|v| (v - zp) * scale)
                }
                _ => values.clone(),
            };
            (tensor.name.clone(), values)
        })
        .collect()
}

/// (sum of float², sum of (int8 - float)², sum of float x int8, sum of int8², count).
fn sums(float: &ArrayD<f64>, int8: &ArrayD<f64>) -> [f64; 5] {
    assert_eq!(float.len(), int8.len());
    let mut s = [0.0; 5];
    for (f, q) in float.iter().zip(int8.iter()) {
        s[0] += f * f;
        s[1] += (q - f) * (q - f);
        s[2] += f * q;
        s[3] += q * q;
        s[4] += 1.0;
    }
    s
}

fn sqnr_db(s: &[f64; 5]) -> f64 {
    10.0 * (s[0] / s[1]).log10()
}

#[test]
fn debug_reports_each_output_as_litert_computes_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("multi_io.tflite");
    std::fs::copy(common::fixture("multi_io.tflite"), &model).unwrap();
    let inputs = common::fixture("multi_io.inputs.npz");
    let int8 = dir.path().join("multi_io_int8.tflite");
    let json = dir.path().join("report.json");
    let (model_s, inputs_s) = (model.to_str().unwrap(), inputs.to_str().unwrap());
    qdbg(&[
        "quantize",
        model_s,
        "--data",
        inputs_s,
        "-o",
        int8.to_str().unwrap(),
    ]);
    // Reuses the calibration saved beside the model: the same int8 model as written.
    let out = qdbg(&[
        "debug",
        model_s,
        "--data",
        inputs_s,
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();

    let float = litert_outputs(&model, &inputs, dir.path());
    let quant = litert_outputs(&int8, &inputs, dir.path());
    assert_eq!(float.len(), 2, "multi_io has two outputs");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let m = &report["model"];
    let outputs = m["outputs"].as_array().expect("model.outputs in the JSON");
    assert_eq!(outputs.len(), 2);
    let mut pooled = [0.0; 5];
    let mut worst: Option<(f64, String)> = None;
    for ((name, f), ((_, q), ours)) in float.iter().zip(quant.iter().zip(outputs)) {
        let s = sums(f, q);
        for (p, v) in pooled.iter_mut().zip(s) {
            *p += v;
        }
        let want_sqnr = sqnr_db(&s);
        assert_eq!(ours["name"].as_str(), Some(name.as_str()));
        let got = ours["sqnr_db"].as_f64().unwrap();
        // qdbg's int8 model is LiteRT's bit for bit; the float outputs agree to ~1e-6.
        assert!(
            (got - want_sqnr).abs() < 1e-3,
            "{name}: sqnr {got} vs LiteRT's {want_sqnr}"
        );
        let want_mse = s[1] / s[4];
        let got = ours["mse"].as_f64().unwrap();
        assert!(
            (got - want_mse).abs() <= 1e-3 * want_mse,
            "{name}: mse {got} vs {want_mse}"
        );
        let want_cos = s[2] / (s[0].sqrt() * s[3].sqrt());
        let got = ours["cosine"].as_f64().unwrap();
        assert!(
            (got - want_cos).abs() < 1e-6,
            "{name}: cosine {got} vs {want_cos}"
        );
        // One line per output in the summary, with its SQNR.
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no summary line for {name}:\n{stdout}"));
        assert!(
            line.contains(&format!("{want_sqnr:.1}")),
            "{name}: '{line}' vs LiteRT's {want_sqnr:.1}"
        );
        if worst.as_ref().is_none_or(|(w, _)| want_sqnr < *w) {
            worst = Some((want_sqnr, name.clone()));
        }
    }
    let pooled_sqnr = sqnr_db(&pooled);
    let got = m["sqnr_db"].as_f64().unwrap();
    assert!(
        (got - pooled_sqnr).abs() < 1e-3,
        "pooled sqnr {got} vs {pooled_sqnr}"
    );
    let (_, worst) = worst.unwrap();
    assert_eq!(m["worst_output"].as_str(), Some(worst.as_str()));
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(&worst) && l.contains("<- worst")),
        "{stdout}"
    );

    // `qdbg eval` compares the int8 model with the float one output by output: the same
    // numbers (printed to 0.1 dB).
    let out = qdbg(&["eval", model_s, int8.to_str().unwrap(), "--data", inputs_s]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for ((name, f), (_, q)) in float.iter().zip(&quant) {
        let want = sqnr_db(&sums(f, q));
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no eval line for {name}:\n{stdout}"));
        assert!(
            line.contains(&format!("{want:.1}")),
            "{name}: '{line}' vs LiteRT's {want:.1}"
        );
    }
}

/// A denylist's evaluation (the dashboard's and `qdbg select`'s path, which re-runs only
/// what the denylist changed) measures each output as the debugger does from scratch.
#[test]
fn evaluations_measure_every_output_as_the_debugger_does() {
    let graph = qdbg::tflite::read_model(&common::fixture("multi_io.tflite")).unwrap();
    let load = || {
        load_dataset(
            &common::fixture("multi_io.inputs.npz"),
            &InputSpec::for_graph(&graph),
            &ImageOptions::default(),
        )
        .unwrap()
    };
    let data = load();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let selector = Selector::new(
        Arc::new(graph.clone()),
        None,
        Arc::new(plan_activations(&graph, &cal)),
        Arc::new(load()),
        None,
        Device::Cpu,
    );
    for rules in [Vec::new(), vec![Rule::parse("last:2").unwrap()]] {
        let selection = selector.select(&rules, &[]).unwrap();
        let evaluated = selector
            .evaluate(&selection.model, &AtomicBool::new(false), &mut |_, _| {})
            .unwrap();
        let debugged = Debugger::new(&graph, &selection.model, &Device::Cpu)
            .unwrap()
            .run(
                &data,
                None,
                VerifyMode::ModelOnly,
                &AtomicBool::new(false),
                &mut |_| {},
            )
            .unwrap()
            .model;
        assert_eq!(evaluated.outputs.len(), 2, "{rules:?}");
        // Compared as printed: exact for numbers, and the class metrics of a model with
        // no classify output are NaN on both sides (NaN != NaN for `==`).
        assert_eq!(
            format!("{evaluated:?}"),
            format!("{debugged:?}"),
            "{rules:?}"
        );
    }
}
