//! Float 1x1 CONV_2D (pointwise convolution) on NHWC data, with the bias and the fused
//! activation applied while each output tile is still in registers.
//!
//! On NHWC data a 1x1 convolution is a matrix product: every output pixel (a "row") is
//! `act(bias + x[row] . W)` with `W` the `[in_c, out_c]` filter. candle's path did the
//! product, then a broadcast add of the bias and a separate activation pass, each over
//! the whole output; here the filter is packed once (at prepare time) into panels of
//! output channels that the microkernel streams, the bias seeds the accumulators and the
//! activation clamps them before the single store.
//!
//! Packing: the output channels are cut into panels of `NR = 2 * V` channels (`V`: the
//! vector width of the level's kernel). Panel `p` holds `W[k][p * NR ..]` for every `k`,
//! `width(p)` floats per `k`, where every panel is `NR` wide except the last, which is the
//! channels left rounded up to `V` (padded with zeros). So a panel starts at
//! `p * NR * in_c` and the kernel reads it front to back.
//!
//! Strided 1x1 convolutions read every `stride`-th pixel: the kernel addresses input rows
//! through [`PointwiseGeometry`] instead of copying a subsampled input.
//!
//! Summation order (and FMA rounding on the SIMD levels) differs from candle's GEMM, so
//! results differ from it in the last bits; the float oracle (tests/float_oracle.rs)
//! bounds the difference against LiteRT. NaNs propagate through the clamps.

use std::mem::MaybeUninit;

use super::simd::{self, Level};
use crate::graph::FusedActivation;

/// Which output pixels a pointwise convolution computes and where their inputs are: output
/// pixel `(b, oy, ox)` reads input pixel `(b, oy * stride_h, ox * stride_w)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointwiseGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
}

impl PointwiseGeometry {
    /// `rows` pixels read one after the other (a FULLY_CONNECTED input, a stride-1
    /// convolution).
    pub fn dense(rows: usize) -> Self {
        PointwiseGeometry {
            batch: 1,
            in_h: 1,
            in_w: rows,
            out_h: 1,
            out_w: rows,
            stride_h: 1,
            stride_w: 1,
        }
    }

    pub fn rows(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }

    fn in_pixels(&self) -> usize {
        self.batch * self.in_h * self.in_w
    }

    /// Every output pixel reads an input pixel that exists.
    fn is_valid(&self) -> bool {
        let fits = |out: usize, stride: usize, input: usize| {
            out == 0
                || (out - 1)
                    .checked_mul(stride)
                    .is_some_and(|last| last < input)
        };
        fits(self.out_h, self.stride_h, self.in_h) && fits(self.out_w, self.stride_w, self.in_w)
    }

    /// Whether output row `r` reads input pixel `r` (no subsampling).
    fn is_contiguous(&self) -> bool {
        (self.stride_h == 1 || self.out_h <= 1)
            && (self.stride_w == 1 || self.out_w <= 1)
            && self.out_w == self.in_w
            && (self.out_h == self.in_h || self.batch <= 1)
    }

    /// Input pixel index of each of the output rows `start..start + idx.len()`.
    fn pixels(&self, start: usize, idx: &mut [usize]) {
        if self.is_contiguous() {
            for (i, p) in idx.iter_mut().enumerate() {
                *p = start + i;
            }
            return;
        }
        // One division per tile, then counters: the divisions would otherwise cost as
        // much as the arithmetic on narrow layers.
        let mut ox = start % self.out_w;
        let mut oy = (start / self.out_w) % self.out_h;
        let mut b = start / (self.out_w * self.out_h);
        for p in idx.iter_mut() {
            *p = (b * self.in_h + oy * self.stride_h) * self.in_w + ox * self.stride_w;
            ox += 1;
            if ox == self.out_w {
                ox = 0;
                oy += 1;
                if oy == self.out_h {
                    oy = 0;
                    b += 1;
                }
            }
        }
    }
}

