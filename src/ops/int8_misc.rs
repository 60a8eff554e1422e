//! Element-wise, pooling, reduction and activation ops on int8 tensors, through the
//! kernels in `kernels::int8`.

use candle_core::Tensor as CTensor;

use super::quantized::{from_int8, int8_values, qparams};
use super::{broadcast_shape, expect_output_shape, op_bail, EvalCtx, OpError, OpResult};
use crate::graph::{
    BinaryKind, FusedActivation, Graph, Node, Op, Pool2dAttrs, PoolKind, ReduceKind, TensorId,
    UnaryKind,
};
use crate::kernels::int8::{activation, elementwise, math, pool, reduce, softmax};

fn kernel(e: String) -> OpError {
    OpError(e)
}

pub fn binary(ctx: &EvalCtx, kind: BinaryKind, act: FusedActivation) -> OpResult<CTensor> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let shape = broadcast_shape(a.dims(), b.dims())?;
    expect_output_shape(ctx, 0, &shape)?;
    let (qa, qb) = (
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.input_id(1)?)?,
    );
    let qo = qparams(ctx, ctx.node.outputs[0])?;
    let (va, vb) = (int8_values(a)?, int8_values(b)?);
    let mut out = vec![0i8; shape.iter().product()];
    let (da, db) = (a.dims(), b.dims());
    match kind {
        BinaryKind::Add => {
            elementwise::Add::new(qa, qb, qo, act).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        BinaryKind::Sub => elementwise::Sub::new(qa, qb, qo, act).and_then(|k| {
            let in_place = k.in_place_matters() && litert_runs_in_place(ctx.graph, ctx.node);
            k.in_place(in_place).run(&va, da, &vb, db, &mut out)
        }),
        BinaryKind::Mul => elementwise::Mul::new(qa, qb, qo, act).and_then(|k| {
            k.with_arithmetic(ctx.arithmetic)
                .run(&va, da, &vb, db, &mut out)
        }),
        BinaryKind::Div => {
            math::Div::new(qa, qb, qo, act).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        BinaryKind::SquaredDifference => {
            math::SquaredDifference::new(qa, qb, qo).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        BinaryKind::Maximum | BinaryKind::Minimum => {
            if qa != qo || qb != qo {
                op_bail!(
                    "int8 {} needs equal input and output parameters",
                    ctx.node.op.name()
                );
            }
            let which = if kind == BinaryKind::Maximum {
                elementwise::MinMax::Maximum
            } else {
                elementwise::MinMax::Minimum
            };
            which.run(&va, da, &vb, db, &mut out)
        }
    }
    .map_err(kernel)?;
    from_int8(out, &shape, a)
}

/// Whether LiteRT's arena planner (`ArenaPlanner::IdentifyInPlaceTensors`, LiteRT 2.3.0)
/// gives `target`'s output the buffer of one of its inputs. Ops registered as in place:
/// ADD, SUB and MUL (either input, the data changes) and RESHAPE, SQUEEZE and EXPAND_DIMS
/// (input 0, the data unchanged). An input can be shared when it is no model input, the
/// output no model output, neither a constant, and, where the data changes, the input has
/// the output's byte size (over 4 bytes) and this op as its one reader; the first input
/// that can is taken, and the sharing is dropped when the buffer it already lives in (an
/// earlier in-place op's) has another reader. The rule is arena_planner.cc's; LiteRT's
/// tensor data pointers confirm it on SUBs sharing their first input, their second, or
/// neither (a RESHAPE, SQUEEZE or EXPAND_DIMS of a tensor with two readers shares that
/// tensor's buffer and so forbids it), and on 4 against 5 bytes; the SUB cases are the
/// models `scripts/kernel_vectors/make_sub_above_one_vectors.py` commits.
fn litert_runs_in_place(graph: &Graph, target: &Node) -> bool {
    let mut readers = vec![0usize; graph.tensors.len()];
    for &id in graph.inputs.iter().chain(&graph.outputs) {
        readers[id] += 1;
    }
    for node in &graph.nodes {
        for &id in node.inputs.iter().flatten() {
            readers[id] += 1;
        }
    }
    let bytes = |id: TensorId| {
        let t = graph.tensor(id);
        t.dtype.size_bytes().map(|b| b * t.num_elements())
    };
    // Tensor -> the tensor whose buffer it lives in.
    let mut lives_in: std::collections::HashMap<TensorId, TensorId> = Default::default();
    for node in &graph.nodes {
        let is_target = std::ptr::eq(node, target)
            || (node.source_index == target.source_index && node.outputs == target.outputs);
        let (changes_data, shareable) = match &node.op {
            Op::Binary {
                kind: BinaryKind::Add | BinaryKind::Sub | BinaryKind::Mul,
                ..
            } => (true, 2),
            Op::Reshape | Op::Squeeze { .. } | Op::ExpandDims => (false, 1),
            _ if is_target => return false,
            _ => continue,
        };
        let Some(&out) = node.outputs.first() else {
            if is_target {
                return false;
            }
            continue;
        };
        let can_share = |id: TensorId| {
            let input = graph.tensor(id);
            if changes_data {
                let same_size =
                    matches!((bytes(id), bytes(out)), (Some(a), Some(b)) if a == b && a > 4);
                if !same_size || readers[id] > 1 {
                    return false;
                }
            }
            !graph.inputs.contains(&id)
                && !graph.outputs.contains(&out)
                && !input.is_constant()
                && !graph.tensor(out).is_constant()
        };
        let chosen = node
            .inputs
            .iter()
            .take(shareable)
            .flatten()
            .copied()
            .find(|&id| can_share(id));
        let buffer = chosen
            .map(|id| lives_in.get(&id).copied().unwrap_or(id))
            .filter(|&root| !changes_data || readers[root] <= 1);
        if is_target {
            return buffer.is_some();
        }
        if let Some(root) = buffer {
            lives_in.insert(out, root);
        }
    }
    false
}

pub fn pool2d(ctx: &EvalCtx, kind: PoolKind, attrs: &Pool2dAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (n, h, w, c) = input.dims4()?;
    let k = pool::Pool2d::new(
        match kind {
            PoolKind::Average => pool::PoolKind::Average,
            PoolKind::Max => pool::PoolKind::Max,
        },
        [n, h, w, c],
        (attrs.filter_h, attrs.filter_w),
        (attrs.stride_h, attrs.stride_w),
        attrs.padding,
        attrs.activation,
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(kernel)?;
    let shape = k.output_shape();
    expect_output_shape(ctx, 0, &shape)?;
    let mut out = vec![0i8; shape.iter().product()];
    k.run(&int8_values(input)?, &mut out).map_err(kernel)?;
    from_int8(out, &shape, input)
}

pub fn reduce(ctx: &EvalCtx, kind: ReduceKind, keep_dims: bool) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let axes: Vec<i32> = ctx.const_ints(1)?.into_iter().map(|a| a as i32).collect();
    let (qi, qo) = (
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    );
    let values = int8_values(input)?;
    let dims = input.dims();
    let (shape, out) = match kind {
        ReduceKind::Mean => {
            let k = reduce::Mean::new(dims, &axes, keep_dims, qi, qo)
                .map_err(kernel)?
                .with_arithmetic(ctx.arithmetic);
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(kernel)?;
            (k.output_shape().to_vec(), out)
        }
        ReduceKind::Sum => {
            let k = reduce::Sum::new(dims, &axes, keep_dims, qi, qo).map_err(kernel)?;
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(kernel)?;
            (k.output_shape().to_vec(), out)
        }
        ReduceKind::Max => {
            let k = reduce::ReduceMax::new(dims, &axes, keep_dims, qi, qo).map_err(kernel)?;
            let mut out = vec![0i8; k.output_shape().iter().product()];
            k.run(&values, &mut out).map_err(kernel)?;
            (k.output_shape().to_vec(), out)
        }
    };
    expect_output_shape(ctx, 0, &shape)?;
    from_int8(out, ctx.output_shape(0)?, input)
}

pub fn softmax(ctx: &EvalCtx, beta: f32) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let depth = input.dims().last().copied().unwrap_or(1);
    let k = softmax::Softmax::new(
        beta,
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(kernel)?;
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    k.run(&values, depth, &mut out).map_err(kernel)?;
    from_int8(out, input.dims(), input)
}

pub fn unary(ctx: &EvalCtx, kind: UnaryKind) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (qi, qo) = (
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    );
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    match kind {
        UnaryKind::Logistic => {
            activation::Lut::logistic(qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::Tanh => activation::Lut::tanh(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::HardSwish => {
            activation::HardSwish::new(qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::Relu | UnaryKind::Relu6 | UnaryKind::ReluN1To1 => {
            let relu = match kind {
                UnaryKind::Relu => activation::ReluKind::Relu,
                UnaryKind::Relu6 => activation::ReluKind::Relu6,
                _ => activation::ReluKind::ReluN1To1,
            };
            activation::Relu::new(relu, qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::Rsqrt => math::Rsqrt::new(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::Sqrt => math::Sqrt::new(qi, qo).and_then(|k| k.run(&values, &mut out)),
        UnaryKind::Gelu { approximate } => {
            math::Gelu::new(approximate, qi, qo).and_then(|k| k.run(&values, &mut out))
        }
        UnaryKind::LeakyRelu { alpha } => activation::LeakyRelu::new(alpha, qi, qo)
            .and_then(|k| k.with_arithmetic(ctx.arithmetic).run(&values, &mut out)),
    }
    .map_err(kernel)?;
    from_int8(out, input.dims(), input)
}

/// QUANTIZE from int8 to int8: LiteRT's requantization (vector blocks and scalar tail
/// round ties differently; the kernel models both).
pub fn requantize(ctx: &EvalCtx) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let k = activation::Requantize::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(kernel)?;
    let values = int8_values(input)?;
    let mut out = vec![0i8; values.len()];
    k.run(&values, &mut out).map_err(kernel)?;
    from_int8(out, input.dims(), input)
}

/// PRELU on int8: alpha is a constant int8 tensor broadcast against the input.
pub fn prelu(ctx: &EvalCtx) -> OpResult<CTensor> {
    let (x, alpha) = (ctx.input(0)?, ctx.input(1)?);
    expect_output_shape(ctx, 0, x.dims())?;
    let k = math::Prelu::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.input_id(1)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
    )
    .map_err(kernel)?;
    let values = int8_values(x)?;
    let mut out = vec![0i8; values.len()];
    k.run(
        &values,
        x.dims(),
        &int8_values(alpha)?,
        alpha.dims(),
        &mut out,
    )
    .map_err(kernel)?;
    from_int8(out, x.dims(), x)
}
