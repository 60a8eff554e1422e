//! Inference latency of a model (float or int8) on one sample, for
//! `benches/latency_vs_litert.sh`.
//! Prints one JSON line like `benches/litert_latency.py` does, so the script can divide.
//!
//! cargo bench --bench inference -- MODEL INPUTS.npz [RUNS]

use std::time::Instant;

use candle_core::{Device, Tensor as CTensor};
use ndarray::Axis;
use ndarray_npy::NpzReader;
use qdbg::exec::Executor;

fn main() {
    // One op at a time on one thread, as LiteRT is timed: `RAYON_NUM_THREADS` sizes only
    // the sample workers, which a single-sample latency run does not use.
    let threads = qdbg::threads::configure(None).expect("worker threads");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (model, inputs) = match (args.first(), args.get(1)) {
        (Some(m), Some(i)) => (m.clone(), i.clone()),
        _ => {
            eprintln!("usage: inference MODEL INPUTS.npz [RUNS]");
            std::process::exit(2);
        }
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(30);
    let graph = qdbg::tflite::read_model(model.as_ref()).expect("model");
    let mut npz = NpzReader::new(std::fs::File::open(&inputs).expect("inputs")).expect("npz");
    let sample: Vec<CTensor> = graph
        .inputs
        .iter()
        .map(|&id| {
            let t = graph.tensor(id);
            let a: ndarray::ArrayD<f32> = npz
                .by_name(&format!("{}.npy", t.name))
                .expect("input array");
            let first: Vec<f32> = a.index_axis(Axis(0), 0).iter().copied().collect();
            CTensor::from_vec(first, t.shape.clone(), &Device::Cpu).expect("tensor")
        })
        .collect();
    let exec = Executor::new(&graph, &Device::Cpu).expect("executor");
    for _ in 0..5 {
        exec.run(&sample).expect("warm-up run");
    }
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            exec.run(&sample).expect("run");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    // QDBG_BENCH_PROFILE=1: where the time goes, per op type (for optimisation work).
    if std::env::var_os("QDBG_BENCH_PROFILE").is_some() {
        let mut per_op: std::collections::BTreeMap<&str, f64> = Default::default();
        for _ in 0..runs {
            let mut last = Instant::now();
            exec.run_profiled(&sample, &mut |pos| {
                *per_op.entry(graph.nodes[pos].op.name()).or_default() +=
                    last.elapsed().as_secs_f64() * 1e3;
                last = Instant::now();
            })
            .expect("profiled run");
        }
        let mut rows: Vec<_> = per_op.into_iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (op, ms) in rows {
            eprintln!("{op:<24} {:>8.3} ms/run", ms / runs as f64);
        }
    }
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{{\"runner\": \"qdbg\", \"model\": \"{model}\", \"threads\": \"{}\", \"runs\": {runs}, \"median_ms\": {:.3}, \"p10_ms\": {:.3}, \"p90_ms\": {:.3}}}",
        threads,
        pick(0.5),
        pick(0.1),
        pick(0.9)
    );
}
