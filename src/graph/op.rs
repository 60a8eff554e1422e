//! Operations and their attributes.
//!
//! Op names are TFLite's builtin names (`CONV_2D`): they are what TensorFlow's
//! debugger prints in its CSV and what users type in denylists.

use serde::Serialize;

/// Activation fused into the op that produces a tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum FusedActivation {
    #[default]
    None,
    Relu,
    ReluN1To1,
    Relu6,
    Tanh,
    SignBit,
}

/// How spatial ops pad: TFLite's SAME puts the odd pixel at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Padding {
    Same,
    Valid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Conv2dAttrs {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub activation: FusedActivation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DepthwiseConv2dAttrs {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub depth_multiplier: usize,
    pub activation: FusedActivation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TransposeConvAttrs {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub activation: FusedActivation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FullyConnectedAttrs {
    pub activation: FusedActivation,
    pub keep_num_dims: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Pool2dAttrs {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub filter_h: usize,
    pub filter_w: usize,
    pub activation: FusedActivation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StridedSliceAttrs {
    pub begin_mask: i32,
    pub end_mask: i32,
    pub ellipsis_mask: i32,
    pub new_axis_mask: i32,
    pub shrink_axis_mask: i32,
    pub offset: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ResizeAttrs {
    pub align_corners: bool,
    pub half_pixel_centers: bool,
}

/// Options of MediaPipe's `Convolution2DTransposeBias`: TFLite's
/// `TfLiteTransposeConvParams` stored as raw bytes in `custom_options`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransposeConvBiasAttrs {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    /// The op's `custom_options` as read, written back unchanged: the runtimes read
    /// them as a C struct, so qdbg never re-encodes them.
    #[serde(skip)]
    pub custom_options: Vec<u8>,
}

/// Options of MediaPipe's `MaxPoolingWithArgmax2D` and `MaxUnpooling2D`: TFLite's
/// `TfLitePoolParams` stored as raw bytes in `custom_options`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgmaxPoolAttrs {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub filter_h: usize,
    pub filter_w: usize,
    /// `FusedActivation::None` when the options end before the activation field.
    pub activation: FusedActivation,
    /// As in [`TransposeConvBiasAttrs::custom_options`].
    #[serde(skip)]
    pub custom_options: Vec<u8>,
}

/// Two-input element-wise ops with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
    SquaredDifference,
    Maximum,
    Minimum,
}

impl BinaryKind {
    /// The TFLite op's name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "ADD",
            BinaryKind::Sub => "SUB",
            BinaryKind::Mul => "MUL",
            BinaryKind::Div => "DIV",
            BinaryKind::SquaredDifference => "SQUARED_DIFFERENCE",
            BinaryKind::Maximum => "MAXIMUM",
            BinaryKind::Minimum => "MINIMUM",
        }
    }
}

/// One-input element-wise ops.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum UnaryKind {
    Rsqrt,
    Sqrt,
    Relu,
    Relu6,
    ReluN1To1,
    Logistic,
    Tanh,
    HardSwish,
    Gelu { approximate: bool },
    LeakyRelu { alpha: f32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReduceKind {
    Mean,
    Sum,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PoolKind {
    Average,
    Max,
}

/// An operation with its attributes. Inputs that TFLite passes as constant tensors
/// (shapes, axes, paddings, begin/end) stay tensors; executors read them from the graph.
///
/// [`OpKind`] is its fieldless twin (one value per variant, iterable), which lets a
/// table-driven test visit every op the registry (`ops::family`) must answer for.
#[derive(Clone, Debug, PartialEq, Serialize, strum::EnumDiscriminants)]
#[strum_discriminants(name(OpKind), derive(strum::EnumIter))]
pub enum Op {
    Conv2d(Conv2dAttrs),
    DepthwiseConv2d(DepthwiseConv2dAttrs),
    TransposeConv(TransposeConvAttrs),
    FullyConnected(FullyConnectedAttrs),
    BatchMatMul {
        adj_x: bool,
        adj_y: bool,
    },
    Binary {
        kind: BinaryKind,
        activation: FusedActivation,
    },
    /// Element-wise `x ** y` with numpy broadcasting. Kept apart from [`Op::Binary`]: it has
    /// no fused activation, and LiteRT runs it in float32 and int32 only (no int8 kernel),
    /// so quantized models keep it float.
    Pow,
    Unary(UnaryKind),
    Prelu,
    Reduce {
        kind: ReduceKind,
        keep_dims: bool,
    },
    Pool2d {
        kind: PoolKind,
        attrs: Pool2dAttrs,
    },
    Softmax {
        beta: f32,
    },
    Reshape,
    Squeeze {
        axes: Vec<i32>,
    },
    ExpandDims,
    Transpose,
    Concatenation {
        axis: i32,
        activation: FusedActivation,
    },
    Split {
        num_splits: usize,
    },
    Slice,
    StridedSlice(StridedSliceAttrs),
    Gather {
        axis: i32,
        batch_dims: i32,
    },
    Pad,
    PadV2,
    ResizeBilinear(ResizeAttrs),
    ResizeNearestNeighbor(ResizeAttrs),
    DepthToSpace {
        block_size: usize,
    },
    SpaceToDepth {
        block_size: usize,
    },
    Quantize,
    Dequantize,
    /// MediaPipe's custom ops, which LiteRT's default CPU runtime runs (its XNNPACK
    /// delegate claims them): float only, so quantized models keep them float.
    /// TRANSPOSE_CONV with a bias, inputs (input, filter OHWI, bias), output size
    /// from the model.
    Convolution2DTransposeBias(TransposeConvBiasAttrs),
    /// Max pooling that also outputs where each maximum was (a float32 tensor holding
    /// the window-relative index's bits, as LiteRT's runtime writes it).
    MaxPoolingWithArgmax2D(ArgmaxPoolAttrs),
    /// Scatters each value to the position an argmax index names; zeros elsewhere.
    MaxUnpooling2D(ArgmaxPoolAttrs),
    /// An op the reader knows by name but qdbg cannot run yet.
    Unsupported {
        name: String,
    },
}

impl Op {
    /// TFLite's builtin name for the op.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "CONV_2D",
            Op::DepthwiseConv2d(_) => "DEPTHWISE_CONV_2D",
            Op::TransposeConv(_) => "TRANSPOSE_CONV",
            Op::FullyConnected(_) => "FULLY_CONNECTED",
            Op::BatchMatMul { .. } => "BATCH_MATMUL",
            Op::Binary { kind, .. } => kind.name(),
            Op::Pow => "POW",
            Op::Unary(kind) => match kind {
                UnaryKind::Rsqrt => "RSQRT",
                UnaryKind::Sqrt => "SQRT",
                UnaryKind::Relu => "RELU",
                UnaryKind::Relu6 => "RELU6",
                UnaryKind::ReluN1To1 => "RELU_N1_TO_1",
                UnaryKind::Logistic => "LOGISTIC",
                UnaryKind::Tanh => "TANH",
                UnaryKind::HardSwish => "HARD_SWISH",
                UnaryKind::Gelu { .. } => "GELU",
                UnaryKind::LeakyRelu { .. } => "LEAKY_RELU",
            },
            Op::Prelu => "PRELU",
            Op::Reduce { kind, .. } => match kind {
                ReduceKind::Mean => "MEAN",
                ReduceKind::Sum => "SUM",
                ReduceKind::Max => "REDUCE_MAX",
            },
            Op::Pool2d { kind, .. } => match kind {
                PoolKind::Average => "AVERAGE_POOL_2D",
                PoolKind::Max => "MAX_POOL_2D",
            },
            Op::Softmax { .. } => "SOFTMAX",
            Op::Reshape => "RESHAPE",
            Op::Squeeze { .. } => "SQUEEZE",
            Op::ExpandDims => "EXPAND_DIMS",
            Op::Transpose => "TRANSPOSE",
            Op::Concatenation { .. } => "CONCATENATION",
            Op::Split { .. } => "SPLIT",
            Op::Slice => "SLICE",
            Op::StridedSlice(_) => "STRIDED_SLICE",
            Op::Gather { .. } => "GATHER",
            Op::Pad => "PAD",
            Op::PadV2 => "PADV2",
            Op::ResizeBilinear(_) => "RESIZE_BILINEAR",
            Op::ResizeNearestNeighbor(_) => "RESIZE_NEAREST_NEIGHBOR",
            Op::DepthToSpace { .. } => "DEPTH_TO_SPACE",
            Op::SpaceToDepth { .. } => "SPACE_TO_DEPTH",
            Op::Quantize => "QUANTIZE",
            Op::Dequantize => "DEQUANTIZE",
            // Custom ops go by their custom code, which is what TFLite's tools show.
            Op::Convolution2DTransposeBias(_) => "Convolution2DTransposeBias",
            Op::MaxPoolingWithArgmax2D(_) => "MaxPoolingWithArgmax2D",
            Op::MaxUnpooling2D(_) => "MaxUnpooling2D",
            Op::Unsupported { .. } => "UNSUPPORTED",
        }
    }

    /// The raw `custom_options` of a custom op qdbg runs; `None` for builtin ops.
    pub fn custom_options(&self) -> Option<&[u8]> {
        match self {
            Op::Convolution2DTransposeBias(a) => Some(&a.custom_options),
            Op::MaxPoolingWithArgmax2D(a) | Op::MaxUnpooling2D(a) => Some(&a.custom_options),
            _ => None,
        }
    }

    /// The name to show a user: the source op's own name for unsupported ops.
    pub fn display_name(&self) -> &str {
        match self {
            Op::Unsupported { name } => name,
            other => other.name(),
        }
    }
}