/// The clamp a fused activation applies, when it is one the kernel applies itself:
/// `Some(None)` for no activation, `Some(Some((lo, hi)))` for the ReLU family, `None` for
/// the others (TANH, SIGN_BIT), which the caller applies afterwards.
pub fn fused_clamp(activation: FusedActivation) -> Option<Option<(f32, f32)>> {
    match activation {
        FusedActivation::None => Some(None),
        FusedActivation::Relu => Some(Some((0.0, f32::INFINITY))),
        FusedActivation::Relu6 => Some(Some((0.0, 6.0))),
        FusedActivation::ReluN1To1 => Some(Some((-1.0, 1.0))),
        FusedActivation::Tanh | FusedActivation::SignBit => None,
    }
}

/// `v` clamped to `[lo, hi]`, NaN staying NaN (as the SIMD `max(lo, v)` / `min(hi, v)`
/// with `v` second do).
#[inline(always)]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// Which kernel family runs; the packing depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Family {
    fn of(level: Level) -> Family {
        // `supported` caps the level at what this CPU has: the `unsafe` kernel calls
        // below rest on it.
        match simd::supported(level) {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => Family::Avx512,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => Family::Avx2,
            _ => Family::Scalar,
        }
    }

    /// Floats per vector register; panels are two vectors wide.
    fn lanes(self) -> usize {
        match self {
            Family::Scalar => 8,
            #[cfg(target_arch = "x86_64")]
            Family::Avx2 => 8,
            #[cfg(target_arch = "x86_64")]
            Family::Avx512 => 16,
        }
    }
}

/// A pointwise filter and bias packed for one kernel level.
#[derive(Clone, Debug)]
pub struct PackedPointwise {
    in_c: usize,
    out_c: usize,
    family: Family,
    /// Panels of `[in_c][width(p)]` (see the module comment).
    packed: Vec<f32>,
    /// The bias padded with zeros to whole panels (zeros without a bias).
    bias: Vec<f32>,
}

impl PackedPointwise {
    /// Packs `weights_oi` (`[out_c][in_c]`: an OHWI 1x1 filter, or FULLY_CONNECTED
    /// weights) and `bias` (empty or `out_c` long) for the active kernel level.
    pub fn new(weights_oi: &[f32], out_c: usize, in_c: usize, bias: &[f32]) -> Option<Self> {
        Self::for_level(weights_oi, out_c, in_c, bias, simd::active())
    }

    /// [`PackedPointwise::new`] for a given level (capped at what the CPU has), so tests
    /// can run every level. `None` when the slice lengths do not match the sizes.
    pub fn for_level(
        weights_oi: &[f32],
        out_c: usize,
        in_c: usize,
        bias: &[f32],
        level: Level,
    ) -> Option<Self> {
        if out_c.checked_mul(in_c)? != weights_oi.len() || !(bias.is_empty() || bias.len() == out_c)
        {
            return None;
        }
        let family = Family::of(level);
        let nr = 2 * family.lanes();
        let panels = out_c.div_ceil(nr);
        let mut packed = Vec::with_capacity(panels * nr * in_c);
        for p in 0..panels {
            let first = p * nr;
            let width = panel_width(out_c, first, family.lanes());
            for k in 0..in_c {
                packed.extend((first..first + width).map(|o| {
                    if o < out_c {
                        weights_oi[o * in_c + k]
                    } else {
                        0.0
                    }
                }));
            }
        }
        let mut padded_bias = vec![0f32; panels * nr];
        padded_bias[..bias.len()].copy_from_slice(bias);
        Some(PackedPointwise {
            in_c,
            out_c,
            family,
            packed,
            bias: padded_bias,
        })
    }

    pub fn in_c(&self) -> usize {
        self.in_c
    }

    pub fn out_c(&self) -> usize {
        self.out_c
    }

    /// The level whose kernel runs (after capping at what the CPU has).
    pub fn level(&self) -> Level {
        match self.family {
            Family::Scalar => Level::Scalar,
            #[cfg(target_arch = "x86_64")]
            Family::Avx2 => Level::Avx2,
            #[cfg(target_arch = "x86_64")]
            Family::Avx512 => Level::Avx512,
        }
    }

