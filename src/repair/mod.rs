//! Automatic repair (issue 18): a target the quantized model must meet, each layer's
//! sensitivity measured on the target's metric, and the search for the cheapest set of
//! remedies that meets the target.
//!
//! This layer sits above `select`: every candidate is a model the [`crate::select::Selector`]
//! evaluates, reusing its checkpoints.

pub mod search;
pub mod sensitivity;
pub mod target;

pub use target::Target;
