//! Ops that pick parts of a tensor: SPLIT, SLICE, STRIDED_SLICE, GATHER.

use candle_core::{DType as CDType, Tensor as CTensor};

use super::{normalize_axis, op_bail, EvalCtx, OpResult};
use crate::graph::StridedSliceAttrs;

/// SPLIT: input 0 is the axis, input 1 the value.
pub fn split(ctx: &EvalCtx, num_splits: usize) -> OpResult<Vec<CTensor>> {
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
pub fn slice(ctx: &EvalCtx) -> OpResult<CTensor> {
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
pub fn strided_slice(ctx: &EvalCtx, attrs: &StridedSliceAttrs) -> OpResult<CTensor> {
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
pub fn gather(ctx: &EvalCtx, axis: i32, batch_dims: i32) -> OpResult<CTensor> {
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
