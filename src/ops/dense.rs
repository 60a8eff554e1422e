//! FULLY_CONNECTED and BATCH_MATMUL.

use candle_core::Tensor as CTensor;
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_conv::{bias, filter};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{
    activation::apply_fused, broadcast_shape, expect_output_shape, op_bail, EvalCtx, OpError,
    OpResult, Prepared,
};
use super::{int8_conv, Arithmetic};
use crate::graph::{DType, FullyConnectedAttrs, Graph, Node, Op, TensorId};
use crate::kernels::int8::conv::FullyConnectedInt8;
use crate::tflite::codec::{read_activation_or_none, write_activation, OpVersionCtx};
use crate::tflite::fb;

pub struct Dense;

impl OpFamily for Dense {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        match o.code {
            B::FULLY_CONNECTED => {
                let o = o.op.builtin_options_as_fully_connected_options();
                Some(
                    read_activation_or_none(o.map(|o| o.fused_activation_function())).map(
                        |activation| {
                            Op::FullyConnected(FullyConnectedAttrs {
                                activation,
                                keep_num_dims: o.is_some_and(|o| o.keep_num_dims()),
                            })
                        },
                    ),
                )
            }
            B::BATCH_MATMUL => {
                let o = o.op.builtin_options_as_batch_mat_mul_options();
                Some(Ok(Op::BatchMatMul {
                    adj_x: o.is_some_and(|o| o.adj_x()),
                    adj_y: o.is_some_and(|o| o.adj_y()),
                }))
            }
            _ => None,
        }
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        match op {
            Op::FullyConnected(_) => Some(fb::BuiltinOperator::FULLY_CONNECTED),
            Op::BatchMatMul { .. } => Some(fb::BuiltinOperator::BATCH_MATMUL),
            _ => None,
        }
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        _graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        use fb::BuiltinOptions as O;
        Ok(match &node.op {
            Op::FullyConnected(a) => (
                O::FullyConnectedOptions,
                Some(
                    fb::FullyConnectedOptions::create(
                        fbb,
                        &fb::FullyConnectedOptionsArgs {
                            fused_activation_function: write_activation(a.activation),
                            keep_num_dims: a.keep_num_dims,
                            ..Default::default()
                        },
                    )
                    .as_union_value(),
                ),
            ),
            Op::BatchMatMul { adj_x, adj_y } => (
                O::BatchMatMulOptions,
                Some(
                    fb::BatchMatMulOptions::create(
                        fbb,
                        &fb::BatchMatMulOptionsArgs {
                            adj_x: *adj_x,
                            adj_y: *adj_y,
                            ..Default::default()
                        },
                    )
                    .as_union_value(),
                ),
            ),
            other => return Err(not_in_family("dense", other).to_string()),
        })
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use DType::*;
        let first = OpVersionCtx::first;
        match op {
            Op::FullyConnected(a) => first(&[
                (v.hybrid() && v.per_channel(v.input(1), 0), 12),
                (v.io(I16, I16, I16), 7),
                (v.node().inputs.len() == 2, 6),
                (a.keep_num_dims, 5),
                (v.int8(), 4),
                (v.hybrid(), 3),
            ]),
            Op::BatchMatMul { .. } => first(&[(v.is(0, I16), 3), (v.is(0, I8), 2)]),
            _ => 1,
        }
    }

    fn param_rule(_op: &Op) -> ParamRule {
        ParamRule::Own
    }

    fn weight_slots(op: &Op) -> Option<WeightSlots> {
        match op {
            Op::FullyConnected(_) => Some(WeightSlots::Filter {
                filter: 1,
                channel_axis: 0,
                bias: 2,
                data: 0,
            }),
            // Both operands are activations.
            _ => None,
        }
    }

    fn int8_support(_op: &Op) -> Int8Support {
        Int8Support::Kernel
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::FullyConnected(attrs) => fully_connected(ctx, attrs)?,
            Op::BatchMatMul { adj_x, adj_y } => batch_matmul(ctx, *adj_x, *adj_y)?,
            other => return Err(not_in_family("dense", other)),
        }])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::FullyConnected(attrs) => fully_connected_int8(ctx, attrs)?,
            Op::BatchMatMul { adj_x, adj_y } => batch_matmul_int8(ctx, *adj_x, *adj_y)?,
            other => return Err(not_in_family("dense", other)),
        }])
    }

    fn has_int16_kernel(op: &Op) -> bool {
        matches!(op, Op::FullyConnected(_) | Op::BatchMatMul { .. })
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let a = match &ctx.node.op {
            Op::FullyConnected(a) => a,
            Op::BatchMatMul { adj_x, adj_y } => {
                return Ok(vec![super::int16_conv::batch_matmul16(
                    ctx, *adj_x, *adj_y,
                )?]);
            }
            other => return Err(not_in_family("dense (16x8)", other)),
        };
        Ok(vec![super::int16_conv::fully_connected16(
            ctx,
            a.activation,
        )?])
    }

    fn prepare(
        graph: &Graph,
        node: &Node,
        constant: &dyn Fn(TensorId) -> Option<CTensor>,
        arithmetic: Arithmetic,
    ) -> OpResult<Option<Prepared>> {
        int8_conv::prepare_int8_or_float(graph, node, arithmetic, || match node.op {
            Op::FullyConnected(_) => prepare_float(graph, node, constant),
            _ => Ok(None),
        })
    }
}

