//! Fast int8 CONV_2D, FULLY_CONNECTED and DEPTHWISE_CONV_2D: weights packed once per
//! model, SIMD inner loops (AVX2 and AVX-512 VNNI on x86-64, NEON with and without the
//! dot product extension on aarch64), vectorised requantization. Results are the same
//! integers as the reference kernels in [`super::conv`] (which stay the definition, and
//! which the `Scalar` level runs); `tests/int8_packed_kernels.rs` checks that on random
//! shapes for every level the CPU has.
//!
//! # Why the integers come out identical
//!
//! The reference accumulates `bias + sum((x + input_offset) * w)` in wrapping i32. Integer
//! addition and multiplication modulo 2^32 form a ring, so any regrouping of that sum that
//! only uses wrapping i32 (or exact wider) operations gives the same 32-bit result. The
//! packed kernels use two regroupings, both folded into the bias at pack time:
//!
//! * AVX2 (`vpmaddwd` on sign-extended int16): `bias + input_offset * sum(w) + sum(x * w)`.
//! * AVX-512 VNNI (`vpdpbusd` multiplies *unsigned* by signed bytes): the activation is fed
//!   as `u = x + 128` (a flip of its sign bit), so
//!   `sum(x * w) = sum(u * w) - 128 * sum(w)` and the folded bias is
//!   `bias + (input_offset - 128) * sum(w)`. `vpdpbusd` does not saturate, and four
//!   products of at most 255 * 128 fit i32 easily.
//! * NEON (aarch64), plain (`smull` int8 x int8 -> exact int16, `sadalp` pairwise into
//!   i32) and with the dot product extension (`sdot`, four int8 x int8 products into
//!   each i32 lane, wrapping): both multiply *signed* bytes, so the activations go in as
//!   they are and the fold is AVX2's, `bias + input_offset * sum(w)`. Both read the VNNI
//!   weight layout ([`pack_groups4`]).
//!
//! Taps in the padding must contribute nothing: im2col fills them with the input zero
//! point, for which `x + input_offset = 0` (and so `u * w` is cancelled by the fold).
//! The depthwise kernels (AVX2 `vpmaddwd`, AVX-512 `vpdpwssd`, NEON `smull` + `saddw`,
//! the same code for both NEON levels) use AVX2's fold over a copy of the input padded
//! with its zero point.
//!
//! The requantization (`requantize(acc, m, Rounding::HalfUp)`, clamped) is computed in
//! vector lanes with exact integer steps. On x86 (see [`x86`]'s `requant` functions) the
//! rounding doubling high multiply is done in 64-bit lanes and the half-up right shift as
//! `(h >> r) + bit(r - 1) of h`. NEON has both as instructions that match the reference
//! exactly: `sqrdmulh` (saturating rounding doubling high multiply) and `srshl` by `-r`
//! (rounding shift right, ties up, in wider precision); see `neon::requant4`.
//! Depthwise channels that LiteRT requantizes with the scalar half-away-from-zero tail
//! (the last `channels % 8`) are finished with the reference code.
//!
//! The files: packing and the GEMM driver for CONV_2D / FULLY_CONNECTED here,
//! DEPTHWISE_CONV_2D in `depthwise.rs`, the inner loops per instruction set in `x86.rs`
//! (AVX2, AVX-512 VNNI) and `neon.rs` (aarch64), the epilogue's tests in `tests.rs`.
//! `scripts/test_aarch64.sh` runs this module's tests and `tests/int8_packed_kernels.rs`
//! under qemu for both NEON levels.

use super::conv::{check_bias, check_len, ConvGeometry, ConvInt8, FullyConnectedInt8, Requant};
use crate::kernels::simd::{self, Level};
use crate::kernels::KernelError;

mod depthwise;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use depthwise::PackedDepthwise;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use depthwise::{depthwise_rows, DEPTHWISE_PIXELS};

/// Per-output-channel requantization parameters as plain i32 lanes, padded to the packed
/// channel count (padding channels get harmless zeros).
#[derive(Clone, Debug, PartialEq)]
struct Epilogue {
    /// The bias with the input offset folded in (what the accumulator starts from).
    bias: Vec<i32>,
    mult: Vec<i32>,
    left: Vec<i32>,
    right: Vec<i32>,
    /// `1 << (right - 1)`, or 0 when there is no right shift.
    round_bit: Vec<i32>,
    zero_point: i32,
    act_min: i32,
    act_max: i32,
    /// XNNPACK's f32 factors (padding channels 0.0) when the op requantizes like
    /// XNNPACK; the fixed-point fields above are then unused.
    scale: Option<Vec<f32>>,
}

