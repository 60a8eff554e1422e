//! The int8 DIVs LiteRT would refuse on the calibration data, kept float (see
//! [`keep_refused_divisions_float`]).

use candle_core::Device;

use super::plan::ActivationPlan;
use super::quantize::{quantize_graph, QuantizeOptions};
use crate::data::Dataset;
use crate::error::{Error, OpError, Result};
use crate::exec::{tensor_from_owned_sample, Executor};
use crate::graph::{BinaryKind, Graph, Op};

/// Adds to `plan`'s [`ActivationPlan::divisor_on_zero_point`] the int8 DIVs that LiteRT's
/// kernel would refuse to run on the calibration data `dataset` (a divisor element on its
/// zero point), beyond those the plan found from the calibrated ranges: the int8 divisor carries the rounding of the ops that compute it, so a divisor
/// whose float values all sit more than half a step from zero can still be computed onto the
/// zero point (g42080: `x*x + 0.1` at 0.7 steps, by an int8 MUL and ADD). Found by running
/// the int8 model on every calibration sample, keeping each refused DIV float and running
/// again.
/// Models without a DIV pay nothing.
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
                    cause: OpError::Kernel(_),
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
