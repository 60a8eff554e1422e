//! int8 RESIZE_BILINEAR on NHWC data, bit-exact with LiteRT's builtin kernel on x86
//! (ai-edge-litert 2.3.0).
//!
//! # What LiteRT runs
//!
//! `resize_bilinear.cc` registers the optimized kernel, whose int8 overload
//! (`optimized_ops::ResizeBilinear(..., const int8_t*, ...)`) forwards to
//! `reference_ops::ResizeBilinearInteger<int8_t>`: no floating point, coordinates in
//! fixed point with 10 fractional bits.
//!
//! * The axis scale is `round(1024 * in / out)` as `(1024 * in + out / 2) / out` in
//!   integers, or `(1024 * (in - 1) + (out - 1) / 2) / (out - 1)` with `align_corners`
//!   (and `out > 1`).
//! * Output index `i` maps to `s = i * scale`, or with `half_pixel_centers`
//!   `s = i * scale + scale / 2 - 512`. Lower neighbour `max(s / 1024, 0)`, upper
//!   `min((s + 1023) / 1024, in - 1)`, both with C's truncating division. The weights
//!   are `s - 1024 * lower` and `1024` minus that; near the top / left edge with half
//!   pixel centres `s` is negative, the weight goes negative, and lower = upper makes
//!   the pair sum to 1024 anyway.
//! * The four products (input value x weight_y x weight_x, in int64) sum to a value
//!   with 20 fractional bits, rounded to an integer *half away from zero* (LiteRT is
//!   built without `TFLITE_SINGLE_ROUNDING`, whose `(v + 2^19) >> 20` would round ties
//!   up; `resize_up_2x_half_pixel.npz` has dozens of negative ties that tell them
//!   apart) and stored as int8.
//!
//! # XNNPACK
//!
//! With [`Arithmetic::Xnnpack`] the op runs as LiteRT's default XNNPACK delegate runs it
//! (checked against LiteRT 2.3.0 on x86-64): coordinates in f32 (`in / out` per axis, or
//! `(in - 1) / (out - 1)` with `align_corners`; half-pixel centres add
//! `0.5 * scale - 0.5` and clamp to `[0, in - 1]`), the fractional parts turned into
//! 11-bit weights with round-to-nearest-even, and the interpolation done in int32 in two
//! passes (horizontal, then vertical, each `(a << 11) + (b - a) * w`), rounded by adding
//! 2^21 and shifting right by 22 (ties up).
//!
//! The values are not rescaled: LiteRT copies the quantized codes through, so the
//! output's scale and zero point are assumed equal to the input's (the converter makes
//! them so; LiteRT does not check it, and neither does this kernel).

use super::{check_int8_zero_point, check_scale, Arithmetic, QParams};
use crate::kernels::element::QuantizedElement;
use crate::kernels::KernelError;

/// Shapes of one RESIZE_BILINEAR: input `[batch, in_h, in_w, channels]`, output
/// `[batch, out_h, out_w, channels]` (`out_*` is the op's size input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResizeDims {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub channels: usize,
    pub out_h: usize,
    pub out_w: usize,
}

/// Prepared int8 RESIZE_BILINEAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResizeBilinearInt8 {
    align_corners: bool,
    half_pixel_centers: bool,
    arithmetic: Arithmetic,
}

/// One output row (or column) as XNNPACK's indirection sets it up: the two input
/// indices and the 11-bit weight of the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct XnnpackSource {
    lower: usize,
    upper: usize,
    weight: i32,
}

fn xnnpack_sources(
    input: usize,
    output: usize,
    align: bool,
    half_pixel: bool,
) -> Vec<XnnpackSource> {
    let adjust = usize::from(align && output != 1);
    // Sizes are bounded by MAX_SIZE (< 2^24), so they convert to f32 exactly.
    let scale = (input - adjust) as f32 / (output - adjust) as f32;
    let last = input - 1;
    let offset = 0.5 * scale - 0.5;
    (0..output)
        .map(|i| {
            let coordinate = if half_pixel && !align {
                (i as f32 * scale + offset).clamp(0.0, last as f32)
            } else {
                i as f32 * scale
            };
            // Non-negative, so truncation is the floor (as C's float-to-int cast).
            let lower = (coordinate as usize).min(last);
            let alpha = coordinate - lower as f32;
            XnnpackSource {
                lower,
                upper: (lower + 1).min(last),
                weight: (alpha * 2048.0).round_ties_even() as i32,
            }
        })
        .collect()
}

/// The source of one output row (or column): the 10-bit fixed-point coordinate and
/// the two neighbouring input indices, as TFLite's `ComputeInterpolationValuesInteger`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Source {
    scaled: i64,
    lower: usize,
    upper: usize,
}

