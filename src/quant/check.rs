//! The pre-write checker: every int8 op of a quantized graph against LiteRT's parameter
//! requirements, before the model is written or run.
//!
//! LiteRT checks few of these at run time: a RESHAPE whose input and output parameters
//! differ silently reinterprets the bytes, and every value of that head comes out wrong.
//! A violation here is a bug in qdbg's planner (never the user's input), so it is an
//! internal error naming the op and the tensors, instead of a silently broken model.

use crate::error::{Error, Result};
use crate::graph::{BinaryKind, DType, Graph, Node, Op, TensorId};
use crate::kernels::int8::binary::ADD_MIN_OUTPUT_SCALE_RATIO;
use crate::ops::quantized::node_is_quantized;
use crate::ops::{param_rule, weight_slots, ParamRule, WeightSlots};

/// Bias scales are products of two f32 scales; the converter rounds them to f32 too.
const BIAS_SCALE_TOLERANCE: f32 = 1e-5;

fn describe(graph: &Graph, id: TensorId) -> String {
    let t = graph.tensor(id);
    match &t.quant {
        Some(q) if !q.is_per_channel() => format!(
            "'{}' ({} scale {} zero point {})",
            t.name, t.dtype, q.scale[0], q.zero_point[0]
        ),
        Some(q) => format!(
            "'{}' ({} per-channel, {} scales)",
            t.name,
            t.dtype,
            q.scale.len()
        ),
        None => format!("'{}' ({}, no quantization)", t.name, t.dtype),
    }
}

fn violation(node: &Node, what: String) -> Error {
    Error::Internal(format!(
        "the quantized model breaks LiteRT's parameter rules at op #{} ({}): {what}",
        node.source_index,
        node.op.display_name()
    ))
}

fn is_quantized_activation(graph: &Graph, id: TensorId) -> bool {
    let t = graph.tensor(id);
    !t.is_constant() && matches!(t.dtype, DType::I8 | DType::I16) && t.quant.is_some()
}

fn check_params_valid(graph: &Graph, node: &Node, id: TensorId) -> Result<()> {
    let t = graph.tensor(id);
    let Some(q) = &t.quant else { return Ok(()) };
    let (lo, hi) = match t.dtype {
        DType::I8 => (-128, 127),
        DType::I16 => (0, 0),
        DType::I32 => (0, 0),
        _ => return Ok(()),
    };
    let bad_scale = q.scale.iter().any(|s| !(s.is_finite() && *s > 0.0));
    let bad_zero = q.zero_point.iter().any(|&z| z < lo || z > hi);
    if bad_scale || bad_zero || q.scale.len() != q.zero_point.len() {
        return Err(violation(
            node,
            format!("tensor {} has invalid parameters", describe(graph, id)),
        ));
    }
    Ok(())
}

/// Checks every quantized op of `graph` (a graph made by [`super::quantize_graph`]).
pub fn check_quantized_graph(graph: &Graph) -> Result<()> {
    for node in &graph.nodes {
        match node.op {
            Op::Dequantize => {
                let input = node
                    .input(0)
                    .ok_or_else(|| violation(node, "DEQUANTIZE without an input".to_string()))?;
                if !is_quantized_activation(graph, input) && !graph.tensor(input).is_constant() {
                    return Err(violation(
                        node,
                        format!("DEQUANTIZE reads {}", describe(graph, input)),
                    ));
                }
                continue;
            }
            Op::Quantize => {
                for &out in &node.outputs {
                    if !is_quantized_activation(graph, out) {
                        return Err(violation(
                            node,
                            format!("QUANTIZE writes {}", describe(graph, out)),
                        ));
                    }
                }
                continue;
            }
            _ => {}
        }
        if !node_is_quantized(graph, node) {
            continue;
        }
        for &id in node.inputs.iter().flatten().chain(&node.outputs) {
            check_params_valid(graph, node, id)?;
        }
        let data_inputs: Vec<TensorId> = node
            .inputs
            .iter()
            .flatten()
            .copied()
            .filter(|&id| is_quantized_activation(graph, id))
            .collect();
        if let Some(&float_in) = node
            .inputs
            .iter()
            .flatten()
            .find(|&&id| !graph.tensor(id).is_constant() && graph.tensor(id).dtype.is_float())
        {
            return Err(violation(
                node,
                format!("an int8 op reads float {}", describe(graph, float_in)),
            ));
        }
        match param_rule(&node.op) {
            ParamRule::SameScale => {
                let out = node.outputs[0];
                let want = graph.tensor(out).quant.clone();
                let constants = node.inputs.iter().flatten().copied().filter(|&id| {
                    let t = graph.tensor(id);
                    t.is_constant() && t.dtype == graph.tensor(out).dtype
                });
                for id in data_inputs
                    .iter()
                    .copied()
                    .chain(constants)
                    .chain(node.outputs.iter().copied().skip(1))
                {
                    if graph.tensor(id).quant != want {
                        return Err(violation(
                            node,
                            format!(
                                "{} must have the parameters of {} (LiteRT copies or compares \
                                 raw values)",
                                describe(graph, id),
                                describe(graph, out)
                            ),
                        ));
                    }
                }
            }
            ParamRule::FixedOutput(fixed) => {
                let out = node.outputs[0];
                if graph.tensor(out).dtype == DType::I8
                    && graph.tensor(out).quant.as_ref() != Some(&fixed)
                {
                    return Err(violation(
                        node,
                        format!(
                            "output {} must have scale {} zero point {}",
                            describe(graph, out),
                            fixed.scale[0],
                            fixed.zero_point[0]
                        ),
                    ));
                }
            }
            ParamRule::Own => {}
        }
        check_weights(graph, node)?;
        check_add_rescale(graph, node, &data_inputs)?;
    }
    Ok(())
}

