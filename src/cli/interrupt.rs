//! Ctrl-C and SIGTERM for long runs: the first one asks the work to stop and keep what it
//! has (the debugger stops between samples, the reports are still written); a second one
//! quits at once. The dashboard reuses the same flag for its own "stop" key.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use signal_hook::consts::{SIGINT, SIGTERM};

/// The signals handled, with the exit status a shell reports for a process they kill
/// (128 + the signal number): scripts see the same code either way.
const HANDLED: [(i32, &str); 2] = [(SIGINT, "Ctrl-C (SIGINT)"), (SIGTERM, "SIGTERM")];

struct Handlers {
    stop: Arc<AtomicBool>,
    /// The first signal received, 0 while none.
    first: Arc<AtomicUsize>,
}

static HANDLERS: Mutex<Option<Handlers>> = Mutex::new(None);

/// Installs the handlers (once per process; later calls return the same flag) and
/// returns the flag they set. Until this is called, Ctrl-C kills the process as usual,
/// which is right while nothing partial is worth keeping.
pub fn install() -> std::io::Result<Arc<AtomicBool>> {
    // Held for the whole registration, so two threads cannot both register.
    let mut installed = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = installed.as_ref() {
        return Ok(Arc::clone(&h.stop));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let first = Arc::new(AtomicUsize::new(0));
    for (signal, _) in HANDLED {
        // Registered before the flag is set, so it sees the flag as the previous signal
        // left it: the first signal only stops the work, a second one exits now.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&stop))?;
        let record = Arc::clone(&first);
        // SAFETY: the action only does an atomic compare-exchange, which is
        // async-signal-safe (no allocation, no locks).
        unsafe {
            signal_hook::low_level::register(signal, move || {
                let _ =
                    record.compare_exchange(0, signal as usize, Ordering::SeqCst, Ordering::SeqCst);
            })?;
        }
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    *installed = Some(Handlers {
        stop: Arc::clone(&stop),
        first,
    });
    Ok(stop)
}

/// The first signal received since [`install`], if any.
pub fn received() -> Option<Signal> {
    let installed = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
    let signal = installed.as_ref()?.first.load(Ordering::SeqCst) as i32;
    HANDLED
        .iter()
        .find(|(s, _)| *s == signal)
        .map(|&(number, name)| Signal { number, name })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal {
    pub number: i32,
    pub name: &'static str,
}

impl Signal {
    /// What the process exits with: 130 for SIGINT, 143 for SIGTERM.
    pub fn exit_code(self) -> u8 {
        (128 + self.number) as u8
    }
}

/// The run was stopped by a signal after writing what it had; `main` turns this into
/// the signal's exit code with the message as a note, not an error.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: Signal,
    pub message: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}: {}", self.signal.name, self.message)
    }
}

impl std::error::Error for Interrupted {}
