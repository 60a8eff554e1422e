//! Samples run in parallel, yet every result is the same whatever the number of threads:
//! per-sample statistics merge in sample order. Checked by running the same work in rayon
//! pools of 1 and 3 threads and comparing the reports exactly (bit for bit, via their
//! debug formatting, which prints every f64 in full and NaN as NaN).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::Device;
use qdbg::data::{load_dataset, load_labels, Dataset, ImageOptions, InputSpec};
use qdbg::debug::{DebugEvent, Debugger, VerifyMode};
use qdbg::exec::Executor;
use qdbg::graph::Graph;
use qdbg::quant::{
    calibrate,
    plan::plan_activations,
    quantize::{quantize_graph, QuantizeOptions, QuantizedModel},
    Calibration,
};
use qdbg::select::selection::Selector;
use qdbg::select::Rule;

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn demo() -> (Graph, Dataset, Vec<i64>) {
    let graph = qdbg::tflite::read_model(&common::repo().join("demo/model.tflite")).unwrap();
    let data = load_dataset(
        &common::repo().join("demo/debug.npy"),
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let labels = load_labels(
        &common::repo().join("demo/labels.txt"),
        Some(data.num_samples()),
    )
    .unwrap();
    (graph, data, labels)
}

fn calibration(graph: &Graph, data: &Dataset) -> Calibration {
    let exec = Executor::new(graph, &Device::Cpu).unwrap();
    calibrate(&exec, data, String::new(), &mut |_| {}).unwrap()
}

/// The demo model quantized to full int8 with its calibration on `data`.
fn full_int8(graph: &Graph, data: &Dataset) -> QuantizedModel {
    let cal = calibration(graph, data);
    quantize_graph(
        graph,
        &plan_activations(graph, &cal),
        &QuantizeOptions::default(),
    )
    .unwrap()
}

/// A selector over the demo model calibrated on `data` (evaluating on a fresh copy of it).
fn selector_on(graph: &Graph, data: &Dataset, labels: Option<&[i64]>) -> Selector {
    let cal = calibration(graph, data);
    Selector::new(
        Arc::new(graph.clone()),
        None,
        Arc::new(plan_activations(graph, &cal)),
        Arc::new(demo().1),
        labels.map(|l| Arc::new(l.to_vec())),
        Device::Cpu,
    )
}

#[test]
fn calibration_is_the_same_on_any_number_of_threads() {
    let (graph, data, _) = demo();
    let one = in_pool(1, || calibration(&graph, &data));
    let three = in_pool(3, || calibration(&graph, &data));
    assert_eq!(one, three);
}

#[test]
fn debugger_reports_are_the_same_on_any_number_of_threads() {
    let (graph, data, labels) = demo();
    let model = full_int8(&graph, &data);
    let run = |threads: usize| {
        in_pool(threads, || {
            let debugger = Debugger::new(&graph, &model, &Device::Cpu)
                .unwrap()
                .with_layer_metric("sum_diff", Box::new(|d: &[f64]| d.iter().sum()))
                .with_model_metric(
                    "first_out",
                    Box::new(|f: &[Vec<f64>], _: &[Vec<f64>]| f[0][0]),
                );
            let mut updates = Vec::new();
            let report = debugger
                .run(
                    &data,
                    Some(&labels),
                    VerifyMode::Both,
                    &AtomicBool::new(false),
                    &mut |e| {
                        if let DebugEvent::Updated { done, report, .. } = e {
                            assert_eq!(report.samples, done);
                            updates.push(done);
                        }
                    },
                )
                .unwrap();
            (format!("{report:?}"), updates)
        })
    };
    let (one, one_updates) = run(1);
    let (three, three_updates) = run(3);
    assert_eq!(one, three);
    // Live updates: one per chunk of at most one sample per thread.
    assert_eq!(one_updates, (1..=data.num_samples()).collect::<Vec<_>>());
    assert_eq!(three_updates.len(), data.num_samples().div_ceil(3));
    assert_eq!(three_updates.last(), Some(&data.num_samples()));
}

#[test]
fn cancelling_keeps_a_prefix_of_the_samples() {
    let (graph, data, _) = demo();
    let model = full_int8(&graph, &data);
    let debugger = Debugger::new(&graph, &model, &Device::Cpu).unwrap();
    let cancel = AtomicBool::new(false);
    let report = in_pool(2, || {
        debugger
            .run(&data, None, VerifyMode::PerLayer, &cancel, &mut |e| {
                if let DebugEvent::Updated { done: 4, .. } = e {
                    cancel.store(true, Ordering::Relaxed);
                }
            })
            .unwrap()
    });
    assert_eq!(report.samples, 4);
    // The statistics are exactly those of the first four samples.
    let first_four = {
        let all: ndarray::Array4<f32> =
            ndarray_npy::read_npy(common::repo().join("demo/debug.npy")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("first_four.npy");
        ndarray_npy::write_npy(&path, &all.slice(ndarray::s![..4, .., .., ..]).to_owned()).unwrap();
        load_dataset(
            &path,
            &InputSpec::for_graph(&graph),
            &ImageOptions::default(),
        )
        .unwrap()
    };
    let again = debugger
        .run(
            &first_four,
            None,
            VerifyMode::PerLayer,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(format!("{report:?}"), format!("{again:?}"));
}

#[test]
fn selector_evaluation_matches_the_debugger_and_its_cache() {
    let (graph, data, labels) = demo();
    let selector = Arc::new(selector_on(&graph, &data, Some(&labels)));
    let full = selector.select(&[], &[]).unwrap();
    let report = Debugger::new(&graph, &full.model, &Device::Cpu)
        .unwrap()
        .run(
            &data,
            Some(&labels),
            VerifyMode::PerLayer,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
    let selective = selector
        .select(&[Rule::parse("rmse/scale > 0.7").unwrap()], &report.layers)
        .unwrap();
    assert!(selective.denylisted_ops() > 0);
    let debugger_says = Debugger::new(&graph, &selective.model, &Device::Cpu)
        .unwrap()
        .run(
            &data,
            Some(&labels),
            VerifyMode::ModelOnly,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap()
        .model;
    let evaluate = |threads: usize| {
        let selector = Arc::clone(&selector);
        let model = &selective.model;
        in_pool(threads, move || {
            let mut progress = Vec::new();
            let m = selector
                .evaluate(model, &AtomicBool::new(false), &mut |done, _| {
                    progress.push(done)
                })
                .unwrap();
            (m, progress)
        })
    };
    // First call fills the float-output cache, later ones read it.
    // Progress comes once per chunk of samples (a few per worker).
    let (first, progress) = evaluate(3);
    let chunk = in_pool(3, qdbg::threads::sample_chunk);
    assert_eq!(progress.len(), data.num_samples().div_ceil(chunk));
    let (cached, _) = evaluate(1);
    assert_eq!(format!("{first:?}"), format!("{debugger_says:?}"));
    assert_eq!(format!("{cached:?}"), format!("{debugger_says:?}"));
    // The full-int8 model through the cache agrees with the per-layer run's model metrics.
    let full_metrics = in_pool(2, || {
        selector
            .evaluate(&full.model, &AtomicBool::new(false), &mut |_, _| {})
            .unwrap()
    });
    assert_eq!(format!("{full_metrics:?}"), format!("{:?}", report.model));
}

#[test]
fn a_cancelled_evaluation_keeps_a_prefix_and_the_next_one_completes() {
    let (graph, data, _) = demo();
    let selector = selector_on(&graph, &data, None);
    let full = selector.select(&[], &[]).unwrap();
    let cancel = AtomicBool::new(false);
    // Cancelled after the first chunk: the metrics cover that chunk's samples only.
    let chunk = in_pool(2, qdbg::threads::sample_chunk);
    assert!(chunk < data.num_samples());
    let partial = in_pool(2, || {
        selector
            .evaluate(&full.model, &cancel, &mut |done, _| {
                if done >= 1 {
                    cancel.store(true, Ordering::Relaxed);
                }
            })
            .unwrap()
    });
    assert_eq!(partial.samples, chunk);
    let complete = selector
        .evaluate(&full.model, &AtomicBool::new(false), &mut |_, _| {})
        .unwrap();
    assert_eq!(complete.samples, data.num_samples());
}

/// Denylists evaluated one after another on one selector (each starting from the
/// checkpoints the earlier ones left) measure what the debugger measures from scratch.
#[test]
fn checkpointed_evaluations_match_runs_from_scratch() {
    let (graph, data, labels) = demo();
    let selector = selector_on(&graph, &data, Some(&labels));
    let full = selector.select(&[], &[]).unwrap();
    let report = Debugger::new(&graph, &full.model, &Device::Cpu)
        .unwrap()
        .run(
            &data,
            Some(&labels),
            VerifyMode::PerLayer,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
    // Late differences first (they leave late checkpoints), then earlier and later again.
    let denylists = [
        "last:1",
        "rmse/scale > 2",
        "rmse/scale > 0.7",
        "first:1",
        "last:2",
        "rmse/scale > 100",
        "first:2",
    ];
    for text in denylists {
        let selection = selector
            .select(&[Rule::parse(text).unwrap()], &report.layers)
            .unwrap();
        let evaluated = selector
            .evaluate(&selection.model, &AtomicBool::new(false), &mut |_, _| {})
            .unwrap();
        let scratch = Debugger::new(&graph, &selection.model, &Device::Cpu)
            .unwrap()
            .run(
                &data,
                Some(&labels),
                VerifyMode::ModelOnly,
                &AtomicBool::new(false),
                &mut |_| {},
            )
            .unwrap()
            .model;
        assert_eq!(format!("{evaluated:?}"), format!("{scratch:?}"), "{text}");
    }
}

/// Sharing the float model's outputs (remembered by the calibration, read by the debugger
/// and the selector instead of running the float model again) changes no number.
#[test]
fn shared_float_outputs_change_nothing() {
    let (graph, data, labels) = demo();
    let cache = Arc::new(qdbg::exec::FloatOutputCache::new(data.num_samples()));
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = qdbg::quant::calibrate_keeping_outputs(
        &exec,
        &data,
        String::new(),
        Some(&cache),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(cal, calibration(&graph, &data));
    assert!((0..data.num_samples()).all(|s| cache.get(s).is_some()));
    let model = quantize_graph(
        &graph,
        &plan_activations(&graph, &cal),
        &QuantizeOptions::default(),
    )
    .unwrap();
    let report = |shared: bool| {
        let mut debugger = Debugger::new(&graph, &model, &Device::Cpu).unwrap();
        if shared {
            debugger = debugger.with_float_outputs(Arc::clone(&cache));
        }
        let report = debugger
            .run(
                &data,
                Some(&labels),
                VerifyMode::PerLayer,
                &AtomicBool::new(false),
                &mut |_| {},
            )
            .unwrap();
        format!("{report:?}")
    };
    assert_eq!(report(true), report(false));

    let data = Arc::new(data);
    let evaluate = |shared: bool| {
        let mut selector = Selector::new(
            Arc::new(graph.clone()),
            None,
            Arc::new(plan_activations(&graph, &cal)),
            Arc::clone(&data),
            Some(Arc::new(labels.clone())),
            Device::Cpu,
        );
        if shared {
            selector = selector.with_float_outputs(Arc::clone(&cache));
        }
        let selection = selector
            .select(&[Rule::parse("first:2").unwrap()], &[])
            .unwrap();
        let metrics = selector
            .evaluate(&selection.model, &AtomicBool::new(false), &mut |_, _| {})
            .unwrap();
        format!("{metrics:?}")
    };
    assert_eq!(evaluate(true), evaluate(false));
}

/// Without histograms (`qdbg debug --csv`), every statistic but the KL divergence is the
/// same as with them, bit for bit, in both verify modes; the KL divergence is NaN and no
/// layer carries histograms.
#[test]
fn histograms_off_change_nothing_else() {
    let (graph, data, labels) = demo();
    let model = full_int8(&graph, &data);
    let run = |histograms: bool| {
        Debugger::new(&graph, &model, &Device::Cpu)
            .unwrap()
            .with_histograms(histograms)
            .run(
                &data,
                Some(&labels),
                VerifyMode::Both,
                &AtomicBool::new(false),
                &mut |_| {},
            )
            .unwrap()
    };
    let (with, without) = (run(true), run(false));
    assert_eq!(format!("{:?}", with.model), format!("{:?}", without.model));
    assert_eq!(with.layers.len(), without.layers.len());
    for (a, b) in with.layers.iter().zip(&without.layers) {
        assert!(a.histograms.is_some() && b.histograms.is_none());
        for (ma, mb) in [(a.per_layer, b.per_layer), (a.whole_model, b.whole_model)] {
            let (mut ma, mut mb) = (ma.unwrap(), mb.unwrap());
            assert!(ma.kl_divergence.is_finite() && mb.kl_divergence.is_nan());
            ma.kl_divergence = 0.0;
            mb.kl_divergence = 0.0;
            assert_eq!(
                format!("{ma:?}"),
                format!("{mb:?}"),
                "{}",
                a.info.tensor_name
            );
        }
    }
}
