//! Writes a [`Graph`] back to a `.tflite` flatbuffer: the inverse of the reader.
//!
//! The model has one subgraph holding the tensors of [`Graph::tensors`] that something
//! uses, in order ([`Graph::written_tensor_ids`] maps ids to file indices: reports use it
//! for `tensor_idx`): a tensor nothing reads (a float16 weight the reader widened, a float
//! weight replaced by its int8 copy) would be dead weight, so it is left out with its
//! buffer. Operators follow [`Graph::nodes`]. Ops the reader folded at load time
//! (DEQUANTIZE of float16 weights) are written back where a float op still reads their
//! output ([`Graph::refolded`]), so float16 weights stay float16 (a float island of a
//! selective model included); weights an int8 op took over are left out.
//!
//! Operator versions follow the converter's rules (see [`op_version`]), one operator
//! code per builtin carrying the highest version any of its ops needs, as TensorFlow's
//! `UpdateOpVersion` does. Given the source model's bytes, the writer carries over what
//! the graph does not model: metadata entries (with their buffers) and signature defs.
//! `min_runtime_version` is kept only while the written (builtin, version) pairs are
//! exactly the source's, since the converter computed it from them; signature defs of
//! subgraphs other than 0 (which the reader does not read) are dropped.
//!
//! Constants are written in their tensor's type: float data of a FLOAT16 or BFLOAT16
//! tensor (widened by the reader) is narrowed back, exactly for values that came from
//! the file. Every buffer's data starts on a 16-byte boundary, as the converter's do.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, UnionWIPOffset, Vector, WIPOffset};

use super::fb;
use crate::error::{Error, Result};
use crate::graph::*;

/// Label for errors of [`model_bytes`], which writes no file.
const IN_MEMORY: &str = "<in-memory .tflite>";

/// Metadata entry holding the oldest TFLite runtime that can run the model (a
/// zero-padded version string computed by the converter from the operator codes).
const MIN_RUNTIME_VERSION: &str = "min_runtime_version";

/// Serializes `graph` as a TFLite model. `original`, the bytes of the model the graph was
/// read from, supplies what the graph does not model: metadata and signature defs.
pub fn model_bytes(graph: &Graph, original: Option<&[u8]>) -> Result<Vec<u8>> {
    build(graph, original).map_err(|f| f.into_error(graph, Path::new(IN_MEMORY)))
}

/// [`model_bytes`], written to `path` atomically: readers see the old file or the new
/// one, never half of either.
pub fn write_model(graph: &Graph, original: Option<&[u8]>, path: &Path) -> Result<()> {
    let bytes = build(graph, original).map_err(|f| f.into_error(graph, path))?;
    crate::atomic::write_bytes_atomic(path, &bytes)
}

/// Why a graph could not be written.
enum Fail {
    /// An op the writer cannot express.
    Op { op_index: usize, op: String },
    /// The source model's bytes are not a readable model.
    Original(String),
    /// Anything else the TFLite format cannot hold.
    Other(String),
}

impl Fail {
    fn into_error(self, graph: &Graph, dest: &Path) -> Error {
        match self {
            Fail::Op { op_index, op } => Error::UnsupportedOp {
                path: graph.source.clone(),
                op_index,
                op,
                hint: "the TFLite writer cannot write it (qdbg keeps only the op's name, \
                       not its options)"
                    .into(),
            },
            Fail::Original(reason) => Error::invalid_model(
                graph.source.clone(),
                format!("the original model given to the writer: {reason}"),
            ),
            Fail::Other(reason) => Error::Write {
                path: dest.to_path_buf(),
                reason,
            },
        }
    }
}

impl From<String> for Fail {
    fn from(reason: String) -> Self {
        Fail::Other(reason)
    }
}

/// What is carried over from the source model.
#[derive(Default)]
struct Carried {
    subgraph_name: Option<String>,
    /// (name, buffer bytes), in the source's order.
    metadata: Vec<(String, Vec<u8>)>,
    signatures: Vec<Signature>,
    /// The (builtin, version) pairs of the source's operators, to decide whether its
    /// `min_runtime_version` still holds.
    op_versions: HashSet<(i32, i32)>,
}

struct Signature {
    key: String,
    inputs: Vec<(String, u32)>,
    outputs: Vec<(String, u32)>,
}

