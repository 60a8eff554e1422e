//! The dashboard's `m` (per-op sensitivity) through the engine, as the event loop drives it:
//! progress counts up to its total and the measurement arrives, or `p` stops it part way.

mod common;

use std::time::{Duration, Instant};

use qdbg::data::ImageOptions;
use qdbg::debug::VerifyMode;
use qdbg::exec::DeviceChoice;
use qdbg::kernels::int8::Arithmetic;
use qdbg::session::Loaded;
use qdbg::tui::action::{Action, Effect};
use qdbg::tui::worker::{start, Engine, EngineInputs};
use tokio::sync::mpsc::UnboundedReceiver;

/// The engine on the demo model and its 100 debug samples; the debugger's own run is
/// stopped at once.
fn engine() -> (Engine, UnboundedReceiver<Action>, tempfile::TempDir) {
    let repo = common::repo();
    let dir = tempfile::tempdir().unwrap();
    // The calibration is saved beside the model: a copy keeps the repository clean.
    let model = dir.path().join("model.tflite");
    std::fs::copy(repo.join("demo/model.tflite"), &model).unwrap();
    let loaded = Loaded::read(
        "dashboard",
        &model,
        &repo.join("demo/debug.npy"),
        None,
        &ImageOptions::default(),
        DeviceChoice::Cpu,
    )
    .unwrap();
    let (tx, news) = tokio::sync::mpsc::unbounded_channel();
    let engine = start(
        EngineInputs {
            loaded,
            recalibrate: false,
            mode: VerifyMode::ModelOnly,
            arithmetic: Arithmetic::Builtin,
        },
        tx,
        Instant::now(),
    );
    engine.submit(Effect::StopRun);
    (engine, news, dir)
}

/// The sensitivity news until the measurement ends: every progress (done, total), then
/// the result.
fn until_measured(
    news: &mut UnboundedReceiver<Action>,
    mut on_progress: impl FnMut(usize, usize),
) -> Result<Box<qdbg::repair::sensitivity::Sensitivity>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    loop {
        let action = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(300), news.recv()).await })
            .expect("engine news within 5 minutes")
            .expect("the engine is running");
        match action {
            Action::DebugFailed(reason) => panic!("the engine failed: {reason}"),
            Action::SensitivityProgress { done, total } => on_progress(done, total),
            Action::SensitivityMeasured(result) => return result,
            _ => {}
        }
    }
}

#[test]
fn the_sensitivity_measurement_reports_progress_and_every_quantized_op() {
    let (engine, mut news, _dir) = engine();
    engine.submit(Effect::Sensitivity {
        metric: "sqnr_db".into(),
        higher_is_better: true,
    });
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let result = until_measured(&mut news, |done, total| seen.push((done, total)));
    let sensitivity = result.expect("measured");
    assert_eq!(sensitivity.metric, "sqnr_db");
    assert_eq!(sensitivity.samples, 100);
    // Two baselines, then both sides of every op the full-int8 model runs in int8.
    let ops = sensitivity.layers.len();
    assert!(ops > 10, "{ops} ops");
    let total = 2 + 2 * ops;
    assert!(seen.iter().all(|&(_, t)| t == total), "{seen:?}");
    assert_eq!(
        seen.iter().map(|&(d, _)| d).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    // Every op measured on both sides (the demo's float model compares with itself
    // exactly: only-quantized SQNRs are finite, only-float ones too).
    for layer in &sensitivity.layers {
        assert!(layer.only_float.is_finite(), "{layer:?}");
        assert!(layer.only_quantized.is_finite(), "{layer:?}");
    }
    engine.shutdown();
}

#[test]
fn p_stops_the_sensitivity_measurement_part_way() {
    let (engine, mut news, _dir) = engine();
    engine.submit(Effect::Sensitivity {
        metric: "sqnr_db".into(),
        higher_is_better: true,
    });
    let mut stopped_at = None;
    let result = until_measured(&mut news, |done, total| {
        if stopped_at.is_none() && done >= 3 {
            engine.submit(Effect::StopRepair);
            stopped_at = Some((done, total));
        }
    });
    let (done, total) = stopped_at.expect("progress arrived");
    assert!(done < total);
    assert_eq!(result.unwrap_err(), "stopped");
    engine.shutdown();
}
