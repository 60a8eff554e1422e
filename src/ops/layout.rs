//! Ops that move data without arithmetic: RESHAPE / SQUEEZE / EXPAND_DIMS, TRANSPOSE,
//! CONCATENATION, PAD / PADV2, DEPTH_TO_SPACE, SPACE_TO_DEPTH.

use candle_core::{DType as CDType, Tensor as CTensor};
use flatbuffers::FlatBufferBuilder;

use super::family::{
    not_in_family, Int8Support, OpFamily, ParamRule, TfliteOperator, TfliteOptions, WeightSlots,
};
use super::int8_tensor::{from_int8, int8_values, qparams};
use super::{
    activation::apply_fused, expect_output_shape, normalize_axis, op_bail, EvalCtx, OpResult,
};
use crate::graph::{DType, FusedActivation, Graph, Node, Op};
use crate::tflite::codec::{
    read_activation_or_none, read_positive, write_activation, write_int, OpVersionCtx,
};
use crate::tflite::fb;

pub struct Layout;

impl OpFamily for Layout {
    fn read_tflite(o: &TfliteOperator) -> Option<Result<Op, String>> {
        use fb::BuiltinOperator as B;
        let op = o.op;
        let read = || -> Result<Option<Op>, String> {
            Ok(Some(match o.code {
                B::RESHAPE => Op::Reshape,
                B::SQUEEZE => Op::Squeeze {
                    axes: op
                        .builtin_options_as_squeeze_options()
                        .and_then(|o| o.squeeze_dims())
                        .map(|v| v.iter().collect())
                        .unwrap_or_default(),
                },
                B::EXPAND_DIMS => Op::ExpandDims,
                B::TRANSPOSE => Op::Transpose,
                B::CONCATENATION => {
                    let o = op.builtin_options_as_concatenation_options();
                    Op::Concatenation {
                        axis: o.map_or(0, |o| o.axis()),
                        activation: read_activation_or_none(
                            o.map(|o| o.fused_activation_function()),
                        )?,
                    }
                }
                B::PAD => Op::Pad,
                B::PADV2 => Op::PadV2,
                B::DEPTH_TO_SPACE => Op::DepthToSpace {
                    block_size: read_positive(
                        op.builtin_options_as_depth_to_space_options()
                            .map_or(0, |o| o.block_size()),
                        "block_size",
                    )?,
                },
                B::SPACE_TO_DEPTH => Op::SpaceToDepth {
                    block_size: read_positive(
                        op.builtin_options_as_space_to_depth_options()
                            .map_or(0, |o| o.block_size()),
                        "block_size",
                    )?,
                },
                _ => return Ok(None),
            }))
        };
        read().transpose()
    }

    fn tflite_code(op: &Op) -> Option<fb::BuiltinOperator> {
        use fb::BuiltinOperator as B;
        Some(match op {
            Op::Reshape => B::RESHAPE,
            Op::Squeeze { .. } => B::SQUEEZE,
            Op::ExpandDims => B::EXPAND_DIMS,
            Op::Transpose => B::TRANSPOSE,
            Op::Concatenation { .. } => B::CONCATENATION,
            Op::Pad => B::PAD,
            Op::PadV2 => B::PADV2,
            Op::DepthToSpace { .. } => B::DEPTH_TO_SPACE,
            Op::SpaceToDepth { .. } => B::SPACE_TO_DEPTH,
            _ => return None,
        })
    }

