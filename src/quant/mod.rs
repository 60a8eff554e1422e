//! Post-training quantization: calibration (observed ranges), planning (the TFLite int8
//! spec's rules) and building the quantized graph.

pub mod calibration;
pub mod check;
pub mod division_check;
pub mod foreign;
pub mod params;
pub mod plan;
pub mod quantize;

pub use calibration::{
    calibrate, calibrate_keeping_outputs, calibrate_or_load, Calibration, CalibrationSource,
    TensorRange,
};
