//! Structure-aware: real fixture models with their flatbuffer *contents* mutated in
//! place, so the verifier still accepts the structure and the input reaches what
//! validates the graph behind it (tensor/buffer/opcode index bounds, dtype and shape
//! checks, per-channel quantization checks, sparse weights' metadata, op order and
//! cycles), then the executor's construction and a run on small graphs (each op's shape
//! checks).
//!
//! Random bytes almost never get past the flatbuffer verifier (the `tflite_reader`
//! target covers that side); patching the values of existing fields keeps every offset
//! valid, so each execution tests the checks after it.
//!
//! Input: byte 0 picks the fixture, then 4-byte records `[site lo, site hi, mode, value]`
//! each patch one site (an int32 index or dimension, a scalar field, a byte of an op's
//! options table, an element of a sparse tensor's metadata, or the position of an op in
//! the execution order).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[allow(
    clippy::all,
    dead_code,
    unused_imports,
    non_camel_case_types,
    non_snake_case,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes,
    unused_lifetimes
)]
#[rustfmt::skip]
#[path = "../../src/tflite/schema_generated.rs"]
mod schema_generated;

use schema_generated::tflite as fb;

const FIXTURES: &[&[u8]] = &[
    include_bytes!("../../tests/fixtures/conv_ops.tflite"),
    include_bytes!("../../tests/fixtures/dense_ops.tflite"),
    include_bytes!("../../tests/fixtures/elementwise_ops.tflite"),
    include_bytes!("../../tests/fixtures/shape_ops.tflite"),
    include_bytes!("../../tests/fixtures/multi_io.tflite"),
    include_bytes!("../../tests/fixtures/f16_weights.tflite"),
    include_bytes!("../../tests/fixtures/reduce_ops.tflite"),
    include_bytes!("../../tests/fixtures/resize_ops.tflite"),
    include_bytes!("../../tests/fixtures/activation_ops.tflite"),
    include_bytes!("../../tests/fixtures/quant_dequant.tflite"),
    include_bytes!("../../tests/fixtures/unsupported_op.tflite"),
    include_bytes!("../../tests/fixtures/conv_ops.int8.tflite"),
    include_bytes!("../../tests/fixtures/dense_ops.int8.tflite"),
    include_bytes!("../../tests/fixtures/elementwise_ops.int8.tflite"),
    // Sparse weights: their sparsity metadata is patched too (see `sparsity_sites`).
    include_bytes!("../../tests/fixtures/sparse/sparse_conv.tflite"),
    include_bytes!("../../tests/fixtures/sparse/sparse_dense.tflite"),
    include_bytes!("../../tests/fixtures/sparse/handmade_formats.tflite"),
];

/// A graph larger than this is read and validated but not run: the reader allows
/// tensors of up to 2^30 elements, which a real model may have but the fuzzer's memory
/// bound does not.
const MAX_RUN_ELEMENTS: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Site {
    /// An element of an int32 vector: tensor indices, shapes, model inputs/outputs.
    I32(usize),
    U32(usize),
    I8(usize),
    U8(usize),
    /// Slot `i` of the operators vector starting at `vector` (the op order).
    OpSlot { vector: usize, index: usize },
}

struct Fixture {
    bytes: Vec<u8>,
    sites: Vec<Site>,
    op_count: usize,
}

fn field_pos(tab: &flatbuffers::Table<'_>, vt: flatbuffers::VOffsetT) -> Option<usize> {
    match tab.vtable().get(vt) {
        0 => None,
        o => Some(tab.loc + o as usize),
    }
}

fn i32_vector_sites(buf: &[u8], v: Option<flatbuffers::Vector<'_, i32>>, sites: &mut Vec<Site>) {
    if let Some(v) = v {
        let start = v.safe_slice().as_ptr() as usize - buf.as_ptr() as usize;
        sites.extend((0..v.len()).map(|i| Site::I32(start + 4 * i)));
    }
}

fn read_u32(buf: &[u8], at: usize) -> usize {
    u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize
}