fn build(graph: &Graph, original: Option<&[u8]>) -> Result<Vec<u8>, Fail> {
    check_ids(graph)?;
    let carried = match original {
        Some(bytes) => carry(bytes, graph.tensors.len())?,
        None => Carried::default(),
    };

    // Float16 weights that float ops still read go back behind their DEQUANTIZE, first, as
    // the converter places them; their widened float32 copies are not written.
    let refolded = graph.refolded();
    let dequantized_at_run_time: HashSet<TensorId> =
        refolded.iter().map(|n| n.outputs[0]).collect();
    let nodes: Vec<&Node> = refolded.iter().chain(&graph.nodes).collect();

    // One operator code per builtin (per custom code for CUSTOM), in order of first use,
    // with the highest version its ops need.
    let mut codes: Vec<(fb::BuiltinOperator, Option<&str>, i32)> = Vec::new();
    let mut node_codes = Vec::with_capacity(nodes.len());
    for &node in &nodes {
        let builtin = builtin(&node.op).ok_or_else(|| Fail::Op {
            op_index: node.source_index,
            op: node.op.display_name().to_string(),
        })?;
        let custom_code = (builtin == fb::BuiltinOperator::CUSTOM).then(|| node.op.name());
        let version = op_version(graph, node, builtin);
        let index = match codes
            .iter()
            .position(|&(b, c, _)| b == builtin && c == custom_code)
        {
            Some(i) => {
                codes[i].2 = codes[i].2.max(version);
                i
            }
            None => {
                codes.push((builtin, custom_code, version));
                codes.len() - 1
            }
        };
        node_codes.push(index as u32);
    }

    // Tensors nothing uses are not written: `index[id]` is a kept tensor's file index.
    let index = graph.written_tensor_ids();
    let kept: Vec<TensorId> = (0..graph.tensors.len())
        .filter(|&i| index[i].is_some())
        .collect();
    let file_index = |id: TensorId| index[id].map_or(-1, |i| i as i32);

    let mut data = Vec::with_capacity(kept.len());
    for &i in &kept {
        let t = &graph.tensors[i];
        if dequantized_at_run_time.contains(&i) {
            data.push(None);
            continue;
        }
        data.push(encode(t).map_err(|e| tensor_fail(i, t, e))?);
    }

    // min_runtime_version is a function of the (builtin, version) pairs; keep it only
    // while those are exactly the source model's.
    let written: HashSet<(i32, i32)> = codes.iter().map(|&(b, _, v)| (b.0, v)).collect();
    let keep_min_runtime = written == carried.op_versions;
    let metadata: Vec<&(String, Vec<u8>)> = carried
        .metadata
        .iter()
        .filter(|(name, _)| name != MIN_RUNTIME_VERSION || keep_min_runtime)
        .collect();

    let capacity = size_estimate(graph, &data, &metadata, &carried.signatures)?;
    let mut fbb = FlatBufferBuilder::with_capacity(capacity);

    // Buffers: 0 is the empty sentinel, then one per distinct constant content, then the
    // metadata's. Constants with the same bytes (the zero biases of several convolutions,
    // equal shape vectors) share one buffer, as in the converter's files: LiteRT never
    // writes to a constant.
    let mut buffers = vec![fb::Buffer::create(&mut fbb, &fb::BufferArgs::default())];
    let mut tensor_buffer = Vec::with_capacity(graph.tensors.len());
    let mut by_content: HashMap<&[u8], u32> = HashMap::new();
    for bytes in &data {
        tensor_buffer.push(match bytes {
            Some(b) if !b.is_empty() => match by_content.get(b.as_slice()) {
                Some(&index) => index,
                None => {
                    let index = push_buffer(&mut fbb, &mut buffers, b);
                    by_content.insert(b.as_slice(), index);
                    index
                }
            },
            _ => 0,
        });
    }
    drop(by_content);
    drop(data);
    let metadata_buffer: Vec<u32> = metadata
        .iter()
        .map(|(_, b)| push_buffer(&mut fbb, &mut buffers, b))
        .collect();

    let mut tensors = Vec::with_capacity(kept.len());
    for (k, &i) in kept.iter().enumerate() {
        let t = &graph.tensors[i];
        let table =
            write_tensor(&mut fbb, t, tensor_buffer[k]).map_err(|e| tensor_fail(i, t, e))?;
        tensors.push(table);
    }

    let mut operators = Vec::with_capacity(nodes.len());
    for (&node, &opcode_index) in nodes.iter().zip(&node_codes) {
        let op_fail = |e: String| {
            Fail::Other(format!(
                "op #{} ({}): {e}",
                node.source_index,
                node.op.display_name()
            ))
        };
        let (options_type, options) = write_options(&mut fbb, graph, node).map_err(op_fail)?;
        let inputs: Vec<i32> = node
            .inputs
            .iter()
            .map(|i| i.map_or(-1, file_index))
            .collect();
        let outputs: Vec<i32> = node.outputs.iter().map(|&i| file_index(i)).collect();
        let inputs = fbb.create_vector(&inputs);
        let outputs = fbb.create_vector(&outputs);
        // Custom ops carry their options as the source model's bytes, unchanged.
        let custom_options = node.op.custom_options().map(|b| fbb.create_vector(b));
        operators.push(fb::Operator::create(
            &mut fbb,
            &fb::OperatorArgs {
                opcode_index,
                inputs: Some(inputs),
                outputs: Some(outputs),
                builtin_options_type: options_type,
                builtin_options: options,
                custom_options,
                ..Default::default()
            },
        ));
    }

    let subgraph = {
        let tensors = fbb.create_vector(&tensors);
        let inputs: Vec<i32> = graph.inputs.iter().map(|&i| file_index(i)).collect();
        let outputs: Vec<i32> = graph.outputs.iter().map(|&i| file_index(i)).collect();
        let inputs = fbb.create_vector(&inputs);
        let outputs = fbb.create_vector(&outputs);
        let operators = fbb.create_vector(&operators);
        let name = fbb.create_string(carried.subgraph_name.as_deref().unwrap_or("main"));
        fb::SubGraph::create(
            &mut fbb,
            &fb::SubGraphArgs {
                tensors: Some(tensors),
                inputs: Some(inputs),
                outputs: Some(outputs),
                operators: Some(operators),
                name: Some(name),
            },
        )
    };

    let operator_codes: Vec<_> = codes
        .iter()
        .map(|&(builtin, custom_code, version)| {
            let custom_code = custom_code.map(|c| fbb.create_string(c));
            fb::OperatorCode::create(
                &mut fbb,
                &fb::OperatorCodeArgs {
                    // Codes past 127 live only in `builtin_code`; the byte says "look there".
                    deprecated_builtin_code: builtin.0.min(127) as i8,
                    custom_code,
                    version,
                    builtin_code: builtin,
                },
            )
        })
        .collect();

    let metadata_tables: Vec<_> = metadata
        .iter()
        .zip(&metadata_buffer)
        .map(|((name, _), &buffer)| {
            let name = fbb.create_string(name);
            fb::Metadata::create(
                &mut fbb,
                &fb::MetadataArgs {
                    name: Some(name),
                    buffer,
                },
            )
        })
        .collect();

    // Signatures name model inputs and outputs, which are always kept.
    let remap = |maps: &[(String, u32)]| -> Vec<(String, u32)> {
        maps.iter()
            .filter_map(|(name, i)| Some((name.clone(), index[*i as usize]? as u32)))
            .collect()
    };
    let signature_tables: Vec<_> = carried
        .signatures
        .iter()
        .map(|s| {
            let inputs = tensor_maps(&mut fbb, &remap(&s.inputs));
            let outputs = tensor_maps(&mut fbb, &remap(&s.outputs));
            let key = fbb.create_string(&s.key);
            fb::SignatureDef::create(
                &mut fbb,
                &fb::SignatureDefArgs {
                    inputs: Some(inputs),
                    outputs: Some(outputs),
                    signature_key: Some(key),
                    subgraph_index: 0,
                },
            )
        })
        .collect();

    let model = {
        let operator_codes = fbb.create_vector(&operator_codes);
        let subgraphs = fbb.create_vector(&[subgraph]);
        let description = fbb.create_string(if graph.description.is_empty() {
            "qdbg"
        } else {
            &graph.description
        });
        let buffers = fbb.create_vector(&buffers);
        let metadata = fbb.create_vector(&metadata_tables);
        let signature_defs = fbb.create_vector(&signature_tables);
        fb::Model::create(
            &mut fbb,
            &fb::ModelArgs {
                version: 3,
                operator_codes: Some(operator_codes),
                subgraphs: Some(subgraphs),
                description: Some(description),
                buffers: Some(buffers),
                metadata_buffer: None,
                metadata: Some(metadata),
                signature_defs: Some(signature_defs),
            },
        )
    };
    fb::finish_model_buffer(&mut fbb, model);
    let (mut bytes, head) = fbb.collapse();
    bytes.drain(..head);
    Ok(bytes)
}

