//! The dashboard's engine, driven as the event loop drives it (effects in, actions out),
//! without a terminal: an evaluation superseded by a newer one stops part way (or never
//! starts) instead of running to the end, and the newer one runs to the end.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use qdbg::data::ImageOptions;
use qdbg::debug::{DebugReport, VerifyMode};
use qdbg::exec::DeviceChoice;
use qdbg::kernels::int8::Arithmetic;
use qdbg::select::Rule;
use qdbg::session::Loaded;
use qdbg::tui::action::{Action, Effect};
use qdbg::tui::worker::{start, Engine, EngineInputs};
use tokio::sync::mpsc::UnboundedReceiver;

/// Samples in the evaluation set: the demo's 100, repeated, so that one evaluation takes
/// long enough (about a second here) that the test surely asks for a newer one while
/// it runs.
const SAMPLES: usize = 6000;

struct Driven {
    engine: Engine,
    news: UnboundedReceiver<Action>,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Driven {
    /// The engine on the demo model with `SAMPLES` samples; the debugger's own run is
    /// stopped at once (only evaluations are under test).
    fn start() -> Driven {
        let repo = common::repo();
        let dir = tempfile::tempdir().unwrap();
        // The calibration is saved beside the model: a copy keeps the repository clean.
        let model = dir.path().join("model.tflite");
        std::fs::copy(repo.join("demo/model.tflite"), &model).unwrap();
        let demo: ndarray::Array4<f32> =
            ndarray_npy::read_npy(repo.join("demo/debug.npy")).unwrap();
        let copies: Vec<_> = (0..SAMPLES / demo.shape()[0])
            .map(|_| demo.view())
            .collect();
        let data = dir.path().join("data.npy");
        ndarray_npy::write_npy(
            &data,
            &ndarray::concatenate(ndarray::Axis(0), &copies).unwrap(),
        )
        .unwrap();
        let loaded = Loaded::read(
            "dashboard",
            &model,
            &data,
            None,
            &ImageOptions::default(),
            DeviceChoice::Cpu,
        )
        .unwrap();
        assert_eq!(loaded.dataset.num_samples(), SAMPLES);
        let (tx, news) = tokio::sync::mpsc::unbounded_channel();
        let engine = start(
            EngineInputs {
                loaded,
                recalibrate: false,
                mode: VerifyMode::ModelOnly,
                arithmetic: Arithmetic::Builtin,
            },
            tx,
            Instant::now(),
        );
        engine.submit(Effect::StopRun);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        Driven {
            engine,
            news,
            runtime,
            _dir: dir,
        }
    }

    fn evaluate(&self, id: usize, rules: Vec<Rule>) {
        self.engine.submit(Effect::Evaluate {
            id,
            rules,
            report: Arc::new(DebugReport {
                arithmetic: Default::default(),
                layers: Vec::new(),
                model: Default::default(),
                model_custom: Vec::new(),
                samples: 0,
            }),
        });
    }

    /// The next piece of evaluation news (debugger news is skipped).
    fn next(&mut self) -> Action {
        loop {
            let news = &mut self.news;
            // The timer needs the runtime: made inside it.
            let action = self
                .runtime
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(300), news.recv()).await
                })
                .expect("engine news within 5 minutes")
                .expect("the engine is running");
            match action {
                Action::DebugFailed(reason) => panic!("the engine failed: {reason}"),
                Action::EvalProgress { .. }
                | Action::Evaluated { .. }
                | Action::EvalSuperseded { .. } => return action,
                _ => {}
            }
        }
    }

    /// News until evaluation `id` ends.
    fn until_evaluated(&mut self, id: usize) -> Until {
        let mut progress = Vec::new();
        let mut superseded = Vec::new();
        loop {
            match self.next() {
                Action::EvalProgress { id: of, done, .. } => {
                    assert!(
                        !superseded.iter().any(|&(s, _)| s == of),
                        "evaluation {of} went on after it was superseded"
                    );
                    progress.retain(|&(p, _)| p != of);
                    progress.push((of, done));
                }
                Action::EvalSuperseded { id: of, by } => superseded.push((of, by)),
                ended @ Action::Evaluated { id: of, .. } if of == id => {
                    return Until {
                        ended,
                        progress,
                        superseded,
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// What came until an evaluation ended.
struct Until {
    /// Its `Evaluated`.
    ended: Action,
    /// (id, samples done) of the last progress of each evaluation on the way.
    progress: Vec<(usize, usize)>,
    /// (id, by) of the evaluations superseded on the way.
    superseded: Vec<(usize, usize)>,
}

fn done_of(progress: &[(usize, usize)], id: usize) -> usize {
    progress
        .iter()
        .find(|&&(p, _)| p == id)
        .map_or(0, |&(_, d)| d)
}

#[test]
fn a_newer_evaluation_stops_the_one_running_and_skips_the_ones_waiting() {
    let mut engine = Driven::start();

    // Evaluation 1 runs; once it has measured some samples, evaluation 2 (another
    // denylist) is asked for.
    engine.evaluate(1, Vec::new());
    let first = loop {
        if let Action::EvalProgress { id: 1, done, total } = engine.next() {
            assert_eq!(total, SAMPLES);
            break done;
        }
    };
    assert!(
        first < SAMPLES,
        "evaluation 1 measured {first} samples at once"
    );
    engine.evaluate(2, vec![Rule::parse("op:MEAN").unwrap()]);
    let Until {
        ended,
        progress,
        superseded,
    } = engine.until_evaluated(2);
    assert_eq!(superseded, vec![(1, 2)]);
    let stopped_at = done_of(&progress, 1).max(first);
    assert!(
        stopped_at < SAMPLES,
        "evaluation 1 ran to the end ({stopped_at} of {SAMPLES}) although superseded"
    );
    // The newer one runs to the end and reports its metrics.
    assert_eq!(done_of(&progress, 2), SAMPLES);
    let Action::Evaluated { result, .. } = ended else {
        unreachable!()
    };
    let (cost, _metrics) = result.expect("evaluation 2 succeeds");
    assert!(cost.denylisted_ops > 0, "op:MEAN keeps the MEANs float");

    // Two asked for back to back: the first is superseded before it measures anything
    // that matters, the second runs to the end.
    engine.evaluate(3, Vec::new());
    engine.evaluate(4, Vec::new());
    let Until {
        ended,
        progress,
        superseded,
    } = engine.until_evaluated(4);
    assert_eq!(superseded, vec![(3, 4)]);
    assert!(done_of(&progress, 3) < SAMPLES);
    assert_eq!(done_of(&progress, 4), SAMPLES);
    assert!(matches!(ended, Action::Evaluated { result: Ok(_), .. }));
    engine.engine.shutdown();
}

/// The reducer and the screen: an experiment the engine stopped for a newer one says so.
#[test]
fn a_superseded_experiment_says_which_one_replaced_it() {
    use common::synthetic::{infos, report};
    use qdbg::tui::render::render;
    use qdbg::tui::state::{EvalStatus, Panel, State};
    use qdbg::tui::update::update;
    use ratatui::{backend::TestBackend, Terminal};

    let mut s = State::new("model.tflite".into(), "debug.npy".into(), false);
    update(
        &mut s,
        Action::DebugStarted {
            layers: infos(),
            samples: 100,
            at_s: 1.0,
        },
    );
    update(
        &mut s,
        Action::DebugUpdated {
            done: 100,
            total: 100,
            report: report(100, false),
            at_s: 2.0,
        },
    );
    let ids: Vec<usize> = (0..2)
        .flat_map(|_| update(&mut s, Action::Evaluate))
        .map(|effect| match effect {
            Effect::Evaluate { id, .. } => id,
            other => panic!("expected an evaluation, got {other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![1, 2]);
    update(&mut s, Action::EvalSuperseded { id: 1, by: 2 });
    assert_eq!(s.experiments[0].status, EvalStatus::Superseded { by: 2 });
    assert!(matches!(
        s.experiments[1].status,
        EvalStatus::Running { .. }
    ));

    assert_eq!(s.panel, Panel::Experiments);
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal.draw(|frame| render(&s, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    let screen: String = (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                + "\n"
        })
        .collect();
    assert!(screen.contains("#1 stopped for #2"), "{screen}");
}
