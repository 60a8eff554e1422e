//! Builds the quantized graph from a float graph and an activation plan: int8 activations,
//! per-channel symmetric int8 weights, int32 biases, and QUANTIZE / DEQUANTIZE wherever
//! an int8 tensor meets a float one (the model's float inputs and outputs by default, and
//! the borders of every op kept in float).
//!
//! Tensor ids of the float graph keep their meaning: an activation that becomes int8
//! keeps its id and name, so reports and denylists written against the float model still
//! match. New tensors (the int8 twin of a float input or output, converted copies) are
//! appended.

use std::collections::{HashMap, HashSet};

use super::params::{for_each_channel_run, symmetric_scale, symmetric_weight_scales, ChannelRun};
use super::plan::{ActivationPlan, ActivationType, Requantize};
use crate::error::{Error, Result};
use crate::graph::{DType, Graph, Node, Op, QuantParams, Tensor, TensorData, TensorId};
use crate::ops::has_int8_kernel;
use crate::ops::{param_rule, weight_slots, ParamRule, WeightSlots};

#[derive(Clone, Debug, Default)]
pub struct QuantizeOptions {
    /// Integer-only model: int8 inputs and outputs, no QUANTIZE / DEQUANTIZE at the edges.
    pub int8_io: bool,
    /// Ops to keep in float, by position in `graph.nodes` (the denylist, resolved).
    pub keep_float: HashSet<usize>,
    /// Whole-model 16x8: ops the plan does not compute in int16 stay float instead of
    /// int8, as TensorFlow's 16x8 conversion keeps ops without a 16x8 kernel float.
    pub float_unless_int16: bool,
}

/// Why an op stayed float.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FloatReason {
    Denylisted,
    /// An op with no int8 kernel ([`crate::ops::Int8Support::FloatOnly`]): LiteRT runs it in
    /// float only (POW), and TensorFlow's int8 models keep it float too.
    NoInt8Kernel,
    /// A custom op (MediaPipe's): LiteRT runs it in float only.
    CustomOp,
    /// A whole-model 16x8 model keeps an op without a 16x8 kernel float (HARD_SWISH), as
    /// TensorFlow's 16x8 conversion does.
    NoInt16Kernel,
    NotCalibrated,
    /// The int8 model being debugged (made by another tool) computes this op in float.
    FloatInGivenModel,
    /// A DIV whose divisor's calibrated values reach its int8 zero point: LiteRT's int8 DIV
    /// refuses to divide by it, so the op stays float
    /// (`division_check::keep_refused_divisions_float`).
    DivisorOnZeroPoint,
}

#[derive(Clone, Debug)]
pub struct QuantizedModel {
    pub graph: Graph,
    /// For each node of `graph`, the position of the float node it computes, or `None`
    /// for the QUANTIZE / DEQUANTIZE inserted at borders.
    pub node_origin: Vec<Option<usize>>,
    /// For each tensor appended to `graph` (ids past the float graph's), the float tensor
    /// it carries (its int8 or float twin).
    pub twin_of: HashMap<TensorId, TensorId>,
    /// Ops of the float graph that stayed float: (position in float graph, why).
    pub float_ops: Vec<(usize, FloatReason)>,
}

