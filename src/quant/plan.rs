//! Activation quantization parameters for a whole graph, resolved the way TensorFlow's
//! converter resolves them, in one constraint pass.
//!
//! Every op's rule is data ([`crate::ops::param_rule`], from its op family): its own calibrated range (the default), a fixed
//! output range (SOFTMAX, LOGISTIC, TANH), or "same scale": LiteRT's int8 kernel copies or
//! compares raw values, so the op's float inputs and outputs must share one set of
//! parameters (reshapes, pooling, padding, slicing, concatenation, MAXIMUM, ...). The pass
//! reproduces what the converter's quantizer does with those rules on a calibrated model:
//!
//! 1. **Ranges.** Calibrated min/max, with two of the converter's adjustments: a range an
//!    in-place ADD/SUB/MUL/DIV widened during calibration (see [`tensorflow_inplace_widening`]),
//!    and a range narrower than 1e-6 widened by 1e-6 on each side (`kNearZeroTolerance`:
//!    a dead channel would otherwise get a scale of 1e-13 and pin its neighbours).
//! 2. **Which ranges count.** The output range of a same-scale op with a single float
//!    input is dropped: it follows its input. Walking backwards from every range that
//!    still counts and belongs to a same-scale op's output, the ranges of that op's inputs
//!    are dropped too, through whole chains of same-scale ops: a detection head's
//!    `CONV_2D -> RESHAPE -> CONCATENATION` takes the concatenation's parameters all the
//!    way up to the convolution. Fixed-range outputs drop theirs.
//! 3. **Propagation.** What counts is pinned; everything else gets its parameters from a
//!    work list over the ops, visited from the last op backwards as the converter's
//!    quantization driver does: a same-scale op takes the parameters of a pinned input when
//!    it has one input, of a pinned output when it has one output, else the first pinned,
//!    else the first known, and gives them to all its float inputs and outputs. Where a
//!    tensor already holds other parameters, a requantize is recorded instead
//!    ([`Requantize`]): exactly where the converter inserts its QUANTIZE ops.

use std::collections::{HashMap, HashSet};

use super::calibration::{Calibration, TensorRange};
pub use super::int16_plan::{ActivationType, Int16Choice};
use super::params::activation_params_wide;
use crate::graph::{BinaryKind, Graph, Node, Op, QuantParams, TensorId};
use crate::kernels::int8::binary::ADD_MIN_OUTPUT_SCALE_RATIO;
use crate::ops::{param_rule, ParamRule};

/// Ranges narrower than this are widened by it on both sides (TensorFlow's quantizer).
pub const NEAR_ZERO_TOLERANCE: f64 = 1.0e-6;

/// Where the converter puts a requantize (an int8 -> int8 QUANTIZE) to meet two
/// parameter requirements on one tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Requantize {
    /// The op producing `tensor` writes it with its planned parameters; a requantize
    /// right after it gives every reader `read` instead.
    AfterProducer { tensor: TensorId, read: QuantParams },
    /// These readers, as (node position, input slot), read `tensor` requantized to `read`.
    BeforeReaders {
        tensor: TensorId,
        read: QuantParams,
        readers: Vec<(usize, usize)>,
    },
}

/// Quantization parameters per activation tensor id, and the requantizes between them.
#[derive(Clone, Debug, Default)]
pub struct ActivationPlan {
    params: HashMap<TensorId, QuantParams>,
    pub requantize: Vec<Requantize>,
    /// DIVs (positions in `graph.nodes`) that LiteRT's int8 kernel would refuse to run on the
    /// calibration data, kept float: see
    /// [`super::division_check::keep_refused_divisions_float`].
    pub divisor_on_zero_point: HashSet<usize>,
    /// Which ops compute in 16x8 and the int16 parameters of their tensors
    /// ([`super::int16_plan`]); every other quantized op computes in int8.
    pub int16: Int16Choice,
}

impl ActivationPlan {
    /// The integer type op `pos` of the float graph computes in.
    pub fn activation_type(&self, pos: usize) -> ActivationType {
        if self.int16.ops.contains(&pos) {
            ActivationType::Int16
        } else {
            ActivationType::Int8
        }
    }

    /// A tensor's parameters as an op of type `ty` reads or writes it.
    pub fn params_as(&self, id: &TensorId, ty: ActivationType) -> Option<&QuantParams> {
        match ty {
            ActivationType::Int8 => self.params.get(id),
            ActivationType::Int16 => self.int16.params.get(id),
        }
    }

