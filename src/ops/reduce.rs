//! MEAN, SUM and REDUCE_MAX over constant axes.

use candle_core::Tensor as CTensor;

use super::{normalize_axis, EvalCtx, OpResult};
use crate::graph::ReduceKind;
use crate::kernels::reduce_f32::{reduce_middle, Reduction};
use crate::kernels::run_on_host;

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
    let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
    if contiguous && !axes.is_empty() && input.dtype() == candle_core::DType::F32 {
        // One pass over contiguous memory instead of candle's strided reduction.
        let dims = input.dims();
        let (first, last) = (axes[0], axes[axes.len() - 1]);
        let outer: usize = dims[..first].iter().product();
        let reduced: usize = dims[first..=last].iter().product();
        let inner: usize = dims[last + 1..].iter().product();
        let reduction = match kind {
            ReduceKind::Mean => Reduction::Mean,
            ReduceKind::Sum => Reduction::Sum,
            ReduceKind::Max => Reduction::Max,
        };
        let out_shape = ctx.output_shape(0)?.to_vec();
        if out_shape.iter().product::<usize>() != outer * inner {
            super::op_bail!(
                "the declared output {out_shape:?} does not fit reducing axes {axes:?} of {dims:?}"
            );
        }
        return Ok(run_on_host("reduce", input, &out_shape, |x, y| {
            reduce_middle(reduction, x, outer, reduced, inner, y)
        })?);
    }
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
