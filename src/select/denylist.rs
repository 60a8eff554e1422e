//! Denylists: which ops stay float (and which compute in 16x8) in a selectively quantized
//! model. A denylist is a list of [`Rule`]s (see [`super::rules`] for their syntax); this
//! module reads and writes denylist files and resolves rules against a graph and the
//! debugger's statistics.

use std::path::Path;

use crate::debug::report::metric_value;
use crate::debug::LayerStats;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::quant::range_search::RangeMethod;

use super::int16::int16_refusal;
use super::rules::{CmpOp, Comparison, Rule, Value, FLOAT_KEYWORD};

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

/// Writes rules back as a denylist file, atomically: each rule that picks ops with its
/// keyword (`float RULE`, `int16 RULE`), so the file says what each line does;
/// [`read_denylist`] reads it back to the same rules.
pub fn write_denylist(path: &Path, rules: &[Rule]) -> Result<()> {
    crate::atomic::write_bytes_atomic(path, denylist_text(rules).as_bytes())
}

/// The text of a denylist file holding `rules`.
pub fn denylist_text(rules: &[Rule]) -> String {
    let mut text = String::from(
        "# qdbg denylist: one rule per line (see `qdbg select --help`); `float RULE` keeps\n\
         # the ops RULE picks float (a bare rule too), `int16 RULE` computes them in 16x8\n",
    );
    for r in rules {
        if r.picks_ops() {
            text.push_str(FLOAT_KEYWORD);
            text.push(' ');
        }
        text.push_str(&r.to_string());
        text.push('\n');
    }
    text
}

/// The float-graph positions a set of rules keeps float, the tensors they quantize with a
/// range other than their min/max, and the rules that matched nothing.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub keep_float: std::collections::BTreeSet<usize>,
    /// Float-graph positions `int16` rules compute in 16x8 (none of them kept float: a
    /// float rule wins over an int16 one).
    pub int16: std::collections::BTreeSet<usize>,
    /// Ops an `int16` rule picked loosely (metric, first/last, glob, regex) that cannot
    /// compute in 16x8 and stay int8, each with why.
    pub int16_refused: Vec<(usize, String)>,
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
    for written in rules {
        let rule = match written {
            Rule::Int16(inner) => {
                refuse_exact_int16(graph, written, inner)?;
                inner.as_ref()
            }
            other => other,
        };
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
                "rule '{written}' matches nothing: no op of {} has such an output tensor; names \
                 are the float model's output tensor names, as the CSV of `qdbg debug --csv` \
                 shows them in tensor_name{example}: fix the name, or match loosely with \
                 glob:*part* or re:",
                graph.source.display()
            ),
        });
    }
    Ok(())
}

/// Refuses an int16 rule that names an op exactly (`name:`, `op:`) when that op cannot
/// compute in 16x8: the user asked for something qdbg cannot write, and quietly leaving
/// the op int8 would hide it. Loose rules (metrics, globs, ...) are reported instead.
fn refuse_exact_int16(graph: &Graph, written: &Rule, inner: &Rule) -> Result<()> {
    if !matches!(inner, Rule::Name(_) | Rule::Op(_)) {
        return Ok(());
    }
    for pos in picked(graph, inner, &[])? {
        if let Some(why) = int16_refusal(graph, pos) {
            let node = &graph.nodes[pos];
            let name = &graph.tensor(node.outputs[0]).name;
            // Float instead, in the rule's own terms.
            let deny = match inner {
                Rule::Op(o) => format!("op:{o}"),
                _ => format!("name:{name}"),
            };
            return Err(Error::Data {
                path: "denylist".into(),
                reason: format!(
                    "rule '{written}': op #{} {} '{name}' of {} cannot compute in 16x8 \
                     ({why}); keep it float instead (--deny {deny}), or leave it int8 by \
                     dropping the rule",
                    node.source_index,
                    node.op.display_name(),
                    graph.source.display()
                ),
            });
        }
    }
    Ok(())
}