/// LiteRT's int8 ADD and SUB refuse an output scale under
/// [`ADD_MIN_OUTPUT_SCALE_RATIO`] (2^-19) times the larger input scale: their output
/// multiplier would reach 1, and LiteRT aborts while preparing the op.
fn check_add_rescale(graph: &Graph, node: &Node, data_inputs: &[TensorId]) -> Result<()> {
    if !matches!(
        node.op,
        Op::Binary {
            kind: BinaryKind::Add | BinaryKind::Sub,
            ..
        }
    ) {
        return Ok(());
    }
    let scale = |id: TensorId| {
        graph
            .tensor(id)
            .quant
            .as_ref()
            .map_or(0.0, |q| f64::from(q.scale[0]))
    };
    let constants = node
        .inputs
        .iter()
        .flatten()
        .copied()
        .filter(|&id| graph.tensor(id).is_constant());
    let largest = data_inputs
        .iter()
        .copied()
        .chain(constants)
        .map(scale)
        .fold(0.0, f64::max);
    let out = node.outputs[0];
    let multiplier = largest * ADD_MIN_OUTPUT_SCALE_RATIO / scale(out);
    // A NaN multiplier (a zero output scale) is refused too.
    if multiplier.is_nan() || multiplier >= 1.0 {
        return Err(violation(
            node,
            format!(
                "output {} is too fine for inputs of scale {largest}: LiteRT's output \
                 multiplier would be {multiplier} (it must be below 1)",
                describe(graph, out)
            ),
        ));
    }
    Ok(())
}

