//! Drawing the dashboard: a pure function of the state. Laid out for 80x24 first (SSH
//! sessions), growing into bigger terminals.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::action::KEYS;
use super::charts::{short, Histogram, LayerBars};
use super::state::{
    column_of_metric, display_name, ellipsize_start, fit_path, metric, shared_prefix, Column, Cost,
    EvalStatus, Panel, Phase, Prompt, Side, State,
};
use crate::debug::metrics::{ModelMetrics, OutputMetrics, ERROR_BINS, ERROR_BIN_WIDTH};
use crate::debug::report::rmse_over_scale;
use crate::debug::LayerStats;

/// The regions of the screen, from the terminal's size (also tells the app how many table
/// rows fit, for paging).
pub struct Areas {
    pub header: Rect,
    pub gauge: Rect,
    pub table: Rect,
    pub panel: Rect,
    pub denylist: Rect,
    pub footer: Rect,
}

pub fn areas(area: Rect) -> Areas {
    let bottom = (area.height.saturating_sub(3) / 2).clamp(6, 14);
    let [header, gauge, table, bottom, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(bottom),
        Constraint::Length(1),
    ])
    .areas(area);
    let side = if area.width >= 100 { 34 } else { 28 };
    let [panel, denylist] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(side)]).areas(bottom);
    Areas {
        header,
        gauge,
        table,
        panel,
        denylist,
        footer,
    }
}

/// Rows of layers the table shows below its header.
pub fn table_rows(area: Rect) -> usize {
    areas(area).table.height.saturating_sub(1) as usize
}

pub fn render(state: &State, frame: &mut Frame) {
    let a = areas(frame.area());
    render_header(state, frame, a.header);
    render_gauge(state, frame, a.gauge);
    render_table(state, frame, a.table);
    match state.panel {
        Panel::Charts => render_charts(state, frame, a.panel),
        Panel::Layer => render_layer(state, frame, a.panel),
        Panel::Experiments => render_experiments(state, frame, a.panel),
    }
    render_denylist(state, frame, a.denylist);
    render_footer(state, frame, a.footer);
    if let Some(Prompt::OpTypes { cursor }) = &state.prompt {
        render_op_picker(state, *cursor, frame);
    }
    if state.show_help {
        render_help(state, frame);
    }
}

fn style(state: &State, color: Color) -> Style {
    if state.colors {
        Style::default().fg(color)
    } else {
        Style::default()
    }
}

/// How a value is flagged: red / yellow with colours, bold without.
fn severity(state: &State, bad: bool, warn: bool) -> Style {
    match (state.colors, bad, warn) {
        (true, true, _) => Style::default().fg(Color::Red),
        (true, false, true) => Style::default().fg(Color::Yellow),
        (false, true, _) => Style::default().add_modifier(Modifier::BOLD),
        _ => Style::default(),
    }
}

/// The outputs' tasks in one line: `task: regress (4 outputs, guessed; --task to set)` when
/// they share one, else `tasks: boxes detect, scores detect (guessed; --task to set)`.
fn task_line(outputs: &[OutputMetrics]) -> String {
    let Some(first) = outputs.first() else {
        return String::new();
    };
    let guessed = if outputs.iter().any(|o| o.task_guessed) {
        "guessed; --task to set"
    } else {
        "--task"
    };
    if outputs.iter().all(|o| o.task == first.task) {
        let count = if outputs.len() > 1 {
            format!("{} outputs, ", outputs.len())
        } else {
            String::new()
        };
        format!("task: {} ({count}{guessed})", first.task.name())
    } else {
        let each: Vec<String> = outputs
            .iter()
            .map(|o| format!("{} {}", ellipsize_start(&o.name, 16), o.task.name()))
            .collect();
        format!("tasks: {} ({guessed})", each.join(", "))
    }
}

