//! `qdbg sensitivity`: every quantized op's effect on a model-level metric, kept float
//! alone (in the full-int8 model) and quantized alone (in the float model).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;

use qdbg::repair::sensitivity::{measure, write_csv, write_json, Measure};
use qdbg::repair::target::{check_metric, higher_is_better};
use qdbg::repair::Target;
use qdbg::session::FloatModel;

use super::{DeviceArgs, ImageArgs, InputArgs, Int8Args};

#[derive(Args)]
#[command(
    after_help = "Example:\n  qdbg sensitivity model.tflite --data debug.npy --labels labels.txt \
--target 'top1 >= float_top1 - 0.5' --csv sensitivity.csv"
)]
pub struct SensitivityArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Measure the metric of this target's first comparison (its direction says which
    /// way is better).
    #[arg(long, conflicts_with = "metric")]
    pub target: Option<String>,
    /// Measure this metric (default: top1 with --labels, else min_output_sqnr_db).
    #[arg(long)]
    pub metric: Option<String>,
    /// Write one row per op as CSV here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write the measurements as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Recompute the calibration even if a matching one is saved beside the model.
    #[arg(long)]
    pub recalibrate: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub arithmetic: Int8Args,
    #[command(flatten)]
    pub images: ImageArgs,
}

/// The metric to measure and whether larger is better, from `--target` / `--metric`.
pub fn chosen_metric(
    target: Option<&str>,
    metric: Option<&str>,
    has_labels: bool,
) -> Result<(String, bool)> {
    if let Some(text) = target {
        let target = Target::parse(text).map_err(|e| qdbg::Error::usage("--target", e))?;
        let (metric, higher) = target.primary();
        return Ok((metric.to_string(), higher));
    }
    let metric = metric.map_or_else(
        || {
            if has_labels {
                "top1".to_string()
            } else {
                "min_output_sqnr_db".to_string()
            }
        },
        |m| m.trim().to_string(),
    );
    let higher = higher_is_better(&metric);
    Ok((metric, higher))
}

pub fn sensitivity(args: &SensitivityArgs) -> Result<()> {
    let inputs = &args.inputs;
    let model = FloatModel::read(&inputs.model, "qdbg sensitivity")?;
    let has_labels = inputs.labels.is_some();
    let (metric, higher) =
        chosen_metric(args.target.as_deref(), args.metric.as_deref(), has_labels)?;
    let option = if args.target.is_some() {
        "--target"
    } else {
        "--metric"
    };
    // An unknown name is refused with the list of metrics, an output the model lacks with
    // its outputs, an accuracy without labels saying so.
    check_metric(&model.graph, has_labels, &metric, option)?;
    let session = model
        .with_data(
            &inputs.data,
            inputs.labels.as_deref(),
            &args.images.options(),
            args.device.device,
        )?
        .with_tasks(&inputs.tasks)?
        .calibrate(args.recalibrate, args.arithmetic.arithmetic(), &mut |_| {})?;
    let started = std::time::Instant::now();
    let Some(result) = measure(
        &session.selector,
        &metric,
        higher,
        Measure::BOTH,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )?
    else {
        anyhow::bail!("the measurement was cancelled");
    };
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &args.csv {
        write_csv(path, &result)?;
    }
    if let Some(path) = &args.json {
        write_json(path, &result)?;
    }
    println!(
        "{metric} ({} is better) on {} samples: float {:.4}, full int8 {:.4}",
        if higher { "higher" } else { "lower" },
        result.samples,
        result.float,
        result.full_int8
    );
    println!(
        "\n{:>5} {:<18} {:>12} {:>14}  tensor",
        "op#", "op", "only float", "only int8"
    );
    for l in &result.layers {
        println!(
            "{:>5} {:<18} {:>12.4} {:>14.4}  {}",
            l.source_index, l.op, l.only_float, l.only_quantized, l.tensor
        );
    }
    println!(
        "\n'only float': the full-int8 model with only this op float; 'only int8': the float \
         model with only this op quantized. {} ops, {seconds:.2} s.",
        result.layers.len()
    );
    Ok(())
}