    pub fn get(&self, id: &TensorId) -> Option<&QuantParams> {
        self.params.get(id)
    }

    pub fn contains_key(&self, id: &TensorId) -> bool {
        self.params.contains_key(id)
    }

    /// The requantize (its index in [`Self::requantize`]) through which node `pos` reads
    /// `tensor` in input `slot`, if any.
    pub fn requantize_for(&self, pos: usize, slot: usize, tensor: TensorId) -> Option<usize> {
        self.requantize.iter().position(|r| match r {
            Requantize::AfterProducer { tensor: t, .. } => *t == tensor,
            Requantize::BeforeReaders {
                tensor: t, readers, ..
            } => *t == tensor && readers.contains(&(pos, slot)),
        })
    }

    /// The parameters `node` (at `pos`) reads its input `slot` with, after any requantize.
    pub fn read_params(&self, pos: usize, slot: usize, tensor: TensorId) -> Option<&QuantParams> {
        match self.requantize_for(pos, slot, tensor) {
            Some(i) => match &self.requantize[i] {
                Requantize::AfterProducer { read, .. } | Requantize::BeforeReaders { read, .. } => {
                    Some(read)
                }
            },
            None => self.params.get(&tensor),
        }
    }
}

impl std::ops::Index<&TensorId> for ActivationPlan {
    type Output = QuantParams;
    fn index(&self, id: &TensorId) -> &QuantParams {
        &self.params[id]
    }
}

/// Ranges as TensorFlow's calibrator records them.
///
/// When an ADD, SUB, MUL or DIV can run in place (an input of the output's size in bytes,
/// over 4 bytes, that only this op reads), LiteRT writes the result into that input's buffer, and the calibrator, which
/// reads op inputs after the op has run, folds the op's output range into the input's (not
/// when the op writes a model output, which always gets a buffer of its own). When both
/// inputs qualify, the first is the one shared (BlazeFace's residual ADDs; in MobileNetV3's
/// only the block output qualifies, the shortcut having other readers). SQUARED_DIFFERENCE,
/// MAXIMUM, MINIMUM and the unary ops never run in place in TensorFlow 2.21's calibrator
/// (g30022: a DIV's output range folded into its divisor's, `x*x + 3`).
pub(super) fn tensorflow_inplace_widening(
    graph: &Graph,
    calibration: &Calibration,
) -> HashMap<TensorId, TensorRange> {
    let mut ranges: HashMap<TensorId, TensorRange> = calibration
        .ranges
        .iter()
        .map(|(&id, r)| (id, r.range))
        .collect();
    // Readers per tensor: LiteRT's arena shares an input's buffer only when this op is the
    // tensor's one reader.
    let mut reader_count = vec![0usize; graph.tensors.len()];
    for node in &graph.nodes {
        for &id in node.inputs.iter().flatten() {
            reader_count[id] += 1;
        }
    }
    for node in &graph.nodes {
        let in_place_kind = matches!(
            node.op,
            Op::Binary {
                kind: BinaryKind::Add | BinaryKind::Sub | BinaryKind::Mul | BinaryKind::Div,
                ..
            }
        );
        if !in_place_kind {
            continue;
        }
        let out = node.outputs[0];
        if graph.outputs.contains(&out) {
            continue;
        }
        // LiteRT's arena shares no buffer of 4 bytes or fewer (a single float: g40070's
        // MUL of a 1x1x1x1 slice keeps its own range).
        let bytes = |t: &crate::graph::Tensor| t.dtype.size_bytes().map(|b| b * t.num_elements());
        // The arena compares sizes in bytes, not shapes: g41034's BATCH_MATMUL output
        // [8,5,5] shares the buffer of the SUB that writes [1,8,5,5] from it.
        let out_bytes = bytes(graph.tensor(out));
        let shared = node.inputs.iter().flatten().find(|&&id| {
            let t = graph.tensor(id);
            !t.is_constant()
                && bytes(t) == out_bytes
                && bytes(t).is_some_and(|b| b > 4)
                && reader_count[id] == 1
                && !graph.inputs.contains(&id)
                && !graph.outputs.contains(&id)
        });
        if let (Some(&id), Some(&out_range)) = (shared, ranges.get(&out)) {
            if let Some(r) = ranges.get_mut(&id) {
                r.min = r.min.min(out_range.min);
                r.max = r.max.max(out_range.max);
            }
        }
    }
    // A range set by hand replaces what the calibrator would have recorded, widening
    // included: it is the range the converter reads for that tensor.
    ranges.extend(calibration.overrides.iter().map(|(&id, &r)| (id, r)));
    ranges
}

