//! The aarch64 inner loops of the packed int8 kernels (see [`super`] for the layouts and
//! why the integers equal the reference's): a GEMM for CONV_2D / FULLY_CONNECTED in two
//! flavours, plain Advanced SIMD (`smull` + `sadalp`) and the dot product extension
//! (`sdot`), a depthwise loop, and the requantization epilogue.
//!
//! Both GEMM flavours read the same packed weights as the x86 VNNI kernel: blocks of 16
//! output channels, inside a block groups of 4 depth steps stored `[channel][step]`
//! (64 bytes, four 128-bit vectors of 4 channels x 4 steps). The activations are the
//! int8 values themselves (im2col'd, or read in place for a pointwise convolution):
//! both `smull` and `sdot` multiply signed by signed bytes, so unlike VNNI's unsigned x
//! signed `vpdpbusd` no `+ 128` shift of the activations is needed and the bias fold is
//! AVX2's, `bias + input_offset * sum(w)`: with `acc = folded bias + sum(x * w)` the
//! reference's `bias + sum((x + input_offset) * w)` is the same sum regrouped, and
//! every step (exact int16 products, `sadalp`/`sdot` lane additions, the final adds)
//! is an exact or wrapping i32 operation, so the 32-bit result is the reference's.
//! Padding taps hold the input zero point, whose `x * w` the fold cancels; the depth
//! padding holds zero weights (and zero activations).

use std::arch::aarch64::*;
use std::arch::asm;

use super::{block_rows, im2col, pointwise, Epilogue, Gemm, GemmWeights};
use super::{PARALLEL_MACS, PARALLEL_ROWS};
use crate::kernels::int8::conv::{ConvGeometry, Requant, Rounding};
use crate::kernels::simd::Level;

// -------------------------------------------------------------------- requantization

/// The exact vector form of `requantize(acc, m, HalfUp)`, then `saturating_add(zero
/// point)` and the clamp to the activation range, on the 4 channels `c..c + 4`:
/// * `sshl` by the (non-negative) left shift drops the bits shifted out, like the
///   reference's `wrapping_mul(1 << left)`;
/// * `sqrdmulh` is `sat((2 * x * m + 2^31) >> 32)` = `floor((x * m + 2^30) / 2^31)`,
///   saturating only for `x == m == i32::MIN`: the reference's
///   `saturating_rounding_doubling_high_mul`, whose sign-dependent nudge with truncating
///   division gives the same floor (for a negative product `p`,
///   `trunc((p + 1 - 2^30) / 2^31) = floor((p + 2^30) / 2^31)`) and which saturates in
///   the same single case;
/// * `srshl` by `-right` adds `2^(right - 1)` and shifts right arithmetically, in wider
///   precision (no overflow), and is the identity for `right == 0`: exactly the
///   reference's half-up `(high + 2^(right - 1)) >> right` done in i64. The Arm ARM
///   takes the shift from the low byte of each lane, signed; `right` is at most 31;
/// * `sqadd` is `saturating_add`, then `smin`/`smax` clamp.
///
/// With XNNPACK's arithmetic (`ep.scale` set) the lanes are its f32 epilogue instead:
/// `scvtf` (int to f32, nearest even), `fmul`, clamp to the activation range less the zero
/// point, `fcvtns` (nearest even), plus the zero point; each step correctly rounded, as
/// [`crate::kernels::int8::requantize_f32`].
#[inline]
unsafe fn requant4(acc: int32x4_t, ep: &Epilogue, c: usize) -> int32x4_t {
    if let Some(scale) = &ep.scale {
        let s = vld1q_f32(scale.as_ptr().add(c));
        let lo = vdupq_n_f32((ep.act_min - ep.zero_point) as f32);
        let hi = vdupq_n_f32((ep.act_max - ep.zero_point) as f32);
        let f = vminq_f32(vmaxq_f32(vmulq_f32(vcvtq_f32_s32(acc), s), lo), hi);
        return vaddq_s32(vcvtnq_s32_f32(f), vdupq_n_s32(ep.zero_point));
    }
    let mult = vld1q_s32(ep.mult.as_ptr().add(c));
    let left = vld1q_s32(ep.left.as_ptr().add(c));
    let right = vld1q_s32(ep.right.as_ptr().add(c));
    let x = vshlq_s32(acc, left);
    let high = vqrdmulhq_s32(x, mult);
    let v = vrshlq_s32(high, vnegq_s32(right));
    let v = vqaddq_s32(v, vdupq_n_s32(ep.zero_point));
    vmaxq_s32(
        vminq_s32(v, vdupq_n_s32(ep.act_max)),
        vdupq_n_s32(ep.act_min),
    )
}