    /// `out[row][o] = clamp(bias[o] + sum_k input[pixel(row)][k] * w[k][o])` for every
    /// row of `g`, `clamp` being `[lo, hi]` or none. `input` holds `g`'s input pixels of
    /// `in_c` floats. Writes every element of `out` (`g.rows() * out_c` long) exactly once,
    /// so `out` may start uninitialised.
    ///
    /// Panics when the slice lengths do not match `g`, or `g` reads outside its input.
    pub fn run_uninit(
        &self,
        input: &[f32],
        g: &PointwiseGeometry,
        clamp: Option<(f32, f32)>,
        out: &mut [MaybeUninit<f32>],
    ) {
        assert!(
            g.is_valid(),
            "pointwise geometry {g:?} reads outside its input"
        );
        assert_eq!(
            input.len(),
            g.in_pixels() * self.in_c,
            "pointwise input size"
        );
        assert_eq!(out.len(), g.rows() * self.out_c, "pointwise output size");
        match self.family {
            Family::Scalar => self.run_scalar(input, g, clamp, out),
            // SAFETY: `Family::of` picked these families only when `simd::supported` said
            // the CPU has the level; the sizes were checked above.
            #[cfg(target_arch = "x86_64")]
            Family::Avx2 => unsafe { self.run_avx2(input, g, clamp, out) },
            #[cfg(target_arch = "x86_64")]
            Family::Avx512 => unsafe { self.run_avx512(input, g, clamp, out) },
        }
    }

    /// [`PackedPointwise::run_uninit`], its rows split across the workers when the op runs
    /// outside them (see [`crate::threads::parts_for_one_op`]); each row's sums are the
    /// same either way. Strided geometries run whole.
    pub fn run_uninit_shared(
        &self,
        input: &[f32],
        g: &PointwiseGeometry,
        clamp: Option<(f32, f32)>,
        out: &mut [MaybeUninit<f32>],
    ) {
        use rayon::prelude::*;
        let parts = crate::threads::parts_for_one_op();
        let dense = g.stride_h == 1 && g.stride_w == 1 && g.in_h == g.out_h && g.in_w == g.out_w;
        let rows = g.rows();
        if parts <= 1 || !dense || rows < 128 || self.out_c == 0 || self.in_c == 0 {
            return self.run_uninit(input, g, clamp, out);
        }
        assert_eq!(input.len(), rows * self.in_c, "pointwise input size");
        assert_eq!(out.len(), rows * self.out_c, "pointwise output size");
        let per_part = rows.div_ceil(parts);
        out.par_chunks_mut(per_part * self.out_c)
            .enumerate()
            .for_each(|(p, out)| {
                let n = out.len() / self.out_c;
                let input = &input[p * per_part * self.in_c..][..n * self.in_c];
                self.run_uninit(input, &PointwiseGeometry::dense(n), clamp, out);
            });
    }

    /// [`PackedPointwise::run_uninit`] into an initialised buffer.
    pub fn run(
        &self,
        input: &[f32],
        g: &PointwiseGeometry,
        clamp: Option<(f32, f32)>,
        out: &mut [f32],
    ) {
        // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the kernel only stores
        // initialised floats, so `out` stays initialised.
        let out = unsafe {
            std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<MaybeUninit<f32>>(), out.len())
        };
        self.run_uninit(input, g, clamp, out)
    }

    /// The reference: one row at a time, a plain multiply-add per weight.
    fn run_scalar(
        &self,
        input: &[f32],
        g: &PointwiseGeometry,
        clamp: Option<(f32, f32)>,
        out: &mut [MaybeUninit<f32>],
    ) {
        let (in_c, out_c) = (self.in_c, self.out_c);
        let lanes = self.family.lanes();
        let nr = 2 * lanes;
        let mut pixel = [0usize];
        let mut acc = vec![0f32; nr];
        for (r, out_row) in out.chunks_exact_mut(out_c.max(1)).enumerate() {
            g.pixels(r, &mut pixel);
            let x = &input[pixel[0] * in_c..][..in_c];
            for (p, out_panel) in out_row.chunks_mut(nr).enumerate() {
                let width = panel_width(out_c, p * nr, lanes);
                let panel = &self.packed[p * nr * in_c..][..width * in_c];
                let acc = &mut acc[..width];
                acc.copy_from_slice(&self.bias[p * nr..][..width]);
                for (&xk, w) in x.iter().zip(panel.chunks_exact(width)) {
                    for (a, &w) in acc.iter_mut().zip(w) {
                        *a += xk * w;
                    }
                }
                for (o, &a) in out_panel.iter_mut().zip(acc.iter()) {
                    o.write(match clamp {
                        Some((lo, hi)) => self::clamp(a, lo, hi),
                        None => a,
                    });
                }
            }
        }
    }
}

