//! Emulations of the NEON intrinsics that LiteRT's int8 kernels use, as NEON_2_SSE
//! implements them on x86 (LiteRT's x86 build runs its "NEON" loops through that
//! emulation). Scalar functions: the binary, unary and reduce kernels call them for the
//! elements LiteRT hands to a vector block.

use crate::kernels::fixed_point::saturating_rounding_doubling_high_mul;

/// `vshlq_s32`: a left shift for non-negative counts, an arithmetic (truncating)
/// right shift for negative ones; counts past the lane width give 0 or the sign.
pub fn shl(x: i32, count: i32) -> i32 {
    match count {
        c if c >= 32 => 0,
        c if c >= 0 => x.wrapping_shl(c as u32),
        c if c > -32 => x >> (-c),
        _ => x >> 31,
    }
}

/// `vrshlq_s32`: like [`shl`], but a right shift rounds half up (adds half the
/// divisor first, without overflow), unlike gemmlowp's half-away-from-zero.
pub fn rounding_shl(x: i32, count: i32) -> i32 {
    if count >= 0 {
        return shl(x, count);
    }
    let n = count.saturating_neg().min(63) as u32;
    ((i64::from(x) + (1i64 << (n - 1))) >> n) as i32
}

/// `MultiplyByQuantizedMultiplier4Rows` (double-rounding build): shift left,
/// `vqrdmulhq_s32`, then a half-up rounding right shift.
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let right = shift.min(0);
    rounding_shl(
        saturating_rounding_doubling_high_mul(shl(x, left), multiplier),
        right,
    )
}

/// `vqmovn_s32`: saturate to int16.
pub fn saturate_i16(x: i32) -> i16 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// `vqmovn_s16`: saturate to int8.
pub fn saturate_i8(x: i16) -> i8 {
    x.clamp(i16::from(i8::MIN), i16::from(i8::MAX)) as i8
}

/// `vmaxq_s8(min, vminq_s8(max, x))` with the bounds broadcast as int8
/// (`vdupq_n_s8` truncates them).
pub fn clamp_i8(x: i8, lo: i32, hi: i32) -> i8 {
    (lo as i8).max((hi as i8).min(x))
}