/// [`requant4`] on channels `c..c + 8`, narrowed to bytes (the values already lie in
/// the activation range, inside int8, so the saturating narrows change nothing).
#[inline]
unsafe fn requant8(acc: [int32x4_t; 2], ep: &Epilogue, c: usize) -> int8x8_t {
    let lo = requant4(acc[0], ep, c);
    let hi = requant4(acc[1], ep, c + 4);
    vqmovn_s16(vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi)))
}

/// [`requant8`] on channels `c..c + 16`.
#[inline]
unsafe fn requant16(acc: [int32x4_t; 4], ep: &Epilogue, c: usize) -> int8x16_t {
    let lo = requant8([acc[0], acc[1]], ep, c);
    let hi = requant8([acc[2], acc[3]], ep, c + 8);
    vcombine_s8(lo, hi)
}

/// Stores the first `n` (`<= 16`) bytes of `v` at `dst`.
#[inline]
unsafe fn store16(dst: *mut i8, v: int8x16_t, n: usize) {
    if n >= 16 {
        vst1q_s8(dst, v);
    } else {
        let mut bytes = [0i8; 16];
        vst1q_s8(bytes.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, n);
    }
}

// -------------------------------------------------------------------- GEMM

impl Gemm {
    /// [`Gemm::run_x86`] for the NEON levels: the same row blocking and thread split,
    /// int8 im2col rows (no conversion), the kernel chosen by `self.level`.
    pub(super) fn run_neon(&self, g: &ConvGeometry, input: &[i8], input_zp: i8, out: &mut [i8]) {
        use rayon::prelude::*;
        let GemmWeights::Neon(w) = &self.weights else {
            unreachable!("run_neon on weights packed for another level")
        };
        let (units, depth_pad) = (self.units, self.depth_pad);
        let dot = self.level == Level::NeonDot;
        let rows = g.batch * g.out_h * g.out_w;
        let parallel = rayon::current_num_threads() > 1
            && rows.saturating_mul(units).saturating_mul(depth_pad) >= PARALLEL_MACS;
        // `a` holds `dst.len() / units` rows of `depth_pad` activations.
        let gemm = |a: &[i8], dst: &mut [i8]| {
            let n = dst.len() / units;
            let a = &a[..n * depth_pad];
            if dot {
                // SAFETY: the level was capped by `simd::supported`, so the CPU has the
                // dot product extension; `gemm` checks the slice sizes itself.
                unsafe { gemm_dot(a, n, depth_pad, w, &self.ep, units, dst) }
            } else {
                // SAFETY: Advanced SIMD is baseline on aarch64; sizes as above.
                unsafe { gemm::<false>(a, n, depth_pad, w, &self.ep, units, dst) }
            }
        };
        let out = &mut out[..rows * units];
        if pointwise(g) && self.depth == depth_pad {
            // The input rows are the im2col rows already: no copy.
            let run = |start: usize, dst: &mut [i8]| gemm(&input[start * depth_pad..], dst);
            if parallel {
                out.par_chunks_mut(PARALLEL_ROWS * units)
                    .enumerate()
                    .for_each(|(i, dst)| run(i * PARALLEL_ROWS, dst));
            } else {
                run(0, out);
            }
            return;
        }
        let block = block_rows(depth_pad, 8);
        let run_block = |start: usize, dst: &mut [i8], a: &mut [i8]| {
            let n = dst.len() / units;
            im2col(g, input, start, n, depth_pad, a, input_zp, |x| x);
            gemm(a, dst);
        };
        if parallel {
            out.par_chunks_mut(block * units).enumerate().for_each_init(
                || vec![0i8; block * depth_pad],
                |a, (i, dst)| run_block(i * block, dst, a),
            );
        } else {
            let mut a = vec![0i8; block * depth_pad];
            for (i, dst) in out.chunks_mut(block * units).enumerate() {
                run_block(i * block, dst, &mut a);
            }
        }
    }
}