/// Width of the panel whose first channel is `first`: two vectors, or for the last panel
/// the channels left rounded up to whole vectors.
fn panel_width(out_c: usize, first: usize, lanes: usize) -> usize {
    (out_c - first).min(2 * lanes).next_multiple_of(lanes)
}

/// Rows per AVX-512 tile: 8 rows x 2 zmm = 16 accumulators (of 32 registers), enough
/// independent FMA chains to hide the latency, with room for the weights and broadcasts.
#[cfg(target_arch = "x86_64")]
const MR_AVX512: usize = 8;
/// Rows per AVX2 tile: 6 rows x 2 ymm = 12 accumulators, 2 weight vectors and one
/// broadcast fill the 16 registers.
#[cfg(target_arch = "x86_64")]
const MR_AVX2: usize = 6;

/// One tile's addresses: `M` input rows, the panel, where its outputs go.
#[cfg(target_arch = "x86_64")]
struct Tile<const M: usize> {
    rows: [*const f32; M],
    panel: *const f32,
    bias: *const f32,
    /// Output of the tile's first row, first channel of the panel.
    out: *mut f32,
    /// Distance between output rows (`out_c`).
    out_stride: usize,
    /// Valid output channels in this panel (`1..=width`).
    cols: usize,
    in_c: usize,
}