impl Epilogue {
    fn new(rq: &Requant, folded_bias: Vec<i32>, padded: usize) -> Self {
        let mut e = Epilogue {
            bias: folded_bias,
            mult: Vec::with_capacity(padded),
            left: Vec::with_capacity(padded),
            right: Vec::with_capacity(padded),
            round_bit: Vec::with_capacity(padded),
            zero_point: rq.output_zero_point,
            act_min: rq.act_min,
            act_max: rq.act_max,
            scale: rq.float_scales.clone().map(|mut s| {
                s.resize(padded, 0.0);
                s
            }),
        };
        for m in &rq.multipliers {
            let right = (-m.shift).max(0);
            e.mult.push(m.multiplier);
            e.left.push(m.shift.max(0));
            e.right.push(right);
            e.round_bit
                .push(if right > 0 { 1 << (right - 1) } else { 0 });
        }
        for v in [
            &mut e.bias,
            &mut e.mult,
            &mut e.left,
            &mut e.right,
            &mut e.round_bit,
        ] {
            v.resize(padded, 0);
        }
        e
    }

    /// The lane arithmetic of the vector epilogue in scalar form (for its test).
    #[cfg(test)]
    fn scalar(&self, acc: i32, c: usize) -> i8 {
        if let Some(scale) = &self.scale {
            let lo = (self.act_min - self.zero_point) as f32;
            let hi = (self.act_max - self.zero_point) as f32;
            let v = (acc as f32 * scale[c]).clamp(lo, hi).round_ties_even() as i32;
            return (v + self.zero_point) as i8;
        }
        let x = acc.wrapping_shl(self.left[c] as u32);
        let high = ((i64::from(x) * i64::from(self.mult[c]) + (1 << 30)) >> 31) as i32;
        let v = (high >> self.right[c]) + i32::from(high & self.round_bit[c] != 0);
        (v.clamp(-(1 << 20), 1 << 20) + self.zero_point).clamp(self.act_min, self.act_max) as i8
    }
}

/// The weights of a GEMM-shaped op, in the layout the chosen level reads.
#[derive(Clone, Debug, PartialEq)]
enum GemmWeights {
    /// The reference kernels run; they read the original layout.
    Scalar(Vec<i8>),
    /// Blocks of 16 output channels; inside a block, groups of 4 depth steps, each
    /// `[channel][step]` (64 bytes): one `vpdpbusd` operand.
    #[cfg(target_arch = "x86_64")]
    Vnni(Vec<i8>),
    /// Blocks of 8 output channels; inside a block, pairs of depth steps, each
    /// `[channel][step]` as int16 (32 bytes): one `vpmaddwd` operand.
    #[cfg(target_arch = "x86_64")]
    Avx2(Vec<i16>),
    /// The `Vnni` layout (see [`pack_groups4`]), read by both NEON levels: `sdot` takes
    /// 4 steps of 4 channels per vector as `vpdpbusd` does 4 steps of 16, and plain NEON
    /// multiplies the same bytes with `smull` (see `neon.rs`).
    #[cfg(target_arch = "aarch64")]
    Neon(Vec<i8>),
}

/// Packs `[units, depth]` weights into blocks of 16 output channels; inside a block,
/// groups of 4 depth steps, each `[channel][step]` (64 bytes). Depth and channels are
/// padded with zero weights to `depth_pad` (a multiple of 4) and `units_pad` (of 16).
/// Returns `(packed, depth_pad, units_pad)`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn pack_groups4(filter: &[i8], units: usize, depth: usize) -> (Vec<i8>, usize, usize) {
    let (depth_pad, units_pad) = (depth.div_ceil(4) * 4, units.div_ceil(16) * 16);
    let mut packed = vec![0i8; units_pad * depth_pad];
    for u in 0..units {
        let (block, lane) = (u / 16, u % 16);
        for (k, &w) in filter[u * depth..][..depth].iter().enumerate() {
            let group = k / 4;
            packed[(block * depth_pad / 4 + group) * 64 + lane * 4 + k % 4] = w;
        }
    }
    (packed, depth_pad, units_pad)
}

