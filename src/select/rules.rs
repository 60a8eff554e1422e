//! Denylist rules, parsed once into what they mean and passed around as such: the CLI,
//! the dashboard's reducer, its engine, the selector and the denylist file writer all hold
//! [`Rule`]s, never their text. `Display` writes a rule back in the syntax it was read
//! from (a metric expression as it was written), so a denylist file read and written
//! again is unchanged.
//!
//! Syntax, one rule per line of a denylist file:
//! - `name:EXACT`, `glob:PATTERN`, `re:REGEX` — output tensor names (the float model's);
//!   a bare word is an exact name;
//! - `op:MEAN` — every op of a type;
//! - `first:N`, `last:N` — the first / last N quantized layers in execution order;
//! - `allow:EXACT` — an exception: that op stays quantized whatever the other rules say;
//! - `range:TENSOR=METHOD` — not a denial but an integer-only remedy: quantize that tensor
//!   (any calibrated tensor, model inputs included) with a range found on its calibration
//!   histogram instead of its min/max; METHOD is `percentile:P` (keep P% of the values,
//!   e.g. 99.99), `mse` (least expected int8 error) or `entropy` (the KL threshold);
//! - a metric expression over the debugger's per-layer statistics, such as
//!   `rmse/scale > 0.7` or `sqnr_db < 20 and op == CONV_2D`, with `and` / `or`
//!   (`and` binds tighter) and the comparisons `> >= < <= == !=`.
//!
//! A keyword before a rule says what it does with the ops it picks: `float RULE` keeps
//! them float (what a bare rule does, so files written before the keyword read the same)
//! and `int16 RULE` computes them in 16x8 (int16 activations, int8 weights) instead of
//! int8: `int16 rmse/scale > 0.7`, `float op:MEAN`. `allow:` and `range:` take no keyword.

use std::fmt;
use std::str::FromStr;

use crate::debug::report::LAYER_METRICS;
use crate::quant::range_search::RangeMethod;

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
    /// Quantizes the tensor with this name with the range `method` finds on its
    /// calibration histogram: the model stays integer, at no cost in size or speed.
    Range {
        tensor: String,
        method: RangeMethod,
    },
    /// Computes the ops the inner rule picks in 16x8 instead of int8 (a float rule
    /// picking the same op wins). The inner rule is never `Allow`, `Range` or `Int16`.
    Int16(Box<Rule>),
}

/// `or` of `and`s of comparisons.
#[derive(Clone, Debug)]
pub struct Expr {
    pub any_of: Vec<Vec<Comparison>>,
    /// As the user wrote it (what a denylist file and the dashboard show).
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

impl CmpOp {
    /// The comparison as written in a rule.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

/// Whether an expression may compare `name`: any per-layer metric (the names the CSV
/// and JSON use, `debug::report::LAYER_METRICS`) or the op type.
fn expression_metric(name: &str) -> bool {
    name == "op" || LAYER_METRICS.contains(&name)
}

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
            Rule::Range { tensor, method } => {
                write!(f, "range:{tensor}={}", range_method_text(*method))
            }
            Rule::Int16(inner) => write!(f, "{INT16_KEYWORD} {inner}"),
        }
    }
}

/// The keyword of a rule picking ops to compute in 16x8.
pub const INT16_KEYWORD: &str = "int16";
/// The keyword of a rule keeping ops float (a bare rule means the same).
pub const FLOAT_KEYWORD: &str = "float";

impl Rule {
    /// Parses one rule, with its keyword if it has one (`int16 RULE`, `float RULE`); the
    /// error says what forms are accepted.
    pub fn parse(text: &str) -> std::result::Result<Rule, String> {
        let text = text.trim();
        if let Some((keyword, rest)) = text.split_once(char::is_whitespace) {
            if keyword == INT16_KEYWORD {
                return Rule::int16(Rule::parse(rest)?);
            }
            if keyword == FLOAT_KEYWORD {
                let rule = Rule::parse(rest)?;
                return if rule.picks_ops() {
                    Ok(rule)
                } else {
                    Err(format!(
                        "'{text}': '{rule}' takes no keyword; write it alone"
                    ))
                };
            }
        }
        Rule::parse_bare(text)
    }