#[cfg(target_arch = "x86_64")]
impl PackedPointwise {
    /// Walks the output in tiles of `mr` rows x one panel and hands each tile to `kernel`
    /// through `dispatch` (which picks the monomorphised kernel for the tile's height).
    /// Row tiles are the outer loop: a tile's input rows stay in L1 while every panel
    /// passes over them.
    ///
    /// # Safety
    /// The caller checked the sizes (as `run_uninit` does); `dispatch` must be safe to
    /// call with a tile of `1..=mr` valid rows whose pointers are in bounds.
    #[inline(always)]
    unsafe fn tiles<const MR: usize>(
        &self,
        input: &[f32],
        g: &PointwiseGeometry,
        out: &mut [MaybeUninit<f32>],
        mut dispatch: impl FnMut(usize, &[*const f32; MR], *const f32, *const f32, *mut f32, usize),
    ) {
        let (in_c, out_c) = (self.in_c, self.out_c);
        let nr = 2 * self.family.lanes();
        let rows = g.rows();
        let mut pixels = [0usize; MR];
        let mut ptrs = [input.as_ptr(); MR];
        let out_base = out.as_mut_ptr().cast::<f32>();
        for r0 in (0..rows).step_by(MR) {
            let m = (rows - r0).min(MR);
            g.pixels(r0, &mut pixels[..m]);
            for (ptr, &px) in ptrs.iter_mut().zip(&pixels[..m]) {
                // In bounds: `pixels` only yields pixels of `g`'s input (`g.is_valid()`),
                // and `input` holds `in_pixels * in_c` floats.
                *ptr = input.as_ptr().add(px * in_c);
            }
            for p in 0..out_c.div_ceil(nr) {
                let first = p * nr;
                dispatch(
                    m,
                    &ptrs,
                    self.packed.as_ptr().add(first * in_c),
                    self.bias.as_ptr().add(first),
                    out_base.add(r0 * out_c + first),
                    (out_c - first).min(nr),
                );
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(
        &self,
        input: &[f32],
        g: &PointwiseGeometry,
        clamp: Option<(f32, f32)>,
        out: &mut [MaybeUninit<f32>],
    ) {
        let (in_c, out_c) = (self.in_c, self.out_c);
        let (lo, hi) = clamp.unwrap_or((0.0, 0.0));
        let clamped = clamp.is_some();
        self.tiles::<MR_AVX512>(input, g, out, |m, rows, panel, bias, out, cols| {
            macro_rules! go {
                ($m:literal) => {{
                    let tile = Tile::<$m> {
                        rows: std::array::from_fn(|i| rows[i]),
                        panel,
                        bias,
                        out,
                        out_stride: out_c,
                        cols,
                        in_c,
                    };
                    // SAFETY: `tiles` built the pointers in bounds: `$m` input rows of
                    // `in_c` floats, a panel of `in_c * width` floats and `width` bias
                    // floats with `width >= cols` a multiple of 16 that is 32 exactly
                    // when `cols > 16`, and `$m` output rows with `cols` floats each.
                    if cols > 16 {
                        tile_avx512::<$m, 2>(&tile, clamped, lo, hi)
                    } else {
                        tile_avx512::<$m, 1>(&tile, clamped, lo, hi)
                    }
                }};
            }
            match m {
                8 => go!(8),
                7 => go!(7),
                6 => go!(6),
                5 => go!(5),
                4 => go!(4),
                3 => go!(3),
                2 => go!(2),
                _ => go!(1),
            }
        });
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(
        &self,
        input: &[f32],
        g: &PointwiseGeometry,
        clamp: Option<(f32, f32)>,
        out: &mut [MaybeUninit<f32>],
    ) {
        let (in_c, out_c) = (self.in_c, self.out_c);
        let (lo, hi) = clamp.unwrap_or((0.0, 0.0));
        let clamped = clamp.is_some();
        self.tiles::<MR_AVX2>(input, g, out, |m, rows, panel, bias, out, cols| {
            macro_rules! go {
                ($m:literal) => {{
                    let tile = Tile::<$m> {
                        rows: std::array::from_fn(|i| rows[i]),
                        panel,
                        bias,
                        out,
                        out_stride: out_c,
                        cols,
                        in_c,
                    };
                    // SAFETY: as in `run_avx512`, with vectors of 8 floats.
                    if cols > 8 {
                        tile_avx2::<$m, 2>(&tile, clamped, lo, hi)
                    } else {
                        tile_avx2::<$m, 1>(&tile, clamped, lo, hi)
                    }
                }};
            }
            match m {
                6 => go!(6),
                5 => go!(5),
                4 => go!(4),
                3 => go!(3),
                2 => go!(2),
                _ => go!(1),
            }
        });
    }
}

/// One tile of `M` rows x `NV` zmm vectors: accumulators start at the bias, take one FMA
/// per input channel and vector (the row's input broadcast times the panel's weights),
/// are clamped, and stored once; the last vector of a panel with fewer than `16 * NV`
/// valid channels is stored through a mask.
///
/// # Safety
/// AVX-512F available; `t.rows` each point at `t.in_c` readable floats; `t.panel` at
/// `t.in_c * 16 * NV` and `t.bias` at `16 * NV`; `t.out + i * t.out_stride` at `t.cols`
/// writable floats for `i < M`, with `16 * (NV - 1) < t.cols <= 16 * NV`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_avx512<const M: usize, const NV: usize>(
    t: &Tile<M>,
    clamped: bool,
    lo: f32,
    hi: f32,
) {
    use std::arch::x86_64::*;
    let width = 16 * NV;
    let mut acc = [[_mm512_setzero_ps(); NV]; M];
    for row in acc.iter_mut() {
        for (v, a) in row.iter_mut().enumerate() {
            *a = _mm512_loadu_ps(t.bias.add(16 * v));
        }
    }
    let mut w = t.panel;
    for k in 0..t.in_c {
        let wv: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(w.add(16 * v)));
        for (row, &x) in acc.iter_mut().zip(&t.rows) {
            let xb = _mm512_set1_ps(*x.add(k));
            for (a, &wv) in row.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(xb, wv, *a);
            }
        }
        w = w.add(width);
    }
    // Constant-bound index loops, fully unrolled, keep `acc` in registers (an iterator
    // chain here made LLVM keep it in memory and store every accumulator on every `k`).
    let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
    // Channels of the last vector that exist: 1..=16.
    let tail = t.cols - 16 * (NV - 1);
    let mask: __mmask16 = if tail == 16 {
        0xffff
    } else {
        (1u16 << tail) - 1
    };
    #[allow(clippy::needless_range_loop)]
    for i in 0..M {
        let dst = t.out.add(i * t.out_stride);
        for v in 0..NV {
            let mut a = acc[i][v];
            if clamped {
                // The accumulator second: a NaN passes through (`max`/`min` return
                // their second operand when either is NaN).
                a = _mm512_min_ps(hi, _mm512_max_ps(lo, a));
            }
            if v + 1 < NV {
                _mm512_storeu_ps(dst.add(16 * v), a);
            } else {
                _mm512_mask_storeu_ps(dst.add(16 * v), mask, a);
            }
        }
    }
}

/// [`tile_avx512`] with ymm vectors of 8 floats; the tail goes through `vmaskmovps`.
///
/// # Safety
/// AVX2 and FMA available; the pointers as for [`tile_avx512`] with `8` for `16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2<const M: usize, const NV: usize>(t: &Tile<M>, clamped: bool, lo: f32, hi: f32) {
    use std::arch::x86_64::*;
    let width = 8 * NV;
    let mut acc = [[_mm256_setzero_ps(); NV]; M];
    for row in acc.iter_mut() {
        for (v, a) in row.iter_mut().enumerate() {
            *a = _mm256_loadu_ps(t.bias.add(8 * v));
        }
    }
    let mut w = t.panel;
    for k in 0..t.in_c {
        let wv: [__m256; NV] = std::array::from_fn(|v| _mm256_loadu_ps(w.add(8 * v)));
        for (row, &x) in acc.iter_mut().zip(&t.rows) {
            let xb = _mm256_broadcast_ss(&*x.add(k));
            for (a, &wv) in row.iter_mut().zip(&wv) {
                *a = _mm256_fmadd_ps(xb, wv, *a);
            }
        }
        w = w.add(width);
    }
    let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
    let tail = t.cols - 8 * (NV - 1);
    // Lane j is stored when its mask's sign bit is set: lanes below `tail`.
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail as i32), lanes);
    // Index loops with constant bounds keep `acc` in registers (see `tile_avx512`).
    #[allow(clippy::needless_range_loop)]
    for i in 0..M {
        let dst = t.out.add(i * t.out_stride);
        for v in 0..NV {
            let mut a = acc[i][v];
            if clamped {
                // The accumulator second, so NaN passes through (see `tile_avx512`).
                a = _mm256_min_ps(hi, _mm256_max_ps(lo, a));
            }
            if v + 1 < NV || tail == 8 {
                _mm256_storeu_ps(dst.add(8 * v), a);
            } else {
                _mm256_maskstore_ps(dst.add(8 * v), mask, a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_cover_the_channels() {
        assert_eq!(panel_width(24, 0, 16), 32);
        assert_eq!(panel_width(40, 32, 16), 16);
        assert_eq!(panel_width(72, 64, 8), 8);
        assert_eq!(panel_width(5, 0, 8), 8);
        assert_eq!(panel_width(17, 16, 8), 8);
    }

    #[test]
    fn strided_rows_read_every_other_pixel() {
        let g = PointwiseGeometry {
            batch: 2,
            in_h: 3,
            in_w: 4,
            out_h: 2,
            out_w: 2,
            stride_h: 2,
            stride_w: 3,
        };
        assert!(g.is_valid() && !g.is_contiguous());
        let mut px = [0; 8];
        g.pixels(0, &mut px);
        assert_eq!(px, [0, 3, 8, 11, 12, 15, 20, 23]);
        let mut tail = [0; 3];
        g.pixels(3, &mut tail);
        assert_eq!(tail, [11, 12, 15]);
        assert!(PointwiseGeometry::dense(5).is_contiguous());
    }
}
