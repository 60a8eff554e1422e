//! Denylists: which ops stay float in a selectively quantized model. A denylist is a
//! list of [`Rule`]s (see [`super::rules`] for their syntax); this module reads and writes
//! denylist files and resolves rules against a graph and the debugger's statistics.

use std::path::Path;

use crate::debug::report::metric_value;
use crate::debug::LayerStats;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::quant::range_search::RangeMethod;

use super::rules::{CmpOp, Comparison, Rule, Value};

/// Reads a denylist file: one rule per line, `#` comments, blank lines ignored.
pub fn read_denylist(path: &Path) -> Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        rules.push(
            Rule::parse(line).map_err(|e| Error::data(path, format!("line {}: {e}", i + 1)))?,
        );
    }
    Ok(rules)
}

/// Writes rules back as a denylist file, atomically.
pub fn write_denylist(path: &Path, rules: &[Rule]) -> Result<()> {
    let mut text = String::from("# qdbg denylist: one rule per line (see `qdbg select --help`)\n");
    for r in rules {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    crate::atomic::write_bytes_atomic(path, text.as_bytes())
}

/// The float-graph positions a set of rules keeps float, the tensors they quantize with a
/// range other than their min/max, and the rules that matched nothing.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub keep_float: std::collections::BTreeSet<usize>,
    /// `range:` rules by tensor (a later rule for the same tensor wins).
    pub ranges: std::collections::BTreeMap<TensorId, RangeMethod>,
    pub unmatched: Vec<Rule>,
}

/// The tensor a `range:` rule may name: a float tensor calibration records (a model
/// input or an op's output).
fn range_tensor(graph: &Graph, name: &str) -> Option<TensorId> {
    graph
        .inputs
        .iter()
        .chain(graph.nodes.iter().flat_map(|n| n.outputs.iter()))
        .copied()
        .find(|&id| graph.tensor(id).name == name && graph.tensor(id).dtype.is_float())
}

fn holds(c: &Comparison, stats: &LayerStats) -> bool {
    if c.metric == "op" {
        let Value::Word(w) = &c.value else {
            return false;
        };
        return match c.op {
            CmpOp::Eq => stats.info.op_name == w,
            CmpOp::Ne => stats.info.op_name != w,
            _ => false,
        };
    }
    let (Some(v), Value::Number(t)) = (metric_value(stats, &c.metric), &c.value) else {
        return false;
    };
    match c.op {
        CmpOp::Gt => v > *t,
        CmpOp::Ge => v >= *t,
        CmpOp::Lt => v < *t,
        CmpOp::Le => v <= *t,
        CmpOp::Eq => v == *t,
        CmpOp::Ne => v != *t,
    }
}

/// Refuses name rules (`name:`, bare names, `glob:`, `re:`) that match no op's output
/// tensor: such a rule is almost always a typo, and running on without it would write a
/// model that quietly quantizes the layer the user meant to keep float. (Metric, op and
/// first/last rules that match nothing are answers, not mistakes: `resolve` reports them.)
pub fn check_names(graph: &Graph, rules: &[Rule]) -> Result<()> {
    let names: Vec<&str> = graph
        .nodes
        .iter()
        .map(|n| graph.tensor(n.outputs[0]).name.as_str())
        .collect();
    for rule in rules {
        if let Rule::Range { tensor, .. } = rule {
            if range_tensor(graph, tensor).is_none() {
                return Err(Error::Data {
                    path: "denylist".into(),
                    reason: format!(
                        "rule '{rule}': {} has no calibrated float tensor named '{tensor}' (a \
                         range applies to a model input or an op's output, by the float \
                         model's tensor name as `qdbg inspect` lists it): fix the name",
                        graph.source.display()
                    ),
                });
            }
            continue;
        }
        let matches = |name: &str| match rule {
            Rule::Name(n) => name == n,
            Rule::Glob(g) => g.matches(name),
            Rule::Regex(r) => r.is_match(name),
            _ => true,
        };
        if names.iter().any(|n| matches(n)) {
            continue;
        }
        let example = names
            .first()
            .map_or(String::new(), |n| format!(" (e.g. '{n}')"));
        return Err(Error::Data {
            path: "denylist".into(),
            reason: format!(
                "rule '{rule}' matches nothing: no op of {} has such an output tensor; names \
                 are the float model's output tensor names, as the CSV of `qdbg debug --csv` \
                 shows them in tensor_name{example}: fix the name, or match loosely with \
                 glob:*part* or re:",
                graph.source.display()
            ),
        });
    }
    Ok(())
}

/// Applies `rules` to the float graph's ops. `layers` (the debugger's rows, in execution
/// order) defines "layers" for first/last N and feeds metric expressions; metric rules need it.
pub fn resolve(graph: &Graph, rules: &[Rule], layers: &[LayerStats]) -> Result<Resolved> {
    let mut out = Resolved::default();
    // Exceptions apply after every denying rule, wherever they are written.
    let (allows, denies): (Vec<&Rule>, Vec<&Rule>) =
        rules.iter().partition(|r| matches!(r, Rule::Allow(_)));
    for rule in denies.into_iter().chain(allows) {
        let mut matched = false;
        let name_of = |pos: usize| &graph.tensor(graph.nodes[pos].outputs[0]).name;
        match rule {
            Rule::Name(n) => {
                for pos in 0..graph.nodes.len() {
                    if name_of(pos) == n {
                        out.keep_float.insert(pos);
                        matched = true;
                    }
                }
            }
            Rule::Glob(g) => {
                for pos in 0..graph.nodes.len() {
                    if g.matches(name_of(pos)) {
                        out.keep_float.insert(pos);
                        matched = true;
                    }
                }
            }
            Rule::Regex(r) => {
                for pos in 0..graph.nodes.len() {
                    if r.is_match(name_of(pos)) {
                        out.keep_float.insert(pos);
                        matched = true;
                    }
                }
            }
            Rule::Op(o) => {
                for (pos, node) in graph.nodes.iter().enumerate() {
                    if node.op.display_name() == o {
                        out.keep_float.insert(pos);
                        matched = true;
                    }
                }
            }
            Rule::First(n) => {
                for l in layers.iter().take(*n) {
                    out.keep_float.insert(l.info.float_node);
                    matched = true;
                }
            }
            Rule::Last(n) => {
                for l in layers.iter().rev().take(*n) {
                    out.keep_float.insert(l.info.float_node);
                    matched = true;
                }
            }
            Rule::Metric(e) => {
                if layers.is_empty() {
                    return Err(Error::Data {
                        path: "denylist".into(),
                        reason: format!(
                            "'{}' needs the debugger's statistics; run with --data",
                            e.text()
                        ),
                    });
                }
                for l in layers {
                    if e.any_of.iter().any(|all| all.iter().all(|c| holds(c, l))) {
                        out.keep_float.insert(l.info.float_node);
                        matched = true;
                    }
                }
            }
            Rule::Allow(n) => {
                for pos in 0..graph.nodes.len() {
                    if name_of(pos) == n {
                        out.keep_float.remove(&pos);
                        matched = true;
                    }
                }
            }
            Rule::Range { tensor, method } => {
                if let Some(id) = range_tensor(graph, tensor) {
                    out.ranges.insert(id, *method);
                    matched = true;
                }
            }
        }
        if !matched {
            out.unmatched.push(rule.clone());
        }
    }
    Ok(out)
}
