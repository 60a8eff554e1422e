//! 16x8 ADD, SUB and MUL with numpy broadcasting, bit-exact with LiteRT's builtin
//! kernels (reference arithmetic for int16 on every path).
//!
//! # ADD and SUB: two paths
//!
//! LiteRT's `Prepare` picks one of two int16 paths:
//!
//! * **Power of two** when the op's `pot_scale_int16` option is set (the schema's
//!   default, which hand-written models get; TensorFlow's 16x8 converter clears it) *and*
//!   all three scales are powers of two by TFLite's `CheckedLog2` (within 0.001 of an
//!   integer in log2). One input must share the output's exponent and the other's may be
//!   lower only: each output is that input plus (or minus) the other rounded right by the
//!   exponent difference ([`rounding_divide_by_pot`]), saturated to int16 and clamped to
//!   the activation's range. `Prepare` refuses other exponents. LiteRT 2.3.0 aborts the
//!   process when this path meets broadcast shapes (measured on ADD `[1, 5, 6, 8] +
//!   [1, 1, 6, 8]`), so these kernels refuse broadcasting there.
//! * **General** otherwise: int8's arithmetic with a headroom shift of 15 instead of 20.
//!   Both inputs, shifted left by 15, are rescaled to twice the larger input scale
//!   (`QuantizeMultiplierSmallerThanOneExp` multipliers, double rounding), summed (or
//!   subtracted) in int32, rescaled to the output and clamped. That is LiteRT's order
//!   for a broadcast ADD and for SUB. An ADD of two same-shaped inputs runs LiteRT's
//!   element-wise loop instead: in 16-lane blocks each input is shifted left by
//!   `15 + exponent` (its multiplier's, at most 0) before one rounding multiply, instead
//!   of being multiplied at `<< 15` and then rounded right by the exponent, which gives
//!   one step more or less on rare inputs and, rarer still, a different output; the tail
//!   past the last full block is scalar, in the general order. Measured on
//!   `int16_add_tie_elementwise.npz`, `int16_add_tie_broadcast.npz` and
//!   `int16_sub_tie_elementwise.npz`, whose inputs are chosen where the two orders disagree (`scripts/kernel_vectors/make_int16_vectors.py`,
//!   `AddTieProbe`); MobileNetV3-small's `expanded_conv_4_add` had one such code.
//!
//! All int16 zero points must be 0 (LiteRT's `Prepare` checks it).
//!
//! # MUL
//!
//! `clamp(MultiplyByQuantizedMultiplier(x * y))`, the product in int32 and the
//! multiplier `f64(in1) * f64(in2) / f64(out)`, as TFLite's reference integer `Mul`
//! templated for int16.

use super::{check_symmetric, checked_log2, fused_activation_range, QParams};
use crate::graph::FusedActivation;
use crate::kernels::error::allowed;
use crate::kernels::fixed_point::{
    rounding_divide_by_pot, saturating_rounding_doubling_high_mul, QuantizedMultiplier,
};
use crate::kernels::int8::binary::Broadcast;
/// MAXIMUM / MINIMUM compare codes, the same for int8 and int16: one generic kernel.
pub use crate::kernels::int8::binary::MinMax;
use crate::kernels::int8::neon_emulation as neon;
use crate::kernels::KernelError;

/// The general path's headroom: inputs are shifted left by 15 bits before rescaling.
const INT16_ADD_LEFT_SHIFT: i32 = 15;

/// TFLite's `QuantizeMultiplierSmallerThanOneExp`: the multiplier must lie in (0, 1).
fn multiplier_below_one(what: &'static str, real: f64) -> Result<QuantizedMultiplier, KernelError> {
    if !(real > 0.0 && real < 1.0) {
        return Err(KernelError::params(what, real, allowed::BELOW_ONE));
    }
    Ok(QuantizedMultiplier::from_real(real))
}

/// TFLite's `MultiplyByQuantizedMultiplierSmallerThanOneExp` (shift <= 0).
fn mul_below_one(x: i32, m: QuantizedMultiplier) -> i32 {
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x, m.multiplier),
        -m.shift,
    )
}

/// Which int16 ADD / SUB arithmetic LiteRT's `Prepare` chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddPath {
    /// Rescaled through twice the larger input scale at 2^15 resolution.
    General {
        in1: QuantizedMultiplier,
        in2: QuantizedMultiplier,
        out: QuantizedMultiplier,
    },
    /// Power-of-two scales: the input whose exponent is below the output's
    /// (`first_shifted`) is rounded right by `right_shift` bits, then added in int16.
    PowerOfTwo {
        first_shifted: bool,
        right_shift: i32,
    },
}

/// Prepared 16x8 ADD or SUB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddSubInt16 {
    subtract: bool,
    path: AddPath,
    act_min: i32,
    act_max: i32,
}

impl AddSubInt16 {
    /// ADD. `pot_scale_int16` is the op's builtin option (true when a model omits it).
    pub fn add(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
        pot_scale_int16: bool,
    ) -> Result<Self, KernelError> {
        Self::new(false, in1, in2, out, activation, pot_scale_int16)
    }

