//! The terminal dashboard: live per-layer metrics, keyboard triage of a denylist, and
//! writing the selective model.
//!
//! Shape (after gitui): keys map to an [`action::Action`]; [`update::update`] is the only
//! code that changes the [`state::State`] and returns effects for the engine
//! ([`worker`]); [`render::render`] draws the state and changes nothing. The engine
//! modules know nothing of this one.

pub mod action;
pub mod app;
pub mod charts;
pub mod render;
pub mod state;
pub mod update;
pub mod worker;

pub use app::{run, DashboardOptions, Outcome};
pub use worker::EngineInputs;