/// The float-graph positions a rule that picks ops (name, glob, regex, op, first/last,
/// metric) picks, in order. `layers` (the debugger's rows, in execution order) defines
/// "layers" for first/last N and feeds metric expressions.
fn picked(graph: &Graph, rule: &Rule, layers: &[LayerStats]) -> Result<Vec<usize>> {
    let name_of = |pos: usize| &graph.tensor(graph.nodes[pos].outputs[0]).name;
    let by_name = |pick: &dyn Fn(&str) -> bool| -> Vec<usize> {
        (0..graph.nodes.len())
            .filter(|&p| pick(name_of(p)))
            .collect()
    };
    Ok(match rule {
        Rule::Name(n) => by_name(&|name| name == n),
        Rule::Glob(g) => by_name(&|name| g.matches(name)),
        Rule::Regex(r) => by_name(&|name| r.is_match(name)),
        Rule::Op(o) => (0..graph.nodes.len())
            .filter(|&p| graph.nodes[p].op.display_name() == o)
            .collect(),
        Rule::First(n) => layers.iter().take(*n).map(|l| l.info.float_node).collect(),
        Rule::Last(n) => layers
            .iter()
            .rev()
            .take(*n)
            .map(|l| l.info.float_node)
            .collect(),
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
            layers
                .iter()
                .filter(|l| e.any_of.iter().any(|all| all.iter().all(|c| holds(c, l))))
                .map(|l| l.info.float_node)
                .collect()
        }
        Rule::Allow(_) | Rule::Range { .. } | Rule::Int16(_) => Vec::new(),
    })
}

