//! Post-training quantization: calibration (observed ranges), planning (the TFLite int8
//! spec's rules) and building the quantized graph.

pub mod calibration;
pub mod check;
pub mod division_check;
pub mod foreign;
pub mod histogram;
pub mod int16_plan;
pub mod params;
pub mod plan;
pub mod quantize;
pub mod range_search;

pub use calibration::{
    calibrate, calibrate_keeping_outputs, calibrate_or_load, calibrate_or_load_samples,
    calibrate_samples, Calibration, CalibrationSource, TensorRange,
};
pub use histogram::Histogram;
pub use range_search::RangeMethod;
