//! What kind of model a graph is: float, already quantized (full int8, 16x8, mixed), or
//! dynamic-range (integer weights, float activations).
//!
//! Users most often have the int8 model at hand, not the float one it came from. Every
//! command that quantizes or debugs needs the float model: given a quantized one it would
//! "quantize" integers as if they were floats and report nonsense (rmse/scale of 1e9).
//! [`ModelKind::require_float`] turns that into a refusal that says what the file is and
//! what to pass instead, before any work or any file is written.

use std::path::Path;

use super::{DType, Graph, Node, Op, TensorId};
use crate::error::{Error, Result};

/// How a model computes its activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activations {
    /// Every op computes in float (float32 weights, or float16 / integer weights that a
    /// DEQUANTIZE widens before use).
    Float,
    /// Every computing op has int8 (or uint8) activations.
    Int8,
    /// Integer ops with int16 activations (16x8: int16 activations, int8 weights), possibly
    /// beside int8 ones.
    Int16,
    /// Some ops compute in float, others in integers (a selectively quantized model).
    Mixed,
}

/// The kind of a model, as `qdbg inspect` states it and the commands check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelKind {
    pub activations: Activations,
    /// Ops computing on float activations (QUANTIZE / DEQUANTIZE not counted).
    pub float_ops: usize,
    /// Ops computing on quantized integer activations.
    pub integer_ops: usize,
    /// Float ops that read integer weights directly (LiteRT's hybrid kernels, made by
    /// dynamic-range quantization): any marks a dynamic-range model.
    pub hybrid_ops: usize,
    /// float16 (or bfloat16) weights widened at load time.
    pub float16_weights: bool,
    /// Integer weights dequantized at load time (weight-only quantization).
    pub dequantized_weights: bool,
    /// Sparse weights densified at load time.
    pub sparse_weights: bool,
    /// Custom ops, by name, in first-seen order.
    pub custom_ops: Vec<String>,
}

fn is_border(node: &Node) -> bool {
    matches!(node.op, Op::Quantize | Op::Dequantize)
}

fn is_quantized_activation(graph: &Graph, id: TensorId) -> bool {
    let t = graph.tensor(id);
    !t.is_constant() && t.quant.is_some() && matches!(t.dtype, DType::I8 | DType::U8 | DType::I16)
}

fn is_float_activation(graph: &Graph, id: TensorId) -> bool {
    let t = graph.tensor(id);
    !t.is_constant() && t.dtype.is_float()
}

