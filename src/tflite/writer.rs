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
//! Operator versions follow the converter's rules (each op family's `tflite_version`, see
//! `ops::family`), one operator
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

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, Vector, WIPOffset};

use super::fb;
use crate::error::{Error, Result};
use crate::graph::*;
use crate::ops::family;

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
        let builtin = family::tflite_code(&node.op).ok_or_else(|| Fail::Op {
            op_index: node.source_index,
            op: node.op.display_name().to_string(),
        })?;
        let custom_code = (builtin == fb::BuiltinOperator::CUSTOM).then(|| node.op.name());
        let version = family::tflite_version(graph, node);
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
        let (options_type, options) =
            family::write_tflite_options(&mut fbb, graph, node).map_err(op_fail)?;
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