pub fn quantize_graph(
    float: &Graph,
    plan: &ActivationPlan,
    options: &QuantizeOptions,
) -> Result<QuantizedModel> {
    // Folded DEQUANTIZEs stay recorded: the writer puts back those of float16 weights that
    // float ops (a selective model's islands) still read.
    let mut g = float.clone();
    let n = float.nodes.len();

    // 1. Which ops run in int8.
    let mut float_ops = Vec::new();
    let mut quantized = vec![false; n];
    for (pos, node) in float.nodes.iter().enumerate() {
        let data_tensors = node
            .inputs
            .iter()
            .flatten()
            .chain(&node.outputs)
            .filter(|&&id| !float.tensor(id).is_constant() && float.tensor(id).dtype.is_float());
        let ty = plan.activation_type(pos);
        let calibrated = data_tensors
            .clone()
            .all(|id| plan.params_as(id, ty).is_some());
        let reason = if options.keep_float.contains(&pos) {
            Some(FloatReason::Denylisted)
        } else if node.op.custom_options().is_some() {
            // MediaPipe's custom ops: LiteRT has them in float only.
            Some(FloatReason::CustomOp)
        } else if options.float_unless_int16 && ty != ActivationType::Int16 {
            Some(FloatReason::NoInt16Kernel)
        } else if !has_int8_kernel(&node.op) {
            Some(FloatReason::NoInt8Kernel)
        } else if !calibrated {
            Some(FloatReason::NotCalibrated)
        } else if plan.divisor_on_zero_point.contains(&pos) {
            Some(FloatReason::DivisorOnZeroPoint)
        } else {
            None
        };
        match reason {
            Some(r) => float_ops.push((pos, r)),
            None => quantized[pos] = true,
        }
    }

    // 2. Activations produced by quantized ops (and integer model inputs) become int8 or
    //    int16 in place, the type of the op writing them (of the first quantized reader
    //    for a model input).
    let mut is_int8: HashMap<TensorId, ActivationType> = HashMap::new();
    if options.int8_io {
        for &id in &float.inputs {
            let first_reader = float
                .nodes
                .iter()
                .enumerate()
                .find(|(pos, n)| quantized[*pos] && n.inputs.contains(&Some(id)));
            let ty =
                first_reader.map_or(ActivationType::Int8, |(pos, _)| plan.activation_type(pos));
            if let Some(q) = plan.params_as(&id, ty) {
                is_int8.insert(id, ty);
                set_quantized(&mut g.tensors[id], q.clone(), ty);
            }
        }
    }
    for (pos, node) in float.nodes.iter().enumerate() {
        if !quantized[pos] {
            continue;
        }
        let ty = plan.activation_type(pos);
        for &out in &node.outputs {
            if float.tensor(out).dtype.is_float() {
                let q = plan
                    .params_as(&out, ty)
                    .cloned()
                    .ok_or_else(|| missing(float, out))?;
                set_quantized(&mut g.tensors[out], q, ty);
                is_int8.insert(out, ty);
            }
        }
    }

    // 3. Rebuild the op list, converting at every float/int8 border.
    let mut nodes: Vec<Node> = Vec::with_capacity(n + 8);
    let mut origins: Vec<Option<usize>> = Vec::with_capacity(n + 8);
    let mut twin_of: HashMap<TensorId, TensorId> = HashMap::new();
    let mut quantized_copy: HashMap<(TensorId, Option<usize>), TensorId> = HashMap::new();
    let mut requantized_copy: HashMap<(TensorId, usize), TensorId> = HashMap::new();
    // int16 twins: of a float tensor, one per reading op (TensorFlow's 16x8 quantizer
    // puts a QUANTIZE before each reader), but one for a model input, whose type the
    // quantizer changes (tests/fixtures/16x8/ops_dense: one QUANTIZE before three
    // FULLY_CONNECTED); of an integer tensor of the other type, one.
    let mut int16_reader_copy: HashMap<(TensorId, usize), TensorId> = HashMap::new();
    let mut retyped_copy: HashMap<(TensorId, ActivationType), TensorId> = HashMap::new();
    // int16 copies an int16 op reads with its own parameters (CONCATENATION, MAXIMUM,
    // MINIMUM: `Int16Choice::reads`), one per reading op and tensor as the converter
    // writes them.
    let mut int16_requantized_copy: HashMap<(TensorId, usize), TensorId> = HashMap::new();
    let mut float_copy: HashMap<TensorId, TensorId> = HashMap::new();
    let mut constant_users: HashMap<TensorId, usize> = HashMap::new();
    for node in &float.nodes {
        for &id in node.inputs.iter().flatten() {
            if float.tensor(id).is_constant() {
                *constant_users.entry(id).or_default() += 1;
            }
        }
    }
    for (pos, node) in float.nodes.iter().enumerate() {
        let mut new_node = node.clone();
        if quantized[pos] {
            let ty = plan.activation_type(pos);
            let slots = weight_slots(&node.op);
            // The filter, its channel axis, its bias, and the data input whose scale the
            // bias scale builds on.
            let (filter_slot, channel_axis, bias_slot, data_slot) = match slots {
                Some(WeightSlots::Filter {
                    filter,
                    channel_axis,
                    bias,
                    data,
                }) => (Some(filter), channel_axis, Some(bias), data),
                _ => (None, 0, None, 0),
            };
            let symmetric_slot = match slots {
                Some(WeightSlots::SymmetricPerTensor(slot)) => Some(slot),
                _ => None,
            };
            let input_q = match ty {
                ActivationType::Int8 => node
                    .input(data_slot)
                    .and_then(|i| plan.read_params(pos, data_slot, i))
                    .cloned(),
                ActivationType::Int16 => node
                    .input(data_slot)
                    .and_then(|i| plan.params_as(&i, ty))
                    .cloned(),
            };
            // Same-scale ops (MAXIMUM with a constant, PADV2's pad value) compare or copy
            // raw values: their constants take the op's parameters.
            let same_scale_q = match param_rule(&node.op) {
                ParamRule::SameScale => node
                    .outputs
                    .first()
                    .and_then(|&o| plan.params_as(&o, ty))
                    .cloned(),
                _ => None,
            };
            let mut weight_scales: Option<Vec<f32>> = None;
            for (slot, input) in new_node.inputs.iter_mut().enumerate() {
                let Some(id) = *input else { continue };
                let t = float.tensor(id);
                if t.is_constant() {
                    if !t.dtype.is_float() {
                        continue; // shapes, axes, paddings stay int32
                    }
                    let converted = match Some(slot) {
                        s if s == filter_slot => {
                            // The scale a channel needs for its bias to fit the int32
                            // range TensorFlow allows (see `bias_fitting_scales`).
                            let bias_values = bias_slot
                                .and_then(|b| node.input(b))
                                .map(|id| float.tensor(id))
                                .filter(|b| b.is_constant())
                                .map(float_values)
                                .transpose()?;
                            // An int64 bias (16x8) fits whatever the scale: TensorFlow's
                            // 16x8 weights keep their own scales.
                            let floor = match (&bias_values, &input_q, ty) {
                                (Some(bias), Some(iq), ActivationType::Int8) => {
                                    bias_fitting_scales(bias, iq.scale[0])
                                }
                                _ => Vec::new(),
                            };
                            let (tensor, scales) = quantize_weight(t, channel_axis, &floor)?;
                            weight_scales = Some(scales);
                            tensor
                        }
                        s if s == bias_slot => {
                            let (Some(iq), Some(ws)) = (&input_q, &weight_scales) else {
                                return Err(missing(float, id));
                            };
                            match ty {
                                ActivationType::Int8 => quantize_bias(t, iq.scale[0], ws)?,
                                ActivationType::Int16 => quantize_bias64(t, iq.scale[0], ws)?,
                            }
                        }
                        s if s == symmetric_slot => {
                            let scale = symmetric_scale(&float_values(t)?);
                            quantize_weight_with(t, &QuantParams::per_tensor(scale, 0))?
                        }
                        _ => match (&same_scale_q, ty) {
                            (Some(q), ActivationType::Int8) => quantize_constant_with(t, q)?,
                            (None, ActivationType::Int8) => quantize_constant(t)?,
                            (Some(q), ActivationType::Int16) => quantize_constant_int16(t, q)?,
                            (None, ActivationType::Int16) => {
                                let scale = int16_symmetric_scale(&float_values(t)?);
                                quantize_constant_int16(t, &QuantParams::per_tensor(scale, 0))?
                            }
                        },
                    };
                    *input = Some(replace_or_append(&mut g, id, converted, &constant_users));
                } else if t.dtype.is_float()
                    && !is_int8.contains_key(&id)
                    && ty == ActivationType::Int16
                {
                    let q = plan
                        .params_as(&id, ty)
                        .cloned()
                        .ok_or_else(|| missing(float, id))?;
                    // A model input is quantized once for all its readers (the converter
                    // retypes the input itself); other float tensors once per reader.
                    let reader = if float.inputs.contains(&id) {
                        usize::MAX
                    } else {
                        pos
                    };
                    let copy = *int16_reader_copy.entry((id, reader)).or_insert_with(|| {
                        let mut border = Border {
                            graph: &mut g,
                            nodes: &mut nodes,
                            origins: &mut origins,
                            twin_of: &mut twin_of,
                        };
                        border.quantized_twin(id, ty, "int16", &q, node.source_index)
                    });
                    *input = Some(copy);
                } else if is_int8.get(&id).is_some_and(|&held| held != ty) {
                    // An int8 tensor read by an int16 op or the reverse: requantized once
                    // to the reader's type and parameters (LiteRT's QUANTIZE between
                    // integer types), at the edge of an int16 island.
                    let q = plan
                        .params_as(&id, ty)
                        .cloned()
                        .ok_or_else(|| missing(float, id))?;
                    let copy = *retyped_copy.entry((id, ty)).or_insert_with(|| {
                        let mut border = Border {
                            graph: &mut g,
                            nodes: &mut nodes,
                            origins: &mut origins,
                            twin_of: &mut twin_of,
                        };
                        border.quantized_twin(id, ty, ty.name(), &q, node.source_index)
                    });
                    *input = Some(copy);
                } else if t.dtype.is_float() && !is_int8.contains_key(&id) {
                    // A float activation feeding an int8 op: QUANTIZE it once, with its own
                    // parameters. A reader that needs others gets that int8 copy requantized,
                    // as the converter writes it (QUANTIZE, then QUANTIZE int8 -> int8): two
                    // roundings where quantizing the float values straight to the reader's
                    // parameters would take one, but the model and its debugger rows are
                    // TensorFlow's (tests/fixtures/generated/g3265, g20016).
                    let own = plan.get(&id).cloned();
                    let requantize = plan.requantize_for(pos, slot, id);
                    let read = plan
                        .read_params(pos, slot, id)
                        .cloned()
                        .ok_or_else(|| missing(float, id))?;
                    let base_params = match (&own, requantize) {
                        (Some(own), Some(_)) => own.clone(),
                        _ => read.clone(),
                    };
                    let base_key = (id, if own.is_some() { None } else { requantize });
                    let base = *quantized_copy.entry(base_key).or_insert_with(|| {
                        let mut border = Border {
                            graph: &mut g,
                            nodes: &mut nodes,
                            origins: &mut origins,
                            twin_of: &mut twin_of,
                        };
                        border.quantized_twin(
                            id,
                            ActivationType::Int8,
                            "int8",
                            &base_params,
                            node.source_index,
                        )
                    });
                    let copy = match (&own, requantize) {
                        (Some(_), Some(index)) => {
                            let copy =
                                *requantized_copy.entry((base, index)).or_insert_with(|| {
                                    let mut border = Border {
                                        graph: &mut g,
                                        nodes: &mut nodes,
                                        origins: &mut origins,
                                        twin_of: &mut twin_of,
                                    };
                                    border.quantized_twin(
                                        base,
                                        ActivationType::Int8,
                                        "requantized",
                                        &read,
                                        node.source_index,
                                    )
                                });
                            // It stands for the float tensor, as the first copy does.
                            twin_of.insert(copy, id);
                            copy
                        }
                        _ => base,
                    };
                    *input = Some(copy);
                } else if is_int8.contains_key(&id) {
                    // Where two parameter requirements meet, this int8 reader gets the
                    // tensor requantized (the converter's QUANTIZE between int8 tensors).
                    let requantize = match ty {
                        ActivationType::Int8 => plan.requantize_for(pos, slot, id),
                        ActivationType::Int16 => None,
                    };
                    if let Some(index) = requantize {
                        let (Requantize::AfterProducer { read, .. }
                        | Requantize::BeforeReaders { read, .. }) = &plan.requantize[index];
                        let copy = *requantized_copy.entry((id, index)).or_insert_with(|| {
                            let mut border = Border {
                                graph: &mut g,
                                nodes: &mut nodes,
                                origins: &mut origins,
                                twin_of: &mut twin_of,
                            };
                            border.quantized_twin(
                                id,
                                ActivationType::Int8,
                                "requantized",
                                read,
                                node.source_index,
                            )
                        });
                        *input = Some(copy);
                    }
                }
                // An int16 op that reads this input with other parameters than it holds:
                // requantized (int16 to int16) before the op, as TensorFlow's 16x8
                // quantizer does for the ops whose kernels copy or compare codes.
                if ty == ActivationType::Int16 && !t.is_constant() {
                    if let Some(read) = plan.int16.reads.get(&(pos, id)) {
                        let source = input.unwrap_or(id);
                        let copy = *int16_requantized_copy.entry((id, pos)).or_insert_with(|| {
                            let mut border = Border {
                                graph: &mut g,
                                nodes: &mut nodes,
                                origins: &mut origins,
                                twin_of: &mut twin_of,
                            };
                            let copy = border.quantized_twin(
                                source,
                                ty,
                                "requantized",
                                read,
                                node.source_index,
                            );
                            // It stands for the float tensor, as the first copy does.
                            border.twin_of.insert(copy, id);
                            copy
                        });
                        *input = Some(copy);
                    }
                }
            }
        } else {
            for input in new_node.inputs.iter_mut() {
                let Some(id) = *input else { continue };
                if is_int8.contains_key(&id) {
                    // An integer activation feeding a float op: DEQUANTIZE it once.
                    let copy = *float_copy.entry(id).or_insert_with(|| {
                        let mut twin = float.tensors[id].clone();
                        twin.name = format!("{}/float", twin.name);
                        g.tensors.push(twin);
                        let twin_id = g.tensors.len() - 1;
                        nodes.push(border_node(Op::Dequantize, id, twin_id, node.source_index));
                        origins.push(None);
                        twin_of.insert(twin_id, id);
                        twin_id
                    });
                    *input = Some(copy);
                }
            }
        }
        nodes.push(new_node);
        origins.push(Some(pos));
    }

    // 4. Float model outputs computed in int8: the op writes an int8 twin, DEQUANTIZE
    //    writes the original (float) output tensor.
    if !options.int8_io {
        // A model may list one tensor as several outputs: it gets one DEQUANTIZE.
        let mut done = HashSet::new();
        for &out in &float.outputs {
            let Some(&ty) = is_int8.get(&out) else {
                continue;
            };
            if !done.insert(out) {
                continue;
            }
            let mut twin = g.tensors[out].clone();
            twin.name = format!("{}/{}", twin.name, ty.name());
            g.tensors.push(twin);
            let twin_id = g.tensors.len() - 1;
            g.tensors[out] = float.tensors[out].clone();
            for node in nodes.iter_mut() {
                for o in node.outputs.iter_mut().filter(|o| **o == out) {
                    *o = twin_id;
                }
                for i in node.inputs.iter_mut().flatten().filter(|i| **i == out) {
                    *i = twin_id;
                }
            }
            let source = nodes.last().map_or(0, |n| n.source_index);
            nodes.push(border_node(Op::Dequantize, twin_id, out, source));
            origins.push(None);
            twin_of.insert(twin_id, out);
        }
    }
    g.nodes = nodes;
    if !quantized.contains(&true) && !float.nodes.is_empty() {
        // Nothing computes in int8: say so plainly instead of writing an odd model.
        let denied = float_ops
            .iter()
            .filter(|(_, r)| *r == FloatReason::Denylisted)
            .count();
        return Err(Error::Data {
            path: "denylist".into(),
            reason: format!(
                "nothing would be quantized: the denylist keeps {denied} of the model's {n} ops \
                 float and qdbg cannot quantize the rest; remove or narrow a rule"
            ),
        });
    }
    super::check::check_quantized_graph(&g)?;
    Ok(QuantizedModel {
        graph: g,
        node_origin: origins,
        twin_of,
        float_ops,
    })
}

