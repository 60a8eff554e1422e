//! `qdbg run`: the model's outputs on every sample, saved so users can compare them with
//! their own pipeline.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use qdbg::data::{load_dataset, write_npz_atomic, InputSpec, SampleArray};
use qdbg::exec::{parse_device, sample_from_tensor, stack_samples, tensor_from_sample, Executor};
use rayon::prelude::*;

use super::{DeviceArgs, ImageArgs, Int8Args};

#[derive(Args)]
pub struct RunArgs {
    /// The .tflite model.
    pub model: PathBuf,
    /// Samples: .npy (one input), .npz (one array per input name) or a folder of images.
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the outputs: .npz, one array per model output named like the output
    /// tensor, shaped [samples, ...] (the batch dimension of 1 dropped).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Run only the first N samples.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub arithmetic: Int8Args,
    #[command(flatten)]
    pub images: ImageArgs,
}

pub fn run(args: &RunArgs) -> Result<()> {
    let graph = qdbg::tflite::read_model(&args.model)?;
    qdbg::graph::ModelKind::of(&graph).require_runnable(&args.model)?;
    let dataset = load_dataset(
        &args.data,
        &InputSpec::for_graph(&graph),
        &args.images.options(),
    )?;
    let device = parse_device(args.device.device)?;
    let executor = Executor::with_arithmetic(&graph, &device, args.arithmetic.arithmetic())?;
    let count = args
        .limit
        .map_or(dataset.num_samples(), |n| n.min(dataset.num_samples()));

    let started = Instant::now();
    let mut per_output = vec![Vec::with_capacity(count); graph.outputs.len()];
    // Samples run in parallel; results come back in sample order.
    let results: Vec<Result<Vec<SampleArray>>> = (0..count)
        .into_par_iter()
        .map(|i| {
            let inputs = dataset
                .sample(i)?
                .iter()
                .map(|s| tensor_from_sample(s, &device))
                .collect::<qdbg::Result<Vec<_>>>()?;
            let outputs = executor
                .run(&inputs)
                .with_context(|| format!("sample {i} of {}", args.data.display()))?;
            outputs
                .iter()
                .zip(&graph.outputs)
                .map(|(value, &id)| {
                    // Drop the batch dimension of 1 so the saved arrays are [samples, ...],
                    // the same layout `--data` takes.
                    let value = match value.dims() {
                        [1, _, ..] => value.squeeze(0)?,
                        _ => value.clone(),
                    };
                    Ok(sample_from_tensor(&value, graph.tensor(id).dtype)?)
                })
                .collect()
        })
        .collect();
    for result in results {
        for (slot, array) in per_output.iter_mut().zip(result?) {
            slot.push(array);
        }
    }
    let elapsed = started.elapsed();

    let mut arrays = Vec::with_capacity(graph.outputs.len());
    for (samples, &id) in per_output.iter().zip(&graph.outputs) {
        arrays.push((graph.tensor(id).name.clone(), stack_samples(samples)?));
    }
    write_npz_atomic(&args.output, &arrays)?;
    println!(
        "ran {count} samples in {:.2} s ({:.2} ms/sample) on {:?}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / count.max(1) as f64,
        args.device.device
    );
    println!("wrote {}:", args.output.display());
    for (name, array) in &arrays {
        println!("  {name}: {:?} {}", array.shape(), array.dtype());
    }
    Ok(())
}
