//! `qdbg debug`: quantize (reusing the saved calibration), run the debug data through the
//! float and int8 models, and report every int8 layer's error like TensorFlow's
//! `QuantizationDebugger`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::Result;
use clap::{Args, ValueEnum};
use qdbg::debug::metrics::EXTRA_METRICS;
use qdbg::debug::model_explorer::write_node_data;
use qdbg::debug::report::{range, rmse_over_scale, write_csv, write_json, LAYER_METRICS};
use qdbg::debug::{DebugEvent, Debugger, VerifyMode};
use qdbg::quant::foreign::pair_with_float;
use qdbg::quant::quantize::QuantizeOptions;
use qdbg::repair::sensitivity::Sensitivity;

use super::{DeviceArgs, ImageArgs, InputArgs, Int8Args};

#[derive(Args)]
pub struct DebugArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Write TensorFlow's `layer_statistics_dump` CSV here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write every layer's statistics as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// per-layer: each op's own error (TensorFlow's default); whole-model: error
    /// accumulated down the model; both: side by side.
    #[arg(long, value_enum, default_value = "per-layer")]
    pub mode: ModeArg,
    /// Extra metrics for the CSV, comma-separated: sqnr_db, cosine, mean_abs_error,
    /// max_abs_error_global, kl_divergence, correlation, saturation (all are in the JSON).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// How many of the worst layers to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Recompute the calibration even if a matching one is saved beside the model.
    #[arg(long)]
    pub recalibrate: bool,
    /// Debug this int8 model (made by TensorFlow's converter or another tool) against the
    /// float model instead of quantizing it with qdbg; its ops are paired with the float
    /// model's by op type and output tensor name.
    #[arg(long, value_name = "INT8_MODEL")]
    pub int8: Option<PathBuf>,
    /// Write per-layer statistics as node data for Google's Model Explorer here (open the
    /// float model in Model Explorer, then load this file as its node data).
    #[arg(long, value_name = "FILE.json")]
    pub model_explorer: Option<PathBuf>,
    /// The metric Model Explorer colours the nodes by.
    #[arg(long, value_name = "METRIC", default_value = "rmse/scale")]
    pub model_explorer_metric: String,
    /// Add each op's sensitivity to the CSV and JSON: the model-level metric with only this
    /// op float (column `sensitivity_only_float`) and with only this op int8
    /// (`sensitivity_only_int8`), as `qdbg sensitivity` measures them.
    #[arg(long)]
    pub sensitivity: bool,
    /// The metric --sensitivity measures (default: top1 with --labels, else
    /// min_output_sqnr_db).
    #[arg(long, value_name = "METRIC", requires = "sensitivity")]
    pub sensitivity_metric: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub arithmetic: Int8Args,
    #[command(flatten)]
    pub images: ImageArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    PerLayer,
    WholeModel,
    Both,
}

impl ModeArg {
    pub fn verify_mode(self) -> VerifyMode {
        match self {
            ModeArg::PerLayer => VerifyMode::PerLayer,
            ModeArg::WholeModel => VerifyMode::WholeModel,
            ModeArg::Both => VerifyMode::Both,
        }
    }
}