/// What inserting a border op changes: the graph's tensors, the op list being built, the
/// ops' origins and the twins' float tensors.
struct Border<'a> {
    graph: &'a mut Graph,
    nodes: &'a mut Vec<Node>,
    origins: &'a mut Vec<Option<usize>>,
    twin_of: &'a mut HashMap<TensorId, TensorId>,
}

impl Border<'_> {
    /// An int8 or int16 twin of `id` with parameters `q`, written by a QUANTIZE (from
    /// float, or between integer types) placed before the op being built; named
    /// `{id's}/{suffix}`.
    fn quantized_twin(
        &mut self,
        id: TensorId,
        ty: ActivationType,
        suffix: &str,
        q: &QuantParams,
        source_index: usize,
    ) -> TensorId {
        let mut twin = self.graph.tensors[id].clone();
        twin.name = format!("{}/{suffix}", twin.name);
        set_quantized(&mut twin, q.clone(), ty);
        self.graph.tensors.push(twin);
        let twin_id = self.graph.tensors.len() - 1;
        self.nodes
            .push(border_node(Op::Quantize, id, twin_id, source_index));
        self.origins.push(None);
        self.twin_of.insert(twin_id, id);
        twin_id
    }
}

fn missing(graph: &Graph, id: TensorId) -> Error {
    Error::Internal(format!(
        "tensor {id} ('{}') has no calibrated range; recalibrate with --recalibrate",
        graph.tensor(id).name
    ))
}

