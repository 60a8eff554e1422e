//! The reducer: `update(&mut State, Action) -> effects`. The only place the dashboard's
//! state changes, so every behaviour here is unit-testable without a terminal.

use std::path::PathBuf;
use std::sync::Arc;

use super::action::{Action, Effect};
use super::state::{
    nudge_step, Column, DebugProgress, Denylist, EvalStatus, Experiment, Panel, Phase, Prompt,
    Repair, SensitivityView, State,
};
use crate::debug::{DebugReport, LayerStats};
use crate::select::Rule;

pub fn update(state: &mut State, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            state.quit = true;
            return vec![Effect::CancelAll];
        }
        Action::Up => move_cursor(state, -1),
        Action::Down => move_cursor(state, 1),
        Action::PageUp => move_cursor(state, -(state.table_rows.max(1) as isize)),
        Action::PageDown => move_cursor(state, state.table_rows.max(1) as isize),
        Action::Home => move_cursor(state, isize::MIN / 2),
        Action::End => move_cursor(state, isize::MAX / 2),
        Action::SortNext => change_sort(state, 1),
        Action::SortPrevious => change_sort(state, -1),
        Action::SortReverse => {
            state.descending = !state.descending;
            to_top(state);
        }
        Action::NextPanel => {
            state.panel = match state.panel {
                Panel::Charts => Panel::Layer,
                Panel::Layer => Panel::Experiments,
                Panel::Experiments => Panel::Charts,
            }
        }
        Action::ToggleHelp => state.show_help = !state.show_help,
        Action::OpenThreshold => {
            let input = state
                .denylist
                .threshold
                .as_ref()
                .map_or_else(|| "rmse/scale > 0.7".into(), ToString::to_string);
            state.prompt = Some(Prompt::Threshold { input, error: None });
        }
        Action::OpenFirstN => {
            let input = match state.denylist.first_n {
                0 => String::new(),
                n => n.to_string(),
            };
            state.prompt = Some(Prompt::FirstN { input, error: None });
        }
        Action::OpenSearch => {
            let input = state.search.clone().unwrap_or_default();
            state.prompt = Some(Prompt::Search { input, error: None });
        }
        Action::OpenOpTypes => state.prompt = Some(Prompt::OpTypes { cursor: 0 }),
        Action::OpenWriteModel => {
            state.prompt = Some(Prompt::WriteModel {
                input: "selective.tflite".into(),
                error: None,
            })
        }
        Action::OpenWriteCsv => {
            state.prompt = Some(Prompt::WriteCsv {
                input: "layers.csv".into(),
                error: None,
            })
        }
        Action::PromptInput(c) => {
            if let Some((input, error)) = prompt_text(state) {
                input.push(c);
                *error = None;
            }
        }
        Action::PromptBackspace => {
            if let Some((input, error)) = prompt_text(state) {
                input.pop();
                *error = None;
            }
        }
        Action::PromptCancel => state.prompt = None,
        Action::PromptSubmit => return submit_prompt(state),
        Action::PickerUp | Action::PickerDown => {
            let n = state.op_types().len();
            if let Some(Prompt::OpTypes { cursor }) = &mut state.prompt {
                *cursor = match action {
                    Action::PickerUp => cursor.saturating_sub(1),
                    _ => (*cursor + 1).min(n.saturating_sub(1)),
                };
            }
        }
        Action::PickerToggle => {
            let ops = state.op_types();
            if let Some(Prompt::OpTypes { cursor }) = state.prompt {
                if let Some(op) = ops.get(cursor) {
                    if !state.denylist.ops.remove(op) {
                        state.denylist.ops.insert(op.clone());
                    }
                    return vec![recompute(state)];
                }
            }
        }
        Action::NudgeUp | Action::NudgeDown => {
            let Some(threshold) = &state.denylist.threshold else {
                state.status = "no threshold to nudge: press t to set one".into();
                return vec![];
            };
            let Some((_, _, value)) = threshold.threshold() else {
                state.status = format!(
                    "'{threshold}' is not a single comparison; +/- nudge thresholds like \
                     'rmse/scale > 0.7'"
                );
                return vec![];
            };
            let step = nudge_step(value);
            let value = match action {
                Action::NudgeUp => value + step,
                _ => value - step,
            };
            state.denylist.threshold = threshold.with_threshold(value);
            return vec![recompute(state)];
        }
        Action::ToggleRow => {
            let Some(k) = state.selected_layer() else {
                return vec![];
            };
            let name = state.layers()[k].info.tensor_name.clone();
            let denied = state.denied.get(k).copied().unwrap_or(false);
            let list = &mut state.denylist;
            if denied {
                if !list.names.remove(&name) {
                    list.allowed.insert(name);
                }
            } else if !list.allowed.remove(&name) {
                list.int16_names.remove(&name);
                list.names.insert(name);
            }
            return vec![recompute(state)];
        }
        Action::ToggleInt16Row => {
            let Some(k) = state.selected_layer() else {
                return vec![];
            };
            let name = state.layers()[k].info.tensor_name.clone();
            let int16 = state.int16_rows.get(k).copied().unwrap_or(false);
            let list = &mut state.denylist;
            if list.int16_names.remove(&name) {
                // Unmarked: back to what the other rules make it.
            } else if list.names.remove(&name) {
                // Float by hand becomes int16 instead (float would win over int16).
                list.int16_names.insert(name);
            } else if int16 {
                // int16 by another rule (a loaded file): an exception makes it int8.
                list.allowed.insert(name);
            } else {
                list.allowed.remove(&name);
                list.int16_names.insert(name);
            }
            return vec![recompute(state)];
        }
        Action::DenySearchMatches => {
            let Some(search) = state.search.clone() else {
                state.status = "filter rows with / first; d then denies what it shows".into();
                return vec![];
            };
            // Trimmed as a `re:` rule read from a file is, so the rule written to the
            // denylist file reads back the same.
            let pattern = search.trim();
            if state.denylist.regexes.iter().any(|r| r.as_str() == pattern) {
                return vec![recompute(state)];
            }
            match regex::Regex::new(pattern) {
                Ok(regex) => state.denylist.regexes.push(regex),
                // The search prompt compiled it already; no new rule if it does not now.
                Err(e) => {
                    state.status = format!("bad regex: {e}");
                    return vec![];
                }
            }
            return vec![recompute(state)];
        }
        Action::ClearSearch => match &mut state.prompt {
            Some(_) => {
                if let Some((input, error)) = prompt_text(state) {
                    input.clear();
                    *error = None;
                }
            }
            None => keep_selection(state, |s| s.search = None),
        },
        Action::ClearDenylist => {
            state.denylist = Default::default();
            return vec![recompute(state)];
        }
        Action::Evaluate => {
            if state.layers().is_empty() {
                state.status = "the debugger has not listed the layers yet; try again soon".into();
                return vec![];
            }
            let id = state.experiments.len() + 1;
            let rules = state.denylist.rules();
            state.experiments.push(Experiment {
                id,
                rules: rules.clone(),
                cost: None,
                status: EvalStatus::Running {
                    done: 0,
                    total: state.progress.total,
                },
                origin: None,
            });
            state.panel = Panel::Experiments;
            return vec![Effect::Evaluate {
                id,
                rules,
                report: Arc::clone(&state.report),
            }];
        }
        Action::StopRun => {
            if matches!(state.phase, Phase::Running | Phase::Calibrating { .. }) {
                state.status = "stopping after the sample in progress ...".into();
                return vec![Effect::StopRun];
            }
            if state.repair.as_ref().is_some_and(|r| r.running) {
                state.status = "stopping the fix search ...".into();
                return vec![Effect::StopRepair];
            }
            if measuring(state) {
                state.status = "stopping the sensitivity measurement ...".into();
                return vec![Effect::StopRepair];
            }
        }
        Action::OpenTarget => {
            let input = match &state.repair {
                Some(r) => r.target.clone(),
                None if state.has_labels => "top1 >= float_top1 - 1".into(),
                None if state.report.model.outputs.len() > 1 => "min_output_sqnr_db >= 20".into(),
                None => "sqnr_db >= 30".into(),
            };
            state.prompt = Some(Prompt::Target { input, error: None });
        }
        Action::AdoptRepair => match state.repair.as_ref().and_then(|r| r.chosen.clone()) {
            Some(rules) => {
                state.status = format!(
                    "adopted the fix's {} rule(s) as the denylist: edit, e evaluates, w writes",
                    rules.len()
                );
                state.denylist = Denylist {
                    loaded: rules,
                    ..Default::default()
                };
                return vec![recompute(state)];
            }
            None => {
                state.status = match &state.repair {
                    Some(r) if r.running => "the fix search is still running".into(),
                    Some(_) => "the fix search found no model meeting its target".into(),
                    None => "no fix to adopt: f starts the search".into(),
                };
            }
        },
        Action::RepairCandidate {
            rules,
            cost,
            metrics,
            origin,
        } => {
            let id = state.experiments.len() + 1;
            state.experiments.push(Experiment {
                id,
                rules,
                cost: Some(cost),
                status: EvalStatus::Done(metrics),
                origin: Some(origin),
            });
            if let Some(r) = &mut state.repair {
                r.candidates += 1;
            }
        }
        Action::MeasureSensitivity => {
            if state.repair.as_ref().is_some_and(|r| r.running) {
                state.status = "a fix search is running; p stops it".into();
                return vec![];
            }
            if measuring(state) {
                state.status = "already measuring; p stops it".into();
                return vec![];
            }
            if state.layers().is_empty() {
                state.status = "the debugger has not listed the layers yet".into();
                return vec![];
            }
            let (metric, higher_is_better) = sensitivity_metric(state);
            state.status = format!(
                "measuring each op's sensitivity on {metric} (only it float, only it int8) ..."
            );
            let rows = state.layers().len();
            state.sensitivity = Some(SensitivityView {
                metric: metric.clone(),
                higher_is_better,
                samples: 0,
                progress: Some((0, 0)),
                only_float: vec![f64::NAN; rows],
                only_quantized: vec![f64::NAN; rows],
            });
            return vec![Effect::Sensitivity {
                metric,
                higher_is_better,
            }];
        }
        Action::SensitivityProgress { done, total } => {
            if let Some(s) = state.sensitivity.as_mut().filter(|s| s.progress.is_some()) {
                s.progress = Some((done, total));
                state.status = format!("sensitivity on {}: {done}/{total} evaluations", s.metric);
            }
        }
        Action::SensitivityMeasured(result) => match result {
            Ok(sensitivity) => {
                let view = SensitivityView::of(&sensitivity, state.layers());
                state.status = format!(
                    "sensitivity on {} ({} samples): columns 'only fp' (the model with only \
                     that op float) and 'only q' (only it int8); s sorts",
                    view.metric, view.samples
                );
                state.sensitivity = Some(view);
            }
            Err(reason) => {
                state.status = format!("sensitivity: {reason}");
                if measuring(state) {
                    state.sensitivity = None;
                }
            }
        },
        Action::RepairEnded {
            chosen,
            verdict,
            sensitivity,
        } => {
            // The search's ranking is one side of the sensitivity on its subset: shown
            // unless a full measurement is there.
            if let Some(s) = sensitivity {
                if state.sensitivity.is_none() {
                    state.sensitivity = Some(SensitivityView::of(&s, state.layers()));
                }
            }
            if let Some(r) = &mut state.repair {
                r.running = false;
                r.chosen = chosen;
                r.verdict = Some(verdict.clone());
                state.status = if r.chosen.is_some() {
                    format!("fix: {verdict}; a adopts it as the denylist")
                } else {
                    format!("fix: {verdict}")
                };
            }
        }
        Action::Viewport { table_rows } => {
            state.table_rows = table_rows.max(1);
            clamp_scroll(state);
        }
        Action::Tick { now_s } => state.now_s = now_s,
        Action::Calibrating { done, total } => state.phase = Phase::Calibrating { done, total },
        Action::DebugStarted {
            layers,
            samples,
            at_s,
        } => {
            let report = DebugReport {
                arithmetic: Default::default(),
                layers: layers
                    .into_iter()
                    .map(|info| LayerStats {
                        info,
                        per_layer: None,
                        whole_model: None,
                        custom: Vec::new(),
                        histograms: None,
                    })
                    .collect(),
                model: Default::default(),
                model_custom: Vec::new(),
                samples: 0,
            };
            state.denied = vec![false; report.layers.len()];
            state.int16_rows = vec![false; report.layers.len()];
            state.report = Arc::new(report);
            state.phase = Phase::Running;
            state.progress = DebugProgress {
                done: 0,
                total: samples,
                started_s: Some(at_s),
                ended_s: None,
            };
            state.now_s = state.now_s.max(at_s);
            if !state.denylist.is_empty() {
                return vec![recompute(state)];
            }
        }
        Action::DebugUpdated {
            done,
            total,
            report,
            at_s,
        } => {
            keep_selection(state, |s| s.report = report);
            state.progress.done = done;
            state.progress.total = total;
            state.now_s = state.now_s.max(at_s);
            // Metric rules move with the statistics; the others do not.
            if depends_on_statistics(&state.denylist.rules()) {
                return vec![recompute(state)];
            }
        }
        Action::DebugEnded { cancelled, at_s } => {
            state.phase = if cancelled {
                Phase::Cancelled
            } else {
                Phase::Finished
            };
            state.progress.ended_s = Some(at_s);
        }
        Action::DebugFailed(reason) => state.phase = Phase::Failed(reason),
        Action::Denied { generation, denied } => {
            if generation >= state.answered_generation {
                state.answered_generation = generation;
                keep_selection(state, |s| s.denied = denied);
            }
        }
        Action::Int16Rows { generation, int16 } => {
            if generation >= state.answered_generation {
                keep_selection(state, |s| s.int16_rows = int16);
            }
        }
        Action::Costed { generation, cost } => {
            if generation == state.rules_generation {
                state.cost = Some(cost);
                state.cost_error = None;
            }
        }
        Action::CostFailed { generation, reason } => {
            if generation == state.rules_generation {
                state.answered_generation = generation;
                state.cost = None;
                state.cost_error = Some(reason);
            }
        }
        Action::Baseline { float_size, full } => {
            state.float_size = Some(float_size);
            state.full_cost = Some(full);
        }
        Action::EvalProgress { id, done, total } => {
            if let Some(e) = state.experiments.iter_mut().find(|e| e.id == id) {
                e.status = EvalStatus::Running { done, total };
            }
        }
        Action::Evaluated { id, result } => {
            if let Some(e) = state.experiments.iter_mut().find(|e| e.id == id) {
                match result {
                    Ok((cost, metrics)) => {
                        e.cost = Some(cost);
                        e.status = EvalStatus::Done(metrics);
                    }
                    Err(reason) => e.status = EvalStatus::Failed(reason),
                }
            }
        }
        Action::EvalSuperseded { id, by } => {
            if let Some(e) = state.experiments.iter_mut().find(|e| e.id == id) {
                e.status = EvalStatus::Superseded { by };
            }
        }
        Action::Status(line) => state.status = line,
    }
    vec![]
}