    /// `rule` turned into an int16 rule; refused for rules that pick no ops to compute
    /// (`allow:`, `range:`) and for an int16 rule already.
    pub fn int16(rule: Rule) -> std::result::Result<Rule, String> {
        if rule.picks_ops() {
            Ok(Rule::Int16(Box::new(rule)))
        } else {
            Err(format!(
                "'{rule}' cannot be an int16 rule: int16 takes name:, glob:, re:, op:, \
                 first:, last: or a metric expression"
            ))
        }
    }

    /// Whether the rule picks ops to treat (float or int16), rather than excepting an op
    /// (`allow:`), choosing a range (`range:`) or being an int16 rule itself.
    pub fn picks_ops(&self) -> bool {
        !matches!(self, Rule::Allow(_) | Rule::Range { .. } | Rule::Int16(_))
    }

    /// A rule without a keyword.
    fn parse_bare(text: &str) -> std::result::Result<Rule, String> {
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
                "range" => return parse_range(text, arg),
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

/// `range:TENSOR=METHOD`'s argument. The method follows the last `=`: tensor names may
/// hold `:` (`serving_default_x:0`) but not a method's `=`.
fn parse_range(text: &str, arg: &str) -> std::result::Result<Rule, String> {
    let usage = "write range:TENSOR=percentile:P (0 < P <= 100, e.g. 99.99), \
                 range:TENSOR=mse or range:TENSOR=entropy";
    let Some((tensor, method)) = arg.rsplit_once('=') else {
        return Err(format!("'{text}': {usage}"));
    };
    let tensor = tensor.trim();
    if tensor.is_empty() {
        return Err(format!("'{text}': no tensor name; {usage}"));
    }
    let method = match method.trim() {
        "mse" => RangeMethod::MinMse,
        "entropy" => RangeMethod::Entropy,
        m => match m
            .strip_prefix("percentile:")
            .map(|p| p.trim().parse::<f64>())
        {
            Some(Ok(p)) if p > 0.0 && p <= 100.0 => RangeMethod::Percentile(p),
            _ => return Err(format!("'{text}': unknown range method '{m}'; {usage}")),
        },
    };
    Ok(Rule::Range {
        tensor: tensor.to_string(),
        method,
    })
}

/// A range method as a rule writes it (`percentile:99.99`, `mse`, `entropy`).
pub fn range_method_text(method: RangeMethod) -> String {
    match method {
        RangeMethod::Percentile(p) => format!("percentile:{}", format_number(p)),
        RangeMethod::MinMse => "mse".into(),
        RangeMethod::Entropy => "entropy".into(),
    }
}

/// Two rules are the same when they are written the same (a regex or glob has no other
/// equality; a metric expression compares as written).
impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.to_string() == other.to_string()
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Rule, String> {
        Rule::parse(text)
    }
}

impl Expr {
    /// Parses a metric expression such as `rmse/scale > 0.7 and op == CONV_2D`.
    pub fn parse(text: &str) -> std::result::Result<Expr, String> {
        parse_expr(text.trim())
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `(metric, comparison, number)` when the expression is one comparison of a metric
    /// with a finite number, such as `rmse/scale > 0.7`: a threshold, which the dashboard
    /// draws on its charts and whose number `+`/`-` move.
    pub fn threshold(&self) -> Option<(&str, CmpOp, f64)> {
        let [all_of] = self.any_of.as_slice() else {
            return None;
        };
        let [Comparison {
            metric,
            op,
            value: Value::Number(v),
        }] = all_of.as_slice()
        else {
            return None;
        };
        v.is_finite().then_some((metric.as_str(), *op, *v))
    }

    /// The threshold with its number replaced by `value`, written `metric OP value` with the
    /// number as a person would type it; `None` when the expression is not a threshold.
    pub fn with_threshold(&self, value: f64) -> Option<Expr> {
        let (metric, op, _) = self.threshold()?;
        let text = format!("{metric} {} {}", op.symbol(), format_number(value));
        Some(Expr {
            any_of: vec![vec![Comparison {
                metric: metric.to_string(),
                op,
                value: Value::Number(value),
            }]],
            text,
        })
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Expr {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Expr, String> {
        Expr::parse(text)
    }
}

/// A number as a person would type it: 0.75, not 0.7500000000000001.
pub fn format_number(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
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
            if !expression_metric(&metric) {
                return Err(format!(
                    "unknown metric '{metric}'; use one of {}, op",
                    LAYER_METRICS.join(", ")
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

    #[test]
    fn range_rules_parse_write_back_and_refuse_what_they_cannot_mean() {
        let r = Rule::parse("range: serving_default_x:0 = percentile:99.99").unwrap();
        assert!(
            matches!(&r, Rule::Range { tensor, method: RangeMethod::Percentile(p) }
            if tensor == "serving_default_x:0" && *p == 99.99)
        );
        assert_eq!(r.to_string(), "range:serving_default_x:0=percentile:99.99");
        assert_eq!(Rule::parse(&r.to_string()).unwrap(), r);
        for (text, method) in [
            ("range:a/b=mse", RangeMethod::MinMse),
            ("range:a/b=entropy", RangeMethod::Entropy),
        ] {
            let r = Rule::parse(text).unwrap();
            assert!(
                matches!(&r, Rule::Range { method: m, .. } if *m == method),
                "{text}"
            );
            assert_eq!(r.to_string(), text);
        }
        for bad in [
            "range:a",
            "range:=mse",
            "range:a=kl",
            "range:a=percentile:0",
            "range:a=percentile:101",
            "range:a=percentile:x",
        ] {
            let err = Rule::parse(bad).unwrap_err();
            assert!(err.contains("range:TENSOR=percentile:P"), "{bad}: {err}");
        }
    }

    #[test]
    fn expressions_take_every_layer_metric_and_name_them_when_wrong() {
        for metric in crate::debug::report::LAYER_METRICS {
            assert!(Expr::parse(&format!("{metric} > 1")).is_ok(), "{metric}");
        }
        let err = Expr::parse("loss > 1").unwrap_err();
        assert!(
            err.contains("'loss'") && err.contains("kl_divergence") && err.ends_with(", op"),
            "{err}"
        );
    }

    #[test]
    fn a_threshold_is_one_comparison_with_a_number() {
        let e = Expr::parse("rmse/scale > 0.7").unwrap();
        assert_eq!(e.threshold(), Some(("rmse/scale", CmpOp::Gt, 0.7)));
        let moved = e.with_threshold(0.7 + 0.05).unwrap();
        assert_eq!(moved.text(), "rmse/scale > 0.75");
        assert_eq!(moved.threshold(), Some(("rmse/scale", CmpOp::Gt, 0.75)));
        assert_eq!(
            Expr::parse("sqnr_db<=20").unwrap().threshold().unwrap().1,
            CmpOp::Le
        );
        for not_one in [
            "rmse/scale > 0.7 and op == ADD",
            "op == ADD",
            "range > 1 or scale > 2",
        ] {
            assert_eq!(Expr::parse(not_one).unwrap().threshold(), None, "{not_one}");
        }
        assert_eq!(format_number(-0.0), "0");
        assert_eq!(format_number(20.0), "20");
    }

    #[test]
    fn keywords_say_float_or_int16_and_write_back() {
        let r = Rule::parse("int16 rmse/scale > 0.7").unwrap();
        assert!(matches!(&r, Rule::Int16(inner) if matches!(**inner, Rule::Metric(_))));
        assert_eq!(r.to_string(), "int16 rmse/scale > 0.7");
        assert_eq!(Rule::parse(&r.to_string()).unwrap(), r);
        assert_eq!(
            Rule::parse("int16   op:mean").unwrap().to_string(),
            "int16 op:MEAN"
        );
        // `float` is what a bare rule means.
        assert_eq!(
            Rule::parse("float op:MEAN").unwrap(),
            Rule::Op("MEAN".into())
        );
        assert_eq!(
            Rule::parse("float conv1/out").unwrap(),
            Rule::Name("conv1/out".into())
        );
        // A tensor named like a keyword is still a name.
        assert_eq!(Rule::parse("int16").unwrap(), Rule::Name("int16".into()));
        for bad in [
            "int16 allow:a",
            "int16 range:a=mse",
            "int16 int16 op:ADD",
            "float allow:a",
            "int16 rmse > 1",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_write_back_as_read() {
        for text in [
            "name:conv1/out",
            "glob:*stem*",
            "re:^b[34]_",
            "op:MEAN",
            "first:5",
            "last:2",
            "allow:b3/out",
            "rmse/scale > 0.7 and op == CONV_2D",
        ] {
            assert_eq!(Rule::parse(text).unwrap().to_string(), text);
        }
        // Forms written in a canonical way.
        assert_eq!(
            Rule::parse("conv1/out").unwrap().to_string(),
            "name:conv1/out"
        );
        assert_eq!(Rule::parse("op:mean").unwrap().to_string(), "op:MEAN");
        assert_eq!(Rule::parse("regex:a").unwrap().to_string(), "re:a");
    }
}
