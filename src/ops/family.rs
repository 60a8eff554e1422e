//! The op registry: every op's knowledge, one family module each.
//!
//! A family module (`ops::binary`, `ops::conv`, ...) implements [`OpFamily`] for its ops:
//! how the TFLite reader and writer encode them (builtin code, options table, operator
//! version), the rule their quantization parameters follow, whether and how they run on
//! int8 tensors, and their float semantics. Everything else in the crate reaches an op's
//! knowledge through the functions here, which dispatch on [`Family::of`], an exhaustive
//! match: a new [`Op`] variant does not compile until it has a family, and a family does
//! not compile until it answers every question of the trait. Inside a family, each answer
//! matches the family's own variants; `tests/op_registry.rs` drives every variant (one
//! sample per [`OpKind`], itself an exhaustive match) through every answer, so an arm
//! left out fails that one table-driven test.
//!
//! A second model format adds its codec methods to the trait and to each family, beside
//! the TFLite ones.

use candle_core::Tensor as CTensor;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};

use super::{Arithmetic, EvalCtx, OpResult, Prepared};
use crate::graph::{Graph, Node, Op, QuantParams, TensorId};
use crate::tflite::{fb, OpVersionCtx};

/// An op's quantization-parameter rule, as TensorFlow's converter states it for the op and
/// LiteRT's int8 kernel requires it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamRule {
    /// Its outputs take their own calibrated ranges.
    Own,
    /// Its outputs have fixed parameters whatever the data (LOGISTIC, TANH, SOFTMAX).
    FixedOutput(QuantParams),
    /// Its float inputs and outputs share one set of parameters: the int8 kernel copies
    /// or compares raw values.
    SameScale,
}

/// How an op runs when its tensors are int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Support {
    /// An int8 kernel computes it ([`OpFamily::eval_int8`]); 8-bit values without
    /// quantization parameters are refused (arithmetic on bit patterns would be wrong).
    Kernel,
    /// It moves values, but quantized tensors need an int8 step of their own (rescaling
    /// inputs of other parameters, padding with the zero point): [`OpFamily::eval_int8`]
    /// runs it on quantized tensors, and the float implementation stays right on plain
    /// 8-bit integers.
    KernelMovingValues,
    /// It only moves values: the float implementation moves int8 bit patterns unchanged,
    /// so it needs no kernel of its own.
    MovesValues,
    /// QUANTIZE / DEQUANTIZE: the boundary between float and integer tensors.
    Boundary,
    /// No int8 implementation: a quantized model keeps the op float.
    FloatOnly,
}

impl Int8Support {
    /// Whether the op's float implementation is right on 8-bit integer values.
    pub fn float_path_moves_values(self) -> bool {
        matches!(
            self,
            Int8Support::KernelMovingValues | Int8Support::MovesValues | Int8Support::Boundary
        )
    }
}

/// Which constant inputs of an op are weights the quantizer treats specially.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightSlots {
    /// A filter quantized symmetric per channel along `channel_axis`, the int32 bias whose
    /// scale is the data input's times each channel's, and that data input.
    Filter {
        filter: usize,
        channel_axis: usize,
        bias: usize,
        data: usize,
    },
    /// A constant operand TensorFlow quantizes symmetric per tensor (zero point 0, scale
    /// max |v| / 127), where other constant operands are asymmetric: PRELU's alpha
    /// (checked on every alpha of the corpus' PReLU models).
    SymmetricPerTensor(usize),
}

/// A builtin options table written for an op: its union type and offset.
pub type TfliteOptions = (fb::BuiltinOptions, Option<WIPOffset<UnionWIPOffset>>);

/// One operator as the TFLite reader finds it.
pub struct TfliteOperator<'a> {
    pub code: fb::BuiltinOperator,
    pub op: &'a fb::Operator<'a>,
    pub custom_code: Option<&'a str>,
    pub custom_options: Option<&'a [u8]>,
}

