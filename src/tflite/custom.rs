//! The custom ops qdbg runs: MediaPipe's `Convolution2DTransposeBias`,
//! `MaxPoolingWithArgmax2D` and `MaxUnpooling2D`, which LiteRT's default CPU runtime runs
//! (its XNNPACK delegate claims them; without the delegate LiteRT has no kernel for them).
//!
//! Their `custom_options` are not flexbuffers: the runtimes copy the bytes over a C struct
//! of TFLite's builtin options, little-endian 32-bit fields in declaration order:
//! - `TfLiteTransposeConvParams`: padding, stride_width, stride_height (then activation
//!   and quantized_bias_type in newer headers, which neither runtime reads for this op);
//! - `TfLitePoolParams`: padding, stride_width, stride_height, filter_width,
//!   filter_height, activation, then four computed-padding fields the runtime overwrites.
//!
//! Padding is TFLite's enum: 0 unknown, 1 SAME, 2 VALID. Fields past what the runtimes read
//! may be missing (LiteRT copies at most the bytes present and zeroes the rest), so only
//! the fields that matter are required. The bytes are kept as read and written back as
//! they are.

use crate::graph::{ArgmaxPoolAttrs, FusedActivation, Op, Padding, TransposeConvBiasAttrs};

pub const TRANSPOSE_CONV_BIAS: &str = "Convolution2DTransposeBias";
pub const MAX_POOL_ARGMAX: &str = "MaxPoolingWithArgmax2D";
pub const MAX_UNPOOL: &str = "MaxUnpooling2D";