/// `range`, the pinned range of `id`, kept within LiteRT's ADD / SUB / SQUARED_DIFFERENCE
/// limits ([`within_litert_add_limit`]) of the op that writes `id` and of every such op
/// whose output shares `id`'s parameters through same-scale ops (a SUB read by a
/// CONCATENATION takes the concatenation's parameters: g41964's all-zero concatenation of
/// a SUB would otherwise give the SUB TensorFlow's 2e-6 range, which its checker refuses).
fn within_litert_limits_upstream(
    graph: &Graph,
    producer: &[Option<usize>],
    id: TensorId,
    range: TensorRange,
    ranges: &HashMap<TensorId, TensorRange>,
) -> TensorRange {
    let mut range = range;
    let mut stack = vec![id];
    let mut seen = HashSet::new();
    while let Some(t) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        let Some(p) = producer[t] else { continue };
        let node = &graph.nodes[p];
        range = within_litert_add_limit(graph, node, t, range, ranges);
        if param_rule(&node.op) == ParamRule::SameScale {
            stack.extend(float_inputs(graph, node));
        }
    }
    range
}

/// Parameters for a calibrated range, after TensorFlow's near-zero widening.
pub fn params_for_range(range: TensorRange) -> QuantParams {
    // Zero is included first: a constant tensor away from zero (MINIMUM of a value and a
    // constant the value never reaches) spans [c, 0] and is not widened.
    let (mut min, mut max) = ((range.min as f64).min(0.0), (range.max as f64).max(0.0));
    if max - min < NEAR_ZERO_TOLERANCE {
        min -= NEAR_ZERO_TOLERANCE;
        max += NEAR_ZERO_TOLERANCE;
    }
    activation_params_wide(min, max)
}

/// How many times finer than its inputs' an ADD or SUB output's scale may be, with room to
/// spare (2^-16, eight times the limit [`ADD_MIN_OUTPUT_SCALE_RATIO`] below which LiteRT's
/// int8 ADD and SUB abort the process). A range that narrow is a branch that is all zeros or nearly so on the
/// calibration data (a RELU'd sum that is always negative); TensorFlow's quantizer gives it
/// the near-zero scale all the same and writes a model LiteRT cannot load.
const ADD_OUTPUT_SCALE_FLOOR: f64 = 8.0 * ADD_MIN_OUTPUT_SCALE_RATIO;

/// The same limit for SQUARED_DIFFERENCE, against the square of the larger input scale:
/// LiteRT's int8 kernel squares the difference of both inputs rescaled to twice the larger
/// input scale at 2^7 resolution, so its output multiplier (2 s)^2 / (2^14 s_out) must stay
/// below 1 (LiteRT aborts otherwise), that is s_out above s^2 / 2^12; kept 8 times above
/// it as for ADD. TensorFlow's quantizer gives a branch squared against itself (all zeros)
/// the near-zero scale and writes a model LiteRT aborts on (g30415).
const SQUARED_DIFFERENCE_OUTPUT_SCALE_FLOOR: f64 = 1.0 / 512.0;

