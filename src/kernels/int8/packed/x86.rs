//! The x86-64 inner loops of the packed int8 kernels (see [`super`] for the layouts and
//! why the integers equal the reference's): AVX-512 VNNI and AVX2 GEMM tiles for CONV_2D /
//! FULLY_CONNECTED, the depthwise blocks, and the vectorised requantization epilogue.
//! These are per-instruction-set copies of the same arithmetic kept on purpose: the
//! aarch64 copy is `neon.rs`, and the scalar reference (`kernels::int8::conv`) is what
//! both are tested against (`tests/int8_packed_kernels.rs`).

use std::arch::x86_64::*;

use super::Epilogue;
use crate::kernels::int8::conv::{ConvGeometry, Requant, Rounding};

// ---------------------------------------------------------------- requantization

/// The exact vector form of `requantize(acc, m, HalfUp)` + zero point + clamp, 16 lanes.
/// Steps (all exact in integers):
/// * `acc << left` wraps like the reference's `wrapping_mul(1 << left)`;
/// * the rounding doubling high multiply is `(x * m + 2^30) >> 31` in 64 bits: the
///   reference's sign-dependent nudge and truncating division give the same value
///   (for negative products, `(p + 1 - 2^30) / 2^31` truncated toward zero equals
///   `floor((p + 2^30) / 2^31)`), and `x == m == i32::MIN` cannot occur since
///   multipliers are non-negative. Even lanes come from `vpmuldq` directly, odd ones
///   after a 32-bit shift; the 32 result bits are taken with a logical shift right
///   (even) or left (odd) and blended;
/// * the half-up right shift is `(h >> r) + bit (r - 1) of h`, which cannot
///   overflow, unlike `(h + 2^(r-1)) >> r` in 32 bits;
/// * `saturating_add(zero_point)` then clamp equals clamping to +-2^20 first,
///   adding, then clamping: activation bounds lie within int8.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn requant16(acc: __m512i, ep: &Epilogue, c: usize) -> __m512i {
    if let Some(scale) = &ep.scale {
        return requant16_f32(acc, ep, scale, c);
    }
    let mult = _mm512_loadu_si512(ep.mult.as_ptr().add(c).cast());
    let left = _mm512_loadu_si512(ep.left.as_ptr().add(c).cast());
    let right = _mm512_loadu_si512(ep.right.as_ptr().add(c).cast());
    let round_bit = _mm512_loadu_si512(ep.round_bit.as_ptr().add(c).cast());
    let x = _mm512_sllv_epi32(acc, left);
    let nudge = _mm512_set1_epi64(1 << 30);
    let even = _mm512_add_epi64(_mm512_mul_epi32(x, mult), nudge);
    let odd = _mm512_add_epi64(
        _mm512_mul_epi32(_mm512_srli_epi64::<32>(x), _mm512_srli_epi64::<32>(mult)),
        nudge,
    );
    let high = _mm512_mask_blend_epi32(
        0xAAAA,
        _mm512_srli_epi64::<31>(even),
        _mm512_slli_epi64::<1>(odd),
    );
    let shifted = _mm512_srav_epi32(high, right);
    let round = _mm512_min_epu32(_mm512_and_si512(high, round_bit), _mm512_set1_epi32(1));
    let v = _mm512_add_epi32(shifted, round);
    let v = _mm512_max_epi32(
        _mm512_min_epi32(v, _mm512_set1_epi32(1 << 20)),
        _mm512_set1_epi32(-(1 << 20)),
    );
    let v = _mm512_add_epi32(v, _mm512_set1_epi32(ep.zero_point));
    _mm512_max_epi32(
        _mm512_min_epi32(v, _mm512_set1_epi32(ep.act_max)),
        _mm512_set1_epi32(ep.act_min),
    )
}