/// The next generation of rules for the engine.
/// Whether the sensitivity measurement is running.
fn measuring(state: &State) -> bool {
    state
        .sensitivity
        .as_ref()
        .is_some_and(|s| s.progress.is_some())
}

/// The metric `m` measures: the fix target's primary one, else top-1 accuracy with labels,
/// else the output SQNR (the worst output's with several); and whether higher is better.
fn sensitivity_metric(state: &State) -> (String, bool) {
    if let Some(target) = state
        .repair
        .as_ref()
        .and_then(|r| crate::repair::target::Target::parse(&r.target).ok())
    {
        let (metric, higher) = target.primary();
        return (metric.to_string(), higher);
    }
    let metric = if state.has_labels {
        "top1"
    } else if state.report.model.outputs.len() > 1 {
        "min_output_sqnr_db"
    } else {
        "sqnr_db"
    };
    (metric.to_string(), true)
}

fn recompute(state: &mut State) -> Effect {
    state.rules_generation += 1;
    Effect::Recompute {
        generation: state.rules_generation,
        rules: state.denylist.rules(),
        report: Arc::clone(&state.report),
    }
}

/// Whether any rule reads the debugger's statistics (so it changes as samples arrive).
fn depends_on_statistics(rules: &[Rule]) -> bool {
    rules.iter().any(|r| matches!(r, Rule::Metric(_)))
}

