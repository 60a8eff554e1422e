//! `qdbg select`: build a denylist from rules, write the selectively quantized model, and
//! show what it costs (float ops, float islands, int16 ops and islands, size) and buys
//! (model-level error, accuracy) next to the float and the full-int8 model.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;

use qdbg::debug::VerifyMode;
use qdbg::select::denylist::{check_names, read_denylist, write_denylist};
use qdbg::select::Rule;
use qdbg::session::FloatModel;

use super::{DeviceArgs, ImageArgs, InputArgs, Int8Args};

#[derive(Args)]
#[command(
    after_help = "Rules: name:EXACT, glob:PATTERN, re:REGEX (output tensor names of the float \
model; a bare word is an exact name), op:TYPE, first:N, last:N, or a metric expression such as \
'rmse/scale > 0.7', 'sqnr_db < 20 and op == CONV_2D' (and binds tighter than or).\n\n\
--deny keeps the ops a rule picks float; --int16 computes them in 16x8 instead (int16 \
activations, int8 weights: the model stays integer). Float wins where both pick an op. An op \
an --int16 rule picks loosely (metric, first/last, glob, re) that cannot run in 16x8 stays \
int8 and is listed; an --int16 name: or op: rule naming such an op is refused. A denylist \
file holds both, a keyword per line: 'float op:MEAN', 'int16 rmse/scale > 0.7' (a bare rule \
is a float rule).\n\n\
Example:\n  qdbg select model.tflite --data debug.npy --labels labels.txt \\\n    \
--deny 'rmse/scale > 0.7' --deny-first 5 --deny-op MEAN -o selective.tflite\n  \
qdbg select model.tflite --data debug.npy --int16 'rmse/scale > 0.7' -o mixed.tflite"
)]
pub struct SelectArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// A denylist rule (repeatable): name:, glob:, re:, op:, first:, last:, allow:, a metric
    /// expression, or range:TENSOR=percentile:P|mse|entropy (an int8 range remedy).
    #[arg(long = "deny")]
    pub deny: Vec<String>,
    /// Keep the first N quantized layers float.
    #[arg(long)]
    pub deny_first: Option<usize>,
    /// Keep the last N quantized layers float.
    #[arg(long)]
    pub deny_last: Option<usize>,
    /// Keep every op of this type float (repeatable), e.g. MEAN.
    #[arg(long)]
    pub deny_op: Vec<String>,
    /// Compute the ops this rule picks in 16x8 instead of int8 (repeatable): name:, glob:,
    /// re:, op:, first:, last: or a metric expression.
    #[arg(long = "int16")]
    pub int16: Vec<String>,
    /// Compute the first N quantized layers in 16x8.
    #[arg(long)]
    pub int16_first: Option<usize>,
    /// Compute the last N quantized layers in 16x8.
    #[arg(long)]
    pub int16_last: Option<usize>,
    /// Compute every op of this type in 16x8 (repeatable), e.g. MEAN.
    #[arg(long)]
    pub int16_op: Vec<String>,
    /// Read rules from a file (one per line, # comments; `int16 RULE` for 16x8).
    #[arg(long)]
    pub deny_file: Option<PathBuf>,
    /// Save the rules used as a denylist file.
    #[arg(long)]
    pub save_denylist: Option<PathBuf>,
    /// Where to write the selective model.
    #[arg(short, long)]
    pub output: PathBuf,
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

fn rules(args: &SelectArgs) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    if let Some(path) = &args.deny_file {
        rules.extend(read_denylist(path)?);
    }
    for text in &args.deny {
        rules.push(Rule::parse(text).map_err(|e| qdbg::Error::usage("--deny", e))?);
    }
    rules.extend(args.deny_first.map(Rule::First));
    rules.extend(args.deny_last.map(Rule::Last));
    rules.extend(
        args.deny_op
            .iter()
            .map(|o| Rule::Op(o.to_ascii_uppercase())),
    );
    rules.extend(int16_rules(
        &args.int16,
        args.int16_first,
        args.int16_last,
        &args.int16_op,
    )?);
    Ok(rules)
}