/// Applies `rules` to the float graph's ops. `layers` (the debugger's rows, in execution
/// order) defines "layers" for first/last N and feeds metric expressions; metric rules
/// need it. An `int16` rule naming an op that cannot compute in 16x8 is refused (see
/// [`refuse_exact_int16`]).
pub fn resolve(graph: &Graph, rules: &[Rule], layers: &[LayerStats]) -> Result<Resolved> {
    let mut out = Resolved::default();
    // Exceptions apply after every other rule, wherever they are written.
    let (allows, others): (Vec<&Rule>, Vec<&Rule>) =
        rules.iter().partition(|r| matches!(r, Rule::Allow(_)));
    for rule in others.into_iter().chain(allows) {
        let matched = match rule {
            Rule::Allow(n) => {
                // The op stays as the full-int8 model has it: neither float nor int16.
                let positions: Vec<usize> = (0..graph.nodes.len())
                    .filter(|&p| &graph.tensor(graph.nodes[p].outputs[0]).name == n)
                    .collect();
                for p in &positions {
                    out.keep_float.remove(p);
                    out.int16.remove(p);
                }
                !positions.is_empty()
            }
            Rule::Range { tensor, method } => match range_tensor(graph, tensor) {
                Some(id) => {
                    out.ranges.insert(id, *method);
                    true
                }
                None => false,
            },
            Rule::Int16(inner) => {
                refuse_exact_int16(graph, rule, inner)?;
                let positions = picked(graph, inner, layers)?;
                for &p in &positions {
                    match int16_refusal(graph, p) {
                        Some(why) => {
                            if !out.int16_refused.iter().any(|(q, _)| *q == p) {
                                out.int16_refused.push((p, why));
                            }
                        }
                        None => {
                            out.int16.insert(p);
                        }
                    }
                }
                !positions.is_empty()
            }
            float_rule => {
                let positions = picked(graph, float_rule, layers)?;
                out.keep_float.extend(&positions);
                !positions.is_empty()
            }
        };
        if !matched {
            out.unmatched.push(rule.clone());
        }
    }
    // Float wins over int16: an op both pick stays float, and is no longer "left int8".
    out.int16.retain(|p| !out.keep_float.contains(p));
    let float = &out.keep_float;
    out.int16_refused.retain(|(p, _)| !float.contains(p));
    out.int16_refused.sort_by_key(|(p, _)| *p);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Graph {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/model.tflite");
        crate::tflite::read_model(&path).unwrap()
    }

    fn rules(texts: &[&str]) -> Vec<Rule> {
        texts.iter().map(|t| Rule::parse(t).unwrap()).collect()
    }

    fn positions_of(graph: &Graph, op: &str) -> std::collections::BTreeSet<usize> {
        (0..graph.nodes.len())
            .filter(|&p| graph.nodes[p].op.display_name() == op)
            .collect()
    }

    #[test]
    fn int16_rules_resolve_beside_float_ones_and_float_wins() {
        let g = demo();
        let convs = positions_of(&g, "CONV_2D");
        let swishes = positions_of(&g, "HARD_SWISH");
        let stem = *convs.first().unwrap();
        let stem_name = g.tensor(g.nodes[stem].outputs[0]).name.clone();
        let last_conv = *convs.last().unwrap();
        let last_name = g.tensor(g.nodes[last_conv].outputs[0]).name.clone();
        let r = resolve(
            &g,
            &rules(&[
                "int16 op:CONV_2D",
                &format!("float name:{stem_name}"),
                "int16 glob:*hswish*",
                &format!("allow:{last_name}"),
            ]),
            &[],
        )
        .unwrap();
        // The stem is float (float wins), the last conv int8 (allow), the rest int16.
        assert_eq!(r.keep_float, [stem].into());
        let mut expected = convs.clone();
        expected.remove(&stem);
        expected.remove(&last_conv);
        assert_eq!(r.int16, expected);
        // HARD_SWISH, picked by a glob, stays int8 and is reported with LiteRT's refusal.
        let refused: std::collections::BTreeSet<usize> =
            r.int16_refused.iter().map(|(p, _)| *p).collect();
        assert_eq!(refused, swishes);
        assert!(r.int16_refused[0]
            .1
            .contains("LiteRT has no 16x8 kernel for HARD_SWISH"));
        assert!(r.unmatched.is_empty());
    }

    #[test]
    fn an_int16_rule_naming_an_op_without_a_16x8_kernel_is_refused() {
        let g = demo();
        for (rule, deny) in [
            ("int16 op:HARD_SWISH".to_string(), "--deny op:HARD_SWISH"),
            (
                format!(
                    "int16 name:{}",
                    g.tensor(g.nodes[*positions_of(&g, "HARD_SWISH").first().unwrap()].outputs[0])
                        .name
                ),
                "--deny name:",
            ),
        ] {
            let rules = rules(&[&rule]);
            for err in [
                resolve(&g, &rules, &[]).unwrap_err().to_string(),
                check_names(&g, &rules).unwrap_err().to_string(),
            ] {
                assert!(
                    err.contains("HARD_SWISH")
                        && err.contains("cannot compute in 16x8")
                        && err.contains(deny),
                    "{err}"
                );
            }
        }
        // A misspelt int16 name is refused as a float one is.
        let err = check_names(&g, &rules(&["int16 name:no/such"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("'int16 name:no/such' matches nothing"),
            "{err}"
        );
    }

    #[test]
    fn a_denylist_file_with_keywords_round_trips() {
        let written = rules(&[
            "op:MEAN",
            "int16 rmse/scale > 0.7",
            "int16 first:3",
            "allow:b3/out",
            "range:x=mse",
            "glob:*stem*",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.txt");
        write_denylist(&path, &written).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "float op:MEAN",
                "int16 rmse/scale > 0.7",
                "int16 first:3",
                "allow:b3/out",
                "range:x=mse",
                "float glob:*stem*",
            ]
        );
        assert_eq!(read_denylist(&path).unwrap(), written);
        // An old file, bare rules only, reads as float rules.
        std::fs::write(&path, "op:MEAN\nrmse/scale > 0.7 # old\n").unwrap();
        assert_eq!(
            read_denylist(&path).unwrap(),
            rules(&["float op:MEAN", "float rmse/scale > 0.7"])
        );
    }
}