/// [`requant16`] on 8 lanes with AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn requant8(acc: __m256i, ep: &Epilogue, c: usize) -> __m256i {
    if let Some(scale) = &ep.scale {
        return requant8_f32(acc, ep, scale, c);
    }
    let mult = _mm256_loadu_si256(ep.mult.as_ptr().add(c).cast());
    let left = _mm256_loadu_si256(ep.left.as_ptr().add(c).cast());
    let right = _mm256_loadu_si256(ep.right.as_ptr().add(c).cast());
    let round_bit = _mm256_loadu_si256(ep.round_bit.as_ptr().add(c).cast());
    let x = _mm256_sllv_epi32(acc, left);
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_add_epi64(_mm256_mul_epi32(x, mult), nudge);
    let odd = _mm256_add_epi64(
        _mm256_mul_epi32(_mm256_srli_epi64::<32>(x), _mm256_srli_epi64::<32>(mult)),
        nudge,
    );
    let high =
        _mm256_blend_epi32::<0xAA>(_mm256_srli_epi64::<31>(even), _mm256_slli_epi64::<1>(odd));
    let shifted = _mm256_srav_epi32(high, right);
    let round = _mm256_min_epu32(_mm256_and_si256(high, round_bit), _mm256_set1_epi32(1));
    let v = _mm256_add_epi32(shifted, round);
    let v = _mm256_max_epi32(
        _mm256_min_epi32(v, _mm256_set1_epi32(1 << 20)),
        _mm256_set1_epi32(-(1 << 20)),
    );
    let v = _mm256_add_epi32(v, _mm256_set1_epi32(ep.zero_point));
    _mm256_max_epi32(
        _mm256_min_epi32(v, _mm256_set1_epi32(ep.act_max)),
        _mm256_set1_epi32(ep.act_min),
    )
}

/// XNNPACK's requantization ([`crate::kernels::int8::requantize_f32`]) on 16 lanes:
/// `f32(acc) * scale`, clamped in f32 to the activation range less the zero point
/// (so the conversion cannot overflow), rounded to nearest even, plus the zero point.
/// Exactly XNNPACK's x86 `fp32` epilogue: every step is one correctly rounded IEEE
/// operation, so the lanes equal the scalar definition.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn requant16_f32(acc: __m512i, ep: &Epilogue, scale: &[f32], c: usize) -> __m512i {
    let s = _mm512_loadu_ps(scale.as_ptr().add(c));
    let lo = _mm512_set1_ps((ep.act_min - ep.zero_point) as f32);
    let hi = _mm512_set1_ps((ep.act_max - ep.zero_point) as f32);
    let f = _mm512_min_ps(
        _mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), s), lo),
        hi,
    );
    let v = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(f);
    _mm512_add_epi32(v, _mm512_set1_epi32(ep.zero_point))
}

/// [`requant16_f32`] on 8 lanes with AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn requant8_f32(acc: __m256i, ep: &Epilogue, scale: &[f32], c: usize) -> __m256i {
    let s = _mm256_loadu_ps(scale.as_ptr().add(c));
    let lo = _mm256_set1_ps((ep.act_min - ep.zero_point) as f32);
    let hi = _mm256_set1_ps((ep.act_max - ep.zero_point) as f32);
    let f = _mm256_min_ps(
        _mm256_max_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), s), lo),
        hi,
    );
    let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(f);
    _mm256_add_epi32(_mm256_cvttps_epi32(r), _mm256_set1_epi32(ep.zero_point))
}

/// Narrows 8 i32 lanes already within int8 to 8 bytes, in order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn narrow8(v: __m256i) -> i64 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256::<1>(v);
    let w = _mm_packs_epi32(lo, hi);
    _mm_cvtsi128_si64(_mm_packs_epi16(w, w))
}

/// Stores the first `n` (< 8 allowed) of 8 narrowed lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store8(dst: *mut i8, v: __m256i, n: usize) {
    let bytes = narrow8(v).to_le_bytes();
    if n >= 8 {
        dst.cast::<[u8; 8]>().write_unaligned(bytes);
    } else {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), n);
    }
}

// ---------------------------------------------------------------- GEMM, VNNI

/// `out[r][u] = requant(bias'[u] + sum_k a[r][k] * w[u][k])` for `rows` rows of the
/// u8 im2col block `a` (`rows x depth_pad`) and the packed weights.
///
/// `FLIP`: `a` holds the int8 activations themselves (a 1x1 convolution's input read
/// in place, depth a multiple of 4): their sign bits are flipped as they are
/// broadcast, which is what im2col does otherwise.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn gemm_vnni<const FLIP: bool>(
    a: &[u8],
    rows: usize,
    depth_pad: usize,
    w: &[i8],
    ep: &Epilogue,
    units: usize,
    out: &mut [i8],
) {
    debug_assert!(a.len() >= rows * depth_pad && out.len() >= rows * units);
    let blocks = units.div_ceil(16);
    debug_assert!(w.len() >= blocks * 16 * depth_pad);
    let mut block = 0;
    while block < blocks {
        let nv = (blocks - block).min(4);
        let cols = VnniCols {
            a: a.as_ptr(),
            depth_pad,
            w: w.as_ptr().add(block * 16 * depth_pad),
            ep,
            col: block * 16,
            units,
            out: out.as_mut_ptr(),
        };
        match nv {
            4 => vnni_rows::<4, FLIP>(&cols, rows),
            3 => vnni_rows::<3, FLIP>(&cols, rows),
            2 => vnni_rows::<2, FLIP>(&cols, rows),
            _ => vnni_rows::<1, FLIP>(&cols, rows),
        }
        block += nv;
    }
}