/// `[units, depth] x [depth]` products for every row of an im2col'd input, packed.
#[derive(Clone, Debug, PartialEq)]
struct Gemm {
    level: Level,
    depth: usize,
    /// Depth rounded up to the level's step (4 for VNNI and NEON, 2 for AVX2).
    depth_pad: usize,
    units: usize,
    /// Units rounded up to the level's vector width.
    units_pad: usize,
    weights: GemmWeights,
    /// The unfolded bias, for the reference kernels.
    bias: Option<Vec<i32>>,
    ep: Epilogue,
}

impl Gemm {
    /// `filter` is `[units, depth]` (CONV_2D's OHWI flattened), `bias` has `units` entries.
    fn new(
        rq: &Requant,
        filter: &[i8],
        bias: Option<&[i32]>,
        units: usize,
        depth: usize,
        level: Level,
    ) -> Result<Self, KernelError> {
        let level = simd::supported(level);
        let size = units
            .checked_mul(depth)
            .ok_or_else(|| KernelError::overflow("weights (units x depth)", [units, depth]))?;
        check_len("filter", filter.len(), size)?;
        check_bias(bias, units)?;
        if rq.multipliers.len() != units {
            return Err(KernelError::shape(
                "output channel count",
                format!("{}, as prepared", rq.multipliers.len()),
                units,
            ));
        }
        // sum(w) per output channel, for the folded bias.
        let weight_sums: Vec<i32> = (0..units)
            .map(|u| {
                filter[u * depth..][..depth]
                    .iter()
                    .fold(0i32, |s, &w| s.wrapping_add(i32::from(w)))
            })
            .collect();
        let fold = |offset: i32| -> Vec<i32> {
            (0..units)
                .map(|u| {
                    bias.map_or(0, |b| b[u])
                        .wrapping_add(offset.wrapping_mul(weight_sums[u]))
                })
                .collect()
        };
        let off = rq.input_offset;
        #[cfg(target_arch = "x86_64")]
        {
            if level == Level::Avx512 {
                let (packed, depth_pad, units_pad) = pack_groups4(filter, units, depth);
                return Ok(Gemm {
                    level,
                    depth,
                    depth_pad,
                    units,
                    units_pad,
                    weights: GemmWeights::Vnni(packed),
                    bias: bias.map(<[i32]>::to_vec),
                    ep: Epilogue::new(rq, fold(off.wrapping_sub(128)), units_pad),
                });
            }
            if level == Level::Avx2 {
                let (depth_pad, units_pad) = (depth.div_ceil(2) * 2, units.div_ceil(8) * 8);
                let mut packed = vec![0i16; units_pad * depth_pad];
                for u in 0..units {
                    let (block, lane) = (u / 8, u % 8);
                    for (k, &w) in filter[u * depth..][..depth].iter().enumerate() {
                        let pair = k / 2;
                        packed[(block * depth_pad / 2 + pair) * 16 + lane * 2 + k % 2] =
                            i16::from(w);
                    }
                }
                return Ok(Gemm {
                    level,
                    depth,
                    depth_pad,
                    units,
                    units_pad,
                    weights: GemmWeights::Avx2(packed),
                    bias: bias.map(<[i32]>::to_vec),
                    ep: Epilogue::new(rq, fold(off), units_pad),
                });
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if matches!(level, Level::Neon | Level::NeonDot) {
                // Signed x signed products (`smull`, `sdot`): AVX2's fold.
                let (packed, depth_pad, units_pad) = pack_groups4(filter, units, depth);
                return Ok(Gemm {
                    level,
                    depth,
                    depth_pad,
                    units,
                    units_pad,
                    weights: GemmWeights::Neon(packed),
                    bias: bias.map(<[i32]>::to_vec),
                    ep: Epilogue::new(rq, fold(off), units_pad),
                });
            }
        }
        Ok(Gemm {
            level: Level::Scalar,
            depth,
            depth_pad: depth,
            units,
            units_pad: units,
            weights: GemmWeights::Scalar(filter.to_vec()),
            bias: bias.map(<[i32]>::to_vec),
            ep: Epilogue::new(rq, fold(off), units),
        })
    }

    /// Runs the packed GEMM over every output pixel of `g` (a 1x1 geometry over
    /// `[rows, 1, 1, depth]` for FULLY_CONNECTED). `input_zp` fills padding taps.
    ///
    /// Large ops split their rows across rayon's pool (each row's result is computed
    /// alone, so the split changes nothing in the output); inside the debugger's
    /// per-sample workers the pieces mostly stay on the worker that made them, and a
    /// worker with nothing else to do takes some.
    #[cfg(target_arch = "x86_64")]
    fn run_x86(&self, g: &ConvGeometry, input: &[i8], input_zp: i8, out: &mut [i8]) {
        use rayon::prelude::*;
        let rows = g.batch * g.out_h * g.out_w;
        let units = self.units;
        let parallel = rayon::current_num_threads() > 1
            && rows.saturating_mul(units).saturating_mul(self.depth_pad) >= PARALLEL_MACS;
        match &self.weights {
            GemmWeights::Vnni(w) => {
                if pointwise(g) && self.depth == self.depth_pad {
                    // The input rows are the im2col rows already: no copy.
                    let a: &[u8] = bytes_of(input);
                    let gemm = |start: usize, dst: &mut [i8]| {
                        let n = dst.len() / units;
                        // SAFETY: the level was capped by `simd::supported`, so the CPU has
                        // AVX-512 F/BW/VL and VNNI; slice sizes are as the kernel expects.
                        unsafe {
                            x86::gemm_vnni::<true>(
                                &a[start * self.depth_pad..][..n * self.depth_pad],
                                n,
                                self.depth_pad,
                                w,
                                &self.ep,
                                units,
                                dst,
                            )
                        };
                    };
                    let out = &mut out[..rows * units];
                    if parallel {
                        out.par_chunks_mut(PARALLEL_ROWS * units)
                            .enumerate()
                            .for_each(|(i, dst)| gemm(i * PARALLEL_ROWS, dst));
                    } else {
                        gemm(0, out);
                    }
                    return;
                }
                let block = block_rows(self.depth_pad, 8);
                let pad = (input_zp as u8) ^ 0x80;
                let run_block = |start: usize, dst: &mut [i8], a: &mut [u8]| {
                    let n = dst.len() / units;
                    im2col(g, input, start, n, self.depth_pad, a, pad, |x| {
                        (x as u8) ^ 0x80
                    });
                    // SAFETY: as above.
                    unsafe {
                        x86::gemm_vnni::<false>(a, n, self.depth_pad, w, &self.ep, units, dst)
                    };
                };
                let out = &mut out[..rows * units];
                if parallel {
                    out.par_chunks_mut(block * units).enumerate().for_each_init(
                        || vec![0u8; block * self.depth_pad],
                        |a, (i, dst)| run_block(i * block, dst, a),
                    );
                } else {
                    let mut a = vec![0u8; block * self.depth_pad];
                    for (i, dst) in out.chunks_mut(block * units).enumerate() {
                        run_block(i * block, dst, &mut a);
                    }
                }
            }
            GemmWeights::Avx2(w) => {
                let block = block_rows(self.depth_pad * 2, 6);
                let run_block = |start: usize, dst: &mut [i8], a: &mut [i16]| {
                    let n = dst.len() / units;
                    im2col(
                        g,
                        input,
                        start,
                        n,
                        self.depth_pad,
                        a,
                        i16::from(input_zp),
                        i16::from,
                    );
                    // SAFETY: as above, for AVX2.
                    unsafe { x86::gemm_avx2(a, n, self.depth_pad, w, &self.ep, units, dst) };
                };
                let out = &mut out[..rows * units];
                if parallel {
                    out.par_chunks_mut(block * units).enumerate().for_each_init(
                        || vec![0i16; block * self.depth_pad],
                        |a, (i, dst)| run_block(i * block, dst, a),
                    );
                } else {
                    let mut a = vec![0i16; block * self.depth_pad];
                    for (i, dst) in out.chunks_mut(block * units).enumerate() {
                        run_block(i * block, dst, &mut a);
                    }
                }
            }
            GemmWeights::Scalar(_) => {}
        }
    }
}

/// Whether the im2col rows of `g` are its input rows (a 1x1 convolution, stride 1, no
/// padding), so a kernel can read the input in place.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn pointwise(g: &ConvGeometry) -> bool {
    g.k_h == 1
        && g.k_w == 1
        && g.stride_h == 1
        && g.stride_w == 1
        && g.pad_top == 0
        && g.pad_left == 0
        && (g.in_h, g.in_w) == (g.out_h, g.out_w)
}