    /// SUB (`in1 - in2`), with the same paths as [`AddSubInt16::add`].
    pub fn sub(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
        pot_scale_int16: bool,
    ) -> Result<Self, KernelError> {
        Self::new(true, in1, in2, out, activation, pot_scale_int16)
    }

    fn new(
        subtract: bool,
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
        pot_scale_int16: bool,
    ) -> Result<Self, KernelError> {
        check_symmetric("first input scale", "first input zero point", in1)?;
        check_symmetric("second input scale", "second input zero point", in2)?;
        check_symmetric("output scale", "output zero point", out)?;
        let (act_min, act_max) = fused_activation_range(activation, out);
        let logs = [in1, in2, out].map(|q| checked_log2(q.scale));
        let path = if pot_scale_int16 && logs.iter().all(|&(_, pot)| pot) {
            let shift1 = logs[0].0 - logs[2].0;
            let shift2 = logs[1].0 - logs[2].0;
            if !((shift1 == 0 || shift2 == 0) && shift1 <= 0 && shift2 <= 0) {
                return Err(KernelError::Options {
                    what: "power-of-two input exponents (relative to the output's)",
                    found: format!("{shift1} and {shift2}"),
                    allowed: "one input on the output's exponent, the other at or below it \
                              (LiteRT's Prepare refuses the rest; clear pot_scale_int16 \
                              for the general path)",
                });
            }
            AddPath::PowerOfTwo {
                first_shifted: shift1 != 0,
                right_shift: -(shift1 + shift2),
            }
        } else {
            let twice_max = 2.0 * f64::from(in1.scale.max(in2.scale));
            AddPath::General {
                in1: multiplier_below_one(
                    "first input multiplier",
                    f64::from(in1.scale) / twice_max,
                )?,
                in2: multiplier_below_one(
                    "second input multiplier",
                    f64::from(in2.scale) / twice_max,
                )?,
                out: multiplier_below_one(
                    "output multiplier",
                    twice_max / (f64::from(1u32 << INT16_ADD_LEFT_SHIFT) * f64::from(out.scale)),
                )?,
            }
        };
        Ok(AddSubInt16 {
            subtract,
            path,
            act_min,
            act_max,
        })
    }

    /// The arithmetic `Prepare` chose.
    pub fn path(&self) -> AddPath {
        self.path
    }

    /// `out = a + b` (or `a - b`) broadcast; `out` has the broadcast shape's element count.
    pub fn run(
        &self,
        a: &[i16],
        a_shape: &[usize],
        b: &[i16],
        b_shape: &[usize],
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        let plan = Broadcast::new(a, a_shape, b, b_shape, out)?;
        let (lo, hi) = (self.act_min, self.act_max);
        match self.path {
            AddPath::General { in1, in2, out: m } => {
                let scale = |x: i16, mq| mul_below_one(i32::from(x) << INT16_ADD_LEFT_SHIFT, mq);
                let finish = |raw: i32| mul_below_one(raw, m).clamp(lo, hi) as i16;
                if !self.subtract && a_shape == b_shape {
                    // LiteRT's element-wise int16 ADD: 16-lane blocks in the vector
                    // loop's order, then a scalar tail (module docs).
                    let blocks = out.len() / 16 * 16;
                    let scale_vector = |x: i16, mq: QuantizedMultiplier| {
                        saturating_rounding_doubling_high_mul(
                            neon::shl(i32::from(x), INT16_ADD_LEFT_SHIFT + mq.shift),
                            mq.multiplier,
                        )
                    };
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = finish(if i < blocks {
                            scale_vector(a[i], in1) + scale_vector(b[i], in2)
                        } else {
                            scale(a[i], in1) + scale(b[i], in2)
                        });
                    }
                } else {
                    plan.for_each(|o, ia, ib| {
                        let (x, y) = (scale(a[ia], in1), scale(b[ib], in2));
                        out[o] = finish(if self.subtract { x - y } else { x + y });
                    });
                }
            }
            AddPath::PowerOfTwo {
                first_shifted,
                right_shift,
            } => {
                if a_shape.iter().product::<usize>() != out.len()
                    || b_shape.iter().product::<usize>() != out.len()
                {
                    return Err(KernelError::shape(
                        "power-of-two int16 operand shapes",
                        "equal element counts (LiteRT 2.3.0 aborts on broadcasting here)",
                        format!("{a_shape:?} and {b_shape:?}"),
                    ));
                }
                plan.for_each(|o, ia, ib| {
                    let (mut x, mut y) = (i32::from(a[ia]), i32::from(b[ib]));
                    if first_shifted {
                        x = rounding_divide_by_pot(x, right_shift);
                    } else {
                        y = rounding_divide_by_pot(y, right_shift);
                    }
                    let raw = if self.subtract { x - y } else { x + y };
                    // gemmlowp's int16 saturating add / sub, then the activation clamp.
                    out[o] = raw
                        .clamp(i32::from(i16::MIN), i32::from(i16::MAX))
                        .clamp(lo, hi) as i16;
                });
            }
        }
        Ok(())
    }
}