/// The `--int16*` options as int16 rules (shared with `qdbg quantize`).
pub fn int16_rules(
    texts: &[String],
    first: Option<usize>,
    last: Option<usize>,
    ops: &[String],
) -> Result<Vec<Rule>> {
    let usage = |e: String| qdbg::Error::usage("--int16", e);
    let mut bare = Vec::new();
    for text in texts {
        bare.push(Rule::parse(text).map_err(usage)?);
    }
    bare.extend(first.map(Rule::First));
    bare.extend(last.map(Rule::Last));
    bare.extend(ops.iter().map(|o| Rule::Op(o.to_ascii_uppercase())));
    let mut rules = Vec::new();
    for rule in bare {
        // `--int16 'int16 op:ADD'` says the same twice; take it as meant.
        rules.push(match rule {
            Rule::Int16(_) => rule,
            other => Rule::int16(other).map_err(usage)?,
        });
    }
    Ok(rules)
}

/// Prints the ops an int16 rule computes in 16x8, and those it picked that stay int8.
pub fn print_int16(
    graph: &qdbg::graph::Graph,
    int16: &std::collections::BTreeSet<usize>,
    refused: &[(usize, String)],
) {
    let line = |pos: usize| {
        let node = &graph.nodes[pos];
        format!(
            "#{} {} '{}'",
            node.source_index,
            node.op.display_name(),
            graph.tensor(node.outputs[0]).name
        )
    };
    if !int16.is_empty() {
        println!("computed in 16x8 by the int16 rules ({}):", int16.len());
        for &pos in int16 {
            println!("  {}", line(pos));
        }
    }
    if !refused.is_empty() {
        println!(
            "picked by an int16 rule but left int8 ({}; deny them to keep them float instead):",
            refused.len()
        );
        for (pos, why) in refused {
            println!("  {}: {why}", line(*pos));
        }
    }
}

