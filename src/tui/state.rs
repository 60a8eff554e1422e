//! Everything the dashboard shows, and the pure functions over it (columns, sorting,
//! filtering, the denylist as rules). Only the reducer changes it; rendering only reads it.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::debug::metrics::ModelMetrics;
use crate::debug::report::{range, rmse_over_scale};
use crate::debug::{DebugReport, LayerStats};
use crate::select::rules::{CmpOp, Expr, Rule};

/// Where the engine is in its run.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Loading or computing the calibration (`done` of `total` samples when computing).
    Calibrating {
        done: usize,
        total: usize,
    },
    /// The debugger is running the debug data through both models.
    Running,
    Finished,
    /// Stopped by the user; the statistics so far are kept.
    Cancelled,
    Failed(String),
}

/// How far the debugger is through the debug data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DebugProgress {
    pub done: usize,
    pub total: usize,
    /// Seconds since the dashboard opened when the run started and ended.
    pub started_s: Option<f64>,
    pub ended_s: Option<f64>,
}

/// Which verification a metric column comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    PerLayer,
    WholeModel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Index,
    Op,
    Name,
    Scale,
    ZeroPoint,
    Range,
    RmseScale(Side),
    Mse(Side),
    MaxAbs(Side),
    Sqnr(Side),
    /// The model metric with only this op float (from the sensitivity measurement).
    OnlyFloat,
    /// The model metric with only this op int8.
    OnlyQuantized,
    Denied,
}

impl Column {
    pub fn title(self) -> String {
        let side = |s: Side| match s {
            Side::PerLayer => "",
            Side::WholeModel => " wm",
        };
        match self {
            Column::Index => "#".into(),
            Column::Op => "op".into(),
            Column::Name => "tensor".into(),
            Column::Scale => "scale".into(),
            Column::ZeroPoint => "zp".into(),
            Column::Range => "range".into(),
            Column::RmseScale(s) => format!("rmse/s{}", side(s)),
            Column::Mse(s) => format!("mse{}", side(s)),
            Column::MaxAbs(s) => format!("maxabs{}", side(s)),
            Column::Sqnr(s) => format!("sqnr{}", side(s)),
            Column::OnlyFloat => "only fp".into(),
            Column::OnlyQuantized => "only q".into(),
            Column::Denied => "D".into(),
        }
    }
}

/// The bottom panel's views, cycled with Tab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    /// `range` and `rmse/scale` per layer with the threshold drawn on them.
    Charts,
    /// The selected layer's value and error histograms.
    Layer,
    /// Float / full int8 / selective side by side, and the history of evaluations.
    Experiments,
}

/// A text prompt or picker at the bottom of the screen.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    Threshold {
        input: String,
        error: Option<String>,
    },
    FirstN {
        input: String,
        error: Option<String>,
    },
    Search {
        input: String,
        error: Option<String>,
    },
    WriteModel {
        input: String,
        error: Option<String>,
    },
    WriteCsv {
        input: String,
        error: Option<String>,
    },
    /// The model-level target of the automatic repair (`f`), such as `sqnr_db >= 30`.
    Target {
        input: String,
        error: Option<String>,
    },
    /// Op types present among the layers; Space toggles the one under the cursor.
    OpTypes { cursor: usize },
}

/// What the denylist costs, as the engine computed it for one set of rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cost {
    pub denylisted_ops: usize,
    pub float_ops: usize,
    pub float_islands: usize,
    pub size_bytes: usize,
    /// Ops computing in 16x8, their connected runs, and the activation memory int16
    /// adds over int8 (bytes).
    pub int16_ops: usize,
    pub int16_islands: usize,
    pub int16_activation_bytes: usize,
    /// Ops int16 rules picked that stay int8 (no 16x8 kernel).
    pub int16_refused: usize,
    /// The model's latency relative to all-int8, estimated from LiteRT's per-op-type
    /// 16x8 / int8 latency ratios (`None` without int16 ops).
    pub latency_vs_int8: Option<f64>,
    /// Rules that matched no op.
    pub unmatched: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EvalStatus {
    Running {
        done: usize,
        total: usize,
    },
    Done(ModelMetrics),
    Failed(String),
    /// Stopped for a newer evaluation (this one's number) before it finished.
    Superseded {
        by: usize,
    },
}