fn tensor_fail(index: usize, t: &Tensor, reason: String) -> Fail {
    Fail::Other(format!("tensor {index} ('{}'): {reason}", t.name))
}

/// Every tensor id the graph uses must name a tensor, and fit TFLite's int32 indices.
fn check_ids(graph: &Graph) -> Result<(), Fail> {
    let count = graph.tensors.len();
    if count > i32::MAX as usize {
        return Err(Fail::Other(format!(
            "the graph has {count} tensors, more than TFLite can index"
        )));
    }
    let check = |id: TensorId, what: &dyn Fn() -> String| -> Result<(), Fail> {
        if id >= count {
            return Err(Fail::Other(format!(
                "{} refers to tensor {id}, but the graph has {count} tensors",
                what()
            )));
        }
        Ok(())
    };
    for &id in &graph.inputs {
        check(id, &|| "a model input".into())?;
    }
    for &id in &graph.outputs {
        check(id, &|| "a model output".into())?;
    }
    for node in &graph.nodes {
        let what = || format!("op #{} ({})", node.source_index, node.op.display_name());
        if node.outputs.is_empty() {
            return Err(Fail::Other(format!("{} has no outputs", what())));
        }
        for &id in node.inputs.iter().flatten().chain(&node.outputs) {
            check(id, &what)?;
        }
    }
    Ok(())
}

/// Reads what the writer carries over from the source model.
fn carry(bytes: &[u8], tensor_count: usize) -> Result<Carried, Fail> {
    if bytes.len() < 8 || !fb::model_buffer_has_identifier(bytes) {
        return Err(Fail::Original(
            "missing the 'TFL3' file identifier; is this a .tflite file?".into(),
        ));
    }
    let opts = flatbuffers::VerifierOptions {
        max_depth: 64,
        max_tables: 10_000_000,
        max_apparent_size: 1 << 31,
        ignore_missing_null_terminator: true,
    };
    let model = fb::root_as_model_with_opts(&opts, bytes)
        .map_err(|e| Fail::Original(format!("the flatbuffer is corrupt or truncated: {e}")))?;
    let mut carried = Carried::default();

    let subgraph = model
        .subgraphs()
        .filter(|s| !s.is_empty())
        .map(|s| s.get(0));
    carried.subgraph_name = subgraph.and_then(|s| s.name()).map(str::to_string);
    if let (Some(sg), Some(codes)) = (subgraph, model.operator_codes()) {
        for op in sg.operators().iter().flatten() {
            let index = op.opcode_index() as usize;
            if index < codes.len() {
                let code = codes.get(index);
                let builtin = code
                    .builtin_code()
                    .0
                    .max(code.deprecated_builtin_code() as i32);
                carried.op_versions.insert((builtin, code.version()));
            }
        }
    }

    for (i, m) in model.metadata().iter().flatten().enumerate() {
        let name = m.name().unwrap_or_default().to_string();
        let data = original_buffer(&model, bytes, m.buffer())
            .map_err(|e| Fail::Original(format!("metadata {i} ('{name}'): {e}")))?;
        carried.metadata.push((name, data.to_vec()));
    }

    for s in model.signature_defs().iter().flatten() {
        // The graph is subgraph 0; signatures of other subgraphs have nothing to point at.
        if s.subgraph_index() != 0 {
            continue;
        }
        let key = s.signature_key().unwrap_or_default().to_string();
        let maps = |v: Option<Vector<'_, ForwardsUOffset<fb::TensorMap<'_>>>>| {
            v.iter()
                .flatten()
                .map(|m| {
                    let index = m.tensor_index();
                    if index as usize >= tensor_count {
                        return Err(Fail::Other(format!(
                            "signature '{key}' of the original model maps '{}' to tensor \
                             {index}, but the graph has {tensor_count} tensors",
                            m.name().unwrap_or_default()
                        )));
                    }
                    Ok((m.name().unwrap_or_default().to_string(), index))
                })
                .collect::<Result<Vec<_>, Fail>>()
        };
        let inputs = maps(s.inputs())?;
        let outputs = maps(s.outputs())?;
        carried.signatures.push(Signature {
            key,
            inputs,
            outputs,
        });
    }
    Ok(carried)
}

/// The bytes of buffer `index` of the source model, inline or after the flatbuffer.
fn original_buffer<'a>(
    model: &fb::Model<'a>,
    bytes: &'a [u8],
    index: u32,
) -> Result<&'a [u8], String> {
    if index == 0 {
        return Ok(&[]);
    }
    let buffers = model
        .buffers()
        .filter(|b| (index as usize) < b.len())
        .ok_or_else(|| format!("buffer {index} does not exist"))?;
    let buffer = buffers.get(index as usize);
    if let Some(data) = buffer.data() {
        return Ok(data);
    }
    let (offset, size) = (buffer.offset(), buffer.size_());
    if offset > 1 {
        return offset
            .checked_add(size)
            .filter(|&end| end <= bytes.len() as u64)
            .map(|end| &bytes[offset as usize..end as usize])
            .ok_or_else(|| format!("buffer {index} lies past the end of the file"));
    }
    Ok(&[])
}

