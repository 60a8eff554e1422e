//! "Calibrate once, try many": how long a denylist change takes, from new rules to a
//! written selective model and its model-level metrics on the debug data (issue 5's
//! target: <= 300 ms for 100 samples of MobileNetV3-small). Also times the steps before the
//! first change (calibration, per-layer debug), which the workflow benchmark compares with
//! TensorFlow and ai-edge-quantizer.
//!
//! cargo bench --bench select_latency -- [MODEL] [DATA.npy] [CHANGES]
//!
//! Without DATA, 100 image-like samples in [-1, 1] are generated (low-frequency noise plus
//! a little pixel noise, as the fixture script's `smooth_images`). Prints one JSON line per
//! step: `{"runner": "qdbg-...", "median_ms": ...}`; the anchor for ratios is in the same
//! run's script (benches/debugger_vs_tf.sh, benches/workflow.sh).
//! Threads: as the CLI (`qdbg::threads::configure`): RAYON_NUM_THREADS sample workers, else
//! every core; each op on one thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use ndarray::ArrayD;
use qdbg::data::{Dataset, SampleArray};
use qdbg::debug::{Debugger, VerifyMode};
use qdbg::exec::{Executor, FloatOutputCache};
use qdbg::quant::plan::plan_activations;
use qdbg::quant::{calibrate_or_load, CalibrationSource};
use qdbg::select::selection::Selector;
use qdbg::select::Rule;