pub fn debug(args: &DebugArgs) -> Result<()> {
    if let Some(bad) = args
        .metrics
        .iter()
        .find(|m| !EXTRA_METRICS.contains(&m.as_str()))
    {
        // A usage error: exit code 2, like clap's own.
        return Err(qdbg::Error::usage(
            "--metrics",
            format!(
                "unknown metric '{bad}'; choose from {}",
                EXTRA_METRICS.join(", ")
            ),
        )
        .into());
    }
    if args.model_explorer.is_some()
        && !LAYER_METRICS.contains(&args.model_explorer_metric.as_str())
    {
        return Err(qdbg::Error::usage(
            "--model-explorer-metric",
            format!(
                "unknown metric '{}'; choose from {}",
                args.model_explorer_metric,
                LAYER_METRICS.join(", ")
            ),
        )
        .into());
    }
    // Histograms serve the JSON (which has every statistic) and the KL divergence; the
    // CSV and the summary do without, and skipping them halves the measuring.
    let explorer_metric = args
        .model_explorer
        .as_ref()
        .map(|_| args.model_explorer_metric.as_str());
    let wanted = || {
        args.metrics
            .iter()
            .map(String::as_str)
            .chain(explorer_metric)
    };
    let histograms = args.json.is_some() || wanted().any(|m| m == "kl_divergence");
    // Likewise the extra metrics' sums: only the JSON and the metrics named want them.
    let extras =
        args.json.is_some() || wanted().any(|m| m != "kl_divergence" && EXTRA_METRICS.contains(&m));
    if args.sensitivity && args.int8.is_some() {
        return Err(qdbg::Error::usage(
            "--sensitivity",
            "measures qdbg's own quantization, not a given --int8 model; drop one of them",
        )
        .into());
    }
    let mode = args.mode.verify_mode();
    let loaded = args.inputs.load("qdbg debug", &args.images, &args.device)?;
    let sensitivity_metric = if args.sensitivity {
        let has_labels = loaded.labels.is_some();
        let (metric, higher) = super::sensitivity::chosen_metric(
            None,
            args.sensitivity_metric.as_deref(),
            has_labels,
        )?;
        qdbg::repair::target::check_metric(
            &loaded.model.graph,
            has_labels,
            &metric,
            "--sensitivity-metric",
        )?;
        Some((metric, higher))
    } else {
        None
    };
    let arithmetic = args.arithmetic.arithmetic();
    match &args.int8 {
        Some(int8_path) => {
            let int8 = qdbg::tflite::read_model(int8_path)?;
            // The float model as the converter rewrote it (same values): the pairing
            // refers to its ops.
            let (graph, model) = pair_with_float(&loaded.model.graph, int8)?;
            let debugger = Debugger::for_arithmetic(&graph, &model, &loaded.device, arithmetic)?
                .with_tasks(&loaded.tasks)
                .with_histograms(histograms)
                .with_extra_metrics(extras);
            let labels = loaded.labels.as_deref();
            run_and_report(args, debugger, &graph, &loaded.dataset, labels, mode, None)
        }
        None => {
            let session =
                loaded
                    .without_original()
                    .calibrate(args.recalibrate, arithmetic, &mut |_| {})?;
            let model = session.quantize(&QuantizeOptions::default())?;
            let debugger = session
                .debugger(&model)?
                .with_histograms(histograms)
                .with_extra_metrics(extras);
            let sensitivity = match sensitivity_metric {
                Some((metric, higher)) => qdbg::repair::sensitivity::measure(
                    &session.selector,
                    &metric,
                    higher,
                    qdbg::repair::sensitivity::Measure::BOTH,
                    &std::sync::atomic::AtomicBool::new(false),
                    &mut |_, _| {},
                )?,
                None => None,
            };
            let (data, labels) = (session.dataset(), session.labels());
            run_and_report(
                args,
                debugger,
                session.graph(),
                data,
                labels,
                mode,
                sensitivity.as_ref(),
            )
        }
    }
}

/// Appends each layer's sensitivity to its custom columns (the CSV writes them after
/// TensorFlow's, the JSON with the layer), NaN for a layer it has no number for; every
/// layer gets both, so the columns line up.
fn add_sensitivity_columns(layers: &mut [qdbg::debug::LayerStats], s: &Sensitivity) {
    for layer in layers {
        let measured = s
            .layers
            .iter()
            .find(|m| m.position == layer.info.float_node);
        layer.custom.push((
            "sensitivity_only_float".to_string(),
            measured.map_or(f64::NAN, |m| m.only_float),
        ));
        layer.custom.push((
            "sensitivity_only_int8".to_string(),
            measured.map_or(f64::NAN, |m| m.only_quantized),
        ));
    }
}

