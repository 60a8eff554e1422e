//! What the op families' TFLite codecs share (see `ops::family`): the encodings of
//! fused activations and paddings, checked integer conversions, and the operator-version
//! context that the converter's version rules read.

use super::fb;
use crate::graph::{DType, FusedActivation, Graph, Node, Padding, Tensor};

/// A builtin's name as the schema spells it (`BUILTIN_n` for codes newer than the schema).
pub fn builtin_name(op: fb::BuiltinOperator) -> String {
    op.variant_name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("BUILTIN_{}", op.0))
}

pub fn read_activation(a: fb::ActivationFunctionType) -> Result<FusedActivation, String> {
    Ok(match a {
        fb::ActivationFunctionType::NONE => FusedActivation::None,
        fb::ActivationFunctionType::RELU => FusedActivation::Relu,
        fb::ActivationFunctionType::RELU_N1_TO_1 => FusedActivation::ReluN1To1,
        fb::ActivationFunctionType::RELU6 => FusedActivation::Relu6,
        fb::ActivationFunctionType::TANH => FusedActivation::Tanh,
        fb::ActivationFunctionType::SIGN_BIT => FusedActivation::SignBit,
        other => return Err(format!("unknown fused activation {}", other.0)),
    })
}

/// The fused activation of an options table that may be missing (TFLite's default: none).
pub fn read_activation_or_none(
    a: Option<fb::ActivationFunctionType>,
) -> Result<FusedActivation, String> {
    read_activation(a.unwrap_or(fb::ActivationFunctionType::NONE))
}

pub fn read_padding(p: fb::Padding) -> Result<Padding, String> {
    match p {
        fb::Padding::SAME => Ok(Padding::Same),
        fb::Padding::VALID => Ok(Padding::Valid),
        other => Err(format!("unknown padding {}", other.0)),
    }
}

/// A stride, dilation, filter size or count, which must be at least 1.
pub fn read_positive(v: i32, what: &str) -> Result<usize, String> {
    if v < 1 {
        return Err(format!("{what} must be at least 1, got {v}"));
    }
    Ok(v as usize)
}

pub fn write_activation(a: FusedActivation) -> fb::ActivationFunctionType {
    use fb::ActivationFunctionType as A;
    match a {
        FusedActivation::None => A::NONE,
        FusedActivation::Relu => A::RELU,
        FusedActivation::ReluN1To1 => A::RELU_N1_TO_1,
        FusedActivation::Relu6 => A::RELU6,
        FusedActivation::Tanh => A::TANH,
        FusedActivation::SignBit => A::SIGN_BIT,
    }
}

pub fn write_padding(p: Padding) -> fb::Padding {
    match p {
        Padding::Same => fb::Padding::SAME,
        Padding::Valid => fb::Padding::VALID,
    }
}

pub fn write_int(v: usize, what: &str) -> Result<i32, String> {
    i32::try_from(v).map_err(|_| format!("{what} {v} does not fit int32"))
}

/// The facts TensorFlow's operator-version rules read about one node
/// (`GetBuiltinOperatorVersion` in
/// tensorflow/compiler/mlir/lite/tools/versioning/op_version.cc, with the extra facts of
/// op_signature.cc), restricted to what qdbg's ops can be: float32, int8/uint8 and int16
/// tensors, no sparse or int4 weights, no quantized bias type, no asymmetric hybrid inputs,
/// default (unshuffled) fully-connected weights, `pot_scale_int16` left true.
pub struct OpVersionCtx<'a> {
    graph: &'a Graph,
    node: &'a Node,
}

impl<'a> OpVersionCtx<'a> {
    pub fn new(graph: &'a Graph, node: &'a Node) -> Self {
        OpVersionCtx { graph, node }
    }

    pub fn node(&self) -> &'a Node {
        self.node
    }

    pub fn input(&self, i: usize) -> Option<&'a Tensor> {
        self.node.input(i).map(|id| &self.graph.tensors[id])
    }

    pub fn output(&self) -> Option<&'a Tensor> {
        self.node.outputs.first().map(|&id| &self.graph.tensors[id])
    }

    /// Whether input `i` has type `d`. A missing input has TFLite's kTfLiteNoType, which
    /// no rule matches.
    pub fn is(&self, i: usize, d: DType) -> bool {
        self.input(i).is_some_and(|t| t.dtype == d)
    }

    pub fn out_is(&self, d: DType) -> bool {
        self.output().is_some_and(|t| t.dtype == d)
    }

    /// Inputs 0 and 1 and the output have these types.
    pub fn io(&self, a: DType, b: DType, o: DType) -> bool {
        self.is(0, a) && self.is(1, b) && self.out_is(o)
    }

    pub fn dims(&self, i: usize) -> usize {
        self.input(i).map_or(0, |t| t.shape.len())
    }

    /// Float data with int8 weights (a dynamic-range op).
    pub fn hybrid(&self) -> bool {
        self.io(DType::F32, DType::I8, DType::F32)
    }

    pub fn int8(&self) -> bool {
        self.io(DType::I8, DType::I8, DType::I8)
    }

    /// Binary ops with differently shaped inputs and a rank above 4.
    pub fn broadcast5d(&self) -> bool {
        self.node.inputs.len() >= 2
            && self.input(0).map(|t| &t.shape) != self.input(1).map(|t| &t.shape)
            && (0..self.node.inputs.len())
                .map(|i| self.dims(i))
                .max()
                .unwrap_or(0)
                > 4
    }

    fn scales(t: Option<&Tensor>) -> usize {
        t.and_then(|t| t.quant.as_ref())
            .map_or(0, |q| q.scale.len())
    }

    /// As many scales as the tensor has entries along `dim` (op_signature.cc).
    pub fn per_channel(&self, t: Option<&Tensor>, dim: usize) -> bool {
        let n = Self::scales(t);
        n > 0 && t.is_some_and(|t| t.shape.get(dim) == Some(&n))
    }

    /// DEQUANTIZE / QUANTIZE: more than one scale, along the quantized dimension.
    pub fn per_axis(&self, t: Option<&Tensor>) -> bool {
        Self::scales(t) > 1
            && self.per_channel(t, t.and_then(|t| t.quant.as_ref()).map_or(0, |q| q.axis))
    }

    /// The first scale of a tensor's parameters, 0 when it has none.
    pub fn scale(t: Option<&Tensor>) -> f32 {
        t.and_then(|t| t.quant.as_ref())
            .and_then(|q| q.scale.first().copied())
            .unwrap_or(0.0)
    }

    /// TensorFlow's rules in their order: the first that holds gives the version, none
    /// gives 1.
    pub fn first(rules: &[(bool, i32)]) -> i32 {
        rules.iter().find(|r| r.0).map_or(1, |r| r.1)
    }
}
