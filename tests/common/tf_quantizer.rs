//! Comparing qdbg's quantizer with TensorFlow's: qdbg's int8 model of a float model, and
//! its parameters and requantizes against those of TensorFlow's int8 model of the same
//! float model and data (tests/conformance.rs, tests/generated.rs).

use std::collections::HashMap;
use std::path::Path;

use candle_core::Device;
use qdbg::data::{load_dataset, Dataset, ImageOptions, InputSpec};
use qdbg::exec::Executor;
use qdbg::graph::{DType, Graph, Op, QuantParams};
use qdbg::quant::plan::plan_activations;
use qdbg::quant::quantize::{quantize_graph, QuantizeOptions, QuantizedModel};
use qdbg::quant::{calibrate, Calibration};

/// The float model, its data, and qdbg's calibration on that data.
pub fn calibrated(model: &Path, inputs: &Path) -> (Graph, Dataset, Calibration) {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let data = load_dataset(
        inputs,
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    (graph, data, cal)
}

/// qdbg's full-int8 model of `model` (float I/O, as TensorFlow's), and its file bytes.
pub fn qdbg_int8(model: &Path, inputs: &Path) -> (Graph, Vec<u8>) {
    let (_, _, q) = qdbg_quantized(model, inputs);
    let original = std::fs::read(model).unwrap();
    let bytes = qdbg::tflite::model_bytes(&q.graph, Some(&original)).unwrap();
    (q.graph, bytes)
}

/// The float model, its data, and qdbg's quantization of it (what the debugger compares).
pub fn qdbg_quantized(model: &Path, inputs: &Path) -> (Graph, Dataset, QuantizedModel) {
    let (graph, data, cal) = calibrated(model, inputs);
    let mut plan = plan_activations(&graph, &cal);
    // As the session does: DIVs LiteRT would refuse on this data stay float.
    qdbg::quant::division_check::keep_refused_divisions_float(
        &graph,
        &mut plan,
        &data,
        &candle_core::Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let q = quantize_graph(&graph, &plan, &QuantizeOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    (graph, data, q)
}

/// Every quantized tensor of TensorFlow's model (activations, weights per channel, biases,
/// other constants such as PReLU alphas), compared with qdbg's quantized tensor of the same
/// name (every scale within 1e-6 relative, the same zero points): (compared, mismatches).
pub fn compare_params(ours: &Graph, tf: &Graph) -> (usize, Vec<String>) {
    // qdbg's quantized tensors by name (a name on two quantized tensors, such as a constant
    // several ops share and the converter copies per reader, is left out).
    // Paired by name and type: the converter renames constants it copies, and a new
    // tensor of its (a bias) can take a name qdbg's model gives to another (g42614: an
    // ADD's int8 constant in qdbg's, a CONV_2D's int32 bias in TensorFlow's).
    let mut quantized: HashMap<(&str, DType), Option<&QuantParams>> = HashMap::new();
    for t in ours.tensors.iter().filter(|t| t.quant.is_some()) {
        quantized
            .entry((t.name.as_str(), t.dtype))
            .and_modify(|q| *q = None)
            .or_insert(t.quant.as_ref());
    }
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for t in &tf.tensors {
        let Some(tq) = &t.quant else { continue };
        if !matches!(t.dtype, DType::I8 | DType::I32) {
            continue;
        }
        let oq = match quantized.get(&(t.name.as_str(), t.dtype)) {
            Some(Some(q)) => *q,
            Some(None) => continue,
            None => {
                // Activations keep their names in both; a float one here means qdbg left
                // it unquantized. (Constants the converter renamed are not compared.)
                if !t.is_constant() && ours.tensor_by_name(&t.name).is_some() {
                    mismatches.push(format!("{}: TF int8, qdbg float", t.name));
                }
                continue;
            }
        };
        compared += 1;
        let same = oq.zero_point == tq.zero_point
            && oq.scale.len() == tq.scale.len()
            && oq
                .scale
                .iter()
                .zip(&tq.scale)
                .all(|(o, t)| ((o - t) / t).abs() <= 1e-6);
        if !same {
            mismatches.push(format!(
                "{}: qdbg scale {:?} zp {:?} vs TF scale {:?} zp {:?}",
                t.name,
                &oq.scale[..oq.scale.len().min(4)],
                &oq.zero_point[..oq.zero_point.len().min(4)],
                &tq.scale[..tq.scale.len().min(4)],
                &tq.zero_point[..tq.zero_point.len().min(4)]
            ));
        }
    }
    (compared, mismatches)
}

/// The parameter conversions a quantizer inserted where two requirements meet: int8 ->
/// int8 QUANTIZE ops, plus each float tensor's QUANTIZE ops beyond its first. (Where a
/// model input's readers need two parameter sets, both TensorFlow and qdbg quantize it once
/// and requantize int8 -> int8; a quantizer that quantized from float to each would count
/// the same.)
pub fn requantizes(g: &Graph) -> usize {
    let mut from_float: std::collections::HashMap<usize, usize> = Default::default();
    let mut count = 0;
    for n in g.nodes.iter().filter(|n| n.op == Op::Quantize) {
        let Some(i) = n.input(0) else { continue };
        if matches!(g.tensor(i).dtype, DType::I8 | DType::I16) {
            count += 1;
        } else {
            *from_float.entry(i).or_default() += 1;
        }
    }
    count + from_float.values().map(|&k| k - 1).sum::<usize>()
}

/// SQNR in dB of `got` against `reference`.
pub fn sqnr_db(reference: &[f64], got: &[f64]) -> f64 {
    let signal: f64 = reference.iter().map(|v| v * v).sum();
    let noise: f64 = reference
        .iter()
        .zip(got)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}