/// Parses a custom op qdbg knows; `Ok(None)` for any other custom code.
pub fn parse_custom(code: &str, options: Option<&[u8]>) -> Result<Option<Op>, String> {
    let options = options.unwrap_or_default();
    let op = match code {
        TRANSPOSE_CONV_BIAS => {
            let f = Fields::new(code, options, 3, "TfLiteTransposeConvParams")?;
            Op::Convolution2DTransposeBias(TransposeConvBiasAttrs {
                padding: f.padding()?,
                stride_w: f.positive(1, "stride_width")?,
                stride_h: f.positive(2, "stride_height")?,
                custom_options: options.to_vec(),
            })
        }
        MAX_POOL_ARGMAX | MAX_UNPOOL => {
            let f = Fields::new(code, options, 5, "TfLitePoolParams")?;
            let attrs = ArgmaxPoolAttrs {
                padding: f.padding()?,
                stride_w: f.positive(1, "stride_width")?,
                stride_h: f.positive(2, "stride_height")?,
                filter_w: f.positive(3, "filter_width")?,
                filter_h: f.positive(4, "filter_height")?,
                activation: f.activation(5)?,
                custom_options: options.to_vec(),
            };
            if code == MAX_POOL_ARGMAX {
                Op::MaxPoolingWithArgmax2D(attrs)
            } else {
                Op::MaxUnpooling2D(attrs)
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(op))
}

/// The leading little-endian int32 fields of a C struct copied from `custom_options`.
struct Fields<'a> {
    code: &'a str,
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Checks that the first `required` fields are present.
    fn new(
        code: &'a str,
        bytes: &'a [u8],
        required: usize,
        c_struct: &str,
    ) -> Result<Self, String> {
        if bytes.len() < required * 4 {
            return Err(format!(
                "custom_options has {} bytes, but {code} reads them as TFLite's {c_struct} and \
                 needs at least {} (its first {required} int32 fields){}",
                bytes.len(),
                required * 4,
                flexbuffer_hint(bytes)
            ));
        }
        Ok(Fields { code, bytes })
    }

    /// Field `i`, if the options reach that far.
    fn get(&self, i: usize) -> Option<i32> {
        let b = self.bytes.get(i * 4..i * 4 + 4)?;
        Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn required(&self, i: usize) -> i32 {
        // `new` checked that the required fields are present; 0 is never valid for them.
        self.get(i).unwrap_or(0)
    }

    fn padding(&self) -> Result<Padding, String> {
        match self.required(0) {
            1 => Ok(Padding::Same),
            2 => Ok(Padding::Valid),
            other => Err(format!(
                "custom_options' padding field is {other}, neither SAME (1) nor VALID (2){}",
                flexbuffer_hint(self.bytes)
            )),
        }
    }

    /// Strides and filter sizes: at least 1, and small enough that a corrupt value cannot
    /// size an allocation (real models use single digits).
    fn positive(&self, i: usize, what: &str) -> Result<usize, String> {
        match self.required(i) {
            v @ 1..=4096 => Ok(v as usize),
            v => Err(format!(
                "custom_options' {what} is {v}; {} needs 1 to 4096{}",
                self.code,
                flexbuffer_hint(self.bytes)
            )),
        }
    }

    fn activation(&self, i: usize) -> Result<FusedActivation, String> {
        Ok(match self.get(i).unwrap_or(0) {
            0 => FusedActivation::None,
            1 => FusedActivation::Relu,
            2 => FusedActivation::ReluN1To1,
            3 => FusedActivation::Relu6,
            4 => FusedActivation::Tanh,
            5 => FusedActivation::SignBit,
            other => {
                return Err(format!(
                    "custom_options' activation field is {other}, not a TFLite fused activation"
                ))
            }
        })
    }
}

/// TensorFlow has ops of the same names with flexbuffer options (its "perception" ops,
/// int32 indices flattened over the whole image), which LiteRT does not register: say so
/// when the bytes look like one.
fn flexbuffer_hint(bytes: &[u8]) -> &'static str {
    let has = |key: &[u8]| bytes.windows(key.len()).any(|w| w == key);
    if has(b"ksize") || has(b"strides") || has(b"padding") {
        " (these options look like flexbuffers: TensorFlow's variant of the op, which \
         LiteRT's runtime does not run; qdbg runs MediaPipe's, whose options are the raw C \
         struct)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn transpose_conv_bias_reads_the_twelve_bytes_converters_write() {
        let bytes = ints(&[1, 2, 3]);
        let Some(Op::Convolution2DTransposeBias(a)) =
            parse_custom(TRANSPOSE_CONV_BIAS, Some(&bytes)).unwrap()
        else {
            panic!("not parsed")
        };
        assert_eq!((a.padding, a.stride_w, a.stride_h), (Padding::Same, 2, 3));
        assert_eq!(a.custom_options, bytes);
    }

    #[test]
    fn pool_params_take_the_full_struct_or_its_leading_fields() {
        let full = ints(&[2, 2, 3, 4, 5, 0, 0, 0, 0, 0]);
        let Some(Op::MaxUnpooling2D(a)) = parse_custom(MAX_UNPOOL, Some(&full)).unwrap() else {
            panic!("not parsed")
        };
        assert_eq!(
            (a.padding, a.stride_w, a.stride_h, a.filter_w, a.filter_h),
            (Padding::Valid, 2, 3, 4, 5)
        );
        let short = ints(&[1, 2, 2, 2, 2]);
        let Some(Op::MaxPoolingWithArgmax2D(a)) =
            parse_custom(MAX_POOL_ARGMAX, Some(&short)).unwrap()
        else {
            panic!("not parsed")
        };
        assert_eq!(a.activation, FusedActivation::None);
    }

    #[test]
    fn malformed_options_say_what_is_wrong() {
        let e = parse_custom(MAX_POOL_ARGMAX, Some(&ints(&[1, 2, 2]))).unwrap_err();
        assert!(e.contains("12 bytes") && e.contains("at least 20"), "{e}");
        let e = parse_custom(MAX_POOL_ARGMAX, None).unwrap_err();
        assert!(e.contains("0 bytes"), "{e}");
        let e = parse_custom(TRANSPOSE_CONV_BIAS, Some(&ints(&[3, 2, 2]))).unwrap_err();
        assert!(e.contains("padding field is 3"), "{e}");
        let e = parse_custom(MAX_UNPOOL, Some(&ints(&[1, 2, 0, 2, 2]))).unwrap_err();
        assert!(e.contains("stride_height is 0"), "{e}");
        let e = parse_custom(MAX_UNPOOL, Some(&ints(&[1, 2, 2, 2, -7]))).unwrap_err();
        assert!(e.contains("filter_height is -7"), "{e}");
        let mut flex = b"include_batch_in_index\0ksize\0padding\0".to_vec();
        flex.extend_from_slice(&[0; 8]);
        let e = parse_custom(MAX_POOL_ARGMAX, Some(&flex)).unwrap_err();
        assert!(e.contains("flexbuffers"), "{e}");
    }

    #[test]
    fn other_custom_codes_are_left_to_the_caller() {
        assert_eq!(parse_custom("TFLite_Detection_PostProcess", None), Ok(None));
    }
}