/// [`gemm`] with `sdot`, compiled with the dot product extension so that the tiles
/// inline into it.
///
/// # Safety
/// The CPU must have the dot product extension.
#[target_feature(enable = "dotprod")]
unsafe fn gemm_dot(
    a: &[i8],
    rows: usize,
    depth_pad: usize,
    w: &[i8],
    ep: &Epilogue,
    units: usize,
    out: &mut [i8],
) {
    gemm::<true>(a, rows, depth_pad, w, ep, units, out)
}

/// `out[r][u] = requant(bias'[u] + sum_k a[r][k] * w[u][k])` for the `rows` rows of the
/// int8 block `a` (`rows x depth_pad`) and the packed weights `w`; `DOT` picks `sdot`.
///
/// # Safety
/// With `DOT`, the CPU must have the dot product extension. The slice sizes are checked
/// here (the tiles then read and write only inside them).
#[inline]
unsafe fn gemm<const DOT: bool>(
    a: &[i8],
    rows: usize,
    depth_pad: usize,
    w: &[i8],
    ep: &Epilogue,
    units: usize,
    out: &mut [i8],
) {
    let blocks = units.div_ceil(16);
    // The tiles read 4-byte groups of every row up to `depth_pad`, 64-byte weight
    // groups of every block, 16 epilogue lanes per block, and write `units` per row.
    assert!(
        depth_pad.is_multiple_of(4) && a.len() >= rows * depth_pad && out.len() >= rows * units
    );
    assert!(w.len() >= blocks * 16 * depth_pad);
    assert!([&ep.bias, &ep.mult, &ep.left, &ep.right]
        .iter()
        .all(|v| v.len() >= blocks * 16));
    assert!(ep.scale.as_ref().is_none_or(|s| s.len() >= blocks * 16));
    for block in 0..blocks {
        let cols = Cols {
            a: a.as_ptr(),
            depth_pad,
            w: w.as_ptr().add(block * 16 * depth_pad),
            ep,
            col: block * 16,
            units,
            out: out.as_mut_ptr(),
        };
        let mut r = 0;
        while r < rows {
            let left = rows - r;
            r += if DOT {
                match left {
                    1 => dot_tile::<1>(&cols, r, 1),
                    2 => dot_tile::<2>(&cols, r, 2),
                    3 | 4 => dot_tile::<4>(&cols, r, left),
                    // 6 x 4 accumulators + 4 weights + 1 broadcast fit 32 registers.
                    _ => dot_tile::<6>(&cols, r, left.min(6)),
                }
            } else {
                match left {
                    1 => smull_tile::<1>(&cols, r, 1),
                    // 2 x 8 accumulators + 4 weights + broadcasts and products.
                    _ => smull_tile::<2>(&cols, r, 2.min(left)),
                }
            };
        }
    }
}

/// One 16-channel column block of the GEMM, for every row.
struct Cols<'a> {
    a: *const i8,
    depth_pad: usize,
    /// The block's packed weights.
    w: *const i8,
    ep: &'a Epilogue,
    /// The block's first output channel.
    col: usize,
    units: usize,
    out: *mut i8,
}

