//! Two-input element-wise ops with numpy broadcasting: ADD, SUB, MUL, DIV,
//! SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, and POW (float only: LiteRT has no int8 POW).

use candle_core::{DType, Tensor as CTensor};
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{
    activation::apply_fused, broadcast_shape, expect_output_shape, op_bail, EvalCtx, OpError,
    OpResult,
};
use crate::graph::{BinaryKind, DType as GDType, FusedActivation, Graph, Node, Op, TensorId};
use crate::kernels::int8::{binary, QParams};
use crate::kernels::pow_f32;
use crate::tflite::codec::{read_activation_or_none, write_activation, OpVersionCtx};
use crate::tflite::fb;

pub struct Binary;

impl OpFamily for Binary {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        let op = o.op;
        if o.code == B::POW {
            // PowOptions is an empty table (and TensorFlow writes none): nothing to read.
            return Some(Ok(Op::Pow));
        }
        let (kind, act) = match o.code {
            B::ADD => (
                BinaryKind::Add,
                op.builtin_options_as_add_options()
                    .map(|o| o.fused_activation_function()),
            ),
            B::SUB => (
                BinaryKind::Sub,
                op.builtin_options_as_sub_options()
                    .map(|o| o.fused_activation_function()),
            ),
            B::MUL => (
                BinaryKind::Mul,
                op.builtin_options_as_mul_options()
                    .map(|o| o.fused_activation_function()),
            ),
            B::DIV => (
                BinaryKind::Div,
                op.builtin_options_as_div_options()
                    .map(|o| o.fused_activation_function()),
            ),
            B::SQUARED_DIFFERENCE => (BinaryKind::SquaredDifference, None),
            B::MAXIMUM => (BinaryKind::Maximum, None),
            B::MINIMUM => (BinaryKind::Minimum, None),
            _ => return None,
        };
        Some(read_activation_or_none(act).map(|activation| Op::Binary { kind, activation }))
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        use fb::BuiltinOperator as B;
        let kind = match op {
            Op::Binary { kind, .. } => kind,
            Op::Pow => return Some(B::POW),
            _ => return None,
        };
        Some(match kind {
            BinaryKind::Add => B::ADD,
            BinaryKind::Sub => B::SUB,
            BinaryKind::Mul => B::MUL,
            BinaryKind::Div => B::DIV,
            BinaryKind::SquaredDifference => B::SQUARED_DIFFERENCE,
            BinaryKind::Maximum => B::MAXIMUM,
            BinaryKind::Minimum => B::MINIMUM,
        })
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        use fb::BuiltinOptions as O;
        if node.op == Op::Pow {
            // PowOptions is an empty table, and TensorFlow's converter writes POW without
            // it (options type NONE); so does qdbg.
            return Ok((O::NONE, None));
        }
        let Op::Binary {
            kind,
            activation: act,
        } = &node.op
        else {
            return Err(not_in_family("binary", &node.op).to_string());
        };
        let a = write_activation(*act);
        // 16x8 ADD / SUB: written as qdbg runs them (see `ADD_SUB_POT_SCALE_INT16`);
        // other types keep the schema's default, which their kernels ignore.
        let pot_scale_int16 =
            !super::quantized::node_is_int16(graph, node) || ADD_SUB_POT_SCALE_INT16;
        Ok(match kind {
            BinaryKind::Add => (
                O::AddOptions,
                Some(
                    fb::AddOptions::create(
                        fbb,
                        &fb::AddOptionsArgs {
                            fused_activation_function: a,
                            pot_scale_int16,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            BinaryKind::Sub => (
                O::SubOptions,
                Some(
                    fb::SubOptions::create(
                        fbb,
                        &fb::SubOptionsArgs {
                            fused_activation_function: a,
                            pot_scale_int16,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            BinaryKind::Mul => (
                O::MulOptions,
                Some(
                    fb::MulOptions::create(
                        fbb,
                        &fb::MulOptionsArgs {
                            fused_activation_function: a,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            BinaryKind::Div => (
                O::DivOptions,
                Some(
                    fb::DivOptions::create(
                        fbb,
                        &fb::DivOptionsArgs {
                            fused_activation_function: a,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            BinaryKind::SquaredDifference | BinaryKind::Maximum | BinaryKind::Minimum => {
                if *act != FusedActivation::None {
                    return Err(format!(
                        "TFLite's {} has no fused activation, but the graph fuses {act:?}",
                        node.op.name()
                    ));
                }
                (O::NONE, None)
            }
        })
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use GDType::*;
        // POW: TensorFlow's version rule has no case for it, so every POW is version 1.
        let Op::Binary { kind, .. } = op else {
            return 1;
        };
        let first = OpVersionCtx::first;
        match kind {
            BinaryKind::Mul => {
                let quantized = |i: usize| v.input(i).is_some_and(|t| t.quant.is_some());
                let (s1, s2, so) = (
                    OpVersionCtx::scale(v.input(0)),
                    OpVersionCtx::scale(v.input(1)),
                    OpVersionCtx::scale(v.output()),
                );
                // float arithmetic, as TensorFlow's.
                let rescale_ge_1 = s1 != 0.0 && s2 != 0.0 && so != 0.0 && s1 * s2 / so >= 1.0;
                first(&[
                    (v.is(0, F16), 8),
                    (v.is(0, I16) && !(quantized(0) || quantized(1)), 7),
                    (v.is(0, U32), 7),
                    (v.is(0, I64), 5),
                    (v.is(0, I16), 4),
                    (rescale_ge_1, 3),
                    (v.is(0, I8), 2),
                ])
            }
            BinaryKind::Maximum | BinaryKind::Minimum => first(&[
                (v.is(0, I16) && v.out_is(I16), 4),
                (v.broadcast5d(), 3),
                (v.is(0, I8), 2),
            ]),
            BinaryKind::Add => {
                let quantized = v.input(0).is_some_and(|t| t.quant.is_some());
                first(&[
                    (v.is(0, F16), 6),
                    (v.is(0, I16) && !quantized, 5),
                    (v.is(0, I64), 4),
                    (v.is(0, I8), 2),
                ])
            }
            BinaryKind::Sub => first(&[(v.is(0, I64), 4), (v.broadcast5d(), 3), (v.is(0, I8), 2)]),
            BinaryKind::Div => first(&[(v.broadcast5d(), 2)]),
            BinaryKind::SquaredDifference => first(&[(v.is(0, I8), 2)]),
        }
    }

    fn param_rule(op: &Op) -> ParamRule {
        match op {
            // LiteRT's int8 MAXIMUM / MINIMUM compare raw values.
            Op::Binary {
                kind: BinaryKind::Maximum | BinaryKind::Minimum,
                ..
            } => ParamRule::SameScale,
            _ => ParamRule::Own,
        }
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        None
    }

    fn int8_support(op: &Op) -> Int8Support {
        match op {
            // LiteRT's POW kernel takes float32 and int32 only: TensorFlow's int8 models
            // keep it float between a DEQUANTIZE and a QUANTIZE.
            Op::Pow => Int8Support::FloatOnly,
            _ => Int8Support::Kernel,
        }
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        match &ctx.node.op {
            Op::Binary { kind, activation } => Ok(vec![binary(ctx, *kind, *activation)?]),
            Op::Pow => Ok(vec![pow(ctx)?]),
            other => Err(not_in_family("binary", other)),
        }
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::Binary { kind, activation } = &ctx.node.op else {
            return Err(not_in_family("binary", &ctx.node.op));
        };
        Ok(vec![binary_int8(ctx, *kind, *activation)?])
    }

    fn has_int16_kernel(op: &Op) -> bool {
        // LiteRT has no 16x8 SQUARED_DIFFERENCE; its int16 DIV exists, but TensorFlow's
        // 16x8 converter never writes it and qdbg has no LiteRT vectors for it.
        matches!(
            op,
            Op::Binary {
                kind: BinaryKind::Add
                    | BinaryKind::Sub
                    | BinaryKind::Mul
                    | BinaryKind::Maximum
                    | BinaryKind::Minimum,
                ..
            }
        )
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        let Op::Binary { kind, activation } = &ctx.node.op else {
            return Err(not_in_family("binary", &ctx.node.op));
        };
        Ok(vec![binary_int16(ctx, *kind, *activation)?])
    }
}

fn binary(ctx: &EvalCtx, kind: BinaryKind, activation: FusedActivation) -> OpResult<CTensor> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let shape = broadcast_shape(a.dims(), b.dims())?;
    expect_output_shape(ctx, 0, &shape)?;
    // 8-bit operands never get here: `ops::eval` refuses them for every arithmetic op.
    if !a.dtype().is_float() && !b.dtype().is_float() {
        return apply_fused(integer_binary(a, b, kind, &shape)?, activation);
    }
    let out = match kind {
        BinaryKind::Add => a.broadcast_add(b)?,
        BinaryKind::Sub => a.broadcast_sub(b)?,
        BinaryKind::Mul => a.broadcast_mul(b)?,
        BinaryKind::Div => a.broadcast_div(b)?,
        BinaryKind::SquaredDifference => {
            let d = a.broadcast_sub(b)?;
            (&d * &d)?
        }
        BinaryKind::Maximum => a.broadcast_maximum(b)?,
        BinaryKind::Minimum => a.broadcast_minimum(b)?,
    };
    apply_fused(out, activation)
}

/// POW as LiteRT computes it: element-wise C `pow` in float32, which (unlike candle's
/// `exp(y * ln x)`) gives a negative base with an integral exponent its signed power
/// (`(-2) ** 3 == -8`) and NaN for a fractional one; int32 by repeated multiplication.
fn pow(ctx: &EvalCtx) -> OpResult<CTensor> {
    let (base, exponent) = (ctx.input(0)?, ctx.input(1)?);
    let shape = broadcast_shape(base.dims(), exponent.dims())?;
    expect_output_shape(ctx, 0, &shape)?;
    let float = base.dtype().is_float();
    if float != exponent.dtype().is_float() {
        op_bail!(
            "POW needs a base and an exponent of one type; the base is {:?} and the \
             exponent {:?}: re-export the model",
            base.dtype(),
            exponent.dtype()
        );
    }
    if !float {
        let declared = ctx.graph.tensor(ctx.node.outputs[0]).dtype;
        if declared != GDType::I32 {
            op_bail!(
                "POW computes float32 or int32 tensors, as LiteRT's does; this one is \
                 {declared:?}: re-export the model with float32 or int32 operands"
            );
        }
        let values = |t: &CTensor| -> OpResult<Vec<i64>> {
            Ok(t.to_dtype(DType::I64)?
                .broadcast_as(shape.as_slice())?
                .contiguous()?
                .flatten_all()?
                .to_vec1::<i64>()?)
        };
        let out = pow_f32::pow_i32(&values(base)?, &values(exponent)?).map_err(OpError::Kernel)?;
        return Ok(CTensor::from_vec(out, shape, base.device())?.to_dtype(base.dtype())?);
    }
    let values = |t: &CTensor| -> OpResult<Vec<f32>> {
        Ok(t.to_dtype(DType::F32)?
            .broadcast_as(shape.as_slice())?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?)
    };
    let out = pow_f32::pow(&values(base)?, &values(exponent)?);
    Ok(CTensor::from_vec(out, shape, base.device())?)
}

/// int32/int64 arithmetic (carried as i64) as TFLite's integer kernels compute it in two's
/// complement: wrapping, where candle's checked Rust arithmetic would panic on overflow in
/// builds with overflow checks (and `i64::MIN / -1` panics in every build).
fn integer_binary(
    a: &CTensor,
    b: &CTensor,
    kind: BinaryKind,
    shape: &[usize],
) -> OpResult<CTensor> {
    let values = |t: &CTensor| -> OpResult<Vec<i64>> {
        Ok(t.to_dtype(DType::I64)?
            .broadcast_as(shape)?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<i64>()?)
    };
    let (x, y) = (values(a)?, values(b)?);
    if kind == BinaryKind::Div && y.contains(&0) {
        return Err(OpError::Model(
            "integer division by zero: the divisor tensor holds a 0; the model's \
             constants are broken, re-export it"
                .into(),
        ));
    }
    let op: fn(i64, i64) -> i64 = match kind {
        BinaryKind::Add => i64::wrapping_add,
        BinaryKind::Sub => i64::wrapping_sub,
        BinaryKind::Mul => i64::wrapping_mul,
        // TFLite's integer DIV truncates toward zero, as Rust's does.
        BinaryKind::Div => i64::wrapping_div,
        BinaryKind::SquaredDifference => |p, q| {
            let d = p.wrapping_sub(q);
            d.wrapping_mul(d)
        },
        BinaryKind::Maximum => i64::max,
        BinaryKind::Minimum => i64::min,
    };
    let out: Vec<i64> = x.iter().zip(&y).map(|(&p, &q)| op(p, q)).collect();
    Ok(CTensor::from_vec(out, shape, a.device())?.to_dtype(a.dtype())?)
}

/// ADD, SUB, MUL, MAXIMUM and MINIMUM in 16x8. qdbg writes ADD / SUB with `pot_scale_int16` false, as
/// TensorFlow's 16x8 quantizer does (`add_sub_pot_scale_int16`), so LiteRT takes the
/// general path; the graph keeps no such option, so a model read with it set runs the
/// general path too (see ARCHITECTURE.md).
fn binary_int16(ctx: &EvalCtx, kind: BinaryKind, act: FusedActivation) -> OpResult<CTensor> {
    use super::int16_tensor::{from_int16, int16_values};
    use crate::kernels::int16::binary::{AddSubInt16, MinMax, MulInt16};
    let Operands {
        a,
        b,
        shape,
        qa,
        qb,
        qo,
    } = quantized_operands(ctx)?;
    let (va, vb) = (int16_values(a)?, int16_values(b)?);
    let mut out = vec![0i16; shape.iter().product()];
    let (da, db) = (a.dims(), b.dims());
    match kind {
        BinaryKind::Add => AddSubInt16::add(qa, qb, qo, act, ADD_SUB_POT_SCALE_INT16)
            .and_then(|k| k.run(&va, da, &vb, db, &mut out)),
        BinaryKind::Sub => AddSubInt16::sub(qa, qb, qo, act, ADD_SUB_POT_SCALE_INT16)
            .and_then(|k| k.run(&va, da, &vb, db, &mut out)),
        BinaryKind::Mul => {
            MulInt16::new(qa, qb, qo, act).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        // LiteRT compares codes: the plan gives both inputs the output's parameters
        // (TensorFlow's 16x8 converter requantizes them), as the int8 kernel assumes.
        BinaryKind::Maximum => MinMax::Maximum.run(&va, da, &vb, db, &mut out),
        BinaryKind::Minimum => MinMax::Minimum.run(&va, da, &vb, db, &mut out),
        _ => op_bail!("{} has no 16x8 kernel in qdbg", ctx.node.op.name()),
    }
    .map_err(OpError::Kernel)?;
    from_int16(out, &shape, a)
}

/// A quantized binary op's two inputs, its broadcast output shape (checked against the
/// model's) and the inputs' and output's parameters: what the int8 and 16x8 paths share.
struct Operands<'a> {
    a: &'a CTensor,
    b: &'a CTensor,
    shape: Vec<usize>,
    qa: QParams,
    qb: QParams,
    qo: QParams,
}

fn quantized_operands<'a>(ctx: &'a EvalCtx) -> OpResult<Operands<'a>> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let shape = broadcast_shape(a.dims(), b.dims())?;
    expect_output_shape(ctx, 0, &shape)?;
    Ok(Operands {
        a,
        b,
        shape,
        qa: qparams(ctx, ctx.input_id(0)?)?,
        qb: qparams(ctx, ctx.input_id(1)?)?,
        qo: qparams(ctx, ctx.node.outputs[0])?,
    })
}

/// The `pot_scale_int16` option qdbg writes on ADD and SUB, and runs them with: false,
/// as TensorFlow's 16x8 quantizer writes it (LiteRT's general int16 path).
pub const ADD_SUB_POT_SCALE_INT16: bool = false;

fn binary_int8(ctx: &EvalCtx, kind: BinaryKind, act: FusedActivation) -> OpResult<CTensor> {
    let Operands {
        a,
        b,
        shape,
        qa,
        qb,
        qo,
    } = quantized_operands(ctx)?;
    let (va, vb) = (int8_values(a)?, int8_values(b)?);
    let mut out = vec![0i8; shape.iter().product()];
    let (da, db) = (a.dims(), b.dims());
    match kind {
        BinaryKind::Add => binary::Add::new(qa, qb, qo, act).and_then(|k| {
            k.with_arithmetic(ctx.arithmetic)
                .run(&va, da, &vb, db, &mut out)
        }),
        BinaryKind::Sub => binary::Sub::new(qa, qb, qo, act).and_then(|k| {
            let in_place = k.in_place_matters() && litert_runs_in_place(ctx.graph, ctx.node);
            k.in_place(in_place).run(&va, da, &vb, db, &mut out)
        }),
        BinaryKind::Mul => binary::Mul::new(qa, qb, qo, act).and_then(|k| {
            k.with_arithmetic(ctx.arithmetic)
                .run(&va, da, &vb, db, &mut out)
        }),
        BinaryKind::Div => {
            binary::Div::new(qa, qb, qo, act).and_then(|k| k.run(&va, da, &vb, db, &mut out))
        }
        BinaryKind::SquaredDifference => binary::SquaredDifference::new(qa, qb, qo)
            .and_then(|k| k.run(&va, da, &vb, db, &mut out)),
        BinaryKind::Maximum | BinaryKind::Minimum => {
            if qa != qo || qb != qo {
                op_bail!(
                    "int8 {} needs equal input and output parameters",
                    ctx.node.op.name()
                );
            }
            let which = if kind == BinaryKind::Maximum {
                binary::MinMax::Maximum
            } else {
                binary::MinMax::Minimum
            };
            which.run(&va, da, &vb, db, &mut out)
        }
    }
    .map_err(OpError::Kernel)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn ints(v: &[i64]) -> CTensor {
        CTensor::from_slice(v, v.len(), &Device::Cpu).unwrap()
    }

    /// Two's complement, as TFLite's int32/int64 kernels compute: wrapping, never a panic.
    #[test]
    fn integer_arithmetic_wraps() {
        let run = |kind, a: &[i64], b: &[i64]| {
            integer_binary(&ints(a), &ints(b), kind, &[a.len()])
                .unwrap()
                .to_vec1::<i64>()
                .unwrap()
        };
        assert_eq!(run(BinaryKind::Add, &[i64::MAX, 2], &[1, 3]), [i64::MIN, 5]);
        assert_eq!(
            run(BinaryKind::Sub, &[i64::MIN, 2], &[1, 3]),
            [i64::MAX, -1]
        );
        assert_eq!(run(BinaryKind::Mul, &[i64::MAX, -4], &[2, 3]), [-2, -12]);
        assert_eq!(
            run(BinaryKind::Div, &[i64::MIN, -7], &[-1, 2]),
            [i64::MIN, -3]
        );
        assert_eq!(
            run(BinaryKind::SquaredDifference, &[5, -3], &[2, 3]),
            [9, 36]
        );
        assert_eq!(run(BinaryKind::Maximum, &[5, -3], &[2, 3]), [5, 3]);
        let err = integer_binary(&ints(&[1]), &ints(&[0]), BinaryKind::Div, &[1]).unwrap_err();
        assert!(err.to_string().contains("division by zero"), "{err}");
    }
}