fn main() {
    qdbg::threads::configure(None).expect("worker threads");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let model = PathBuf::from(
        args.first()
            .map_or("tests/fixtures/mobilenet_v3_small.tflite", String::as_str),
    );
    let data = args.get(1).filter(|a| !a.is_empty()).map(PathBuf::from);
    let changes: usize = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(9);

    // Work on a copy: the calibration file is written beside the model.
    let tmp = tempfile::tempdir().expect("temp dir");
    let model_copy = tmp.path().join("model.tflite");
    std::fs::copy(&model, &model_copy).expect("copy the model");
    let graph = Arc::new(qdbg::tflite::read_model(&model_copy).expect("model"));
    let dataset = Arc::new(match &data {
        Some(path) => qdbg::data::load_dataset(
            path,
            &qdbg::data::InputSpec::for_graph(&graph),
            &Default::default(),
        )
        .expect("data"),
        None => smooth_images(&graph, 100),
    });
    let samples = dataset.num_samples();
    let device = Device::Cpu;
    let threads = rayon::current_num_threads();
    let line = |runner: &str, times_ms: &[f64], extra: &str| {
        if times_ms.is_empty() {
            return;
        }
        let mut t = times_ms.to_vec();
        t.sort_by(f64::total_cmp);
        println!(
            "{{\"runner\": \"{runner}\", \"samples\": {samples}, \"threads\": {threads}, \
             \"median_ms\": {:.1}, \"runs_ms\": {:?}{extra}}}",
            t[t.len() / 2],
            times_ms
                .iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        );
    };

    // Cold: calibrate from scratch (what the first `qdbg debug` on a model does).
    // The float model's outputs, remembered by the calibration for the debugger and the
    // evaluations after it (as `qdbg debug`, `qdbg select` and the dashboard share them).
    let float_outputs = Arc::new(FloatOutputCache::new(dataset.num_samples()));
    let started = Instant::now();
    let executor = Executor::new(&graph, &device).expect("float executor");
    let (calibration, source) = calibrate_or_load(
        &model_copy,
        &executor,
        &dataset,
        true,
        Some(&float_outputs),
        &mut |_| {},
    )
    .expect("calib");
    drop(executor);
    let calibrate_ms = ms(started);
    assert!(
        matches!(source, CalibrationSource::Saved(_)),
        "calibration saved"
    );
    line("qdbg-calibrate", &[calibrate_ms], "");

    // Per-layer debug of the full-int8 model: the statistics metric rules are written against.
    let original = Arc::new(std::fs::read(&model_copy).expect("model bytes"));
    let started = Instant::now();
    let plan = plan_activations(&graph, &calibration);
    let full = qdbg::quant::quantize::quantize_graph(&graph, &plan, &Default::default())
        .expect("quantize");
    let quantize_ms = ms(started);
    line("qdbg-quantize", &[quantize_ms], "");
    // What TensorFlow's run() computes (the CSV's statistics: as `qdbg debug --csv`, no
    // histograms and none of qdbg's extra metrics), then what the dashboard measures (every
    // metric and the histograms), reported beside it.
    let debug_run = |dashboard: bool| {
        let started = Instant::now();
        let report = Debugger::new(&graph, &full, &device)
            .expect("debugger")
            .with_float_outputs(Arc::clone(&float_outputs))
            .with_histograms(dashboard)
            .with_extra_metrics(dashboard)
            .run(
                &dataset,
                None,
                VerifyMode::PerLayer,
                &AtomicBool::new(false),
                &mut |_| {},
            )
            .expect("debug");
        (report, ms(started))
    };
    let (report, debug_ms) = debug_run(false);
    line("qdbg-debug-per-layer", &[debug_ms], "");
    let (_, histograms_ms) = debug_run(true);
    line("qdbg-debug-per-layer-histograms", &[histograms_ms], "");

    // Calibration load (the saved file) + the first selection, which also fills the
    // selector's float-output cache. Then new thresholds on rmse/scale, as a user tries
    // them: each between two layers' values, so that they keep the k worst layers float
    // (k = 1..=changes, in a scattered order): every change is a different denylist.
    let mut ratios: Vec<f64> = report
        .layers
        .iter()
        .filter_map(|l| {
            l.per_layer
                .map(|m| qdbg::debug::report::rmse_over_scale(m.mean_squared_error, l.info.scale))
        })
        .filter(|r| r.is_finite())
        .collect();
    ratios.sort_by(|a, b| b.total_cmp(a));
    let threshold_keeping = |k: usize| match (ratios.get(k - 1), ratios.get(k)) {
        (Some(a), Some(b)) => (a + b) / 2.0,
        _ => 0.0,
    };
    let order = [3, 1, 5, 2, 8, 4, 9, 6, 7, 10, 12, 11];
    let thresholds: Vec<f64> = std::iter::once(threshold_keeping(2))
        .chain(order.iter().take(changes).map(|&k| threshold_keeping(k)))
        .collect();
    let rules_for = |t: f64| vec![Rule::parse(&format!("rmse/scale > {t}")).expect("rule")];
    let out = tmp.path().join("selective.tflite");
    let started = Instant::now();
    let executor = Executor::new(&graph, &device).expect("float executor");
    let (calibration, source) =
        calibrate_or_load(&model_copy, &executor, &dataset, false, None, &mut |_| {})
            .expect("load");
    drop(executor);
    assert!(
        matches!(source, CalibrationSource::Reused(_)),
        "calibration reused"
    );
    let selector = Selector::new(
        Arc::clone(&graph),
        Some(Arc::clone(&original)),
        Arc::new(plan_activations(&graph, &calibration)),
        Arc::clone(&dataset),
        None,
        device.clone(),
    )
    .with_float_outputs(Arc::clone(&float_outputs));
    // TensorFlow's `get_nondebug_quantized_model` step: the selective model written (no
    // evaluation, in the process that debugged, as TensorFlow's), then the same model
    // evaluated on every sample.
    let written = Instant::now();
    let selection = selector
        .select(&rules_for(thresholds[0]), &report.layers)
        .expect("select");
    qdbg::atomic::write_bytes_atomic(&out, &selection.bytes).expect("write");
    line("qdbg-selective-model-written", &[ms(written)], "");
    let first = select_write_evaluate(&selector, &rules_for(thresholds[0]), &report, &out);
    line(
        "qdbg-first-selection",
        &[ms(started)],
        &format!(", \"float_ops\": {}", first.0),
    );

    // Denylist changes: new rules -> selective model written -> evaluated on every sample.
    let mut times = Vec::new();
    let mut float_ops = Vec::new();
    for &t in &thresholds[1..] {
        let started = Instant::now();
        let (ops, sqnr) = select_write_evaluate(&selector, &rules_for(t), &report, &out);
        times.push(ms(started));
        float_ops.push(format!("[{ops}, {:.1}]", sqnr));
    }
    line(
        "qdbg-denylist-change",
        &times,
        &format!(", \"float_ops_and_sqnr_db\": [{}]", float_ops.join(", ")),
    );

    // The least favourable changes: denylists that change the very first layer, so
    // nothing of the int8 model's run can be reused but the QUANTIZE of the input.
    let mut times = Vec::new();
    for n in 1..=3 {
        let started = Instant::now();
        select_write_evaluate(&selector, &[Rule::First(n)], &report, &out);
        times.push(ms(started));
    }
    line("qdbg-denylist-change-first-layers", &times, "");
}