impl Cols<'_> {
    /// Pointers to the `MR` rows of a tile from `r0` of which `valid` are real: the others
    /// repeat the last real row (computed, never stored), so they stay in bounds.
    #[inline]
    unsafe fn rows<const MR: usize>(&self, r0: usize, valid: usize) -> [*const i8; MR] {
        let mut rows = [self.a; MR];
        for (i, row) in rows.iter_mut().enumerate() {
            *row = self.a.add((r0 + i.min(valid - 1)) * self.depth_pad);
        }
        rows
    }

    /// The folded bias of the block's 16 channels.
    #[inline]
    unsafe fn bias(&self) -> [int32x4_t; 4] {
        let b = self.ep.bias.as_ptr().add(self.col);
        [
            vld1q_s32(b),
            vld1q_s32(b.add(4)),
            vld1q_s32(b.add(8)),
            vld1q_s32(b.add(12)),
        ]
    }

    /// The four weight vectors (channels `4v..4v + 4`, 4 steps each) of depth group
    /// `k / 4`.
    #[inline]
    unsafe fn weights(&self, k: usize) -> [int8x16_t; 4] {
        let w = self.w.add(k * 16);
        [
            vld1q_s8(w),
            vld1q_s8(w.add(16)),
            vld1q_s8(w.add(32)),
            vld1q_s8(w.add(48)),
        ]
    }

    /// Requantizes and stores the `valid` real rows of a tile.
    #[inline]
    unsafe fn store<const MR: usize>(&self, r0: usize, valid: usize, acc: &[[int32x4_t; 4]; MR]) {
        let n = (self.units - self.col).min(16);
        for (i, a) in acc.iter().enumerate().take(valid) {
            let q = requant16(*a, self.ep, self.col);
            store16(self.out.add((r0 + i) * self.units + self.col), q, n);
        }
    }
}

/// The 4 activations of depth group `k / 4` of `row`, in every 32-bit lane.
#[inline]
unsafe fn broadcast4(row: *const i8, k: usize) -> int8x16_t {
    vreinterpretq_s8_s32(vdupq_n_s32(row.add(k).cast::<i32>().read_unaligned()))
}

/// `acc[i] += a[4i] * b[4i] + ... + a[4i + 3] * b[4i + 3]` (signed bytes, wrapping i32
/// lanes): `sdot`. Its intrinsic (`vdotq_s32`) is not stable Rust yet.
#[inline]
#[target_feature(enable = "dotprod")]
unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags),
    );
    acc
}

/// An `MR x 16` tile with `sdot`: each weight vector's lane `j` (channel `4v + j`) gets
/// the dot product of its 4 depth steps with the row's 4 activations. Returns `valid`.
#[inline]
#[target_feature(enable = "dotprod")]
unsafe fn dot_tile<const MR: usize>(c: &Cols, r0: usize, valid: usize) -> usize {
    let rows = c.rows::<MR>(r0, valid);
    let mut acc = [c.bias(); MR];
    let mut k = 0;
    while k < c.depth_pad {
        let wv = c.weights(k);
        for (row, acc) in rows.iter().zip(acc.iter_mut()) {
            let av = broadcast4(*row, k);
            for (acc, &wv) in acc.iter_mut().zip(&wv) {
                *acc = sdot(*acc, wv, av);
            }
        }
        k += 4;
    }
    c.store::<MR>(r0, valid, &acc);
    valid
}

/// An `MR x 16` tile with plain Advanced SIMD. `smull` multiplies the low 8 bytes of a
/// weight vector (channels `4v`, `4v + 1`, 4 steps each) by the row's 4 activations
/// twice over into exact int16 products (at most 128 * 128 in magnitude), `smull2` the
/// high 8 (channels `4v + 2`, `4v + 3`); `sadalp` adds neighbouring products into i32
/// lanes `[ch 4v steps 0-1, ch 4v steps 2-3, ch 4v+1 ..., ...]` (adding two int16
/// products in int16 first could overflow at `2 * 128 * 128`). A final `addp` of the
/// two halves leaves one lane per channel. Returns `valid`.
#[inline]
unsafe fn smull_tile<const MR: usize>(c: &Cols, r0: usize, valid: usize) -> usize {
    let rows = c.rows::<MR>(r0, valid);
    let zero = vdupq_n_s32(0);
    let mut lo = [[zero; 4]; MR];
    let mut hi = [[zero; 4]; MR];
    let mut k = 0;
    while k < c.depth_pad {
        let wv = c.weights(k);
        for (i, row) in rows.iter().enumerate() {
            let av = broadcast4(*row, k);
            let av8 = vget_low_s8(av);
            for (v, &wv) in wv.iter().enumerate() {
                lo[i][v] = vpadalq_s16(lo[i][v], vmull_s8(vget_low_s8(wv), av8));
                hi[i][v] = vpadalq_s16(hi[i][v], vmull_high_s8(wv, av));
            }
        }
        k += 4;
    }
    let bias = c.bias();
    let mut acc = [bias; MR];
    for (i, acc) in acc.iter_mut().enumerate() {
        for (v, acc) in acc.iter_mut().enumerate() {
            *acc = vaddq_s32(*acc, vpaddq_s32(lo[i][v], hi[i][v]));
        }
    }
    c.store::<MR>(r0, valid, &acc);
    valid
}