/// One evaluated denylist.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    pub id: usize,
    pub rules: Vec<Rule>,
    pub cost: Option<Cost>,
    pub status: EvalStatus,
    /// For a candidate of the automatic repair: its step and whether it meets the target
    /// (such as `fix greedy ✓`); `None` for the user's own evaluations.
    pub origin: Option<String>,
}

/// The automatic repair (`f`): its target, and what it found so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Repair {
    pub target: String,
    pub running: bool,
    /// Candidates evaluated so far.
    pub candidates: usize,
    /// The rules of the cheapest candidate that meets the target, once the search ends
    /// with one; `a` adopts them as the denylist.
    pub chosen: Option<Vec<Rule>>,
    /// How the search ended, in a line.
    pub verdict: Option<String>,
}

/// Per-layer sensitivity on one model metric (`m` measures both sides; the fix search's
/// ranking fills the side it measured): what keeping each op float alone buys the model,
/// and what quantizing it alone costs.
#[derive(Clone, Debug)]
pub struct SensitivityView {
    pub metric: String,
    pub higher_is_better: bool,
    pub samples: usize,
    /// While measuring: evaluations done and in all.
    pub progress: Option<(usize, usize)>,
    /// Per layer row (aligned with `report.layers`): the metric with only that op float,
    /// and with only that op int8; NaN where not measured (ops float anyway).
    pub only_float: Vec<f64>,
    pub only_quantized: Vec<f64>,
}

impl SensitivityView {
    /// The view of `sensitivity` over the dashboard's rows (each row's op by its float-graph
    /// position).
    pub fn of(
        sensitivity: &crate::repair::sensitivity::Sensitivity,
        layers: &[LayerStats],
    ) -> Self {
        let by_position: std::collections::HashMap<usize, (f64, f64)> = sensitivity
            .layers
            .iter()
            .map(|l| (l.position, (l.only_float, l.only_quantized)))
            .collect();
        let value = |l: &LayerStats| {
            by_position
                .get(&l.info.float_node)
                .copied()
                .unwrap_or((f64::NAN, f64::NAN))
        };
        SensitivityView {
            metric: sensitivity.metric.clone(),
            higher_is_better: sensitivity.higher_is_better,
            samples: sensitivity.samples,
            progress: None,
            only_float: layers.iter().map(|l| value(l).0).collect(),
            only_quantized: layers.iter().map(|l| value(l).1).collect(),
        }
    }

    fn has(values: &[f64]) -> bool {
        values.iter().any(|v| !v.is_nan())
    }
}

/// The denylist as the user builds it from the keyboard.
#[derive(Clone, Debug, Default)]
pub struct Denylist {
    /// A metric expression such as `rmse/scale > 0.7`.
    pub threshold: Option<Expr>,
    pub first_n: usize,
    pub ops: BTreeSet<String>,
    /// Name regexes denied from the search prompt.
    pub regexes: Vec<regex::Regex>,
    /// Rows toggled on by hand (output tensor names).
    pub names: BTreeSet<String>,
    /// Rows marked int16 (16x8) by hand (output tensor names).
    pub int16_names: BTreeSet<String>,
    /// Rows toggled off by hand although a rule denies them.
    pub allowed: BTreeSet<String>,
    /// Rules from a denylist file given on the command line.
    pub loaded: Vec<Rule>,
}

/// Two denylists are the same when they make the same rules (a regex has no other
/// equality).
impl PartialEq for Denylist {
    fn eq(&self, other: &Denylist) -> bool {
        self.rules() == other.rules()
    }
}

