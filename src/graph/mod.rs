//! The format-neutral graph every reader produces and every executor consumes.
//!
//! Tensor ids are the indices of the source model's tensor table, kept 1:1 so that
//! reports (`tensor_idx` in TensorFlow's CSV) and denylists refer to the same numbers
//! as the user's own tools.

mod kind;
mod op;

pub use kind::{Activations, ModelKind};
pub use op::*;

use serde::Serialize;

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
    String,
    /// A type the reader recognised but qdbg cannot compute with (complex, int4, ...).
    Unsupported(&'static str),
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::I64 => "int64",
            DType::U64 => "uint64",
            DType::Bool => "bool",
            DType::String => "string",
            DType::Unsupported(name) => name,
        }
    }

    /// Bytes per element, or `None` for variable-size types.
    pub fn size_bytes(self) -> Option<usize> {
        match self {
            DType::I8 | DType::U8 | DType::Bool => Some(1),
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => Some(2),
            DType::F32 | DType::I32 | DType::U32 => Some(4),
            DType::F64 | DType::I64 | DType::U64 => Some(8),
            DType::String | DType::Unsupported(_) => None,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Affine quantization: `real = (q - zero_point) * scale`, per tensor (one entry) or
/// per channel along `axis`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantParams {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: usize,
}

impl QuantParams {
    pub fn per_tensor(scale: f32, zero_point: i64) -> Self {
        QuantParams {
            scale: vec![scale],
            zero_point: vec![zero_point],
            axis: 0,
        }
    }

    pub fn is_per_channel(&self) -> bool {
        self.scale.len() > 1
    }
}

/// Constant tensor contents, decoded from the model's little-endian buffers.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    /// Bytes of a type qdbg keeps but does not compute with (strings, float64, ...).
    Raw(Vec<u8>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Raw(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Integer view of index-like constants (shapes, axes, paddings, begin/end).
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        match self {
            TensorData::I32(v) => Some(v.iter().map(|&x| x as i64).collect()),
            TensorData::I64(v) => Some(v.clone()),
            TensorData::I16(v) => Some(v.iter().map(|&x| x as i64).collect()),
            TensorData::I8(v) => Some(v.iter().map(|&x| x as i64).collect()),
            TensorData::U8(v) => Some(v.iter().map(|&x| x as i64).collect()),
            _ => None,
        }
    }

    /// Float view; integers convert exactly up to 2^24.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self {
            TensorData::F32(v) => Some(v.clone()),
            TensorData::Bool(v) => Some(v.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect()),
            TensorData::Raw(_) => None,
            other => other
                .to_i64()
                .map(|v| v.into_iter().map(|x| x as f32).collect()),
        }
    }
}

/// One tensor of the graph: an activation, a model input or a constant.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    /// Static shape. Dynamic dimensions (-1 in the signature) are stored as 1, the batch
    /// size qdbg runs with.
    pub shape: Vec<usize>,
    /// The model's own shape signature when it has dynamic dimensions.
    pub shape_signature: Option<Vec<i64>>,
    pub dtype: DType,
    /// Contents of a constant; `None` for activations and inputs.
    pub data: Option<TensorData>,
    pub quant: Option<QuantParams>,
}

impl Tensor {
    /// A copy of this tensor's description (name, shape, type, parameters) without its
    /// data: for a converted constant, which brings its own (cloning the float weights only
    /// to replace them cost a copy of every weight).
    pub fn without_data(&self) -> Tensor {
        Tensor {
            name: self.name.clone(),
            shape: self.shape.clone(),
            shape_signature: self.shape_signature.clone(),
            dtype: self.dtype,
            data: None,
            quant: self.quant.clone(),
        }
    }

    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }
}

/// One operation, in execution order.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    /// `None` marks an optional input the model left out (TFLite's index -1).
    pub inputs: Vec<Option<TensorId>>,
    pub outputs: Vec<TensorId>,
    /// Position of the op in the source model's operator list.
    pub source_index: usize,
}

impl Node {
    /// The `i`th input, if the model supplied it.
    pub fn input(&self, i: usize) -> Option<TensorId> {
        self.inputs.get(i).copied().flatten()
    }
}

/// A whole model: one subgraph with its constants.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// Ops the reader folded away, such as DEQUANTIZE of float16 weights, by source index.
    pub folded: Vec<FoldedOp>,
    /// Constants the file stored sparse (TFLite sparsity metadata), which the reader
    /// expanded to their dense values: the tensors now hold ordinary dense data.
    pub densified: Vec<TensorId>,
    /// Free-form description from the model file.
    pub description: String,
    /// The file the graph was read from, for error messages.
    pub source: std::path::PathBuf,
}

/// An op of the source model that the reader evaluated at load time.
#[derive(Clone, Debug, Serialize)]
pub struct FoldedOp {
    pub source_index: usize,
    pub op_name: String,
    /// The constant the op read (the float16 weights of a DEQUANTIZE).
    pub input: TensorId,
    pub output: TensorId,
    pub why: &'static str,
}

impl Graph {
    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id]
    }

    /// Finds a tensor by its exact name.
    pub fn tensor_by_name(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// The index each tensor gets in a written model file, which keeps only the tensors an
    /// op, a model input or a model output uses (in their order here): a constant that
    /// nothing reads any more (float16 weights widened at load, float weights replaced by
    /// their int8 copies) is dead weight in a file. `None` for a tensor left out.
    pub fn written_tensor_ids(&self) -> Vec<Option<usize>> {
        let mut used = vec![false; self.tensors.len()];
        let refolded = self.refolded();
        let ids = self
            .nodes
            .iter()
            .chain(&refolded)
            .flat_map(|n| n.inputs.iter().flatten().chain(&n.outputs))
            .chain(&self.inputs)
            .chain(&self.outputs);
        for &id in ids {
            if let Some(u) = used.get_mut(id) {
                *u = true;
            }
        }
        let mut next = 0;
        used.into_iter()
            .map(|u| {
                u.then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    }

    /// The DEQUANTIZE ops of float16 (or bfloat16) weights that a writer puts back, so a
    /// float op keeps its weights as the source stored them (half the bytes of float32):
    /// those whose widened constant some op still reads as float. An int8 op's weights are
    /// int8 copies, and their float16 source is simply left out.
    pub fn refolded(&self) -> Vec<Node> {
        self.folded
            .iter()
            .filter(|f| f.op_name == "DEQUANTIZE")
            .filter(|f| {
                let (Some(source), Some(out)) =
                    (self.tensors.get(f.input), self.tensors.get(f.output))
                else {
                    return false;
                };
                matches!(source.dtype, DType::F16 | DType::BF16)
                    && source.is_constant()
                    && out.dtype.is_float()
                    && out.is_constant()
                    && self
                        .nodes
                        .iter()
                        .any(|n| n.inputs.iter().flatten().any(|&i| i == f.output))
            })
            .map(|f| Node {
                op: Op::Dequantize,
                inputs: vec![Some(f.input)],
                outputs: vec![f.output],
                source_index: f.source_index,
            })
            .collect()
    }

    /// Count of each op type, in first-seen order.
    pub fn op_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for node in &self.nodes {
            let name = node.op.name();
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        counts
    }
}
