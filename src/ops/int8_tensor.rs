//! The int8 tensor carrier: how int8 values travel inside the executor, and the
//! per-tensor quantization parameters the int8 kernels take. Its own module, below both
//! `quantized` (which nodes are int8) and the op families' int8 glue, so that every one of
//! them imports it and none of them imports another for it.

use candle_core::{DType as CDType, Tensor as CTensor};

use super::{op_bail, EvalCtx, OpResult};
use crate::graph::{DType, Graph, QuantParams, TensorId};
use crate::kernels::int8::QParams;

/// Per-tensor parameters of a tensor, as the kernels take them.
pub fn qparams(ctx: &EvalCtx, id: TensorId) -> OpResult<QParams> {
    graph_qparams(ctx.graph, id)
}

/// [`qparams`] from the graph alone (for preparing kernels before any run).
pub fn graph_qparams(graph: &Graph, id: TensorId) -> OpResult<QParams> {
    let t = graph.tensor(id);
    match &t.quant {
        Some(QuantParams {
            scale, zero_point, ..
        }) if scale.len() == 1 && zero_point.len() == 1 => {
            Ok(QParams::new(scale[0], zero_point[0] as i32))
        }
        Some(_) => op_bail!(
            "tensor '{}' is quantized per channel; an activation must be per tensor",
            t.name
        ),
        None => op_bail!("tensor '{}' has no quantization parameters", t.name),
    }
}

// int8 tensors travel inside the executor as candle `U8` tensors holding each value's
// bit pattern (`v as u8`), not as the `I64` other integers use: the int8 kernels then read
// and write one byte per element instead of converting eight-byte integers around every
// op, which cost more than the kernels themselves. Data-movement ops are indifferent to
// the dtype. The executor keeps the I64 form at its edges (inputs, observers, outputs;
// see [`narrow_int8`] and [`widen_int8`]), so nothing outside it sees the bit patterns.

/// An int8 tensor's values: borrowed in place from the executor's `U8` carrier (no copy:
/// every int8 op reads its inputs through this, and copying them out was a few percent of
/// a whole debug run), or converted from plain integers.
pub enum Int8Values<'a> {
    /// The carrier's bytes `start..end`, read-locked for as long as this lives (candle's
    /// lock guard, behind a box because its type belongs to candle's lock crate).
    Carrier {
        storage: Box<dyn std::ops::Deref<Target = candle_core::Storage> + 'a>,
        start: usize,
        end: usize,
    },
    Owned(Vec<i8>),
}

impl std::ops::Deref for Int8Values<'_> {
    type Target = [i8];

    fn deref(&self) -> &[i8] {
        match self {
            Int8Values::Carrier {
                storage,
                start,
                end,
            } => match &***storage {
                candle_core::Storage::Cpu(candle_core::CpuStorage::U8(v)) => {
                    let bytes = &v[*start..*end];
                    // SAFETY: u8 and i8 have the same size and alignment, and every bit
                    // pattern is a valid i8: the carrier holds int8 values as their bits.
                    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
                }
                // `int8_values` only builds this variant over U8 CPU storage.
                _ => &[],
            },
            Int8Values::Owned(v) => v,
        }
    }
}

/// Reads an int8 tensor: `U8` bit patterns (the executor's carrier) or plain integers.
pub fn int8_values(t: &CTensor) -> OpResult<Int8Values<'_>> {
    {
        let (storage, layout) = t.storage_and_layout();
        let offsets = layout.contiguous_offsets();
        match (&*storage, offsets) {
            (candle_core::Storage::Cpu(candle_core::CpuStorage::U8(v)), Some((start, end)))
                if end <= v.len() =>
            {
                return Ok(Int8Values::Carrier {
                    storage: Box::new(storage),
                    start,
                    end,
                });
            }
            (candle_core::Storage::Cpu(candle_core::CpuStorage::I64(v)), Some((start, end))) => {
                return Ok(Int8Values::Owned(
                    v[start..end]
                        .iter()
                        .map(|&x| x.clamp(-128, 127) as i8)
                        .collect(),
                ))
            }
            _ => {}
        }
    }
    if t.dtype() == CDType::U8 {
        let v = t.flatten_all()?.to_vec1::<u8>()?;
        return Ok(Int8Values::Owned(v.into_iter().map(|b| b as i8).collect()));
    }
    let v = t.flatten_all()?.to_dtype(CDType::I64)?.to_vec1::<i64>()?;
    Ok(Int8Values::Owned(
        v.into_iter().map(|x| x.clamp(-128, 127) as i8).collect(),
    ))
}

/// A host int8 result as the executor's int8 carrier (bit patterns in a `U8` tensor).
pub fn from_int8(values: Vec<i8>, dims: &[usize], like: &CTensor) -> OpResult<CTensor> {
    // Same size and alignment: the collect reuses the allocation.
    let bits: Vec<u8> = values.into_iter().map(|v| v as u8).collect();
    Ok(CTensor::from_vec(bits, dims, like.device())?)
}

/// The executor's carrier for a value of an int8 graph tensor given as plain integers
/// (or floats holding integers); a `U8` tensor is taken to be the carrier already.
pub fn narrow_int8(t: &CTensor) -> OpResult<CTensor> {
    if t.dtype() == CDType::U8 {
        return Ok(t.clone());
    }
    let values = int8_values(t)?.to_vec();
    from_int8(values, t.dims(), t)
}

/// The plain-integer (`I64`) form of an int8 carrier, for anything outside the executor.
pub fn widen_int8(t: &CTensor) -> OpResult<CTensor> {
    if t.dtype() != CDType::U8 {
        return Ok(t.clone());
    }
    let wide: Vec<i64> = int8_values(t)?.iter().map(|&v| i64::from(v)).collect();
    Ok(CTensor::from_vec(wide, t.dims(), t.device())?)
}

/// Integer values of a tensor of graph dtype `dtype` as i64, whatever its carrier.
pub fn integer_values(t: &CTensor, dtype: DType) -> OpResult<Vec<i64>> {
    if dtype == DType::I8 && t.dtype() == CDType::U8 {
        return Ok(int8_values(t)?.iter().map(|&v| i64::from(v)).collect());
    }
    Ok(t.flatten_all()?.to_dtype(CDType::I64)?.to_vec1::<i64>()?)
}