/// Multiply-accumulates above which a GEMM splits its rows across threads (some tens of
/// microseconds of work on one core): below it the split costs about what it saves.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const PARALLEL_MACS: usize = 1 << 21;

/// Rows per piece when a pointwise GEMM is split.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const PARALLEL_ROWS: usize = 256;

/// The bytes of an int8 slice.
#[cfg(target_arch = "x86_64")]
fn bytes_of(x: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size and alignment, and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
}

/// Rows per im2col block: enough to reuse each packed weight block many times, few
/// enough that the block's activations stay in L1/L2.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn block_rows(row_bytes: usize, tile: usize) -> usize {
    let rows = (48 * 1024 / row_bytes.max(1)).clamp(tile, 512);
    rows / tile * tile
}

/// Writes rows `start..start + n` of the im2col matrix of `g` into `dst` (`n` rows of
/// `row_len` elements): each output pixel's window, tap by tap, `in_c` values per tap,
/// `pad` for taps in the padding, zeros after the window.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[allow(clippy::too_many_arguments)]
fn im2col<T: Copy + Default>(
    g: &ConvGeometry,
    input: &[i8],
    start: usize,
    n: usize,
    row_len: usize,
    dst: &mut [T],
    pad: T,
    convert: impl Fn(i8) -> T,
) {
    let window = g.k_h * g.k_w * g.in_c;
    let mut ox = start % g.out_w;
    let mut oy = (start / g.out_w) % g.out_h;
    let mut b = start / (g.out_w * g.out_h);
    let span = g.k_w * g.in_c;
    for row in dst.chunks_exact_mut(row_len).take(n) {
        // Leftmost input column of the window; the window's columns are one contiguous
        // run when it lies inside the image and is not dilated (the common case).
        let x_start = (ox * g.stride_w) as isize - g.pad_left as isize;
        let contiguous = g.dilation_w == 1 && x_start >= 0 && x_start as usize + g.k_w <= g.in_w;
        for (ky, seg) in row[..window].chunks_exact_mut(span.max(1)).enumerate() {
            let Some(iy) =
                ConvGeometry::source(oy, g.stride_h, ky, g.dilation_h, g.pad_top, g.in_h)
            else {
                seg.fill(pad);
                continue;
            };
            let line = &input[(b * g.in_h + iy) * g.in_w * g.in_c..][..g.in_w * g.in_c];
            if contiguous {
                let src = &line[x_start as usize * g.in_c..][..span];
                for (d, &s) in seg.iter_mut().zip(src) {
                    *d = convert(s);
                }
                continue;
            }
            for (kx, tap) in seg.chunks_exact_mut(g.in_c.max(1)).enumerate() {
                match ConvGeometry::source(ox, g.stride_w, kx, g.dilation_w, g.pad_left, g.in_w) {
                    Some(ix) => {
                        for (d, &s) in tap.iter_mut().zip(&line[ix * g.in_c..][..g.in_c]) {
                            *d = convert(s);
                        }
                    }
                    None => tap.fill(pad),
                }
            }
        }
        row[window..].fill(T::default());
        ox += 1;
        if ox == g.out_w {
            ox = 0;
            oy += 1;
            if oy == g.out_h {
                oy = 0;
                b += 1;
            }
        }
    }
}