fn set_quantized(t: &mut Tensor, q: QuantParams, ty: ActivationType) {
    t.dtype = ty.dtype();
    t.quant = Some(q);
}

fn border_node(op: Op, input: TensorId, output: TensorId, source_index: usize) -> Node {
    Node {
        op,
        inputs: vec![Some(input)],
        outputs: vec![output],
        source_index,
    }
}

/// Puts a converted constant in place of the original when nothing else reads it.
fn replace_or_append(
    g: &mut Graph,
    id: TensorId,
    converted: Tensor,
    users: &HashMap<TensorId, usize>,
) -> TensorId {
    if users.get(&id).copied().unwrap_or(0) <= 1 {
        g.tensors[id] = converted;
        id
    } else {
        g.tensors.push(converted);
        g.tensors.len() - 1
    }
}

fn float_values(t: &Tensor) -> Result<Vec<f32>> {
    t.data
        .as_ref()
        .and_then(TensorData::to_f32)
        .ok_or_else(|| Error::Internal(format!("constant '{}' has no float data", t.name)))
}

/// The largest |int32 bias| TensorFlow's quantizer lets a bias take.
const BIAS_LIMIT: f64 = (1u64 << 30) as f64;

/// Per channel, the smallest weight scale that keeps `bias / (input_scale * weight_scale)`
/// within [`BIAS_LIMIT`]. TensorFlow's quantizer raises a channel's weight scale to it when
/// the weights alone would give a smaller one (dead or near-zero weights under a real bias),
/// instead of letting the int32 bias saturate.
fn bias_fitting_scales(bias: &[f32], input_scale: f32) -> Vec<f32> {
    bias.iter()
        .map(|&b| (f64::from(b).abs() / (f64::from(input_scale) * BIAS_LIMIT)) as f32)
        .collect()
}