// -------------------------------------------------------------------- depthwise

/// What the depthwise loop reads. Both NEON levels run it: a depthwise product has no
/// reduction over channels for `sdot` to speed up.
pub(super) struct DepthwiseParams<'a> {
    pub g: &'a ConvGeometry,
    /// The padded input (`PaddedInput`): every window of every output pixel lies inside.
    pub image: &'a [i8],
    pub padded_h: usize,
    pub padded_w: usize,
    /// The original `[k_h * k_w][channels]` int8 filter: NEON multiplies bytes directly.
    pub filter: &'a [i8],
    /// `bias` holds the folded bias.
    pub ep: &'a Epilogue,
    pub rq: &'a Requant,
}

use super::DEPTHWISE_PIXELS as PIXELS;

/// `PX` output pixels from `ox`, channels `c..c + 8`: `smull` of 8 activation bytes by 8
/// weight bytes (exact int16), widened into two i32 accumulators with `saddw`/`saddw2`.
#[inline]
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
    let bias = p.ep.bias.as_ptr().add(c);
    let mut acc = [[vld1q_s32(bias), vld1q_s32(bias.add(4))]; PX];
    for ky in 0..g.k_h {
        let row = image.add((oy * g.stride_h + ky * g.dilation_h) * p.padded_w * ch + c);
        let wrow = p.filter.as_ptr().add(ky * g.k_w * ch + c);
        for kx in 0..g.k_w {
            let w = vld1_s8(wrow.add(kx * ch));
            for (i, a) in acc.iter_mut().enumerate() {
                let x = vld1_s8(row.add(((ox + i) * g.stride_w + kx * g.dilation_w) * ch));
                let prod = vmull_s8(x, w);
                a[0] = vaddw_s16(a[0], vget_low_s16(prod));
                a[1] = vaddw_high_s16(a[1], prod);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        // Whole groups of 8 channels: LiteRT rounds them with vector code, ties up.
        vst1_s8(out_row.add((ox + i) * ch + c), requant8(*a, p.ep, c));
    }
}

/// The last `channels % 8` channels of one pixel, in scalar code: LiteRT requantizes
/// them with its scalar reference function, ties away from zero.
fn depthwise_tail(p: &DepthwiseParams, image: &[i8], oy: usize, ox: usize, dst: &mut [i8]) {
    let g = p.g;
    let ch = g.out_c;
    let first = ch - ch % 8;
    for (i, o) in dst.iter_mut().enumerate() {
        let c = first + i;
        let mut s = p.ep.bias[c];
        for ky in 0..g.k_h {
            for kx in 0..g.k_w {
                let y = oy * g.stride_h + ky * g.dilation_h;
                let x = ox * g.stride_w + kx * g.dilation_w;
                let v = i32::from(image[(y * p.padded_w + x) * ch + c]);
                let w = i32::from(p.filter[(ky * g.k_w + kx) * ch + c]);
                s = s.wrapping_add(v * w);
            }
        }
        *o = p.rq.output(s, c, Rounding::HalfAwayFromZero);
    }
}

/// DEPTHWISE_CONV_2D (depth multiplier 1) over the padded input.
///
/// # Safety
/// Advanced SIMD only (baseline). The sizes are checked here: `image` must hold
/// `batch` padded images that contain every window (what `PaddedInput` builds).
pub(super) unsafe fn depthwise(p: &DepthwiseParams, out: &mut [i8]) {
    let g = p.g;
    let ch = g.out_c;
    let full = ch - ch % 8;
    let image_len = p.padded_h * p.padded_w * ch;
    // The furthest tap of the last output pixel must lie inside the padded image; the
    // 8-byte loads stay below `full` channels.
    assert!(g.in_c == ch && g.depth_multiplier == 1);
    assert!((g.out_h.max(1) - 1) * g.stride_h + (g.k_h - 1) * g.dilation_h < p.padded_h);
    assert!((g.out_w.max(1) - 1) * g.stride_w + (g.k_w - 1) * g.dilation_w < p.padded_w);
    assert!(p.image.len() >= g.batch * image_len);
    assert!(out.len() >= g.batch * g.out_h * g.out_w * ch);
    assert!(p.filter.len() >= g.k_h * g.k_w * ch);
    assert!([&p.ep.bias, &p.ep.mult, &p.ep.left, &p.ep.right]
        .iter()
        .all(|v| v.len() >= ch));
    assert!(p.ep.scale.as_ref().is_none_or(|s| s.len() >= ch));
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
    super::depthwise_rows(g, image_len, out, 8, full, block, tail);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::FusedActivation;
    use crate::kernels::int8::conv::{requantize, ScaleProduct};
    use crate::kernels::int8::QParams;

    /// The vector epilogue itself (not a scalar model of it) against the reference
    /// `requantize` + zero point + clamp, on extreme accumulators, every shift the
    /// multipliers produce and exact rounding ties, 4 channels at a time.
    #[test]
    fn neon_requant_matches_requantize() {
        let mut accs = vec![
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            -20,
            -21,
            20,
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
            1 << 30,
            -(1 << 30),
            123_456_789,
            -987_654_321,
        ];
        // Ties of every right shift: odd multiples of 2^(r-1), both signs.
        for r in 1..31 {
            accs.extend([
                3i32 << (r - 1),
                -(3i32 << (r - 1)),
                1 << (r - 1),
                -(1 << (r - 1)),
            ]);
        }
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        accs.extend((0..2000).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as i32 >> (state >> 59)
        }));
        // Powers of two give exact ties; the rest ordinary multipliers, left shifts
        // (real >= 1), and the smallest ones (right shifts near 31).
        let reals: Vec<f64> = (-40..12)
            .map(|e| 2f64.powi(e))
            .chain([1e-9, 3e-5, 0.001, 0.3, 0.999, 3.0, 1000.0, 7.3e5])
            .collect();
        for activation in [FusedActivation::None, FusedActivation::Relu6] {
            for zp in [-128, -5, 0, 17, 127] {
                for chunk in reals.chunks(4) {
                    let mut chunk = chunk.to_vec();
                    chunk.resize(4, 1.0);
                    let rq = Requant::new(
                        QParams::new(1.0, 0),
                        &chunk.iter().map(|&r| r as f32).collect::<Vec<_>>(),
                        QParams::new(1.0, zp),
                        activation,
                        4,
                        ScaleProduct::Double,
                    )
                    .unwrap();
                    let ep = Epilogue::new(&rq, vec![0; 4], 4);
                    for &a in &accs {
                        let mut got = [0i32; 4];
                        // SAFETY: Advanced SIMD is baseline; the epilogue has 4 lanes.
                        unsafe { vst1q_s32(got.as_mut_ptr(), requant4(vdupq_n_s32(a), &ep, 0)) };
                        for (c, &got) in got.iter().enumerate() {
                            let want = requantize(a, rq.multipliers[c], Rounding::HalfUp)
                                .saturating_add(zp)
                                .clamp(rq.act_min, rq.act_max);
                            assert_eq!(
                                got, want,
                                "acc {a} multiplier {:?} zp {zp}",
                                rq.multipliers[c]
                            );
                        }
                    }
                }
            }
        }
    }
}
