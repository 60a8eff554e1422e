//! The debugger on a worker thread: events stream in order, and cancelling takes effect
//! within the chunk of samples in flight (one sample per thread) while keeping what was
//! gathered.

mod common;

use std::sync::Arc;

use candle_core::Device;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::debug::job::{spawn, JobSettings};
use qdbg::debug::{DebugEvent, VerifyMode};
use qdbg::exec::Executor;
use qdbg::quant::{
    calibrate,
    plan::plan_activations,
    quantize::{quantize_graph, QuantizeOptions},
};

#[test]
fn streams_events_and_cancels_within_one_sample() {
    let model_path = common::repo().join("demo/model.tflite");
    let graph = qdbg::tflite::read_model(&model_path).unwrap();
    let data = load_dataset(
        &common::repo().join("demo/debug.npy"),
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let model = quantize_graph(
        &graph,
        &plan_activations(&graph, &cal),
        &QuantizeOptions::default(),
    )
    .unwrap();
    let total = data.num_samples();
    let job = spawn(
        Arc::new(graph),
        Arc::new(model),
        Arc::new(data),
        None,
        JobSettings::new(VerifyMode::PerLayer),
    );

    match job.events.recv().unwrap() {
        DebugEvent::Started { layers, samples } => {
            assert_eq!(samples, total);
            assert!(!layers.is_empty());
        }
        other => panic!("first event should be Started, got {other:?}"),
    }
    let cancelled_after = match job.events.recv().unwrap() {
        DebugEvent::Updated { done, report, .. } => {
            assert_eq!(report.samples, done);
            done
        }
        other => panic!("expected an update, got {other:?}"),
    };
    job.cancel();
    let report = job.join().unwrap();
    // The chunk in flight when cancel arrived (at most one sample per thread of rayon's
    // pool, which the worker uses) may finish; no further one starts.
    let chunk = rayon::current_num_threads();
    assert!(
        report.samples <= cancelled_after + chunk,
        "{} samples after cancelling at {cancelled_after}",
        report.samples
    );
    assert!(report.samples < total);
    assert!(report.layers.iter().all(|l| l.per_layer.is_some()));
}