/// An integer constant with quantization parameters that a float op reads as a weight
/// (an int32 shape or axis has no parameters).
fn is_quantized_weight(graph: &Graph, id: TensorId) -> bool {
    let t = graph.tensor(id);
    t.is_constant() && t.quant.is_some() && matches!(t.dtype, DType::I8 | DType::U8 | DType::I16)
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

impl ModelKind {
    pub fn of(graph: &Graph) -> ModelKind {
        let (mut float_ops, mut integer_ops, mut hybrid_ops) = (0, 0, 0);
        let mut int16 = false;
        let mut custom_ops: Vec<String> = Vec::new();
        for node in &graph.nodes {
            // Custom ops qdbg runs carry their options; any other is an unsupported
            // `CUSTOM(code)`.
            let custom = match &node.op {
                Op::Unsupported { name } => name
                    .strip_prefix("CUSTOM(")
                    .map(|c| c.trim_end_matches(')').to_string()),
                op if op.custom_options().is_some() => Some(op.name().to_string()),
                _ => None,
            };
            if let Some(custom) = custom {
                if !custom_ops.contains(&custom) {
                    custom_ops.push(custom);
                }
            }
            if is_border(node) {
                continue;
            }
            let mut data = node.inputs.iter().flatten().chain(&node.outputs);
            if data.clone().any(|&id| is_quantized_activation(graph, id)) {
                integer_ops += 1;
                int16 |= data.any(|&id| {
                    is_quantized_activation(graph, id) && graph.tensor(id).dtype == DType::I16
                });
            } else if data.any(|&id| is_float_activation(graph, id)) {
                float_ops += 1;
                if node
                    .inputs
                    .iter()
                    .flatten()
                    .any(|&id| is_quantized_weight(graph, id))
                {
                    hybrid_ops += 1;
                }
            }
        }
        let activations = match (float_ops, integer_ops) {
            (_, 0) => Activations::Float,
            (0, _) if int16 => Activations::Int16,
            (0, _) => Activations::Int8,
            _ => Activations::Mixed,
        };
        let folded = |why: &str| graph.folded.iter().any(|f| f.why.contains(why));
        ModelKind {
            activations,
            float_ops,
            integer_ops,
            hybrid_ops,
            float16_weights: folded("float16"),
            dequantized_weights: folded("dequantized"),
            sparse_weights: folded("sparse"),
            custom_ops,
        }
    }

    /// One line for people: what the model is.
    pub fn describe(&self) -> String {
        let mut text = match self.activations {
            Activations::Float if self.hybrid_ops > 0 => format!(
                "dynamic-range quantized: integer weights, float activations ({})",
                count(self.hybrid_ops, "hybrid op")
            ),
            Activations::Float => "float".to_string(),
            Activations::Int8 => format!("full int8 ({})", count(self.integer_ops, "integer op")),
            Activations::Int16 => format!(
                "16x8 quantized: int16 activations, int8 weights ({})",
                count(self.integer_ops, "integer op")
            ),
            Activations::Mixed => format!(
                "mixed: {}, {}",
                count(self.float_ops, "float op"),
                count(self.integer_ops, "integer op")
            ),
        };
        let mut notes = Vec::new();
        if self.float16_weights {
            notes.push("float16 weights".to_string());
        }
        if self.dequantized_weights {
            notes.push("integer weights dequantized at load".to_string());
        }
        if self.sparse_weights {
            notes.push("sparse weights".to_string());
        }
        if !self.custom_ops.is_empty() {
            notes.push(format!("custom ops: {}", self.custom_ops.join(", ")));
        }
        if !notes.is_empty() {
            text.push_str(&format!(" ({})", notes.join("; ")));
        }
        text
    }

    /// A dynamic-range model: float activations, some ops reading integer weights.
    pub fn is_dynamic_range(&self) -> bool {
        self.activations == Activations::Float && self.hybrid_ops > 0
    }

    /// Refuses anything but a float model, for the commands that calibrate, quantize or
    /// debug (`command` names the one refusing, for the message: `qdbg debug`).
    pub fn require_float(&self, path: &Path, command: &str) -> Result<()> {
        let what_to_do = |model: &str| {
            format!(
                "{command} needs the float model this one was made from: pass the float \
                 .tflite instead; to debug this {model} model against it, run \
                 `qdbg debug FLOAT.tflite --data DATA --int8 {}`",
                path.display()
            )
        };
        let (found, hint) = match self.activations {
            Activations::Float if self.hybrid_ops == 0 => return Ok(()),
            Activations::Float => (
                self.describe(),
                format!(
                    "qdbg runs no hybrid kernels, so it has no faithful float reference for this \
                     model: pass the float model it was made from (TensorFlow's converter \
                     without Optimize.DEFAULT), which {command} quantizes fully"
                ),
            ),
            Activations::Int8 => (self.describe(), what_to_do("int8")),
            Activations::Int16 => (self.describe(), what_to_do("16x8")),
            Activations::Mixed => (self.describe(), what_to_do("mixed")),
        };
        Err(Error::NotFloatModel {
            path: path.to_path_buf(),
            found,
            hint,
        })
    }

    /// Refuses what qdbg cannot run at all (hybrid kernels), for `run` and `eval`.
    pub fn require_runnable(&self, path: &Path) -> Result<()> {
        if !self.is_dynamic_range() {
            return Ok(());
        }
        Err(Error::NotFloatModel {
            path: path.to_path_buf(),
            found: self.describe(),
            hint: "qdbg runs no hybrid kernels (float activations times integer weights): run \
                   the float model it was made from, or a fully quantized one"
                .to_string(),
        })
    }
}