fn render_header(state: &State, frame: &mut Frame, area: Rect) {
    let model = &state.report.model;
    let mut spans = vec![Span::styled(
        "qdbg ",
        Style::default().add_modifier(Modifier::BOLD),
    )];
    let mut summary = String::new();
    if model.samples > 0 {
        // Class numbers only for a model with a classify output: on landmarks or boxes
        // they mean nothing.
        let classes = match (model.float_top1, model.int8_top1) {
            _ if model.classified_output.is_none() => None,
            (Some(f), Some(q)) => Some(format!(
                "top-1 float {:.1}% int8 {:.1}%",
                100.0 * f,
                100.0 * q
            )),
            _ => Some(format!("same top-1 {:.1}%", 100.0 * model.argmax_agreement)),
        };
        summary = match classes {
            Some(classes) => format!("{classes} · {}", sqnr_summary(model)),
            None => sqnr_summary(model),
        };
    }
    // Only the non-default arithmetic is worth the room: numbers that differ from a
    // builtin-kernel run must say why.
    if state.report.arithmetic == crate::kernels::int8::Arithmetic::Xnnpack {
        summary.push_str(if summary.is_empty() {
            "int8 as xnnpack"
        } else {
            " · int8 as xnnpack"
        });
    }
    // The model's name gets what the summary leaves.
    let room = (area.width as usize).saturating_sub(5 + summary.chars().count() + 2);
    spans.push(Span::raw(ellipsize_start(&state.model_path, room)));
    spans.push(Span::raw("  "));
    spans.push(Span::styled(summary, style(state, Color::Cyan)));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The model's SQNR as the header shows it: with several outputs, the worst one's, named
/// (the pooled number hides a small broken output behind a big good one).
fn sqnr_summary(model: &ModelMetrics) -> String {
    match model.worst() {
        Some(worst) if model.outputs.len() > 1 => format!(
            "sqnr {} dB (worst: {})",
            short(worst.sqnr_db),
            ellipsize_start(&worst.name, 24)
        ),
        _ => format!("sqnr {} dB", short(model.sqnr_db)),
    }
}

fn render_gauge(state: &State, frame: &mut Frame, area: Rect) {
    let p = &state.progress;
    let timing = |s: &State| -> String {
        if s.redact_timings {
            return " · [timing]".into();
        }
        match s.rate_and_eta() {
            Some((rate, eta)) if matches!(s.phase, Phase::Running) => {
                format!(" · {rate:.1} samples/s · ETA {eta:.0} s")
            }
            Some((rate, _)) => format!(
                " · {:.1} s · {rate:.1} samples/s",
                s.run_seconds().unwrap_or(0.0)
            ),
            None => String::new(),
        }
    };
    let (ratio, label) = match &state.phase {
        Phase::Calibrating { done, total } if *total > 0 => (
            *done as f64 / *total as f64,
            format!("calibrating {done}/{total} samples"),
        ),
        Phase::Calibrating { .. } => (0.0, "preparing the calibration ...".to_string()),
        Phase::Running => (
            ratio(p.done, p.total),
            format!("debugging {}/{} samples{}", p.done, p.total, timing(state)),
        ),
        Phase::Finished => (1.0, format!("done: {} samples{}", p.done, timing(state))),
        Phase::Cancelled => (
            ratio(p.done, p.total),
            format!(
                "cancelled at {}/{} samples (statistics so far kept)",
                p.done, p.total
            ),
        ),
        Phase::Failed(reason) => (ratio(p.done, p.total), format!("failed: {reason}")),
    };
    let colour = match state.phase {
        Phase::Failed(_) => Color::Red,
        Phase::Finished => Color::Green,
        _ => Color::Blue,
    };
    let gauge = Gauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .label(label)
        .use_unicode(true)
        .gauge_style(if state.colors {
            Style::default().fg(colour).bg(Color::Black)
        } else {
            Style::default().add_modifier(Modifier::REVERSED)
        });
    frame.render_widget(gauge, area);
}

fn ratio(done: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        done as f64 / total as f64
    }
}

/// Width each column needs, and which to drop first when the terminal is narrow.
fn column_width(c: Column, state: &State) -> u16 {
    match c {
        Column::Index => (state.layers().len().max(1).ilog10() + 1).max(1) as u16,
        Column::Op => 10,
        Column::Name => 12,
        Column::Scale => 8,
        Column::ZeroPoint => 4,
        Column::Range => 7,
        Column::RmseScale(_) => 9,
        Column::Mse(_) => 8,
        Column::MaxAbs(_) => 9,
        Column::Sqnr(_) => 7,
        Column::OnlyFloat | Column::OnlyQuantized => 8,
        Column::Denied => 1,
    }
}

