//! MEAN, SUM and REDUCE_MAX over constant axes.

use candle_core::Tensor as CTensor;

use super::{normalize_axis, EvalCtx, OpResult};
use crate::graph::ReduceKind;

pub fn reduce(ctx: &EvalCtx, kind: ReduceKind) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let rank = input.rank();
    let mut axes = ctx
        .const_ints(1)?
        .into_iter()
        .map(|a| normalize_axis(a, rank))
        .collect::<OpResult<Vec<_>>>()?;
    axes.sort_unstable();
    axes.dedup();
    let out = match kind {
        ReduceKind::Mean => input.mean_keepdim(axes)?,
        ReduceKind::Sum => input.sum_keepdim(axes)?,
        ReduceKind::Max => {
            let mut x = input.clone();
            for axis in axes {
                x = x.max_keepdim(axis)?;
            }
            x
        }
    };
    // keep_dims only changes the shape, which the model declares.
    Ok(out.reshape(ctx.output_shape(0)?)?)
}
