//! TFLite: flatbuffer bindings generated from the vendored `schema/tflite/schema.fbs`
//! (see `scripts/gen_tflite_bindings.sh`), the reader into [`crate::graph::Graph`] and the
//! writer back out of it.

pub mod codec;
mod custom;
mod reader;
mod sparsity;
mod writer;

#[allow(
    clippy::all,
    dead_code,
    unused_imports,
    non_camel_case_types,
    non_snake_case,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes,
    unused_lifetimes
)]
#[rustfmt::skip]
mod schema_generated;

pub use codec::{builtin_name, OpVersionCtx};
pub(crate) use custom::parse_custom;
pub use reader::{read_model, read_model_bytes};
pub(crate) use schema_generated::tflite as fb;
pub use writer::{model_bytes, write_model};
