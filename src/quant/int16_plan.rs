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
//! - a same-scale op (reshapes) takes the parameters of its input, in graph order;
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
use crate::graph::{DType, Graph, QuantParams, TensorId};
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
                let p = match param_rule(&node.op) {
                    ParamRule::FixedOutput(_) => Some(fixed_int16_output()),
                    ParamRule::SameScale => input_params.clone(),
                    ParamRule::Own => own(out),
                };
                match p {
                    Some(p) => {
                        choice.params.insert(out, p);
                    }
                    None => complete = false,
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
