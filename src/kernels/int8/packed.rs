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
//! (rounding shift right, ties up, in wider precision); see `packed_neon::requant4`.
//! Depthwise channels that LiteRT requantizes with the scalar half-away-from-zero tail
//! (the last `channels % 8`) are finished with the reference code.
//!
//! The aarch64 code lives in `packed_neon.rs`; `scripts/test_aarch64.sh` runs this
//! module's tests and `tests/int8_packed_kernels.rs` under qemu for both NEON levels.

use super::conv::{check_bias, check_len, ConvGeometry, ConvInt8, FullyConnectedInt8, Requant};
use crate::kernels::simd::{self, Level};

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
    /// multiplies the same bytes with `smull` (see `packed_neon`).
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
    ) -> Result<Self, String> {
        let level = simd::supported(level);
        let size = units
            .checked_mul(depth)
            .ok_or_else(|| format!("weights {units}x{depth} overflow"))?;
        check_len("filter", filter.len(), size)?;
        check_bias(bias, units)?;
        if rq.multipliers.len() != units {
            return Err(format!(
                "{units} output channels, the op was prepared for {}",
                rq.multipliers.len()
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

/// Output pixels the vector depthwise kernels compute together along a row: they share
/// every weight load.
const DEPTHWISE_PIXELS: usize = 4;

/// The output loop the vector depthwise kernels share (AVX-512, AVX2, NEON): image by
/// image, row by row, [`DEPTHWISE_PIXELS`] output pixels at a time and then one at a time,
/// channel blocks `c = 0, step, ..` below `vector_end` by `block(wide, image, oy, ox, c,
/// out_row)` (`wide`: `DEPTHWISE_PIXELS` pixels from `ox`, else one; `image`: the offset of
/// the padded image in the input), and each pixel's channels from `vector_end` on by
/// `tail(image, oy, ox, out)`. Inlined into each kernel's target-feature function, whose
/// closures call its own blocks.
///
/// # Safety
/// `out` holds `batch * out_h * out_w * out_c` values; `block` and `tail` only touch what
/// their arguments name.
#[inline(always)]
unsafe fn depthwise_rows(
    g: &ConvGeometry,
    image_len: usize,
    out: &mut [i8],
    step: usize,
    vector_end: usize,
    mut block: impl FnMut(bool, usize, usize, usize, usize, *mut i8),
    mut tail: impl FnMut(usize, usize, usize, &mut [i8]),
) {
    let ch = g.out_c;
    for b in 0..g.batch {
        let image = b * image_len;
        for oy in 0..g.out_h {
            let out_row = out.as_mut_ptr().add((b * g.out_h + oy) * g.out_w * ch);
            let mut ox = 0;
            while ox + DEPTHWISE_PIXELS <= g.out_w {
                for c in (0..vector_end).step_by(step) {
                    block(true, image, oy, ox, c, out_row);
                }
                ox += DEPTHWISE_PIXELS;
            }
            while ox < g.out_w {
                for c in (0..vector_end).step_by(step) {
                    block(false, image, oy, ox, c, out_row);
                }
                ox += 1;
            }
            if vector_end < ch {
                for ox in 0..g.out_w {
                    let dst = std::slice::from_raw_parts_mut(
                        out_row.add(ox * ch + vector_end),
                        ch - vector_end,
                    );
                    tail(image, oy, ox, dst);
                }
            }
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
    ) -> Result<PackedConv2d, String> {
        let depth = k_h
            .checked_mul(k_w)
            .and_then(|d| d.checked_mul(in_c))
            .ok_or_else(|| format!("filter {k_h}x{k_w}x{in_c} overflows"))?;
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
    pub fn run(&self, g: &ConvGeometry, input: &[i8], out: &mut [i8]) -> Result<(), String> {
        if (g.k_h, g.k_w, g.in_c) != (self.k_h, self.k_w, self.in_c) {
            return Err(format!(
                "geometry has a {}x{}x{} window, the filter was packed for {}x{}x{}",
                g.k_h, g.k_w, g.in_c, self.k_h, self.k_w, self.in_c
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
            return Err(format!(
                "geometry has {} output channels, the filter was packed for {}",
                g.out_c, self.gemm.units
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
    ) -> Result<PackedFullyConnected, String> {
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
    pub fn run(&self, rows: usize, input: &[i8], out: &mut [i8]) -> Result<(), String> {
        let (depth, units) = (self.gemm.depth, self.gemm.units);
        if let GemmWeights::Scalar(filter) = &self.gemm.weights {
            return self
                .reference
                .run(rows, depth, input, filter, self.gemm.bias.as_deref(), out);
        }
        let size = |a: usize, b: usize| {
            a.checked_mul(b)
                .ok_or_else(|| format!("fully connected shape {rows}x{depth}x{units} overflows"))
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

/// int8 DEPTHWISE_CONV_2D with the filter widened for one level.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedDepthwise {
    reference: ConvInt8,
    level: Level,
    k_h: usize,
    k_w: usize,
    channels: usize,
    /// Channels padded to the vector width.
    channels_pad: usize,
    /// `[k_h * k_w][channels_pad]` filter values as i32 lanes whose high half is zero,
    /// so `vpmaddwd` against a sign-extended activation gives the exact product. Empty
    /// for the scalar and NEON levels.
    filter32: Vec<i32>,
    /// The original filter and bias, for the scalar level; NEON multiplies the filter
    /// bytes as they are (`smull`).
    filter: Vec<i8>,
    bias: Option<Vec<i32>>,
    ep: Epilogue,
}

impl ConvInt8 {
    /// Packs a DEPTHWISE_CONV_2D filter `[1, k_h, k_w, channels]` and bias. Depth
    /// multipliers other than 1 run the reference kernel.
    pub fn pack_depthwise(
        &self,
        filter: &[i8],
        bias: Option<&[i32]>,
        (k_h, k_w): (usize, usize),
        level: Level,
    ) -> Result<PackedDepthwise, String> {
        let channels = self.rq.multipliers.len();
        let taps = k_h
            .checked_mul(k_w)
            .ok_or_else(|| format!("filter {k_h}x{k_w} overflows"))?;
        check_len(
            "filter",
            filter.len(),
            taps.checked_mul(channels)
                .ok_or_else(|| format!("filter {k_h}x{k_w}x{channels} overflows"))?,
        )?;
        check_bias(bias, channels)?;
        let level = simd::supported(level);
        let width = match level {
            Level::Avx512 => 16,
            Level::Avx2 | Level::Neon | Level::NeonDot => 8,
            Level::Scalar => 1,
        };
        let channels_pad = channels.div_ceil(width) * width;
        let mut filter32 = Vec::new();
        if matches!(level, Level::Avx2 | Level::Avx512) {
            filter32 = vec![0i32; taps * channels_pad];
            for (t, row) in filter.chunks_exact(channels).enumerate() {
                for (c, &w) in row.iter().enumerate() {
                    filter32[t * channels_pad + c] = i32::from(w as i16 as u16);
                }
            }
        }
        // The input offset folds into the bias (`sum((x + off) w) = sum(x w) + off sum(w)`)
        // because the kernels read a copy of the input padded with its zero point, for
        // which `x w` is cancelled by the fold just like `(zp + off) w = 0`.
        let off = self.rq.input_offset;
        let bias_vec: Vec<i32> = (0..channels)
            .map(|c| {
                let sum = filter
                    .iter()
                    .skip(c)
                    .step_by(channels.max(1))
                    .fold(0i32, |s, &w| s.wrapping_add(i32::from(w)));
                bias.map_or(0, |b| b[c]).wrapping_add(off.wrapping_mul(sum))
            })
            .collect();
        Ok(PackedDepthwise {
            reference: self.clone(),
            level,
            k_h,
            k_w,
            channels,
            channels_pad,
            filter32,
            filter: filter.to_vec(),
            bias: bias.map(<[i32]>::to_vec),
            ep: Epilogue::new(&self.rq, bias_vec, channels_pad),
        })
    }
}

impl PackedDepthwise {
    pub fn level(&self) -> Level {
        self.level
    }

    /// Like [`ConvInt8::depthwise`], with the packed filter and bias.
    pub fn run(&self, g: &ConvGeometry, input: &[i8], out: &mut [i8]) -> Result<(), String> {
        if (g.k_h, g.k_w, g.out_c) != (self.k_h, self.k_w, self.channels) {
            return Err(format!(
                "geometry has a {}x{} window over {} channels, the filter was packed for {}x{} over {}",
                g.k_h, g.k_w, g.out_c, self.k_h, self.k_w, self.channels
            ));
        }
        if self.level == Level::Scalar || g.depth_multiplier != 1 {
            return self
                .reference
                .depthwise(g, input, &self.filter, self.bias.as_deref(), out);
        }
        let e = g.extents(true)?;
        check_len("input", input.len(), e.input)?;
        check_len("output", out.len(), e.output)?;
        #[cfg(target_arch = "x86_64")]
        {
            let Some(padded) = PaddedInput::new(g, input, (-self.reference.rq.input_offset) as i8)
            else {
                return self
                    .reference
                    .depthwise(g, input, &self.filter, self.bias.as_deref(), out);
            };
            // LiteRT requantizes whole groups of 8 channels with vector code (ties up)
            // and the rest with the scalar reference (ties away from zero).
            let vector_channels = self.channels - self.channels % 8;
            let params = x86::DepthwiseParams {
                g,
                image: &padded.data,
                padded_h: padded.h,
                padded_w: padded.w,
                filter: &self.filter32,
                channels_pad: self.channels_pad,
                ep: &self.ep,
                vector_channels,
                rq: &self.reference.rq,
            };
            // SAFETY: the level was capped by `simd::supported`; the padded input covers
            // every window (see `PaddedInput`), the output length was checked above.
            unsafe {
                match self.level {
                    Level::Avx512 => x86::depthwise_avx512(&params, out),
                    _ => x86::depthwise_avx2(&params, out),
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            let Some(padded) = PaddedInput::new(g, input, (-self.reference.rq.input_offset) as i8)
            else {
                return self
                    .reference
                    .depthwise(g, input, &self.filter, self.bias.as_deref(), out);
            };
            let params = packed_neon::DepthwiseParams {
                g,
                image: &padded.data,
                padded_h: padded.h,
                padded_w: padded.w,
                filter: &self.filter,
                ep: &self.ep,
                rq: &self.reference.rq,
            };
            // SAFETY: NEON is baseline on aarch64; `depthwise` checks that the padded
            // input covers every window and the other sizes before its pointer loops.
            unsafe { packed_neon::depthwise(&params, out) };
        }
        Ok(())
    }
}

/// The input with the padding made real: every window of every output pixel lies inside,
/// padding cells hold the input zero point. `[batch, h, w, channels]`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
struct PaddedInput {
    data: Vec<i8>,
    h: usize,
    w: usize,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl PaddedInput {
    /// `None` when the padded copy would be much larger than the input (huge padding
    /// or dilation in an odd model): the reference kernel needs no copy.
    fn new(g: &ConvGeometry, input: &[i8], zero_point: i8) -> Option<Self> {
        // `extents` bounded these spans by isize::MAX.
        let h = (g.out_h.max(1) - 1) * g.stride_h + (g.k_h - 1) * g.dilation_h + 1;
        let w = (g.out_w.max(1) - 1) * g.stride_w + (g.k_w - 1) * g.dilation_w + 1;
        let c = g.in_c;
        let len = g
            .batch
            .checked_mul(h)
            .and_then(|n| n.checked_mul(w))
            .and_then(|n| n.checked_mul(c))?;
        if len > input.len().saturating_mul(4).max(1 << 20) {
            return None;
        }
        let mut data = vec![zero_point; len];
        // Columns of the padded row that come from the input.
        let x0 = g.pad_left.min(w);
        let x1 = (g.pad_left + g.in_w).min(w);
        for b in 0..g.batch {
            for py in 0..h {
                let Some(iy) = py.checked_sub(g.pad_top).filter(|&iy| iy < g.in_h) else {
                    continue;
                };
                if x0 >= x1 {
                    continue;
                }
                let src = &input[((b * g.in_h + iy) * g.in_w) * c..][..(x1 - x0) * c];
                data[((b * h + py) * w + x0) * c..][..(x1 - x0) * c].copy_from_slice(src);
            }
        }
        Some(PaddedInput { data, h, w })
    }
}

#[cfg(target_arch = "aarch64")]
#[path = "packed_neon.rs"]
mod packed_neon;

#[cfg(target_arch = "x86_64")]
mod x86 {
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
    fn scalar_tail(
        acc: &[i32],
        first: usize,
        rq: &Requant,
        vector_channels: usize,
        dst: &mut [i8],
    ) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::FusedActivation;
    use crate::kernels::int8::conv::{requantize, Rounding};
    use crate::kernels::int8::QParams;

    /// The lane arithmetic of the vector epilogue, in scalar form, against the
    /// reference `requantize` on edge cases: extreme accumulators, shifts, multipliers.
    #[test]
    fn epilogue_arithmetic_matches_requantize() {
        let accs = [
            0,
            1,
            -1,
            2,
            -2,
            3,
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
        for real in [
            1e-9, 3e-5, 0.001, 0.0625, 0.125, 0.3, 0.5, 0.999, 1.0, 3.0, 1000.0,
        ] {
            for zp in [-128, -5, 0, 17, 127] {
                let rq = Requant::new(
                    QParams::new(1.0, 0),
                    &[real],
                    QParams::new(1.0, zp),
                    FusedActivation::None,
                    1,
                    super::super::conv::ScaleProduct::Double,
                )
                .unwrap();
                let ep = Epilogue::new(&rq, vec![0], 1);
                for &a in &accs {
                    let want = (requantize(a, rq.multipliers[0], Rounding::HalfUp)
                        .saturating_add(zp))
                    .clamp(-128, 127) as i8;
                    assert_eq!(ep.scalar(a, 0), want, "acc {a} real {real} zp {zp}");
                }
            }
        }
    }

    /// XNNPACK's f32 epilogue: the scalar form and the AVX2 / AVX-512 lanes equal
    /// [`requantize_f32`] on accumulators that overflow int8 many times over, exact ties
    /// (`acc * scale` = k + 0.5, both parities) and large magnitudes.
    #[test]
    fn float_epilogue_matches_requantize_f32() {
        use crate::kernels::int8::{requantize_f32, Arithmetic};
        let accs: [i32; 16] = [
            0,
            1,
            -1,
            5,
            -5,
            7,
            -7,
            3,
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
            1 << 24,
            (1 << 24) + 1,
            -(1 << 30),
            123_456_789,
            -987_654_321,
        ];
        for scale in [1e-9f32, 0.5, 0.25, 0.3, 1.0, 3.0, 255.0] {
            for (zp, act) in [
                (-128, FusedActivation::None),
                (17, FusedActivation::Relu),
                (0, FusedActivation::Relu6),
            ] {
                let mut rq = Requant::new(
                    QParams::new(scale, 0),
                    &[1.0; 16],
                    QParams::new(1.0, zp),
                    act,
                    16,
                    super::super::conv::ScaleProduct::Double,
                )
                .unwrap();
                rq.set_arithmetic(Arithmetic::Xnnpack);
                let ep = Epilogue::new(&rq, vec![0; 16], 16);
                let want: Vec<i32> = accs
                    .iter()
                    .map(|&a| requantize_f32(a, scale, zp, rq.act_min, rq.act_max))
                    .collect();
                for (c, &a) in accs.iter().enumerate() {
                    assert_eq!(
                        i32::from(ep.scalar(a, c)),
                        want[c],
                        "acc {a} scale {scale} zp {zp}"
                    );
                }
                #[cfg(target_arch = "x86_64")]
                {
                    use std::arch::x86_64::*;
                    if simd::detected() >= Level::Avx2 {
                        let mut got = [0i32; 8];
                        for half in 0..2 {
                            // SAFETY: AVX2 was detected; both buffers hold 8 lanes.
                            unsafe {
                                let v = _mm256_loadu_si256(accs[half * 8..].as_ptr().cast());
                                let r = x86::requant8(v, &ep, half * 8);
                                _mm256_storeu_si256(got.as_mut_ptr().cast(), r);
                            }
                            assert_eq!(
                                &got[..],
                                &want[half * 8..][..8],
                                "avx2 scale {scale} zp {zp}"
                            );
                        }
                    }
                    if simd::detected() >= Level::Avx512 {
                        let mut got = [0i32; 16];
                        // SAFETY: AVX-512 was detected; both buffers hold 16 lanes.
                        unsafe {
                            let v = _mm512_loadu_si512(accs.as_ptr().cast());
                            let r = x86::requant16(v, &ep, 0);
                            _mm512_storeu_si512(got.as_mut_ptr().cast(), r);
                        }
                        assert_eq!(&got[..], &want[..], "avx512 scale {scale} zp {zp}");
                    }
                }
            }
        }
    }
}
