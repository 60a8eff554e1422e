//! What can happen to the dashboard (keys, engine news) and what it asks the engine to do.
//! The keymap lives here too: one place lists every key.

use std::path::PathBuf;
use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::{Cost, Prompt, State};
use crate::debug::metrics::ModelMetrics;
use crate::debug::{DebugReport, LayerInfo};
use crate::repair::sensitivity::Sensitivity;
use crate::select::Rule;

#[derive(Clone, Debug)]
pub enum Action {
    Quit,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    SortNext,
    SortPrevious,
    SortReverse,
    NextPanel,
    ToggleHelp,
    OpenThreshold,
    OpenFirstN,
    OpenSearch,
    OpenOpTypes,
    OpenWriteModel,
    OpenWriteCsv,
    /// Ask for a target and start the automatic repair.
    OpenTarget,
    /// Make the repair's result the denylist (to edit, evaluate and write as any other).
    AdoptRepair,
    /// Measure every op's sensitivity on the model metric (the fix target's, else the
    /// default one) as two columns.
    MeasureSensitivity,
    PromptInput(char),
    PromptBackspace,
    PromptSubmit,
    PromptCancel,
    PickerUp,
    PickerDown,
    PickerToggle,
    NudgeUp,
    NudgeDown,
    ToggleRow,
    /// Mark the selected row int16 (16x8) instead of int8, or unmark it.
    ToggleInt16Row,
    DenySearchMatches,
    ClearSearch,
    ClearDenylist,
    Evaluate,
    /// Stop the debugger where it is, keeping its statistics and the dashboard open.
    StopRun,
    /// The table's height in rows changed (start, resize).
    Viewport {
        table_rows: usize,
    },

    // News from the engine; `at_s` is seconds since the dashboard opened.
    Tick {
        now_s: f64,
    },
    Calibrating {
        done: usize,
        total: usize,
    },
    DebugStarted {
        layers: Vec<LayerInfo>,
        samples: usize,
        at_s: f64,
    },
    DebugUpdated {
        done: usize,
        total: usize,
        report: Arc<DebugReport>,
        at_s: f64,
    },
    DebugEnded {
        cancelled: bool,
        at_s: f64,
    },
    DebugFailed(String),
    /// Which layers a generation of rules denies, aligned with the layers.
    Denied {
        generation: u64,
        denied: Vec<bool>,
    },
    /// Which layers a generation of rules computes in 16x8, aligned with the layers.
    Int16Rows {
        generation: u64,
        int16: Vec<bool>,
    },
    Costed {
        generation: u64,
        cost: Cost,
    },
    /// The rules cannot make a selective model (for example, nothing would be quantized).
    CostFailed {
        generation: u64,
        reason: String,
    },
    /// The float model's file size and the full-int8 model's cost.
    Baseline {
        float_size: usize,
        full: Cost,
    },
    EvalProgress {
        id: usize,
        done: usize,
        total: usize,
    },
    Evaluated {
        id: usize,
        result: Result<(Cost, ModelMetrics), String>,
    },
    /// Evaluation `id` was stopped (or never started) because evaluation `by`, of a newer
    /// denylist, was asked for.
    EvalSuperseded {
        id: usize,
        by: usize,
    },
    /// The repair evaluated a candidate: its rules (float ops by name, `range:` remedies),
    /// cost and metrics; `origin` says the step and whether it meets the target.
    RepairCandidate {
        rules: Vec<Rule>,
        cost: Cost,
        metrics: ModelMetrics,
        origin: String,
    },
    /// The repair ended: `chosen` are the rules of its result when the target is met.
    RepairEnded {
        chosen: Option<Vec<Rule>>,
        verdict: String,
        /// The ranking the search measured (one side of the sensitivity).
        sensitivity: Option<Box<Sensitivity>>,
    },
    SensitivityProgress {
        done: usize,
        total: usize,
    },
    /// The sensitivity measurement ended (`Err`: why not, or that it was stopped).
    SensitivityMeasured(Result<Box<Sensitivity>, String>),
    /// A line for the status bar (written files, errors of background work).
    Status(String),
}

/// Work for the engine, produced by the reducer.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Resolve these rules against the layers and compute the selective model's cost.
    Recompute {
        generation: u64,
        rules: Vec<Rule>,
        report: Arc<DebugReport>,
    },
    Evaluate {
        id: usize,
        rules: Vec<Rule>,
        report: Arc<DebugReport>,
    },
    /// Write the selective model to `path` and its denylist beside it.
    WriteModel {
        path: PathBuf,
        rules: Vec<Rule>,
        report: Arc<DebugReport>,
    },
    WriteCsv {
        path: PathBuf,
        report: Arc<DebugReport>,
    },
    /// Search for the cheapest model meeting `target` (see [`crate::repair::search`]).
    Repair {
        target: crate::repair::target::Target,
    },
    /// Measure every op's sensitivity on `metric` (see [`crate::repair::sensitivity`]).
    Sensitivity {
        metric: String,
        higher_is_better: bool,
    },
    /// Stop the debugger after the sample in progress; everything else goes on.
    StopRun,
    /// Stop the repair search after the evaluation in progress, keeping its candidates.
    StopRepair,
    /// Stop the debugger and any evaluation: the user is leaving.
    CancelAll,
}