/// int8 CONV_2D with weights packed for one level.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedConv2d {
    reference: ConvInt8,
    k_h: usize,
    k_w: usize,
    in_c: usize,
    gemm: Gemm,
}

impl ConvInt8 {
    /// Packs a CONV_2D filter `[out_c, k_h, k_w, in_c]` and bias for `level` (capped at
    /// what the CPU supports).
    pub fn pack_conv2d(
        &self,
        filter: &[i8],
        bias: Option<&[i32]>,
        (k_h, k_w, in_c): (usize, usize, usize),
        level: Level,
    ) -> Result<PackedConv2d, KernelError> {
        let depth = k_h
            .checked_mul(k_w)
            .and_then(|d| d.checked_mul(in_c))
            .ok_or_else(|| KernelError::overflow("filter", [k_h, k_w, in_c]))?;
        let units = self.rq.multipliers.len();
        let gemm = Gemm::new(&self.rq, filter, bias, units, depth, level)?;
        Ok(PackedConv2d {
            reference: self.clone(),
            k_h,
            k_w,
            in_c,
            gemm,
        })
    }
}

impl PackedConv2d {
    /// The level the kernel runs at.
    pub fn level(&self) -> Level {
        self.gemm.level
    }

    /// Like [`ConvInt8::conv2d`], with the packed filter and bias.
    pub fn run(&self, g: &ConvGeometry, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        if (g.k_h, g.k_w, g.in_c) != (self.k_h, self.k_w, self.in_c) {
            return Err(KernelError::shape(
                "geometry's window",
                format!(
                    "{}x{}x{}, as the filter was packed",
                    self.k_h, self.k_w, self.in_c
                ),
                format!("{}x{}x{}", g.k_h, g.k_w, g.in_c),
            ));
        }
        if let GemmWeights::Scalar(filter) = &self.gemm.weights {
            return self
                .reference
                .conv2d(g, input, filter, self.gemm.bias.as_deref(), out);
        }
        if self.gemm.depth == 0 {
            // No input channels: nothing to pack, every output is the bias.
            return self
                .reference
                .conv2d(g, input, &[], self.gemm.bias.as_deref(), out);
        }
        let e = g.extents(false)?;
        if g.out_c != self.gemm.units {
            return Err(KernelError::shape(
                "geometry's output channel count",
                format!("{}, as the filter was packed", self.gemm.units),
                g.out_c,
            ));
        }
        check_len("input", input.len(), e.input)?;
        check_len("output", out.len(), e.output)?;
        #[cfg(target_arch = "x86_64")]
        self.gemm
            .run_x86(g, input, (-self.reference.rq.input_offset) as i8, out);
        #[cfg(target_arch = "aarch64")]
        self.gemm
            .run_neon(g, input, (-self.reference.rq.input_offset) as i8, out);
        Ok(())
    }
}

