//! Reads a `.tflite` flatbuffer into a [`Graph`].
//!
//! Every index and size in the file is checked before use: the flatbuffer verifier
//! bounds the structure, and this reader bounds what the structure points at (tensor and
//! buffer indices, element counts against the bytes actually present), so a hostile file
//! yields an error rather than a panic or an allocation it chose.

use std::path::Path;

use super::codec::builtin_name;
use super::fb;
use super::sparsity::Layout;
use crate::error::{Error, Result};
use crate::graph::*;
use crate::ops::family::{self, TfliteOperator};

/// Largest model qdbg opens: flatbuffers address at most 2 GiB, and constant data placed
/// after the flatbuffer (TFLite's offset buffers) is bounded by the file itself.
const MAX_MODEL_BYTES: u64 = 4 << 30;

/// Largest tensor qdbg will allocate (4 GiB of float32). A vision model's activations are
/// far smaller; a file claiming more is corrupt or hostile, and is refused before any
/// executor allocates it.
const MAX_TENSOR_ELEMENTS: usize = 1 << 30;

/// How far sparse constants may expand, all together: this many dense elements per byte
/// of the file, or [`SPARSE_MIN_ELEMENTS`] if that is more. A dense constant is bounded
/// by the bytes it occupies, but a sparse one names its dense shape in a few bytes of
/// metadata, so a small file could otherwise make the reader allocate gigabytes. Real
/// sparse weights expand 2 to 100 times (90% zeros store a tenth of the values plus
/// their indices); 256 per byte leaves room for far sparser ones.
const SPARSE_ELEMENTS_PER_BYTE: u64 = 256;

/// The expansion any file may have: 2^24 elements (64 MiB of float32).
const SPARSE_MIN_ELEMENTS: u64 = 1 << 24;

/// What to do about a file whose structure is broken: the user cannot repair a
/// flatbuffer by hand, only get a good copy.
const DAMAGED_HINT: &str = "the file is damaged or was not written by TFLite: copy it again if \
                            it was cut short, or re-export it with tf.lite.TFLiteConverter";

