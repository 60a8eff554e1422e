//! Data movement without rescaling, for 16x8 models (and, being written over
//! [`QuantizedElement`], for int8 codes too): CONCATENATION and PAD.
//!
//! LiteRT's int16 CONCATENATION copies codes and needs every input to share the output's
//! scale and zero point (the converter makes them so, inserting a QUANTIZE where they
//! differ); int16 PAD fills with the output zero point, 0 for symmetric int16. The
//! pure movement ops (RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE, SPLIT, SLICE,
//! STRIDED_SLICE, GATHER) keep their input's quantization in LiteRT's 16x8 and move codes
//! untouched (`tests/int16_kernels.rs` checks that on LiteRT's vectors), so the
//! executor's type-agnostic movement code serves int16 as it serves int8. PADV2 as
//! TensorFlow's converter writes it in 16x8 (a float32 constant value) fails LiteRT's
//! `Prepare`.

use super::QParams;
use crate::kernels::element::QuantizedElement;
use crate::kernels::KernelError;

fn element_count(shape: &[usize]) -> Result<usize, KernelError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| KernelError::overflow("shape", shape))
}

/// CONCATENATION of `inputs` (each a slice with its shape) along `axis` (negative counts
/// from the end) into `out`. Every input's quantization must equal `output`'s.
pub fn concatenate<T: QuantizedElement>(
    inputs: &[(&[T], &[usize], QParams)],
    axis: i32,
    output: QParams,
    out: &mut [T],
) -> Result<(), KernelError> {
    let Some(&(_, first_shape, _)) = inputs.first() else {
        return Err(KernelError::shape("input count", "at least 1", 0));
    };
    let rank = first_shape.len();
    let axis_index = if axis < 0 { axis + rank as i32 } else { axis };
    if !(0..rank as i32).contains(&axis_index) {
        return Err(KernelError::shape(
            "concatenation axis",
            format!("in [-{rank}, {rank})"),
            axis,
        ));
    }
    let axis = axis_index as usize;
    let outer: usize = first_shape[..axis].iter().product();
    let inner: usize = first_shape[axis + 1..].iter().product();
    let mut total = 0usize;
    for &(data, shape, q) in inputs {
        if q != output {
            return Err(KernelError::UnequalParams { input: q, output });
        }
        let same_elsewhere =
            shape.len() == rank && (0..rank).all(|d| d == axis || shape[d] == first_shape[d]);
        if !same_elsewhere {
            return Err(KernelError::shape(
                "concatenation input shape",
                format!("{first_shape:?} on every axis but {axis}"),
                format!("{shape:?}"),
            ));
        }
        let want = element_count(shape)?;
        if data.len() != want {
            return Err(KernelError::size("input", want, data.len()));
        }
        total += shape[axis];
    }
    let want = outer * total * inner;
    if out.len() != want {
        return Err(KernelError::size("output", want, out.len()));
    }
    let mut at = 0;
    for o in 0..outer {
        for &(data, shape, _) in inputs {
            let block = shape[axis] * inner;
            out[at..at + block].copy_from_slice(&data[o * block..][..block]);
            at += block;
        }
    }
    Ok(())
}

/// PAD of `input` (shape `shape`) by `paddings` (`[before, after]` per axis), filling
/// with `fill` (the output zero point).
pub fn pad<T: QuantizedElement>(
    input: &[T],
    shape: &[usize],
    paddings: &[[usize; 2]],
    fill: T,
    out: &mut [T],
) -> Result<(), KernelError> {
    if paddings.len() != shape.len() {
        return Err(KernelError::shape(
            "paddings",
            format!("one [before, after] pair per axis ({})", shape.len()),
            paddings.len(),
        ));
    }
    let want_in = element_count(shape)?;
    if input.len() != want_in {
        return Err(KernelError::size("input", want_in, input.len()));
    }
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(paddings)
        .map(|(&s, p)| s.checked_add(p[0]).and_then(|v| v.checked_add(p[1])))
        .collect::<Option<_>>()
        .ok_or_else(|| KernelError::overflow("padded shape", shape))?;
    let want_out = element_count(&out_shape)?;
    if out.len() != want_out {
        return Err(KernelError::size("output", want_out, out.len()));
    }
    out.fill(fill);
    if want_in == 0 {
        return Ok(());
    }
    let rank = shape.len();
    let mut out_strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        out_strides[d] = out_strides[d + 1] * out_shape[d + 1];
    }
    // Copy the input row by row (its last axis is contiguous in both).
    let row = shape.last().copied().unwrap_or(1);
    let mut index = vec![0usize; rank.saturating_sub(1)];
    for src in input.chunks_exact(row.max(1)) {
        let mut at = paddings.last().map_or(0, |p| p[0]);
        for (d, &i) in index.iter().enumerate() {
            at += (i + paddings[d][0]) * out_strides[d];
        }
        out[at..at + src.len()].copy_from_slice(src);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenation_by_hand() {
        let q = QParams::new(0.001, 0);
        let a: [i16; 4] = [1, 2, 3, 4]; // [2, 2]
        let b: [i16; 2] = [5, 6]; // [2, 1]
        let mut out = [0i16; 6];
        concatenate(
            &[(&a[..], &[2, 2][..], q), (&b[..], &[2, 1][..], q)],
            -1,
            q,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [1, 2, 5, 3, 4, 6]);
        let other = QParams::new(0.002, 0);
        let err = concatenate(&[(&a[..], &[2, 2][..], other)], 0, q, &mut out[..4]).unwrap_err();
        assert!(matches!(err, KernelError::UnequalParams { .. }), "{err:?}");
    }

    #[test]
    fn padding_by_hand() {
        // [2, 2] padded by [[1, 0], [0, 1]] -> [3, 3].
        let mut out = [9i16; 9];
        pad(&[1i16, 2, 3, 4], &[2, 2], &[[1, 0], [0, 1]], 0, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 2, 0, 3, 4, 0]);
    }
}
