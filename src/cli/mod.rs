//! Command-line definitions and dispatch; one file per subcommand.

mod dashboard;
mod debug;
mod eval;
mod inspect;
pub mod interrupt;
mod quantize;
mod run;
mod select;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use qdbg::data::{ChannelOrder, ImageOptions};
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

/// Reads the float model a command calibrates, quantizes or debugs: an already-quantized
/// (or dynamic-range) model is refused here, before any work and before anything (such as
/// a calibration file) is written beside it.
pub fn read_float_model(
    bytes: &[u8],
    model: &std::path::Path,
    command: &str,
) -> anyhow::Result<qdbg::graph::Graph> {
    let graph = qdbg::tflite::read_model_bytes(bytes, model)?;
    qdbg::graph::ModelKind::of(&graph).require_float(model, command)?;
    Ok(graph)
}

/// A model and its data, read and checked (no calibration yet).
pub struct Loaded {
    pub original: Vec<u8>,
    pub graph: qdbg::graph::Graph,
    pub dataset: qdbg::data::Dataset,
    pub labels: Option<Vec<i64>>,
    pub device: candle_core::Device,
}

pub fn load(
    command: &str,
    model: &std::path::Path,
    data: &std::path::Path,
    labels: Option<&std::path::Path>,
    images: &ImageArgs,
    device: &DeviceArgs,
) -> anyhow::Result<Loaded> {
    let original = std::fs::read(model).map_err(|e| qdbg::Error::io(model, e))?;
    let graph = read_float_model(&original, model, command)?;
    let dataset = qdbg::data::load_dataset(
        data,
        &qdbg::data::InputSpec::for_graph(&graph),
        &images.options(),
    )?;
    let labels = match labels {
        Some(path) => Some(qdbg::data::load_labels(path, Some(dataset.num_samples()))?),
        None => None,
    };
    let device = qdbg::exec::parse_device(device.device)?;
    Ok(Loaded {
        original,
        graph,
        dataset,
        labels,
        device,
    })
}

/// What every command that quantizes starts from: the model (its bytes, for the writer),
/// the data, optional labels, the device, and the calibration (reused when it matches).
pub struct Prepared {
    pub original: Vec<u8>,
    pub graph: qdbg::graph::Graph,
    pub dataset: qdbg::data::Dataset,
    pub labels: Option<Vec<i64>>,
    pub device: candle_core::Device,
    pub calibration: qdbg::quant::Calibration,
    pub calibration_source: qdbg::quant::CalibrationSource,
    /// The float model's outputs on the data, when the calibration just computed them.
    pub float_outputs: std::sync::Arc<qdbg::exec::FloatOutputCache>,
}

pub fn prepare(
    command: &str,
    model: &std::path::Path,
    data: &std::path::Path,
    labels: Option<&std::path::Path>,
    images: &ImageArgs,
    device: &DeviceArgs,
    recalibrate: bool,
) -> anyhow::Result<Prepared> {
    let Loaded {
        original,
        graph,
        dataset,
        labels,
        device,
    } = load(command, model, data, labels, images, device)?;
    let executor = qdbg::exec::Executor::new(&graph, &device)?;
    let float_outputs =
        std::sync::Arc::new(qdbg::exec::FloatOutputCache::new(dataset.num_samples()));
    let (calibration, calibration_source) = qdbg::quant::calibrate_or_load(
        model,
        &executor,
        &dataset,
        recalibrate,
        Some(&float_outputs),
        &mut |_| {},
    )?;
    drop(executor);
    Ok(Prepared {
        float_outputs,
        original,
        graph,
        dataset,
        labels,
        device,
        calibration,
        calibration_source,
    })
}
