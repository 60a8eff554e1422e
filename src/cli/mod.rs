//! Command-line definitions and dispatch; one file per subcommand.

mod dashboard;
mod debug;
mod eval;
mod fix;
mod inspect;
pub mod interrupt;
mod quantize;
mod run;
mod select;
pub mod sensitivity;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use qdbg::data::{ChannelOrder, ImageOptions};
use qdbg::debug::metrics::{OutputMetrics, TaskChoice};
use qdbg::exec::DeviceChoice;

#[derive(Parser)]
#[command(
    name = "qdbg",
    version,
    about = "A quantization debugger for neural-network models, in the terminal",
    long_about = "qdbg reads a float TFLite model and a dataset, quantizes it to int8 with \
                  LiteRT-exact kernels, measures every layer's quantization error like \
                  TensorFlow's QuantizationDebugger, and writes selectively quantized models \
                  that keep the broken layers in float.\n\nWith no subcommand it opens the \
                  dashboard: `qdbg MODEL --data DATA [--labels L]`, or `qdbg` alone on the \
                  bundled demo (a plain summary when stdout is not a terminal or with \
                  --no-tui).",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  qdbg\n  qdbg model.tflite --data debug.npy --labels labels.txt\n  qdbg inspect model.tflite\n  qdbg inspect model.tflite --json\n  \
                  qdbg run model.tflite --data samples.npz -o outputs.npz\n  \
                  qdbg run model.tflite --data images/ --mean 0.5 --std 0.5 -o outputs.npz\n  \
                  qdbg quantize model.tflite --data calibration.npy -o model_int8.tflite\n  \
                  qdbg debug model.tflite --data debug.npy --csv layers.csv\n  \
                  qdbg debug model.tflite --data debug.npy --int8 model_int8.tflite --threads 2\n  \
                  qdbg select model.tflite --data debug.npy --deny 'rmse/scale > 0.7' -o selective.tflite\n  \
                  qdbg eval model.tflite selective.tflite --data debug.npy --labels labels.txt"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    dashboard: dashboard::DashboardArgs,
    /// Worker threads for everything that runs samples or large ops (default: every core,
    /// or $RAYON_NUM_THREADS). With a subcommand, put it after the subcommand's name.
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's inputs, outputs, op counts and every op with its shapes.
    Inspect(inspect::InspectArgs),
    /// Run a model in float on every sample of a dataset and save its outputs as .npz.
    Run(run::RunArgs),
    /// Calibrate on a representative dataset and write a full-int8 .tflite.
    Quantize(quantize::QuantizeArgs),
    /// Per-layer error of the int8 model against float (TensorFlow's QuantizationDebugger).
    Debug(debug::DebugArgs),
    /// Keep denylisted ops float: write the selective model, compare float / int8 / selective.
    Select(select::SelectArgs),
    /// Find the cheapest model that meets a target (float fallback chosen by sensitivity).
    Fix(fix::FixArgs),
    /// Each quantized op's effect on a model-level metric: kept float alone, quantized alone.
    Sensitivity(sensitivity::SensitivityArgs),
    /// Evaluate .tflite models side by side on the same data (accuracy, agreement).
    Eval(eval::EvalArgs),
}

/// Where the float executor runs.
#[derive(Args, Clone)]
pub struct DeviceArgs {
    /// cpu, cuda[:N] (build with --features cuda) or metal[:N] (--features metal).
    #[arg(long, default_value = "cpu", value_parser = parse_device_choice)]
    pub device: DeviceChoice,
}

fn parse_device_choice(s: &str) -> Result<DeviceChoice, String> {
    s.parse()
}

