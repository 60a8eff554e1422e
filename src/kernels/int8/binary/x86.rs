//! The vector lanes of ADD and MUL with AVX2, computing exactly what the scalar lane
//! functions in `binary/mod.rs` compute (`add_vector_lane`, `MulParams::finish_vector`), 8
//! lanes at a time: every step is an integer operation with the same wrapping /
//! saturation. An x86-64 copy of that arithmetic kept on purpose (there is no NEON copy:
//! aarch64 runs the scalar lane functions, which stay the reference the property tests
//! below compare against).

use std::arch::x86_64::*;

use super::{AddParams, AddSide, MulParams, ADD_LEFT_SHIFT};
use crate::kernels::simd::{self, Level};

/// The first MUL operand: per lane, or one value for every lane.
pub(super) enum Operand<'a> {
    Slice(&'a [i8]),
    Broadcast(i16),
}

fn enabled() -> bool {
    simd::active() >= Level::Avx2
}

/// `neon::shl` by a count shared by all lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn shl(x: __m256i, count: i32) -> __m256i {
    match count {
        c if c >= 32 => _mm256_setzero_si256(),
        c if c >= 0 => _mm256_sll_epi32(x, _mm_cvtsi32_si128(c)),
        c if c > -32 => _mm256_sra_epi32(x, _mm_cvtsi32_si128(-c)),
        _ => _mm256_srai_epi32::<31>(x),
    }
}

/// `saturating_rounding_doubling_high_mul(x, m)` for `m >= 0`: `(x * m + 2^30) >> 31`
/// in 64 bits equals the reference's sign-dependent nudge and truncating division,
/// and `x == m == i32::MIN` cannot occur.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn srdhm(x: __m256i, m: i32) -> __m256i {
    let mv = _mm256_set1_epi32(m);
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_add_epi64(_mm256_mul_epi32(x, mv), nudge);
    let odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64::<32>(x), mv), nudge);
    _mm256_blend_epi32::<0xAA>(_mm256_srli_epi64::<31>(even), _mm256_slli_epi64::<1>(odd))
}

/// `rounding_divide_by_pot(x, e)` (half away from zero) for `0 <= e <= 31`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn rdbpot(x: __m256i, e: i32) -> __m256i {
    let mask = ((1i64 << e) - 1) as i32;
    let remainder = _mm256_and_si256(x, _mm256_set1_epi32(mask));
    // (mask >> 1) + (x < 0): the sign bit shifted down is the 1.
    let threshold = _mm256_add_epi32(_mm256_set1_epi32(mask >> 1), _mm256_srli_epi32::<31>(x));
    let shifted = _mm256_sra_epi32(x, _mm_cvtsi32_si128(e));
    // cmpgt gives -1 where the remainder passes the threshold.
    _mm256_sub_epi32(shifted, _mm256_cmpgt_epi32(remainder, threshold))
}

/// 8 int8 values plus an offset in int16 arithmetic (wrapping), as i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_offset(p: *const i8, offset: i32) -> __m256i {
    let x = _mm_cvtepi8_epi16(_mm_loadl_epi64(p.cast()));
    _mm256_cvtepi16_epi32(_mm_add_epi16(x, _mm_set1_epi16(offset as i16)))
}

/// Saturate 8 i32 lanes to int16, add the offset in int16 (wrapping), saturate to
/// int8, clamp with int8 bounds, store 8 bytes: the NEON tail of both ops.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn finish_store(v: __m256i, offset: i32, lo: i32, hi: i32, dst: *mut i8) {
    let v16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let v16 = _mm_add_epi16(v16, _mm_set1_epi16(offset as i16));
    let v8 = _mm_packs_epi16(v16, v16);
    let v8 = _mm_max_epi8(
        _mm_set1_epi8(lo as i8),
        _mm_min_epi8(_mm_set1_epi8(hi as i8), v8),
    );
    _mm_storel_epi64(dst.cast(), v8);
}

/// MUL's vector lanes over `b.len() / 8 * 8` elements; returns how many it did (0
/// when AVX2 is not the active level).
pub(super) fn mul_vector_lanes(p: &MulParams, a: Operand, b: &[i8], out: &mut [i8]) -> usize {
    let n = b.len().min(out.len()) / 8 * 8;
    if let Operand::Slice(a) = a {
        if a.len() < n {
            return 0;
        }
    }
    if !enabled() || n == 0 {
        return 0;
    }
    // SAFETY: AVX2 is available (the active level); every access is below `n`.
    unsafe { mul_avx2(p, a, b, out, n) };
    n
}

#[target_feature(enable = "avx2")]
unsafe fn mul_avx2(p: &MulParams, a: Operand, b: &[i8], out: &mut [i8], n: usize) {
    let left = p.out.shift.max(0);
    let right = (-p.out.shift).max(0);
    let fixed = match a {
        Operand::Broadcast(x) => _mm256_set1_epi32(i32::from(x)),
        Operand::Slice(_) => _mm256_setzero_si256(),
    };
    let mut i = 0;
    while i < n {
        let x = match a {
            Operand::Slice(a) => load_offset(a.as_ptr().add(i), p.in1_offset),
            Operand::Broadcast(_) => fixed,
        };
        let y = load_offset(b.as_ptr().add(i), p.in2_offset);
        // |x|, |y| <= 2^15: the product is exact in i32.
        let prod = shl(_mm256_mullo_epi32(x, y), left);
        let v = rdbpot(srdhm(prod, p.out.multiplier), right);
        finish_store(
            v,
            p.out_offset,
            p.act_min,
            p.act_max,
            out.as_mut_ptr().add(i),
        );
        i += 8;
    }
}

