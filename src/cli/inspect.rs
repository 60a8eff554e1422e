//! `qdbg inspect`: what a model contains, for people (a table) and scripts (`--json`).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use qdbg::graph::{Activations, Graph, ModelKind, TensorId};
use serde_json::json;

#[derive(Args)]
pub struct InspectArgs {
    /// The .tflite model.
    pub model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let graph = qdbg::tflite::read_model(&args.model)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&graph))?);
    } else {
        print!("{}", render(&graph));
    }
    Ok(())
}

fn shape_text(graph: &Graph, id: TensorId) -> String {
    let t = graph.tensor(id);
    let dims: Vec<String> = t.shape.iter().map(usize::to_string).collect();
    format!("[{}] {}", dims.join(","), t.dtype)
}

fn quant_text(graph: &Graph, id: TensorId) -> String {
    match &graph.tensor(id).quant {
        Some(q) if q.is_per_channel() => format!(" (per-channel int, {} scales)", q.scale.len()),
        Some(q) => format!(" (scale {}, zero point {})", q.scale[0], q.zero_point[0]),
        None => String::new(),
    }
}

pub fn render(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "model: {}", graph.source.display());
    let _ = writeln!(out, "kind: {}", ModelKind::of(graph).describe());
    if !graph.description.is_empty() {
        let _ = writeln!(out, "description: {}", graph.description);
    }
    for (title, ids) in [("inputs", &graph.inputs), ("outputs", &graph.outputs)] {
        let _ = writeln!(out, "{title}:");
        for &id in ids {
            let _ = writeln!(
                out,
                "  t{id:<4} {:<32} {}{}",
                graph.tensor(id).name,
                shape_text(graph, id),
                quant_text(graph, id)
            );
        }
    }
    let counts: Vec<String> = graph
        .op_counts()
        .iter()
        .map(|(name, n)| format!("{name} x{n}"))
        .collect();
    let _ = writeln!(out, "ops: {} ({})", graph.nodes.len(), counts.join(", "));
    if !graph.folded.is_empty() {
        // One group per op and reason, in first-seen order: a model with float16 sparse
        // weights folds both DENSIFY and DEQUANTIZE ops.
        let mut groups: Vec<(&str, &str, usize)> = Vec::new();
        for f in &graph.folded {
            match groups
                .iter_mut()
                .find(|(op, why, _)| *op == f.op_name && *why == f.why)
            {
                Some(group) => group.2 += 1,
                None => groups.push((&f.op_name, f.why, 1)),
            }
        }
        let groups: Vec<String> = groups
            .iter()
            .map(|(op, why, n)| format!("{n} {op} of constants ({why})"))
            .collect();
        let _ = writeln!(out, "folded at load time: {}", groups.join(", "));
    }
    if !graph.densified.is_empty() {
        let names: Vec<String> = graph
            .densified
            .iter()
            .map(|&id| format!("t{id} {}", shape_text(graph, id)))
            .collect();
        let _ = writeln!(
            out,
            "sparse weights densified at load time: {}",
            names.join(", ")
        );
    }
    let unsupported: Vec<String> = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, qdbg::graph::Op::Unsupported { .. }))
        .map(|n| format!("#{} {}", n.source_index, n.op.display_name()))
        .collect();
    if !unsupported.is_empty() {
        let _ = writeln!(out, "not supported by qdbg: {}", unsupported.join(", "));
    }
    let _ = writeln!(
        out,
        "\n{:>5}  {:<24} {:<40} shapes (inputs -> outputs)",
        "index", "op", "output tensor"
    );
    for node in &graph.nodes {
        let ins: Vec<String> = node
            .inputs
            .iter()
            .flatten()
            .filter(|&&i| !graph.tensor(i).is_constant())
            .map(|&i| shape_text(graph, i))
            .collect();
        let outs: Vec<String> = node.outputs.iter().map(|&o| shape_text(graph, o)).collect();
        let _ = writeln!(
            out,
            "{:>5}  {:<24} {:<40} {} -> {}",
            node.source_index,
            node.op.display_name(),
            graph.tensor(node.outputs[0]).name,
            ins.join(" "),
            outs.join(" ")
        );
    }
    out
}

fn tensor_json(graph: &Graph, id: TensorId) -> serde_json::Value {
    let t = graph.tensor(id);
    json!({
        "index": id,
        "name": t.name,
        "shape": t.shape,
        "dtype": t.dtype.name(),
        "constant": t.is_constant(),
        "quantization": t.quant,
    })
}

fn kind_json(graph: &Graph) -> serde_json::Value {
    let kind = ModelKind::of(graph);
    let activations = match kind.activations {
        Activations::Float if kind.is_dynamic_range() => "dynamic-range",
        Activations::Float => "float",
        Activations::Int8 => "int8",
        Activations::Int16 => "16x8",
        Activations::Mixed => "mixed",
    };
    json!({
        "activations": activations,
        "description": kind.describe(),
        "float_ops": kind.float_ops,
        "integer_ops": kind.integer_ops,
        "hybrid_ops": kind.hybrid_ops,
        "float16_weights": kind.float16_weights,
        "dequantized_weights": kind.dequantized_weights,
        "sparse_weights": kind.sparse_weights,
        "custom_ops": kind.custom_ops,
    })
}

pub fn to_json(graph: &Graph) -> serde_json::Value {
    json!({
        "model": graph.source,
        "kind": kind_json(graph),
        "description": graph.description,
        "inputs": graph.inputs.iter().map(|&i| tensor_json(graph, i)).collect::<Vec<_>>(),
        "outputs": graph.outputs.iter().map(|&i| tensor_json(graph, i)).collect::<Vec<_>>(),
        "op_counts": graph.op_counts().into_iter().map(|(n, c)| json!({"op": n, "count": c})).collect::<Vec<_>>(),
        "folded": graph.folded,
        "densified": graph.densified,
        "ops": graph.nodes.iter().map(|n| json!({
            "index": n.source_index,
            "op": n.op.display_name(),
            "supported": !matches!(n.op, qdbg::graph::Op::Unsupported { .. }),
            "attributes": n.op,
            "inputs": n.inputs.iter().map(|i| i.map(|i| tensor_json(graph, i))).collect::<Vec<_>>(),
            "outputs": n.outputs.iter().map(|&o| tensor_json(graph, o)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