/// Symmetric int8 weights, values in [-127, 127], one scale per slice along `axis`, each
/// at least `floor[c]` when given (see [`bias_fitting_scales`]).
fn quantize_weight(t: &Tensor, axis: usize, floor: &[f32]) -> Result<(Tensor, Vec<f32>)> {
    let values = float_values(t)?;
    let mut scales = symmetric_weight_scales(&values, &t.shape, axis);
    if floor.len() == scales.len() {
        for (s, &f) in scales.iter_mut().zip(floor) {
            *s = s.max(f);
        }
    }
    let channels = scales.len();
    // `round` as TFLite's quantizer, without a libm call per weight.
    let quantize = |v: f32, s: f32| crate::ops::round_half_away(v / s).clamp(-127, 127) as i8;
    let mut q: Vec<i8> = Vec::with_capacity(values.len());
    for_each_channel_run(&values, &t.shape, axis, |run| match run {
        ChannelRun::Across(row) => {
            q.extend(row.iter().zip(&scales).map(|(&v, &s)| quantize(v, s)));
        }
        ChannelRun::Within(c, row) => q.extend(row.iter().map(|&v| quantize(v, scales[c]))),
    });
    let mut out = t.without_data();
    out.dtype = DType::I8;
    out.data = Some(TensorData::I8(q));
    out.quant = Some(QuantParams {
        scale: scales.clone(),
        zero_point: vec![0; channels],
        axis,
    });
    Ok((out, scales))
}

