//! Ops that move data without arithmetic: RESHAPE / SQUEEZE / EXPAND_DIMS, TRANSPOSE,
//! CONCATENATION, PAD / PADV2, DEPTH_TO_SPACE, SPACE_TO_DEPTH.

use candle_core::Tensor as CTensor;

use super::{
    activation::apply_fused, expect_output_shape, normalize_axis, op_bail, EvalCtx, OpResult,
};
use crate::graph::FusedActivation;

/// RESHAPE, SQUEEZE and EXPAND_DIMS all end in the shape the model declares.
pub fn reshape(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let shape = ctx.output_shape(0)?;
    if shape.iter().product::<usize>() != input.elem_count() {
        op_bail!(
            "cannot reshape {:?} ({} elements) to the declared {shape:?}",
            input.dims(),
            input.elem_count()
        );
    }
    Ok(input.reshape(shape)?)
}

pub fn transpose(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let rank = input.rank();
    let perm = ctx
        .const_ints(1)?
        .into_iter()
        .map(|a| normalize_axis(a, rank))
        .collect::<OpResult<Vec<_>>>()?;
    let mut seen = perm.clone();
    seen.sort_unstable();
    if seen != (0..rank).collect::<Vec<_>>() {
        op_bail!("perm {perm:?} is not a permutation of 0..{rank}");
    }
    Ok(input.permute(perm)?.contiguous()?)
}

pub fn concatenation(ctx: &EvalCtx, axis: i32, activation: FusedActivation) -> OpResult<CTensor> {
    let parts = (0..ctx.node.inputs.len())
        .map(|i| ctx.input(i))
        .collect::<OpResult<Vec<_>>>()?;
    let Some(first) = parts.first() else {
        op_bail!("CONCATENATION needs at least one input");
    };
    let axis = normalize_axis(axis as i64, first.rank())?;
    apply_fused(CTensor::cat(&parts, axis)?, activation)
}

/// PAD pads with zeros, PADV2 with its third input (a scalar).
pub fn pad(ctx: &EvalCtx) -> OpResult<CTensor> {
    let value = if ctx.has_input(2) {
        ctx.input(2)?
            .flatten_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_vec1::<f64>()?
            .first()
            .copied()
            .unwrap_or(0.0)
    } else {
        0.0
    };
    pad_with(ctx, value)
}

/// Pads input 0 by the paddings of input 1 with `value`.
pub fn pad_with(ctx: &EvalCtx, value: f64) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let paddings = ctx.const_ints(1)?;
    let rank = input.rank();
    if paddings.len() != rank * 2 || paddings.iter().any(|&p| !(0..1 << 24).contains(&p)) {
        op_bail!("paddings {paddings:?} must be {rank}x2 non-negative numbers");
    }
    let padded: Vec<usize> = (0..rank)
        .map(|d| input.dims()[d] + paddings[2 * d] as usize + paddings[2 * d + 1] as usize)
        .collect();
    expect_output_shape(ctx, 0, &padded)?;
    let mut x = input.clone();
    for dim in 0..rank {
        let (before, after) = (paddings[2 * dim] as usize, paddings[2 * dim + 1] as usize);
        x = pad_dim(&x, dim, before, after, value)?;
    }
    Ok(x)
}

fn pad_dim(x: &CTensor, dim: usize, before: usize, after: usize, value: f64) -> OpResult<CTensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    if value == 0.0 {
        return Ok(x.pad_with_zeros(dim, before, after)?);
    }
    let block = |n: usize| -> OpResult<CTensor> {
        let mut shape = x.dims().to_vec();
        shape[dim] = n;
        Ok((CTensor::ones(shape, x.dtype(), x.device())? * value)?)
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(block(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(block(after)?);
    }
    Ok(CTensor::cat(&parts, dim)?)
}

/// Output pixel `(h*b + i, w*b + j)` channel `c` reads input channel `(i*b + j)*C' + c`.
pub fn depth_to_space(ctx: &EvalCtx, block: usize) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (n, h, w, c) = input.dims4()?;
    if block == 0 || c % (block * block) != 0 {
        op_bail!("{c} channels cannot be split into {block}x{block} blocks");
    }
    let c_out = c / (block * block);
    Ok(input
        .reshape(vec![n, h, w, block, block, c_out])?
        .permute(vec![0, 1, 3, 2, 4, 5])?
        .reshape((n, h * block, w * block, c_out))?)
}

pub fn space_to_depth(ctx: &EvalCtx, block: usize) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (n, h, w, c) = input.dims4()?;
    if block == 0 || h % block != 0 || w % block != 0 {
        op_bail!("{h}x{w} is not divisible into {block}x{block} blocks");
    }
    Ok(input
        .reshape(vec![n, h / block, block, w / block, block, c])?
        .permute(vec![0, 1, 3, 2, 4, 5])?
        .reshape((n, h / block, w / block, block * block * c))?)
}