/// Prepared 16x8 MUL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MulInt16 {
    multiplier: QuantizedMultiplier,
    act_min: i32,
    act_max: i32,
}

impl MulInt16 {
    pub fn new(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
    ) -> Result<Self, KernelError> {
        check_symmetric("first input scale", "first input zero point", in1)?;
        check_symmetric("second input scale", "second input zero point", in2)?;
        check_symmetric("output scale", "output zero point", out)?;
        // In f32, as LiteRT's Prepare computes it (its scales are floats): on the demo's
        // 16x8 squeeze-excite MUL the f64 product gives a multiplier one step lower.
        let real = f64::from(in1.scale * in2.scale / out.scale);
        let multiplier = QuantizedMultiplier::from_real(real);
        if !real.is_finite() || multiplier.shift > 30 {
            return Err(KernelError::params(
                "MUL output multiplier",
                real,
                "below 2^30",
            ));
        }
        let (act_min, act_max) = fused_activation_range(activation, out);
        Ok(MulInt16 {
            multiplier,
            act_min,
            act_max,
        })
    }

    /// `out = a * b` broadcast.
    pub fn run(
        &self,
        a: &[i16],
        a_shape: &[usize],
        b: &[i16],
        b_shape: &[usize],
        out: &mut [i16],
    ) -> Result<(), KernelError> {
        let plan = Broadcast::new(a, a_shape, b, b_shape, out)?;
        plan.for_each(|o, ia, ib| {
            // |x * y| <= 2^30: the product fits int32.
            let product = i32::from(a[ia]) * i32::from(b[ib]);
            out[o] = self
                .multiplier
                .apply(product)
                .clamp(self.act_min, self.act_max) as i16;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: FusedActivation = FusedActivation::None;

    fn q(scale: f32) -> QParams {
        QParams::new(scale, 0)
    }

    #[test]
    fn power_of_two_add_by_hand() {
        // in1 2^-12 (the output's), in2 2^-14: in2 is rounded right by 2 bits.
        let add = AddSubInt16::add(
            q(2f32.powi(-12)),
            q(2f32.powi(-14)),
            q(2f32.powi(-12)),
            NONE,
            true,
        )
        .unwrap();
        assert_eq!(
            add.path(),
            AddPath::PowerOfTwo {
                first_shifted: false,
                right_shift: 2
            }
        );
        let mut out = [0i16; 3];
        // 100 + 6/4 (1.5 -> 2) = 102; -100 + -6/4 (-1.5 -> -2) = -102; saturation.
        add.run(&[100, -100, 32000], &[3], &[6, -6, 8000], &[3], &mut out)
            .unwrap();
        assert_eq!(out, [102, -102, 32767]);
        // SUB with the first input shifted: 10/2 (5) - 3 = 2; -7/2 (-3.5 -> -4) - 0 = -4.
        let sub = AddSubInt16::sub(
            q(2f32.powi(-13)),
            q(2f32.powi(-12)),
            q(2f32.powi(-12)),
            NONE,
            true,
        )
        .unwrap();
        sub.run(&[10, -7], &[2], &[3, 0], &[2], &mut out[..2])
            .unwrap();
        assert_eq!(out[..2], [2, -4]);
    }

    #[test]
    fn without_the_option_powers_of_two_take_the_general_path() {
        let add = AddSubInt16::add(q(0.5), q(0.5), q(0.5), NONE, false).unwrap();
        assert!(matches!(add.path(), AddPath::General { .. }));
        // Both inputs at half of twice the max: (x << 15) * 0.5, summed, times
        // 1 / 2^15 * 2 = exact for these: 3 + 4 = 7.
        let mut out = [0i16; 1];
        add.run(&[3], &[1], &[4], &[1], &mut out).unwrap();
        assert_eq!(out, [7]);
    }

    #[test]
    fn power_of_two_exponents_above_the_output_are_refused() {
        let err = AddSubInt16::add(q(0.5), q(0.25), q(0.25), NONE, true).unwrap_err();
        assert!(matches!(err, KernelError::Options { .. }), "{err:?}");
    }

    #[test]
    fn power_of_two_broadcasting_is_refused() {
        let add = AddSubInt16::add(q(0.5), q(0.5), q(0.5), NONE, true).unwrap();
        let err = add.run(&[1, 2], &[2], &[1], &[1], &mut [0, 0]).unwrap_err();
        assert!(matches!(err, KernelError::Shape { .. }), "{err:?}");
    }

    #[test]
    fn mul_by_hand() {
        // 0.5 * 0.25 / 0.125 = 1: the product itself. 300 * -200 = -60000 saturates.
        let mul = MulInt16::new(q(0.5), q(0.25), q(0.125), NONE).unwrap();
        let mut out = [0i16; 2];
        mul.run(&[7, 300], &[2], &[-9, -200], &[2], &mut out)
            .unwrap();
        assert_eq!(out, [-63, -32768]);
    }
}