/// int32 bias with scale `input_scale * weight_scale[c]` and zero point 0.
fn quantize_bias(t: &Tensor, input_scale: f32, weight_scales: &[f32]) -> Result<Tensor> {
    let values = float_values(t)?;
    let scales: Vec<f32> = if weight_scales.len() == values.len() {
        weight_scales.iter().map(|w| input_scale * w).collect()
    } else {
        vec![input_scale * weight_scales[0]; values.len()]
    };
    // As TensorFlow's quantizer: times the float32 reciprocal of the scale, in float32.
    let q: Vec<i32> = values
        .iter()
        .zip(&scales)
        .map(|(&v, &s)| {
            let inverse = (1.0 / f64::from(s)) as f32;
            crate::ops::round_half_away(v * inverse).clamp(-(i32::MAX as i64), i32::MAX as i64)
                as i32
        })
        .collect();
    let mut out = t.without_data();
    out.dtype = DType::I32;
    out.data = Some(TensorData::I32(q));
    out.quant = Some(QuantParams {
        zero_point: vec![0; scales.len()],
        scale: scales,
        axis: 0,
    });
    Ok(out)
}

/// int64 bias of a 16x8 op, scale `input_scale * weight_scale[c]`, zero point 0, rounded
/// as [`quantize_bias`] rounds (TensorFlow's quantizer, the same arithmetic for both).
fn quantize_bias64(t: &Tensor, input_scale: f32, weight_scales: &[f32]) -> Result<Tensor> {
    let values = float_values(t)?;
    let scales: Vec<f32> = if weight_scales.len() == values.len() {
        weight_scales.iter().map(|w| input_scale * w).collect()
    } else {
        vec![input_scale * weight_scales[0]; values.len()]
    };
    let q: Vec<i64> = values
        .iter()
        .zip(&scales)
        .map(|(&v, &s)| {
            let inverse = (1.0 / f64::from(s)) as f32;
            crate::ops::round_half_away(v * inverse)
        })
        .collect();
    let mut out = t.without_data();
    out.dtype = DType::I64;
    out.data = Some(TensorData::I64(q));
    out.quant = Some(QuantParams {
        zero_point: vec![0; scales.len()],
        scale: scales,
        axis: 0,
    });
    Ok(out)
}

