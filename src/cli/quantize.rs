//! `qdbg quantize`: calibrate (or reuse the saved calibration), quantize to full int8 (or
//! whole-model 16x8, or int8 with the ops `--int16` rules name in 16x8) with qdbg's
//! planner, and write a `.tflite` that LiteRT runs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use qdbg::kernels::int8::Arithmetic;
use qdbg::quant::quantize::{quantize_graph, FloatReason, QuantizeOptions};
use qdbg::quant::CalibrationSource;
use qdbg::select::denylist::{check_names, resolve};
use qdbg::select::int16::plan_int16;
use qdbg::select::Rule;
use qdbg::session::FloatModel;

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
    /// Activation type: int8 (full int8), or int16 for a whole-model 16x8 file (int16
    /// activations, int8 weights, int64 biases; ops without a 16x8 kernel stay float,
    /// as TensorFlow's converter keeps them with the 16x8 op set).
    #[arg(long, value_enum, default_value_t = Activations::Int8)]
    pub activations: Activations,
    /// Compute the ops this rule picks in 16x8, the rest int8 (repeatable): name:, glob:,
    /// re: or op: (rules on the debugger's statistics, first: and last: need `qdbg
    /// select`, which runs the debugger). Same language as `qdbg select --int16`.
    #[arg(long = "int16", conflicts_with = "activations")]
    pub int16: Vec<String>,
    /// Compute every op of this type in 16x8 (repeatable), e.g. CONV_2D.
    #[arg(long, conflicts_with = "activations")]
    pub int16_op: Vec<String>,
    /// Recompute the calibration even if a matching one is saved beside the model.
    #[arg(long)]
    pub recalibrate: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub images: ImageArgs,
}

/// The activation type of `qdbg quantize --activations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Activations {
    Int8,
    Int16,
}

/// The `--int16` rules, refused when they need the debugger's per-layer statistics.
fn int16_rules(args: &QuantizeArgs) -> Result<Vec<Rule>> {
    let rules = super::select::int16_rules(&args.int16, None, None, &args.int16_op)?;
    for rule in &rules {
        if let Rule::Int16(inner) = rule {
            if matches!(**inner, Rule::Metric(_) | Rule::First(_) | Rule::Last(_)) {
                return Err(qdbg::Error::usage(
                    "--int16",
                    format!(
                        "'{inner}' needs the debugger's per-layer statistics, which `qdbg \
                         quantize` does not compute: use `qdbg select --int16 '{inner}'` \
                         (same options), or name the ops with name:, glob:, re: or op:"
                    ),
                )
                .into());
            }
        }
    }
    Ok(rules)
}

pub fn quantize(args: &QuantizeArgs) -> Result<()> {
    let started = Instant::now();
    let rules = int16_rules(args)?;
    let model = FloatModel::read(&args.model, "qdbg quantize")?;
    // A misspelt name or an op that cannot be int16 is known before calibrating.
    check_names(&model.graph, &rules)?;
    let session = model
        .with_data(&args.data, None, &args.images.options(), args.device.device)?
        // No int8 model runs here: the arithmetic is irrelevant.
        .calibrate(args.recalibrate, Arithmetic::Builtin, &mut |_| {})?;
    let (graph, calibration, source) = (
        session.graph(),
        &session.calibration,
        &session.calibration_source,
    );
    match source {
        CalibrationSource::Reused(path) => println!("calibration: reused {}", path.display()),
        CalibrationSource::Saved(path) => println!(
            "calibration: {} samples in {:.2} s, saved to {}",
            calibration.samples,
            started.elapsed().as_secs_f64(),
            path.display()
        ),
        CalibrationSource::Samples(samples) => {
            println!("calibration: samples {samples:?} only (not saved)")
        }
        CalibrationSource::NotSaved(e) => {
            println!(
                "calibration: {} samples (not saved: {e})",
                calibration.samples
            )
        }
    }

    let options = QuantizeOptions {
        int8_io: args.int8_io,
        ..Default::default()
    };
    let (model, kind) = match args.activations {
        Activations::Int8 if !rules.is_empty() => {
            let resolved = resolve(graph, &rules, &[])?;
            for rule in &resolved.unmatched {
                eprintln!("note: rule '{rule}' matches nothing");
            }
            let mixed = plan_int16(&session.selector.plan, graph, calibration, &resolved);
            super::select::print_int16(graph, &mixed.int16, &mixed.refused);
            (
                quantize_graph(graph, &mixed.plan, &options)?,
                "int8 and 16x8",
            )
        }
        Activations::Int8 => (session.quantize(&options)?, "int8"),
        Activations::Int16 => (session.quantize_16x8(&options)?, "16x8"),
    };
    let original = session.selector.original.as_deref().map(Vec::as_slice);
    let bytes = qdbg::tflite::model_bytes(&model.graph, original)?;
    qdbg::atomic::write_bytes_atomic(&args.output, &bytes)?;

    let int8_ops = graph.nodes.len() - model.float_ops.len();
    println!(
        "quantized {int8_ops} of {} ops to {kind}; wrote {} ({} bytes, float model {} bytes)",
        graph.nodes.len(),
        args.output.display(),
        bytes.len(),
        session.float_size()
    );
    if !model.float_ops.is_empty() {
        println!("kept float ({}):", model.float_ops.len());
        for (pos, why) in &model.float_ops {
            let node = &graph.nodes[*pos];
            let why = match why {
                FloatReason::Denylisted => "denylisted",
                FloatReason::NoInt8Kernel => "no int8 kernel (LiteRT runs it in float only)",
                FloatReason::NoInt16Kernel => {
                    "no 16x8 kernel (TensorFlow's 16x8 conversion keeps it float too)"
                }
                FloatReason::CustomOp => "custom op, kept float (LiteRT runs it in float only)",
                FloatReason::NotCalibrated => "an input was not calibrated",
                FloatReason::FloatInGivenModel => "float in the given int8 model",
                FloatReason::DivisorOnZeroPoint => {
                    "its divisor's calibrated values reach the int8 zero point \
                     (LiteRT's int8 DIV refuses to divide by it)"
                }
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
