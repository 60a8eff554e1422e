//! 16x8 LOGISTIC and TANH, bit-exact with LiteRT's builtin kernels, which for a general
//! input scale interpolate a 256-entry table of the sigmoid.
//!
//! # What LiteRT computes
//!
//! `Prepare` (both ops): the input's zero point must be 0 and the output scale 2^-15 with
//! zero point 0. Unless the input scale is a power of two with `15 - 3 + log2(scale)` equal
//! to 0 or 1 (then LiteRT runs a gemmlowp fixed-point kernel instead, not modelled here:
//! [`LutActivation::new`] refuses it), the input is rescaled to steps of 1 / (3 * 4096):
//! `multiplier = f64(scale) * 12288`, doubled (counting `left_shift`) while it is at most
//! 32767 / 2 and the shift at most 30, then truncated to an integer.
//!
//! Each element: `v = (x * multiplier + 2^(left_shift - 1)) >> left_shift` (no rounding
//! term at shift 0), then on `|v|`:
//!
//! * LOGISTIC: entry `|v| >> 9`, interpolated with the low 9 bits, in 0.25 fixed point;
//!   an entry index of 255 or more saturates at `0x7FFF << 10`. A negative `v` mirrors
//!   (`2^25 - r`), then `(r + 2^9 [- 1 if negative]) >> 10`.
//! * TANH (`tanh(x) = 2 sigmoid(2x) - 1`): entry `|v| >> 8`, interpolated with the low 8
//!   bits; saturation at `0xFFFF << 8`; the result is `+-(r - 2^23) + 2^7 [- 1 if
//!   negative]`, shifted right by 8 (arithmetically).
//!
//! The table holds `sigmoid(i / 24)` in 0.16 fixed point, but not as the rounding of any
//! simple formula: several entries differ from `round(65536 * sigmoid(i / 24))` by one.
//! So [`SIGMOID_TABLE`] is *measured from LiteRT 2.3.0*: with input scale 1/6144 TANH
//! rescales by exactly 2 and an input of `128 * i` reads entry `i` uninterpolated
//! (`tests/fixtures/kernels/int16_tanh_table_probe.npz`, made by
//! `scripts/kernel_vectors/make_int16_vectors.py`); `tests/int16_kernels.rs` re-derives
//! the table from that vector and compares.

use super::{check_symmetric, checked_log2, QParams};
/// RELU / RELU6 and LEAKY_RELU rescale with the int8 kernels' arithmetic within the int16
/// range: `Relu::new_int16` / `Relu::run_int16`, `LeakyRelu::run_int16`.
pub use crate::kernels::int8::unary::{LeakyRelu, Relu, ReluKind};
use crate::kernels::KernelError;

/// LiteRT's int16 sigmoid table (module docs: measured, not computed).
#[rustfmt::skip]
pub const SIGMOID_TABLE: [u16; 256] = [32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535];

/// Which function the table serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LutFunction {
    Logistic,
    Tanh,
}

/// Prepared 16x8 LOGISTIC or TANH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LutActivation {
    function: LutFunction,
    multiplier: i32,
    left_shift: u32,
}

impl LutActivation {
    /// Errors on a nonzero zero point, an output scale other than 2^-15, or a
    /// power-of-two input scale of 2^-12 or 2^-11 (LiteRT's fixed-point path).
    pub fn new(
        function: LutFunction,
        input: QParams,
        output: QParams,
    ) -> Result<Self, KernelError> {
        check_symmetric("input scale", "input zero point", input)?;
        check_symmetric("output scale", "output zero point", output)?;
        let (out_log2, out_pot) = checked_log2(output.scale);
        if !(out_pot && out_log2 == -15) {
            return Err(KernelError::params(
                "output scale",
                output.scale,
                "2^-15 (1/32768), as LiteRT's int16 LOGISTIC and TANH require",
            ));
        }
        let (in_log2, in_pot) = checked_log2(input.scale);
        if in_pot && (in_log2 == -12 || in_log2 == -11) {
            return Err(KernelError::Options {
                what: "input scale",
                found: format!("2^{in_log2}"),
                allowed: "a scale other than 2^-12 and 2^-11, for which LiteRT switches to \
                          its gemmlowp fixed-point kernel (not modelled)",
            });
        }
        let mut multiplier = f64::from(input.scale) * 4096.0 * 3.0;
        let mut left_shift = 0u32;
        while multiplier <= 32767.0 / 2.0 && left_shift <= 30 {
            left_shift += 1;
            multiplier *= 2.0;
        }
        Ok(LutActivation {
            function,
            multiplier: multiplier as i32,
            left_shift,
        })
    }