/// The sparsity metadata of a sparse constant: traversal order, block map, each level's
/// format and dense size, the index vectors' union types and every element of the
/// segment and index vectors (one site per byte for the 16-bit ones), which the reader's
/// densifier must check before it walks them.
fn sparsity_sites(buf: &[u8], sp: &fb::SparsityParameters<'_>, sites: &mut Vec<Site>) {
    i32_vector_sites(buf, sp.traversal_order(), sites);
    i32_vector_sites(buf, sp.block_map(), sites);
    let byte_sites = |ptr: *const u8, len: usize, sites: &mut Vec<Site>| {
        let start = ptr as usize - buf.as_ptr() as usize;
        sites.extend((start..start + len).map(Site::U8));
    };
    for meta in sp.dim_metadata().iter().flatten() {
        sites.extend(field_pos(&meta._tab, fb::DimensionMetadata::VT_FORMAT).map(Site::I8));
        sites.extend(field_pos(&meta._tab, fb::DimensionMetadata::VT_DENSE_SIZE).map(Site::I32));
        for vt in [
            fb::DimensionMetadata::VT_ARRAY_SEGMENTS_TYPE,
            fb::DimensionMetadata::VT_ARRAY_INDICES_TYPE,
        ] {
            sites.extend(field_pos(&meta._tab, vt).map(Site::U8));
        }
        let vectors = [
            (
                meta.array_segments_as_int_32vector(),
                meta.array_segments_as_uint_16vector(),
                meta.array_segments_as_uint_8vector(),
            ),
            (
                meta.array_indices_as_int_32vector(),
                meta.array_indices_as_uint_16vector(),
                meta.array_indices_as_uint_8vector(),
            ),
        ];
        for (i32s, u16s, u8s) in vectors {
            i32_vector_sites(buf, i32s.and_then(|v| v.values()), sites);
            if let Some(v) = u16s.and_then(|v| v.values()) {
                let v = v.safe_slice();
                byte_sites(v.as_ptr().cast(), 2 * v.len(), sites);
            }
            if let Some(v) = u8s.and_then(|v| v.values()) {
                byte_sites(v.as_ptr(), v.len(), sites);
            }
        }
    }
}

/// Every patchable site of a fixture. The fixtures are known-good, so walking them
/// with the unchecked accessors is fine here.
fn sites_of(bytes: &[u8]) -> Fixture {
    let model = fb::root_as_model(bytes).expect("fixture models are valid");
    let mut sites = Vec::new();
    let mut op_count = 0;
    if let Some(p) = field_pos(&model._tab, fb::Model::VT_VERSION) {
        sites.push(Site::U32(p));
    }
    for code in model.operator_codes().iter().flatten() {
        sites.extend(field_pos(&code._tab, fb::OperatorCode::VT_BUILTIN_CODE).map(Site::I32));
        sites.extend(
            field_pos(&code._tab, fb::OperatorCode::VT_DEPRECATED_BUILTIN_CODE).map(Site::I8),
        );
    }
    for sg in model.subgraphs().iter().flatten() {
        i32_vector_sites(bytes, sg.inputs(), &mut sites);
        i32_vector_sites(bytes, sg.outputs(), &mut sites);
        for t in sg.tensors().iter().flatten() {
            i32_vector_sites(bytes, t.shape(), &mut sites);
            i32_vector_sites(bytes, t.shape_signature(), &mut sites);
            sites.extend(field_pos(&t._tab, fb::Tensor::VT_BUFFER).map(Site::U32));
            sites.extend(field_pos(&t._tab, fb::Tensor::VT_TYPE_).map(Site::I8));
            if let Some(sp) = t.sparsity() {
                sparsity_sites(bytes, &sp, &mut sites);
            }
            if let Some(q) = t.quantization() {
                sites.extend(
                    field_pos(&q._tab, fb::QuantizationParameters::VT_QUANTIZED_DIMENSION)
                        .map(Site::I32),
                );
            }
        }
        if let Some(ops_field) = field_pos(&sg._tab, fb::SubGraph::VT_OPERATORS) {
            let vector = ops_field + read_u32(bytes, ops_field);
            let ops = sg.operators().unwrap();
            op_count = ops.len();
            for (index, op) in ops.iter().enumerate() {
                sites.push(Site::OpSlot { vector, index });
                i32_vector_sites(bytes, op.inputs(), &mut sites);
                i32_vector_sites(bytes, op.outputs(), &mut sites);
                sites.extend(field_pos(&op._tab, fb::Operator::VT_OPCODE_INDEX).map(Site::U32));
                // Every inline field of the options table, byte by byte: strides,
                // padding, fused activations, axes flags... (an offset field hit
                // here breaks the structure, which the verifier must then catch).
                if let Some(opts) = field_pos(&op._tab, fb::Operator::VT_BUILTIN_OPTIONS) {
                    let table = opts + read_u32(bytes, opts);
                    let tab = flatbuffers::Table {
                        buf: bytes,
                        loc: table,
                    };
                    let vt = tab.vtable();
                    for f in 0..vt.num_fields() {
                        let o = vt.get_field(f) as usize;
                        if o != 0 {
                            sites.push(Site::U8(table + o));
                        }
                    }
                }
            }
        }
    }
    Fixture {
        bytes: bytes.to_vec(),
        sites,
        op_count,
    }
}

