//! Denylists: which ops stay float in a selectively quantized model.
//!
//! Rules, one per line in a denylist file (`#` starts a comment), combinable:
//! - `name:EXACT`, `glob:PATTERN`, `re:REGEX` — output tensor names (the float model's);
//!   a bare word is an exact name;
//! - `op:MEAN` — every op of a type;
//! - `first:N`, `last:N` — the first / last N quantized layers in execution order;
//! - `allow:EXACT` — an exception: that op stays quantized whatever the other rules say
//!   (applied after them, so "everything above the threshold but this one" is two lines);
//! - a metric expression over the debugger's per-layer statistics, such as
//!   `rmse/scale > 0.7` or `sqnr_db < 20 and op == CONV_2D`, with `and` / `or`
//!   (`and` binds tighter) and the comparisons `> >= < <= == !=`.

use std::fmt;
use std::path::Path;

use crate::debug::report::{range, rmse_over_scale};
use crate::debug::LayerStats;
use crate::error::{Error, Result};
use crate::graph::Graph;

#[derive(Clone, Debug)]
pub enum Rule {
    Name(String),
    Glob(glob::Pattern),
    Regex(regex::Regex),
    Op(String),
    First(usize),
    Last(usize),
    Metric(Expr),
    /// Keeps the op with this output tensor name quantized, overriding the other rules.
    Allow(String),
}

/// `or` of `and`s of comparisons.
#[derive(Clone, Debug)]
pub struct Expr {
    pub any_of: Vec<Vec<Comparison>>,
    text: String,
}

#[derive(Clone, Debug)]
pub struct Comparison {
    pub metric: String,
    pub op: CmpOp,
    pub value: Value,
}

#[derive(Clone, Debug)]
pub enum Value {
    Number(f64),
    Word(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

/// Metric names an expression may use.
pub const EXPRESSION_METRICS: [&str; 12] = [
    "rmse/scale",
    "range",
    "scale",
    "zero_point",
    "mean_squared_error",
    "max_abs_error",
    "mean_error",
    "stddev",
    "sqnr_db",
    "cosine",
    "saturation",
    "op",
];

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Name(n) => write!(f, "name:{n}"),
            Rule::Glob(g) => write!(f, "glob:{}", g.as_str()),
            Rule::Regex(r) => write!(f, "re:{}", r.as_str()),
            Rule::Op(o) => write!(f, "op:{o}"),
            Rule::First(n) => write!(f, "first:{n}"),
            Rule::Last(n) => write!(f, "last:{n}"),
            Rule::Metric(e) => f.write_str(&e.text),
            Rule::Allow(n) => write!(f, "allow:{n}"),
        }
    }
}

impl Rule {
    /// Parses one rule; the error says what forms are accepted.
    pub fn parse(text: &str) -> std::result::Result<Rule, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty rule".into());
        }
        if let Some((kind, arg)) = text.split_once(':') {
            let arg = arg.trim();
            let count = || {
                arg.parse::<usize>()
                    .map_err(|_| format!("'{text}': {kind}: takes a whole number"))
            };
            match kind.trim() {
                "name" => return Ok(Rule::Name(arg.to_string())),
                "glob" => {
                    return glob::Pattern::new(arg)
                        .map(Rule::Glob)
                        .map_err(|e| format!("'{text}': bad glob: {e}"))
                }
                "re" | "regex" => {
                    return regex::Regex::new(arg)
                        .map(Rule::Regex)
                        .map_err(|e| format!("'{text}': bad regex: {e}"))
                }
                "op" => return Ok(Rule::Op(arg.to_ascii_uppercase())),
                "allow" => return Ok(Rule::Allow(arg.to_string())),
                "first" => return count().map(Rule::First),
                "last" => return count().map(Rule::Last),
                _ => {}
            }
        }
        if text.contains(['<', '>', '=']) {
            return parse_expr(text).map(Rule::Metric);
        }
        Ok(Rule::Name(text.to_string()))
    }
}

