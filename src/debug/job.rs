//! Running the debugger off the caller's thread: events arrive on a channel, and a cancel
//! request takes effect within the running chunk of samples (one sample per thread).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::Device;

use super::verify::{DebugEvent, DebugReport, Debugger, VerifyMode};
use crate::data::Dataset;
use crate::debug::metrics::Task;
use crate::error::{Error, Result};
use crate::exec::FloatOutputCache;
use crate::graph::Graph;
use crate::kernels::int8::Arithmetic;
use crate::quant::quantize::QuantizedModel;

/// How a [`spawn`]ed run runs.
#[derive(Clone)]
pub struct JobSettings {
    pub mode: VerifyMode,
    /// Where the float model runs.
    pub device: Device,
    /// As in [`Debugger::with_float_outputs`].
    pub float_outputs: Option<Arc<FloatOutputCache>>,
    /// As in [`Debugger::for_arithmetic`].
    pub arithmetic: Arithmetic,
    /// As in [`Debugger::with_tasks`].
    pub tasks: Vec<Option<Task>>,
}

impl JobSettings {
    /// `mode` on the CPU, LiteRT's builtin int8 arithmetic, nothing shared.
    pub fn new(mode: VerifyMode) -> Self {
        JobSettings {
            mode,
            device: Device::Cpu,
            float_outputs: None,
            arithmetic: Arithmetic::Builtin,
            tasks: Vec::new(),
        }
    }
}

/// A debugger run on a worker thread.
pub struct DebugJob {
    /// Started, then one update per chunk of samples (or Failed); the channel closes when
    /// the run ends.
    pub events: Receiver<DebugEvent>,
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<Result<DebugReport>>,
}

impl DebugJob {
    /// Asks the worker to stop; statistics gathered so far are kept.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Waits for the worker and returns its report (partial if cancelled).
    pub fn join(self) -> Result<DebugReport> {
        self.handle
            .join()
            .map_err(|_| Error::Internal("the debugger thread panicked".into()))?
    }
}

/// Starts `Debugger::run` on its own thread.
pub fn spawn(
    float: Arc<Graph>,
    model: Arc<QuantizedModel>,
    dataset: Arc<Dataset>,
    labels: Option<Arc<Vec<i64>>>,
    settings: JobSettings,
) -> DebugJob {
    let JobSettings {
        mode,
        device,
        float_outputs,
        arithmetic,
        tasks,
    } = settings;
    let (tx, events) = channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let handle = std::thread::spawn(move || {
        let mut debugger =
            Debugger::for_arithmetic(&float, &model, &device, arithmetic)?.with_tasks(&tasks);
        if let Some(outputs) = float_outputs {
            debugger = debugger.with_float_outputs(outputs);
        }
        debugger.run(
            &dataset,
            labels.as_deref().map(Vec::as_slice),
            mode,
            &flag,
            &mut |e| {
                // A consumer that stopped listening is not an error for the run.
                let _ = tx.send(e);
            },
        )
    });
    DebugJob {
        events,
        cancel,
        handle,
    }
}