    fn write_tflite_options(
        fbb: &mut FlatBufferBuilder<'_>,
        graph: &Graph,
        node: &Node,
    ) -> Result<TfliteOptions, String> {
        use fb::BuiltinOptions as O;
        Ok(match &node.op {
            Op::Reshape => {
                // The shape tensor (input 1) is what runtimes read; a reshape without one
                // takes its target shape from the options.
                if node.input(1).is_some() {
                    (O::NONE, None)
                } else {
                    let out = &graph.tensors[node.outputs[0]]; // every op has an output
                    let shape = match &out.shape_signature {
                        Some(s) => s
                            .iter()
                            .map(|&d| {
                                i32::try_from(d)
                                    .map_err(|_| format!("dimension {d} does not fit int32"))
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        None => out
                            .shape
                            .iter()
                            .map(|&d| write_int(d, "dimension"))
                            .collect::<Result<Vec<_>, _>>()?,
                    };
                    let new_shape = fbb.create_vector(&shape);
                    (
                        O::ReshapeOptions,
                        Some(
                            fb::ReshapeOptions::create(
                                fbb,
                                &fb::ReshapeOptionsArgs {
                                    new_shape: Some(new_shape),
                                },
                            )
                            .as_union_value(),
                        ),
                    )
                }
            }
            Op::Squeeze { axes } => {
                let dims = fbb.create_vector(axes);
                (
                    O::SqueezeOptions,
                    Some(
                        fb::SqueezeOptions::create(
                            fbb,
                            &fb::SqueezeOptionsArgs {
                                squeeze_dims: Some(dims),
                            },
                        )
                        .as_union_value(),
                    ),
                )
            }
            Op::ExpandDims => (
                O::ExpandDimsOptions,
                Some(
                    fb::ExpandDimsOptions::create(fbb, &fb::ExpandDimsOptionsArgs {})
                        .as_union_value(),
                ),
            ),
            Op::Transpose => (O::NONE, None),
            Op::Concatenation {
                axis,
                activation: act,
            } => (
                O::ConcatenationOptions,
                Some(
                    fb::ConcatenationOptions::create(
                        fbb,
                        &fb::ConcatenationOptionsArgs {
                            axis: *axis,
                            fused_activation_function: write_activation(*act),
                        },
                    )
                    .as_union_value(),
                ),
            ),
            Op::Pad => (
                O::PadOptions,
                Some(fb::PadOptions::create(fbb, &fb::PadOptionsArgs {}).as_union_value()),
            ),
            Op::PadV2 => (
                O::PadV2Options,
                Some(fb::PadV2Options::create(fbb, &fb::PadV2OptionsArgs {}).as_union_value()),
            ),
            Op::DepthToSpace { block_size } => (
                O::DepthToSpaceOptions,
                Some(
                    fb::DepthToSpaceOptions::create(
                        fbb,
                        &fb::DepthToSpaceOptionsArgs {
                            block_size: write_int(*block_size, "block_size")?,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            Op::SpaceToDepth { block_size } => (
                O::SpaceToDepthOptions,
                Some(
                    fb::SpaceToDepthOptions::create(
                        fbb,
                        &fb::SpaceToDepthOptionsArgs {
                            block_size: write_int(*block_size, "block_size")?,
                        },
                    )
                    .as_union_value(),
                ),
            ),
            other => return Err(not_in_family("layout", other).to_string()),
        })
    }

    fn tflite_version(v: &OpVersionCtx, op: &Op) -> i32 {
        use DType::*;
        let first = OpVersionCtx::first;
        match op {
            Op::Transpose => first(&[
                (v.dims(0) > 6 || v.is(0, BF16), 8),
                (v.dims(0) > 5, 6),
                (v.is(0, I16), 5),
                (v.dims(0) > 4, 4),
                (v.is(0, Bool), 3),
                (v.is(0, I8), 2),
            ]),
            Op::Pad | Op::PadV2 => first(&[
                (v.is(0, Bool), 5),
                (v.dims(0) > 4, 4),
                (v.is(0, I16), 3),
                (v.is(0, I8), 2),
            ]),
            Op::Concatenation { .. } => {
                first(&[(v.is(0, U32), 4), (v.is(0, I16), 3), (v.is(0, I8), 2)])
            }
            Op::DepthToSpace { .. } | Op::SpaceToDepth { .. } => first(&[(v.is(0, I8), 2)]),
            Op::Squeeze { .. } => first(&[(v.is(0, String), 2)]),
            // RESHAPE, EXPAND_DIMS: one version for all types.
            _ => 1,
        }
    }

    fn param_rule(_op: &Op) -> ParamRule {
        ParamRule::SameScale
    }

    fn weight_slots(_op: &Op) -> Option<WeightSlots> {
        None
    }

    fn int8_support(op: &Op) -> Int8Support {
        match op {
            // Inputs of other parameters are rescaled; padding is the zero point.
            Op::Concatenation { .. } | Op::Pad | Op::PadV2 => Int8Support::KernelMovingValues,
            _ => Int8Support::MovesValues,
        }
    }

    fn eval_float(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::Reshape | Op::Squeeze { .. } | Op::ExpandDims => reshape(ctx)?,
            Op::Transpose => transpose(ctx)?,
            Op::Concatenation { axis, activation } => concatenation(ctx, *axis, *activation)?,
            Op::Pad | Op::PadV2 => pad(ctx)?,
            Op::DepthToSpace { block_size } => depth_to_space(ctx, *block_size)?,
            Op::SpaceToDepth { block_size } => space_to_depth(ctx, *block_size)?,
            other => return Err(not_in_family("layout", other)),
        }])
    }

    fn has_int16_kernel(op: &Op) -> bool {
        match op {
            // They move codes: the float path runs them on int16 values as on any integers.
            Op::Reshape | Op::Squeeze { .. } | Op::ExpandDims | Op::Transpose => true,
            // `kernels::int16::movement`. LiteRT's int16 CONCATENATION copies codes with no
            // fused activation (the converter writes none).
            Op::Pad => true,
            Op::Concatenation { activation, .. } => *activation == FusedActivation::None,
            // LiteRT refuses PADV2 as the converter writes it in 16x8 (a float32 pad
            // value), and DEPTH_TO_SPACE / SPACE_TO_DEPTH in int16; other ops are not
            // this family's.
            _ => false,
        }
    }

    fn eval_int16(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::Concatenation { axis, .. } => concatenation_int16(ctx, *axis)?,
            Op::Pad => pad_int16(ctx)?,
            other => op_bail!("{} has no 16x8 kernel in qdbg", other.name()),
        }])
    }