fn fixtures() -> &'static [Fixture] {
    static CELL: OnceLock<Vec<Fixture>> = OnceLock::new();
    CELL.get_or_init(|| FIXTURES.iter().map(|b| sites_of(b)).collect())
}

/// The int32 a record's mode and value stand for: small values (valid and -1 indices,
/// off-by-one), larger ones, and the extremes.
fn value_i32(mode: u8, value: u8) -> i32 {
    match mode % 4 {
        0 => value as i8 as i32,
        1 => (value as i32) << 8,
        2 => (value as i32) << 22,
        _ => [i32::MIN, i32::MAX, -1, 0, 1, 1 << 30, 1 << 15, u16::MAX as i32][value as usize % 8],
    }
}

fn patch(bytes: &mut [u8], fixture: &Fixture, site: Site, mode: u8, value: u8) {
    match site {
        Site::I32(at) => bytes[at..at + 4].copy_from_slice(&value_i32(mode, value).to_le_bytes()),
        Site::U32(at) => bytes[at..at + 4].copy_from_slice(&value_i32(mode, value).to_le_bytes()),
        Site::I8(at) | Site::U8(at) => bytes[at] = value,
        Site::OpSlot { vector, index } => {
            // Swap two ops in the execution order: each slot holds an offset relative to
            // itself, so re-aim both at the other's table.
            let other = value as usize % fixture.op_count.max(1);
            let slot = |i: usize| vector + 4 + 4 * i;
            let (a, b) = (slot(index), slot(other));
            let (ta, tb) = (a + read_u32(bytes, a), b + read_u32(bytes, b));
            if tb > a && ta > b {
                bytes[a..a + 4].copy_from_slice(&((tb - a) as u32).to_le_bytes());
                bytes[b..b + 4].copy_from_slice(&((ta - b) as u32).to_le_bytes());
            }
        }
    }
}

fn run_small(graph: &qdbg::graph::Graph) {
    let total: usize = graph.tensors.iter().map(|t| t.num_elements()).sum();
    if total > MAX_RUN_ELEMENTS {
        return;
    }
    if graph.check_supported().is_err() {
        return;
    }
    let device = candle_core::Device::Cpu;
    let Ok(exec) = qdbg::exec::Executor::new(graph, &device) else {
        return;
    };
    let inputs: Option<Vec<_>> = graph
        .inputs
        .iter()
        .map(|&id| {
            let t = graph.tensor(id);
            let dtype = qdbg::ops::carrier_dtype(t.dtype).unwrap_or(candle_core::DType::F32);
            candle_core::Tensor::ones(t.shape.as_slice(), dtype, &device).ok()
        })
        .collect();
    if let Some(inputs) = inputs {
        let _ = exec.run(&inputs);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, records)) = data.split_first() else {
        return;
    };
    let all = fixtures();
    let fixture = &all[pick as usize % all.len()];
    if fixture.sites.is_empty() {
        return;
    }
    let mut bytes = fixture.bytes.clone();
    for r in records.chunks_exact(4) {
        let site = fixture.sites[u16::from_le_bytes([r[0], r[1]]) as usize % fixture.sites.len()];
        patch(&mut bytes, fixture, site, r[2], r[3]);
    }
    // Turning a crash into a regression test needs the model itself:
    // QDBG_FUZZ_DUMP=out.tflite graph_validator crash-... writes it.
    if let Some(out) = std::env::var_os("QDBG_FUZZ_DUMP") {
        std::fs::write(out, &bytes).expect("writing QDBG_FUZZ_DUMP");
    }
    if let Ok(graph) = qdbg::tflite::read_model_bytes(&bytes, Path::new("mutated.tflite")) {
        run_small(&graph);
    }
});