/// The action a key stands for in the dashboard's current state, if any.
pub fn key_action(state: &State, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        return Some(Action::Quit);
    }
    if state.show_help {
        return match key.code {
            KeyCode::Char('q') if !ctrl => Some(Action::ToggleHelp),
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => Some(Action::ToggleHelp),
            _ => None,
        };
    }
    match &state.prompt {
        Some(Prompt::OpTypes { .. }) => {
            return match key.code {
                KeyCode::Up | KeyCode::Char('k') => Some(Action::PickerUp),
                KeyCode::Down | KeyCode::Char('j') => Some(Action::PickerDown),
                KeyCode::Char(' ') | KeyCode::Enter => Some(Action::PickerToggle),
                KeyCode::Esc | KeyCode::Char('o') | KeyCode::Char('q') => {
                    Some(Action::PromptCancel)
                }
                _ => None,
            }
        }
        Some(_) => {
            return match key.code {
                KeyCode::Esc => Some(Action::PromptCancel),
                KeyCode::Enter => Some(Action::PromptSubmit),
                KeyCode::Backspace => Some(Action::PromptBackspace),
                KeyCode::Char('u') if ctrl => Some(Action::ClearSearch),
                KeyCode::Char(c) if !ctrl => Some(Action::PromptInput(c)),
                _ => None,
            }
        }
        None => {}
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Esc if state.search.is_some() => Action::ClearSearch,
        KeyCode::Esc => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::Char('b') if ctrl => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Char('f') if ctrl => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Home,
        KeyCode::End | KeyCode::Char('G') => Action::End,
        KeyCode::Char('s') => Action::SortNext,
        KeyCode::Char('S') => Action::SortPrevious,
        KeyCode::Char('r') => Action::SortReverse,
        KeyCode::Tab => Action::NextPanel,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('t') => Action::OpenThreshold,
        KeyCode::Char('+') | KeyCode::Char('=') => Action::NudgeUp,
        KeyCode::Char('-') => Action::NudgeDown,
        KeyCode::Char('n') => Action::OpenFirstN,
        KeyCode::Char('o') => Action::OpenOpTypes,
        KeyCode::Char(' ') => Action::ToggleRow,
        KeyCode::Char('i') => Action::ToggleInt16Row,
        KeyCode::Char('/') => Action::OpenSearch,
        KeyCode::Char('d') => Action::DenySearchMatches,
        KeyCode::Char('x') => Action::ClearDenylist,
        KeyCode::Char('e') => Action::Evaluate,
        KeyCode::Char('p') => Action::StopRun,
        KeyCode::Char('w') => Action::OpenWriteModel,
        KeyCode::Char('c') => Action::OpenWriteCsv,
        KeyCode::Char('f') => Action::OpenTarget,
        KeyCode::Char('a') => Action::AdoptRepair,
        KeyCode::Char('m') => Action::MeasureSensitivity,
        _ => return None,
    })
}

/// Every key, for the `?` screen (and the README).
pub const KEYS: &[(&str, &str)] = &[
    (
        "↑ ↓  j k",
        "move; PgUp PgDn (Ctrl-b Ctrl-f), g/G or Home/End",
    ),
    ("s  S  r", "sort by the next / previous column; reverse"),
    ("Tab", "bottom panel: charts, selected layer, experiments"),
    ("t  +  -", "threshold rule (any metric); nudge its number"),
    ("n", "keep the first N layers float"),
    ("o", "op types to keep float (Space toggles)"),
    (
        "Space  i",
        "toggle the selected row float; i: int16 (16x8) ◆",
    ),
    ("/  d  Esc", "filter rows by a name regex; deny them; clear"),
    ("x", "clear the denylist"),
    ("e", "evaluate: float / full int8 / selective"),
    (
        "f  a  m",
        "fix to a target; adopt it; m: per-op sensitivity",
    ),
    ("p", "stop the debugger, fix or m here, keep the results"),
    ("w  c", "write the selective model + denylist; the CSV"),
    ("?", "this help"),
    ("q  Esc  Ctrl-C", "quit (cancels the run cleanly)"),
];