/// Transposes constant `[out, in]` weights once into the `[in, out]` matrix matmul wants.
fn prepare_float(
    graph: &Graph,
    node: &Node,
    constant: &dyn Fn(TensorId) -> Option<CTensor>,
) -> OpResult<Option<Prepared>> {
    let (Some(wid), Some(weights)) = (node.input(1), node.input(1).and_then(constant)) else {
        return Ok(None);
    };
    if graph.tensor(wid).shape.len() != 2 {
        op_bail!(
            "weights must be 2-D [out, in], got {:?}",
            graph.tensor(wid).shape
        );
    }
    let weights_io = weights.t()?.contiguous()?;
    let bias = node.input(2).and_then(constant);
    Ok(Some(Prepared::MatMul { weights_io, bias }))
}

fn fully_connected(ctx: &EvalCtx, attrs: &FullyConnectedAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let owned;
    let (weights_io, bias) = match ctx.prepared {
        Some(Prepared::MatMul { weights_io, bias }) => (weights_io, bias.as_ref()),
        _ => {
            owned = ctx.input(1)?.t()?.contiguous()?;
            let bias = if ctx.has_input(2) {
                Some(ctx.input(2)?)
            } else {
                None
            };
            (&owned, bias)
        }
    };
    let (depth, _units) = weights_io.dims2()?;
    let count = input.elem_count();
    if depth == 0 || count % depth != 0 {
        op_bail!(
            "input of {count} elements cannot be split into rows of {depth} (the weights' depth)"
        );
    }
    let rows = input.reshape((count / depth, depth))?;
    let mut out = rows.matmul(weights_io)?;
    if let Some(b) = bias {
        out = out.broadcast_add(b)?;
    }
    let out = apply_fused(out, attrs.activation)?;
    // keep_num_dims and the output shape are both in the model's declared output shape.
    Ok(out.reshape(ctx.output_shape(0)?)?)
}

fn batch_matmul(ctx: &EvalCtx, adj_x: bool, adj_y: bool) -> OpResult<CTensor> {
    let mut x = ctx.input(0)?.clone();
    let mut y = ctx.input(1)?.clone();
    if x.rank() < 2 || y.rank() < 2 {
        op_bail!("BATCH_MATMUL needs inputs of rank >= 2");
    }
    if adj_x {
        x = x.t()?;
    }
    if adj_y {
        y = y.t()?;
    }
    let (xd, yd) = (x.dims(), y.dims());
    let batch = broadcast_shape(&xd[..xd.len() - 2], &yd[..yd.len() - 2])?;
    let mut computed = batch;
    computed.extend([xd[xd.len() - 2], yd[yd.len() - 1]]);
    expect_output_shape(ctx, 0, &computed)?;
    let out = x.contiguous()?.broadcast_matmul(&y.contiguous()?)?;
    Ok(out.reshape(ctx.output_shape(0)?)?)
}

fn fully_connected_int8(ctx: &EvalCtx, attrs: &FullyConnectedAttrs) -> OpResult<CTensor> {
    let input = ctx.input(0)?;
    let (weights, scales, fid) = filter(ctx, 1)?;
    let [units, depth] = ctx.graph.tensor(fid).shape[..] else {
        op_bail!("weights must be 2-D [units, depth]");
    };
    let count = input.elem_count();
    if depth == 0 || count % depth != 0 {
        op_bail!("input of {count} elements cannot be split into rows of {depth}");
    }
    let rows = count / depth;
    expect_output_shape(ctx, 0, &[rows, units])?;
    if let Some(Prepared::Int8FullyConnected(packed)) = ctx.prepared {
        let mut out = vec![0i8; rows * units];
        packed
            .run(rows, &int8_values(input)?, &mut out)
            .map_err(OpError::Kernel)?;
        return from_int8(out, ctx.output_shape(0)?, input);
    }
    let kernel = FullyConnectedInt8::new(
        qparams(ctx, ctx.input_id(0)?)?,
        scales,
        qparams(ctx, ctx.node.outputs[0])?,
        attrs.activation,
        units,
    )
    .map_err(OpError::Kernel)?
    .with_arithmetic(ctx.arithmetic);
    let mut out = vec![0i8; rows * units];
    kernel
        .run(
            rows,
            depth,
            &int8_values(input)?,
            weights,
            bias(ctx, 2)?,
            &mut out,
        )
        .map_err(OpError::Kernel)?;
    from_int8(out, ctx.output_shape(0)?, input)
}

/// BATCH_MATMUL on int8 (both operands activations).
fn batch_matmul_int8(ctx: &EvalCtx, adj_x: bool, adj_y: bool) -> OpResult<CTensor> {
    use crate::kernels::int8::conv::batch_matmul::BatchMatMulInt8;
    let (lhs, rhs) = (ctx.input(0)?, ctx.input(1)?);
    let kernel = BatchMatMulInt8::new(
        qparams(ctx, ctx.input_id(0)?)?,
        qparams(ctx, ctx.input_id(1)?)?,
        qparams(ctx, ctx.node.outputs[0])?,
        adj_x,
        adj_y,
    )
    .map_err(OpError::Kernel)?;
    let shape = kernel
        .output_shape(lhs.dims(), rhs.dims())
        .map_err(OpError::Kernel)?;
    expect_output_shape(ctx, 0, &shape)?;
    let mut out = vec![0i8; shape.iter().product()];
    kernel
        .run(
            lhs.dims(),
            &int8_values(lhs)?,
            rhs.dims(),
            &int8_values(rhs)?,
            &mut out,
        )
        .map_err(OpError::Kernel)?;
    from_int8(out, ctx.output_shape(0)?, lhs)
}