/// One denylist change; returns the float ops it leaves and the output SQNR it measures.
/// With QDBG_BENCH_PROFILE set, prints how long each step took.
fn select_write_evaluate(
    selector: &Selector,
    rules: &[Rule],
    report: &qdbg::debug::DebugReport,
    out: &Path,
) -> (usize, f64) {
    let t0 = Instant::now();
    let selection = selector.select(rules, &report.layers).expect("select");
    let t1 = Instant::now();
    qdbg::atomic::write_bytes_atomic(out, &selection.bytes).expect("write");
    let t2 = Instant::now();
    let metrics = selector
        .evaluate(&selection.model, &AtomicBool::new(false), &mut |_, _| {})
        .expect("evaluate");
    if std::env::var_os("QDBG_BENCH_PROFILE").is_some() {
        eprintln!(
            "{:<24} select {:>7.1} ms, write {:>6.1} ms, evaluate {:>8.1} ms ({} float ops)",
            rules
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            t2.elapsed().as_secs_f64() * 1e3,
            selection.float_ops()
        );
    }
    (selection.float_ops(), metrics.sqnr_db)
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

/// `n` image-like samples for the model's single float input: a 7x7 grid of uniform noise
/// upsampled bilinearly, plus 20% pixel noise, clipped to [-1, 1] (deterministic).
fn smooth_images(graph: &qdbg::graph::Graph, n: usize) -> Dataset {
    let input = graph.tensor(graph.inputs[0]);
    let (h, w, c) = match input.shape[..] {
        [1, h, w, c] => (h, w, c),
        _ => panic!("smooth_images needs a [1, H, W, C] input"),
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        // xorshift64*: reproducible without a dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let mut values = Vec::with_capacity(n * h * w * c);
    for _ in 0..n {
        let low: Vec<f32> = (0..7 * 7 * c).map(|_| uniform()).collect();
        for y in 0..h {
            for x in 0..w {
                let fy = y as f32 * 6.0 / (h - 1).max(1) as f32;
                let fx = x as f32 * 6.0 / (w - 1).max(1) as f32;
                let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
                let (y1, x1) = ((y0 + 1).min(6), (x0 + 1).min(6));
                let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
                for ch in 0..c {
                    let at = |yy: usize, xx: usize| low[(yy * 7 + xx) * c + ch];
                    let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
                    let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
                    let smooth = top * (1.0 - ty) + bottom * ty;
                    values.push((0.8 * smooth + 0.2 * uniform()).clamp(-1.0, 1.0));
                }
            }
        }
    }
    Dataset::from_arrays(
        PathBuf::from("(generated)"),
        vec![(
            input.name.clone(),
            SampleArray::F32(ArrayD::from_shape_vec(vec![n, h, w, c], values).expect("shape")),
        )],
        vec![input.shape.clone()],
    )
}
