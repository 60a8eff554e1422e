//! The engine behind the dashboard, off the UI thread: calibration, the debugger's run,
//! and the denylist work the reducer asks for. Everything comes back as [`Action`]s.
//!
//! Three threads: one runs calibration then forwards the debugger's events; a cost thread
//! answers denylist changes, where the newest request replaces any still waiting (typing
//! `+` five times costs one recompute, not five); a job thread evaluates and writes, in
//! the order asked, except that an evaluation stops (or is skipped) as soon as a newer one
//! is asked for. The news goes to the dashboard's event loop on an unbounded tokio
//! channel, which these plain threads send on without a runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::action::{Action, Effect};
use super::state::Cost;
use crate::debug::report::write_csv;
use crate::debug::{DebugEvent, DebugReport, VerifyMode};
use crate::kernels::int8::Arithmetic;
use crate::repair::search::{remedy_rules, search, SearchOptions, Verdict};
use crate::repair::sensitivity::{measure, Measure, Sensitivity};
use crate::repair::target::Target;
use crate::select::denylist::write_denylist;
use crate::select::rules::format_number;
use crate::select::selection::{Selection, Selector};
use crate::select::Rule;
use crate::session::Loaded;

/// Where the engine's news goes: the event loop's channel.
pub type ActionSender = tokio::sync::mpsc::UnboundedSender<Action>;

/// What the dashboard debugs, already loaded and checked.
pub struct EngineInputs {
    pub loaded: Loaded,
    pub recalibrate: bool,
    pub mode: VerifyMode,
    /// Whose int8 arithmetic the quantized models run with.
    pub arithmetic: Arithmetic,
}

pub struct Engine {
    cost: Sender<Effect>,
    jobs: Sender<Effect>,
    /// Stops the debugger and any evaluation.
    cancel: Arc<AtomicBool>,
    /// Stops the debugger only.
    stop_run: Arc<AtomicBool>,
    /// The id of the newest evaluation asked for: any older one still running stops.
    newest_evaluation: Arc<AtomicUsize>,
    /// Stops the repair search (and is set when the user leaves).
    repair_stop: Arc<AtomicBool>,
    job_thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Hands an effect to the thread that does it.
    pub fn submit(&self, effect: Effect) {
        // A stopped engine already reported why; nothing more to do with the request.
        let _ = match effect {
            Effect::Recompute { .. } => self.cost.send(effect),
            Effect::CancelAll => {
                self.cancel.store(true, Ordering::Relaxed);
                self.repair_stop.store(true, Ordering::Relaxed);
                Ok(())
            }
            Effect::StopRun => {
                self.stop_run.store(true, Ordering::Relaxed);
                Ok(())
            }
            Effect::StopRepair => {
                self.repair_stop.store(true, Ordering::Relaxed);
                Ok(())
            }
            Effect::Repair { .. } | Effect::Sensitivity { .. } => {
                self.repair_stop.store(false, Ordering::Relaxed);
                self.jobs.send(effect)
            }
            Effect::Evaluate { id, .. } => {
                // Before the request is queued, so the job thread never starts the new one
                // while still believing the old one current.
                self.newest_evaluation.fetch_max(id, Ordering::Relaxed);
                self.jobs.send(effect)
            }
            _ => self.jobs.send(effect),
        };
    }