/// One group of up to four 16-channel column blocks, for every row.
struct VnniCols<'a> {
    a: *const u8,
    depth_pad: usize,
    /// The group's first packed weight block.
    w: *const i8,
    ep: &'a Epilogue,
    /// The group's first output channel.
    col: usize,
    units: usize,
    out: *mut i8,
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_rows<const NV: usize, const FLIP: bool>(c: &VnniCols, rows: usize) {
    let mut r = 0;
    while r < rows {
        let left = rows - r;
        r += match left {
            1 => vnni_tile::<1, NV, FLIP>(c, r, 1),
            2 => vnni_tile::<2, NV, FLIP>(c, r, 2),
            3 | 4 => vnni_tile::<4, NV, FLIP>(c, r, left),
            // 6 x 4 and 8 x 3 accumulators + weights + one broadcast fit 32 registers.
            _ if NV == 4 => vnni_tile::<6, NV, FLIP>(c, r, left.min(6)),
            _ => vnni_tile::<8, NV, FLIP>(c, r, left.min(8)),
        };
    }
}

/// An `MR x 16*NV` tile starting at row `r0`; `valid` rows are real (the others
/// recompute the last real row and are not stored). Returns `valid`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_tile<const MR: usize, const NV: usize, const FLIP: bool>(
    c: &VnniCols,
    r0: usize,
    valid: usize,
) -> usize {
    let block_stride = c.depth_pad * 16;
    let mut rows = [c.a; MR];
    for (i, row) in rows.iter_mut().enumerate() {
        *row = c.a.add((r0 + i.min(valid - 1)) * c.depth_pad);
    }
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    for v in 0..NV {
        let bias = _mm512_loadu_si512(c.ep.bias.as_ptr().add(c.col + 16 * v).cast());
        for row in acc.iter_mut() {
            row[v] = bias;
        }
    }
    let mut k = 0;
    while k < c.depth_pad {
        let mut wv = [_mm512_setzero_si512(); NV];
        for (v, wv) in wv.iter_mut().enumerate() {
            *wv = _mm512_loadu_si512(c.w.add(v * block_stride + k * 16).cast());
        }
        for (i, row) in rows.iter().enumerate() {
            let mut four = row.add(k).cast::<i32>().read_unaligned();
            if FLIP {
                four ^= 0x8080_8080u32 as i32;
            }
            let av = _mm512_set1_epi32(four);
            for v in 0..NV {
                acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], av, wv[v]);
            }
        }
        k += 4;
    }
    for v in 0..NV {
        let col = c.col + 16 * v;
        if col >= c.units {
            break;
        }
        let n = (c.units - col).min(16);
        let mask: __mmask16 = if n == 16 { 0xFFFF } else { (1u16 << n) - 1 };
        for (i, row) in acc.iter().enumerate().take(valid) {
            let q = requant16(row[v], c.ep, col);
            let dst = c.out.add((r0 + i) * c.units + col);
            _mm_mask_storeu_epi8(dst, mask, _mm512_cvtepi32_epi8(q));
        }
    }
    valid
}

// ---------------------------------------------------------------- GEMM, AVX2

/// [`gemm_vnni`] with `vpmaddwd` on an int16 im2col block.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gemm_avx2(
    a: &[i16],
    rows: usize,
    depth_pad: usize,
    w: &[i16],
    ep: &Epilogue,
    units: usize,
    out: &mut [i8],
) {
    debug_assert!(a.len() >= rows * depth_pad && out.len() >= rows * units);
    let blocks = units.div_ceil(8);
    debug_assert!(w.len() >= blocks * 8 * depth_pad);
    let mut block = 0;
    while block < blocks {
        let nv = (blocks - block).min(2);
        let cols = Avx2Cols {
            a: a.as_ptr(),
            depth_pad,
            w: w.as_ptr().add(block * 8 * depth_pad),
            ep,
            col: block * 8,
            units,
            out: out.as_mut_ptr(),
        };
        match nv {
            2 => avx2_rows::<2>(&cols, rows),
            _ => avx2_rows::<1>(&cols, rows),
        }
        block += nv;
    }
}