/// Bytes the builder needs, checked against the flatbuffer limit of 2 GiB (the writer
/// keeps every buffer inside the flatbuffer).
fn size_estimate(
    graph: &Graph,
    data: &[Option<Vec<u8>>],
    metadata: &[&(String, Vec<u8>)],
    signatures: &[Signature],
) -> Result<usize, Fail> {
    let mut total: u64 = 1 << 16;
    total += data
        .iter()
        .flatten()
        .map(|b| b.len() as u64 + 32)
        .sum::<u64>();
    total += metadata
        .iter()
        .map(|(n, b)| (n.len() + b.len()) as u64 + 64)
        .sum::<u64>();
    for t in &graph.tensors {
        let dims = t.shape.len() + t.shape_signature.as_ref().map_or(0, Vec::len);
        let quant = t
            .quant
            .as_ref()
            .map_or(0, |q| 4 * q.scale.len() + 8 * q.zero_point.len());
        total += (t.name.len() + 4 * dims + quant) as u64 + 128;
    }
    for n in &graph.nodes {
        let squeeze = match &n.op {
            Op::Squeeze { axes } => axes.len(),
            _ => 0,
        };
        let custom = n.op.custom_options().map_or(0, <[u8]>::len);
        total += (4 * (n.inputs.len() + n.outputs.len() + squeeze) + custom) as u64 + 128;
        if let (Op::Reshape, Some(&out)) = (&n.op, n.outputs.first()) {
            total += 4 * graph.tensors[out].shape.len() as u64;
        }
    }
    for s in signatures {
        total += s.key.len() as u64 + 64;
        for (name, _) in s.inputs.iter().chain(&s.outputs) {
            total += name.len() as u64 + 32;
        }
    }
    total += graph.description.len() as u64;
    // The builder's arithmetic is 32-bit: stay well inside it.
    if total >= (flatbuffers::FLATBUFFERS_MAX_BUFFER_SIZE as u64) - 16 {
        return Err(Fail::Other(format!(
            "the model needs about {} MiB, past the 2 GiB a TFLite flatbuffer can hold",
            total >> 20
        )));
    }
    Ok(total as usize)
}

/// 16 bytes that the builder aligns to 16, as the schema's `force_align: 16` on buffer
/// data asks (flatc's Rust output ignores the attribute).
#[repr(C, align(16))]
struct Block16([u8; 16]);

struct Chunk([u8; 16]);

impl flatbuffers::Push for Chunk {
    type Output = Block16;
    fn push(&self, dst: &mut [u8], _rest: &[u8]) {
        dst.copy_from_slice(&self.0);
    }
}

/// Adds a buffer whose data starts on a 16-byte boundary of the finished file, so
/// kernels can read constants in place; returns its index.
fn push_buffer<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    buffers: &mut Vec<WIPOffset<fb::Buffer<'a>>>,
    bytes: &[u8],
) -> u32 {
    // The builder writes back to front and finishes on a multiple of the largest
    // alignment used: aligning the bytes *after* the data (zero-length Block16 vector
    // start) and padding so the data's start is a multiple of 16 from the end makes it a
    // multiple of 16 from the start.
    let tail = bytes.len() % 16;
    let (body, tail_bytes) = bytes.split_at(bytes.len() - tail);
    fbb.start_vector::<Chunk>(0);
    for _ in 0..(16 - tail) % 16 {
        fbb.push(0u8);
    }
    for &b in tail_bytes.iter().rev() {
        fbb.push(b);
    }
    for c in body.chunks_exact(16).rev() {
        let mut block = [0u8; 16];
        block.copy_from_slice(c);
        fbb.push(Chunk(block));
    }
    let data = fbb.end_vector::<u8>(bytes.len());
    buffers.push(fb::Buffer::create(
        fbb,
        &fb::BufferArgs {
            data: Some(data),
            ..Default::default()
        },
    ));
    (buffers.len() - 1) as u32
}

fn tensor_maps<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    maps: &[(String, u32)],
) -> WIPOffset<Vector<'a, ForwardsUOffset<fb::TensorMap<'a>>>> {
    let tables: Vec<_> = maps
        .iter()
        .map(|(name, tensor_index)| {
            let name = fbb.create_string(name);
            fb::TensorMap::create(
                fbb,
                &fb::TensorMapArgs {
                    name: Some(name),
                    tensor_index: *tensor_index,
                },
            )
        })
        .collect();
    fbb.create_vector(&tables)
}

