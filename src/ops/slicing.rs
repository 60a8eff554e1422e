//! Ops that pick parts of a tensor: SPLIT, SLICE, STRIDED_SLICE, GATHER.

use candle_core::{DType as CDType, Tensor as CTensor};
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::{normalize_axis, op_bail, EvalCtx, OpResult};
use crate::graph::{DType, Graph, Node, Op, StridedSliceAttrs};
use crate::tflite::codec::{read_positive, write_int, OpVersionCtx};
use crate::tflite::fb;

pub struct Slicing;

impl OpFamily for Slicing {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        let op = o.op;
        let read = || -> Result<Option<Op>, String> {
            Ok(Some(match o.code {
                B::SPLIT => Op::Split {
                    num_splits: read_positive(
                        op.builtin_options_as_split_options()
                            .map_or(1, |o| o.num_splits()),
                        "num_splits",
                    )?,
                },
                B::SLICE => Op::Slice,
                B::STRIDED_SLICE => {
                    let o = op.builtin_options_as_strided_slice_options();
                    Op::StridedSlice(StridedSliceAttrs {
                        begin_mask: o.map_or(0, |o| o.begin_mask()),
                        end_mask: o.map_or(0, |o| o.end_mask()),
                        ellipsis_mask: o.map_or(0, |o| o.ellipsis_mask()),
                        new_axis_mask: o.map_or(0, |o| o.new_axis_mask()),
                        shrink_axis_mask: o.map_or(0, |o| o.shrink_axis_mask()),
                        offset: o.is_some_and(|o| o.offset()),
                    })
                }
                B::GATHER => {
                    let o = op.builtin_options_as_gather_options();
                    Op::Gather {
                        axis: o.map_or(0, |o| o.axis()),
                        batch_dims: o.map_or(0, |o| o.batch_dims()),
                    }
                }
                _ => return Ok(None),
            }))
        };
        read().transpose()
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        use fb::BuiltinOperator as B;
        Some(match op {
            Op::Split { .. } => B::SPLIT,
            Op::Slice => B::SLICE,
            Op::StridedSlice(_) => B::STRIDED_SLICE,
            Op::Gather { .. } => B::GATHER,
            _ => return None,
        })
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        use fb::BuiltinOptions as O;
        Ok(match &node.op {
            Op::Split { num_splits } => (
                O::SplitOptions,
                Some(
                    fb::SplitOptions::create(
                        fbb,
                        &fb::SplitOptionsArgs {
                            num_splits: write_int(*num_splits, "num_splits")?,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            Op::Slice => (O::NONE, None),
            Op::StridedSlice(a) => (
                O::StridedSliceOptions,
                Some(
                    fb::StridedSliceOptions::create(
                        fbb,
                        &fb::StridedSliceOptionsArgs {
                            begin_mask: a.begin_mask,
                            end_mask: a.end_mask,
                            ellipsis_mask: a.ellipsis_mask,
                            new_axis_mask: a.new_axis_mask,
                            shrink_axis_mask: a.shrink_axis_mask,
                            offset: a.offset,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            Op::Gather { axis, batch_dims } => (
                O::GatherOptions,
                Some(
                    fb::GatherOptions::create(
                        fbb,
                        &fb::GatherOptionsArgs {
                            axis: *axis,
                            batch_dims: *batch_dims,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            other => return Err(not_in_family("slicing", other).to_string()),
        })
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use DType::*;
        let first = OpVersionCtx::first;
        match op {
            // The data is input 1; input 0 is the axis.
            Op::Split { .. } => first(&[(v.is(1, I16), 4), (v.is(1, I32), 3), (v.is(1, I8), 2)]),
            Op::Slice => first(&[
                (v.is(0, U32), 6),
                (v.dims(0) > 4, 5),
                (v.is(0, I16), 4),
                (v.is(0, String), 3),
                (v.is(0, I8), 2),
            ]),
            Op::StridedSlice(a) => first(&[
                (a.offset, 8),
                (v.is(0, U32), 7),
                (a.ellipsis_mask != 0 || a.new_axis_mask != 0, 6),
                (v.is(0, String), 5),
                (v.dims(0) > 4, 4),
                (v.is(0, Bool), 3),
                (v.is(0, I8), 2),
            ]),
            Op::Gather { batch_dims, .. } => first(&[
                (v.is(1, I16), 6),
                (*batch_dims != 0, 5),
                (v.is(0, I16), 4),
                (v.is(0, Bool), 3),
                (v.is(0, I8), 2),
            ]),
            _ => 1,
        }
    }

    fn param_rule(_op: &Op) -> ParamRule {
        ParamRule::SameScale
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        None
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::MovesValues
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(match &ctx.node.op {
            Op::Split { num_splits } => split(ctx, *num_splits)?,
            Op::Slice => vec![slice(ctx)?],
            Op::StridedSlice(attrs) => vec![strided_slice(ctx, attrs)?],
            Op::Gather { axis, batch_dims } => vec![gather(ctx, *axis, *batch_dims)?],
            other => return Err(not_in_family("slicing", other)),
        })
    }

    fn has_int16_kernel(_op: &Op) -> bool {
        // They move codes: the float path runs them on int16 values as on any integers,
        // and LiteRT's 16x8 kernels keep the input's quantization
        // (`tests/int16_kernels.rs`).
        true
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Err(not_in_family("slicing (int8)", &ctx.node.op))
    }
}

/// SPLIT: input 0 is the axis, input 1 the value.
fn split(ctx: &EvalCtx, num_splits: usize) -> OpResult<Vec<CTensor>> {
    let value = ctx.input(1)?;
    let Some(&axis) = ctx.const_ints(0)?.first() else {
        op_bail!("axis input is empty");
    };
    let axis = normalize_axis(axis, value.rank())?;
    let size = value.dim(axis)?;
    if num_splits == 0 || size % num_splits != 0 {
        op_bail!("dimension {axis} of size {size} cannot be split into {num_splits} equal parts");
    }
    let part = size / num_splits;
    (0..num_splits)
        .map(|i| Ok(value.narrow(axis, i * part, part)?))
        .collect()
}

/// SLICE: `begin` and `size` per dimension; size -1 means "to the end".
fn slice(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let begin = ctx.const_ints(1)?;
    let size = ctx.const_ints(2)?;
    if begin.len() != input.rank() || size.len() != input.rank() {
        op_bail!("begin {begin:?} and size {size:?} must have one entry per dimension");
    }
    let mut x = input.clone();
    for (dim, (&b, &s)) in begin.iter().zip(&size).enumerate() {
        let n = input.dim(dim)? as i64;
        let len = if s < 0 { n - b } else { s };
        if b < 0 || len < 0 || b + len > n {
            op_bail!("slice [{b}, {b}+{len}) is outside dimension {dim} of size {n}");
        }
        x = x.narrow(dim, b as usize, len as usize)?;
    }
    Ok(x)
}

/// STRIDED_SLICE with TensorFlow's mask semantics (begin, end, shrink-axis, offset).
fn strided_slice(ctx: &EvalCtx, attrs: &StridedSliceAttrs) -> OpResult<CTensor> {
    if attrs.ellipsis_mask != 0 || attrs.new_axis_mask != 0 {
        op_bail!("ellipsis_mask and new_axis_mask are not supported; reshape the model instead");
    }
    let input = ctx.input(0)?;
    let begin = ctx.const_ints(1)?;
    let end = ctx.const_ints(2)?;
    let strides = ctx.const_ints(3)?;
    let rank = input.rank();
    if begin.len() > rank || end.len() != begin.len() || strides.len() != begin.len() {
        op_bail!("begin/end/strides {begin:?}/{end:?}/{strides:?} do not fit rank {rank}");
    }
    // candle's index_select reads only contiguous storage; a SLICE or SPLIT output is a
    // strided view of its input (g40112: a STRIDED_SLICE of a SLICE).
    let mut x = input.contiguous()?;
    for dim in 0..begin.len() {
        let n = input.dim(dim)? as i64;
        let bit = |mask: i32| mask & (1 << dim) != 0;
        let stride = strides[dim];
        if stride == 0 {
            op_bail!("stride of dimension {dim} is 0");
        }
        let normalize = |v: i64| if v < 0 { v + n } else { v };
        let clamp = |v: i64| {
            if stride > 0 {
                v.clamp(0, n)
            } else {
                v.clamp(-1, n - 1)
            }
        };
        let start = if bit(attrs.begin_mask) {
            if stride > 0 {
                0
            } else {
                n - 1
            }
        } else {
            clamp(normalize(begin[dim]))
        };
        let stop = if bit(attrs.shrink_axis_mask) {
            start + 1
        } else if bit(attrs.end_mask) {
            if stride > 0 {
                n
            } else {
                -1
            }
        } else if attrs.offset {
            clamp(start + end[dim])
        } else {
            clamp(normalize(end[dim]))
        };
        let stride = if bit(attrs.shrink_axis_mask) {
            1
        } else {
            stride
        };
        let mut picked = Vec::new();
        let mut i = start;
        while (stride > 0 && i < stop) || (stride < 0 && i > stop) {
            if (0..n).contains(&i) {
                picked.push(i as u32);
            }
            i += stride;
        }
        let count = picked.len();
        let index = CTensor::from_vec(picked, count, x.device())?;
        x = x.index_select(&index, dim)?;
    }
    Ok(x.reshape(ctx.output_shape(0)?)?)
}

/// GATHER along `axis` with integer indices (checked against the axis size).
fn gather(ctx: &EvalCtx, axis: i32, batch_dims: i32) -> OpResult<CTensor> {
    if batch_dims != 0 {
        op_bail!("batch_dims {batch_dims} is not supported (only 0)");
    }
    let params = ctx.input(0)?;
    let indices = ctx.input(1)?;
    let axis = normalize_axis(axis as i64, params.rank())?;
    let size = params.dim(axis)? as i64;
    let flat = indices
        .flatten_all()?
        .to_dtype(CDType::I64)?
        .to_vec1::<i64>()?;
    if let Some(bad) = flat.iter().find(|&&i| i < 0 || i >= size) {
        op_bail!("index {bad} is out of range for axis {axis} of size {size}");
    }
    let flat: Vec<u32> = flat.into_iter().map(|i| i as u32).collect();
    let count = flat.len();
    let index = CTensor::from_vec(flat, count, params.device())?;
    // Contiguous first, as in `strided_slice` (g40272: a GATHER of a SLICE).
    Ok(params
        .contiguous()?
        .index_select(&index, axis)?
        .reshape(ctx.output_shape(0)?)?)
}