    /// Cancels the debugger and evaluations and waits for a write in progress, so leaving
    /// never abandons a half-written file.
    pub fn shutdown(mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.repair_stop.store(true, Ordering::Relaxed);
        drop(self.jobs);
        if let Some(t) = self.job_thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the engine; its news arrives on `actions`, timed against `clock`.
pub fn start(inputs: EngineInputs, actions: ActionSender, clock: Instant) -> Engine {
    let (cost_tx, cost_rx) = channel();
    let (jobs_tx, jobs_rx) = channel();
    let (ready_tx, ready_rx) = channel::<Arc<Selector>>();
    let cancel = Arc::new(AtomicBool::new(false));
    let newest_evaluation = Arc::new(AtomicUsize::new(0));
    let mode = inputs.mode;

    let cost_actions = actions.clone();
    let (cost_ready_tx, cost_ready_rx) = channel::<Arc<Selector>>();
    std::thread::spawn(move || {
        if let Ok(selector) = cost_ready_rx.recv() {
            cost_loop(&selector, &cost_rx, &cost_actions);
        }
    });
    let job_actions = actions.clone();
    let repair_stop = Arc::new(AtomicBool::new(false));
    let job_stops = JobStops {
        cancel: Arc::clone(&cancel),
        newest_evaluation: Arc::clone(&newest_evaluation),
        repair_stop: Arc::clone(&repair_stop),
    };
    let job_thread = std::thread::spawn(move || {
        if let Ok(selector) = ready_rx.recv() {
            job_loop(&selector, &jobs_rx, &job_actions, &job_stops, mode);
        }
    });

    let stop_run = Arc::new(AtomicBool::new(false));
    let setup_stop = Arc::clone(&stop_run);
    let setup_cancel = Arc::clone(&cancel);
    std::thread::spawn(move || {
        let ready = |s: &Arc<Selector>| {
            let _ = ready_tx.send(Arc::clone(s));
            let _ = cost_ready_tx.send(Arc::clone(s));
        };
        let stops = [setup_cancel.as_ref(), setup_stop.as_ref()];
        if let Err(reason) = setup_and_debug(inputs, &actions, clock, stops, ready) {
            let _ = actions.send(Action::DebugFailed(reason));
        }
    });

    Engine {
        cost: cost_tx,
        jobs: jobs_tx,
        cancel,
        stop_run,
        newest_evaluation,
        repair_stop,
        job_thread: Some(job_thread),
    }
}

/// Calibrates (or loads the saved calibration), quantizes, then runs the debugger and
/// forwards its events until it ends or the user leaves.
fn setup_and_debug(
    inputs: EngineInputs,
    actions: &ActionSender,
    clock: Instant,
    stops: [&AtomicBool; 2],
    ready: impl FnOnce(&Arc<Selector>),
) -> Result<(), String> {
    let EngineInputs {
        loaded,
        recalibrate,
        mode,
        arithmetic,
    } = inputs;
    let total = loaded.dataset.num_samples();
    let session = loaded
        .calibrate(recalibrate, arithmetic, &mut |done| {
            let _ = actions.send(Action::Calibrating { done, total });
        })
        .map_err(|e| e.to_string())?;
    let full = session
        .selector
        .select(&[], &[])
        .map_err(|e| e.to_string())?;
    let _ = actions.send(Action::Baseline {
        float_size: session.float_size(),
        full: cost_of(&full),
    });
    ready(&session.selector);

    let run = session.debug_job(Arc::new(full.model), mode);
    let at = || clock.elapsed().as_secs_f64();
    loop {
        if stops.iter().any(|s| s.load(Ordering::Relaxed)) {
            run.cancel();
        }
        match run.events.recv_timeout(Duration::from_millis(50)) {
            Ok(DebugEvent::Started { layers, samples }) => {
                let _ = actions.send(Action::DebugStarted {
                    layers,
                    samples,
                    at_s: at(),
                });
            }
            Ok(DebugEvent::Updated {
                done,
                total,
                report,
            }) => {
                let _ = actions.send(Action::DebugUpdated {
                    done,
                    total,
                    report: Arc::from(report),
                    at_s: at(),
                });
            }
            Ok(DebugEvent::Failed(reason)) => return Err(reason),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let report = run.join().map_err(|e| e.to_string())?;
    let _ = actions.send(Action::DebugEnded {
        cancelled: report.samples < total,
        at_s: at(),
    });
    Ok(())
}

pub fn cost_of(selection: &Selection) -> Cost {
    let int16_ops = selection.int16_ops();
    Cost {
        denylisted_ops: selection.denylisted_ops(),
        float_ops: selection.float_ops(),
        float_islands: selection.float_islands(),
        size_bytes: selection.bytes.len(),
        int16_ops,
        int16_islands: selection.int16_islands(),
        int16_activation_bytes: selection.int16_activation_bytes(),
        int16_refused: selection.int16_refused.len(),
        latency_vs_int8: (int16_ops > 0).then(|| selection.estimated_latency_vs_int8()),
        unmatched: selection.unmatched.clone(),
    }
}

fn select(selector: &Selector, rules: &[Rule], report: &DebugReport) -> Result<Selection, String> {
    selector
        .select(rules, &report.layers)
        .map_err(|e| e.to_string())
}

fn cost_loop(selector: &Selector, requests: &Receiver<Effect>, actions: &ActionSender) {
    while let Ok(mut request) = requests.recv() {
        // Only the newest denylist matters.
        while let Ok(newer) = requests.try_recv() {
            request = newer;
        }
        let Effect::Recompute {
            generation,
            rules,
            report,
        } = request
        else {
            continue;
        };
        match select(selector, &rules, &report) {
            Ok(selection) => {
                let denied = report
                    .layers
                    .iter()
                    .map(|l| selection.keep_float.contains(&l.info.float_node))
                    .collect();
                // Sent before `Denied`, which marks the generation answered.
                let int16 = report
                    .layers
                    .iter()
                    .map(|l| selection.int16.contains(&l.info.float_node))
                    .collect();
                let _ = actions.send(Action::Int16Rows { generation, int16 });
                let _ = actions.send(Action::Denied { generation, denied });
                let _ = actions.send(Action::Costed {
                    generation,
                    cost: cost_of(&selection),
                });
            }
            Err(reason) => {
                let _ = actions.send(Action::CostFailed { generation, reason });
            }
        }
    }
}

/// What stops the job thread's evaluations.
struct JobStops {
    /// The user left.
    cancel: Arc<AtomicBool>,
    /// A newer evaluation was asked for (see [`Engine::submit`]).
    newest_evaluation: Arc<AtomicUsize>,
    /// The user stopped the repair search (or left).
    repair_stop: Arc<AtomicBool>,
}

impl JobStops {
    /// The newer evaluation that supersedes evaluation `id`, if one was asked for.
    fn superseding(&self, id: usize) -> Option<usize> {
        let newest = self.newest_evaluation.load(Ordering::Relaxed);
        (newest > id).then_some(newest)
    }
}

fn job_loop(
    selector: &Selector,
    requests: &Receiver<Effect>,
    actions: &ActionSender,
    stops: &JobStops,
    mode: VerifyMode,
) {
    while let Ok(request) = requests.recv() {
        match request {
            Effect::Evaluate { id, rules, report } => {
                // Queued behind a newer one: the user no longer waits for it.
                if let Some(by) = stops.superseding(id) {
                    let _ = actions.send(Action::EvalSuperseded { id, by });
                    continue;
                }
                let stop =
                    || stops.cancel.load(Ordering::Relaxed) || stops.superseding(id).is_some();
                let result = select(selector, &rules, &report).and_then(|selection| {
                    let metrics = selector
                        .evaluate_until(&selection.model, &stop, &mut |done, total| {
                            let _ = actions.send(Action::EvalProgress { id, done, total });
                        })
                        .map_err(|e| e.to_string())?;
                    Ok((cost_of(&selection), metrics))
                });
                // Stopped part way: its metrics cover only some samples, not worth showing.
                let news = match stops.superseding(id) {
                    Some(by) => Action::EvalSuperseded { id, by },
                    None => Action::Evaluated { id, result },
                };
                let _ = actions.send(news);
            }
            Effect::WriteModel {
                path,
                rules,
                report,
            } => {
                let line = match write_model(selector, &path, &rules, &report) {
                    Ok(line) => line,
                    Err(reason) => format!("not written: {reason}"),
                };
                let _ = actions.send(Action::Status(line));
            }
            Effect::WriteCsv { path, report } => {
                let line = match write_csv(&path, &report.layers, mode, &[]) {
                    Ok(()) => format!(
                        "wrote {} ({} layers, TensorFlow's columns, {} samples)",
                        path.display(),
                        report.layers.len(),
                        report.samples
                    ),
                    Err(e) => format!("not written: {e}"),
                };
                let _ = actions.send(Action::Status(line));
            }
            Effect::Repair { target } => {
                let verdict = repair(selector, &target, actions, &stops.repair_stop);
                let (chosen, verdict, sensitivity) = match verdict {
                    Ok(done) => done,
                    Err(reason) => (None, format!("not run: {reason}"), None),
                };
                let _ = actions.send(Action::RepairEnded {
                    chosen,
                    verdict,
                    sensitivity,
                });
            }
            Effect::Sensitivity {
                metric,
                higher_is_better,
            } => {
                let result = measure(
                    selector,
                    &metric,
                    higher_is_better,
                    Measure::BOTH,
                    &stops.repair_stop,
                    &mut |done, total| {
                        let _ = actions.send(Action::SensitivityProgress { done, total });
                    },
                );
                let _ = actions.send(Action::SensitivityMeasured(match result {
                    Ok(Some(s)) => Ok(Box::new(s)),
                    Ok(None) => Err("stopped".into()),
                    Err(e) => Err(e.to_string()),
                }));
            }
            Effect::Recompute { .. } | Effect::CancelAll | Effect::StopRun | Effect::StopRepair => {
            }
        }
    }
}

/// What a repair search ended with: the rules of its result (when the target is met),
/// how it ended in a line, and the ranking it measured.
type RepairEnd = (Option<Vec<Rule>>, String, Option<Box<Sensitivity>>);

/// Runs the repair search, sending each candidate as an experiment.
fn repair(
    selector: &Selector,
    target: &Target,
    actions: &ActionSender,
    stop: &AtomicBool,
) -> Result<RepairEnd, String> {
    let graph = &selector.graph;
    target
        .check(graph, selector.labels.is_some())
        .map_err(|e| e.to_string())?;
    let (metric, _) = target.primary();
    let outcome = search(
        selector,
        target,
        SearchOptions::default(),
        stop,
        &mut |candidate, metrics| {
            let rules = remedy_rules(graph, &candidate.remedies);
            // The cost as every experiment's is measured (the selective model built from
            // these rules, serialised): the rules are what adopting the result keeps.
            let cost = match selector.select(&rules, &[]) {
                Ok(selection) => cost_of(&selection),
                Err(_) => return,
            };
            let mark = if candidate.meets_target { "✓" } else { "✗" };
            let _ = actions.send(Action::RepairCandidate {
                rules,
                cost,
                metrics: metrics.clone(),
                origin: format!("fix {} {mark}", candidate.stage.label()),
            });
        },
    )
    .map_err(|e| e.to_string())?;
    let evaluated = outcome.candidates.len();
    let (chosen, line) = match &outcome.verdict {
        Verdict::Met { .. } => {
            let chosen = outcome.chosen().map(|c| remedy_rules(graph, &c.remedies));
            let c = outcome
                .chosen()
                .expect("a met target has a chosen candidate");
            let line = format!(
                "{} met with {} float op(s), {} island(s), {metric} {} ({evaluated} candidates, \
                 {:.1} s)",
                outcome.target,
                c.float_ops,
                c.float_islands,
                format_number(c.metric),
                outcome.seconds
            );
            (chosen, line)
        }
        Verdict::FloatMisses { misses } => (
            None,
            format!("the float model itself misses it ({})", misses.join(", ")),
        ),
        Verdict::Unreachable { misses } => (
            None,
            format!(
                "not reachable even with every remedy ({}); loosen the target",
                misses.join(", ")
            ),
        ),
        Verdict::NeedsFloat { misses } => (
            None,
            format!("needs float remedies ({})", misses.join(", ")),
        ),
        Verdict::Cancelled => (None, format!("stopped after {evaluated} candidates")),
    };
    Ok((chosen, line, outcome.sensitivity.map(Box::new)))
}

/// Where a selective model's denylist goes: beside it, `NAME.denylist.txt`.
pub fn denylist_path(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map_or("selective".into(), |s| s.to_string_lossy().into_owned());
    model.with_file_name(format!("{stem}.denylist.txt"))
}

fn write_model(
    selector: &Selector,
    path: &Path,
    rules: &[Rule],
    report: &DebugReport,
) -> Result<String, String> {
    let selection = select(selector, rules, report)?;
    crate::atomic::write_bytes_atomic(path, &selection.bytes).map_err(|e| e.to_string())?;
    let list = denylist_path(path);
    write_denylist(&list, &selection.rules).map_err(|e| e.to_string())?;
    let int16 = match selection.int16_ops() {
        0 => String::new(),
        n => format!(", {n} ops int16"),
    };
    Ok(format!(
        "wrote {} ({} kB, {} ops float, {} islands{int16}) and {}",
        path.display(),
        selection.bytes.len() / 1024,
        selection.denylisted_ops(),
        selection.float_islands(),
        list.display()
    ))
}