pub fn select(args: &SelectArgs) -> Result<()> {
    let rules = rules(args)?;
    // Before reading the data, calibrating and debugging, which take a while: a misspelt
    // name is known now.
    let inputs = &args.inputs;
    let model = FloatModel::read(&inputs.model, "qdbg select")?;
    check_names(&model.graph, &rules)?;
    let session = model
        .with_data(
            &inputs.data,
            inputs.labels.as_deref(),
            &args.images.options(),
            args.device.device,
        )?
        .with_tasks(&inputs.tasks)?
        .calibrate(args.recalibrate, args.arithmetic.arithmetic(), &mut |_| {})?;
    let selector = &session.selector;
    let graph = session.graph();

    // Per-layer statistics for the rules on the full-int8 model; only the model-level
    // comparison for the selective one.
    let full = selector.select(&[], &[])?;
    let full_report = session.debugger(&full.model)?.run(
        session.dataset(),
        session.labels(),
        VerifyMode::PerLayer,
        &AtomicBool::new(false),
        &mut |_| {},
    )?;

    let selective = selector.select(&rules, &full_report.layers)?;
    for rule in &selective.unmatched {
        eprintln!("note: rule '{rule}' matches nothing");
    }
    let selective_model =
        selector.evaluate(&selective.model, &AtomicBool::new(false), &mut |_, _| {})?;
    qdbg::atomic::write_bytes_atomic(&args.output, &selective.bytes)?;
    if let Some(path) = &args.save_denylist {
        write_denylist(path, &rules)?;
    }

    println!(
        "kept float by the denylist ({}):",
        selective.keep_float.len()
    );
    for &pos in &selective.keep_float {
        let node = &graph.nodes[pos];
        println!(
            "  #{} {} '{}'",
            node.source_index,
            node.op.display_name(),
            graph.tensor(node.outputs[0]).name
        );
    }
    print_int16(graph, &selective.int16, &selective.int16_refused);
    if !selective.ranges.is_empty() {
        println!(
            "quantized with a chosen range instead of min/max ({}, still int8):",
            selective.ranges.len()
        );
    }
    for (&id, change) in &selective.ranges {
        let r = |r: qdbg::quant::calibration::TensorRange| format!("[{:.6}, {:.6}]", r.min, r.max);
        println!(
            "  '{}' {} -> {}",
            graph.tensor(id).name,
            r(change.observed),
            r(change.chosen)
        );
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    println!(
        "\n{:<22} {:>10} {:>12} {:>10}",
        "", "float", "full int8", "selective"
    );
    println!(
        "{:<22} {:>10} {:>12} {:>10}",
        "size (bytes)",
        session.float_size(),
        full.bytes.len(),
        selective.bytes.len()
    );
    println!(
        "{:<22} {:>10} {:>12} {:>10}",
        "float ops",
        graph.nodes.len(),
        full.float_ops(),
        selective.float_ops()
    );
    println!(
        "{:<22} {:>10} {:>12} {:>10}",
        "  of them denylisted",
        "-",
        full.denylisted_ops(),
        selective.denylisted_ops()
    );
    println!(
        "{:<22} {:>10} {:>12} {:>10}",
        "float islands",
        1,
        full.float_islands(),
        selective.float_islands()
    );
    if selective.int16_ops() > 0 {
        println!(
            "{:<22} {:>10} {:>12} {:>10}",
            "int16 ops",
            0,
            full.int16_ops(),
            selective.int16_ops()
        );
        println!(
            "{:<22} {:>10} {:>12} {:>10}",
            "int16 islands",
            0,
            full.int16_islands(),
            selective.int16_islands()
        );
        println!(
            "{:<22} {:>10} {:>12} {:>10}",
            "int16 act. (+bytes)",
            "-",
            full.int16_activation_bytes(),
            selective.int16_activation_bytes()
        );
        println!(
            "{:<22} {:>10} {:>12} {:>10}",
            "latency vs int8 (est.)",
            "-",
            "1x",
            format!("~{:.2}x", selective.estimated_latency_vs_int8())
        );
        println!(
            "{:<22} (estimated: LiteRT's 16x8/int8 latency ratio per op type, weighted by \
             each op's work)",
            ""
        );
    }
    let (f, s) = (&full_report.model, &selective_model);
    if f.outputs.len() > 1 {
        // One row per output, the worst of each model marked with '*': pooled, the
        // biggest output's error hides a small one's.
        let cell = |m: &qdbg::debug::metrics::ModelMetrics, name: &str| {
            let value = m.output(name).map_or(f64::NAN, |o| o.sqnr_db);
            let mark = if m.worst_output.as_deref() == Some(name) {
                "*"
            } else {
                " "
            };
            format!("{value:.1}{mark}")
        };
        for o in &f.outputs {
            println!(
                "{:<22} {:>10} {:>12} {:>10}",
                format!("sqnr dB {}", o.name),
                "-",
                cell(f, &o.name),
                cell(s, &o.name)
            );
        }
        println!(
            "{:<22} {:>10} {:>12} {:>10}",
            "sqnr dB, all pooled",
            "-",
            format!("{:.1} ", f.sqnr_db),
            format!("{:.1} ", s.sqnr_db)
        );
        println!("{:<22} (* marks each model's worst output)", "");
    } else {
        println!(
            "{:<22} {:>10} {:>12.1} {:>10.1}",
            "output sqnr (dB)", "-", f.sqnr_db, s.sqnr_db
        );
    }
    for o in &f.outputs {
        // The selective model's own task metrics beside the full-int8 model's.
        let selective = s
            .output(&o.name)
            .map(super::task_metrics)
            .unwrap_or_default();
        let full = super::task_metrics(o);
        println!("{}: {}", o.name, super::task_label(o));
        if !full.is_empty() {
            println!("  full int8: {full}\n  selective: {selective}");
        }
    }
    let Some(classified) = &f.classified_output else {
        println!("\nwrote {}", args.output.display());
        return Ok(());
    };
    println!(
        "{:<22} {:>10} {:>12} {:>10}",
        format!("same top-1 ({classified})"),
        "-",
        pct(Some(f.argmax_agreement)),
        pct(Some(s.argmax_agreement))
    );
    if selector.labels.is_some() {
        println!(
            "{:<22} {:>10} {:>12} {:>10}",
            "top-1 accuracy",
            pct(f.float_top1),
            pct(f.int8_top1),
            pct(s.int8_top1)
        );
        println!(
            "{:<22} {:>10} {:>12} {:>10}",
            "top-5 accuracy",
            pct(f.float_top5),
            pct(f.int8_top5),
            pct(s.int8_top5)
        );
    }
    println!("\nwrote {}", args.output.display());
    Ok(())
}