    /// The table-input rescale `Prepare` chose: (multiplier, left shift).
    pub fn rescale(&self) -> (i32, u32) {
        (self.multiplier, self.left_shift)
    }

    pub fn run(&self, input: &[i16], out: &mut [i16]) -> Result<(), KernelError> {
        if input.len() != out.len() {
            return Err(KernelError::size("output", input.len(), out.len()));
        }
        let round = if self.left_shift > 0 {
            1i64 << (self.left_shift - 1)
        } else {
            0
        };
        for (o, &x) in out.iter_mut().zip(input) {
            // In i64: LiteRT's int32 product only overflows for scales no model has.
            let v = ((i64::from(x) * i64::from(self.multiplier) + round) >> self.left_shift) as i32;
            *o = match self.function {
                LutFunction::Logistic => logistic(v),
                LutFunction::Tanh => tanh(v),
            };
        }
        Ok(())
    }
}

/// The table interpolated at `magnitude`, whose low `bits` bits are the fraction, or
/// `None` past the table's end.
fn interpolate(magnitude: u32, bits: u32) -> Option<u32> {
    let index = (magnitude >> bits) as usize;
    if index >= 255 {
        return None;
    }
    let (a, b) = (
        u32::from(SIGMOID_TABLE[index]),
        u32::from(SIGMOID_TABLE[index + 1]),
    );
    let fraction = magnitude & ((1 << bits) - 1);
    // The table rises, so `b - a` does not wrap.
    Some((a << bits) + fraction * (b - a))
}

fn logistic(v: i32) -> i16 {
    let r = interpolate(v.unsigned_abs(), 9).unwrap_or(0x7FFF << 10);
    let r = if v >= 0 {
        r + (1 << 9)
    } else {
        (1u32 << 25) - r + (1 << 9) - 1
    };
    (r >> 10) as i16
}

fn tanh(v: i32) -> i16 {
    let r = interpolate(v.unsigned_abs(), 8).unwrap_or(0xFFFF << 8) as i32;
    let r = if v >= 0 {
        r - (1 << 23) + (1 << 7)
    } else {
        -r + (1 << 23) + (1 << 7) - 1
    };
    (r >> 8) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: QParams = QParams {
        scale: 1.0 / 32768.0,
        zero_point: 0,
    };

    #[test]
    fn rescale_by_hand() {
        // 1/6144 * 12288 = 2, doubled 13 times to 16384: (x * 2^14 + 2^12) >> 13 = 2x.
        let t = LutActivation::new(LutFunction::Tanh, QParams::new(1.0 / 6144.0, 0), OUT).unwrap();
        assert_eq!(t.rescale(), (16384, 13));
    }

    #[test]
    fn zero_and_saturation_by_hand() {
        let q = QParams::new(1.0 / 6144.0, 0);
        let t = LutActivation::new(LutFunction::Tanh, q, OUT).unwrap();
        let mut out = [0i16; 3];
        // tanh(0): entry 0 is 2^15: (2^23 - 2^23 + 2^7) >> 8 = 0. Far out: +-(0xFFFF << 8
        // - 2^23) + 2^7 [- 1] >> 8 = 32767 and -32767.
        t.run(&[0, 32767, -32768], &mut out).unwrap();
        assert_eq!(out, [0, 32767, -32767]);
        // LOGISTIC reads entry |v| >> 9, so saturating needs a coarser input: scale 0.01
        // gives multiplier 0.01 * 12288 = 122.88, doubled 8 times to 31457 (truncated), and
        // 32767 * 31457 >> 8 is far past entry 255. sigmoid(0): (2^15 << 9 + 2^9) >> 10 =
        // 2^14 = 0.5; saturated: 0x7FFF and (2^25 - (0x7FFF << 10) + 2^9 - 1) >> 10 = 1.
        let l = LutActivation::new(LutFunction::Logistic, QParams::new(0.01, 0), OUT).unwrap();
        assert_eq!(l.rescale(), (31457, 8));
        l.run(&[0, 32767, -32768], &mut out).unwrap();
        assert_eq!(out, [16384, 32767, 1]);
    }

    #[test]
    fn the_fixed_point_scales_and_other_output_scales_are_refused() {
        let pot = QParams::new(2f32.powi(-12), 0);
        assert!(matches!(
            LutActivation::new(LutFunction::Logistic, pot, OUT),
            Err(KernelError::Options { .. })
        ));
        assert!(LutActivation::new(
            LutFunction::Tanh,
            QParams::new(0.001, 0),
            QParams::new(0.001, 0)
        )
        .is_err());
    }
}