struct Avx2Cols<'a> {
    a: *const i16,
    depth_pad: usize,
    w: *const i16,
    ep: &'a Epilogue,
    col: usize,
    units: usize,
    out: *mut i8,
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_rows<const NV: usize>(c: &Avx2Cols, rows: usize) {
    let mut r = 0;
    while r < rows {
        let left = rows - r;
        r += match left {
            1 => avx2_tile::<1, NV>(c, r, 1),
            2 => avx2_tile::<2, NV>(c, r, 2),
            3 | 4 => avx2_tile::<4, NV>(c, r, left),
            // 6 x 2 accumulators + 2 weights + 1 broadcast fit 16 registers.
            _ => avx2_tile::<6, NV>(c, r, left.min(6)),
        };
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_tile<const MR: usize, const NV: usize>(
    c: &Avx2Cols,
    r0: usize,
    valid: usize,
) -> usize {
    let block_stride = c.depth_pad * 8;
    let mut rows = [c.a; MR];
    for (i, row) in rows.iter_mut().enumerate() {
        *row = c.a.add((r0 + i.min(valid - 1)) * c.depth_pad);
    }
    let mut acc = [[_mm256_setzero_si256(); NV]; MR];
    for v in 0..NV {
        let bias = _mm256_loadu_si256(c.ep.bias.as_ptr().add(c.col + 8 * v).cast());
        for row in acc.iter_mut() {
            row[v] = bias;
        }
    }
    let mut k = 0;
    while k < c.depth_pad {
        let mut wv = [_mm256_setzero_si256(); NV];
        for (v, wv) in wv.iter_mut().enumerate() {
            *wv = _mm256_loadu_si256(c.w.add(v * block_stride + k * 8).cast());
        }
        for (i, row) in rows.iter().enumerate() {
            let av = _mm256_set1_epi32(row.add(k).cast::<i32>().read_unaligned());
            for v in 0..NV {
                acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(av, wv[v]));
            }
        }
        k += 2;
    }
    for v in 0..NV {
        let col = c.col + 8 * v;
        if col >= c.units {
            break;
        }
        let n = (c.units - col).min(8);
        for (i, row) in acc.iter().enumerate().take(valid) {
            let q = requant8(row[v], c.ep, col);
            store8(c.out.add((r0 + i) * c.units + col), q, n);
        }
    }
    valid
}

// ---------------------------------------------------------------- depthwise

pub(super) struct DepthwiseParams<'a> {
    pub g: &'a ConvGeometry,
    /// The padded input (`PaddedInput`).
    pub image: &'a [i8],
    pub padded_h: usize,
    pub padded_w: usize,
    /// `[tap][channels_pad]`, int16 values in i32 lanes with a zero high half.
    pub filter: &'a [i32],
    pub channels_pad: usize,
    /// `bias` holds the folded bias.
    pub ep: &'a Epilogue,
    pub vector_channels: usize,
    pub rq: &'a Requant,
}

/// Writes the channels of one output pixel from their accumulators, choosing each
/// channel's rounding as LiteRT does (see `PackedDepthwise::run`).
#[inline]
fn scalar_tail(acc: &[i32], first: usize, rq: &Requant, vector_channels: usize, dst: &mut [i8]) {
    for (i, (&a, o)) in acc.iter().zip(dst.iter_mut()).enumerate() {
        let c = first + i;
        let rounding = if c < vector_channels {
            Rounding::HalfUp
        } else {
            Rounding::HalfAwayFromZero
        };
        *o = rq.output(a, c, rounding);
    }
}

use super::DEPTHWISE_PIXELS as PIXELS;

