//! qdbg: a quantization debugger for neural-network models.
//!
//! The engine (reader, graph, executors, datasets) knows nothing of the terminal UI.

pub mod atomic;
pub mod data;
pub mod debug;
pub mod error;
pub mod exec;
pub mod graph;
pub mod kernels;
pub mod ops;
pub mod quant;
pub mod repair;
pub mod select;
pub mod session;
pub mod tflite;
pub mod threads;
pub mod tui;

pub use error::{Error, Result};
