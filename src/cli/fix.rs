//! `qdbg fix`: find the cheapest model that meets a target (greedy by sensitivity, then a
//! drop pass), print what each remedy bought and the Pareto front, score the result on
//! held-out samples, and write it.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use qdbg::debug::metrics::ModelMetrics;
use qdbg::repair::search::{
    build_model, float_metrics, score, search, Candidate, Remedy, SearchOptions, SearchOutcome,
    Verdict,
};
use qdbg::repair::target::metric_value;
use qdbg::repair::Target;
use qdbg::select::Selector;
use qdbg::session::FloatModel;

use super::{DeviceArgs, ImageArgs, InputArgs, Int8Args};

#[derive(Args)]
#[command(
    after_help = "Targets: METRIC OP VALUE [and ...], OP one of >= > <= <, VALUE a number \
or float_METRIC [+|- NUMBER] (the float model's own value). top1/top5 are accuracies in percent \
(need --labels).\n\nExample:\n  qdbg fix model.tflite --data debug.npy --labels labels.txt \\\n    \
--target 'top1 >= float_top1 - 0.5' -o fixed.tflite"
)]
pub struct FixArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// What the model must achieve, e.g. 'top1 >= float_top1 - 0.5' or 'sqnr_db >= 30'.
    #[arg(long)]
    pub target: String,
    /// Where to write the chosen model.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Never keep an op float (remedies: better ranges, then int16 activations unless
    /// --int16 no).
    #[arg(long)]
    pub integer_only: bool,
    /// int16 (16x8) remedies between ranges and float: auto uses them with --integer-only
    /// only (LiteRT's 16x8 kernels are far slower than its int8 ones, often slower than a
    /// float island on a CPU: see `qdbg select`'s latency estimate), yes always, no never.
    #[arg(long, value_enum, default_value_t = Int16Remedies::Auto)]
    pub int16: Int16Remedies,
    /// Fraction of the samples (the last ones) the search never sees, to score the result
    /// on (default 0.2 with 50 samples or more, else 0).
    #[arg(long, value_name = "FRACTION")]
    pub holdout: Option<f64>,
    /// Write the search (every candidate, the Pareto front, the verdict) as JSON here.
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

/// One model's target values on the search samples and on the held-out ones.
#[derive(Serialize)]
struct HoldoutRow {
    model: String,
    search: Vec<f64>,
    holdout: Vec<f64>,
}

#[derive(Serialize)]
struct Holdout {
    search_samples: usize,
    holdout_samples: usize,
    /// Whether the chosen model meets the target on the held-out samples.
    chosen_meets_target: bool,
    rows: Vec<HoldoutRow>,
}

#[derive(Serialize)]
struct FixReport<'a> {
    #[serde(flatten)]
    search: &'a SearchOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    holdout: Option<Holdout>,
}

fn held_out(samples: usize, fraction: Option<f64>) -> Result<usize> {
    let fraction = match fraction {
        Some(f) if (0.0..1.0).contains(&f) => f,
        Some(f) => {
            return Err(qdbg::Error::usage(
                "--holdout",
                format!("{f} is not a fraction in [0, 1): e.g. 0.2 holds out a fifth"),
            )
            .into())
        }
        None if samples >= 50 => 0.2,
        None => 0.0,
    };
    let held = (samples as f64 * fraction).round() as usize;
    if held > 0 && held >= samples {
        return Err(qdbg::Error::usage(
            "--holdout",
            format!("{fraction} of {samples} samples leaves none for the search"),
        )
        .into());
    }
    Ok(held)
}

fn candidate_line(metric: &str, c: &Candidate) -> String {
    format!(
        "  {:<11} {:>3} remedies  {metric} {:>10.4}  float ops {:>3}  islands {:>2}{}  {}",
        c.stage.label(),
        c.remedies.len(),
        c.metric,
        c.float_ops,
        c.float_islands,
        int16_cell(c),
        if c.meets_target { "meets" } else { "-" }
    )
}

/// `  int16 ops N` when the candidate computes some ops in 16x8, else nothing.
fn int16_cell(c: &Candidate) -> String {
    if c.int16_ops > 0 {
        format!("  int16 ops {:>3}", c.int16_ops)
    } else {
        String::new()
    }
}