fn priority(c: Column) -> u8 {
    match c {
        Column::Index | Column::Denied | Column::Name => 0,
        Column::RmseScale(Side::PerLayer) => 1,
        Column::Op => 2,
        Column::Range | Column::OnlyFloat | Column::OnlyQuantized => 3,
        Column::RmseScale(Side::WholeModel) => 4,
        Column::Sqnr(Side::PerLayer) => 5,
        Column::Mse(Side::PerLayer) => 6,
        Column::Sqnr(Side::WholeModel) => 7,
        Column::Scale => 8,
        Column::MaxAbs(Side::PerLayer) => 9,
        Column::ZeroPoint => 10,
        Column::Mse(Side::WholeModel) => 11,
        Column::MaxAbs(Side::WholeModel) => 12,
    }
}

/// The columns that fit in `width`, in display order, with their widths; the name column
/// takes what is left. The sort column always stays.
pub fn fit_columns(state: &State, width: u16) -> Vec<(Column, u16)> {
    let mut cols = state.columns();
    loop {
        let need: u16 = cols.iter().map(|&c| column_width(c, state) + 1).sum();
        if need <= width || cols.len() <= 3 {
            break;
        }
        let drop = cols
            .iter()
            .enumerate()
            .filter(|(_, &c)| c != state.sort)
            .max_by_key(|(_, &c)| priority(c))
            .map(|(i, _)| i);
        match drop {
            Some(i) if priority(cols[i]) > 0 => {
                cols.remove(i);
            }
            _ => break,
        }
    }
    let fixed: u16 = cols
        .iter()
        .filter(|&&c| c != Column::Name)
        .map(|&c| column_width(c, state) + 1)
        .sum();
    // Long op names (DEPTHWISE_CONV_2D) get their full width when there is room.
    let spare = width.saturating_sub(fixed + 1);
    let op_extra = if spare > 40 { 7 } else { 0 };
    cols.into_iter()
        .map(|c| match c {
            Column::Name => (c, spare.saturating_sub(op_extra).max(8)),
            Column::Op => (c, column_width(c, state) + op_extra),
            _ => (c, column_width(c, state)),
        })
        .collect()
}

fn cell_text(
    state: &State,
    l: &LayerStats,
    k: usize,
    c: Column,
    width: u16,
    prefix: &str,
) -> String {
    match c {
        Column::Index => k.to_string(),
        Column::Op => ellipsize_end(l.info.op_name, width as usize),
        Column::Name => fit_path(display_name(&l.info.tensor_name, prefix), width as usize),
        Column::Denied => {
            if state.denied.get(k).copied().unwrap_or(false) {
                "■".into()
            } else if state.int16_rows.get(k).copied().unwrap_or(false) {
                "◆".into()
            } else {
                " ".into()
            }
        }
        Column::Scale => format!("{:.2e}", l.info.scale),
        Column::ZeroPoint => l.info.zero_point.to_string(),
        _ => match state.value(k, l, c) {
            Some(v) => short(v),
            None => "·".into(),
        },
    }
}

