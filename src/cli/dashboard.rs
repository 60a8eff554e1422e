//! `qdbg [MODEL --data DATA]`: the dashboard when stdout is a terminal, the debugger's plain
//! summary when it is not (or with `--no-tui`). With no model, the bundled demo.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use qdbg::debug::metrics::TaskChoice;
use qdbg::select::read_denylist;
use qdbg::tui::{DashboardOptions, EngineInputs};

use super::debug::{DebugArgs, ModeArg};
use super::{DeviceArgs, ImageArgs, InputArgs, Int8Args};

#[derive(Args)]
pub struct DashboardArgs {
    /// The float .tflite model to debug (default: the bundled demo).
    pub model: Option<PathBuf>,
    /// Debug (and calibration) data: .npy, .npz or a folder of images.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Labels for top-1/top-5 accuracy (.npy of integers or a text file, one per line).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// What an output is for, deciding its metrics: OUTPUT=TASK (OUTPUT a name or an
    /// index; TASK classify, detect, regress or segment), or TASK alone for a model with one
    /// output. Repeatable; outputs not named are guessed (the summary says which).
    #[arg(long = "task", value_name = "OUTPUT=TASK", value_parser = super::parse_task)]
    pub tasks: Vec<TaskChoice>,
    /// Start from the rules of a denylist file.
    #[arg(long)]
    pub deny_file: Option<PathBuf>,
    /// per-layer (TensorFlow's default), whole-model, or both side by side.
    #[arg(long, value_enum, default_value = "per-layer")]
    pub mode: ModeArg,
    /// Print the debugger's summary instead of opening the dashboard.
    #[arg(long)]
    pub no_tui: bool,
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

pub fn dashboard(args: DashboardArgs) -> Result<()> {
    let demo = args.model.is_none();
    let (model, data, labels) = match (&args.model, &args.data) {
        (None, _) => {
            let dir = super::demo_dir();
            (
                dir.join("model.tflite"),
                args.data.clone().unwrap_or_else(|| dir.join("debug.npy")),
                args.labels.clone().or_else(|| Some(dir.join("labels.txt"))),
            )
        }
        (Some(model), Some(data)) => (model.clone(), data.clone(), args.labels.clone()),
        (Some(model), None) => {
            return Err(qdbg::Error::Data {
                path: model.clone(),
                reason: "the dashboard needs debug data: add --data DATA (.npy, .npz or an \
                         image folder)"
                    .into(),
            }
            .into())
        }
    };
    let rules = match &args.deny_file {
        Some(path) => read_denylist(path)?,
        None => Vec::new(),
    };

    if args.no_tui || !std::io::stdout().is_terminal() {
        if demo {
            println!(
                "qdbg demo: {} on {} (labels {})\n",
                model.display(),
                data.display(),
                labels
                    .as_deref()
                    .map_or("none".into(), |l| l.display().to_string())
            );
        }
        super::debug::debug(&DebugArgs {
            inputs: InputArgs {
                model: model.clone(),
                data: data.clone(),
                labels,
                tasks: args.tasks.clone(),
            },
            csv: None,
            json: None,
            mode: args.mode,
            metrics: Vec::new(),
            top: 10,
            recalibrate: args.recalibrate,
            int8: None,
            model_explorer: None,
            model_explorer_metric: "rmse/scale".into(),
            sensitivity: false,
            sensitivity_metric: None,
            device: args.device.clone(),
            arithmetic: args.arithmetic.clone(),
            images: args.images.clone(),
        })?;
        println!(
            "\nInteractive: run qdbg {} --data {} in a terminal for the dashboard.",
            model.display(),
            data.display()
        );
        return Ok(());
    }

    // The quick checks happen here, before the screen switches, so bad input reads like
    // any other command's error; calibration and the run happen inside the dashboard.
    let loaded = qdbg::session::Loaded::read(
        "the dashboard",
        &model,
        &data,
        labels.as_deref(),
        &args.images.options(),
        args.device.device,
    )?
    .with_tasks(&args.tasks)?;
    let inputs = EngineInputs {
        loaded,
        recalibrate: args.recalibrate,
        mode: args.mode.verify_mode(),
        arithmetic: args.arithmetic.arithmetic(),
    };
    let colors = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let outcome = qdbg::tui::run(
        inputs,
        DashboardOptions {
            colors,
            rules,
            data_label: data.display().to_string(),
        },
    )?;
    println!(
        "qdbg: {} layers, {} samples debugged.",
        outcome.layers, outcome.samples
    );
    if !outcome.status.is_empty() {
        println!("last: {}", outcome.status);
    }
    let labels_arg = labels
        .as_deref()
        .map_or(String::new(), |l| format!(" --labels {}", l.display()));
    if !outcome.rules.is_empty() {
        let deny: Vec<String> = outcome
            .rules
            .iter()
            .map(|r| {
                let (option, rule) = match r {
                    qdbg::select::Rule::Int16(inner) => ("--int16", inner.to_string()),
                    other => ("--deny", other.to_string()),
                };
                format!("{option} '{}'", rule.replace('\'', "'\\''"))
            })
            .collect();
        println!(
            "denylist, to repeat without the dashboard:\n  qdbg select {} --data {}{labels_arg} {} -o selective.tflite",
            model.display(),
            data.display(),
            deny.join(" ")
        );
    }
    Ok(())
}
