//! Float semantics of every supported op, one op family per file (`custom`: the
//! MediaPipe custom ops LiteRT runs).
//!
//! Each family evaluates its ops on candle tensors with TFLite's semantics (NHWC layout,
//! TFLite's SAME padding, numpy broadcasting). Values of integer-typed graph tensors are
//! carried as candle `I64` (int8 ones as `U8` bit patterns, see `int8_tensor::from_int8`),
//! floats as `F32`, booleans as `U8`.

mod activation;
mod binary;
mod conv;
mod custom;
mod dense;
mod depthwise;
pub mod family;
mod int16_conv;
pub mod int16_tensor;
mod int8_conv;
pub mod int8_tensor;
mod layout;
mod pool;
mod quantize;
pub mod quantized;
mod reduce;
mod resize;
mod slicing;

pub use family::{
    has_int16_kernel, has_int8_kernel, int8_support, param_rule, weight_slots, Family, Int8Support,
    ParamRule, WeightSlots,
};
pub(crate) use quantize::round_half_away;
pub use quantize::{dequantize_int8, dequantize_values};

use candle_core::{DType as CDType, Device, Tensor as CTensor};

use crate::graph::{DType, Graph, Node, TensorData, TensorId};
pub use crate::kernels::int8::Arithmetic;

pub use crate::error::OpError;

pub type OpResult<T> = Result<T, OpError>;

macro_rules! op_bail {
    ($($arg:tt)*) => { return Err($crate::ops::OpError::Model(format!($($arg)*))) };
}
pub(crate) use op_bail;

/// Everything an op needs to run once: its node, the graph (for constant inputs and
/// static shapes) and the values of its inputs.
pub struct EvalCtx<'a> {
    pub graph: &'a Graph,
    pub node: &'a Node,
    pub inputs: &'a [Option<&'a CTensor>],
    pub device: &'a Device,
    /// Weights re-laid-out once when the executor was built (see [`prepare`]).
    pub prepared: Option<&'a Prepared>,
    /// Whose int8 arithmetic quantized ops reproduce.
    pub arithmetic: Arithmetic,
}

impl EvalCtx<'_> {
    /// Value of input `i`; an error if the model left it out.
    pub fn input(&self, i: usize) -> OpResult<&CTensor> {
        match self.inputs.get(i).copied().flatten() {
            Some(t) => Ok(t),
            None => op_bail!("input #{i} is missing"),
        }
    }

    pub fn has_input(&self, i: usize) -> bool {
        self.inputs.get(i).copied().flatten().is_some()
    }

    /// Integer contents of a constant input (axes, shapes, paddings, ...).
    pub fn const_ints(&self, i: usize) -> OpResult<Vec<i64>> {
        let Some(id) = self.node.input(i) else {
            op_bail!("input #{i} is missing")
        };
        let tensor = self.graph.tensor(id);
        match tensor.data.as_ref().and_then(TensorData::to_i64) {
            Some(v) => Ok(v),
            None => op_bail!(
                "input #{i} ('{}') must be a constant integer tensor; qdbg needs it at load time",
                tensor.name
            ),
        }
    }

    /// Static shape of output `i` as the model declares it.
    pub fn output_shape(&self, i: usize) -> OpResult<&[usize]> {
        match self.node.outputs.get(i) {
            Some(&id) => Ok(&self.graph.tensor(id).shape),
            None => op_bail!("output #{i} is missing"),
        }
    }

    pub fn output_dtype(&self, i: usize) -> OpResult<DType> {
        match self.node.outputs.get(i) {
            Some(&id) => Ok(self.graph.tensor(id).dtype),
            None => op_bail!("output #{i} is missing"),
        }
    }

    pub fn input_id(&self, i: usize) -> OpResult<TensorId> {
        match self.node.input(i) {
            Some(id) => Ok(id),
            None => op_bail!("input #{i} is missing"),
        }
    }
}

/// Weights of one node re-laid-out for the kernel that runs it, computed once per executor.
pub enum Prepared {
    /// Convolution filter as candle wants it (OIHW) and the bias.
    Conv {
        filter_oihw: CTensor,
        bias: Option<CTensor>,
    },
    /// 1x1 convolution or fully-connected weights as a `[in, out]` matrix.
    MatMul {
        weights_io: CTensor,
        bias: Option<CTensor>,
    },
    /// Depthwise filter `[kh, kw, channels]` and bias, on the host for the CPU kernel.
    Depthwise { filter: Vec<f32>, bias: Vec<f32> },
    /// A small convolution's filter as `[kh, kw, in, out]` and bias, on the host for
    /// the direct CPU kernel (`kernels::conv_f32`).
    DirectConv {
        filter_hwio: Vec<f32>,
        bias: Vec<f32>,
    },
    /// A float 1x1 convolution's filter and bias packed for the CPU kernel
    /// (`kernels::pointwise_f32`).
    Pointwise(crate::kernels::pointwise_f32::PackedPointwise),
    /// A float convolution with many output channels: its OHWI filter flattened to
    /// `[out, kh * kw * in]` and packed for the GEMM over im2col rows
    /// (`kernels::im2col_f32`).
    Im2colConv(crate::kernels::pointwise_f32::PackedPointwise),
    /// int8 CONV_2D with its filter packed for the SIMD kernels.
    Int8Conv(crate::kernels::int8::packed::PackedConv2d),
    /// int8 DEPTHWISE_CONV_2D with its filter widened for the SIMD kernels.
    Int8Depthwise(crate::kernels::int8::packed::PackedDepthwise),
    /// int8 FULLY_CONNECTED with its weights packed for the SIMD kernels.
    Int8FullyConnected(crate::kernels::int8::packed::PackedFullyConnected),
}