/// The symmetric int16 scale of a constant a 16x8 op reads (a MUL's constant operand):
/// `max |v| / 32767`, as TensorFlow's 16x8 quantizer gives it.
fn int16_symmetric_scale(values: &[f32]) -> f32 {
    let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if largest > 0.0 {
        largest / 32767.0
    } else {
        1.0 / 32767.0
    }
}

/// A float constant as int16 codes with given per-tensor parameters (zero point 0).
fn quantize_constant_int16(t: &Tensor, q: &QuantParams) -> Result<Tensor> {
    let values = float_values(t)?;
    let s = q.scale[0];
    let data: Vec<i16> = values
        .iter()
        .map(|&v| crate::ops::round_half_away(v / s).clamp(-32768, 32767) as i16)
        .collect();
    let mut out = t.without_data();
    out.dtype = DType::I16;
    out.data = Some(TensorData::I16(data));
    out.quant = Some(q.clone());
    Ok(out)
}

/// Any other float constant an int8 op reads (an ADD's constant operand): asymmetric int8
/// over its own range, as the converter does.
fn quantize_constant(t: &Tensor) -> Result<Tensor> {
    let values = float_values(t)?;
    let (lo, hi) = values
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    quantize_constant_with(t, &super::params::activation_params(lo, hi))
}

