//! The int8 DIVs LiteRT would refuse on the calibration data, kept float (see
//! [`keep_refused_divisions_float`]).

use candle_core::Device;

use super::plan::ActivationPlan;
use super::quantize::{quantize_graph, QuantizeOptions};
use crate::data::Dataset;
use crate::error::{Error, OpError, Result};
use crate::exec::{tensor_from_owned_sample, Executor};
use crate::graph::{BinaryKind, Graph, Op};
use crate::kernels::KernelError;

/// Adds to `plan`'s [`ActivationPlan::divisor_on_zero_point`] the int8 DIVs that LiteRT's
/// kernel would refuse to run on the calibration data `dataset`: LiteRT's int8 DIV fails its
/// invoke on a divisor element equal to the divisor's zero point (division by zero).
/// TensorFlow's quantizer writes such DIVs int8 all the same, and LiteRT refuses its model on
/// the very data it was calibrated with: a positive divisor `x*x + c` with outliers spans
/// [0, b] with a step far above `c`, so its smallest values quantize onto the zero point
/// whatever the parameters (g30161), or the int8 ops that compute the divisor round a value
/// 0.7 steps from zero onto it (g42080). qdbg keeps such a DIV float on purpose. Exact, not
/// estimated from ranges: the int8 model (bit-exact with LiteRT's builtin kernels) runs on
/// every calibration sample, each refused DIV is kept float, and it runs again. Models
/// without an int8 DIV pay nothing.
pub fn keep_refused_divisions_float(
    graph: &Graph,
    plan: &mut ActivationPlan,
    dataset: &Dataset,
    device: &Device,
) -> Result<()> {
    let is_div = |op: &Op| {
        matches!(
            op,
            Op::Binary {
                kind: BinaryKind::Div,
                ..
            }
        )
    };
    // Each round keeps at least one more DIV float, so this ends.
    while graph
        .nodes
        .iter()
        .enumerate()
        .any(|(pos, n)| is_div(&n.op) && !plan.divisor_on_zero_point.contains(&pos))
    {
        let quantized = quantize_graph(graph, plan, &QuantizeOptions::default())?;
        let executor = Executor::new(&quantized.graph, device)?;
        let mut newly = None;
        for i in 0..dataset.num_samples() {
            let inputs = dataset
                .sample(i)?
                .into_iter()
                .map(|s| tensor_from_owned_sample(s, device))
                .collect::<Result<Vec<_>>>()?;
            match executor.run(&inputs) {
                Ok(_) => {}
                // The failing op by its output tensor (the executor's op index counts the
                // ops it runs, which need not be the graph's positions).
                Err(Error::OpFailed {
                    tensor,
                    cause: OpError::Kernel(KernelError::Data { .. }),
                    ..
                }) => {
                    newly = quantized.graph.nodes.iter().position(|n| {
                        is_div(&n.op)
                            && n.outputs
                                .iter()
                                .any(|&o| quantized.graph.tensor(o).name == tensor)
                    });
                    newly = newly.and_then(|q| quantized.node_origin[q]);
                    break;
                }
                // Anything else is not this check's to report: the debugger meets it.
                Err(_) => break,
            }
        }
        match newly {
            Some(pos) if plan.divisor_on_zero_point.insert(pos) => {}
            _ => break,
        }
    }
    Ok(())
}
