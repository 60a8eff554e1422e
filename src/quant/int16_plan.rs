//! 16x8 planning: which ops compute with int16 activations, and the int16 parameters of
//! the tensors they read and write.
//!
//! TensorFlow's converter makes 16x8 models with its older quantizer (the one behind
//! `Calibrator.calibrate_and_quantize`, not the MLIR one that makes int8 models), whose
//! rules are simpler than the int8 planner's (`quant::plan`):
//!
//! - every int16 activation is symmetric, zero point 0, scale `max(|min|, |max|) / 32767`
//!   in f32 over its calibrated range (the calibrator's ranges, in-place widening
//!   included, and no near-zero widening);
//! - fixed-output ops (LOGISTIC, TANH, SOFTMAX) write 2^-15, zero point 0: LiteRT's 16x8
//!   kernels require exactly that;
//! - a same-scale op (reshapes, slicing, PAD, RESIZE_*, REDUCE_MAX, and SUM, which the
//!   16x8 quantizer gives its input's parameters although LiteRT's kernel rescales) takes
//!   the parameters of its input, in graph order;
//! - CONCATENATION, MAXIMUM and MINIMUM keep their output's own parameters and read every
//!   input whose parameters differ through a QUANTIZE (int16 to int16) to the output's:
//!   LiteRT's int16 kernels copy or compare codes;
//! - an op without a 16x8 kernel stays float between DEQUANTIZE and QUANTIZE
//!   (`TFLITE_BUILTINS` beside the 16x8 op set), and a float tensor read by several int16
//!   ops gets one QUANTIZE per reader.
//!
//! The choice is per op ([`Int16Choice::ops`]), not one switch for the whole model, so
//! that rules can later pick int16 for some ops only: an int8 tensor read by an int16 op
//! (or the reverse) is requantized at the edge by `quantize_graph`, with the reading op's
//! parameters for that tensor, which this module computes for every tensor an int16 op
//! touches.

use std::collections::{HashMap, HashSet};

use super::calibration::{Calibration, TensorRange};
use super::plan::{tensorflow_inplace_widening, ActivationPlan};
use crate::graph::{BinaryKind, DType, Graph, Op, QuantParams, ReduceKind, TensorId};
use crate::ops::{has_int16_kernel, param_rule, ParamRule};

/// The integer type an op computes in (and stores its activations as).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActivationType {
    /// int8 activations, int8 weights, int32 biases.
    Int8,
    /// 16x8: int16 activations (zero point 0), int8 weights, int64 biases.
    Int16,
}

impl ActivationType {
    /// The graph dtype of the activations.
    pub fn dtype(self) -> DType {
        match self {
            ActivationType::Int8 => DType::I8,
            ActivationType::Int16 => DType::I16,
        }
    }

    /// The name used in tensor names and messages ("int8", "int16").
    pub fn name(self) -> &'static str {
        match self {
            ActivationType::Int8 => "int8",
            ActivationType::Int16 => "int16",
        }
    }
}

/// The ops computing in 16x8 and the int16 parameters of every tensor they touch.
#[derive(Clone, Debug, Default)]
pub struct Int16Choice {
    /// Positions in the float graph's `nodes`.
    pub ops: HashSet<usize>,
    pub params: HashMap<TensorId, QuantParams>,
    /// Inputs an int16 op reads with other parameters than the tensor holds, keyed by
    /// (op position, tensor): CONCATENATION, MAXIMUM and MINIMUM read each input with
    /// their output's parameters, through a QUANTIZE the quantizer inserts.
    pub reads: HashMap<(usize, TensorId), QuantParams>,
}

/// How TensorFlow's 16x8 quantizer sets an op's int16 parameters, where it differs from
/// the int8 rule ([`param_rule`]).
#[derive(Clone, Debug, PartialEq)]
enum Int16Rule {
    /// The int8 rule: own range, fixed output, or the input's parameters.
    AsInt8(ParamRule),
    /// The output keeps its own range; every input is read with the output's parameters
    /// (the quantizer's "same input and output scale, any number of inputs" ops).
    InputsTakeOutput,
}

fn int16_rule(op: &Op) -> Int16Rule {
    match op {
        Op::Concatenation { .. }
        | Op::Binary {
            kind: BinaryKind::Maximum | BinaryKind::Minimum,
            ..
        } => Int16Rule::InputsTakeOutput,
        // The 16x8 quantizer copies SUM's input parameters to its output (checked on
        // tests/fixtures/16x8/ops_spatial.16x8.tflite: the sum of four channels keeps
        // its input's scale), where the int8 converter calibrates the output.
        Op::Reduce {
            kind: ReduceKind::Sum,
            ..
        } => Int16Rule::AsInt8(ParamRule::SameScale),
        _ => Int16Rule::AsInt8(param_rule(op)),
    }
}

/// The largest int16 code a symmetric activation uses (TensorFlow leaves -32768 unused).
const INT16_HALF_RANGE: f32 = 32767.0;