/// `range`, the calibrated range of `out` (an output of `node`), widened where `node` is an
/// ADD or SUB whose output scale would fall below [`ADD_OUTPUT_SCALE_FLOOR`] times its
/// inputs' (by their own ranges, or a constant's values), or a SQUARED_DIFFERENCE whose
/// output scale would fall below [`SQUARED_DIFFERENCE_OUTPUT_SCALE_FLOOR`] times their square.
fn within_litert_add_limit(
    graph: &Graph,
    node: &Node,
    out: TensorId,
    range: TensorRange,
    ranges: &HashMap<TensorId, TensorRange>,
) -> TensorRange {
    let squared = match node.op {
        Op::Binary {
            kind: BinaryKind::Add | BinaryKind::Sub,
            ..
        } => false,
        Op::Binary {
            kind: BinaryKind::SquaredDifference,
            ..
        } => true,
        _ => return range,
    };
    if node.outputs.first() != Some(&out) {
        return range;
    }
    let input_scale = |id: TensorId| -> Option<f64> {
        let t = graph.tensor(id);
        let r = match ranges.get(&id) {
            Some(r) => *r,
            None => {
                let values = t.data.as_ref()?.to_f32()?;
                let (lo, hi) = values
                    .iter()
                    .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                TensorRange { min: lo, max: hi }
            }
        };
        Some(f64::from(params_for_range(r).scale[0]))
    };
    let largest = node
        .inputs
        .iter()
        .flatten()
        .filter_map(|&id| input_scale(id))
        .fold(0f64, f64::max);
    let floor = if squared {
        largest * largest * SQUARED_DIFFERENCE_OUTPUT_SCALE_FLOOR
    } else {
        largest * ADD_OUTPUT_SCALE_FLOOR
    };
    let scale = f64::from(params_for_range(range).scale[0]);
    if scale >= floor || scale <= 0.0 {
        return range;
    }
    // Widen about zero by the factor the scale lacks (the range spans zero once included).
    let k = floor / scale;
    let (lo, hi) = (f64::from(range.min.min(0.0)), f64::from(range.max.max(0.0)));
    let (lo, hi) = if hi - lo < NEAR_ZERO_TOLERANCE {
        (lo - NEAR_ZERO_TOLERANCE, hi + NEAR_ZERO_TOLERANCE)
    } else {
        (lo, hi)
    };
    TensorRange {
        min: (lo * k) as f32,
        max: (hi * k) as f32,
    }
}

/// The float data tensors (activations, not constants) among a node's inputs.
fn float_inputs<'a>(graph: &'a Graph, node: &'a Node) -> impl Iterator<Item = TensorId> + 'a {
    node.inputs
        .iter()
        .flatten()
        .copied()
        .filter(|&id| !graph.tensor(id).is_constant() && graph.tensor(id).dtype.is_float())
}

/// Float operands (constants included), as the converter counts them to decide whether a
/// same-scale op follows its input or its output.
fn float_operand_count(graph: &Graph, node: &Node) -> usize {
    node.inputs
        .iter()
        .flatten()
        .filter(|&&id| graph.tensor(id).dtype.is_float())
        .count()
}

#[derive(Clone, Debug, Default)]
struct State {
    params: Option<QuantParams>,
    pinned: bool,
}

/// The solver's working state: one parameter state per tensor, the requantizes found,
/// and who produces and reads each tensor.
struct Solver<'g> {
    graph: &'g Graph,
    states: Vec<State>,
    requantize: Vec<Requantize>,
    /// What an op writes where its readers need other parameters (see `set_output`).
    written: HashMap<TensorId, QuantParams>,
    producer: Vec<Option<usize>>,
    readers: Vec<Vec<(usize, usize)>>,
    work: Vec<usize>,
}