fn parse_expr(text: &str) -> std::result::Result<Expr, String> {
    let mut any_of = Vec::new();
    for alternative in split_word(text, "or") {
        let mut all_of = Vec::new();
        for term in split_word(&alternative, "and") {
            all_of.push(parse_comparison(term.trim()).map_err(|e| format!("'{text}': {e}"))?);
        }
        any_of.push(all_of);
    }
    Ok(Expr {
        any_of,
        text: text.to_string(),
    })
}

/// Splits on a keyword standing alone (`a and b`), not inside a name.
fn split_word(text: &str, word: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    for token in text.split_whitespace() {
        if token.eq_ignore_ascii_case(word) {
            parts.push(String::new());
        } else {
            let last = parts.last_mut().expect("parts is never empty");
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(token);
        }
    }
    parts
}

fn parse_comparison(term: &str) -> std::result::Result<Comparison, String> {
    for (sym, op) in [
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
    ] {
        if let Some((lhs, rhs)) = term.split_once(sym) {
            let metric = lhs.trim().to_string();
            if !EXPRESSION_METRICS.contains(&metric.as_str()) {
                return Err(format!(
                    "unknown metric '{metric}'; use one of {}",
                    EXPRESSION_METRICS.join(", ")
                ));
            }
            let rhs = rhs.trim();
            let value = match rhs.parse::<f64>() {
                Ok(v) => Value::Number(v),
                Err(_) if metric == "op" => Value::Word(rhs.to_ascii_uppercase()),
                Err(_) => return Err(format!("'{rhs}' is not a number")),
            };
            return Ok(Comparison { metric, op, value });
        }
    }
    Err(format!(
        "'{term}' is not a comparison like 'rmse/scale > 0.7'"
    ))
}

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

/// The float-graph positions a set of rules keeps float, and the rules that matched nothing.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub keep_float: std::collections::BTreeSet<usize>,
    pub unmatched: Vec<String>,
}

fn metric_value(stats: &LayerStats, metric: &str) -> Option<f64> {
    let m = stats.per_layer.or(stats.whole_model)?;
    Some(match metric {
        "rmse/scale" => rmse_over_scale(m.mean_squared_error, stats.info.scale),
        "range" => range(stats.info.scale),
        "scale" => stats.info.scale as f64,
        "zero_point" => stats.info.zero_point as f64,
        "mean_squared_error" => m.mean_squared_error,
        "max_abs_error" => m.max_abs_error,
        "mean_error" => m.mean_error,
        "stddev" => m.stddev,
        "sqnr_db" => m.sqnr_db,
        "cosine" => m.cosine,
        "saturation" => m.saturation,
        _ => return None,
    })
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
                            e.text
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
        }
        if !matched {
            out.unmatched.push(rule.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert!(matches!(Rule::parse("op:mean"), Ok(Rule::Op(o)) if o == "MEAN"));
        assert!(matches!(Rule::parse("first:5"), Ok(Rule::First(5))));
        assert!(matches!(Rule::parse("allow: b3/out"), Ok(Rule::Allow(n)) if n == "b3/out"));
        assert!(matches!(Rule::parse("last: 2"), Ok(Rule::Last(2))));
        assert!(matches!(Rule::parse("conv1/out"), Ok(Rule::Name(n)) if n == "conv1/out"));
        assert!(matches!(Rule::parse("glob:*stem*"), Ok(Rule::Glob(_))));
        assert!(matches!(Rule::parse("re:^b[34]_"), Ok(Rule::Regex(_))));
        let Ok(Rule::Metric(e)) = Rule::parse("rmse/scale > 0.7 and op == conv_2d or sqnr_db < 20")
        else {
            panic!("not a metric rule")
        };
        assert_eq!(e.any_of.len(), 2);
        assert_eq!(e.any_of[0].len(), 2);
        assert_eq!(e.any_of[0][0].op, CmpOp::Gt);
        assert!(Rule::parse("rmse > 0.7")
            .unwrap_err()
            .contains("unknown metric"));
        assert!(Rule::parse("first:x").is_err());
        assert!(Rule::parse("re:(").is_err());
    }
}