/// Whose int8 arithmetic the quantized model runs with.
#[derive(Args, Clone)]
pub struct Int8Args {
    /// builtin: LiteRT's builtin int8 kernels (bit for bit); xnnpack: LiteRT's default
    /// XNNPACK delegate on x86-64, which rescales convolutions, MEAN and MUL in float and
    /// is what tf.lite.Interpreter and TensorFlow's QuantizationDebugger run (choose it to
    /// reproduce their numbers, or when deploying with LiteRT's CPU defaults).
    #[arg(long = "int8-arithmetic", value_enum, default_value = "builtin")]
    pub int8_arithmetic: ArithmeticArg,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum ArithmeticArg {
    Builtin,
    Xnnpack,
}

impl Int8Args {
    pub fn arithmetic(&self) -> qdbg::kernels::int8::Arithmetic {
        use qdbg::kernels::int8::Arithmetic;
        match self.int8_arithmetic {
            ArithmeticArg::Builtin => Arithmetic::Builtin,
            ArithmeticArg::Xnnpack => Arithmetic::Xnnpack,
        }
    }
}

/// How image folders become model inputs: value = (pixel * scale - mean) / std.
#[derive(Args, Clone)]
pub struct ImageArgs {
    /// Multiplier applied to 0..255 pixels before mean/std.
    #[arg(long, default_value_t = 1.0 / 255.0)]
    pub image_scale: f32,
    /// Mean subtracted per channel: one value, or one per channel separated by commas.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub mean: Vec<f32>,
    /// Standard deviation divided per channel: one value or one per channel.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub std: Vec<f32>,
    /// Channel order the model expects.
    #[arg(long, value_enum, default_value = "rgb")]
    pub channel_order: ChannelOrderArg,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum ChannelOrderArg {
    Rgb,
    Bgr,
}

impl ImageArgs {
    pub fn options(&self) -> ImageOptions {
        ImageOptions {
            scale: self.image_scale,
            mean: self.mean.clone(),
            std: self.std.clone(),
            channel_order: match self.channel_order {
                ChannelOrderArg::Rgb => ChannelOrder::Rgb,
                ChannelOrderArg::Bgr => ChannelOrder::Bgr,
            },
        }
    }
}

/// The bundled demo: `$QDBG_DEMO_DIR`, `./demo`, or the source tree's `demo/`.
/// The model's outputs one line each (name, sqnr, mse, cosine; the worst marked), then the
/// numbers pooled over all of them: what `qdbg debug` prints for a model with several
/// outputs.
/// An output's task as the summaries show it: `classify`, or `classify (guessed; --task to
/// set)` when it was guessed.
pub fn task_label(o: &OutputMetrics) -> String {
    if o.task_guessed {
        format!("task {} (guessed; --task to set)", o.task.name())
    } else {
        format!("task {}", o.task.name())
    }
}

/// The metrics of an output's task, in words (empty for regress: its MSE/SQNR/cosine are
/// all there is).
pub fn task_metrics(o: &OutputMetrics) -> String {
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    let mut parts = Vec::new();
    if let Some(c) = &o.classify {
        parts.push(format!(
            "same top-1 {}, int8 top-1 in float top-5 {}",
            pct(c.top1_agreement),
            pct(c.top5_agreement)
        ));
        if let (Some(f1), Some(q1)) = (c.float_top1, c.int8_top1) {
            parts.push(format!("top-1 accuracy float {} int8 {}", pct(f1), pct(q1)));
        }
    }
    if let Some(s) = &o.segment {
        parts.push(format!(
            "mask IoU {:.3} (cut at {})",
            s.iou,
            if s.threshold == 0.0 {
                "0: logits"
            } else {
                "0.5: probabilities"
            }
        ));
    }
    if let Some(d) = &o.detect {
        if let Some(a) = d.top_k_agreement {
            parts.push(format!("top-{} boxes agree {}", d.top_k, pct(a)));
        }
        if let Some(iou) = d.box_iou {
            match &d.scores_output {
                Some(s) => parts.push(format!("box IoU {iou:.3} (top-{} by {s})", d.top_k)),
                None => parts.push(format!("box IoU {iou:.3} (all {} boxes)", d.top_k)),
            }
        }
    }
    parts.join(", ")
}

fn output_lines(m: &qdbg::debug::metrics::ModelMetrics) -> Vec<String> {
    let width = m
        .outputs
        .iter()
        .map(|o| o.name.chars().count())
        .max()
        .unwrap_or(0)
        .max("(all pooled)".len());
    let mut lines = vec![format!(
        "  {:<width$} {:>8} {:>10} {:>8}",
        "output", "sqnr dB", "mse", "cosine"
    )];
    for o in &m.outputs {
        let worst = m.worst_output.as_deref() == Some(o.name.as_str());
        lines.push(format!(
            "  {:<width$} {:>8.1} {:>10.3e} {:>8.4}{}",
            o.name,
            o.sqnr_db,
            o.mse,
            o.cosine,
            if worst { "  <- worst" } else { "" }
        ));
        let metrics = task_metrics(o);
        let sep = if metrics.is_empty() { "" } else { ": " };
        lines.push(format!(
            "  {:<width$}   {}{sep}{metrics}",
            "",
            task_label(o)
        ));
    }
    lines.push(format!(
        "  {:<width$} {:>8.1} {:>10.3e} {:>8.4}",
        "(all pooled)", m.sqnr_db, m.mse, m.cosine
    ));
    lines
}

pub fn demo_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QDBG_DEMO_DIR") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("demo");
    if local.join("model.tflite").exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo")
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    // Before any thread starts (clap parsing is single-threaded): see `qdbg::threads`.
    if let Err(e) = qdbg::threads::configure(cli.threads.map(usize::from)) {
        eprintln!("error: {e:#}");
        return ExitCode::from(1);
    }
    let result = match cli.command {
        Some(Command::Inspect(args)) => inspect::inspect(&args),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Quantize(args)) => quantize::quantize(&args),
        Some(Command::Debug(args)) => debug::debug(&args),
        Some(Command::Select(args)) => select::select(&args),
        Some(Command::Eval(args)) => eval::eval(&args),
        Some(Command::Fix(args)) => fix::fix(&args),
        Some(Command::Sensitivity(args)) => sensitivity::sensitivity(&args),
        None => dashboard::dashboard(cli.dashboard),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(stopped) = e.downcast_ref::<interrupt::Interrupted>() {
                // Not a failure of the input or of qdbg: a note, and the signal's code.
                eprintln!("note: {stopped}");
                return ExitCode::from(stopped.signal.exit_code());
            }
            eprintln!("error: {e:#}");
            let user_error = e
                .downcast_ref::<qdbg::Error>()
                .is_none_or(qdbg::Error::is_user_error);
            ExitCode::from(if user_error { 2 } else { 1 })
        }
    }
}

