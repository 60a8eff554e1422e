//! Selective quantization: which ops a denylist keeps float, and what that costs and buys.
//!
//! This layer sits above both `quant` (it re-plans and re-quantizes) and `debug` (metric
//! rules read the debugger's per-layer statistics); nothing below imports it.

mod checkpoint;
pub mod denylist;
pub mod int16;
pub mod rules;
pub mod selection;

pub use denylist::{read_denylist, write_denylist};
pub use rules::{Expr, Rule};
pub use selection::{Baseline, Selection, Selector};
