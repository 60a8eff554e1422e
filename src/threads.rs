//! How many threads qdbg computes on, and where they go.
//!
//! qdbg parallelises over samples (calibration, the debugger, selection) and keeps most
//! ops single-threaded: with as many samples in flight as there are workers, splitting one
//! op across threads only adds synchronisation. The large float convolutions
//! (`kernels::im2col_f32`, `kernels::pointwise_f32`) split across the workers when they run
//! outside them (one sample's latency; [`parts_for_one_op`]). candle has its own intra-op parallelism
//! (a spinning barrier pool for elementwise ops, rayon inside matrix products) that would
//! otherwise compete with the per-sample workers for the same cores, and it sizes it by
//! reading `RAYON_NUM_THREADS` (or counting physical cores in /proc/cpuinfo) on every
//! matrix product. Measured on MobileNetV3-small, 100 samples, 2 cores: calibration 1.19 s
//! with candle's threads, 0.61 s without.

use crate::error::{Error, Result};

/// Sizes rayon's global pool (the per-sample workers) to `requested`, else
/// `$RAYON_NUM_THREADS`, else every core; turns candle's intra-op threading off. Returns the
/// number of workers.
///
/// Call it once, first thing in `main`, before any other thread exists: it changes the
/// process environment (candle reads its thread count from there), which is only sound
/// while nothing else reads it concurrently.
pub fn configure(requested: Option<usize>) -> Result<usize> {
    let from_env = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let threads = requested
        .or(from_env)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // SAFETY (of the environment change): documented precondition, no other thread yet.
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    std::env::set_var("RAYON_NUM_THREADS", "1");
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::Internal(format!("cannot start {threads} worker threads: {e}")))?;
    Ok(threads)
}

/// How many parts one large op may split into: the pool's workers when the op runs outside
/// them (one sample's latency: `qdbg run`, the inference benchmark), else 1 (the workers are
/// busy with samples of their own, and splitting would only add overhead: measured, 64-row
/// blocks of MobileNetV2's 1x1 convolutions cost a quarter of its speed on one thread).
pub fn parts_for_one_op() -> usize {
    if rayon::current_thread_index().is_none() {
        rayon::current_num_threads().max(1)
    } else {
        1
    }
}

/// How many samples one chunk of a per-sample loop (calibration, a selection's evaluation)
/// hands the workers at once: a few per worker. A partial re-run of one sample takes a
/// millisecond or two, about what waking an idle worker takes, so with one sample per worker
/// the first awake often runs both and the other core idles (measured on the repair search:
/// one worker did half as much again as the other). The loops check progress and
/// cancellation between chunks, which stay a few milliseconds long.
pub fn sample_chunk() -> usize {
    SAMPLES_PER_WORKER * rayon::current_num_threads().max(1)
}

/// Samples each worker gets per chunk ([`sample_chunk`]).
const SAMPLES_PER_WORKER: usize = 4;