fn write_tensor<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    t: &Tensor,
    buffer: u32,
) -> Result<WIPOffset<fb::Tensor<'a>>, String> {
    let type_ = tensor_type(t.dtype)?;
    let shape = t
        .shape
        .iter()
        .map(|&d| i32::try_from(d).map_err(|_| format!("dimension {d} does not fit int32")))
        .collect::<Result<Vec<_>, _>>()?;
    let signature = t
        .shape_signature
        .as_ref()
        .map(|s| {
            s.iter()
                .map(|&d| {
                    i32::try_from(d)
                        .map_err(|_| format!("signature dimension {d} does not fit int32"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let quantization = match &t.quant {
        Some(q) => {
            if q.scale.len() != q.zero_point.len() {
                return Err(format!(
                    "{} scales but {} zero points",
                    q.scale.len(),
                    q.zero_point.len()
                ));
            }
            let axis = i32::try_from(q.axis)
                .map_err(|_| format!("quantized dimension {} does not fit int32", q.axis))?;
            let scale = fbb.create_vector(&q.scale);
            let zero_point = fbb.create_vector(&q.zero_point);
            Some(fb::QuantizationParameters::create(
                fbb,
                &fb::QuantizationParametersArgs {
                    scale: Some(scale),
                    zero_point: Some(zero_point),
                    quantized_dimension: axis,
                    ..Default::default()
                },
            ))
        }
        None => None,
    };
    let shape = fbb.create_vector(&shape);
    let shape_signature = signature.map(|s| fbb.create_vector(&s));
    let name = fbb.create_string(&t.name);
    Ok(fb::Tensor::create(
        fbb,
        &fb::TensorArgs {
            shape: Some(shape),
            type_,
            buffer,
            name: Some(name),
            quantization,
            shape_signature,
            has_rank: true,
            ..Default::default()
        },
    ))
}

fn tensor_type(dtype: DType) -> Result<fb::TensorType, String> {
    use fb::TensorType as T;
    Ok(match dtype {
        DType::F32 => T::FLOAT32,
        DType::F16 => T::FLOAT16,
        DType::BF16 => T::BFLOAT16,
        DType::F64 => T::FLOAT64,
        DType::I8 => T::INT8,
        DType::U8 => T::UINT8,
        DType::I16 => T::INT16,
        DType::U16 => T::UINT16,
        DType::I32 => T::INT32,
        DType::U32 => T::UINT32,
        DType::I64 => T::INT64,
        DType::U64 => T::UINT64,
        DType::Bool => T::BOOL,
        DType::String => T::STRING,
        // The reader keeps the schema's name of types it cannot compute with.
        DType::Unsupported(name) => T::ENUM_VALUES
            .iter()
            .copied()
            .find(|t| t.variant_name() == Some(name))
            .ok_or_else(|| format!("element type '{name}' has no TFLite equivalent"))?,
    })
}

/// Little-endian bytes of a constant, in the tensor's own element type: float data of a
/// FLOAT16/BFLOAT16 tensor (which the reader widened) is narrowed back.
fn encode(t: &Tensor) -> Result<Option<Vec<u8>>, String> {
    let Some(data) = &t.data else {
        return Ok(None);
    };
    let elements = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} overflows", t.shape))?;
    if let TensorData::Raw(bytes) = data {
        // Kept verbatim; sized types must still match the shape.
        if let Some(size) = t.dtype.size_bytes() {
            if Some(bytes.len()) != elements.checked_mul(size) {
                return Err(format!(
                    "{} bytes of data, but {elements} {} elements need {}",
                    bytes.len(),
                    t.dtype,
                    elements.saturating_mul(size)
                ));
            }
        }
        return Ok(Some(bytes.clone()));
    }
    if data.len() != elements {
        return Err(format!(
            "{} values of data, but shape {:?} holds {elements}",
            data.len(),
            t.shape
        ));
    }
    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }
    Ok(Some(match (t.dtype, data) {
        (DType::F32, TensorData::F32(v)) => le(v, f32::to_le_bytes),
        (DType::F16, TensorData::F32(v)) => le(v, |x| half::f16::from_f32(x).to_le_bytes()),
        (DType::BF16, TensorData::F32(v)) => le(v, |x| half::bf16::from_f32(x).to_le_bytes()),
        (DType::I8, TensorData::I8(v)) => le(v, i8::to_le_bytes),
        (DType::U8, TensorData::U8(v)) => v.clone(),
        (DType::I16, TensorData::I16(v)) => le(v, i16::to_le_bytes),
        (DType::I32, TensorData::I32(v)) => le(v, i32::to_le_bytes),
        (DType::I64, TensorData::I64(v)) => le(v, i64::to_le_bytes),
        (DType::Bool, TensorData::Bool(v)) => v.iter().map(|&b| b as u8).collect(),
        (dtype, data) => {
            return Err(format!(
                "its {dtype} type cannot hold {} data",
                data_kind(data)
            ))
        }
    }))
}

fn data_kind(data: &TensorData) -> &'static str {
    match data {
        TensorData::F32(_) => "float32",
        TensorData::I8(_) => "int8",
        TensorData::U8(_) => "uint8",
        TensorData::I16(_) => "int16",
        TensorData::I32(_) => "int32",
        TensorData::I64(_) => "int64",
        TensorData::Bool(_) => "bool",
        TensorData::Raw(_) => "raw",
    }
}

/// The builtin operator of an op; `None` for ops the writer cannot express.
fn builtin(op: &Op) -> Option<fb::BuiltinOperator> {
    use fb::BuiltinOperator as B;
    Some(match op {
        Op::Conv2d(_) => B::CONV_2D,
        Op::DepthwiseConv2d(_) => B::DEPTHWISE_CONV_2D,
        Op::TransposeConv(_) => B::TRANSPOSE_CONV,
        Op::FullyConnected(_) => B::FULLY_CONNECTED,
        Op::BatchMatMul { .. } => B::BATCH_MATMUL,
        Op::Binary { kind, .. } => match kind {
            BinaryKind::Add => B::ADD,
            BinaryKind::Sub => B::SUB,
            BinaryKind::Mul => B::MUL,
            BinaryKind::Div => B::DIV,
            BinaryKind::SquaredDifference => B::SQUARED_DIFFERENCE,
            BinaryKind::Maximum => B::MAXIMUM,
            BinaryKind::Minimum => B::MINIMUM,
        },
        Op::Unary(kind) => match kind {
            UnaryKind::Rsqrt => B::RSQRT,
            UnaryKind::Sqrt => B::SQRT,
            UnaryKind::Relu => B::RELU,
            UnaryKind::Relu6 => B::RELU6,
            UnaryKind::ReluN1To1 => B::RELU_N1_TO_1,
            UnaryKind::Logistic => B::LOGISTIC,
            UnaryKind::Tanh => B::TANH,
            UnaryKind::HardSwish => B::HARD_SWISH,
            UnaryKind::Gelu { .. } => B::GELU,
            UnaryKind::LeakyRelu { .. } => B::LEAKY_RELU,
        },
        Op::Prelu => B::PRELU,
        Op::Reduce { kind, .. } => match kind {
            ReduceKind::Mean => B::MEAN,
            ReduceKind::Sum => B::SUM,
            ReduceKind::Max => B::REDUCE_MAX,
        },
        Op::Pool2d { kind, .. } => match kind {
            PoolKind::Average => B::AVERAGE_POOL_2D,
            PoolKind::Max => B::MAX_POOL_2D,
        },
        Op::Softmax { .. } => B::SOFTMAX,
        Op::Reshape => B::RESHAPE,
        Op::Squeeze { .. } => B::SQUEEZE,
        Op::ExpandDims => B::EXPAND_DIMS,
        Op::Transpose => B::TRANSPOSE,
        Op::Concatenation { .. } => B::CONCATENATION,
        Op::Split { .. } => B::SPLIT,
        Op::Slice => B::SLICE,
        Op::StridedSlice(_) => B::STRIDED_SLICE,
        Op::Gather { .. } => B::GATHER,
        Op::Pad => B::PAD,
        Op::PadV2 => B::PADV2,
        Op::ResizeBilinear(_) => B::RESIZE_BILINEAR,
        Op::ResizeNearestNeighbor(_) => B::RESIZE_NEAREST_NEIGHBOR,
        Op::DepthToSpace { .. } => B::DEPTH_TO_SPACE,
        Op::SpaceToDepth { .. } => B::SPACE_TO_DEPTH,
        Op::Quantize => B::QUANTIZE,
        Op::Dequantize => B::DEQUANTIZE,
        // Written under their custom code (`Op::name`), with their own options bytes.
        Op::Convolution2DTransposeBias(_)
        | Op::MaxPoolingWithArgmax2D(_)
        | Op::MaxUnpooling2D(_) => B::CUSTOM,
        Op::Unsupported { .. } => return None,
    })
}

/// The operator version an op needs, by the rules TensorFlow's converter applies
/// (`GetBuiltinOperatorVersion` in
/// tensorflow/compiler/mlir/lite/tools/versioning/op_version.cc, with the extra facts
/// of op_signature.cc; tensorflow/lite/tools/versioning/op_version.cc is the runtime's
/// older copy), restricted to what qdbg's ops can be: float32, int8/uint8 and int16
/// tensors, no sparse or int4 weights, no quantized bias type, no asymmetric hybrid
/// inputs, default (unshuffled) fully-connected weights, `pot_scale_int16` left true.
/// Each TFLite kernel registers exactly the versions it implements, so an op written
/// with too low a version runs the wrong code path or is refused.
///
/// Each arm lists TensorFlow's rules in its order: the first that holds gives the
/// version, none gives 1.
fn op_version(graph: &Graph, node: &Node, builtin: fb::BuiltinOperator) -> i32 {
    use fb::BuiltinOperator as B;
    use DType::*;
    let input = |i: usize| node.input(i).map(|id| &graph.tensors[id]);
    let output = node.outputs.first().map(|&id| &graph.tensors[id]);
    // A missing input has TFLite's kTfLiteNoType, which no rule matches.
    let is = |i: usize, d: DType| input(i).is_some_and(|t| t.dtype == d);
    let out_is = |d: DType| output.is_some_and(|t| t.dtype == d);
    let io = |a: DType, b: DType, o: DType| is(0, a) && is(1, b) && out_is(o);
    let dims = |i: usize| input(i).map_or(0, |t| t.shape.len());
    let hybrid = io(F32, I8, F32);
    let int8 = io(I8, I8, I8);
    // Binary ops with differently shaped inputs and a rank above 4.
    let broadcast5d = node.inputs.len() >= 2
        && input(0).map(|t| &t.shape) != input(1).map(|t| &t.shape)
        && (0..node.inputs.len()).map(dims).max().unwrap_or(0) > 4;
    let scales = |t: Option<&Tensor>| {
        t.and_then(|t| t.quant.as_ref())
            .map_or(0, |q| q.scale.len())
    };
    // As many scales as the tensor has entries along `dim` (op_signature.cc).
    let per_channel = |t: Option<&Tensor>, dim: usize| {
        let n = scales(t);
        n > 0 && t.is_some_and(|t| t.shape.get(dim) == Some(&n))
    };
    // DEQUANTIZE / QUANTIZE: more than one scale, along the quantized dimension.
    let per_axis = |t: Option<&Tensor>| {
        scales(t) > 1 && per_channel(t, t.and_then(|t| t.quant.as_ref()).map_or(0, |q| q.axis))
    };
    let first = |rules: &[(bool, i32)]| rules.iter().find(|r| r.0).map_or(1, |r| r.1);

    match (builtin, &node.op) {
        (B::CONV_2D, _) => {
            let grouped = input(0)
                .zip(input(1))
                .is_some_and(|(x, w)| !x.shape.is_empty() && x.shape.get(3) != w.shape.get(3));
            first(&[
                (grouped, 6),
                (int8, 3),
                (hybrid && per_channel(input(1), 0), 5),
                (hybrid, 2),
            ])
        }
        (B::DEPTHWISE_CONV_2D, Op::DepthwiseConv2d(a)) => first(&[
            (hybrid && per_channel(input(1), 3), 6),
            (hybrid, 4),
            (int8, 3),
            (a.dilation_h != 1 || a.dilation_w != 1, 2),
        ]),
        (B::TRANSPOSE_CONV, Op::TransposeConv(a)) => first(&[
            (a.activation != FusedActivation::None, 4),
            (node.inputs.len() == 4 && node.input(3).is_some(), 3),
            (is(1, I8), 2),
        ]),
        (B::FULLY_CONNECTED, Op::FullyConnected(a)) => first(&[
            (hybrid && per_channel(input(1), 0), 12),
            (io(I16, I16, I16), 7),
            (node.inputs.len() == 2, 6),
            (a.keep_num_dims, 5),
            (int8, 4),
            (hybrid, 3),
        ]),
        (B::GATHER, Op::Gather { batch_dims, .. }) => first(&[
            (is(1, I16), 6),
            (*batch_dims != 0, 5),
            (is(0, I16), 4),
            (is(0, Bool), 3),
            (is(0, I8), 2),
        ]),
        (B::MUL, _) => {
            let quantized = |t: Option<&Tensor>| t.is_some_and(|t| t.quant.is_some());
            let scale = |t: Option<&Tensor>| {
                t.and_then(|t| t.quant.as_ref())
                    .and_then(|q| q.scale.first().copied())
                    .unwrap_or(0.0)
            };
            let (s1, s2, so) = (scale(input(0)), scale(input(1)), scale(output));
            // float arithmetic, as TensorFlow's.
            let rescale_ge_1 = s1 != 0.0 && s2 != 0.0 && so != 0.0 && s1 * s2 / so >= 1.0;
            first(&[
                (is(0, F16), 8),
                (
                    is(0, I16) && !(quantized(input(0)) || quantized(input(1))),
                    7,
                ),
                (is(0, U32), 7),
                (is(0, I64), 5),
                (is(0, I16), 4),
                (rescale_ge_1, 3),
                (is(0, I8), 2),
            ])
        }
        (B::MAX_POOL_2D | B::AVERAGE_POOL_2D, _) => {
            first(&[(is(0, I16) && out_is(I16), 3), (is(0, I8), 2)])
        }
        (B::TRANSPOSE, _) => first(&[
            (dims(0) > 6 || is(0, BF16), 8),
            (dims(0) > 5, 6),
            (is(0, I16), 5),
            (dims(0) > 4, 4),
            (is(0, Bool), 3),
            (is(0, I8), 2),
        ]),
        // The data is input 1; input 0 is the axis.
        (B::SPLIT, _) => first(&[(is(1, I16), 4), (is(1, I32), 3), (is(1, I8), 2)]),
        (B::SLICE, _) => first(&[
            (is(0, U32), 6),
            (dims(0) > 4, 5),
            (is(0, I16), 4),
            (is(0, String), 3),
            (is(0, I8), 2),
        ]),
        (B::DEQUANTIZE, _) => first(&[
            (is(0, I16) || is(0, F16), 3),
            (is(0, I8) && per_axis(input(0)), 5),
            (is(0, I8), 2),
        ]),
        (B::QUANTIZE, _) => first(&[(per_axis(output), 3), (out_is(I16), 2)]),
        (B::RELU, _) => first(&[(is(0, I16), 3), (is(0, I8) || is(0, U8), 2)]),
        (B::STRIDED_SLICE, Op::StridedSlice(a)) => first(&[
            (a.offset, 8),
            (is(0, U32), 7),
            (a.ellipsis_mask != 0 || a.new_axis_mask != 0, 6),
            (is(0, String), 5),
            (dims(0) > 4, 4),
            (is(0, Bool), 3),
            (is(0, I8), 2),
        ]),
        (B::RESIZE_BILINEAR, Op::ResizeBilinear(a)) => {
            first(&[(is(0, I16), 4), (a.half_pixel_centers, 3), (is(0, I8), 2)])
        }
        (B::RESIZE_NEAREST_NEIGHBOR, Op::ResizeNearestNeighbor(a)) => first(&[
            (is(0, I16), 4),
            (a.half_pixel_centers || a.align_corners, 3),
            (is(0, I8), 2),
        ]),
        (B::MAXIMUM | B::MINIMUM, _) => first(&[
            (is(0, I16) && out_is(I16), 4),
            (broadcast5d, 3),
            (is(0, I8), 2),
        ]),
        (B::ADD, _) => {
            let quantized = input(0).is_some_and(|t| t.quant.is_some());
            first(&[
                (is(0, F16), 6),
                (is(0, I16) && !quantized, 5),
                (is(0, I64), 4),
                (is(0, I8), 2),
            ])
        }
        (B::SUB, _) => first(&[(is(0, I64), 4), (broadcast5d, 3), (is(0, I8), 2)]),
        (B::DIV, _) => first(&[(broadcast5d, 2)]),
        (B::TANH | B::LOGISTIC, _) => first(&[(is(0, I16) && out_is(I16), 3), (is(0, I8), 2)]),
        (B::LEAKY_RELU, _) => first(&[(is(0, I16), 2)]),
        (B::BATCH_MATMUL, _) => first(&[(is(0, I16), 3), (is(0, I8), 2)]),
        (B::PAD | B::PADV2, _) => first(&[
            (is(0, Bool), 5),
            (dims(0) > 4, 4),
            (is(0, I16), 3),
            (is(0, I8), 2),
        ]),
        (B::CONCATENATION, _) => first(&[(is(0, U32), 4), (is(0, I16), 3), (is(0, I8), 2)]),
        (B::SOFTMAX | B::MEAN | B::REDUCE_MAX | B::RELU6 | B::RSQRT, _) => {
            first(&[(is(0, I16), 3), (is(0, I8), 2)])
        }
        (B::SPACE_TO_DEPTH | B::SUM | B::SQUARED_DIFFERENCE | B::DEPTH_TO_SPACE, _) => {
            first(&[(is(0, I8), 2)])
        }
        (B::SQRT, _) => first(&[(is(0, I8) || is(0, I16), 2)]),
        (B::GELU, _) => first(&[(is(0, I8) || is(0, U8), 2)]),
        (B::SQUEEZE, _) => first(&[(is(0, String), 2)]),
        // RESHAPE, EXPAND_DIMS, PRELU, HARD_SWISH, RELU_N1_TO_1: one version for all types.
        _ => 1,
    }
}

fn activation(a: FusedActivation) -> fb::ActivationFunctionType {
    use fb::ActivationFunctionType as A;
    match a {
        FusedActivation::None => A::NONE,
        FusedActivation::Relu => A::RELU,
        FusedActivation::ReluN1To1 => A::RELU_N1_TO_1,
        FusedActivation::Relu6 => A::RELU6,
        FusedActivation::Tanh => A::TANH,
        FusedActivation::SignBit => A::SIGN_BIT,
    }
}

fn padding(p: Padding) -> fb::Padding {
    match p {
        Padding::Same => fb::Padding::SAME,
        Padding::Valid => fb::Padding::VALID,
    }
}

fn int(v: usize, what: &str) -> Result<i32, String> {
    i32::try_from(v).map_err(|_| format!("{what} {v} does not fit int32"))
}

type Options = (fb::BuiltinOptions, Option<WIPOffset<UnionWIPOffset>>);

/// The builtin options table of an op, as the converter writes it.
fn write_options(
    fbb: &mut FlatBufferBuilder<'_>,
    graph: &Graph,
    node: &Node,
) -> Result<Options, String> {
    use fb::BuiltinOptions as O;
    let none = (O::NONE, None);
    Ok(match &node.op {
        Op::Conv2d(a) => (
            O::Conv2DOptions,
            Some(
                fb::Conv2DOptions::create(
                    fbb,
                    &fb::Conv2DOptionsArgs {
                        padding: padding(a.padding),
                        stride_w: int(a.stride_w, "stride_w")?,
                        stride_h: int(a.stride_h, "stride_h")?,
                        fused_activation_function: activation(a.activation),
                        dilation_w_factor: int(a.dilation_w, "dilation_w")?,
                        dilation_h_factor: int(a.dilation_h, "dilation_h")?,
                        ..Default::default()
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::DepthwiseConv2d(a) => (
            O::DepthwiseConv2DOptions,
            Some(
                fb::DepthwiseConv2DOptions::create(
                    fbb,
                    &fb::DepthwiseConv2DOptionsArgs {
                        padding: padding(a.padding),
                        stride_w: int(a.stride_w, "stride_w")?,
                        stride_h: int(a.stride_h, "stride_h")?,
                        depth_multiplier: int(a.depth_multiplier, "depth_multiplier")?,
                        fused_activation_function: activation(a.activation),
                        dilation_w_factor: int(a.dilation_w, "dilation_w")?,
                        dilation_h_factor: int(a.dilation_h, "dilation_h")?,
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::TransposeConv(a) => (
            O::TransposeConvOptions,
            Some(
                fb::TransposeConvOptions::create(
                    fbb,
                    &fb::TransposeConvOptionsArgs {
                        padding: padding(a.padding),
                        stride_w: int(a.stride_w, "stride_w")?,
                        stride_h: int(a.stride_h, "stride_h")?,
                        fused_activation_function: activation(a.activation),
                        ..Default::default()
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::FullyConnected(a) => (
            O::FullyConnectedOptions,
            Some(
                fb::FullyConnectedOptions::create(
                    fbb,
                    &fb::FullyConnectedOptionsArgs {
                        fused_activation_function: activation(a.activation),
                        keep_num_dims: a.keep_num_dims,
                        ..Default::default()
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::BatchMatMul { adj_x, adj_y } => (
            O::BatchMatMulOptions,
            Some(
                fb::BatchMatMulOptions::create(
                    fbb,
                    &fb::BatchMatMulOptionsArgs {
                        adj_x: *adj_x,
                        adj_y: *adj_y,
                        ..Default::default()
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::Binary {
            kind,
            activation: act,
        } => {
            let a = activation(*act);
            match kind {
                BinaryKind::Add => (
                    O::AddOptions,
                    Some(
                        fb::AddOptions::create(
                            fbb,
                            &fb::AddOptionsArgs {
                                fused_activation_function: a,
                                ..Default::default()
                            },
                        )
                        .as_union_value(),
                    ),
                ),
                BinaryKind::Sub => (
                    O::SubOptions,
                    Some(
                        fb::SubOptions::create(
                            fbb,
                            &fb::SubOptionsArgs {
                                fused_activation_function: a,
                                ..Default::default()
                            },
                        )
                        .as_union_value(),
                    ),
                ),
                BinaryKind::Mul => (
                    O::MulOptions,
                    Some(
                        fb::MulOptions::create(
                            fbb,
                            &fb::MulOptionsArgs {
                                fused_activation_function: a,
                            },
                        )
                        .as_union_value(),
                    ),
                ),
                BinaryKind::Div => (
                    O::DivOptions,
                    Some(
                        fb::DivOptions::create(
                            fbb,
                            &fb::DivOptionsArgs {
                                fused_activation_function: a,
                            },
                        )
                        .as_union_value(),
                    ),
                ),
                BinaryKind::SquaredDifference | BinaryKind::Maximum | BinaryKind::Minimum => {
                    if *act != FusedActivation::None {
                        return Err(format!(
                            "TFLite's {} has no fused activation, but the graph fuses {act:?}",
                            node.op.name()
                        ));
                    }
                    none
                }
            }
        }
        Op::Unary(UnaryKind::Gelu { approximate }) => (
            O::GeluOptions,
            Some(
                fb::GeluOptions::create(
                    fbb,
                    &fb::GeluOptionsArgs {
                        approximate: *approximate,
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::Unary(UnaryKind::LeakyRelu { alpha }) => (
            O::LeakyReluOptions,
            Some(
                fb::LeakyReluOptions::create(fbb, &fb::LeakyReluOptionsArgs { alpha: *alpha })
                    .as_union_value(),
            ),
        ),
        Op::Unary(_) | Op::Prelu | Op::Transpose | Op::Slice | Op::Quantize | Op::Dequantize => {
            none
        }
        Op::Reduce { keep_dims, .. } => (
            O::ReducerOptions,
            Some(
                fb::ReducerOptions::create(
                    fbb,
                    &fb::ReducerOptionsArgs {
                        keep_dims: *keep_dims,
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::Pool2d { attrs: a, .. } => (
            O::Pool2DOptions,
            Some(
                fb::Pool2DOptions::create(
                    fbb,
                    &fb::Pool2DOptionsArgs {
                        padding: padding(a.padding),
                        stride_w: int(a.stride_w, "stride_w")?,
                        stride_h: int(a.stride_h, "stride_h")?,
                        filter_width: int(a.filter_w, "filter_width")?,
                        filter_height: int(a.filter_h, "filter_height")?,
                        fused_activation_function: activation(a.activation),
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::Softmax { beta } => (
            O::SoftmaxOptions,
            Some(
                fb::SoftmaxOptions::create(fbb, &fb::SoftmaxOptionsArgs { beta: *beta })
                    .as_union_value(),
            ),
        ),
        Op::Reshape => {
            // The shape tensor (input 1) is what runtimes read; a reshape without one
            // takes its target shape from the options.
            if node.input(1).is_some() {
                none
            } else {
                let out = &graph.tensors[node.outputs[0]]; // check_ids: every op has an output
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
                        .map(|&d| int(d, "dimension"))
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
                fb::ExpandDimsOptions::create(fbb, &fb::ExpandDimsOptionsArgs {}).as_union_value(),
            ),
        ),
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
                        fused_activation_function: activation(*act),
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::Split { num_splits } => (
            O::SplitOptions,
            Some(
                fb::SplitOptions::create(
                    fbb,
                    &fb::SplitOptionsArgs {
                        num_splits: int(*num_splits, "num_splits")?,
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::StridedSlice(a) => (
            O::StridedSliceOptions,
            Some(
                fb::StridedSliceOptions::create(
                    fbb,
                    &fb::StridedSliceOptionsArgs {
                        begin_mask: a.begin_mask,
                        end_mask: a.end_mask,
                        ellipsis_mask: a.ellipsis_mask,
                        new_axis_mask: a.new_axis_mask,
                        shrink_axis_mask: a.shrink_axis_mask,
                        offset: a.offset,
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::Gather { axis, batch_dims } => (
            O::GatherOptions,
            Some(
                fb::GatherOptions::create(
                    fbb,
                    &fb::GatherOptionsArgs {
                        axis: *axis,
                        batch_dims: *batch_dims,
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
        Op::ResizeBilinear(a) => (
            O::ResizeBilinearOptions,
            Some(
                fb::ResizeBilinearOptions::create(
                    fbb,
                    &fb::ResizeBilinearOptionsArgs {
                        align_corners: a.align_corners,
                        half_pixel_centers: a.half_pixel_centers,
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::ResizeNearestNeighbor(a) => (
            O::ResizeNearestNeighborOptions,
            Some(
                fb::ResizeNearestNeighborOptions::create(
                    fbb,
                    &fb::ResizeNearestNeighborOptionsArgs {
                        align_corners: a.align_corners,
                        half_pixel_centers: a.half_pixel_centers,
                    },
                )
                .as_union_value(),
            ),
        ),
        Op::DepthToSpace { block_size } => (
            O::DepthToSpaceOptions,
            Some(
                fb::DepthToSpaceOptions::create(
                    fbb,
                    &fb::DepthToSpaceOptionsArgs {
                        block_size: int(*block_size, "block_size")?,
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
                        block_size: int(*block_size, "block_size")?,
                    },
                )
                .as_union_value(),
            ),
        ),
        // Custom ops have no builtin options; their bytes go in `custom_options`.
        Op::Convolution2DTransposeBias(_)
        | Op::MaxPoolingWithArgmax2D(_)
        | Op::MaxUnpooling2D(_) => none,
        Op::Unsupported { name } => {
            return Err(format!("{name} cannot be written"));
        }
    })
}
