//! How int16 (16x8) values travel inside the executor: as candle `I64`, like every integer
//! but int8 (whose `U8` carrier is in `int8_tensor`). The 16x8 kernels take `i16` slices:
//! these convert at each op. 16x8 models are the accuracy option, not the fast one; a
//! narrower carrier can come if they show up in profiles.

use candle_core::{DType as CDType, Tensor as CTensor};

use super::OpResult;

/// An int16 tensor's codes (plain integers of any carrier, saturated to int16).
pub fn int16_values(t: &CTensor) -> OpResult<Vec<i16>> {
    let wide = t.flatten_all()?.to_dtype(CDType::I64)?.to_vec1::<i64>()?;
    Ok(wide
        .into_iter()
        .map(|v| v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16)
        .collect())
}

/// A host int16 result as the executor's carrier for int16 tensors.
pub fn from_int16(values: Vec<i16>, dims: &[usize], like: &CTensor) -> OpResult<CTensor> {
    let wide: Vec<i64> = values.into_iter().map(i64::from).collect();
    Ok(CTensor::from_vec(wide, dims, like.device())?)
}
