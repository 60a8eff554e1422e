//! int8 GELU, bit-exact with LiteRT 2.3.0's builtin kernel on x86.
//!
//! GELU (`activations.cc`): a 256-entry table filled from float math
//! (`LUTPopulate`), with `0.5 x (1 + tanhf(sqrt(2/pi) (x + 0.044715 x^3)))` or
//! `0.5 x erfcf(-x / sqrt 2)`; both call the platform's libm, as LiteRT does.

use super::{check_scale, Lut, QParams};
use crate::kernels::KernelError;

mod libm {
    extern "C" {
        fn erfcf(x: f32) -> f32;
    }

    /// The platform libm's `erfcf`, which LiteRT's `std::erfc(float)` calls.
    pub fn erfc(x: f32) -> f32 {
        // SAFETY: `erfcf` is a pure C99 libm function (libm is linked by std on
        // every supported target); every f32 is a valid argument.
        unsafe { erfcf(x) }
    }
}

/// `reference_ops::GeluTransformApproximate`, every step in float.
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    let sqrt_2_over_pi =
        (std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2) as f32;
    0.5 * x * (1.0 + (sqrt_2_over_pi * (x + 0.044715 * x * x * x)).tanh())
}

/// `reference_ops::GeluTransform`: `0.5 x erfc(-x / sqrt 2)`, in float.
pub(crate) fn gelu_erf(x: f32) -> f32 {
    0.5 * x * libm::erfc(x * -(std::f64::consts::FRAC_1_SQRT_2 as f32))
}

/// Prepared int8 GELU: a table over the 256 inputs (`GeluPrepare`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gelu {
    lut: Lut,
}

impl Gelu {
    pub fn new(approximate: bool, input: QParams, output: QParams) -> Result<Self, KernelError> {
        check_scale("input scale", input)?;
        check_scale("output scale", output)?;
        let lut = if approximate {
            Lut::populate(input, output, gelu_tanh)
        } else {
            Lut::populate(input, output, gelu_erf)
        };
        Ok(Gelu { lut })
    }

    pub fn run(&self, input: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
        self.lut.run(input, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_by_hand() {
        let q = QParams::new(0.1, 0);
        for approximate in [true, false] {
            let g = Gelu::new(approximate, q, q).unwrap();
            let mut out = [0i8; 4];
            // gelu(0) = 0; gelu(12.7) = 12.7; gelu(-12.8) = 0; gelu(1.0) = 0.841.
            g.run(&[0, 127, -128, 10], &mut out).unwrap();
            assert_eq!(out, [0, 127, 0, 8], "approximate {approximate}");
        }
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
    }
}