/// The fixed output parameters of LOGISTIC, TANH and SOFTMAX in 16x8: scale 2^-15, zero
/// point 0, which LiteRT's int16 kernels require whatever the int8 rule is.
fn fixed_int16_output() -> QuantParams {
    QuantParams::per_tensor(1.0 / 32768.0, 0)
}

/// Symmetric int16 parameters for a range, as TensorFlow's 16x8 quantizer computes them:
/// the range widened to include 0, scale `max(|min|, |max|) / 32767` in f32.
pub fn int16_activation_params(range: TensorRange) -> QuantParams {
    let (lo, hi) = (range.min.min(0.0), range.max.max(0.0));
    let largest = lo.abs().max(hi.abs());
    if largest == 0.0 || !largest.is_finite() {
        // An all-zero tensor: any scale represents it, and LiteRT refuses scale 0.
        return QuantParams::per_tensor(1.0 / INT16_HALF_RANGE, 0);
    }
    QuantParams::per_tensor(largest / INT16_HALF_RANGE, 0)
}

/// The ops TensorFlow's 16x8 conversion quantizes and qdbg can run in 16x8: every op
/// with a 16x8 kernel in qdbg. The others stay float, as the converter keeps ops without
/// a 16x8 kernel float when `TFLITE_BUILTINS` is allowed beside the 16x8 op set.
pub fn whole_model_int16_ops(graph: &Graph) -> HashSet<usize> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op.custom_options().is_none() && has_int16_kernel(&n.op))
        .map(|(pos, _)| pos)
        .collect()
}

impl ActivationPlan {
    /// This plan with `ops` computing in 16x8: the int16 parameters of every float
    /// activation they read or write, following TensorFlow's 16x8 quantizer (see the
    /// module docs). Ops in `ops` without a 16x8 kernel are left out (they keep their
    /// int8 or float treatment).
    pub fn with_int16_ops(
        mut self,
        graph: &Graph,
        calibration: &Calibration,
        ops: &HashSet<usize>,
    ) -> ActivationPlan {
        let ranges: HashMap<TensorId, TensorRange> =
            tensorflow_inplace_widening(graph, calibration);
        let data = |id: TensorId| {
            let t = graph.tensor(id);
            !t.is_constant() && t.dtype.is_float()
        };
        let own = |id: TensorId| ranges.get(&id).map(|&r| int16_activation_params(r));
        let mut choice = Int16Choice::default();
        for (pos, node) in graph.nodes.iter().enumerate() {
            if !ops.contains(&pos) || !has_int16_kernel(&node.op) {
                continue;
            }
            let rule = int16_rule(&node.op);
            // What it reads: tensors written by another int16 op already have theirs;
            // the rest (model inputs, float or int8 producers) their own range.
            let mut input_params = None;
            let mut complete = true;
            for id in node.inputs.iter().flatten().copied().filter(|&id| data(id)) {
                if let std::collections::hash_map::Entry::Vacant(e) = choice.params.entry(id) {
                    match own(id) {
                        Some(p) => {
                            e.insert(p);
                        }
                        None => complete = false,
                    }
                }
                if input_params.is_none() {
                    input_params = choice.params.get(&id).cloned();
                }
            }
            for &out in node.outputs.iter().filter(|&&id| data(id)) {
                let p = match &rule {
                    Int16Rule::AsInt8(ParamRule::FixedOutput(_)) => Some(fixed_int16_output()),
                    Int16Rule::AsInt8(ParamRule::SameScale) => input_params.clone(),
                    Int16Rule::AsInt8(ParamRule::Own) | Int16Rule::InputsTakeOutput => own(out),
                };
                match p {
                    Some(p) => {
                        choice.params.insert(out, p);
                    }
                    None => complete = false,
                }
            }
            if complete && rule == Int16Rule::InputsTakeOutput {
                if let Some(out_params) = node.outputs.first().and_then(|o| choice.params.get(o)) {
                    let out_params = out_params.clone();
                    for id in node.inputs.iter().flatten().copied().filter(|&id| data(id)) {
                        if choice.params.get(&id) != Some(&out_params) {
                            choice.reads.insert((pos, id), out_params.clone());
                        }
                    }
                }
            }
            // An op some of whose tensors have no range stays as the int8 plan has it
            // (the quantizer keeps such ops float as not calibrated).
            if complete {
                choice.ops.insert(pos);
            }
        }
        self.int16 = choice;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_scale_over_the_larger_end() {
        // [-1.5, 3.0]: 3 / 32767, zero point 0; a positive-only range includes 0 first.
        let p = int16_activation_params(TensorRange {
            min: -1.5,
            max: 3.0,
        });
        assert_eq!(p, QuantParams::per_tensor(3.0f32 / 32767.0, 0));
        let p = int16_activation_params(TensorRange {
            min: -4.0,
            max: 0.5,
        });
        assert_eq!(p, QuantParams::per_tensor(4.0f32 / 32767.0, 0));
        let p = int16_activation_params(TensorRange { min: 2.0, max: 6.0 });
        assert_eq!(p, QuantParams::per_tensor(6.0f32 / 32767.0, 0));
    }
}