/// A float constant quantized symmetric with given per-tensor parameters, as
/// [`quantize_weight`] rounds and clamps.
fn quantize_weight_with(t: &Tensor, q: &QuantParams) -> Result<Tensor> {
    let values = float_values(t)?;
    let s = q.scale[0];
    let data: Vec<i8> = values
        .iter()
        .map(|&v| crate::ops::round_half_away(v / s).clamp(-127, 127) as i8)
        .collect();
    let mut out = t.without_data();
    out.dtype = DType::I8;
    out.data = Some(TensorData::I8(data));
    out.quant = Some(q.clone());
    Ok(out)
}

/// A float constant quantized with given per-tensor parameters.
fn quantize_constant_with(t: &Tensor, q: &QuantParams) -> Result<Tensor> {
    let values = float_values(t)?;
    let q = q.clone();
    let (s, zp) = (q.scale[0], q.zero_point[0]);
    let data: Vec<i8> = values
        .iter()
        .map(|&v| ((v / s).round() as i64 + zp).clamp(-128, 127) as i8)
        .collect();
    let mut out = t.without_data();
    out.dtype = DType::I8;
    out.data = Some(TensorData::I8(data));
    out.quant = Some(q);
    Ok(out)
}

/// Float islands: the groups of connected ops left in float, i.e. the partitions an
/// integer-only accelerator would hand back to the CPU. Two float ops are in one island
/// when one reads a tensor the other writes.
pub fn float_islands(model: &QuantizedModel) -> usize {
    let g = &model.graph;
    let float_node: Vec<bool> = g
        .nodes
        .iter()
        .map(|n| {
            !matches!(n.op, Op::Quantize | Op::Dequantize)
                && !crate::ops::quantized::node_is_quantized(g, n)
        })
        .collect();
    let mut parent: Vec<usize> = (0..g.nodes.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut producer: HashMap<TensorId, usize> = HashMap::new();
    for (pos, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            producer.insert(o, pos);
        }
    }
    for (pos, n) in g.nodes.iter().enumerate() {
        if !float_node[pos] {
            continue;
        }
        for id in n.inputs.iter().flatten() {
            if let Some(&p) = producer.get(id).filter(|&&p| float_node[p]) {
                let (a, b) = (find(&mut parent, pos), find(&mut parent, p));
                parent[a] = b;
            }
        }
    }
    let roots: std::collections::HashSet<usize> = (0..g.nodes.len())
        .filter(|&i| float_node[i])
        .map(|i| find(&mut parent, i))
        .collect();
    roots.len()
}
