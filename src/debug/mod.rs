//! The quantization debugger: per-layer and whole-model verification of an int8 model
//! against its float source, with TensorFlow's `QuantizationDebugger` metrics.

pub mod job;
pub mod metrics;
pub mod model_explorer;
pub mod report;
mod verify;

pub use verify::{DebugEvent, DebugReport, Debugger, LayerInfo, LayerStats, VerifyMode};