fn prompt_text(state: &mut State) -> Option<(&mut String, &mut Option<String>)> {
    match state.prompt.as_mut()? {
        Prompt::Threshold { input, error }
        | Prompt::FirstN { input, error }
        | Prompt::Search { input, error }
        | Prompt::WriteModel { input, error }
        | Prompt::WriteCsv { input, error }
        | Prompt::Target { input, error } => Some((input, error)),
        Prompt::OpTypes { .. } => None,
    }
}

fn submit_prompt(state: &mut State) -> Vec<Effect> {
    let Some(prompt) = state.prompt.clone() else {
        return vec![];
    };
    let fail = |state: &mut State, reason: String| {
        if let Some((_, error)) = prompt_text(state) {
            *error = Some(reason);
        }
        vec![]
    };
    match prompt {
        Prompt::Threshold { input, .. } => {
            let text = input.trim().to_string();
            if text.is_empty() {
                state.denylist.threshold = None;
            } else {
                match Rule::parse(&text) {
                    Ok(Rule::Metric(expr)) => state.denylist.threshold = Some(expr),
                    Ok(_) => {
                        return fail(
                            state,
                            "a threshold compares a metric, e.g. 'rmse/scale > 0.7' or \
                             'sqnr_db < 20 and op == CONV_2D'"
                                .into(),
                        )
                    }
                    Err(e) => return fail(state, e),
                }
            }
            state.prompt = None;
            vec![recompute(state)]
        }
        Prompt::FirstN { input, .. } => {
            let text = input.trim();
            let n = if text.is_empty() {
                Ok(0)
            } else {
                text.parse::<usize>()
            };
            match n {
                Ok(n) => {
                    state.denylist.first_n = n;
                    state.prompt = None;
                    vec![recompute(state)]
                }
                Err(_) => fail(state, format!("'{text}' is not a whole number of layers")),
            }
        }
        Prompt::Search { input, .. } => {
            if input.is_empty() {
                state.prompt = None;
                keep_selection(state, |s| s.search = None);
                return vec![];
            }
            match regex::Regex::new(&input) {
                Ok(_) => {
                    state.prompt = None;
                    state.search = Some(input);
                    state.cursor = 0;
                    state.scroll = 0;
                    vec![]
                }
                Err(e) => fail(state, format!("bad regex: {e}")),
            }
        }
        Prompt::WriteModel { input, .. } => {
            let path = input.trim();
            if path.is_empty() {
                return fail(state, "type a path for the .tflite file".into());
            }
            state.prompt = None;
            state.status = format!("writing {path} ...");
            vec![Effect::WriteModel {
                path: PathBuf::from(path),
                rules: state.denylist.rules(),
                report: Arc::clone(&state.report),
            }]
        }
        Prompt::WriteCsv { input, .. } => {
            let path = input.trim();
            if path.is_empty() {
                return fail(state, "type a path for the CSV file".into());
            }
            state.prompt = None;
            state.status = format!("writing {path} ...");
            vec![Effect::WriteCsv {
                path: PathBuf::from(path),
                report: Arc::clone(&state.report),
            }]
        }
        Prompt::Target { input, .. } => {
            if state.repair.as_ref().is_some_and(|r| r.running) {
                return fail(state, "a fix search is running; p stops it".into());
            }
            if state.layers().is_empty() {
                return fail(state, "the debugger has not listed the layers yet".into());
            }
            let target = match crate::repair::target::Target::parse(&input) {
                Ok(t) => t,
                Err(e) => return fail(state, e),
            };
            state.prompt = None;
            state.panel = Panel::Experiments;
            state.status = format!("fix: searching for the cheapest model with {target} ...");
            state.repair = Some(Repair {
                target: target.to_string(),
                running: true,
                candidates: 0,
                chosen: None,
                verdict: None,
            });
            vec![Effect::Repair { target }]
        }
        Prompt::OpTypes { .. } => {
            state.prompt = None;
            vec![]
        }
    }
}