/// Symmetric int8 weights (zero point 0) and int32 biases whose scale is the input scale
/// times each channel's weight scale.
fn check_weights(graph: &Graph, node: &Node) -> Result<()> {
    let Some(WeightSlots::Filter {
        filter: weight_slot,
        bias: bias_slot,
        data: input_slot,
        ..
    }) = weight_slots(&node.op)
    else {
        return Ok(());
    };
    let (Some(w), Some(x)) = (node.input(weight_slot), node.input(input_slot)) else {
        return Ok(());
    };
    let weight = graph.tensor(w);
    let Some(wq) = weight.quant.as_ref().filter(|_| weight.is_constant()) else {
        return Ok(()); // weights computed at run time: nothing fixed to check
    };
    if wq.zero_point.iter().any(|&z| z != 0) {
        return Err(violation(
            node,
            format!("weights {} are not symmetric", describe(graph, w)),
        ));
    }
    let Some(bias) = node.input(bias_slot) else {
        return Ok(());
    };
    let (Some(bq), Some(xq)) = (
        graph.tensor(bias).quant.as_ref(),
        graph.tensor(x).quant.as_ref(),
    ) else {
        return Ok(());
    };
    let expected = |c: usize| xq.scale[0] * wq.scale[if wq.is_per_channel() { c } else { 0 }];
    let wrong = bq
        .scale
        .iter()
        .enumerate()
        .any(|(c, &s)| ((s - expected(c)) / expected(c)).abs() > BIAS_SCALE_TOLERANCE);
    if wrong || bq.zero_point.iter().any(|&z| z != 0) {
        return Err(violation(
            node,
            format!(
                "bias {} must have scale input scale x weight scale ({} x {}) and zero point 0",
                describe(graph, bias),
                xq.scale[0],
                wq.scale[0]
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{QuantParams, Tensor, TensorData};

    fn int8(name: &str, scale: f32, zero_point: i64) -> Tensor {
        Tensor {
            name: name.into(),
            shape: vec![1, 4],
            shape_signature: None,
            dtype: DType::I8,
            data: None,
            quant: Some(QuantParams::per_tensor(scale, zero_point)),
        }
    }

    fn reshape_graph(out_scale: f32) -> Graph {
        let mut shape = int8("shape", 1.0, 0);
        shape.dtype = DType::I32;
        shape.quant = None;
        shape.data = Some(TensorData::I32(vec![1, 4]));
        Graph {
            tensors: vec![int8("in", 0.038, 3), int8("out", out_scale, 3), shape],
            nodes: vec![Node {
                op: Op::Reshape,
                inputs: vec![Some(0), Some(2)],
                outputs: vec![1],
                source_index: 7,
            }],
            inputs: vec![0],
            outputs: vec![1],
            ..Graph::default()
        }
    }

    #[test]
    fn a_reshape_that_would_reinterpret_bytes_is_refused_by_name() {
        assert!(check_quantized_graph(&reshape_graph(0.038)).is_ok());
        let err = check_quantized_graph(&reshape_graph(0.3)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Internal(_)));
        for needle in ["op #7 (RESHAPE)", "'out'", "'in'", "0.3", "0.038"] {
            assert!(text.contains(needle), "'{needle}' missing from: {text}");
        }
    }

    #[test]
    fn a_dequantize_of_a_float_tensor_is_refused() {
        let mut g = reshape_graph(0.038);
        let mut float = int8("float_out", 1.0, 0);
        float.dtype = DType::F32;
        float.quant = None;
        g.tensors.push(float.clone());
        g.tensors.push(Tensor {
            name: "deq".into(),
            ..float
        });
        g.nodes.push(Node {
            op: Op::Dequantize,
            inputs: vec![Some(3)],
            outputs: vec![4],
            source_index: 8,
        });
        let text = check_quantized_graph(&g).unwrap_err().to_string();
        assert!(
            text.contains("DEQUANTIZE reads 'float_out' (float32"),
            "{text}"
        );
    }

    #[test]
    fn a_logistic_output_off_its_fixed_range_is_refused() {
        let g = Graph {
            tensors: vec![int8("x", 0.1, 0), int8("y", 0.1, 0)],
            nodes: vec![Node {
                op: Op::Unary(crate::graph::UnaryKind::Logistic),
                inputs: vec![Some(0)],
                outputs: vec![1],
                source_index: 0,
            }],
            ..Graph::default()
        };
        let text = check_quantized_graph(&g).unwrap_err().to_string();
        assert!(text.contains("scale 0.00390625 zero point -128"), "{text}");
    }

    fn add_graph(out_scale: f32) -> Graph {
        Graph {
            tensors: vec![
                int8("a", 0.013_41, -100),
                int8("b", 0.005_7, 127),
                int8("sum", out_scale, 0),
            ],
            nodes: vec![Node {
                op: Op::Binary {
                    kind: BinaryKind::Add,
                    activation: crate::graph::FusedActivation::Relu,
                },
                inputs: vec![Some(0), Some(1)],
                outputs: vec![2],
                source_index: 3,
            }],
            inputs: vec![0, 1],
            outputs: vec![2],
            ..Graph::default()
        }
    }

    #[test]
    fn an_add_output_too_fine_for_litert_is_refused() {
        // TensorFlow's int8 model of tests/fixtures/generated/g10071: an ADD + RELU that is
        // always 0 on the data gets scale 7.843137e-9 from inputs of scale 0.01341, and
        // LiteRT aborts preparing it: 2 x 0.01341 / (2^20 x 7.843137e-9) = 3.26 >= 1.
        let err = check_quantized_graph(&add_graph(7.843_137e-9))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sum") && err.contains("below 1"), "{err}");
        // At 2^-16 of the larger input scale (qdbg's floor) the multiplier is 0.125.
        check_quantized_graph(&add_graph(0.013_41 / 65536.0)).unwrap();
    }
}
