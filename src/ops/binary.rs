//! Two-input element-wise ops with numpy broadcasting.

use candle_core::{DType, Tensor as CTensor};

use super::{
    activation::apply_fused, broadcast_shape, expect_output_shape, EvalCtx, OpError, OpResult,
};
use crate::graph::{BinaryKind, FusedActivation};

pub fn binary(ctx: &EvalCtx, kind: BinaryKind, activation: FusedActivation) -> OpResult<CTensor> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let shape = broadcast_shape(a.dims(), b.dims())?;
    expect_output_shape(ctx, 0, &shape)?;
    // 8-bit operands never get here: `ops::eval` refuses them for every arithmetic op.
    if !a.dtype().is_float() && !b.dtype().is_float() {
        return apply_fused(integer_binary(a, b, kind, &shape)?, activation);
    }
    let out = match kind {
        BinaryKind::Add => a.broadcast_add(b)?,
        BinaryKind::Sub => a.broadcast_sub(b)?,
        BinaryKind::Mul => a.broadcast_mul(b)?,
        BinaryKind::Div => a.broadcast_div(b)?,
        BinaryKind::SquaredDifference => {
            let d = a.broadcast_sub(b)?;
            (&d * &d)?
        }
        BinaryKind::Maximum => a.broadcast_maximum(b)?,
        BinaryKind::Minimum => a.broadcast_minimum(b)?,
    };
    apply_fused(out, activation)
}

/// int32/int64 arithmetic (carried as i64) as TFLite's integer kernels compute it in two's
/// complement: wrapping, where candle's checked Rust arithmetic would panic on overflow in
/// builds with overflow checks (and `i64::MIN / -1` panics in every build).
fn integer_binary(
    a: &CTensor,
    b: &CTensor,
    kind: BinaryKind,
    shape: &[usize],
) -> OpResult<CTensor> {
    let values = |t: &CTensor| -> OpResult<Vec<i64>> {
        Ok(t.to_dtype(DType::I64)?
            .broadcast_as(shape)?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<i64>()?)
    };
    let (x, y) = (values(a)?, values(b)?);
    if kind == BinaryKind::Div && y.contains(&0) {
        return Err(OpError(
            "integer division by zero: the divisor tensor holds a 0; the model's \
             constants are broken, re-export it"
                .into(),
        ));
    }
    let op: fn(i64, i64) -> i64 = match kind {
        BinaryKind::Add => i64::wrapping_add,
        BinaryKind::Sub => i64::wrapping_sub,
        BinaryKind::Mul => i64::wrapping_mul,
        // TFLite's integer DIV truncates toward zero, as Rust's does.
        BinaryKind::Div => i64::wrapping_div,
        BinaryKind::SquaredDifference => |p, q| {
            let d = p.wrapping_sub(q);
            d.wrapping_mul(d)
        },
        BinaryKind::Maximum => i64::max,
        BinaryKind::Minimum => i64::min,
    };
    let out: Vec<i64> = x.iter().zip(&y).map(|(&p, &q)| op(p, q)).collect();
    Ok(CTensor::from_vec(out, shape, a.device())?.to_dtype(a.dtype())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn ints(v: &[i64]) -> CTensor {
        CTensor::from_slice(v, v.len(), &Device::Cpu).unwrap()
    }

    /// Two's complement, as TFLite's int32/int64 kernels compute: wrapping, never a panic.
    #[test]
    fn integer_arithmetic_wraps() {
        let run = |kind, a: &[i64], b: &[i64]| {
            integer_binary(&ints(a), &ints(b), kind, &[a.len()])
                .unwrap()
                .to_vec1::<i64>()
                .unwrap()
        };
        assert_eq!(run(BinaryKind::Add, &[i64::MAX, 2], &[1, 3]), [i64::MIN, 5]);
        assert_eq!(
            run(BinaryKind::Sub, &[i64::MIN, 2], &[1, 3]),
            [i64::MAX, -1]
        );
        assert_eq!(run(BinaryKind::Mul, &[i64::MAX, -4], &[2, 3]), [-2, -12]);
        assert_eq!(
            run(BinaryKind::Div, &[i64::MIN, -7], &[-1, 2]),
            [i64::MIN, -3]
        );
        assert_eq!(
            run(BinaryKind::SquaredDifference, &[5, -3], &[2, 3]),
            [9, 36]
        );
        assert_eq!(run(BinaryKind::Maximum, &[5, -3], &[2, 3]), [5, 3]);
        let err = integer_binary(&ints(&[1]), &ints(&[0]), BinaryKind::Div, &[1]).unwrap_err();
        assert!(err.0.contains("division by zero"), "{}", err.0);
    }
}
