//! The executor: runs a [`Graph`] op by op on candle tensors. Float ops are the reference
//! quantized results are measured against; int8 ops (models quantized by qdbg or by
//! TensorFlow) dispatch to qdbg's int8 kernels.
//!
//! Float ops follow TFLite's float semantics (checked against LiteRT tensor by tensor in
//! the test suite) rather than whatever is fastest.

mod device;
mod outputs;

pub use device::{parse_device, DeviceChoice};
pub use outputs::{host_f32, with_host_f32, FloatOutputCache, SampleOutputs};

use candle_core::{Device, Tensor as CTensor};

use ndarray::{ArrayD, Axis, IxDyn};

use crate::data::SampleArray;
use crate::error::{Error, OpError, Result};
use crate::graph::{DType, Graph, Op, TensorData, TensorId};
use crate::ops::{self, carrier_dtype, Arithmetic, EvalCtx, Prepared};
use rayon::prelude::*;

/// What `run_observed` shows each tensor to.
type Observer<'a> = &'a mut dyn FnMut(TensorId, &CTensor) -> Result<()>;

/// How an observer sees int8 tensors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Int8View {
    /// As I64 integers, the form every public API uses.
    Integers,
    /// As the executor's own U8 carrier (bit patterns), without the widening copy; read
    /// with [`ops::int8_tensor::int8_values`].
    Carrier,
}

pub struct Executor<'g> {
    graph: &'g Graph,
    device: Device,
    constants: Vec<Option<CTensor>>,
    prepared: Vec<Option<Prepared>>,
    /// For each tensor, the position of the last node that reads it, so values can be
    /// dropped as soon as nothing needs them.
    last_reader: Vec<Option<usize>>,
    /// Whose int8 arithmetic the quantized ops reproduce (LiteRT's builtin kernels or
    /// its XNNPACK delegate).
    arithmetic: Arithmetic,
}

impl<'g> Executor<'g> {
    /// Checks every op is runnable and uploads constants to `device` once.
    pub fn new(graph: &'g Graph, device: &Device) -> Result<Self> {
        Self::with_arithmetic(graph, device, Arithmetic::Builtin)
    }