/// Runs the debugger over the data (Ctrl-C / SIGTERM stop it and keep what was
/// measured), then writes the files asked for and prints the summary.
fn run_and_report(
    args: &DebugArgs,
    debugger: Debugger<'_>,
    float_graph: &qdbg::graph::Graph,
    dataset: &qdbg::data::Dataset,
    labels: Option<&[i64]>,
    mode: VerifyMode,
    sensitivity: Option<&Sensitivity>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let total = dataset.num_samples();
    // From here on a Ctrl-C or SIGTERM is worth catching: the statistics of the samples
    // done so far are still reported and written. (Before, there is nothing to keep, and
    // the default action, quitting at once, is what the user wants.)
    let stop = super::interrupt::install()
        .map_err(|e| qdbg::Error::Internal(format!("cannot install the Ctrl-C handler: {e}")))?;
    if !interactive {
        eprintln!(
            "debugging {total} samples (Ctrl-C stops and keeps the statistics gathered so far)"
        );
    }
    let mut logged_tenth = 0;
    let report = debugger.run(dataset, labels, mode, &stop, &mut |event| {
        let DebugEvent::Updated { done, total, .. } = event else {
            return;
        };
        if interactive {
            eprint!("\rdebugging: {done}/{total} samples");
            let _ = std::io::stderr().flush();
        } else if total > 0 && done * 10 / total > logged_tenth {
            // Logs get a line per tenth, not a line per sample.
            logged_tenth = done * 10 / total;
            eprintln!("debugging: {done}/{total} samples");
        }
    })?;
    let interrupted = super::interrupt::received().filter(|_| stop.load(Ordering::SeqCst));
    eprintln!(
        "{}debugged {} of {total} samples in {:.2} s{}",
        if interactive { "\r" } else { "" },
        report.samples,
        started.elapsed().as_secs_f64(),
        if interrupted.is_some() {
            " (interrupted)"
        } else {
            ""
        }
    );
    if let Some(signal) = interrupted {
        if report.samples == 0 {
            return Err(super::interrupt::Interrupted {
                signal,
                message: "no sample was debugged yet; nothing written".to_string(),
            }
            .into());
        }
    }

    let mut report = report;
    if let Some(s) = sensitivity {
        add_sensitivity_columns(&mut report.layers, s);
    }
    let stats = &report.layers;
    if let Some(path) = &args.csv {
        let extra: Vec<&str> = args.metrics.iter().map(String::as_str).collect();
        write_csv(path, stats, mode, &extra)?;
        println!(
            "wrote {} ({} layers, TensorFlow's layer_statistics_dump columns)",
            path.display(),
            stats.len()
        );
    }
    if let Some(path) = &args.json {
        write_json(path, &report)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.model_explorer {
        write_node_data(path, stats, float_graph, &args.model_explorer_metric)?;
        println!(
            "wrote {} (Model Explorer node data, {}: open {} in Model Explorer, then load it)",
            path.display(),
            args.model_explorer_metric,
            args.inputs.model.display()
        );
    }

    let m = &report.model;
    if m.outputs.len() > 1 {
        // One line per output: pooled, the biggest output's error hides a small one's.
        println!(
            "model outputs, float vs int8 over {} samples ({} outputs):",
            m.samples,
            m.outputs.len()
        );
        for line in super::output_lines(m) {
            println!("{line}");
        }
    } else {
        println!(
            "model outputs, float vs int8 over {} samples: mse {:.3e}, sqnr {:.1} dB, cosine \
             {:.4}",
            m.samples, m.mse, m.sqnr_db, m.cosine,
        );
        for o in &m.outputs {
            let metrics = super::task_metrics(o);
            let sep = if metrics.is_empty() { "" } else { ": " };
            println!("  {}{sep}{metrics}", super::task_label(o));
        }
    }
    if let (Some(f1), Some(q1), Some(f5), Some(q5)) =
        (m.float_top1, m.int8_top1, m.float_top5, m.int8_top5)
    {
        println!(
            "accuracy: float top-1 {:.1}% / top-5 {:.1}%, int8 top-1 {:.1}% / top-5 {:.1}%",
            100.0 * f1,
            100.0 * f5,
            100.0 * q1,
            100.0 * q5
        );
    }
    let metric = |s: &qdbg::debug::LayerStats| {
        let m = match mode {
            VerifyMode::WholeModel => s.whole_model,
            _ => s.per_layer,
        };
        m.map_or(f64::NAN, |m| {
            rmse_over_scale(m.mean_squared_error, s.info.scale)
        })
    };
    let mut order: Vec<usize> = (0..stats.len()).collect();
    order.sort_by(|&a, &b| metric(&stats[b]).total_cmp(&metric(&stats[a])));
    println!("\n{} int8 layers; the worst by rmse/scale:", stats.len());
    println!("{:>10} {:>9} {:<18} tensor", "rmse/scale", "range", "op");
    for &k in order.iter().take(args.top) {
        let s = &stats[k];
        println!(
            "{:>10.3} {:>9.3} {:<18} {}",
            metric(s),
            range(s.info.scale, s.info.int16),
            s.info.op_name,
            s.info.tensor_name
        );
    }
    println!(
        "\nrmse/scale is a layer's RMS error in units of its int8 (or int16) step: about 0.29 \
         (1/sqrt(12)) means plain rounding noise; well above that (say > 0.7), the layer loses \
         more than rounding and is a candidate to keep in float. range = 255 x scale (65535 x \
         scale for int16): the real span the tensor covers; a huge range squeezes the common \
         values into few steps."
    );
    if let Some(signal) = interrupted {
        let what = if args.csv.is_some() || args.json.is_some() {
            "the statistics above and the files written"
        } else {
            "the statistics above"
        };
        return Err(super::interrupt::Interrupted {
            signal,
            message: format!(
                "{what} cover {} of {total} samples; run again without interrupting for all \
                 of them",
                report.samples
            ),
        }
        .into());
    }
    Ok(())
}
