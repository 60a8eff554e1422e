//! `qdbg quantize`: calibrate (or reuse the saved calibration), quantize to full int8 with
//! qdbg's planner, and write a `.tflite` that LiteRT runs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use qdbg::quant::plan::plan_activations;
use qdbg::quant::quantize::{quantize_graph, FloatReason, QuantizeOptions};
use qdbg::quant::CalibrationSource;

use super::{DeviceArgs, ImageArgs};

#[derive(Args)]
pub struct QuantizeArgs {
    /// The float .tflite model.
    pub model: PathBuf,
    /// Representative dataset: .npy, .npz or a folder of images (about 100 samples).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the int8 model.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Integer-only model: int8 inputs and outputs (Edge TPU and other integer-only
    /// accelerators need this), instead of float I/O with QUANTIZE / DEQUANTIZE.
    #[arg(long)]
    pub int8_io: bool,
    /// Recompute the calibration even if a matching one is saved beside the model.
    #[arg(long)]
    pub recalibrate: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub images: ImageArgs,
}

pub fn quantize(args: &QuantizeArgs) -> Result<()> {
    let started = Instant::now();
    let super::Prepared {
        original,
        graph,
        calibration,
        calibration_source: source,
        ..
    } = super::prepare(
        "qdbg quantize",
        &args.model,
        &args.data,
        None,
        &args.images,
        &args.device,
        args.recalibrate,
    )?;
    match &source {
        CalibrationSource::Reused(path) => println!("calibration: reused {}", path.display()),
        CalibrationSource::Saved(path) => println!(
            "calibration: {} samples in {:.2} s, saved to {}",
            calibration.samples,
            started.elapsed().as_secs_f64(),
            path.display()
        ),
        CalibrationSource::NotSaved(e) => {
            println!(
                "calibration: {} samples (not saved: {e})",
                calibration.samples
            )
        }
    }

    let plan = plan_activations(&graph, &calibration);
    let options = QuantizeOptions {
        int8_io: args.int8_io,
        ..Default::default()
    };
    let model = quantize_graph(&graph, &plan, &options)?;
    let bytes = qdbg::tflite::model_bytes(&model.graph, Some(&original))?;
    qdbg::atomic::write_bytes_atomic(&args.output, &bytes)?;

    let int8_ops = graph.nodes.len() - model.float_ops.len();
    println!(
        "quantized {int8_ops} of {} ops to int8; wrote {} ({} bytes, float model {} bytes)",
        graph.nodes.len(),
        args.output.display(),
        bytes.len(),
        original.len()
    );
    if !model.float_ops.is_empty() {
        println!("kept float ({}):", model.float_ops.len());
        for (pos, why) in &model.float_ops {
            let node = &graph.nodes[*pos];
            let why = match why {
                FloatReason::Denylisted => "denylisted",
                FloatReason::NoInt8Kernel => "qdbg has no int8 kernel for this op yet",
                FloatReason::CustomOp => "custom op, kept float (LiteRT runs it in float only)",
                FloatReason::NotCalibrated => "an input was not calibrated",
                FloatReason::FloatInGivenModel => "float in the given int8 model",
            };
            println!(
                "  #{} {} '{}': {why}",
                node.source_index,
                node.op.display_name(),
                graph.tensor(node.outputs[0]).name
            );
        }
    }
    Ok(())
}