/// `PX` output pixels from `ox`, channels `c..c + 16` (masked past the end).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn depthwise_block16<const PX: usize>(
    p: &DepthwiseParams,
    image: *const i8,
    oy: usize,
    ox: usize,
    c: usize,
    out_row: *mut i8,
) {
    let g = p.g;
    let ch = g.out_c;
    let n = (ch - c).min(16);
    let mask: __mmask16 = if n == 16 { 0xFFFF } else { (1u16 << n) - 1 };
    let bias = _mm512_loadu_si512(p.ep.bias.as_ptr().add(c).cast());
    let mut acc = [bias; PX];
    for ky in 0..g.k_h {
        let row = image.add((oy * g.stride_h + ky * g.dilation_h) * p.padded_w * ch + c);
        let wrow = p.filter.as_ptr().add(ky * g.k_w * p.channels_pad + c);
        for kx in 0..g.k_w {
            let w = _mm512_loadu_si512(wrow.add(kx * p.channels_pad).cast());
            for (i, a) in acc.iter_mut().enumerate() {
                let px = row.add(((ox + i) * g.stride_w + kx * g.dilation_w) * ch);
                let x = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, px));
                // x is sign-extended (its high int16 half is 0 or -1), w's high half
                // is 0: the pairwise int16 dot product is exactly x * w.
                *a = _mm512_dpwssd_epi32(*a, x, w);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        let dst = out_row.add((ox + i) * ch + c);
        if c + n <= p.vector_channels {
            let q = requant16(*a, p.ep, c);
            _mm_mask_storeu_epi8(dst, mask, _mm512_cvtepi32_epi8(q));
        } else {
            let mut lanes = [0i32; 16];
            _mm512_storeu_si512(lanes.as_mut_ptr().cast(), *a);
            let dst = std::slice::from_raw_parts_mut(dst, n);
            scalar_tail(&lanes[..n], c, p.rq, p.vector_channels, dst);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn depthwise_avx512(p: &DepthwiseParams, out: &mut [i8]) {
    let g = p.g;
    let ch = g.out_c;
    let image_len = p.padded_h * p.padded_w * ch;
    // Blocks of 16 channels, the last one masked: no scalar tail.
    let block = |wide: bool, image: usize, oy, ox, c, out_row| {
        let image = p.image.as_ptr().add(image);
        if wide {
            depthwise_block16::<PIXELS>(p, image, oy, ox, c, out_row);
        } else {
            depthwise_block16::<1>(p, image, oy, ox, c, out_row);
        }
    };
    super::depthwise_rows(g, image_len, out, 16, ch, block, |_, _, _, _| {});
}

/// [`depthwise_block16`] with AVX2: 8 channels, `c + 8 <= channels`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_block8<const PX: usize>(
    p: &DepthwiseParams,
    image: *const i8,
    oy: usize,
    ox: usize,
    c: usize,
    out_row: *mut i8,
) {
    let g = p.g;
    let ch = g.out_c;
    let bias = _mm256_loadu_si256(p.ep.bias.as_ptr().add(c).cast());
    let mut acc = [bias; PX];
    for ky in 0..g.k_h {
        let row = image.add((oy * g.stride_h + ky * g.dilation_h) * p.padded_w * ch + c);
        let wrow = p.filter.as_ptr().add(ky * g.k_w * p.channels_pad + c);
        for kx in 0..g.k_w {
            let w = _mm256_loadu_si256(wrow.add(kx * p.channels_pad).cast());
            for (i, a) in acc.iter_mut().enumerate() {
                let px = row.add(((ox + i) * g.stride_w + kx * g.dilation_w) * ch);
                let x = _mm256_cvtepi8_epi32(_mm_loadl_epi64(px.cast()));
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(x, w));
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        // Whole groups of 8 are below `vector_channels`: all round ties up.
        store8(out_row.add((ox + i) * ch + c), requant8(*a, p.ep, c), 8);
    }
}

/// The last `channels % 8` channels of one pixel, in scalar code.
fn depthwise_tail(p: &DepthwiseParams, image: &[i8], oy: usize, ox: usize, dst: &mut [i8]) {
    let g = p.g;
    let ch = g.out_c;
    let first = ch - ch % 8;
    let mut lanes = [0i32; 8];
    for (i, a) in lanes.iter_mut().enumerate().take(ch - first) {
        let c = first + i;
        let mut s = p.ep.bias[c];
        for ky in 0..g.k_h {
            for kx in 0..g.k_w {
                let y = oy * g.stride_h + ky * g.dilation_h;
                let x = ox * g.stride_w + kx * g.dilation_w;
                let v = i32::from(image[(y * p.padded_w + x) * ch + c]);
                let w = p.filter[(ky * g.k_w + kx) * p.channels_pad + c] as u16 as i16;
                s = s.wrapping_add(v * i32::from(w));
            }
        }
        *a = s;
    }
    scalar_tail(&lanes[..ch - first], first, p.rq, p.vector_channels, dst);
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn depthwise_avx2(p: &DepthwiseParams, out: &mut [i8]) {
    let g = p.g;
    let ch = g.out_c;
    let image_len = p.padded_h * p.padded_w * ch;
    let block = |wide: bool, image: usize, oy, ox, c, out_row| {
        let image = p.image.as_ptr().add(image);
        if wide {
            depthwise_block8::<PIXELS>(p, image, oy, ox, c, out_row);
        } else {
            depthwise_block8::<1>(p, image, oy, ox, c, out_row);
        }
    };
    let tail = |image: usize, oy, ox, dst: &mut [i8]| {
        depthwise_tail(p, &p.image[image..][..image_len], oy, ox, dst);
    };
    super::depthwise_rows(g, image_len, out, 8, ch - ch % 8, block, tail);
}