impl Solver<'_> {
    /// Gives `params` to input `slot` of node `pos` (the tensor `id`).
    fn set_input(&mut self, pos: usize, slot: usize, id: TensorId, params: &QuantParams) {
        let state = &mut self.states[id];
        match &state.params {
            Some(p) if p == params => {}
            Some(_) => {
                let existing = self.requantize.iter_mut().find_map(|r| match r {
                    Requantize::BeforeReaders {
                        tensor,
                        read,
                        readers,
                    } if *tensor == id && read == params => Some(readers),
                    _ => None,
                });
                match existing {
                    Some(readers) => {
                        if !readers.contains(&(pos, slot)) {
                            readers.push((pos, slot));
                        }
                    }
                    None => self.requantize.push(Requantize::BeforeReaders {
                        tensor: id,
                        read: params.clone(),
                        readers: vec![(pos, slot)],
                    }),
                }
            }
            None => {
                state.params = Some(params.clone());
                if let Some(p) = self.producer[id] {
                    self.work.push(p);
                }
            }
        }
    }

    /// Gives `params` to output `id` of the node producing it.
    fn set_output(&mut self, id: TensorId, params: &QuantParams) {
        let state = &mut self.states[id];
        match &state.params {
            Some(p) if p == params => {}
            Some(held) => {
                // The op writes `params`; its readers keep what they settled on, through a
                // requantize (the tensor's name stays with what the op writes, as in the
                // converter's output).
                if let std::collections::hash_map::Entry::Vacant(e) = self.written.entry(id) {
                    e.insert(params.clone());
                    self.requantize.push(Requantize::AfterProducer {
                        tensor: id,
                        read: held.clone(),
                    });
                }
            }
            None => {
                state.params = Some(params.clone());
                let readers: Vec<usize> = self.readers[id].iter().map(|&(n, _)| n).collect();
                self.work.extend(readers);
            }
        }
    }

    /// Works through the work list, from its end, as the converter's driver does.
    fn run(&mut self, done: &mut [bool]) {
        while let Some(pos) = self.work.pop() {
            if done[pos] {
                continue;
            }
            done[pos] = true;
            let node = &self.graph.nodes[pos];
            match param_rule(&node.op) {
                ParamRule::Own => {}
                ParamRule::FixedOutput(params) => {
                    for &out in &node.outputs {
                        if self.graph.tensor(out).dtype.is_float() {
                            self.set_output(out, &params);
                        }
                    }
                }
                ParamRule::SameScale => {
                    let Some(params) = self.same_scale_params(node) else {
                        // Nothing known around it yet: a later visit may settle it.
                        done[pos] = false;
                        continue;
                    };
                    let inputs: Vec<(usize, TensorId)> = node
                        .inputs
                        .iter()
                        .enumerate()
                        .filter_map(|(slot, id)| id.map(|id| (slot, id)))
                        .filter(|&(_, id)| {
                            !self.graph.tensor(id).is_constant()
                                && self.graph.tensor(id).dtype.is_float()
                        })
                        .collect();
                    for (slot, id) in inputs {
                        self.set_input(pos, slot, id, &params);
                    }
                    for &out in &node.outputs {
                        if self.graph.tensor(out).dtype.is_float() {
                            self.set_output(out, &params);
                        }
                    }
                }
            }
        }
    }

    /// The parameters a same-scale node settles on, if any are known yet.
    fn same_scale_params(&self, node: &Node) -> Option<QuantParams> {
        let graph = self.graph;
        let inputs: Vec<TensorId> = float_inputs(graph, node).collect();
        let outputs: Vec<TensorId> = node
            .outputs
            .iter()
            .copied()
            .filter(|&id| graph.tensor(id).dtype.is_float())
            .collect();
        // Known parameters among `ids`, pinned (`true`) or propagated (`false`).
        let known = |ids: &[TensorId], pinned: bool| -> Vec<QuantParams> {
            ids.iter()
                .filter(|&&id| self.states[id].pinned == pinned)
                .filter_map(|&id| self.states[id].params.clone())
                .collect()
        };
        // The converter's order of preference: a lone input's pinned parameters, a lone
        // output's, any pinned ones (inputs first); then the same for propagated ones. A
        // "lone" input counts every operand, constants (a reshape's shape) included.
        for pinned in [true, false] {
            let (ins, outs) = (known(&inputs, pinned), known(&outputs, pinned));
            if node.inputs.len() == 1 && ins.len() == 1 {
                return ins.into_iter().next();
            }
            if node.outputs.len() == 1 && outs.len() == 1 {
                return outs.into_iter().next();
            }
            if let Some(p) = ins.into_iter().chain(outs).next() {
                return Some(p);
            }
        }
        None
    }
}