impl Denylist {
    /// The rules, in a stable order.
    pub fn rules(&self) -> Vec<Rule> {
        let mut rules = self.loaded.clone();
        rules.extend(self.threshold.clone().map(Rule::Metric));
        if self.first_n > 0 {
            rules.push(Rule::First(self.first_n));
        }
        rules.extend(self.ops.iter().cloned().map(Rule::Op));
        rules.extend(self.regexes.iter().cloned().map(Rule::Regex));
        rules.extend(self.names.iter().cloned().map(Rule::Name));
        rules.extend(
            self.int16_names
                .iter()
                .map(|n| Rule::Int16(Box::new(Rule::Name(n.clone())))),
        );
        rules.extend(self.allowed.iter().cloned().map(Rule::Allow));
        rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules().is_empty()
    }
}

pub struct State {
    pub model_path: String,
    pub data_path: String,
    pub has_labels: bool,
    pub phase: Phase,
    /// Layer rows as the debugger announced them, with the latest statistics.
    pub report: Arc<DebugReport>,
    pub progress: DebugProgress,
    /// Seconds since the dashboard opened.
    pub now_s: f64,
    /// Hide rates and times (for snapshot tests, where they would differ run to run).
    pub redact_timings: bool,
    pub colors: bool,

    pub sort: Column,
    pub descending: bool,
    /// Position of the cursor among the visible rows.
    pub cursor: usize,
    /// First visible row of the table (kept so the cursor stays in view).
    pub scroll: usize,
    /// How many rows the table shows (from the terminal's size).
    pub table_rows: usize,
    pub search: Option<String>,
    pub panel: Panel,
    pub prompt: Option<Prompt>,
    pub show_help: bool,

    pub denylist: Denylist,
    /// Which layers the current rules deny (engine's answer), aligned with `report.layers`.
    pub denied: Vec<bool>,
    /// Which layers the current rules compute in 16x8 (engine's answer), aligned with
    /// `report.layers`.
    pub int16_rows: Vec<bool>,
    /// Generation of the rules last sent to the engine, and of the last answer.
    pub rules_generation: u64,
    pub answered_generation: u64,
    pub cost: Option<Cost>,
    /// Why the engine could not build the selective model for the current rules.
    pub cost_error: Option<String>,
    /// The float model's size and the full-int8 model's cost, for the comparison.
    pub float_size: Option<usize>,
    pub full_cost: Option<Cost>,
    pub experiments: Vec<Experiment>,
    /// The automatic repair, once started.
    pub repair: Option<Repair>,
    /// Per-layer sensitivity, once measured (or measuring).
    pub sensitivity: Option<SensitivityView>,
    /// The last thing that happened worth a line (written files, errors).
    pub status: String,
    pub quit: bool,
}

impl State {
    pub fn new(model_path: String, data_path: String, has_labels: bool) -> Self {
        State {
            model_path,
            data_path,
            has_labels,
            phase: Phase::Calibrating { done: 0, total: 0 },
            report: Arc::new(DebugReport {
                arithmetic: Default::default(),
                layers: Vec::new(),
                model: ModelMetrics::default(),
                model_custom: Vec::new(),
                samples: 0,
            }),
            progress: DebugProgress::default(),
            now_s: 0.0,
            redact_timings: false,
            colors: true,
            sort: Column::Index,
            descending: false,
            cursor: 0,
            scroll: 0,
            table_rows: 10,
            search: None,
            panel: Panel::Charts,
            prompt: None,
            show_help: false,
            denylist: Denylist::default(),
            denied: Vec::new(),
            int16_rows: Vec::new(),
            rules_generation: 0,
            answered_generation: 0,
            cost: None,
            cost_error: None,
            float_size: None,
            full_cost: None,
            experiments: Vec::new(),
            repair: None,
            sensitivity: None,
            status: String::new(),
            quit: false,
        }
    }

    pub fn layers(&self) -> &[LayerStats] {
        &self.report.layers
    }

