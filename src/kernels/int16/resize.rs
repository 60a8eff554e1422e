//! 16x8 RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR. Neither rescales: LiteRT copies or
//! interpolates the codes, and the converter gives input and output one quantization.
//!
//! * RESIZE_BILINEAR: LiteRT's int16 kernel is int8's `ResizeBilinearInteger` (10-bit
//!   fixed-point coordinates), so [`ResizeBilinearInt8::run_int16`] is the int16 kernel.
//! * RESIZE_NEAREST_NEIGHBOR: TFLite's reference index rule, computed in f32 as there:
//!   the axis scale is `in / out` (or `(in - 1) / (out - 1)` with `align_corners` and
//!   `out > 1`); output index `i` reads `floor((i + offset) * scale)` (`round`, half away
//!   from zero, with `align_corners`), `offset` 0.5 with `half_pixel_centers`, else 0,
//!   capped at `in - 1` (and at 0 from below with half-pixel centres). Written over
//!   [`QuantizedElement`], so it serves int8 codes as well.

pub use crate::kernels::int8::resize::{ResizeBilinearInt8, ResizeDims};

use crate::kernels::element::QuantizedElement;
use crate::kernels::KernelError;

/// Prepared RESIZE_NEAREST_NEIGHBOR (any quantized element type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResizeNearest {
    align_corners: bool,
    half_pixel_centers: bool,
}

impl ResizeNearest {
    pub fn new(align_corners: bool, half_pixel_centers: bool) -> Self {
        ResizeNearest {
            align_corners,
            half_pixel_centers,
        }
    }

    /// The input index each output index of one axis reads.
    fn sources(&self, input: usize, output: usize) -> Vec<usize> {
        let scale = if self.align_corners && output > 1 {
            (input - 1) as f32 / (output - 1) as f32
        } else {
            input as f32 / output as f32
        };
        let offset = if self.half_pixel_centers { 0.5f32 } else { 0.0 };
        (0..output)
            .map(|i| {
                let pos = (i as f32 + offset) * scale;
                let index = if self.align_corners {
                    pos.round()
                } else {
                    pos.floor()
                } as i64;
                index.clamp(0, input as i64 - 1) as usize
            })
            .collect()
    }

    /// Resizes `input` (NHWC, `d`'s input shape) into `out` (`d`'s output shape).
    pub fn run<T: QuantizedElement>(
        &self,
        d: &ResizeDims,
        input: &[T],
        out: &mut [T],
    ) -> Result<(), KernelError> {
        if d.in_h == 0 || d.in_w == 0 {
            return Err(KernelError::shape(
                "resize input",
                "a positive height and width",
                format!("{d:?}"),
            ));
        }
        let product = |dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |acc, &x| acc.checked_mul(x))
                .ok_or_else(|| KernelError::overflow("resize dimensions", d))
        };
        let want_in = product(&[d.batch, d.in_h, d.in_w, d.channels])?;
        let want_out = product(&[d.batch, d.out_h, d.out_w, d.channels])?;
        if input.len() != want_in {
            return Err(KernelError::size("input", want_in, input.len()));
        }
        if out.len() != want_out {
            return Err(KernelError::size("output", want_out, out.len()));
        }
        let c = d.channels;
        if c == 0 {
            return Ok(());
        }
        let (ys, xs) = (self.sources(d.in_h, d.out_h), self.sources(d.in_w, d.out_w));
        let mut dst = out.chunks_exact_mut(c);
        for b in 0..d.batch {
            for &y in &ys {
                for &x in &xs {
                    let src = &input[((b * d.in_h + y) * d.in_w + x) * c..][..c];
                    if let Some(px) = dst.next() {
                        px.copy_from_slice(src);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_indices_by_hand() {
        // 3 -> 5, no options: scale 0.6, floor(i * 0.6) = 0, 0, 1, 1, 2.
        let plain = ResizeNearest::new(false, false);
        assert_eq!(plain.sources(3, 5), [0, 0, 1, 1, 2]);
        // Half-pixel centres: floor((i + 0.5) * 0.6) = 0, 0, 1, 2, 2.
        assert_eq!(
            ResizeNearest::new(false, true).sources(3, 5),
            [0, 0, 1, 2, 2]
        );
        // align_corners: scale 2 / 4 = 0.5, round(i * 0.5) = 0, 1 (0.5 away), 1, 2 (1.5), 2.
        assert_eq!(
            ResizeNearest::new(true, false).sources(3, 5),
            [0, 1, 1, 2, 2]
        );
        let d = ResizeDims {
            batch: 1,
            in_h: 1,
            in_w: 3,
            channels: 1,
            out_h: 1,
            out_w: 5,
        };
        let mut out = [0i16; 5];
        plain.run(&d, &[-7i16, 300, 32000], &mut out).unwrap();
        assert_eq!(out, [-7, -7, 300, 300, 32000]);
    }
}