/// Everything qdbg knows about the ops of one family.
pub trait OpFamily {
    /// The op this family reads from a TFLite operator, `None` when the operator is not
    /// one of its ops. Missing options tables take TFLite's defaults, as LiteRT does.
    fn read_tflite(operator: &TfliteOperator) -> Option<Result<Op, String>>;
    /// The TFLite builtin code the op is written with (CUSTOM for custom ops, whose custom
    /// code is [`Op::name`]); `None` for an op no TFLite file can hold.
    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator>;
    /// The op's builtin options table, as TensorFlow's converter writes it.
    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String>;
    /// The operator version the op needs, by the converter's rules
    /// (`GetBuiltinOperatorVersion`): each LiteRT kernel registers exactly the versions
    /// it implements, so a version too low runs the wrong code path or is refused.
    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32;
    fn param_rule(op: &Op) -> ParamRule;
    fn weight_slots(op: &Op) -> Option<WeightSlots>;
    fn int8_support(op: &Op) -> Int8Support;
    /// Float semantics (also integer data-movement: see [`Int8Support::MovesValues`]).
    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>>;
    /// int8 semantics, bit-exact with LiteRT's builtin kernels; only called for ops whose
    /// [`OpFamily::int8_support`] is [`Int8Support::Kernel`] or
    /// [`Int8Support::KernelMovingValues`].
    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>>;
    /// Whether qdbg runs the op in 16x8 (int16 activations, int8 weights, int64 biases),
    /// bit-exact with LiteRT's 16x8 kernel: the quantizer only gives int16 to such ops.
    fn has_int16_kernel(_op: &Op) -> bool {
        false
    }
    /// 16x8 semantics, bit-exact with LiteRT's builtin kernels; called for quantized
    /// nodes whose output is int16.
    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        super::op_bail!(
            "{} on int16 tensors (16x8) has no 16x8 kernel in qdbg yet; keep the op float \
             or int8",
            ctx.node.op.name()
        )
    }
    /// The node's weights re-laid-out once, when the executor is built, for the kernel
    /// that will run it (`arithmetic` and the node's tensor types pick it); `None` for
    /// ops that read their inputs as they are, which is most of them.
    fn prepare(
        _graph: &Graph,
        _node: &Node,
        _constant: &dyn Fn(TensorId) -> Option<CTensor>,
        _arithmetic: Arithmetic,
    ) -> OpResult<Option<Prepared>> {
        Ok(None)
    }
}

macro_rules! families {
    ($($family:ident => $module:ident :: $ty:ident,)*) => {
        /// The op families, one module each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Family {
            $($family,)*
        }

        // One forwarding method per [`OpFamily`] method, to the family's implementation.
        impl Family {
            pub const ALL: &'static [Family] = &[$(Family::$family,)*];

            fn read_tflite(self, operator: &TfliteOperator) -> Option<Result<Op, String>> {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::read_tflite(operator),)*
                }
            }

            fn tflite_code(self, op: &Op) -> Option<fb::BuiltinOperator> {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::tflite_code(op),)*
                }
            }

            fn write_tflite_options(
                self,
                fbb: &mut FlatBufferBuilder<'_>,
                graph: &Graph,
                node: &Node,
            ) -> Result<TfliteOptions, String> {
                match self {
                    $(Family::$family => {
                        <super::$module::$ty as OpFamily>::write_tflite_options(fbb, graph, node)
                    })*
                }
            }

            fn tflite_version(self, v: &OpVersionCtx, op: &Op) -> i32 {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::tflite_version(v, op),)*
                }
            }

            fn param_rule(self, op: &Op) -> ParamRule {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::param_rule(op),)*
                }
            }

            fn weight_slots(self, op: &Op) -> Option<WeightSlots> {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::weight_slots(op),)*
                }
            }

            fn int8_support(self, op: &Op) -> Int8Support {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::int8_support(op),)*
                }
            }

            fn eval_float(self, ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::eval_float(ctx),)*
                }
            }

            fn eval_int8(self, ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::eval_int8(ctx),)*
                }
            }

            fn has_int16_kernel(self, op: &Op) -> bool {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::has_int16_kernel(op),)*
                }
            }

            fn eval_int16(self, ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
                match self {
                    $(Family::$family => <super::$module::$ty as OpFamily>::eval_int16(ctx),)*
                }
            }

            fn prepare(
                self,
                graph: &Graph,
                node: &Node,
                constant: &dyn Fn(TensorId) -> Option<CTensor>,
                arithmetic: Arithmetic,
            ) -> OpResult<Option<Prepared>> {
                match self {
                    $(Family::$family => {
                        <super::$module::$ty as OpFamily>::prepare(graph, node, constant, arithmetic)
                    })*
                }
            }
        }
    };
}

families! {
    Conv => conv::Conv,
    Depthwise => depthwise::Depthwise,
    Dense => dense::Dense,
    Binary => binary::Binary,
    Activation => activation::Activation,
    Reduce => reduce::Reduce,
    Pool => pool::Pool,
    Layout => layout::Layout,
    Slicing => slicing::Slicing,
    Resize => resize::Resize,
    Quantize => quantize::QuantizeBoundary,
    Custom => custom::Custom,
}

