//! The dashboard's event loop: keys and engine news become actions, actions go through
//! the reducer, effects go to the engine, and the screen is redrawn from the state.
//!
//! One task on a current-thread tokio runtime waits, in one `select!`, on termination
//! signals, crossterm's key stream, the engine's news and a quarter-second tick; it
//! redraws after whatever changed the state.

use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use ratatui::layout::Rect;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::MissedTickBehavior;

use super::action::{key_action, Action};
use super::render::{render, table_rows};
use super::state::State;
use super::update::update;
use super::worker::{start, EngineInputs};
use crate::select::Rule;

/// How the dashboard opens.
pub struct DashboardOptions {
    pub colors: bool,
    /// Rules to start from (a denylist file given on the command line).
    pub rules: Vec<Rule>,
    pub data_label: String,
}

/// What the user left with, for the line printed after the terminal is restored.
pub struct Outcome {
    pub rules: Vec<Rule>,
    pub status: String,
    pub samples: usize,
    pub layers: usize,
}

/// Restores the terminal however the loop ends (return, `?`, panic unwinding).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// SIGTERM and SIGHUP (a closed SSH session) end the dashboard like `q` does; Ctrl-C
/// arrives as a key in raw mode, SIGINT from elsewhere as a signal. Each signal becomes a
/// message on the returned channel (from signal-hook's own thread), which the event loop
/// waits on with everything else; the handle stops that thread.
fn termination_signals() -> io::Result<(UnboundedReceiver<()>, signal_hook::iterator::Handle)> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ])?;
    let handle = signals.handle();
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    Ok((rx, handle))
}

/// Opens the dashboard on `inputs` and runs until the user quits.
pub fn run(inputs: EngineInputs, options: DashboardOptions) -> io::Result<Outcome> {
    // One thread is enough: the loop only waits and dispatches; the engine computes on
    // its own threads and rayon's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(event_loop(inputs, options))
}

async fn event_loop(inputs: EngineInputs, options: DashboardOptions) -> io::Result<Outcome> {
    let clock = Instant::now();
    let (mut terminate, signals) = termination_signals()?;
    let mut state = State::new(
        inputs.loaded.model.path.display().to_string(),
        options.data_label,
        inputs.loaded.labels.is_some(),
    );
    state.colors = options.colors;
    state.denylist.loaded = options.rules;

    let (tx, mut news) = unbounded_channel();
    let engine = start(inputs, tx, clock);
    // ratatui's init also installs a panic hook that restores the terminal first.
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;

    let size = terminal.size()?;
    let apply = |state: &mut State, action: Action| {
        for effect in update(state, action) {
            engine.submit(effect);
        }
    };
    apply(
        &mut state,
        Action::Viewport {
            table_rows: table_rows(Rect::new(0, 0, size.width, size.height)),
        },
    );

    // crossterm reads the terminal on its own thread and wakes this loop; the loop never
    // blocks inside the terminal library, so a vanished terminal (SSH dropped) or a signal
    // still ends it at once.
    let mut keys = EventStream::new();
    // The first tick a period from now, not at once.
    let period = Duration::from_millis(250);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut dirty = true;
    while !state.quit {
        if dirty {
            // A terminal that went away ends the dashboard like `q` would.
            if terminal.draw(|frame| render(&state, frame)).is_err() {
                apply(&mut state, Action::Quit);
                break;
            }
            dirty = false;
        }
        tokio::select! {
            // In this order when several are ready: leaving first, then keys, so a busy
            // engine never starves them.
            biased;
            Some(()) = terminate.recv() => apply(&mut state, Action::Quit),
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    if let Some(action) = key_action(&state, key) {
                        apply(&mut state, action);
                        dirty = true;
                    }
                }
                Some(Ok(Event::Resize(width, height))) => {
                    apply(
                        &mut state,
                        Action::Viewport {
                            table_rows: table_rows(Rect::new(0, 0, width, height)),
                        },
                    );
                    dirty = true;
                }
                Some(Ok(_)) => {}
                // The terminal is gone: nothing more can be read or shown.
                Some(Err(_)) | None => apply(&mut state, Action::Quit),
            },
            Some(action) = news.recv() => {
                apply(&mut state, action);
                // What else has arrived, bounded per frame so keys are never starved.
                for _ in 1..256 {
                    let Ok(action) = news.try_recv() else { break };
                    apply(&mut state, action);
                }
                dirty = true;
            }
            _ = tick.tick() => {
                apply(
                    &mut state,
                    Action::Tick {
                        now_s: clock.elapsed().as_secs_f64(),
                    },
                );
                dirty = true;
            }
        }
    }
    signals.close();
    engine.shutdown();
    Ok(Outcome {
        rules: state.denylist.rules(),
        status: state.status.clone(),
        samples: state.progress.done,
        layers: state.layers().len(),
    })
}
