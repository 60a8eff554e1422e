//! Post-training quantization: calibration (observed ranges), planning (the TFLite int8
//! spec's rules) and building the quantized graph.

pub mod calibration;
pub mod params;
pub mod plan;

pub use calibration::{calibrate, Calibration, TensorRange};