/// ADD's vector lanes (`add_vector_lane`) over `a.len() / 8 * 8` elements.
pub(super) fn add_vector_lanes(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) -> usize {
    let n = a.len().min(b.len()).min(out.len()) / 8 * 8;
    if !enabled() || n == 0 {
        return 0;
    }
    // SAFETY: as for MUL.
    unsafe { add_avx2(p, a, b, out, n) };
    n
}

#[target_feature(enable = "avx2")]
unsafe fn add_avx2(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8], n: usize) {
    let scale = |side: AddSide, ptr: *const i8| {
        let v = shl(
            load_offset(ptr, side.offset),
            ADD_LEFT_SHIFT + side.multiplier.shift,
        );
        srdhm(v, side.multiplier.multiplier)
    };
    let right = (-p.out.shift).max(0);
    let mut i = 0;
    while i < n {
        let raw = _mm256_add_epi32(
            scale(p.in1, a.as_ptr().add(i)),
            scale(p.in2, b.as_ptr().add(i)),
        );
        let v = rdbpot(srdhm(raw, p.out.multiplier), right);
        // `as i16` truncates: keep the low 16 bits, sign-extended, so the
        // saturating pack in `finish_store` leaves them as they are.
        let v = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(v));
        finish_store(
            v,
            p.out_offset,
            p.act_min,
            p.act_max,
            out.as_mut_ptr().add(i),
        );
        i += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::{add_vector_lanes, mul_vector_lanes, Operand};
    use proptest::prelude::*;

    fn activation() -> impl Strategy<Value = FusedActivation> {
        prop_oneof![
            Just(FusedActivation::None),
            Just(FusedActivation::Relu),
            Just(FusedActivation::Relu6),
            Just(FusedActivation::ReluN1To1),
        ]
    }

    fn zero_point() -> impl Strategy<Value = i32> {
        // Mostly int8, sometimes far outside (the int16 offset arithmetic wraps then).
        prop_oneof![9 => -128i32..=127, 1 => -40_000i32..40_000]
    }

    fn qparams() -> impl Strategy<Value = QParams> {
        (1e-4f32..2.0, zero_point()).prop_map(|(s, z)| QParams::new(s, z))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The AVX2 lanes of MUL (element-wise and scalar-broadcast) against the scalar
        /// form of LiteRT's vector lane.
        #[test]
        fn mul_lanes_match_scalar(
            (qa, qb, qo, act) in (qparams(), qparams(), qparams(), activation()),
            a in prop::collection::vec(any::<i8>(), 0..200),
            seed in any::<u64>(),
        ) {
            let Ok(mul) = Mul::new(qa, qb, qo, act) else { return Ok(()) };
            let p = mul.params;
            let b: Vec<i8> = a.iter().enumerate().map(|(i, &x)| (x as u64 ^ seed.rotate_left(i as u32)) as i8).collect();
            let mut got = vec![0i8; a.len()];
            let done = mul_vector_lanes(&p, Operand::Slice(&a), &b, &mut got);
            for i in 0..done {
                let want = p.finish_vector(
                    i16::from(a[i]).wrapping_add(p.in1_offset as i16),
                    i16::from(b[i]).wrapping_add(p.in2_offset as i16),
                );
                prop_assert_eq!(got[i], want, "lane {}", i);
            }
            let x = (p.in1_offset + i32::from(a.first().copied().unwrap_or(3))) as i16;
            let done = mul_vector_lanes(&p, Operand::Broadcast(x), &b, &mut got);
            for i in 0..done {
                let want = p.finish_vector(x, i16::from(b[i]).wrapping_add(p.in2_offset as i16));
                prop_assert_eq!(got[i], want, "broadcast lane {}", i);
            }
        }

        /// The AVX2 lanes of ADD against `add_vector_lane`.
        #[test]
        fn add_lanes_match_scalar(
            (qa, qb, qo, act) in (qparams(), qparams(), qparams(), activation()),
            a in prop::collection::vec(any::<i8>(), 0..200),
            seed in any::<u64>(),
        ) {
            let Ok(add) = Add::new(qa, qb, qo, act) else { return Ok(()) };
            let p = add.params;
            let b: Vec<i8> = a.iter().enumerate().map(|(i, &x)| (x as u64 ^ seed.rotate_left(i as u32)) as i8).collect();
            let mut got = vec![0i8; a.len()];
            let done = add_vector_lanes(&p, &a, &b, &mut got);
            for i in 0..done {
                prop_assert_eq!(got[i], add_vector_lane(&p, a[i], b[i]), "lane {}", i);
            }
        }
    }
}