    /// [`Executor::new`], with int8 ops computed as `arithmetic` computes them.
    pub fn with_arithmetic(
        graph: &'g Graph,
        device: &Device,
        arithmetic: Arithmetic,
    ) -> Result<Self> {
        graph.check_supported()?;
        // Constants converted and ops prepared (weights packed) on every worker: this is
        // the sequential part in front of every run.
        let constants = graph
            .tensors
            .par_iter()
            .enumerate()
            .map(|(id, tensor)| {
                let value = match &tensor.data {
                    Some(data) => constant_tensor(data, tensor.dtype, &tensor.shape, device)
                        .map_err(|reason| tensor_error(graph, id, OpError::Model(reason)))?,
                    None => None,
                };
                Ok(match value {
                    Some(v) if tensor.dtype == DType::I8 => Some(
                        ops::int8_tensor::narrow_int8(&v)
                            .map_err(|e| tensor_error(graph, id, e))?,
                    ),
                    other => other,
                })
            })
            // Collected first: a bad model's message names its first bad tensor.
            .collect::<Vec<Result<_>>>()
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let prepared = graph
            .nodes
            .par_iter()
            .map(|node| {
                let lookup = |id: TensorId| constants.get(id).cloned().flatten();
                ops::prepare(graph, node, &lookup, arithmetic).map_err(|e| Error::OpFailed {
                    op_index: node.source_index,
                    op: node.op.display_name().to_string(),
                    tensor: graph.tensor(node.outputs[0]).name.clone(),
                    cause: e,
                })
            })
            .collect::<Vec<Result<_>>>()
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let mut last_reader = vec![None; graph.tensors.len()];
        for (pos, node) in graph.nodes.iter().enumerate() {
            for &id in node.inputs.iter().flatten() {
                last_reader[id] = Some(pos);
            }
        }
        Ok(Executor {
            graph,
            device: device.clone(),
            constants,
            prepared,
            last_reader,
            arithmetic,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn graph(&self) -> &Graph {
        self.graph
    }

    /// Whose int8 arithmetic this executor reproduces.
    pub fn arithmetic(&self) -> Arithmetic {
        self.arithmetic
    }

    /// Runs one sample and returns the model's outputs.
    pub fn run(&self, inputs: &[CTensor]) -> Result<Vec<CTensor>> {
        self.run_inner(inputs, None, Int8View::Integers, &mut |_| {})
    }

    /// Runs one sample, showing every tensor the graph computes (inputs included) to
    /// `observe` as soon as it exists. Calibration and the debugger hook in here.
    pub fn run_observed(
        &self,
        inputs: &[CTensor],
        observe: &mut dyn FnMut(TensorId, &CTensor) -> Result<()>,
    ) -> Result<Vec<CTensor>> {
        self.run_inner(inputs, Some(observe), Int8View::Integers, &mut |_| {})
    }

    /// [`Executor::run_observed`] for observers that read int8 tensors with
    /// [`ops::int8_tensor::int8_values`] (or hand them back to [`Executor::eval_node`] or
    /// [`Executor::run_from`], which take either form): int8 tensors arrive as the
    /// executor's U8 carrier, saving a widening copy of every one of them. The model's
    /// outputs are returned as integers, as `run_observed` returns them.
    pub fn run_observed_carrier(
        &self,
        inputs: &[CTensor],
        observe: &mut dyn FnMut(TensorId, &CTensor) -> Result<()>,
    ) -> Result<Vec<CTensor>> {
        self.run_inner(inputs, Some(observe), Int8View::Carrier, &mut |_| {})
    }

    /// Runs one sample, calling `after_node` with each node's position once it has run
    /// (for per-op timing: unlike [`Executor::run_observed`], no value is converted for
    /// an observer).
    pub fn run_profiled(
        &self,
        inputs: &[CTensor],
        after_node: &mut dyn FnMut(usize),
    ) -> Result<Vec<CTensor>> {
        self.run_inner(inputs, None, Int8View::Integers, after_node)
    }

    fn run_inner(
        &self,
        inputs: &[CTensor],
        mut observe: Option<Observer<'_>>,
        view: Int8View,
        after_node: &mut dyn FnMut(usize),
    ) -> Result<Vec<CTensor>> {
        let graph = self.graph;
        let mut values: Vec<Option<CTensor>> = vec![None; graph.tensors.len()];
        self.bind_inputs(inputs, &mut values)?;
        if let Some(observe) = observe.as_mut() {
            for &id in &graph.inputs {
                if let Some(v) = &values[id] {
                    observe(id, &self.observed(id, v, view)?)?;
                }
            }
        }
        self.run_nodes(0, values, observe, view, after_node)
    }

    /// Runs the nodes from position `start` on, with `seeded` holding every value those
    /// nodes read that an earlier node would have computed (a checkpoint of another run of
    /// a graph whose first `start` nodes are the same), int8 ones as integers or as the
    /// carrier. `observe` sees the tensors computed from `start` on, int8 ones as the
    /// carrier (as [`Executor::run_observed_carrier`] shows them).
    pub fn run_from(
        &self,
        start: usize,
        seeded: Vec<(TensorId, CTensor)>,
        observe: &mut dyn FnMut(TensorId, &CTensor) -> Result<()>,
    ) -> Result<Vec<CTensor>> {
        let graph = self.graph;
        let mut values: Vec<Option<CTensor>> = vec![None; graph.tensors.len()];
        for (id, v) in seeded {
            match values.get_mut(id) {
                // Checkpoints hold values as the world outside sees them: int8 tensors go
                // back to the int8 carrier the kernels read.
                Some(slot) if graph.tensor(id).dtype == DType::I8 => {
                    *slot = Some(
                        ops::int8_tensor::narrow_int8(&v)
                            .map_err(|e| tensor_error(graph, id, e))?,
                    )
                }
                Some(slot) => *slot = Some(v),
                None => {
                    return Err(Error::Internal(format!(
                        "checkpoint tensor {id} is not in the graph"
                    )))
                }
            }
        }
        self.run_nodes(start, values, Some(observe), Int8View::Carrier, &mut |_| {})
    }

    fn run_nodes(
        &self,
        start: usize,
        mut values: Vec<Option<CTensor>>,
        mut observe: Option<Observer<'_>>,
        view: Int8View,
        after_node: &mut dyn FnMut(usize),
    ) -> Result<Vec<CTensor>> {
        let graph = self.graph;
        for (pos, node) in graph.nodes.iter().enumerate().skip(start) {
            let input_values: Vec<Option<&CTensor>> = node
                .inputs
                .iter()
                .map(|i| i.and_then(|id| values[id].as_ref()))
                .collect();
            let outputs = self.eval_internal(pos, &input_values)?;
            if outputs.len() != node.outputs.len() {
                return Err(tensor_error(
                    graph,
                    node.outputs[0],
                    OpError::Internal(format!(
                        "op produced {} outputs, the model declares {}",
                        outputs.len(),
                        node.outputs.len()
                    )),
                ));
            }
            for (&id, value) in node.outputs.iter().zip(outputs) {
                let declared = &graph.tensor(id).shape;
                if value.dims() != declared.as_slice()
                    && value.elem_count() == declared.iter().product::<usize>()
                {
                    // Same data, different but compatible rank (e.g. a scalar as [1]).
                    values[id] = Some(
                        value
                            .reshape(declared.as_slice())
                            .map_err(|e| tensor_error(graph, id, e.into()))?,
                    );
                } else if value.dims() != declared.as_slice() {
                    return Err(tensor_error(
                        graph,
                        id,
                        OpError::Model(format!(
                            "computed shape {:?} differs from the declared {declared:?}",
                            value.dims()
                        )),
                    ));
                } else {
                    values[id] = Some(value);
                }
                if graph.tensor(id).dtype == DType::I8 {
                    // Whatever op made it, an int8 value travels as the int8 carrier.
                    if let Some(v) = &values[id] {
                        values[id] = Some(
                            ops::int8_tensor::narrow_int8(v)
                                .map_err(|e| tensor_error(graph, id, e))?,
                        );
                    }
                }
                if let (Some(observe), Some(v)) = (observe.as_mut(), &values[id]) {
                    observe(id, &self.observed(id, v, view)?)?;
                }
            }
            after_node(pos);
            // Drop values no later node reads, keeping the model's outputs.
            for &id in node.inputs.iter().flatten() {
                if self.last_reader[id] == Some(pos) && !graph.outputs.contains(&id) {
                    values[id] = None;
                }
            }
        }
        graph
            .outputs
            .iter()
            .map(|&id| {
                let value = values[id]
                    .clone()
                    .or_else(|| self.constants[id].clone())
                    .ok_or_else(|| {
                        tensor_error(
                            graph,
                            id,
                            OpError::Internal("model output was never computed".into()),
                        )
                    })?;
                self.external(id, &value)
            })
            .collect()
    }

    /// A value as the world outside the executor sees it: int8 tensors as I64 integers
    /// rather than the int8 carrier's bit patterns (see `ops::int8_tensor::from_int8`).
    fn external(&self, id: TensorId, value: &CTensor) -> Result<CTensor> {
        if self.graph.tensor(id).dtype == DType::I8 {
            ops::int8_tensor::widen_int8(value).map_err(|e| tensor_error(self.graph, id, e))
        } else {
            Ok(value.clone())
        }
    }

    fn observed(&self, id: TensorId, value: &CTensor, view: Int8View) -> Result<CTensor> {
        match view {
            Int8View::Integers => self.external(id, value),
            Int8View::Carrier => Ok(value.clone()),
        }
    }

    /// Evaluates node `pos` alone on the given input values; constant inputs (and inputs
    /// given as `None` that are constants) come from the graph. The debugger runs a float
    /// op on the dequantized inputs of its int8 twin through this.
    pub fn eval_node(&self, pos: usize, inputs: &[Option<&CTensor>]) -> Result<Vec<CTensor>> {
        let graph = self.graph;
        let node = &graph.nodes[pos];
        // Callers hand int8 values as plain integers; the kernels take the int8 carrier.
        let mut narrowed: Vec<Option<CTensor>> = Vec::with_capacity(inputs.len());
        for (slot, value) in inputs.iter().enumerate() {
            narrowed.push(match (node.input(slot), value) {
                (Some(id), Some(v)) if graph.tensor(id).dtype == DType::I8 => {
                    Some(ops::int8_tensor::narrow_int8(v).map_err(|e| tensor_error(graph, id, e))?)
                }
                _ => None,
            });
        }
        let inputs: Vec<Option<&CTensor>> = inputs
            .iter()
            .zip(&narrowed)
            .map(|(given, narrow)| narrow.as_ref().or(*given))
            .collect();
        let outputs = self.eval_internal(pos, &inputs)?;
        node.outputs
            .iter()
            .zip(outputs)
            .map(|(&id, v)| self.external(id, &v))
            .collect()
    }

    /// [`Executor::eval_node`] on values already in the executor's carriers.
    fn eval_internal(&self, pos: usize, inputs: &[Option<&CTensor>]) -> Result<Vec<CTensor>> {
        let graph = self.graph;
        let node = &graph.nodes[pos];
        let input_values: Vec<Option<&CTensor>> = node
            .inputs
            .iter()
            .enumerate()
            .map(|(slot, id)| {
                id.and_then(|id| {
                    inputs
                        .get(slot)
                        .copied()
                        .flatten()
                        .or(self.constants[id].as_ref())
                })
            })
            .collect();
        let ctx = EvalCtx {
            graph,
            node,
            inputs: &input_values,
            device: &self.device,
            prepared: self.prepared[pos].as_ref(),
            arithmetic: self.arithmetic,
        };
        ops::eval(&ctx).map_err(|e| Error::OpFailed {
            op_index: node.source_index,
            op: node.op.display_name().to_string(),
            tensor: graph.tensor(node.outputs[0]).name.clone(),
            cause: e,
        })
    }

    fn bind_inputs(&self, inputs: &[CTensor], values: &mut [Option<CTensor>]) -> Result<()> {
        let graph = self.graph;
        if inputs.len() != graph.inputs.len() {
            return Err(Error::InputMismatch {
                tensor: graph
                    .inputs
                    .iter()
                    .map(|&i| graph.tensor(i).name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                expected: format!("{} inputs", graph.inputs.len()),
                actual: format!("{} inputs", inputs.len()),
                hint: String::new(),
            });
        }
        for (&id, value) in graph.inputs.iter().zip(inputs) {
            let tensor = graph.tensor(id);
            let carrier = carrier_dtype(tensor.dtype).ok_or_else(|| Error::InputMismatch {
                tensor: tensor.name.clone(),
                expected: format!("{:?} {}", tensor.shape, tensor.dtype),
                actual: "data".into(),
                hint: format!(" (qdbg cannot feed {} inputs)", tensor.dtype),
            })?;
            if value.elem_count() != tensor.num_elements() {
                return Err(Error::InputMismatch {
                    tensor: tensor.name.clone(),
                    expected: format!("{:?} {}", tensor.shape, tensor.dtype),
                    actual: format!("{:?}", value.dims()),
                    hint: String::new(),
                });
            }
            let bound = value
                .to_device(&self.device)
                .and_then(|v| v.to_dtype(carrier))
                .and_then(|v| v.reshape(tensor.shape.as_slice()))
                .map_err(|e| tensor_error(graph, id, e.into()))?;
            values[id] = Some(if tensor.dtype == DType::I8 {
                ops::int8_tensor::narrow_int8(&bound).map_err(|e| tensor_error(graph, id, e))?
            } else {
                bound
            });
        }
        Ok(())
    }
}

fn tensor_error(graph: &Graph, id: TensorId, cause: OpError) -> Error {
    let producer = graph.nodes.iter().find(|n| n.outputs.contains(&id));
    Error::OpFailed {
        op_index: producer.map_or(0, |n| n.source_index),
        op: producer.map_or("(input)".to_string(), |n| n.op.display_name().to_string()),
        tensor: graph.tensor(id).name.clone(),
        cause,
    }
}

/// Uploads a constant in its carrier dtype; raw (string, float64) constants stay on the host.
/// `dtype` is the graph's: int8 data of an int8 tensor goes straight to the int8 carrier
/// (through i64 it cost 8 bytes a weight and two conversions, per executor made).
fn constant_tensor(
    data: &TensorData,
    dtype: DType,
    shape: &[usize],
    device: &Device,
) -> std::result::Result<Option<CTensor>, String> {
    let shape = shape.to_vec();
    let t = match data {
        TensorData::I8(v) if dtype == DType::I8 => {
            let bits: Vec<u8> = v.iter().map(|&x| x as u8).collect();
            CTensor::from_vec(bits, shape, device)
        }
        TensorData::F32(v) => CTensor::from_slice(v, shape, device),
        TensorData::Bool(v) => {
            let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
            CTensor::from_vec(bytes, shape, device)
        }
        TensorData::Raw(_) => return Ok(None),
        ints => match ints.to_i64() {
            Some(v) => CTensor::from_vec(v, shape, device),
            None => return Ok(None),
        },
    };
    t.map(Some).map_err(|e| e.to_string())
}

/// Whether `graph` only holds ops qdbg can run, as an error naming the first that is not.
impl Graph {
    pub fn check_supported(&self) -> Result<()> {
        for node in &self.nodes {
            if let Op::Unsupported { name } = &node.op {
                let hint = if name == "DENSIFY" {
                    "qdbg densifies sparse constant weights when it reads the model, but this \
                     DENSIFY reads a tensor computed at run time, which it cannot run; convert \
                     the model without sparsification"
                        .to_string()
                } else if name.starts_with("CUSTOM") {
                    "qdbg runs only the custom ops LiteRT's runtime runs \
                     (Convolution2DTransposeBias, MaxPoolingWithArgmax2D, MaxUnpooling2D); \
                     convert with builtin ops only (without allow_custom_ops), or open an \
                     issue naming the op"
                        .to_string()
                } else {
                    format!(
                        "qdbg has no kernel for {name} yet; `qdbg inspect` lists the supported ops, \
                         and an issue naming the op helps us add it"
                    )
                };
                return Err(Error::UnsupportedOp {
                    path: self.source.clone(),
                    op_index: node.source_index,
                    op: name.clone(),
                    hint,
                });
            }
        }
        Ok(())
    }
}

/// [`tensor_from_sample`] taking the sample: a float32 array in standard layout (as
/// [`crate::data::Dataset::sample`] gives them) becomes the tensor's storage as it is,
/// without a copy.
pub fn tensor_from_owned_sample(sample: SampleArray, device: &Device) -> Result<CTensor> {
    match sample {
        SampleArray::F32(a) if a.is_standard_layout() => {
            let (shape, n) = (a.shape().to_vec(), a.len());
            let (mut values, offset) = a.into_raw_vec_and_offset();
            // In standard layout the array's values are the `n` from the offset on.
            values.drain(..offset.unwrap_or(0));
            values.truncate(n);
            CTensor::from_vec(values, shape, device).map_err(|e| Error::Device {
                device: format!("{device:?}"),
                reason: e.to_string(),
            })
        }
        other => tensor_from_sample(&other, device),
    }
}

/// A dataset sample as a candle tensor on `device`.
pub fn tensor_from_sample(sample: &SampleArray, device: &Device) -> Result<CTensor> {
    let shape = sample.shape().to_vec();
    let result = match sample {
        // A contiguous array is one copy; ndarray's element iterator over a dynamic-rank
        // array costs ~10x that, per sample.
        SampleArray::F32(a) => CTensor::from_vec(
            a.as_slice()
                .map_or_else(|| a.iter().copied().collect(), <[f32]>::to_vec),
            shape,
            device,
        ),
        SampleArray::I32(a) => CTensor::from_vec(
            a.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            shape,
            device,
        ),
        SampleArray::I64(a) => {
            CTensor::from_vec(a.iter().copied().collect::<Vec<_>>(), shape, device)
        }
        SampleArray::U8(a) => CTensor::from_vec(
            a.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            shape,
            device,
        ),
        SampleArray::I8(a) => CTensor::from_vec(
            a.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            shape,
            device,
        ),
    };
    result.map_err(|e| Error::Device {
        device: format!("{device:?}"),
        reason: e.to_string(),
    })
}

/// A computed tensor as an array of the model's dtype for that tensor.
pub fn sample_from_tensor(value: &CTensor, dtype: DType) -> Result<SampleArray> {
    let fail = |e: candle_core::Error| Error::Device {
        device: format!("{:?}", value.device()),
        reason: e.to_string(),
    };
    let shape = IxDyn(value.dims());
    let flat = value.flatten_all().map_err(fail)?;
    let array = match dtype {
        d if d.is_float() => {
            let v = flat
                .to_dtype(candle_core::DType::F32)
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(fail)?;
            SampleArray::F32(
                ArrayD::from_shape_vec(shape, v).map_err(|e| shape_error(e.to_string()))?,
            )
        }
        _ => {
            let v = flat
                .to_dtype(candle_core::DType::I64)
                .and_then(|t| t.to_vec1::<i64>())
                .map_err(fail)?;
            match dtype {
                DType::I8 => SampleArray::I8(
                    ArrayD::from_shape_vec(shape, v.iter().map(|&x| x as i8).collect())
                        .map_err(|e| shape_error(e.to_string()))?,
                ),
                DType::U8 | DType::Bool => SampleArray::U8(
                    ArrayD::from_shape_vec(shape, v.iter().map(|&x| x as u8).collect())
                        .map_err(|e| shape_error(e.to_string()))?,
                ),
                DType::I64 => SampleArray::I64(
                    ArrayD::from_shape_vec(shape, v).map_err(|e| shape_error(e.to_string()))?,
                ),
                _ => SampleArray::I32(
                    ArrayD::from_shape_vec(shape, v.iter().map(|&x| x as i32).collect())
                        .map_err(|e| shape_error(e.to_string()))?,
                ),
            }
        }
    };
    Ok(array)
}

fn shape_error(reason: String) -> Error {
    Error::Internal(reason)
}

/// Stacks per-sample arrays of one output along a new first axis.
pub fn stack_samples(samples: &[SampleArray]) -> Result<SampleArray> {
    fn stack<T: Clone>(parts: Vec<&ArrayD<T>>) -> Result<ArrayD<T>> {
        let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
        ndarray::stack(Axis(0), &views).map_err(|e| shape_error(e.to_string()))
    }
    macro_rules! gather {
        ($variant:ident) => {{
            let parts = samples
                .iter()
                .map(|s| match s {
                    SampleArray::$variant(a) => Ok(a),
                    _ => Err(shape_error("samples of one output differ in dtype".into())),
                })
                .collect::<Result<Vec<_>>>()?;
            SampleArray::$variant(stack(parts)?)
        }};
    }
    Ok(match samples.first() {
        None => return Err(shape_error("no samples to stack".into())),
        Some(SampleArray::F32(_)) => gather!(F32),
        Some(SampleArray::I32(_)) => gather!(I32),
        Some(SampleArray::I64(_)) => gather!(I64),
        Some(SampleArray::U8(_)) => gather!(U8),
        Some(SampleArray::I8(_)) => gather!(I8),
    })
}
