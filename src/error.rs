//! The engine's error type. Every variant names the file, op or tensor involved and,
//! where there is one, what the user can do about it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a valid TFLite model: {reason}")]
    InvalidModel { path: PathBuf, reason: String },

    #[error("{path}: op #{op_index} ({op}) is not supported: {hint}")]
    UnsupportedOp {
        path: PathBuf,
        op_index: usize,
        op: String,
        hint: String,
    },

    #[error("op #{op_index} ({op}), tensor '{tensor}': {reason}")]
    OpFailed {
        op_index: usize,
        op: String,
        tensor: String,
        reason: String,
    },

    #[error("{path}: {reason}")]
    Data { path: PathBuf, reason: String },

    /// A model of the wrong kind for the command: an already-quantized model where the
    /// float one is needed, or one qdbg cannot run (hybrid kernels).
    #[error("{path} is not a float model (kind: {found}): {hint}")]
    NotFloatModel {
        path: PathBuf,
        found: String,
        hint: String,
    },

    #[error("model input '{tensor}' expects {expected}, got {actual}{hint}")]
    InputMismatch {
        tensor: String,
        expected: String,
        actual: String,
        hint: String,
    },

    #[error("device '{device}': {reason}")]
    Device { device: String, reason: String },

    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    /// A broken invariant inside qdbg: a bug to report, not a problem with the input.
    #[error("internal error: {0} (please report this)")]
    Internal(String),
}

impl Error {
    pub fn invalid_model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidModel {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the error comes from what the user gave us (exit code 2) rather than
    /// from qdbg itself (exit code 1). An op that fails at run time fails on the model's
    /// contents (the shapes, dtypes, parameters and constants the file declares: the ops
    /// check them and say which), so it counts as bad input.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Internal(_))
    }
}
