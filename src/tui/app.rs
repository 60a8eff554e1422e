//! The dashboard's event loop: keys and engine news become actions, actions go through
//! the reducer, effects go to the engine, and the screen is redrawn from the state.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event};
use ratatui::layout::Rect;

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
/// arrives as a key in raw mode, SIGINT from elsewhere as a signal.
fn termination_flag() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// Opens the dashboard on `inputs` and runs until the user quits.
pub fn run(inputs: EngineInputs, options: DashboardOptions) -> io::Result<Outcome> {
    let clock = Instant::now();
    let terminate = termination_flag()?;
    let mut state = State::new(
        inputs.loaded.model.path.display().to_string(),
        options.data_label,
        inputs.loaded.labels.is_some(),
    );
    state.colors = options.colors;
    state.denylist.loaded = options.rules;

    let (tx, rx) = channel();
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

    // Keys come from their own thread: the loop below never blocks inside the terminal
    // library, so a vanished terminal (SSH dropped) or a signal still ends it at once.
    let (key_tx, key_rx) = channel();
    std::thread::spawn(move || loop {
        match event::read() {
            Ok(ev) => {
                if key_tx.send(Some(ev)).is_err() {
                    break;
                }
            }
            Err(_) => {
                // The terminal is gone: nothing more can be read or shown.
                let _ = key_tx.send(None);
                break;
            }
        }
    });

    let mut last_tick = Instant::now();
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
        // Keys first, waiting at most a frame for one.
        match key_rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(Event::Key(key))) => {
                if let Some(action) = key_action(&state, key) {
                    apply(&mut state, action);
                    dirty = true;
                }
            }
            Ok(Some(Event::Resize(width, height))) => {
                apply(
                    &mut state,
                    Action::Viewport {
                        table_rows: table_rows(Rect::new(0, 0, width, height)),
                    },
                );
                dirty = true;
            }
            Ok(Some(_)) | Err(RecvTimeoutError::Timeout) => {}
            Ok(None) | Err(RecvTimeoutError::Disconnected) => apply(&mut state, Action::Quit),
        }
        // Engine news, bounded per frame so keys are never starved.
        for action in rx.try_iter().take(256) {
            apply(&mut state, action);
            dirty = true;
        }
        if last_tick.elapsed() >= Duration::from_millis(250) {
            last_tick = Instant::now();
            apply(
                &mut state,
                Action::Tick {
                    now_s: clock.elapsed().as_secs_f64(),
                },
            );
            dirty = true;
        }
        if terminate.load(Ordering::Relaxed) {
            apply(&mut state, Action::Quit);
        }
    }
    engine.shutdown();
    Ok(Outcome {
        rules: state.denylist.rules(),
        status: state.status.clone(),
        samples: state.progress.done,
        layers: state.layers().len(),
    })
}