    fn eval_int8(ctx: &EvalCtx) -> OpResult<Vec<CTensor>> {
        Ok(vec![match &ctx.node.op {
            Op::Concatenation { .. } => concatenation_int8(ctx)?,
            Op::Pad | Op::PadV2 => pad_int8(ctx)?,
            other => return Err(not_in_family("layout", other)),
        }])
    }
}

/// RESHAPE, SQUEEZE and EXPAND_DIMS all end in the shape the model declares.
fn reshape(ctx: &EvalCtx) -> OpResult<CTensor> {
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

fn transpose(ctx: &EvalCtx) -> OpResult<CTensor> {
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

fn concatenation(ctx: &EvalCtx, axis: i32, activation: FusedActivation) -> OpResult<CTensor> {
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
fn pad(ctx: &EvalCtx) -> OpResult<CTensor> {
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
fn depth_to_space(ctx: &EvalCtx, block: usize) -> OpResult<CTensor> {
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

fn space_to_depth(ctx: &EvalCtx, block: usize) -> OpResult<CTensor> {
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

/// CONCATENATION of int8 inputs: raw values where an input shares the output's
/// parameters, otherwise rescaled in float and rounded as TFLite's kernel does.
fn concatenation_int8(ctx: &EvalCtx) -> OpResult<CTensor> {
    let out = qparams(ctx, ctx.node.outputs[0])?;
    let mut parts = Vec::with_capacity(ctx.node.inputs.len());
    for i in 0..ctx.node.inputs.len() {
        let id = ctx.input_id(i)?;
        let input = ctx.input(i)?;
        let q = qparams(ctx, id)?;
        if q == out {
            parts.push(input.clone());
            continue;
        }
        let scale = q.scale / out.scale;
        let bias = -(q.zero_point as f32) * scale;
        let rescaled: Vec<i8> = int8_values(input)?
            .iter()
            .map(|&v| {
                ((v as f32 * scale + bias).round() as i32 + out.zero_point).clamp(-128, 127) as i8
            })
            .collect();
        parts.push(from_int8(rescaled, input.dims(), input)?);
    }
    let Op::Concatenation { axis, .. } = ctx.node.op else {
        op_bail!("internal: not a CONCATENATION");
    };
    let axis = normalize_axis(axis as i64, parts[0].rank())?;
    Ok(CTensor::cat(&parts, axis)?)
}

/// CONCATENATION in 16x8: LiteRT copies codes, every input having the output's
/// parameters (the 16x8 plan requantizes those that differ, as TensorFlow's converter
/// does); `kernels::int16::movement::concatenate` refuses others.
fn concatenation_int16(ctx: &EvalCtx, axis: i32) -> OpResult<CTensor> {
    use super::int16_tensor::{from_int16, int16_values};
    use crate::kernels::int16::movement::concatenate;
    let out_q = qparams(ctx, ctx.node.outputs[0])?;
    let mut parts = Vec::with_capacity(ctx.node.inputs.len());
    for i in 0..ctx.node.inputs.len() {
        let input = ctx.input(i)?;
        parts.push((
            int16_values(input)?,
            input.dims().to_vec(),
            qparams(ctx, ctx.input_id(i)?)?,
        ));
    }
    let inputs: Vec<_> = parts.iter().map(|(v, d, q)| (&v[..], &d[..], *q)).collect();
    let shape = ctx.output_shape(0)?.to_vec();
    let mut out = vec![0i16; shape.iter().product()];
    concatenate(&inputs, axis, out_q, &mut out).map_err(super::OpError::Kernel)?;
    from_int16(out, &shape, ctx.input(0)?)
}

/// PAD in 16x8: fills with the output zero point, 0 for symmetric int16.
fn pad_int16(ctx: &EvalCtx) -> OpResult<CTensor> {
    use super::int16_tensor::{from_int16, int16_values};
    use crate::kernels::int16::movement::pad;
    let input = ctx.input(0)?;
    let flat = ctx.const_ints(1)?;
    if flat.len() != 2 * input.rank() || flat.iter().any(|&p| !(0..=1 << 16).contains(&p)) {
        op_bail!(
            "paddings {flat:?} must be one non-negative [before, after] pair per axis of the \
             rank-{} input",
            input.rank()
        );
    }
    let paddings: Vec<[usize; 2]> = flat
        .chunks_exact(2)
        .map(|p| [p[0] as usize, p[1] as usize])
        .collect();
    let shape: Vec<usize> = input
        .dims()
        .iter()
        .zip(&paddings)
        .map(|(&d, p)| d + p[0] + p[1])
        .collect();
    expect_output_shape(ctx, 0, &shape)?;
    let fill = qparams(ctx, ctx.node.outputs[0])?.zero_point;
    let mut out = vec![0i16; shape.iter().product()];
    pad(
        &int16_values(input)?,
        input.dims(),
        &paddings,
        fill.clamp(i16::MIN.into(), i16::MAX.into()) as i16,
        &mut out,
    )
    .map_err(super::OpError::Kernel)?;
    from_int16(out, ctx.output_shape(0)?, input)
}

/// PAD / PADV2 on int8: padding is the zero point (PAD) or the quantized constant (PADV2).
fn pad_int8(ctx: &EvalCtx) -> OpResult<CTensor> {
    let out = qparams(ctx, ctx.node.outputs[0])?;
    let value = if ctx.has_input(2) {
        int8_values(ctx.input(2)?)?.first().copied().unwrap_or(0)
    } else {
        out.zero_point.clamp(-128, 127) as i8
    };
    // The padding value in the input's carrier: bit patterns for the int8 carrier.
    let value = if ctx.input(0)?.dtype() == CDType::U8 {
        f64::from(value as u8)
    } else {
        f64::from(value)
    };
    pad_with(ctx, value)
}