    /// Which verification modes produced the statistics.
    pub fn sides(&self) -> Vec<Side> {
        let Some(first) = self
            .layers()
            .first()
            .filter(|l| l.per_layer.is_some() || l.whole_model.is_some())
        else {
            // Before the first sample: TensorFlow's default mode.
            return vec![Side::PerLayer];
        };
        let mut sides = Vec::new();
        if first.per_layer.is_some() {
            sides.push(Side::PerLayer);
        }
        if first.whole_model.is_some() {
            sides.push(Side::WholeModel);
        }
        sides
    }

    /// Every column the table can show, in display order.
    pub fn columns(&self) -> Vec<Column> {
        let sides = self.sides();
        let mut cols = vec![
            Column::Index,
            Column::Op,
            Column::Name,
            Column::Scale,
            Column::ZeroPoint,
            Column::Range,
        ];
        for metric in [Column::RmseScale, Column::Mse, Column::MaxAbs, Column::Sqnr] {
            cols.extend(sides.iter().map(|&s| metric(s)));
        }
        if let Some(s) = &self.sensitivity {
            if SensitivityView::has(&s.only_float) {
                cols.push(Column::OnlyFloat);
            }
            if SensitivityView::has(&s.only_quantized) {
                cols.push(Column::OnlyQuantized);
            }
        }
        cols.push(Column::Denied);
        cols
    }

    /// Rows shown, as indices into `layers()`: filtered by the search, then sorted.
    pub fn visible_rows(&self) -> Vec<usize> {
        let matcher = self
            .search
            .as_deref()
            .and_then(|s| regex::Regex::new(s).ok());
        let mut rows: Vec<usize> = (0..self.layers().len())
            .filter(|&k| {
                matcher
                    .as_ref()
                    .is_none_or(|m| m.is_match(&self.layers()[k].info.tensor_name))
            })
            .collect();
        let layers = self.layers();
        rows.sort_by(|&a, &b| compare(self, &layers[a], &layers[b], a, b));
        rows
    }

    /// Row `k`'s value in a numeric column (`layer` is `layers()[k]`); `None` where it has
    /// none.
    pub fn value(&self, k: usize, layer: &LayerStats, column: Column) -> Option<f64> {
        let sensitivity = |pick: fn(&SensitivityView) -> &Vec<f64>| {
            self.sensitivity
                .as_ref()
                .and_then(|s| pick(s).get(k).copied())
                .filter(|v| !v.is_nan())
        };
        match column {
            Column::OnlyFloat => sensitivity(|s| &s.only_float),
            Column::OnlyQuantized => sensitivity(|s| &s.only_quantized),
            _ => metric(layer, column),
        }
    }

    /// The layer under the cursor.
    pub fn selected_layer(&self) -> Option<usize> {
        self.visible_rows().get(self.cursor).copied()
    }

    /// The threshold rule's metric, comparison and number, when it is one comparison with
    /// a number (what the charts draw).
    pub fn simple_threshold(&self) -> Option<(&str, CmpOp, f64)> {
        self.denylist.threshold.as_ref()?.threshold()
    }

    /// Seconds the debugger has been running (or ran).
    pub fn run_seconds(&self) -> Option<f64> {
        let start = self.progress.started_s?;
        Some(self.progress.ended_s.unwrap_or(self.now_s) - start)
    }

    /// Samples per second and seconds left, once a sample has completed.
    pub fn rate_and_eta(&self) -> Option<(f64, f64)> {
        let secs = self.run_seconds()?;
        let p = &self.progress;
        if p.done == 0 || secs <= 0.0 {
            return None;
        }
        let rate = p.done as f64 / secs;
        Some((rate, p.total.saturating_sub(p.done) as f64 / rate))
    }

    /// Op types present among the layers, sorted.
    pub fn op_types(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.layers().iter().map(|l| l.info.op_name).collect();
        set.into_iter().map(String::from).collect()
    }
}

