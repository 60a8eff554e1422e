//! Packed int8 DEPTHWISE_CONV_2D: the filter widened once per level, the input copied with
//! its padding made real, and the output loop the vector kernels (AVX-512, AVX2, NEON)
//! share. The per-level inner loops are in `x86.rs` and `neon.rs`.

#[cfg(target_arch = "aarch64")]
use super::neon;
#[cfg(target_arch = "x86_64")]
use super::x86;
use super::Epilogue;
use crate::kernels::int8::conv::{check_bias, check_len, ConvGeometry, ConvInt8};
use crate::kernels::simd::{self, Level};
use crate::kernels::KernelError;

/// Output pixels the vector depthwise kernels compute together along a row: they share
/// every weight load.
pub(super) const DEPTHWISE_PIXELS: usize = 4;

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
pub(super) unsafe fn depthwise_rows(
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
    ) -> Result<PackedDepthwise, KernelError> {
        let channels = self.rq.multipliers.len();
        let taps = k_h
            .checked_mul(k_w)
            .ok_or_else(|| KernelError::overflow("filter window", [k_h, k_w]))?;
        check_len(
            "filter",
            filter.len(),
            taps.checked_mul(channels)
                .ok_or_else(|| KernelError::overflow("filter", [k_h, k_w, channels]))?,
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
    pub fn run(&self, g: &ConvGeometry, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        if (g.k_h, g.k_w, g.out_c) != (self.k_h, self.k_w, self.channels) {
            return Err(KernelError::shape(
                "geometry's window x channels",
                format!(
                    "{}x{} over {}, as the filter was packed",
                    self.k_h, self.k_w, self.channels
                ),
                format!("{}x{} over {}", g.k_h, g.k_w, g.out_c),
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
            let params = neon::DepthwiseParams {
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
            unsafe { neon::depthwise(&params, out) };
        }
        Ok(())
    }
}

/// The input with the padding made real: every window of every output pixel lies inside,
/// padding cells hold the input zero point. `[batch, h, w, channels]`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) struct PaddedInput {
    pub(super) data: Vec<i8>,
    pub(super) h: usize,
    pub(super) w: usize,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl PaddedInput {
    /// `None` when the padded copy would be much larger than the input (huge padding
    /// or dilation in an odd model): the reference kernel needs no copy.
    pub(super) fn new(g: &ConvGeometry, input: &[i8], zero_point: i8) -> Option<Self> {
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