/// TFLite's fixed-point sizes are int32: `1024 * size` and the scaled coordinates must
/// fit, which bounds sizes well above any real image.
const MAX_SIZE: usize = (i32::MAX as usize) / 2048;

fn axis_scale(input: usize, output: usize, align_corners: bool) -> i64 {
    let (i, o) = (input as i64, output as i64);
    if align_corners && output > 1 {
        (1024 * (i - 1) + (o - 1) / 2) / (o - 1)
    } else {
        (1024 * i + o / 2) / o
    }
}

/// The sources of every output index along one axis; errors where TFLite would read
/// outside the input (a lower neighbour past the end, which only extreme upsampling
/// with a rounded-down scale produces).
fn sources(
    input: usize,
    output: usize,
    align: bool,
    half_pixel: bool,
) -> Result<Vec<Source>, KernelError> {
    let scale = axis_scale(input, output, align);
    let last = input as i64 - 1;
    (0..output)
        .map(|i| {
            let i = i as i64;
            let scaled = if half_pixel {
                i * scale + scale / 2 - (1 << 9)
            } else {
                i * scale
            };
            // Rust's `/` truncates toward zero like C's.
            let lower = (scaled / 1024).max(0);
            let upper = ((scaled + 1023) / 1024).min(last);
            if lower > last {
                return Err(KernelError::shape(
                    "TFLite's fixed-point source coordinate (in 1024ths)",
                    format!(
                        "at most {} for an input of {input} resized to {output}",
                        last * 1024
                    ),
                    scaled,
                ));
            }
            Ok(Source {
                scaled,
                lower: lower as usize,
                upper: upper as usize,
            })
        })
        .collect()
}

/// The checks of [`ResizeBilinearInt8::run`], on the slice lengths.
fn check_dims(d: &ResizeDims, input_len: usize, out_len: usize) -> Result<(), KernelError> {
    if d.in_h == 0 || d.in_w == 0 || d.out_h == 0 || d.out_w == 0 {
        return Err(KernelError::shape(
            "resize dimensions",
            "positive input and output heights and widths",
            format!("{d:?}"),
        ));
    }
    if [d.in_h, d.in_w, d.out_h, d.out_w]
        .iter()
        .any(|&s| s > MAX_SIZE)
    {
        return Err(KernelError::shape(
            "resize dimensions",
            format!("heights and widths of at most {MAX_SIZE} (TFLite's fixed-point range)"),
            format!("{d:?}"),
        ));
    }
    let product = |dims: &[usize]| {
        dims.iter()
            .try_fold(1usize, |acc, &x| acc.checked_mul(x))
            .ok_or_else(|| KernelError::overflow("resize dimensions", d))
    };
    let (want_in, want_out) = (
        product(&[d.batch, d.in_h, d.in_w, d.channels])?,
        product(&[d.batch, d.out_h, d.out_w, d.channels])?,
    );
    for (what, got, want) in [("input", input_len, want_in), ("output", out_len, want_out)] {
        if got != want {
            return Err(KernelError::size(what, want, got));
        }
    }
    Ok(())
}