/// int8 FULLY_CONNECTED with weights packed for one level.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedFullyConnected {
    reference: FullyConnectedInt8,
    gemm: Gemm,
}

impl FullyConnectedInt8 {
    /// Packs `[units, depth]` weights and the bias for `level` (capped at what the CPU
    /// supports).
    pub fn pack(
        &self,
        filter: &[i8],
        bias: Option<&[i32]>,
        depth: usize,
        level: Level,
    ) -> Result<PackedFullyConnected, KernelError> {
        let units = self.rq.multipliers.len();
        Ok(PackedFullyConnected {
            reference: self.clone(),
            gemm: Gemm::new(&self.rq, filter, bias, units, depth, level)?,
        })
    }
}

impl PackedFullyConnected {
    pub fn level(&self) -> Level {
        self.gemm.level
    }

    /// Like [`FullyConnectedInt8::run`]: `input` `[rows, depth]`, `out` `[rows, units]`.
    pub fn run(&self, rows: usize, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        let (depth, units) = (self.gemm.depth, self.gemm.units);
        if let GemmWeights::Scalar(filter) = &self.gemm.weights {
            return self
                .reference
                .run(rows, depth, input, filter, self.gemm.bias.as_deref(), out);
        }
        let size = |a: usize, b: usize| {
            a.checked_mul(b)
                .ok_or_else(|| KernelError::overflow("rows x depth x units", [rows, depth, units]))
        };
        check_len("input", input.len(), size(rows, depth)?)?;
        check_len("output", out.len(), size(rows, units)?)?;
        if depth == 0 {
            return self
                .reference
                .run(rows, 0, input, &[], self.gemm.bias.as_deref(), out);
        }
        // A fully connected layer is a 1x1 convolution over `rows` pixels.
        let g = ConvGeometry {
            batch: rows,
            in_h: 1,
            in_w: 1,
            in_c: depth,
            out_h: 1,
            out_w: 1,
            out_c: units,
            k_h: 1,
            k_w: 1,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
            depth_multiplier: 1,
        };
        #[cfg(target_arch = "x86_64")]
        self.gemm
            .run_x86(&g, input, (-self.reference.rq.input_offset) as i8, out);
        #[cfg(target_arch = "aarch64")]
        self.gemm
            .run_neon(&g, input, (-self.reference.rq.input_offset) as i8, out);
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = g;
        Ok(())
    }
}
