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

    /// An op failed while being prepared or run: `cause` says whether the model's
    /// contents, a kernel, candle or qdbg itself is to blame.
    #[error("op #{op_index} ({op}), tensor '{tensor}': {cause}")]
    OpFailed {
        op_index: usize,
        op: String,
        tensor: String,
        cause: OpError,
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

    /// A command-line option the user gave is wrong (not a file: no path to name).
    #[error("{option}: {reason}")]
    Usage { option: String, reason: String },

    /// candle failed outside any op (reading values back to the host, storing a
    /// checkpoint): a bug, reported with what was being done (the tensor, where known) and
    /// candle's own error, kept.
    #[error("internal error: {doing}: {cause} (please report this)")]
    Candle {
        doing: String,
        cause: Box<candle_core::Error>,
    },

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
        match self {
            Error::Internal(_) | Error::Candle { .. } => false,
            Error::OpFailed { cause, .. } => cause.is_model_error(),
            _ => true,
        }
    }

    pub fn usage(option: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Usage {
            option: option.into(),
            reason: reason.into(),
        }
    }

    /// candle's error while `doing` something, outside any op.
    pub fn candle(doing: impl Into<String>, cause: candle_core::Error) -> Self {
        Error::Candle {
            doing: doing.into(),
            cause: Box::new(cause),
        }
    }
}

/// Why an op could not be evaluated; the executor adds the op and tensor names
/// ([`crate::Error::OpFailed`]).
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// What the model declares does not fit the op: its shapes, dtypes, quantization
    /// parameters or constants (the message says which).
    #[error("{0}")]
    Model(String),
    /// An int8 kernel refused the model's quantization parameters, shapes or values
    /// (the kernel error says which and what it needs). The quantizer made the
    /// parameters, so keeping the op float is the way out.
    #[error(
        "the int8 kernel refuses it: {0}; keep this op float (a `--deny name:TENSOR` rule \
         with the tensor named here), or fix the quantization parameters the model declares"
    )]
    Kernel(#[from] crate::kernels::KernelError),
    /// candle failed while computing the op; its own error is kept as the source.
    /// (Boxed: candle's error is large, and every `Result` would carry its size.)
    #[error("candle: {0}")]
    Candle(#[source] Box<candle_core::Error>),
    /// qdbg asked an op something its family does not answer: a bug, not bad input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<candle_core::Error> for OpError {
    fn from(e: candle_core::Error) -> Self {
        OpError::Candle(Box::new(e))
    }
}

impl OpError {
    /// Whether the failure comes from the model (exit code 2) rather than from qdbg.
    pub fn is_model_error(&self) -> bool {
        !matches!(self, OpError::Internal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_failed(cause: OpError) -> Error {
        Error::OpFailed {
            op_index: 3,
            op: "CONV_2D".into(),
            tensor: "conv/out".into(),
            cause,
        }
    }

    #[test]
    fn an_op_failing_on_the_model_is_bad_input_and_a_routing_bug_is_not() {
        let model = op_failed(OpError::Model("filter must have 4 dimensions".into()));
        assert!(model.is_user_error());
        assert_eq!(
            model.to_string(),
            "op #3 (CONV_2D), tensor 'conv/out': filter must have 4 dimensions"
        );
        let bug = op_failed(OpError::Internal("routed to the pool family".into()));
        assert!(!bug.is_user_error());
        assert!(bug.to_string().contains("internal error"), "{bug}");
        assert!(Error::usage("--deny", "empty rule").is_user_error());
        let candle = Error::candle(
            "reading tensor 'x' for its range",
            candle_core::Error::Msg("unexpected dtype".into()),
        );
        assert!(!candle.is_user_error());
        assert!(
            candle.to_string().contains("tensor 'x'")
                && candle.to_string().contains("unexpected dtype"),
            "{candle}"
        );
    }
}
