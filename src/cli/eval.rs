//! `qdbg eval`: any .tflite models (float, int8, selective; qdbg's or TensorFlow's) on the
//! same data, side by side: accuracy with labels, agreement with the first model, and each
//! model's SQNR against the first, output by output.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use qdbg::data::{load_dataset, load_labels, InputSpec};
use qdbg::debug::metrics::{given_tasks, output_names, ModelAccumulator, ModelMetrics, TaskChoice};
use qdbg::exec::{host_f32, parse_device, tensor_from_sample, Executor};
use qdbg::graph::Graph;
use rayon::prelude::*;

use super::{DeviceArgs, ImageArgs, Int8Args};

#[derive(Args)]
#[command(
    after_help = "Example:\n  qdbg eval model.tflite selective.tflite model_int8.tflite \\\n    \
--data debug.npy --labels labels.txt --top-k 5"
)]
pub struct EvalArgs {
    /// The models; the first is the reference for agreement.
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Samples: .npy, .npz or a folder of images.
    #[arg(long)]
    pub data: PathBuf,
    /// Labels (one per sample) for accuracy.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// What an output is for, deciding its metrics: OUTPUT=TASK (OUTPUT a name or an
    /// index; TASK classify, detect, regress or segment), or TASK alone for a model with one
    /// output. Repeatable; outputs not named are guessed (the summary says which).
    #[arg(long = "task", value_name = "OUTPUT=TASK", value_parser = super::parse_task)]
    pub tasks: Vec<TaskChoice>,
    /// k for top-k accuracy.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub arithmetic: Int8Args,
    #[command(flatten)]
    pub images: ImageArgs,
}

fn ranked(v: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx
}

/// One model's outputs as real values: an int8 (or other integer) output with quantization
/// parameters is dequantized, so that a model with int8 outputs compares with a float one.
fn real_outputs(graph: &Graph, outputs: &[candle_core::Tensor]) -> qdbg::Result<Vec<Vec<f64>>> {
    outputs
        .iter()
        .zip(&graph.outputs)
        .map(|(t, &id)| {
            let values = host_f32(t)?;
            let tensor = graph.tensor(id);
            let params = match &tensor.quant {
                Some(q) if !tensor.dtype.is_float() => q.scale.first().zip(q.zero_point.first()),
                _ => None,
            };
            Ok(match params {
                Some((&scale, &zp)) => values
                    .iter()
                    .map(|&v| (f64::from(v) - zp as f64) * f64::from(scale))
                    .collect(),
                None => values.iter().map(|&v| f64::from(v)).collect(),
            })
        })
        .collect()
}