/// Runs `change` and puts the cursor back on the layer it was on, wherever it moved.
fn keep_selection(state: &mut State, change: impl FnOnce(&mut State)) {
    let selected = state.selected_layer();
    change(state);
    let rows = state.visible_rows();
    state.cursor = selected
        .and_then(|k| rows.iter().position(|&r| r == k))
        .unwrap_or(state.cursor)
        .min(rows.len().saturating_sub(1));
    clamp_scroll(state);
}

fn move_cursor(state: &mut State, delta: isize) {
    let n = state.visible_rows().len();
    if n == 0 {
        state.cursor = 0;
        return;
    }
    let target = (state.cursor as isize).saturating_add(delta);
    state.cursor = target.clamp(0, n as isize - 1) as usize;
    clamp_scroll(state);
}

/// Keeps the cursor inside the visible window of `table_rows` rows.
fn clamp_scroll(state: &mut State) {
    let rows = state.table_rows.max(1);
    if state.cursor < state.scroll {
        state.scroll = state.cursor;
    } else if state.cursor >= state.scroll + rows {
        state.scroll = state.cursor + 1 - rows;
    }
}

fn change_sort(state: &mut State, step: isize) {
    let columns = state.columns();
    let at = columns.iter().position(|&c| c == state.sort).unwrap_or(0) as isize;
    let next = columns[(at + step).rem_euclid(columns.len() as isize) as usize];
    state.sort = next;
    // Worst first: big errors and ranges at the top, low SQNR at the top; the most
    // sensitive ops at the top (the biggest gain kept float, the biggest loss quantized).
    let higher_is_better = state
        .sensitivity
        .as_ref()
        .is_none_or(|s| s.higher_is_better);
    state.descending = match next {
        Column::OnlyFloat => higher_is_better,
        Column::OnlyQuantized => !higher_is_better,
        _ => matches!(
            next,
            Column::Range
                | Column::Scale
                | Column::RmseScale(_)
                | Column::Mse(_)
                | Column::MaxAbs(_)
        ),
    };
    // A new order is read from its top.
    to_top(state);
}

fn to_top(state: &mut State) {
    state.cursor = 0;
    state.scroll = 0;
}