pub fn read_model(path: &Path) -> Result<Graph> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(Error::invalid_model(
            path,
            format!(
                "file is {} bytes, more than qdbg's limit of 4 GiB",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_model_bytes(&bytes, path)
}

/// Parses model bytes; `path` only labels errors.
pub fn read_model_bytes(bytes: &[u8], path: &Path) -> Result<Graph> {
    let bad = |reason: String| Error::invalid_model(path, reason);
    if bytes.len() < 8 {
        return Err(bad(format!(
            "the file has {} bytes, too few for a TFLite model (truncated?); {DAMAGED_HINT}",
            bytes.len()
        )));
    }
    if !fb::model_buffer_has_identifier(bytes) {
        return Err(bad(format!(
            "missing the 'TFL3' file identifier (found {:?}); is this a .tflite file? \
             Convert SavedModels and Keras models with tf.lite.TFLiteConverter",
            String::from_utf8_lossy(&bytes[4..8])
        )));
    }
    let opts = flatbuffers::VerifierOptions {
        max_depth: 64,
        max_tables: 10_000_000,
        max_apparent_size: 1 << 31,
        ignore_missing_null_terminator: true,
    };
    let model = fb::root_as_model_with_opts(&opts, bytes).map_err(|e| {
        // The verifier's text goes on with a trace of table names over several lines;
        // its first line says what is wrong.
        let e = e.to_string();
        let first = e.lines().next().unwrap_or_default().trim_end_matches('.');
        bad(format!(
            "the flatbuffer is corrupt or truncated ({first}); {DAMAGED_HINT}"
        ))
    })?;
    Reader {
        path,
        bytes,
        model,
        densified_elements: std::cell::Cell::new(0),
    }
    .read()
}

struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    model: fb::Model<'a>,
    /// Dense elements the file's sparse constants have expanded to so far (see
    /// [`SPARSE_ELEMENTS_PER_BYTE`]).
    densified_elements: std::cell::Cell<u64>,
}

impl<'a> Reader<'a> {
    /// A structural problem: the reason, then what to do about a damaged file.
    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::invalid_model(self.path, format!("{}; {DAMAGED_HINT}", reason.into()))
    }

    /// A problem whose reason already says what to do.
    fn refuse(&self, reason: impl Into<String>) -> Error {
        Error::invalid_model(self.path, reason)
    }

    fn read(&self) -> Result<Graph> {
        if self.model.version() != 3 {
            return Err(self.refuse(format!(
                "schema version {} is not 3, the only version TFLite writes; re-export the \
                 model with a current tf.lite.TFLiteConverter",
                self.model.version()
            )));
        }
        let subgraphs = self
            .model
            .subgraphs()
            .ok_or_else(|| self.bad("the model has no subgraphs"))?;
        if subgraphs.is_empty() {
            return Err(self.bad("the model has no subgraphs"));
        }
        let sg = subgraphs.get(0);
        let fb_tensors = sg
            .tensors()
            .ok_or_else(|| self.bad("subgraph 0 has no tensors"))?;
        let mut tensors = Vec::with_capacity(fb_tensors.len());
        let mut densified = Vec::new();
        for (i, t) in fb_tensors.iter().enumerate() {
            let tensor = self.read_tensor(i, &t)?;
            if t.sparsity().is_some() && tensor.is_constant() {
                densified.push(i);
            }
            tensors.push(tensor);
        }
        let ids = |v: Option<flatbuffers::Vector<'a, i32>>, what: &str| -> Result<Vec<TensorId>> {
            v.map(|v| v.iter().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|i| self.tensor_index(i, tensors.len(), what))
                .collect()
        };
        let inputs = ids(sg.inputs(), "model input")?;
        let outputs = ids(sg.outputs(), "model output")?;

        let mut graph = Graph {
            tensors,
            nodes: Vec::new(),
            inputs,
            outputs,
            folded: Vec::new(),
            densified,
            description: self.model.description().unwrap_or_default().to_string(),
            source: self.path.to_path_buf(),
        };
        let operators = sg
            .operators()
            .map(|o| o.iter().collect::<Vec<_>>())
            .unwrap_or_default();
        for (index, op) in operators.iter().enumerate() {
            let node = self.read_node(index, op, graph.tensors.len())?;
            // DENSIFY first: its output may feed a DEQUANTIZE (float16 sparse weights),
            // which then folds as the next op.
            if let Some(folded) = self.fold_constant_densify(&mut graph, &node)? {
                graph.folded.push(folded);
                continue;
            }
            if let Some(folded) = fold_constant_dequantize(&mut graph, &node) {
                graph.folded.push(folded);
                continue;
            }
            graph.nodes.push(node);
        }
        self.check_order(&graph)?;
        Ok(graph)
    }

    fn tensor_index(&self, i: i32, count: usize, what: &str) -> Result<TensorId> {
        if i < 0 || i as usize >= count {
            return Err(self.bad(format!(
                "{what} refers to tensor {i}, but the model has {count} tensors"
            )));
        }
        Ok(i as usize)
    }

    fn read_tensor(&self, index: usize, t: &fb::Tensor<'a>) -> Result<Tensor> {
        let name = t.name().unwrap_or_default().to_string();
        let label = || format!("tensor {index} ('{name}')");
        let dtype = map_dtype(t.type_());
        let signature: Option<Vec<i64>> = t
            .shape_signature()
            .map(|s| s.iter().map(i64::from).collect());
        let raw_shape: Vec<i32> = t.shape().map(|s| s.iter().collect()).unwrap_or_default();
        let mut shape = Vec::with_capacity(raw_shape.len());
        for (d, &dim) in raw_shape.iter().enumerate() {
            let dynamic = signature
                .as_ref()
                .and_then(|s| s.get(d))
                .is_some_and(|&s| s < 0);
            match dim {
                // Dynamic dimensions run with size 1, the batch qdbg feeds.
                _ if dynamic => shape.push(dim.max(1) as usize),
                d if d >= 0 => shape.push(d as usize),
                d => {
                    return Err(self.bad(format!("{} has a negative dimension {d}", label())));
                }
            }
        }
        let elements = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| {
                self.bad(format!(
                    "{} claims shape {shape:?}, more than qdbg's limit of 2^30 elements per tensor",
                    label()
                ))
            })?;

        let quant = t.quantization().and_then(|q| {
            let scale: Vec<f32> = q.scale()?.iter().collect();
            if scale.is_empty() {
                return None;
            }
            let zero_point: Vec<i64> = q
                .zero_point()
                .map(|z| z.iter().collect())
                .unwrap_or_else(|| vec![0; scale.len()]);
            Some(QuantParams {
                scale,
                zero_point,
                axis: q.quantized_dimension().max(0) as usize,
            })
        });
        if let Some(q) = &quant {
            if q.zero_point.len() != q.scale.len() {
                return Err(self.bad(format!(
                    "{} has {} scales but {} zero points",
                    label(),
                    q.scale.len(),
                    q.zero_point.len()
                )));
            }
            if q.is_per_channel() && shape.get(q.axis) != Some(&q.scale.len()) {
                return Err(self.bad(format!(
                    "{} has {} per-channel scales, which does not match dimension {} of {shape:?}",
                    label(),
                    q.scale.len(),
                    q.axis
                )));
            }
        }

        let bytes = self.buffer_bytes(t.buffer(), &label)?;
        let data = match (bytes, t.sparsity()) {
            // A sparse constant (EXPERIMENTAL_SPARSITY) becomes its dense values here, so
            // the graph holds an ordinary constant of the tensor's (dense) shape. Its
            // buffer may be empty: an all-zero weight stores no values.
            (Some(b), Some(sparsity)) => Some(self.densify(b, &sparsity, dtype, &shape, &label)?),
            (Some(b), None) if !b.is_empty() => Some(
                decode(b, dtype, elements).map_err(|e| self.bad(format!("{}: {e}", label())))?,
            ),
            _ => None,
        };
        Ok(Tensor {
            name,
            shape,
            shape_signature: signature.filter(|s| s.iter().any(|&d| d < 0)),
            dtype,
            data,
            quant,
        })
    }

    /// The dense values of a sparse constant: the metadata checked against the dense
    /// `shape`, the buffer holding exactly the values it addresses (in the tensor's
    /// dtype), then each value put in its place.
    fn densify(
        &self,
        bytes: &[u8],
        sparsity: &fb::SparsityParameters<'a>,
        dtype: DType,
        shape: &[usize],
        label: &dyn Fn() -> String,
    ) -> Result<TensorData> {
        let bad = |e: String| self.bad(format!("{} has invalid sparsity metadata: {e}", label()));
        let layout = Layout::new(shape, sparsity, MAX_TENSOR_ELEMENTS).map_err(bad)?;
        let budget = (self.bytes.len() as u64)
            .saturating_mul(SPARSE_ELEMENTS_PER_BYTE)
            .max(SPARSE_MIN_ELEMENTS);
        let total = self
            .densified_elements
            .get()
            .saturating_add(layout.dense_len() as u64);
        if total > budget {
            return Err(self.refuse(format!(
                "{} is sparse with a dense shape of {shape:?}: with the file's other sparse \
                 tensors that is {total} dense elements, more than qdbg expands from a \
                 {}-byte file ({budget}); if the model really is that sparse, convert it \
                 without sparsification",
                label(),
                self.bytes.len()
            )));
        }
        self.densified_elements.set(total);
        let stored = decode(bytes, dtype, layout.value_count())
            .map_err(|e| self.bad(format!("{} (sparse): {e}", label())))?;
        Ok(match stored {
            TensorData::F32(v) => TensorData::F32(layout.densify(&v, 0.0).map_err(bad)?),
            TensorData::I8(v) => TensorData::I8(layout.densify(&v, 0).map_err(bad)?),
            TensorData::U8(v) => TensorData::U8(layout.densify(&v, 0).map_err(bad)?),
            TensorData::I16(v) => TensorData::I16(layout.densify(&v, 0).map_err(bad)?),
            TensorData::I32(v) => TensorData::I32(layout.densify(&v, 0).map_err(bad)?),
            TensorData::I64(v) => TensorData::I64(layout.densify(&v, 0).map_err(bad)?),
            TensorData::Bool(v) => TensorData::Bool(layout.densify(&v, false).map_err(bad)?),
            TensorData::Raw(_) => {
                return Err(self.refuse(format!(
                    "{} is a sparse {dtype} constant; qdbg densifies sparse float, integer \
                     and bool constants only",
                    label()
                )))
            }
        })
    }

    /// The bytes of buffer `index`, inline or (for large models) after the flatbuffer.
    fn buffer_bytes(&self, index: u32, label: &dyn Fn() -> String) -> Result<Option<&'a [u8]>> {
        if index == 0 {
            return Ok(None);
        }
        let buffers = self.model.buffers().ok_or_else(|| {
            self.bad(format!(
                "{} refers to buffer {index}, but there are none",
                label()
            ))
        })?;
        if index as usize >= buffers.len() {
            return Err(self.bad(format!(
                "{} refers to buffer {index}, but the model has {} buffers",
                label(),
                buffers.len()
            )));
        }
        let buffer = buffers.get(index as usize);
        if let Some(data) = buffer.data() {
            return Ok(Some(data));
        }
        let (offset, size) = (buffer.offset(), buffer.size_());
        if offset > 1 {
            let end = offset
                .checked_add(size)
                .filter(|&e| e <= self.bytes.len() as u64);
            return match end {
                Some(end) => Ok(Some(&self.bytes[offset as usize..end as usize])),
                None => Err(self.bad(format!(
                    "{}: buffer {index} spans bytes {offset}..{} but the file has {} (truncated?)",
                    label(),
                    offset.saturating_add(size),
                    self.bytes.len()
                ))),
            };
        }
        Ok(None)
    }

    fn read_node(&self, index: usize, op: &fb::Operator<'a>, tensor_count: usize) -> Result<Node> {
        let codes = self
            .model
            .operator_codes()
            .ok_or_else(|| self.bad("the model has operators but no operator codes"))?;
        let code_index = op.opcode_index() as usize;
        if code_index >= codes.len() {
            return Err(self.bad(format!(
                "op #{index} uses operator code {code_index}, but the model has {}",
                codes.len()
            )));
        }
        let code = codes.get(code_index);
        // Newer files keep the real code in `builtin_code`; older ones in the deprecated byte.
        let builtin = fb::BuiltinOperator(
            code.builtin_code()
                .0
                .max(code.deprecated_builtin_code() as i32),
        );
        let custom_code = code.custom_code();
        let custom_options = self.custom_options(index, op)?;
        let operator = TfliteOperator {
            code: builtin,
            op,
            custom_code,
            custom_options,
        };
        let op_kind = family::read_tflite(&operator).map_err(|reason| {
            // A custom op goes by its custom code: "CUSTOM" alone would not say which.
            match custom_code {
                Some(c) if builtin == fb::BuiltinOperator::CUSTOM => self.refuse(format!(
                    "op #{index} ({c}): {reason}; the op's options are damaged or were not \
                     written by MediaPipe's tools: re-export the model"
                )),
                _ => self.bad(format!("op #{index} ({}): {reason}", builtin_name(builtin))),
            }
        })?;
        let inputs = op
            .inputs()
            .map(|v| v.iter().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|i| match i {
                -1 => Ok(None),
                i => self
                    .tensor_index(i, tensor_count, &format!("op #{index} input"))
                    .map(Some),
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = op
            .outputs()
            .map(|v| v.iter().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|i| self.tensor_index(i, tensor_count, &format!("op #{index} output")))
            .collect::<Result<Vec<_>>>()?;
        if outputs.is_empty() {
            return Err(self.bad(format!(
                "op #{index} ({}) has no outputs",
                op_kind.display_name()
            )));
        }
        Ok(Node {
            op: op_kind,
            inputs,
            outputs,
            source_index: index,
        })
    }

    /// DENSIFY of a constant is that constant: the reader already expanded the sparse
    /// input (see [`Reader::densify`]), so the op's output gets the dense values and the
    /// op goes, as [`fold_constant_dequantize`] does for DEQUANTIZE. A DENSIFY of a
    /// computed tensor stays (and is refused when run: qdbg has no kernel for it).
    fn fold_constant_densify(&self, graph: &mut Graph, node: &Node) -> Result<Option<FoldedOp>> {
        if !is_densify(&node.op) {
            return Ok(None);
        }
        let (Some(input), Some(&output)) = (node.input(0), node.outputs.first()) else {
            return Ok(None);
        };
        let source = &graph.tensors[input];
        let Some(data) = source.data.clone() else {
            return Ok(None);
        };
        let target = &graph.tensors[output];
        // Same dtype and shape: DENSIFY only changes the storage, and the executor trusts
        // a constant's values to fill its tensor's shape.
        if source.dtype != target.dtype || source.shape != target.shape {
            return Err(self.bad(format!(
                "op #{} (DENSIFY) turns tensor {input} ('{}', {:?} {}) into tensor {output} \
                 ('{}', {:?} {}); a DENSIFY keeps the dtype and the dense shape",
                node.source_index,
                source.name,
                source.shape,
                source.dtype,
                target.name,
                target.shape,
                target.dtype
            )));
        }
        graph.tensors[output].data = Some(data);
        Ok(Some(FoldedOp {
            source_index: node.source_index,
            op_name: "DENSIFY".into(),
            input,
            output,
            why: "sparse weights densified",
        }))
    }

    /// An op's `custom_options`: inline, or (in models past 2 GiB) bytes after the
    /// flatbuffer, bounded by the file.
    fn custom_options(&self, index: usize, op: &fb::Operator<'a>) -> Result<Option<&'a [u8]>> {
        if let Some(bytes) = op.custom_options() {
            return Ok(Some(bytes));
        }
        let (offset, size) = (
            op.large_custom_options_offset(),
            op.large_custom_options_size(),
        );
        if offset <= 1 {
            return Ok(None);
        }
        match offset
            .checked_add(size)
            .filter(|&e| e <= self.bytes.len() as u64)
        {
            Some(end) => Ok(Some(&self.bytes[offset as usize..end as usize])),
            None => Err(self.bad(format!(
                "op #{index}: its custom options span bytes {offset}..{} but the file has {} \
                 (truncated?)",
                offset.saturating_add(size),
                self.bytes.len()
            ))),
        }
    }

    /// Every op must read only tensors that exist before it runs: model inputs,
    /// constants, or outputs of earlier ops. This also rules out cycles.
    fn check_order(&self, graph: &Graph) -> Result<()> {
        let mut ready: Vec<bool> = graph.tensors.iter().map(Tensor::is_constant).collect();
        for &i in &graph.inputs {
            ready[i] = true;
        }
        for node in &graph.nodes {
            for id in node.inputs.iter().flatten() {
                if !ready[*id] {
                    return Err(self.bad(format!(
                        "op #{} ({}) reads tensor {} ('{}') before any op produces it \
                         (ops out of order, or a cycle)",
                        node.source_index,
                        node.op.display_name(),
                        id,
                        graph.tensors[*id].name
                    )));
                }
            }
            for &id in &node.outputs {
                if graph.tensors[id].is_constant() {
                    return Err(self.bad(format!(
                        "op #{} ({}) writes to constant tensor {} ('{}')",
                        node.source_index,
                        node.op.display_name(),
                        id,
                        graph.tensors[id].name
                    )));
                }
                ready[id] = true;
            }
        }
        for &id in &graph.outputs {
            if !ready[id] {
                return Err(self.bad(format!(
                    "model output tensor {id} ('{}') is never produced",
                    graph.tensors[id].name
                )));
            }
        }
        Ok(())
    }
}

fn map_dtype(t: fb::TensorType) -> DType {
    match t {
        fb::TensorType::FLOAT32 => DType::F32,
        fb::TensorType::FLOAT16 => DType::F16,
        fb::TensorType::BFLOAT16 => DType::BF16,
        fb::TensorType::FLOAT64 => DType::F64,
        fb::TensorType::INT8 => DType::I8,
        fb::TensorType::UINT8 => DType::U8,
        fb::TensorType::INT16 => DType::I16,
        fb::TensorType::UINT16 => DType::U16,
        fb::TensorType::INT32 => DType::I32,
        fb::TensorType::UINT32 => DType::U32,
        fb::TensorType::INT64 => DType::I64,
        fb::TensorType::UINT64 => DType::U64,
        fb::TensorType::BOOL => DType::Bool,
        fb::TensorType::STRING => DType::String,
        other => DType::Unsupported(other.variant_name().unwrap_or("unknown")),
    }
}

/// Decodes little-endian constant bytes. Allocation is bounded by the bytes present.
fn decode(bytes: &[u8], dtype: DType, elements: usize) -> Result<TensorData, String> {
    let Some(size) = dtype.size_bytes() else {
        return Ok(TensorData::Raw(bytes.to_vec()));
    };
    if Some(bytes.len()) != elements.checked_mul(size) {
        return Err(format!(
            "its buffer has {} bytes, but {elements} {dtype} elements need {}",
            bytes.len(),
            elements.saturating_mul(size)
        ));
    }
    fn chunks<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(chunks(bytes, f32::from_le_bytes)),
        // Half-precision weights are float weights: widen them once, here.
        DType::F16 => TensorData::F32(chunks(bytes, |b| half::f16::from_le_bytes(b).to_f32())),
        DType::BF16 => TensorData::F32(chunks(bytes, |b| half::bf16::from_le_bytes(b).to_f32())),
        DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DType::U8 => TensorData::U8(bytes.to_vec()),
        DType::I16 => TensorData::I16(chunks(bytes, i16::from_le_bytes)),
        DType::I32 => TensorData::I32(chunks(bytes, i32::from_le_bytes)),
        DType::I64 => TensorData::I64(chunks(bytes, i64::from_le_bytes)),
        DType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        _ => TensorData::Raw(bytes.to_vec()),
    })
}