/// Whether two models' outputs line up (same count, same sizes): the condition for
/// comparing them output by output.
fn same_layout(a: &[Vec<f64>], b: &[Vec<f64>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.len() == y.len())
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let device = parse_device(args.device.device)?;
    let mut graphs = Vec::with_capacity(args.models.len());
    for path in &args.models {
        let graph = qdbg::tflite::read_model(path)?;
        qdbg::graph::ModelKind::of(&graph).require_runnable(path)?;
        graphs.push(graph);
    }
    let mut datasets = Vec::with_capacity(graphs.len());
    for graph in &graphs {
        datasets.push(load_dataset(
            &args.data,
            &InputSpec::for_graph(graph),
            &args.images.options(),
        )?);
    }
    let samples = datasets[0].num_samples();
    for (path, dataset) in args.models.iter().zip(&datasets) {
        if dataset.num_samples() != samples {
            anyhow::bail!(
                "{} reads {} as {} samples, the first model as {samples}: give models with \
                 the same inputs",
                path.display(),
                args.data.display(),
                dataset.num_samples()
            );
        }
    }
    let labels = match &args.labels {
        Some(l) => Some(load_labels(l, Some(samples))?),
        None => None,
    };
    let execs = graphs
        .iter()
        .map(|g| Executor::with_arithmetic(g, &device, args.arithmetic.arithmetic()))
        .collect::<qdbg::Result<Vec<_>>>()?;
    let names = output_names(&graphs[0]);
    let tasks = given_tasks(&names, &args.tasks)?;
    let mut compared: Vec<Option<ModelAccumulator>> =
        vec![Some(ModelAccumulator::for_graph(&graphs[0], &tasks)); graphs.len()];
    let mut rankings: Vec<Vec<Vec<usize>>> = vec![Vec::with_capacity(samples); graphs.len()];
    let mut class_output: Option<Option<usize>> = None;
    // Every model runs on a sample before the next chunk: each is compared with the first,
    // output by output, and no model's outputs are kept beyond the chunk.
    let chunk = rayon::current_num_threads().max(1);
    let mut done = 0;
    while done < samples {
        let end = (done + chunk).min(samples);
        let outputs = (done..end)
            .into_par_iter()
            .map(|i| {
                graphs
                    .iter()
                    .zip(&datasets)
                    .zip(&execs)
                    .map(|((graph, dataset), exec)| {
                        let inputs = dataset
                            .sample(i)?
                            .iter()
                            .map(|s| tensor_from_sample(s, &device))
                            .collect::<qdbg::Result<Vec<_>>>()?;
                        real_outputs(graph, &exec.run(&inputs)?)
                    })
                    .collect::<qdbg::Result<Vec<_>>>()
            })
            .collect::<Vec<qdbg::Result<_>>>()
            .into_iter()
            // In sample order: the first failing sample is the one reported.
            .collect::<qdbg::Result<Vec<_>>>()?;
        for per_model in &outputs {
            let reference = &per_model[0];
            for (k, out) in per_model.iter().enumerate() {
                if !same_layout(reference, out) {
                    compared[k] = None;
                }
                if let Some(acc) = &mut compared[k] {
                    acc.add_sample(reference, out, None);
                }
            }
            // The class table ranks the first classify output (given, or guessed on the
            // first sample by the reference's accumulator, compared with itself).
            let class_out = *class_output.get_or_insert_with(|| {
                compared[0].as_ref().and_then(|acc| {
                    let m = acc.metrics();
                    m.outputs.iter().position(|o| o.classify.is_some())
                })
            });
            if let Some(c) = class_out {
                for (k, out) in per_model.iter().enumerate() {
                    let scores = out.get(c).ok_or_else(|| {
                        qdbg::Error::Internal(format!(
                            "{} has no output {c}",
                            args.models[k].display()
                        ))
                    })?;
                    rankings[k].push(ranked(scores));
                }
            }
        }
        done = end;
    }
    let k = args.top_k.max(1);
    println!(
        "{samples} samples; agreement is with {}",
        args.models[0].display()
    );
    let reference = compared[0].as_ref().map(ModelAccumulator::metrics);
    for o in reference.iter().flat_map(|m| &m.outputs) {
        println!("  {}: {}", o.name, super::task_label(o));
    }
    let Some(class_out) = class_output.flatten() else {
        println!(
            "no classify output: no top-1/top-{k} table (--task OUTPUT=classify to ask for one)"
        );
        if graphs.len() > 1 {
            print_output_sqnr(args, &names, &compared);
        }
        return Ok(());
    };
    println!("classes from output {}", names[class_out]);
    println!(
        "{:>9} {:>9} {:>10}  model",
        "top-1",
        format!("top-{k}"),
        "same top-1"
    );
    for (path, ranks) in args.models.iter().zip(&rankings) {
        let pct = |n: usize| format!("{:.1}%", 100.0 * n as f64 / samples.max(1) as f64);
        let (top1, topk) = match &labels {
            Some(l) => {
                let hit =
                    |r: &Vec<usize>, y: i64, n: usize| r.iter().take(n).any(|&c| c as i64 == y);
                let t1 = ranks
                    .iter()
                    .zip(l.iter())
                    .filter(|(r, &y)| hit(r, y, 1))
                    .count();
                let tk = ranks
                    .iter()
                    .zip(l.iter())
                    .filter(|(r, &y)| hit(r, y, k))
                    .count();
                (pct(t1), pct(tk))
            }
            None => ("-".into(), "-".into()),
        };
        let same = ranks
            .iter()
            .zip(&rankings[0])
            .filter(|(a, b)| a.first() == b.first())
            .count();
        println!("{top1:>9} {topk:>9} {:>10}  {}", pct(same), path.display());
    }
    if graphs.len() > 1 {
        print_output_sqnr(args, &names, &compared);
    }
    Ok(())
}

/// Each model's SQNR against the first model, one line per output, the worst of each
/// model marked: pooled, the biggest output's error hides a small one's.
fn print_output_sqnr(args: &EvalArgs, names: &[String], compared: &[Option<ModelAccumulator>]) {
    let metrics: Vec<Option<ModelMetrics>> = compared
        .iter()
        .map(|a| a.as_ref().map(ModelAccumulator::metrics))
        .collect();
    println!(
        "\nsqnr (dB) against {}, per output (* the model's worst):",
        args.models[0].display()
    );
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let header: Vec<String> = (1..args.models.len()).map(|k| format!("{k:>9}")).collect();
    println!("  {:<width$} {}", "output", header.join(" "));
    for name in names {
        let cells: Vec<String> = metrics[1..]
            .iter()
            .map(|m| match m {
                Some(m) => {
                    let value = m.output(name).map_or(f64::NAN, |o| o.sqnr_db);
                    let mark = if m.worst_output.as_deref() == Some(name) {
                        "*"
                    } else {
                        " "
                    };
                    format!("{value:>8.1}{mark}")
                }
                None => format!("{:>9}", "-"),
            })
            .collect();
        println!("  {name:<width$} {}", cells.join(" "));
    }
    for (k, (path, m)) in args.models.iter().zip(&metrics).enumerate().skip(1) {
        match m {
            Some(_) => println!("  {k:>width$}: {}", path.display()),
            None => println!(
                "  {k:>width$}: {} (its outputs differ in number or size from the first \
                 model's: not compared)",
                path.display()
            ),
        }
    }
}