/// A metric of one layer by column; `None` where the layer has no such value.
pub fn metric(l: &LayerStats, column: Column) -> Option<f64> {
    let side = |s: Side| match s {
        Side::PerLayer => l.per_layer,
        Side::WholeModel => l.whole_model,
    };
    match column {
        Column::Scale => Some(l.info.scale as f64),
        Column::ZeroPoint => Some(l.info.zero_point as f64),
        Column::Range => Some(range(l.info.scale, l.info.int16)),
        Column::RmseScale(s) => {
            side(s).map(|m| rmse_over_scale(m.mean_squared_error, l.info.scale))
        }
        Column::Mse(s) => side(s).map(|m| m.mean_squared_error),
        Column::MaxAbs(s) => side(s).map(|m| m.max_abs_error),
        Column::Sqnr(s) => side(s).map(|m| m.sqnr_db),
        Column::Index
        | Column::Op
        | Column::Name
        | Column::Denied
        | Column::OnlyFloat
        | Column::OnlyQuantized => None,
    }
}

/// Orders two layers by the sort column and direction; NaN and missing values sort last
/// either way (a row without a measurement is never the worst).
fn compare(
    state: &State,
    a: &LayerStats,
    b: &LayerStats,
    ka: usize,
    kb: usize,
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (column, denied) = (state.sort, &state.denied);
    let directed = |o: Ordering| if state.descending { o.reverse() } else { o };
    let by_index = directed(ka.cmp(&kb));
    let primary = match column {
        Column::Index => Ordering::Equal,
        Column::Op => directed(a.info.op_name.cmp(b.info.op_name)),
        Column::Name => directed(a.info.tensor_name.cmp(&b.info.tensor_name)),
        Column::Denied => {
            let d = |k: usize| denied.get(k).copied().unwrap_or(false);
            directed(d(kb).cmp(&d(ka)))
        }
        _ => {
            let key = |k: usize, l: &LayerStats| state.value(k, l, column).filter(|v| !v.is_nan());
            match (key(ka, a), key(kb, b)) {
                (Some(x), Some(y)) => directed(x.total_cmp(&y)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
    };
    primary.then(by_index)
}

/// The column a threshold's metric is drawn against, when it has one.
pub fn column_of_metric(metric: &str) -> Option<Column> {
    Some(match metric {
        "rmse/scale" => Column::RmseScale(Side::PerLayer),
        "range" => Column::Range,
        "scale" => Column::Scale,
        "mean_squared_error" => Column::Mse(Side::PerLayer),
        "max_abs_error" => Column::MaxAbs(Side::PerLayer),
        "sqnr_db" => Column::Sqnr(Side::PerLayer),
        _ => return None,
    })
}

/// The step `+`/`-` move a threshold by: half a unit of its leading digit (0.7 -> 0.05,
/// 20 -> 5), so a few presses sweep the useful span without overshooting it.
pub fn nudge_step(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return 0.05;
    }
    10f64.powf(value.abs().log10().floor()) / 2.0
}

/// Shortens `text` to `width` characters, keeping its end (names differ at the end).
pub fn ellipsize_start(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    if width <= 1 {
        return "…".chars().take(width).collect();
    }
    let tail: String = text.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

/// A tensor name as the table shows it: TFLite joins the names of fused ops with `;`, and
/// the first is the one users wrote; the folder every layer shares is dropped.
pub fn display_name<'a>(name: &'a str, shared_prefix: &str) -> &'a str {
    let first = name.split(';').next().unwrap_or(name);
    first.strip_prefix(shared_prefix).unwrap_or(first)
}

/// The leading folders most layers' names share (`model_1/model/` in a Keras model
/// converted by TensorFlow), or "": the longest `a/b/.../` prefix that at least three
/// quarters of the names start with. A model's outputs are often named differently
/// (`Identity`), which must not keep the prefix on the rest; and a prefix never takes a
/// name's last part (the op), so every shortened name still says something.
pub fn shared_prefix<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut total = 0;
    for name in names {
        total += 1;
        let first = name.split(';').next().unwrap_or(name);
        for (i, _) in first.match_indices('/') {
            *counts.entry(&first[..=i]).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|&(_, n)| n * 4 >= total * 3)
        .max_by_key(|&(p, n)| (p.len(), n, p))
        .map_or(String::new(), |(p, _)| p.to_string())
}

/// A `/`-separated name in `width` characters, keeping its first folder (the layer) and
/// its end (the op): `b1_expand_bn_1/…/add_1`; a layer name that alone is too long keeps
/// its end (`…tch_normalization_2`), the part that tells Keras' layers apart.
pub fn fit_path(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        return name.to_string();
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() >= 3 {
        let head = parts[0];
        // As many trailing parts as fit after "head/…/".
        let mut tail: Vec<&str> = Vec::new();
        let mut used = head.chars().count() + 3;
        for part in parts[1..].iter().rev() {
            let need = part.chars().count() + usize::from(!tail.is_empty());
            if used + need > width {
                break;
            }
            used += need;
            tail.insert(0, part);
        }
        if !tail.is_empty() {
            return format!("{head}/…/{}", tail.join("/"));
        }
    }
    if parts.len() >= 2 && width >= 4 {
        // The layer's name says more than the op's: keep the head, whole if it fits; else
        // its end, where Keras numbers its layers (`…normalization_2`).
        let head = parts[0];
        if head.chars().count() + 2 <= width {
            return format!("{head}/…");
        }
        return ellipsize_start(head, width);
    }
    ellipsize_start(name, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names from MediaPipe's hand_landmark_lite (TensorFlow's converter, Keras layers
    /// under `model_1/model/`): the rows must read by the layer, not by the shared folders.
    #[test]
    fn real_model_names_drop_every_shared_folder() {
        let names = [
            "model_1/model/re_lu/Relu6;model_1/model/batch_normalization/FusedBatchNormV3",
            "model_1/model/re_lu_1/Relu6;model_1/model/batch_normalization_1/FusedBatchNormV3",
            "model_1/model/batch_normalization_2/FusedBatchNormV3;model_1/model/conv2d_5/Conv2D",
            "model_1/model/max_pooling2d/MaxPool",
            "model_1/model/add/add",
            "Identity",
        ];
        let prefix = shared_prefix(names.iter().copied());
        assert_eq!(prefix, "model_1/model/");
        assert_eq!(display_name(names[1], &prefix), "re_lu_1/Relu6");
        assert_eq!(display_name(names[3], &prefix), "max_pooling2d/MaxPool");
        assert_eq!(display_name(names[5], &prefix), "Identity");
        // A prefix held by fewer than three quarters of the names stays.
        let mixed = ["a/b/x", "a/c/y", "a/b/z", "d/e"];
        assert_eq!(shared_prefix(mixed.iter().copied()), "a/");
        // Never the whole name: names without a folder share nothing.
        assert_eq!(shared_prefix(["x", "y"].iter().copied()), "");
    }

    #[test]
    fn names_fit_keeping_layer_and_op() {
        assert_eq!(fit_path("b1/bn/add_1", 20), "b1/bn/add_1");
        assert_eq!(
            fit_path("b1_expand_bn_1/batchnorm/add_1", 22),
            "b1_expand_bn_1/…/add_1"
        );
        assert_eq!(
            fit_path("b1_project_bn_1/batchnorm/add_1", 19),
            "b1_project_bn_1/…"
        );
        assert_eq!(fit_path("abcdefghijklmnop", 8), "…jklmnop");
        // A layer name too long for the column keeps its numbered end.
        assert_eq!(
            fit_path("batch_normalization_2/FusedBatchNormV3", 20),
            "…tch_normalization_2"
        );
        assert_eq!(display_name("m_1/a/b;m_1/c", "m_1/"), "a/b");
        let names = ["m_1/a;x", "m_1/b", "m_1/c", "Identity"];
        assert_eq!(shared_prefix(names.into_iter()), "m_1/");
        assert_eq!(shared_prefix(["a/x", "b/y"].into_iter()), "");
    }

    #[test]
    fn nudge_steps_follow_the_leading_digit() {
        assert_eq!(nudge_step(0.7), 0.05);
        assert_eq!(nudge_step(20.0), 5.0);
        assert_eq!(nudge_step(1.5), 0.5);
        assert_eq!(nudge_step(0.0), 0.05);
    }
}