/// DEQUANTIZE of a constant (float16 weights, or int8 weights of a hybrid model) is a
/// float constant in disguise: evaluate it now so the graph sees plain float weights.
fn fold_constant_dequantize(graph: &mut Graph, node: &Node) -> Option<FoldedOp> {
    if node.op != Op::Dequantize {
        return None;
    }
    let input = graph.tensors.get(node.input(0)?)?;
    let &output = node.outputs.first()?;
    let data = input.data.as_ref()?;
    let values = match (input.dtype, &input.quant) {
        (DType::F16 | DType::BF16 | DType::F32, _) => data.to_f32()?,
        (_, Some(q)) => {
            let ints = data.to_i64()?;
            crate::ops::dequantize_values(&ints, &input.shape, q).ok()?
        }
        _ => return None,
    };
    let why = if input.dtype == DType::F16 {
        "float16 weights widened to float32"
    } else {
        "constant dequantized at load time"
    };
    let out = graph.tensors.get_mut(output)?;
    if out.num_elements() != values.len() {
        return None;
    }
    out.data = Some(TensorData::F32(values));
    Some(FoldedOp {
        source_index: node.source_index,
        op_name: "DEQUANTIZE".into(),
        input: node.input(0)?,
        output,
        why,
    })
}

/// DENSIFY has no [`Op`] variant of its own: a DENSIFY of a constant is folded at load
/// time, and any other one cannot run, so it stays an [`Op::Unsupported`] by that name
/// (the executor's refusal explains it).
fn is_densify(op: &Op) -> bool {
    matches!(op, Op::Unsupported { name } if name == "DENSIFY")
}