/// The float model, its data and labels: what `qdbg debug` and `qdbg select` read.
#[derive(Args, Clone)]
pub struct InputArgs {
    /// The float .tflite model.
    pub model: PathBuf,
    /// Debug (and calibration) data: .npy, .npz or a folder of images.
    #[arg(long)]
    pub data: PathBuf,
    /// Labels (.npy of integers or a text file, one per line) for top-1/top-5 accuracy.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// What an output is for, deciding its metrics: OUTPUT=TASK (OUTPUT a name or an
    /// index; TASK classify, detect, regress or segment), or TASK alone for a model with one
    /// output. Repeatable; outputs not named are guessed (the summary says which).
    #[arg(long = "task", value_name = "OUTPUT=TASK", value_parser = parse_task)]
    pub tasks: Vec<TaskChoice>,
}

/// A `--task` argument (see [`TaskChoice::parse`]).
pub fn parse_task(arg: &str) -> Result<TaskChoice, String> {
    TaskChoice::parse(arg)
}

impl InputArgs {
    /// Reads the model (refusing anything but a float model, for `command`'s message), its
    /// data and labels, and opens the device.
    pub fn load(
        &self,
        command: &str,
        images: &ImageArgs,
        device: &DeviceArgs,
    ) -> qdbg::Result<qdbg::session::Loaded> {
        qdbg::session::Loaded::read(
            command,
            &self.model,
            &self.data,
            self.labels.as_deref(),
            &images.options(),
            device.device,
        )?
        .with_tasks(&self.tasks)
    }
}