fn ellipsize_end(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn cell_style(state: &State, l: &LayerStats, c: Column) -> Style {
    let v = metric(l, c);
    match (c, v) {
        (Column::RmseScale(_), Some(v)) => severity(state, v > 0.7, v > 0.4),
        (Column::Sqnr(_), Some(v)) => severity(state, v < 10.0, v < 20.0),
        _ => Style::default(),
    }
}

fn render_table(state: &State, frame: &mut Frame, area: Rect) {
    let cols = fit_columns(state, area.width);
    let rows = state.visible_rows();
    let header = Row::new(cols.iter().map(|&(c, _)| {
        let mut title = c.title();
        if c == state.sort {
            title.push(if state.descending { '▼' } else { '▲' });
        }
        Cell::from(title)
    }))
    .style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let height = area.height.saturating_sub(1) as usize;
    let prefix = shared_prefix(state.layers().iter().map(|l| l.info.tensor_name.as_str()));
    let body = rows
        .iter()
        .enumerate()
        .skip(state.scroll)
        .take(height)
        .map(|(pos, &k)| {
            let l = &state.layers()[k];
            let denied = state.denied.get(k).copied().unwrap_or(false);
            let int16 = state.int16_rows.get(k).copied().unwrap_or(false);
            let mut row_style = if denied {
                style(state, Color::Magenta)
            } else if int16 {
                style(state, Color::Cyan)
            } else {
                Style::default()
            };
            if pos == state.cursor {
                row_style = row_style.add_modifier(Modifier::REVERSED);
            }
            Row::new(cols.iter().map(|&(c, w)| {
                Cell::from(cell_text(state, l, k, c, w, &prefix)).style(cell_style(state, l, c))
            }))
            .style(row_style)
        });
    let widths: Vec<Constraint> = cols.iter().map(|&(_, w)| Constraint::Length(w)).collect();
    frame.render_widget(Table::new(body, widths).header(header), area);
    if rows.is_empty() {
        let text = match (&state.search, state.layers().is_empty()) {
            (Some(s), false) => format!("no tensor name matches /{s}/ (Esc clears the filter)"),
            _ => "waiting for the debugger to list the layers ...".into(),
        };
        let inner = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        frame.render_widget(Paragraph::new(text), inner);
    }
}

fn panel_block(title: &str) -> Block<'_> {
    Block::default()
        .borders(Borders::TOP)
        .title(Line::from(vec![
            Span::styled(title, Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(" (Tab)"),
        ]))
}

fn render_charts(state: &State, frame: &mut Frame, area: Rect) {
    let block = panel_block("range and rmse/scale per layer");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    let threshold_on = |column: Column| {
        let (m, _, v) = state.simple_threshold()?;
        (column_of_metric(m)? == column).then_some(v)
    };
    let layers = state.layers();
    let selected = state.selected_layer();
    let bars = |label, column| LayerBars {
        label,
        values: layers.iter().map(|l| metric(l, column)).collect(),
        selected,
        threshold: threshold_on(column),
        denied: &state.denied,
        colors: state.colors,
    };
    frame.render_widget(bars("range", Column::Range), top);
    frame.render_widget(
        bars("rmse/scale", Column::RmseScale(Side::PerLayer)),
        bottom,
    );
}

fn render_layer(state: &State, frame: &mut Frame, area: Rect) {
    let Some(k) = state.selected_layer() else {
        frame.render_widget(panel_block("selected layer"), area);
        return;
    };
    let l = &state.layers()[k];
    let title = format!(
        "#{k} {} · scale {:.3e} zp {}",
        l.info.op_name, l.info.scale, l.info.zero_point
    );
    let block = panel_block(&title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // The full tensor name first, wrapped, never cut: the table shows a shortened one, and
    // the full name is what the user's tools (and denylist `name:` rules) know.
    let name_rows = wrap_chars(&l.info.tensor_name, inner.width as usize);
    let Some(h) = &l.histograms else {
        let mut lines: Vec<Line> = name_rows.into_iter().map(Line::from).collect();
        lines.push(Line::from(
            "no samples yet: histograms appear as the debugger runs",
        ));
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        return;
    };
    let m = l.per_layer.or(l.whole_model);
    let numbers = match m {
        Some(m) => format!(
            "rmse/scale {} · max|err| {}",
            short(rmse_over_scale(m.mean_squared_error, l.info.scale)),
            short(m.max_abs_error)
        ),
        None => String::new(),
    };
    // The numbers follow the name on its last row when they fit, else get a row of their
    // own; the histograms keep at least 3 rows: a name longer than what is left shows its
    // last row ending in `…` (said, not silently cut; only in tiny terminals).
    let width = inner.width as usize;
    let room = inner.height.saturating_sub(3).max(1) as usize;
    let joined = name_rows
        .last()
        .map_or(0, |r| r.chars().count() + 3 + numbers.chars().count());
    let mut rows = name_rows;
    if joined <= width && rows.len() <= room {
        if let Some(last) = rows.last_mut() {
            last.push_str(" · ");
            last.push_str(&numbers);
        }
    } else {
        rows = fit_rows(rows, room.saturating_sub(1).max(1), width);
        rows.push(ellipsize_end(&numbers, width));
    }
    let [detail, plots] =
        Layout::vertical([Constraint::Length(rows.len() as u16), Constraint::Min(3)]).areas(inner);
    frame.render_widget(
        Paragraph::new(rows.into_iter().map(Line::from).collect::<Vec<_>>()),
        detail,
    );
    let [values, errors] =
        Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(plots);
    // Only the occupied steps: the distributions rarely span all 256.
    let occupied = |c: &[u64]| {
        c.iter()
            .position(|&n| n > 0)
            .zip(c.iter().rposition(|&n| n > 0))
    };
    let span = match (occupied(&h.float), occupied(&h.dequantized)) {
        (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
        (Some(x), None) | (None, Some(x)) => Some(x),
        (None, None) => None,
    };
    if let Some((lo, hi)) = span {
        let value_of = |bin: usize| (bin as f64 - 128.0 - h.zero_point as f64) * h.scale;
        let [f, q] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(values);
        frame.render_widget(
            Histogram {
                label: "float values (log count)",
                counts: &h.float[lo..=hi],
                left: short(value_of(lo)),
                right: short(value_of(hi)),
                style: style(state, Color::Cyan),
                marker: None,
            },
            f,
        );
        frame.render_widget(
            Histogram {
                label: "int8, dequantized",
                counts: &h.dequantized[lo..=hi],
                left: short(value_of(lo)),
                right: short(value_of(hi)),
                style: style(state, Color::Green),
                marker: None,
            },
            q,
        );
    }
    let reach = (ERROR_BINS / 2) as f64 * ERROR_BIN_WIDTH;
    frame.render_widget(
        Histogram {
            label: " error (in steps)",
            counts: &h.error,
            left: format!(" ≤-{reach}"),
            right: format!("≥{reach}"),
            style: style(state, Color::Yellow),
            marker: Some(ERROR_BINS / 2),
        },
        errors,
    );
}

/// `text` in rows of `width` characters, split anywhere (tensor names have no spaces).
fn wrap_chars(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if width == 0 || chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

/// At most `max_rows` of `rows`; when some are left out, the last shown ends in `…`.
fn fit_rows(mut rows: Vec<String>, max_rows: usize, width: usize) -> Vec<String> {
    if rows.len() > max_rows {
        rows.truncate(max_rows);
        if let Some(last) = rows.last_mut() {
            let kept: String = last.chars().take(width.saturating_sub(1)).collect();
            *last = format!("{kept}…");
        }
    }
    rows
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn size(bytes: Option<usize>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 20 => format!("{:.2} MB", b as f64 / (1 << 20) as f64),
        Some(b) => format!("{:.1} kB", b as f64 / 1024.0),
    }
}

fn render_experiments(state: &State, frame: &mut Frame, area: Rect) {
    let title = match &state.repair {
        Some(r) if r.running => format!(
            "float / full int8 / selective · fix running: {} candidates (p stops)",
            r.candidates
        ),
        Some(r) if r.chosen.is_some() => {
            "float / full int8 / selective · fix found a model (a adopts it)".to_string()
        }
        _ => "float / full int8 / selective (e evaluates, f fixes)".to_string(),
    };
    let block = panel_block(&title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let full = &state.report.model;
    let latest = state
        .experiments
        .iter()
        .rev()
        .find_map(|e| match &e.status {
            EvalStatus::Done(m) => Some((e, m)),
            _ => None,
        });
    let sel_title = latest.map_or("selective".to_string(), |(e, _)| format!("sel #{}", e.id));
    let sel_cost = latest.and_then(|(e, _)| e.cost.as_ref());
    let sel: Option<&ModelMetrics> = latest.map(|(_, m)| m);
    let cost_cell = |c: Option<&Cost>, f: fn(&Cost) -> String| c.map_or("-".into(), f);
    let row = |cells: [String; 4]| Row::new(cells.map(Cell::from));
    let mut rows = vec![
        row([
            "float ops".to_string(),
            "all".into(),
            cost_cell(state.full_cost.as_ref(), |c| c.float_ops.to_string()),
            cost_cell(sel_cost, |c| c.float_ops.to_string()),
        ]),
        row([
            "islands".into(),
            "-".into(),
            cost_cell(state.full_cost.as_ref(), |c| c.float_islands.to_string()),
            cost_cell(sel_cost, |c| c.float_islands.to_string()),
        ]),
        row([
            "size".into(),
            size(state.float_size),
            size(state.full_cost.as_ref().map(|c| c.size_bytes)),
            size(sel_cost.map(|c| c.size_bytes)),
        ]),
    ];
    // The int16 rows only when the selective model has int16 ops: an int8 denylist's
    // panel stays as it was.
    if sel_cost.is_some_and(|c| c.int16_ops > 0) {
        rows.push(row([
            "int16 ops".into(),
            "-".into(),
            "0".into(),
            cost_cell(sel_cost, |c| {
                format!("{} ({} isl)", c.int16_ops, c.int16_islands)
            }),
        ]));
        rows.push(row([
            "latency".into(),
            "-".into(),
            "1x".into(),
            cost_cell(sel_cost, |c| {
                c.latency_vs_int8
                    .map_or("-".into(), |r| format!("~{r:.2}x est"))
            }),
        ]));
    }
    // One SQNR row per model output when there are several (the worst of each column
    // flagged): the pooled number hides a small broken output behind a big good one.
    let output_names: Vec<&str> = if full.outputs.is_empty() {
        sel.map_or(Vec::new(), |m| {
            m.outputs.iter().map(|o| o.name.as_str()).collect()
        })
    } else {
        full.outputs.iter().map(|o| o.name.as_str()).collect()
    };
    let label_width = if output_names.len() > 1 {
        (inner.width as usize).saturating_sub(32).clamp(11, 24)
    } else {
        11
    };
    if output_names.len() > 1 {
        let cell = |m: Option<&ModelMetrics>, name: &str| -> Cell<'static> {
            let Some(m) = m else {
                return Cell::from("-");
            };
            let value = m.output(name).map_or(f64::NAN, |o| o.sqnr_db);
            let worst = m.worst_output.as_deref() == Some(name);
            Cell::from(short(value)).style(severity(state, worst, false))
        };
        for name in &output_names {
            rows.push(Row::new([
                Cell::from(format!("sqnr {}", ellipsize_start(name, label_width - 5))),
                Cell::from("-"),
                cell((full.samples > 0).then_some(full), name),
                cell(sel, name),
            ]));
        }
    } else {
        rows.push(row([
            "sqnr dB".into(),
            "-".into(),
            short(full.sqnr_db),
            sel.map_or("-".into(), |m| short(m.sqnr_db)),
        ]));
    }
    // The metrics of each output's task (classify: the class rows below).
    let reference = if full.outputs.is_empty() {
        sel
    } else {
        Some(full)
    };
    for o in reference.map_or(&[][..], |m| m.outputs.as_slice()) {
        let label = |what: &str| {
            let room = label_width.saturating_sub(what.len() + 1);
            format!("{what} {}", ellipsize_start(&o.name, room))
        };
        let value = |m: Option<&ModelMetrics>, pick: fn(&OutputMetrics) -> Option<f64>| {
            m.filter(|m| m.samples > 0)
                .and_then(|m| m.output(&o.name))
                .and_then(pick)
                .map_or("-".to_string(), |v| format!("{:.3}", v))
        };
        let mut task_row = |what: &str, pick: fn(&OutputMetrics) -> Option<f64>| {
            rows.push(row([
                label(what),
                "-".into(),
                value(Some(full), pick),
                value(sel, pick),
            ]));
        };
        if o.segment.is_some() {
            task_row("iou", |o| o.segment.as_ref().map(|s| s.iou));
        }
        if let Some(d) = &o.detect {
            if d.top_k_agreement.is_some() {
                task_row("top-k", |o| {
                    o.detect.as_ref().and_then(|d| d.top_k_agreement)
                });
            }
            if d.box_iou.is_some() {
                task_row("box iou", |o| o.detect.as_ref().and_then(|d| d.box_iou));
            }
        }
    }
    let classified =
        full.classified_output.is_some() || sel.is_some_and(|m| m.classified_output.is_some());
    if classified {
        rows.push(row([
            "same top-1".into(),
            "-".into(),
            pct(Some(full.argmax_agreement)),
            pct(sel.map(|m| m.argmax_agreement)),
        ]));
    }
    if state.has_labels && classified {
        rows.push(row([
            "top-1 acc".into(),
            pct(full.float_top1),
            pct(full.int8_top1),
            pct(sel.and_then(|m| m.int8_top1)),
        ]));
        rows.push(row([
            "top-5 acc".into(),
            pct(full.float_top5),
            pct(full.int8_top5),
            pct(sel.and_then(|m| m.int8_top5)),
        ]));
    }
    let header = Row::new(["", "float", "full int8", sel_title.as_str()].map(String::from))
        .style(Style::default().add_modifier(Modifier::BOLD));
    let n = rows.len() as u16 + 1;
    let table = Table::new(
        rows,
        [
            Constraint::Length(label_width as u16),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(10),
        ],
    )
    .header(header);
    // Each output's task on one line, and whether it was guessed (a wrong guess is fixed
    // with --task); below the numbers, and only where there is room for it.
    let outputs = reference.map_or(&[][..], |m| m.outputs.as_slice());
    let tasks = task_line(outputs);
    let table_height = n.min(inner.height);
    let task_height = u16::from(!tasks.is_empty() && inner.height > table_height);
    let [top, task_area, history] = Layout::vertical([
        Constraint::Length(table_height),
        Constraint::Length(task_height),
        Constraint::Min(0),
    ])
    .areas(inner);
    frame.render_widget(table, top);
    frame.render_widget(
        Paragraph::new(tasks).style(Style::default().add_modifier(Modifier::DIM)),
        task_area,
    );
    let lines: Vec<Line> = state
        .experiments
        .iter()
        .rev()
        .map(|e| {
            let rules = if e.rules.is_empty() {
                "(no rules: full int8)".to_string()
            } else {
                let rules: Vec<String> = e.rules.iter().map(ToString::to_string).collect();
                rules.join(", ")
            };
            let outcome = match &e.status {
                EvalStatus::Running { done, total } => format!("running {done}/{total}"),
                EvalStatus::Failed(r) => format!("failed: {r}"),
                EvalStatus::Superseded { by } => format!("stopped for #{by}"),
                EvalStatus::Done(m) => {
                    let mut s = match m.int8_top1 {
                        _ if m.classified_output.is_none() => String::new(),
                        Some(t) => format!("top-1 {:.1}% · ", 100.0 * t),
                        None => format!("same top-1 {:.1}% · ", 100.0 * m.argmax_agreement),
                    };
                    // The worst output's SQNR: the number a repair must not break.
                    s.push_str(&match m.worst() {
                        Some(w) if m.outputs.len() > 1 => format!(
                            "sqnr {} dB ({})",
                            short(w.sqnr_db),
                            ellipsize_start(&w.name, 12)
                        ),
                        _ => format!("sqnr {} dB", short(m.sqnr_db)),
                    });
                    if let Some(c) = &e.cost {
                        s.push_str(&format!(
                            " · {} float · {} isl",
                            c.denylisted_ops, c.float_islands
                        ));
                        if c.int16_ops > 0 {
                            s.push_str(&format!(" · {} int16", c.int16_ops));
                        }
                    }
                    s
                }
            };
            match &e.origin {
                Some(origin) => Line::from(format!("#{} [{origin}] {outcome} · {rules}", e.id)),
                None => Line::from(format!("#{} {outcome} · {rules}", e.id)),
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), history);
}

fn render_denylist(state: &State, frame: &mut Frame, area: Rect) {
    let denied = state.denied.iter().filter(|&&d| d).count();
    let block = Block::default()
        .borders(Borders::TOP | Borders::LEFT)
        .title(Span::styled(
            format!("denylist: {denied} layers"),
            Style::default().add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines: Vec<Line> = Vec::new();
    let rules = state.denylist.rules();
    if rules.is_empty() {
        lines.push(Line::from("no rules yet:"));
        lines.push(Line::from(" t threshold, n first N,"));
        lines.push(Line::from(" o op types, Space a row"));
    }
    for r in &rules {
        let unmatched = state.cost.as_ref().is_some_and(|c| c.unmatched.contains(r));
        let text = ellipsize_end(
            &r.to_string(),
            inner.width as usize - if unmatched { 2 } else { 0 },
        );
        lines.push(if unmatched {
            Line::from(vec![
                Span::raw(text),
                Span::styled(" ∅", style(state, Color::Yellow)),
            ])
        } else {
            Line::from(text)
        });
    }
    let pending = state.answered_generation != state.rules_generation;
    match (&state.cost, pending) {
        (_, true) => lines.push(Line::from("computing ...")),
        (Some(c), false) => {
            lines.push(Line::from(format!(
                "float ops {} · islands {}",
                c.float_ops, c.float_islands
            )));
            if c.int16_ops > 0 {
                lines.push(Line::from(format!(
                    "int16 ops {} · islands {}",
                    c.int16_ops, c.int16_islands
                )));
                lines.push(Line::from(format!(
                    "int16 activations +{}",
                    size(Some(c.int16_activation_bytes))
                )));
                if let Some(r) = c.latency_vs_int8 {
                    lines.push(Line::from(format!(
                        "latency ~{r:.2}x int8 (estimated, LiteRT ratio per op type)"
                    )));
                }
            }
            if c.int16_refused > 0 {
                lines.push(Line::styled(
                    format!(
                        "{} int16 pick(s) stay int8: no 16x8 kernel",
                        c.int16_refused
                    ),
                    style(state, Color::Yellow),
                ));
            }
            lines.push(Line::from(format!("size {}", size(Some(c.size_bytes)))));
            if !c.unmatched.is_empty() {
                lines.push(Line::styled(
                    format!("∅ {} rule(s) match nothing", c.unmatched.len()),
                    style(state, Color::Yellow),
                ));
            }
        }
        (None, false) => {
            if let Some(reason) = &state.cost_error {
                lines.push(Line::styled(reason.clone(), severity(state, true, true)));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn render_footer(state: &State, frame: &mut Frame, area: Rect) {
    let prompt = |label: &str, input: &str, error: &Option<String>, hint: &str| {
        let mut spans = vec![
            Span::styled(
                format!("{label}> "),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::raw(input.to_string()),
            Span::styled("▏", Style::default().add_modifier(Modifier::SLOW_BLINK)),
        ];
        match error {
            Some(e) => spans.push(Span::styled(format!("  {e}"), severity(state, true, true))),
            None => spans.push(Span::styled(
                format!("  {hint}"),
                Style::default().add_modifier(Modifier::DIM),
            )),
        }
        Line::from(spans)
    };
    let line = match &state.prompt {
        Some(Prompt::Threshold { input, error }) => prompt(
            "threshold",
            input,
            error,
            "Enter applies (empty clears), Esc cancels",
        ),
        Some(Prompt::FirstN { input, error }) => {
            prompt("first N layers float", input, error, "0 or empty clears")
        }
        Some(Prompt::Search { input, error }) => {
            prompt("filter /regex/", input, error, "Enter filters, then d denies")
        }
        Some(Prompt::WriteModel { input, error }) => prompt(
            "write model to",
            input,
            error,
            "the denylist goes beside it",
        ),
        Some(Prompt::WriteCsv { input, error }) => prompt("write CSV to", input, error, ""),
        Some(Prompt::Target { input, error }) => prompt(
            "fix target",
            input,
            error,
            "e.g. sqnr_db >= 30 and top1 >= float_top1 - 1; Enter searches",
        ),
        Some(Prompt::OpTypes { .. }) => Line::from("Space toggles an op type, Esc closes"),
        None if !state.status.is_empty() => Line::from(state.status.clone()),
        None => Line::from(Span::styled(
            "t threshold  Space row  / filter  e eval  f fix  w write  ? keys  q quit  n first-N  o ops  +/- nudge",
            Style::default().add_modifier(Modifier::DIM),
        )),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn render_op_picker(state: &State, cursor: usize, frame: &mut Frame) {
    let ops = state.op_types();
    let area = centered(frame.area(), 36, ops.len() as u16 + 2);
    frame.render_widget(Clear, area);
    let lines: Vec<Line> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let mark = if state.denylist.ops.contains(op) {
                "[x]"
            } else {
                "[ ]"
            };
            let count = state
                .layers()
                .iter()
                .filter(|l| l.info.op_name == op)
                .count();
            let line = Line::from(format!("{mark} {op} ({count})"));
            if i == cursor {
                line.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title("keep float: op types")),
        area,
    );
}

fn render_help(_state: &State, frame: &mut Frame) {
    let area = centered(frame.area(), 76, KEYS.len() as u16 + 6);
    frame.render_widget(Clear, area);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>15}  "),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(
        "rmse/scale: RMS error in int8 steps: ~0.29 is rounding noise, > 0.7 is more.",
    ));
    lines.push(Line::from(
        "range = 255 x scale: a huge range squeezes common values into few steps.",
    ));
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title("qdbg keys (? or Esc closes)")),
        area,
    );
}