pub fn plan_activations(graph: &Graph, calibration: &Calibration) -> ActivationPlan {
    let n = graph.tensors.len();
    // Argmax indices are float32 only in type: they carry integer bits, which
    // MaxUnpooling2D reads back. They are never quantized (both ops stay float, so nothing
    // converts them at a border either).
    let argmax_indices: HashSet<TensorId> = graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::MaxPoolingWithArgmax2D(_)))
        .filter_map(|n| n.outputs.get(1).copied())
        .collect();
    let ranges: HashMap<TensorId, TensorRange> = tensorflow_inplace_widening(graph, calibration)
        .into_iter()
        .filter(|(id, _)| {
            *id < n && graph.tensor(*id).dtype.is_float() && !argmax_indices.contains(id)
        })
        .collect();
    let mut producer = vec![None; n];
    let mut readers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (pos, node) in graph.nodes.iter().enumerate() {
        for &o in &node.outputs {
            if o < n {
                producer[o] = Some(pos);
            }
        }
        for (slot, id) in node.inputs.iter().enumerate() {
            if let Some(id) = *id {
                readers[id].push((pos, slot));
            }
        }
    }

    // 2. Which calibrated ranges count.
    let mut dropped: HashSet<TensorId> = HashSet::new();
    for node in &graph.nodes {
        match param_rule(&node.op) {
            ParamRule::FixedOutput(_) => dropped.extend(node.outputs.iter().copied()),
            ParamRule::SameScale
                if float_operand_count(graph, node) <= 1
                    && float_inputs(graph, node).any(|id| ranges.contains_key(&id)) =>
            {
                dropped.extend(node.outputs.iter().copied());
            }
            _ => {}
        }
    }
    let mut backwards: Vec<TensorId> = ranges
        .keys()
        .copied()
        .filter(|id| !dropped.contains(id))
        .collect();
    backwards.sort_unstable();
    let mut walked: HashSet<TensorId> = HashSet::new();
    while let Some(id) = backwards.pop() {
        if !walked.insert(id) {
            continue;
        }
        let Some(p) = producer[id] else { continue };
        let node = &graph.nodes[p];
        if param_rule(&node.op) != ParamRule::SameScale {
            continue;
        }
        for input in float_inputs(graph, node) {
            if ranges.contains_key(&input) {
                dropped.insert(input);
                backwards.push(input);
            }
        }
    }

    // 3. Pinned parameters, then the work list.
    let mut states = vec![State::default(); n];
    for (&id, &range) in &ranges {
        if !dropped.contains(&id) {
            let range = within_litert_limits_upstream(graph, &producer, id, range, &ranges);
            states[id] = State {
                params: Some(params_for_range(range)),
                pinned: true,
            };
        }
    }
    let mut solver = Solver {
        graph,
        states,
        requantize: Vec::new(),
        written: HashMap::new(),
        producer,
        readers,
        work: (0..graph.nodes.len()).collect(),
    };
    let mut done = vec![false; graph.nodes.len()];
    loop {
        solver.run(&mut done);
        // The converter's driver never comes back to a same-scale op it skipped for want
        // of parameters, and leaves such ops float in a "full int8" model (a reshape of a
        // model input that a concatenation also reads, for one). qdbg does better on
        // purpose: it visits them again once their neighbours are known.
        let pending: Vec<usize> = (0..graph.nodes.len())
            .filter(|&p| !done[p] && param_rule(&graph.nodes[p].op) == ParamRule::SameScale)
            .collect();
        solver.work = pending.iter().rev().copied().collect();
        solver.run(&mut done);
        let still = pending.iter().filter(|&&p| !done[p]).count();
        if still == 0 || still == pending.len() {
            break;
        }
    }

    // A tensor nothing settled (a same-scale island with no range around it) keeps its
    // own calibrated range rather than going unquantized.
    let mut params = HashMap::new();
    let written = std::mem::take(&mut solver.written);
    for (id, state) in solver.states.into_iter().enumerate() {
        if let Some(p) = written.get(&id) {
            params.insert(id, p.clone());
            continue;
        }
        match state.params {
            Some(p) => {
                params.insert(id, p);
            }
            None => {
                if let Some(&range) = ranges.get(&id) {
                    params.insert(id, params_for_range(range));
                }
            }
        }
    }
    ActivationPlan {
        params,
        requantize: solver.requantize,
        // Found by running the int8 model on the data:
        // `division_check::keep_refused_divisions_float`.
        divisor_on_zero_point: HashSet::new(),
        int16: Int16Choice::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::params::activation_params;

    #[test]
    fn near_zero_ranges_widen_by_the_tolerance_on_each_side() {
        // TensorFlow 2.21 gave an all-zero tensor scale 7.84314e-9 (2e-6 / 255), zero
        // point 0, and a tensor observed in [-7.4230844e-9, 9.265832e-9] scale
        // 7.90858e-9, zero point -1 (tests/fixtures/conformance/near_zero.tf_int8.tflite).
        let zero = params_for_range(TensorRange { min: 0.0, max: 0.0 });
        assert!((zero.scale[0] / 7.84314e-9 - 1.0).abs() < 1e-5, "{zero:?}");
        assert_eq!(zero.zero_point, vec![0]);
        let tiny = params_for_range(TensorRange {
            min: -7.423_084_4e-9,
            max: 9.265_832e-9,
        });
        assert!((tiny.scale[0] / 7.90858e-9 - 1.0).abs() < 1e-5, "{tiny:?}");
        assert_eq!(tiny.zero_point, vec![-1]);
        // Wider ranges are untouched.
        let normal = params_for_range(TensorRange {
            min: -1.0,
            max: 3.0,
        });
        assert_eq!(normal, activation_params(-1.0, 3.0));
    }
}