impl ResizeBilinearInt8 {
    /// `input` and `output` are checked for sane values only: LiteRT does not rescale
    /// (see the module docs). Errors on `align_corners` with `half_pixel_centers`, as
    /// TFLite's `Prepare` does.
    pub fn new(
        input: QParams,
        output: QParams,
        align_corners: bool,
        half_pixel_centers: bool,
    ) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_int8_zero_point("input zero point", input)?;
        check_scale("output scale", output)?;
        check_int8_zero_point("output zero point", output)?;
        if align_corners && half_pixel_centers {
            return Err(KernelError::Options {
                what: "align_corners with half_pixel_centers",
                found: "both set".into(),
                allowed: "at most one of them may be set (TFLite's Prepare refuses both)",
            });
        }
        Ok(ResizeBilinearInt8 {
            align_corners,
            half_pixel_centers,
            arithmetic: Arithmetic::Builtin,
        })
    }

    /// Interpolate like `arithmetic` (LiteRT's builtin kernel unless told otherwise).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.arithmetic = arithmetic;
        self
    }

    /// XNNPACK's interpolation (module docs), once the shapes are checked.
    fn run_xnnpack(&self, d: &ResizeDims, input: &[i8], out: &mut [i8]) {
        let ys = xnnpack_sources(d.in_h, d.out_h, self.align_corners, self.half_pixel_centers);
        let xs = xnnpack_sources(d.in_w, d.out_w, self.align_corners, self.half_pixel_centers);
        let c = d.channels;
        if c == 0 {
            return;
        }
        let mut dst = out.chunks_exact_mut(c);
        for b in 0..d.batch {
            let image = &input[b * d.in_h * d.in_w * c..][..d.in_h * d.in_w * c];
            for y in &ys {
                for x in &xs {
                    let at = |row: usize, col: usize| &image[(row * d.in_w + col) * c..][..c];
                    let (tl, tr) = (at(y.lower, x.lower), at(y.lower, x.upper));
                    let (bl, br) = (at(y.upper, x.lower), at(y.upper, x.upper));
                    let Some(px) = dst.next() else {
                        return;
                    };
                    for (ch, o) in px.iter_mut().enumerate() {
                        let v = |p: &[i8]| i32::from(p[ch]);
                        // |values| < 2^8, weights <= 2^11: at most 2^30, no overflow.
                        let top = (v(tl) << 11) + (v(tr) - v(tl)) * x.weight;
                        let bottom = (v(bl) << 11) + (v(br) - v(bl)) * x.weight;
                        let acc = (top << 11) + (bottom - top) * y.weight;
                        *o = ((acc + (1 << 21)) >> 22) as i8;
                    }
                }
            }
        }
    }

    /// Resizes `input` (NHWC, `d`'s input shape) into `out` (`d`'s output shape).
    /// Errors (leaving `out` untouched) on empty input or output images, sizes past
    /// TFLite's int32 fixed-point range, or slices of the wrong length.
    pub fn run(&self, d: &ResizeDims, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        check_dims(d, input.len(), out.len())?;
        if self.arithmetic == Arithmetic::Xnnpack {
            self.run_xnnpack(d, input, out);
            return Ok(());
        }
        self.interpolate(d, input, out)
    }

    /// [`ResizeBilinearInt8::run`] on the int16 codes of a 16x8 model: LiteRT's int16
    /// kernel is the same `ResizeBilinearInteger` (XNNPACK runs no int16 resize, so the
    /// arithmetic choice does not apply).
    pub fn run_int16(
        &self,
        d: &ResizeDims,
        input: &[i16],
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        check_dims(d, input.len(), out.len())?;
        self.interpolate(d, input, out)
    }

    /// LiteRT's builtin interpolation (module docs), once the shapes are checked.
    fn interpolate<T: QuantizedElement>(
        &self,
        d: &ResizeDims,
        input: &[T],
        out: &mut [T],
    ) -> Result<(), KernelError> {
        let ys = sources(d.in_h, d.out_h, self.align_corners, self.half_pixel_centers)?;
        let xs = sources(d.in_w, d.out_w, self.align_corners, self.half_pixel_centers)?;
        let c = d.channels;
        if c == 0 || d.batch == 0 {
            return Ok(());
        }
        let mut dst = out.chunks_exact_mut(c);
        for b in 0..d.batch {
            let image = &input[b * d.in_h * d.in_w * c..][..d.in_h * d.in_w * c];
            for y in &ys {
                let wy = y.scaled - 1024 * y.lower as i64;
                for x in &xs {
                    let wx = x.scaled - 1024 * x.lower as i64;
                    let at = |row: usize, col: usize| &image[(row * d.in_w + col) * c..][..c];
                    let (p00, p10) = (at(y.lower, x.lower), at(y.upper, x.lower));
                    let (p01, p11) = (at(y.lower, x.upper), at(y.upper, x.upper));
                    let Some(px) = dst.next() else {
                        return Ok(());
                    };
                    for (ch, o) in px.iter_mut().enumerate() {
                        let v = |p: &[T]| i64::from(p[ch].to_i32());
                        let sum = v(p00) * (1024 - wy) * (1024 - wx)
                            + v(p10) * wy * (1024 - wx)
                            + v(p01) * (1024 - wy) * wx
                            + v(p11) * wy * wx;
                        let half = if sum > 0 { 1 << 19 } else { -(1 << 19) };
                        // A weighted mean of codes: always within their type.
                        *o = T::saturate(((sum + half) / (1 << 20)) as i32);
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

    fn op(align: bool, half: bool) -> ResizeBilinearInt8 {
        let q = QParams::new(0.1, 0);
        ResizeBilinearInt8::new(q, q, align, half).unwrap()
    }

    fn row(input: &[i8], out_w: usize, align: bool, half: bool) -> Vec<i8> {
        let d = ResizeDims {
            batch: 1,
            in_h: 1,
            in_w: input.len(),
            channels: 1,
            out_h: 1,
            out_w,
        };
        let mut out = vec![0i8; out_w];
        op(align, half).run(&d, input, &mut out).unwrap();
        out
    }

    #[test]
    fn fixed_point_coordinates() {
        // 2 -> 4: scale 512; plain sources 0, 512, 1024, 1536 (upper clamped to 1).
        assert_eq!(axis_scale(2, 4, false), 512);
        let s = sources(2, 4, false, false).unwrap();
        assert_eq!(
            s.iter()
                .map(|s| (s.scaled, s.lower, s.upper))
                .collect::<Vec<_>>(),
            [(0, 0, 0), (512, 0, 1), (1024, 1, 1), (1536, 1, 1)]
        );
        // Half pixel: i * 512 + 256 - 512 = -256, 256, 768, 1280.
        let s = sources(2, 4, false, true).unwrap();
        assert_eq!(
            s.iter()
                .map(|s| (s.scaled, s.lower, s.upper))
                .collect::<Vec<_>>(),
            [(-256, 0, 0), (256, 0, 1), (768, 0, 1), (1280, 1, 1)]
        );
        // Align corners 2 -> 4: (1024 + 1) / 3 = 341.
        assert_eq!(axis_scale(2, 4, true), 341);
        // 3 -> 2 rounds 1536 exactly; 5 -> 3 rounds 1706.67 up to 1707.
        assert_eq!(axis_scale(3, 2, false), 1536);
        assert_eq!(axis_scale(5, 3, false), 1707);
        // Align corners with one output falls back to the plain scale.
        assert_eq!(axis_scale(5, 1, true), 5120);
    }

    /// [0, 10] upsampled to 4 under each rule, by hand from the coordinates above.
    #[test]
    fn row_upsampling_by_hand() {
        assert_eq!(row(&[0, 10], 4, false, false), [0, 5, 10, 10]);
        // Half pixel: 0 (negative weight on a clamped pair), 2.5 -> 3, 7.5 -> 8, 10.
        assert_eq!(row(&[0, 10], 4, false, true), [0, 3, 8, 10]);
        // Align corners: 341 / 1024 * 10 = 3.33 -> 3, 682 -> 6.66 -> 7, 1023 -> 9.99 -> 10.
        assert_eq!(row(&[0, 10], 4, true, false), [0, 3, 7, 10]);
        // Negative ties round away from zero: -2.5 -> -3, -7.5 -> -8.
        assert_eq!(row(&[0, -10], 4, false, true), [0, -3, -8, -10]);
    }

    /// 2x2 -> 3x3 with align corners: the centre averages all four pixels.
    #[test]
    fn bilinear_centre() {
        let d = ResizeDims {
            batch: 1,
            in_h: 2,
            in_w: 2,
            channels: 2,
            out_h: 3,
            out_w: 3,
        };
        let input = [0, 100, 10, 100, 20, -100, 31, -100];
        let mut out = [0i8; 18];
        op(true, false).run(&d, &input, &mut out).unwrap();
        // Channel 0 centre: (0 + 10 + 20 + 31) / 4 = 15.25 -> 15; channel 1: 0.
        assert_eq!(&out[8..10], &[15, 0]);
        // Corners are copied.
        assert_eq!(&out[0..2], &[0, 100]);
        assert_eq!(&out[16..18], &[31, -100]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let q = QParams::new(0.1, 0);
        assert!(ResizeBilinearInt8::new(q, q, true, true).is_err());
        assert!(ResizeBilinearInt8::new(QParams::new(0.0, 0), q, false, false).is_err());
        assert!(ResizeBilinearInt8::new(q, QParams::new(0.1, 300), false, false).is_err());
        let d = ResizeDims {
            batch: 1,
            in_h: 2,
            in_w: 2,
            channels: 1,
            out_h: 3,
            out_w: 3,
        };
        let r = op(false, false);
        assert!(r.run(&d, &[0; 4], &mut [0; 9]).is_ok());
        assert!(r.run(&d, &[0; 3], &mut [0; 9]).is_err());
        assert!(r.run(&d, &[0; 4], &mut [0; 8]).is_err());
        for bad in [
            ResizeDims { out_h: 0, ..d },
            ResizeDims { in_w: 0, ..d },
            ResizeDims {
                out_w: usize::MAX,
                ..d
            },
            ResizeDims {
                batch: usize::MAX,
                ..d
            },
        ] {
            assert!(r.run(&bad, &[0; 4], &mut [0; 9]).is_err(), "{bad:?}");
        }
        // 2 -> 3000: the scale rounds down to 1, and the last outputs' lower
        // neighbour (2999 / 1024 = 2) lies past the input, where TFLite reads out of
        // bounds.
        let wide = ResizeDims {
            in_w: 2,
            out_w: 3000,
            in_h: 1,
            out_h: 1,
            ..d
        };
        assert!(r.run(&wide, &[0; 2], &mut [0; 3000]).is_err());
    }
}
