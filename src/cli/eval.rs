//! `qdbg eval`: any .tflite models (float, int8, selective; qdbg's or TensorFlow's) on the
//! same data, side by side: accuracy with labels, and agreement with the first model.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use qdbg::data::{load_dataset, load_labels, InputSpec};
use qdbg::exec::{parse_device, tensor_from_sample, Executor};
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

fn ranked(v: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let device = parse_device(args.device.device)?;
    let mut rankings: Vec<Vec<Vec<usize>>> = Vec::new();
    let mut labels = None;
    let mut samples = 0;
    for path in &args.models {
        let graph = qdbg::tflite::read_model(path)?;
        qdbg::graph::ModelKind::of(&graph).require_runnable(path)?;
        let dataset = load_dataset(
            &args.data,
            &InputSpec::for_graph(&graph),
            &args.images.options(),
        )?;
        samples = dataset.num_samples();
        if labels.is_none() {
            if let Some(l) = &args.labels {
                labels = Some(load_labels(l, Some(samples))?);
            }
        }
        let exec = Executor::with_arithmetic(&graph, &device, args.arithmetic.arithmetic())?;
        // Samples run in parallel; rankings come back in sample order.
        let per_sample = (0..samples)
            .into_par_iter()
            .map(|i| {
                let inputs = dataset
                    .sample(i)?
                    .iter()
                    .map(|s| tensor_from_sample(s, &device))
                    .collect::<qdbg::Result<Vec<_>>>()?;
                let out = exec.run(&inputs)?;
                let first = out
                    .first()
                    .ok_or_else(|| qdbg::Error::Internal("model has no outputs".into()))?
                    .flatten_all()
                    .and_then(|t| t.to_dtype(candle_core::DType::F32))
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| qdbg::Error::candle("reading the first output's scores", e))?;
                Ok(ranked(&first))
            })
            .collect::<Vec<qdbg::Result<_>>>()
            .into_iter()
            // In sample order: the first failing sample is the one reported.
            .collect::<qdbg::Result<Vec<_>>>()?;
        rankings.push(per_sample);
    }
    let k = args.top_k.max(1);
    println!(
        "{samples} samples; agreement is with {}",
        args.models[0].display()
    );
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
    Ok(())
}