impl Family {
    /// The family an op belongs to.
    pub fn of(op: &Op) -> Family {
        match op {
            Op::Conv2d(_) | Op::TransposeConv(_) => Family::Conv,
            Op::DepthwiseConv2d(_) => Family::Depthwise,
            Op::FullyConnected(_) | Op::BatchMatMul { .. } => Family::Dense,
            Op::Binary { .. } | Op::Pow => Family::Binary,
            Op::Unary(_) | Op::Prelu | Op::Softmax { .. } => Family::Activation,
            Op::Reduce { .. } => Family::Reduce,
            Op::Pool2d { .. } => Family::Pool,
            Op::Reshape
            | Op::Squeeze { .. }
            | Op::ExpandDims
            | Op::Transpose
            | Op::Concatenation { .. }
            | Op::Pad
            | Op::PadV2
            | Op::DepthToSpace { .. }
            | Op::SpaceToDepth { .. } => Family::Layout,
            Op::Split { .. } | Op::Slice | Op::StridedSlice(_) | Op::Gather { .. } => {
                Family::Slicing
            }
            Op::ResizeBilinear(_) | Op::ResizeNearestNeighbor(_) => Family::Resize,
            Op::Quantize | Op::Dequantize => Family::Quantize,
            Op::Convolution2DTransposeBias(_)
            | Op::MaxPoolingWithArgmax2D(_)
            | Op::MaxUnpooling2D(_)
            | Op::Unsupported { .. } => Family::Custom,
        }
    }
}

/// The op a TFLite operator holds; an [`Op::Unsupported`] named after its builtin (or
/// custom code) when no family reads it.
pub fn read_tflite(operator: &TfliteOperator) -> Result<Op, String> {
    for &family in Family::ALL {
        if let Some(op) = family.read_tflite(operator) {
            return op;
        }
    }
    Ok(Op::Unsupported {
        name: crate::tflite::builtin_name(operator.code),
    })
}

/// The builtin code `op` is written with; `None` for ops no TFLite file can hold.
pub fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
    Family::of(op).tflite_code(op)
}

pub fn write_tflite_options(
    fbb: &mut FlatBufferBuilder<'_>,
    graph: &Graph,
    node: &Node,
) -> Result<TfliteOptions, String> {
    Family::of(&node.op).write_tflite_options(fbb, graph, node)
}

pub fn tflite_version(graph: &Graph, node: &Node) -> i32 {
    let ctx = OpVersionCtx::new(graph, node);
    Family::of(&node.op).tflite_version(&ctx, &node.op)
}

/// The op's quantization-parameter rule.
pub fn param_rule(op: &Op) -> ParamRule {
    Family::of(op).param_rule(op)
}

/// The op's weight inputs, if it has any the quantizer treats specially.
pub fn weight_slots(op: &Op) -> Option<WeightSlots> {
    Family::of(op).weight_slots(op)
}

pub fn int8_support(op: &Op) -> Int8Support {
    Family::of(op).int8_support(op)
}

/// Whether qdbg can run `op` on int8 tensors (so the quantizer may quantize it).
pub fn has_int8_kernel(op: &Op) -> bool {
    matches!(
        int8_support(op),
        Int8Support::Kernel | Int8Support::KernelMovingValues | Int8Support::MovesValues
    )
}

/// Whether qdbg can run `op` in 16x8 (so the quantizer may give it int16 activations).
pub fn has_int16_kernel(op: &Op) -> bool {
    Family::of(op).has_int16_kernel(op)
}

pub(super) fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
    Family::of(&ctx.node.op).eval_int16(ctx)
}

pub(super) fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
    Family::of(&ctx.node.op).eval_float(ctx)
}

pub(super) fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
    Family::of(&ctx.node.op).eval_int8(ctx)
}

/// The node's weights re-laid-out for its kernel, once per executor.
pub(super) fn prepare(
    graph: &Graph,
    node: &Node,
    constant: &dyn Fn(TensorId) -> Option<CTensor>,
    arithmetic: Arithmetic,
) -> OpResult<Option<Prepared>> {
    Family::of(&node.op).prepare(graph, node, constant, arithmetic)
}

/// The error a family returns when asked about an op of another family: the registry
/// never does that, so it means [`Family::of`] and a family's arms disagree.
pub(super) fn not_in_family(family: &str, op: &Op) -> super::OpError {
    super::OpError::Internal(format!(
        "{} was routed to the {family} family, which does not know it",
        op.name()
    ))
}