fn values(target: &Target, m: &ModelMetrics) -> Vec<f64> {
    target
        .all_of
        .iter()
        .map(|c| metric_value(m, &c.metric).unwrap_or(f64::NAN))
        .collect()
}

/// `qdbg fix --int16`: when the search may compute ops in 16x8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Int16Remedies {
    Auto,
    Yes,
    No,
}

pub fn fix(args: &FixArgs) -> Result<()> {
    let target = Target::parse(&args.target).map_err(|e| qdbg::Error::usage("--target", e))?;
    let inputs = &args.inputs;
    let model = FloatModel::read(&inputs.model, "qdbg fix")?;
    // Names were checked by the parser (with the list of metrics); this refuses an output
    // the model lacks (listing its outputs) or an accuracy without labels.
    target.check(&model.graph, inputs.labels.is_some())?;
    let session = model
        .with_data(
            &inputs.data,
            inputs.labels.as_deref(),
            &args.images.options(),
            args.device.device,
        )?
        .with_tasks(&inputs.tasks)?;
    let total = session.num_samples();
    let held = held_out(total, args.holdout)?;
    // Calibrated on the searched samples only: the held-out ones are scored on a model
    // whose ranges they did not shape.
    let session = session.calibrate_on(
        0..total - held,
        args.recalibrate,
        args.arithmetic.arithmetic(),
        &mut |_| {},
    )?;
    let selector = &session.selector;
    let tuning = selector.on_samples(0..total - held);
    let cancel = AtomicBool::new(false);

    println!(
        "target: {target}  (searching on samples 0..{}{})",
        total - held,
        if held > 0 {
            format!(", {held} held out: neither calibrated nor searched on")
        } else {
            String::new()
        }
    );
    let (metric, _) = target.primary();
    let outcome = search(
        &tuning,
        &target,
        SearchOptions {
            integer_only: args.integer_only,
            int16: match args.int16 {
                Int16Remedies::Auto => args.integer_only,
                Int16Remedies::Yes => true,
                Int16Remedies::No => false,
            },
        },
        &cancel,
        &mut |c, _| println!("{}", candidate_line(metric, c)),
    )?;

    let mut holdout = None;
    if let (Some(chosen), true) = (outcome.chosen(), held > 0) {
        let holdout_selector = selector.on_samples(total - held..total);
        let scored = |s: &Selector, remedies: &[Remedy]| -> Result<ModelMetrics> {
            score(s, remedies, &cancel)?.ok_or_else(|| anyhow::anyhow!("cancelled"))
        };
        let float_here = |s: &Selector| -> Result<ModelMetrics> {
            float_metrics(s, &cancel)?.ok_or_else(|| anyhow::anyhow!("cancelled"))
        };
        let (float_tuning, float_held) = (float_here(&tuning)?, float_here(&holdout_selector)?);
        let chosen_held = scored(&holdout_selector, &chosen.remedies)?;
        let rows = vec![
            HoldoutRow {
                model: "float".into(),
                search: values(&target, &float_tuning),
                holdout: values(&target, &float_held),
            },
            HoldoutRow {
                model: "full int8".into(),
                search: values(&target, &scored(&tuning, &[])?),
                holdout: values(&target, &scored(&holdout_selector, &[])?),
            },
            HoldoutRow {
                model: "chosen".into(),
                search: chosen.values.clone(),
                holdout: values(&target, &chosen_held),
            },
        ];
        holdout = Some(Holdout {
            search_samples: total - held,
            holdout_samples: held,
            chosen_meets_target: target
                .holds(&chosen_held, &float_held)
                .map_err(|e| qdbg::Error::usage("--target", e))?,
            rows,
        });
    }

    if let Some(path) = &args.json {
        let report = FixReport {
            search: &outcome,
            holdout,
        };
        let text = serde_json::to_string_pretty(&report)?;
        qdbg::atomic::write_bytes_atomic(path, text.as_bytes())?;
        holdout = report.holdout;
    }

    let chosen = match &outcome.verdict {
        Verdict::Met { .. } => outcome.chosen().expect("a met verdict names a candidate"),
        Verdict::FloatMisses { misses } => {
            return Err(qdbg::Error::usage(
                "--target",
                format!(
                    "the float model itself misses the target ({}): no quantized model can \
                     meet it; loosen the target",
                    misses.join("; ")
                ),
            )
            .into())
        }
        Verdict::Unreachable { misses } => {
            return Err(qdbg::Error::usage(
                "--target",
                format!(
                    "not reachable even with every quantized op kept float ({}); loosen the \
                     target",
                    misses.join("; ")
                ),
            )
            .into())
        }
        Verdict::NeedsFloat { misses } => {
            return Err(qdbg::Error::usage(
                "--integer-only",
                format!(
                    "no integer-only model found meets the target ({}): better ranges and \
                     int16 activations (16x8) on the ops LiteRT runs in 16x8 were not \
                     enough{}; drop --integer-only (float fallback) or loosen the target",
                    misses.join("; "),
                    if args.int16 == Int16Remedies::No {
                        " (int16 not tried: --int16 no)"
                    } else {
                        ""
                    }
                ),
            )
            .into())
        }
        Verdict::Cancelled => anyhow::bail!("the search was cancelled"),
    };

    let model = build_model(selector, &chosen.remedies.iter().copied().collect())?;
    let bytes =
        qdbg::tflite::model_bytes(&model.graph, selector.original.as_deref().map(|v| &v[..]))?;
    qdbg::atomic::write_bytes_atomic(&args.output, &bytes)?;

    println!(
        "\nfloat {metric} {:.4}; thresholds {:?}",
        outcome.float_metric, outcome.thresholds
    );
    if chosen.remedies.is_empty() {
        println!("the full-int8 model meets the target: no remedy needed");
    } else {
        println!(
            "what each remedy buys ({metric} with it / without it, the others kept; {} samples):",
            outcome.bought_samples
        );
        for b in &outcome.bought {
            println!(
                "  {:<60} {:>10.4} / {:>10.4}",
                b.remedy.describe(&selector.graph),
                b.with,
                b.without
            );
        }
    }
    if !outcome.dropped.is_empty() {
        println!(
            "dropped by the drop pass (the greedy step added them, the target does not need them):"
        );
        for r in &outcome.dropped {
            println!("  {}", r.describe(&selector.graph));
        }
    }
    println!("\nPareto front ({metric}, float ops, islands, int16 ops):");
    for &i in &outcome.pareto {
        let c = &outcome.candidates[i];
        println!(
            "  {metric} {:>10.4}  float ops {:>3}  islands {:>2}{}  {} remedies{}",
            c.metric,
            c.float_ops,
            c.float_islands,
            int16_cell(c),
            c.remedies.len(),
            if std::ptr::eq(c, chosen) {
                "  <- chosen"
            } else {
                ""
            }
        );
    }
    if let Some(h) = &holdout {
        println!(
            "\n{:<12} {:>24} {:>24}",
            "",
            format!("search ({} samples)", h.search_samples),
            format!("held out ({})", h.holdout_samples)
        );
        let cells = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for row in &h.rows {
            println!(
                "{:<12} {:>24} {:>24}",
                row.model,
                cells(&row.search),
                cells(&row.holdout)
            );
        }
        println!(
            "(values of {}) the chosen model {} the target on the held-out samples",
            target
                .all_of
                .iter()
                .map(|c| c.metric.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if h.chosen_meets_target {
                "meets"
            } else {
                "MISSES"
            }
        );
    }
    println!(
        "\n{} candidates evaluated in {:.2} s; {} float ops, {} islands",
        outcome.candidates.len(),
        outcome.seconds,
        chosen.float_ops,
        chosen.float_islands
    );
    if chosen.int16_ops > 0 {
        println!(
            "{} ops in 16x8 ({} int16 islands); latency about {:.1}x the all-int8 model's \
             (estimated, LiteRT ratio per op type)",
            chosen.int16_ops,
            qdbg::select::int16::int16_islands(&model),
            qdbg::select::int16::estimated_latency_vs_int8(&model)
        );
    }
    println!("wrote {}", args.output.display());
    Ok(())
}