/// Builds the node's [`Prepared`] weights when they are constants.
pub fn prepare(
    graph: &Graph,
    node: &Node,
    constant: &dyn Fn(TensorId) -> Option<CTensor>,
    arithmetic: Arithmetic,
) -> OpResult<Option<Prepared>> {
    family::prepare(graph, node, constant, arithmetic)
}

/// Evaluates one node, returning one value per output: on its family's int8 kernel when
/// its tensors are quantized, else on its float implementation.
pub fn eval(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
    let support = int8_support(&ctx.node.op);
    if quantized::is_quantized(ctx) && quantized::is_int16(ctx) {
        if support == Int8Support::MovesValues {
            // Reshapes move int16 codes as they move any integers.
            return family::eval_float(ctx);
        }
        return family::eval_int16(ctx);
    }
    if quantized::is_quantized(ctx) {
        match support {
            Int8Support::Kernel | Int8Support::KernelMovingValues => return family::eval_int8(ctx),
            Int8Support::MovesValues | Int8Support::Boundary => {}
            Int8Support::FloatOnly => op_bail!(
                "{} on int8 tensors has no int8 kernel in qdbg yet",
                ctx.node.op.name()
            ),
        }
    }
    refuse_unquantized_8bit_arithmetic(ctx, support)?;
    family::eval_float(ctx)
}

/// 8-bit integer values reach the float implementations only when the int8 kernels did not
/// take the op (a tensor without scale or zero point, or an op with no int8 kernel). Ops
/// that only move values are still right on them; arithmetic would treat the int8 carrier's
/// bit patterns as numbers (and overflow u8), so it is refused, naming what is missing.
fn refuse_unquantized_8bit_arithmetic(ctx: &EvalCtx, support: Int8Support) -> OpResult<()> {
    if support.float_path_moves_values() {
        return Ok(());
    }
    for slot in 0..ctx.node.inputs.len() {
        if let Ok(v) = ctx.input(slot) {
            if v.dtype() == CDType::U8 {
                op_bail!(
                    "{} on 8-bit integer tensors needs quantization parameters (scale and zero \
                     point) on every input and output; input {slot} is 8-bit but a tensor of \
                     this op has none (or qdbg has no int8 kernel for it): re-export or \
                     re-quantize the model",
                    ctx.node.op.name()
                );
            }
        }
    }
    Ok(())
}

/// The candle dtype that carries values of a graph dtype.
pub fn carrier_dtype(dtype: DType) -> Option<CDType> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => Some(CDType::F32),
        DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32 | DType::U32 | DType::I64 => {
            Some(CDType::I64)
        }
        DType::Bool => Some(CDType::U8),
        DType::U64 | DType::String | DType::Unsupported(_) => None,
    }
}

/// Refuses to compute a result whose shape differs from what the model declares: the
/// declared shapes were bounded when the model was read, while shapes derived from a
/// file's constants (paddings, sizes, strides) were not, and would otherwise size an
/// allocation.
pub fn expect_output_shape(ctx: &EvalCtx, index: usize, computed: &[usize]) -> OpResult<()> {
    let declared = ctx.output_shape(index)?;
    let same_count = declared.iter().product::<usize>() == computed.iter().product::<usize>();
    let same_dims = declared
        .iter()
        .filter(|&&d| d != 1)
        .eq(computed.iter().filter(|&&d| d != 1));
    if !(same_count && same_dims) {
        op_bail!("the result would be {computed:?}, but the model declares {declared:?}");
    }
    Ok(())
}

/// Numpy broadcasting of two shapes (the int8 kernels' rule, one definition).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    crate::kernels::int8::binary::broadcast_shape(a, b).map_err(|e| OpError::Model(e.to_string()))
}

/// Converts a negative axis to its positive form, checking it is in range.
pub fn normalize_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        op_bail!("axis {axis} is out of range for a tensor of rank {rank}");
    }
    Ok(a as usize)
}

/// TFLite's padding for one spatial dimension: `(before, after, output_size)`.
/// SAME puts the extra pixel after, which makes stride-2 padding asymmetric.
pub fn spatial_padding(
    padding: crate::graph::Padding,
    input: usize,
    filter: usize,
    stride: usize,
    dilation: usize,
) -> OpResult<(usize, usize, usize)> {
    // Real models use single- or low-double-digit strides and dilations; bounding them
    // keeps a corrupt file from sizing a padded copy of the input.
    if stride == 0 || dilation == 0 || stride > 1 << 12 || dilation > 1 << 12 || filter > 1 << 12 {
        op_bail!("stride {stride}, dilation {dilation} or filter size {filter} is out of range");
    }
    let effective = (filter.max(1) - 1) * dilation + 1;
    match padding {
        crate::graph::Padding::Same => {
            let out = input.div_ceil(stride);
            let needed = ((out.max(1) - 1) * stride + effective).saturating_sub(input);
            Ok((needed / 2, needed - needed / 2, out))
        }
        crate::graph::Padding::Valid => {
            if input < effective {
                op_bail!(
                    "VALID padding: the {effective}-wide filter is larger than the input ({input})"
                );
            }
            Ok((0, 0, (input - effective) / stride + 1))
        }
    }
}
