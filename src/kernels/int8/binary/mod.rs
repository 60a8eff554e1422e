//! The int8 binary ops: ADD, SUB, MUL, MAXIMUM and MINIMUM (here), DIV ([`div`]) and
//! SQUARED_DIFFERENCE ([`squared_difference`]), all with numpy broadcasting
//! ([`broadcast`]), bit-exact with LiteRT's builtin kernels as they run on x86.
//!
//! LiteRT's x86 build defines `__SSE4_1__`, so TFLite's `neon_check.h` turns on
//! `USE_NEON` and the "NEON" loops run through the NEON_2_SSE emulation. Those loops
//! do not always compute what the scalar tails compute, so the lanes that LiteRT
//! hands to a vector block are computed here with the vector arithmetic and the rest
//! with the scalar arithmetic:
//!
//! * ADD (`optimized_integer_ops::AddElementwiseInt8`, 16 lanes): the vector code
//!   shifts each input left by `20 + input_shift` before one rounding multiply, the
//!   scalar code shifts by 20, multiplies, then rounds the shift away; and in
//!   `AddScalarBroadcast` (8 lanes) the vector code drops the input shift with a
//!   truncating shift. Both narrow through int16 before saturating to int8.
//! * MUL (`MulElementwise` / `MulSimpleBroadcast`, 16 lanes): same arithmetic, but
//!   the vector code saturates to int16 and adds the output offset with int16
//!   wrap-around before saturating to int8.
//! * SUB: LiteRT runs the reference kernels (`reference_ops::Sub` /
//!   `BroadcastQuantSubSlow`) for int8, so every lane is scalar, except when the
//!   real output multiplier is above 1 (see [`Sub`]): then the compiler's
//!   vectorization of the flat loop shows, in blocks of 4.
//! * MAXIMUM / MINIMUM compare the raw int8 values on every path.
//! * DIV and SQUARED_DIFFERENCE run LiteRT's reference kernels only (see their
//!   modules), per element through the generic broadcast loop.
//!
//! Which elements form a vector block depends on how TFLite's
//! `ProcessBroadcastShapes` splits the shapes into its five-fold loop nest, so that
//! split is reproduced exactly ([`BroadcastPlan`]).

mod broadcast;
mod div;
mod squared_difference;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) use broadcast::Broadcast;
pub use broadcast::{broadcast_shape, BroadcastPlan};
use broadcast::{broadcast_strides, dispatch, extend, for_each_broadcast, plan_for};
pub use div::Div;
pub use squared_difference::SquaredDifference;

use super::neon_emulation as neon;
use super::{
    check_int8_zero_point, check_scale, fused_activation_range, requantize_f32, Arithmetic, QParams,
};
use crate::graph::FusedActivation;
use crate::kernels::element::QuantizedElement;
use crate::kernels::error::allowed;
use crate::kernels::fixed_point::{
    rounding_divide_by_pot, saturating_rounding_doubling_high_mul, QuantizedMultiplier,
};
use crate::kernels::KernelError;

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

/// The ADD / SUB input shift: TFLite scales both operands up by 2^20 first.
const ADD_LEFT_SHIFT: i32 = 20;

/// The finest ADD / SUB output scale LiteRT accepts, as a fraction of the larger input
/// scale: 2^-19. Its output multiplier (`add_output_multiplier`) must stay below 1, and
/// LiteRT aborts the process preparing an op that breaks this. The quantizer's floor
/// (`quant::plan`) and checker (`quant::check`) are written against this one value.
pub const ADD_MIN_OUTPUT_SCALE_RATIO: f64 = 2.0 / (1u32 << ADD_LEFT_SHIFT) as f64;

/// The real output multiplier of ADD / SUB: `2 * max(s1, s2) / (2^20 * s_out)`.
fn add_output_multiplier(in1: QParams, in2: QParams, out: QParams) -> f64 {
    let twice_max = 2.0 * f64::from(in1.scale.max(in2.scale));
    twice_max / (f64::from(1u32 << ADD_LEFT_SHIFT) * f64::from(out.scale))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AddSide {
    offset: i32,
    multiplier: QuantizedMultiplier,
}

/// The fixed-point parameters of TFLite's int8 ADD / SUB (`ArithmeticParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AddParams {
    in1: AddSide,
    in2: AddSide,
    out: QuantizedMultiplier,
    out_offset: i32,
    act_min: i32,
    act_max: i32,
}

impl AddParams {
    /// `PrepareGeneralSubOp` / add.cc `Prepare`: both inputs are rescaled to twice
    /// the larger input scale, summed at 2^20 resolution, then scaled to the output.
    fn new(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
    ) -> Result<Self, KernelError> {
        Self::with_output(in1, in2, out, activation, |real| {
            multiplier_below_one("output multiplier", real)
        })
    }

    /// [`AddParams::new`] with the real output multiplier quantized by `output`.
    fn with_output(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
        output: impl FnOnce(f64) -> Result<QuantizedMultiplier, KernelError>,
    ) -> Result<Self, KernelError> {
        check_scale("first input scale", in1)?;
        check_scale("second input scale", in2)?;
        check_scale("output scale", out)?;
        let (act_min, act_max) = fused_activation_range(activation, out);
        let twice_max = 2.0 * f64::from(in1.scale.max(in2.scale));
        Ok(AddParams {
            in1: AddSide {
                offset: -in1.zero_point,
                multiplier: multiplier_below_one(
                    "first input multiplier",
                    f64::from(in1.scale) / twice_max,
                )?,
            },
            in2: AddSide {
                offset: -in2.zero_point,
                multiplier: multiplier_below_one(
                    "second input multiplier",
                    f64::from(in2.scale) / twice_max,
                )?,
            },
            out: output(add_output_multiplier(in1, in2, out))?,
            out_offset: out.zero_point,
            act_min,
            act_max,
        })
    }

    fn switched(self) -> Self {
        AddParams {
            in1: self.in2,
            in2: self.in1,
            ..self
        }
    }

    /// One input scaled the scalar way: shift by 2^20, multiply, round the shift away.
    fn scale_scalar(side: AddSide, x: i8) -> i32 {
        let shifted = (side.offset + i32::from(x)).wrapping_mul(1 << ADD_LEFT_SHIFT);
        mul_below_one(shifted, side.multiplier)
    }

    /// The scalar output stage: rescale, offset, clamp, truncate to int8.
    fn finish_scalar(&self, raw: i32) -> i8 {
        let raw = mul_below_one(raw, self.out).wrapping_add(self.out_offset);
        raw.max(self.act_min).min(self.act_max) as i8
    }

    /// The vector output stage: rescale, narrow to int16 (truncating), add the
    /// offset in int16, saturate to int8, clamp with int8 bounds.
    fn finish_vector(&self, raw: i32) -> i8 {
        let v = mul_below_one(raw, self.out) as i16;
        let v = neon::saturate_i8(v.wrapping_add(self.out_offset as i16));
        neon::clamp_i8(v, self.act_min, self.act_max)
    }

    /// `vaddq_s16` of the input and its offset (both int16).
    fn offset_i16(side: AddSide, x: i8) -> i32 {
        i32::from(i16::from(x).wrapping_add(side.offset as i16))
    }
}

/// ADD, one lane of `AddElementwiseInt8`'s vector loop.
fn add_vector_lane(p: &AddParams, a: i8, b: i8) -> i8 {
    let scale = |side: AddSide, x: i8| {
        let v = neon::shl(
            AddParams::offset_i16(side, x),
            ADD_LEFT_SHIFT + side.multiplier.shift,
        );
        saturating_rounding_doubling_high_mul(v, side.multiplier.multiplier)
    };
    p.finish_vector(scale(p.in1, a).wrapping_add(scale(p.in2, b)))
}

fn add_scalar(p: &AddParams, a: i8, b: i8) -> i8 {
    p.finish_scalar(
        AddParams::scale_scalar(p.in1, a).wrapping_add(AddParams::scale_scalar(p.in2, b)),
    )
}

/// `optimized_integer_ops::AddElementwiseInt8`: 16-lane blocks, scalar tail.
fn add_elementwise(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    let blocks = out.len() / 16 * 16;
    #[cfg(target_arch = "x86_64")]
    let done = x86::add_vector_lanes(p, &a[..blocks], &b[..blocks], &mut out[..blocks]);
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for i in done..out.len() {
        out[i] = if i < blocks {
            add_vector_lane(p, a[i], b[i])
        } else {
            add_scalar(p, a[i], b[i])
        };
    }
}

/// `optimized_integer_ops::AddScalarBroadcast`: 8-lane blocks whose input shifts
/// truncate (`vshlq_s32` by a negative count), then a scalar tail that rounds.
fn add_scalar_broadcast(p: &AddParams, a: i8, b: &[i8], out: &mut [i8]) {
    let blocks = out.len() / 8 * 8;
    let scale_vector = |side: AddSide, x: i8| {
        let v = neon::shl(AddParams::offset_i16(side, x), ADD_LEFT_SHIFT);
        let v = saturating_rounding_doubling_high_mul(v, side.multiplier.multiplier);
        neon::shl(v, side.multiplier.shift)
    };
    let a_vector = scale_vector(p.in1, a);
    let a_scalar = AddParams::scale_scalar(p.in1, a);
    for (i, (o, &x)) in out.iter_mut().zip(b).enumerate() {
        *o = if i < blocks {
            p.finish_vector(a_vector.wrapping_add(scale_vector(p.in2, x)))
        } else {
            p.finish_scalar(a_scalar.wrapping_add(AddParams::scale_scalar(p.in2, x)))
        };
    }
}

/// An element-wise formula XNNPACK applies to every element alike ([`XnnpackAdd`],
/// [`XnnpackMul`]): the broadcast paths only differ in which operand repeats.
trait ElementFormula: Copy {
    fn one(&self, a: i8, b: i8) -> i8;
    /// The same formula with the operands' roles exchanged.
    fn switched(self) -> Self;
}

/// `out = f(a, b)` over a broadcast `plan`, `f` applied per element on every path.
fn dispatch_formula<F: ElementFormula>(
    plan: &BroadcastPlan,
    f: F,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
) {
    dispatch(
        plan,
        f,
        f.switched(),
        a,
        b,
        out,
        |p, a, b, out| {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = p.one(x, y);
            }
        },
        |p, s, b, out| {
            for (o, &y) in out.iter_mut().zip(b) {
                *o = p.one(s, y);
            }
        },
        |p, x, y| p.one(x, y),
    );
}

/// ADD as LiteRT's XNNPACK delegate computes it: both centred operands times a multiplier
/// (its scale ratio at 2^shift, the larger in [2^20, 2^21)), summed with a rounding half-step
/// and shifted right once: one rounding, where the builtin kernel rounds each input's
/// rescale and then the sum (g167: an ADD of inputs at scales 0.0257 and 0.0514).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct XnnpackAdd {
    in1_zero_point: i32,
    in2_zero_point: i32,
    in1_multiplier: i32,
    in2_multiplier: i32,
    shift: u32,
    out_zero_point: i32,
    act_min: i32,
    act_max: i32,
}

impl XnnpackAdd {
    /// `None` where the delegate declines the op (a scale ratio outside [2^-10, 2^8)) and
    /// LiteRT's builtin kernel runs it.
    fn new(in1: QParams, in2: QParams, out: QParams, act_min: i32, act_max: i32) -> Option<Self> {
        let (r1, r2) = (in1.scale / out.scale, in2.scale / out.scale);
        let usable = |r: f32| (1.0 / 1024.0..256.0).contains(&r);
        if !(usable(r1) && usable(r2)) {
            return None;
        }
        let exponent = ((r1.max(r2).to_bits() >> 23) as i32) - 127;
        let shift = u32::try_from(20 - exponent).ok()?;
        // Scaling by a power of two is exact in f32; the rounding is to nearest even.
        let multiplier = |r: f32| (r * (shift as f32).exp2()).round_ties_even() as i32;
        Some(XnnpackAdd {
            in1_zero_point: in1.zero_point,
            in2_zero_point: in2.zero_point,
            in1_multiplier: multiplier(r1),
            in2_multiplier: multiplier(r2),
            shift,
            out_zero_point: out.zero_point,
            act_min,
            act_max,
        })
    }
}

impl ElementFormula for XnnpackAdd {
    fn switched(self) -> Self {
        XnnpackAdd {
            in1_zero_point: self.in2_zero_point,
            in2_zero_point: self.in1_zero_point,
            in1_multiplier: self.in2_multiplier,
            in2_multiplier: self.in1_multiplier,
            ..self
        }
    }

    fn one(&self, a: i8, b: i8) -> i8 {
        // |x - zp| <= 255 and multipliers < 2^21: the sum stays below 2^30.
        let acc = (1 << (self.shift - 1))
            + (i32::from(a) - self.in1_zero_point) * self.in1_multiplier
            + (i32::from(b) - self.in2_zero_point) * self.in2_multiplier;
        ((acc >> self.shift) + self.out_zero_point).clamp(self.act_min, self.act_max) as i8
    }
}

/// Prepared int8 ADD (`tflite::ops::builtin::add`, optimized kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    params: AddParams,
    /// XNNPACK's parameters when the delegate would take this op.
    xnnpack: Option<XnnpackAdd>,
    /// Set by [`Add::with_arithmetic`].
    use_xnnpack: bool,
}

impl Add {
    pub fn new(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
    ) -> Result<Self, KernelError> {
        let params = AddParams::new(in1, in2, out, activation)?;
        Ok(Add {
            xnnpack: XnnpackAdd::new(in1, in2, out, params.act_min, params.act_max),
            params,
            use_xnnpack: false,
        })
    }

    /// Compute like `arithmetic` (LiteRT's builtin kernels unless told otherwise).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.use_xnnpack = arithmetic == Arithmetic::Xnnpack;
        self
    }

    /// `out = a + b` broadcast; `out` has the broadcast shape's element count.
    pub fn run(
        &self,
        a: &[i8],
        a_shape: &[usize],
        b: &[i8],
        b_shape: &[usize],
        out: &mut [i8],
    ) -> Result<(), KernelError> {
        let plan = plan_for(a, a_shape, b, b_shape, out)?;
        if let (true, Some(x)) = (self.use_xnnpack, self.xnnpack) {
            dispatch_formula(&plan, x, a, b, out);
            return Ok(());
        }
        dispatch(
            &plan,
            self.params,
            self.params.switched(),
            a,
            b,
            out,
            add_elementwise,
            add_scalar_broadcast,
            add_scalar,
        );
        Ok(())
    }
}

/// The largest output shift [`Sub`] takes when its real output multiplier is above 1:
/// LiteRT's shifts by `32 - shift` stay within the lane width up to here; past it (real
/// multipliers of 2^31 and more, output scales some 2^50 finer than the inputs') what
/// LiteRT computes is not established.
const SUB_MAX_OUTPUT_SHIFT: i32 = 31;

/// SUB's real output multiplier, quantized as sub.cc's `PrepareGeneralSubOp` does it:
/// `QuantizeMultiplierGreaterThanOne` above 1 (a positive shift; its checks are debug
/// only), `QuantizeMultiplierSmallerThanOneExp` otherwise, whose checks abort LiteRT at
/// exactly 1 (measured: a SUB with a real output multiplier of exactly 1.0 kills the
/// process, one of 1.0000001 runs).
fn sub_output_multiplier(real: f64) -> Result<QuantizedMultiplier, KernelError> {
    if real.is_nan() || real <= 1.0 {
        return multiplier_below_one("output multiplier", real);
    }
    let m = QuantizedMultiplier::from_real(real);
    if !real.is_finite() || m.shift > SUB_MAX_OUTPUT_SHIFT {
        return Err(KernelError::params(
            "output multiplier",
            real,
            "a value below 2^31 (what LiteRT's SUB computes with a larger one is not modelled)",
        ));
    }
    Ok(m)
}

/// Which of LiteRT's two compiled forms of the flat SUB loop computes an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubLane {
    Scalar,
    Vector,
}

/// SUB's output stage for a real output multiplier above 1 (`m.shift` in 1..=31).
///
/// sub.h applies the output multiplier with `MultiplyByQuantizedMultiplierSmallerThanOneExp`
/// even when sub.cc quantized it with a positive shift, so gemmlowp's
/// `RoundingDivideByPOT` runs with the exponent `-shift`: its `(1ll << exponent) - 1`
/// mask truncates to all ones, and its arithmetic right shift by `-shift` is where the
/// two compiled forms part:
///
/// * scalar code (x86 `sar` takes the count mod 32) shifts by `32 - shift`:
///   `(x >> (32 - shift)) + (x >= 0)`;
/// * the loop vectorized 4 lanes at a time (`psrad` by an out-of-range count fills with
///   the sign) keeps only the sign: `(x >> 31) + (x >= 0)`, that is 1 or -1.
///
/// `x` is the doubling high multiply of the raw difference by the Q31 multiplier. The raw
/// difference stays below 2^28 in magnitude, so the two forms agree up to shift 4 (real
/// multipliers below 16) and part from shift 5 on.
/// Measured against LiteRT 2.3.0 (x86-64, builtin kernels) on every pair of int8 inputs
/// for real multipliers from 1.0000001 to about 2^21, and on random inputs up to 2^31:
/// see `tests/int8_sub_above_one.rs` and
/// `scripts/kernel_vectors/make_sub_above_one_vectors.py`.
fn sub_above_one(x: i32, m: QuantizedMultiplier, lane: SubLane) -> i32 {
    let x = saturating_rounding_doubling_high_mul(x, m.multiplier);
    let shift = match lane {
        SubLane::Scalar => 32 - m.shift,
        SubLane::Vector => 31,
    };
    (x >> shift) + i32::from(x >= 0)
}

/// Prepared int8 SUB. LiteRT runs the reference kernel for int8 SUB, so every
/// element takes the scalar path, with one exception.
///
/// Unlike ADD, whose Prepare aborts the process on a real output multiplier of 1 or more
/// (measured: SIGABRT in a child process for 1.0, 1.5 and 5.85), LiteRT's SUB runs with
/// any multiplier above 1, and TensorFlow's quantizer writes such SUBs when the output is
/// near-constant on the calibration data (an output range of 2e-6 gives a scale of
/// 7.8e-9). What it computes then ([`sub_above_one`]) depends on how the compiler built
/// the flat loop (`reference_ops::Sub`, taken when the shapes are equal once padded to
/// one rank): the first `len / 4 * 4` elements go through the vectorized loop, the rest
/// through the scalar one, unless the output shares a buffer with an input (LiteRT's
/// arena runs ADD/SUB/MUL in place when it can; see [`Sub::in_place`]), when the
/// vectorized loop's aliasing check sends every element down the scalar path. The
/// broadcasting loop (`BroadcastQuantSubSlow`) is always scalar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sub {
    params: AddParams,
    in_place: bool,
}

impl Sub {
    pub fn new(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
    ) -> Result<Self, KernelError> {
        // sub.cc's Prepare rejects these (TF_LITE_ENSURE).
        check_int8_zero_point("first input zero point", in1)?;
        check_int8_zero_point("second input zero point", in2)?;
        check_int8_zero_point("output zero point", out)?;
        check_scale("output scale", out)?;
        check_activation_bounds(activation, out)?;
        Ok(Sub {
            params: AddParams::with_output(in1, in2, out, activation, sub_output_multiplier)?,
            in_place: false,
        })
    }

    /// Whether LiteRT runs this SUB in place, its output in the buffer of one of its
    /// inputs (its arena planner decides; the caller knows the graph). Only matters
    /// when [`Sub::in_place_matters`], and then only on equal shapes.
    pub fn in_place(mut self, in_place: bool) -> Self {
        self.in_place = in_place;
        self
    }

    /// Whether [`Sub::in_place`] can change a result: a real output multiplier of 16 or
    /// more (output shift 5 and up, see [`sub_above_one`]).
    pub fn in_place_matters(&self) -> bool {
        self.params.out.shift > 4
    }

    /// `out = a - b` broadcast; `out` has the broadcast shape's element count.
    pub fn run(
        &self,
        a: &[i8],
        a_shape: &[usize],
        b: &[i8],
        b_shape: &[usize],
        out: &mut [i8],
    ) -> Result<(), KernelError> {
        let plan = plan_for(a, a_shape, b, b_shape, out)?;
        let p = &self.params;
        let sub = |x: i8, y: i8, lane: SubLane| {
            let raw =
                AddParams::scale_scalar(p.in1, x).wrapping_sub(AddParams::scale_scalar(p.in2, y));
            if p.out.shift <= 0 {
                return p.finish_scalar(raw);
            }
            let v = sub_above_one(raw, p.out, lane).wrapping_add(p.out_offset);
            v.max(p.act_min).min(p.act_max) as i8
        };
        match plan {
            BroadcastPlan::Elementwise { .. } => {
                let vector = if self.in_place { 0 } else { out.len() / 4 * 4 };
                for (i, ((o, &x), &y)) in out.iter_mut().zip(a).zip(b).enumerate() {
                    let lane = if i < vector {
                        SubLane::Vector
                    } else {
                        SubLane::Scalar
                    };
                    *o = sub(x, y, lane);
                }
            }
            _ => {
                let out_shape = broadcast_shape(a_shape, b_shape)?;
                let rank = out_shape.len();
                let sa = broadcast_strides(&extend(a_shape, rank), &out_shape);
                let sb = broadcast_strides(&extend(b_shape, rank), &out_shape);
                for_each_broadcast(&out_shape, &sa, &sb, |o, ia, ib| {
                    out[o] = sub(a[ia], b[ib], SubLane::Scalar)
                });
            }
        }
        Ok(())
    }
}

/// `CalculateActivationRangeQuantized`'s check: a fused activation bound that quantizes
/// outside int32 (`TfLiteRound(bound / scale)` in float) fails Prepare, which happens
/// to RELU6 and RELU_N1_TO_1 on the tiny output scales that give SUB a multiplier far
/// above 1 (measured: LiteRT refuses such a SUB, "no_integer_overflow_from_quantization").
fn check_activation_bounds(activation: FusedActivation, out: QParams) -> Result<(), KernelError> {
    let bounds: &[f32] = match activation {
        FusedActivation::Relu6 => &[0.0, 6.0],
        FusedActivation::ReluN1To1 => &[-1.0, 1.0],
        _ => &[],
    };
    for &bound in bounds {
        let q = (bound / out.scale).round();
        // i32::MIN and i32::MAX as f32 are -2^31 and 2^31, as in TFLite's comparison.
        if !(q >= i32::MIN as f32 && q <= i32::MAX as f32) {
            // The bound is 6 or +-1, which the output scale names; the quantized value
            // is what falls outside.
            return Err(KernelError::params(
                "fused activation bound / output scale",
                q,
                "a value within int32, as TFLite's Prepare requires",
            ));
        }
    }
    Ok(())
}

/// The fixed-point parameters of TFLite's int8 MUL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MulParams {
    in1_offset: i32,
    in2_offset: i32,
    out_offset: i32,
    out: QuantizedMultiplier,
    act_min: i32,
    act_max: i32,
}

impl MulParams {
    fn switched(self) -> Self {
        MulParams {
            in1_offset: self.in2_offset,
            in2_offset: self.in1_offset,
            ..self
        }
    }

    fn finish_scalar(&self, product: i32) -> i8 {
        let v = self.out.apply(product).wrapping_add(self.out_offset);
        v.max(self.act_min).min(self.act_max) as i8
    }

    /// The vector lanes: int16 operands, exact product, the same rescale, then
    /// saturate to int16, add the offset in int16, saturate to int8, clamp.
    fn finish_vector(&self, x: i16, y: i16) -> i8 {
        let left = self.out.shift.max(0);
        let right = (-self.out.shift).max(0);
        let p = neon::shl(i32::from(x) * i32::from(y), left);
        let p = rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(p, self.out.multiplier),
            right,
        );
        let v = neon::saturate_i16(p).wrapping_add(self.out_offset as i16);
        neon::clamp_i8(neon::saturate_i8(v), self.act_min, self.act_max)
    }
}

/// `optimized_integer_ops::MulElementwise`: 16-lane blocks, scalar tail.
fn mul_elementwise(p: &MulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    let blocks = out.len() / 16 * 16;
    #[cfg(target_arch = "x86_64")]
    let done = x86::mul_vector_lanes(
        p,
        x86::Operand::Slice(&a[..blocks]),
        &b[..blocks],
        &mut out[..blocks],
    );
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for i in done..out.len() {
        out[i] = if i < blocks {
            p.finish_vector(
                i16::from(a[i]).wrapping_add(p.in1_offset as i16),
                i16::from(b[i]).wrapping_add(p.in2_offset as i16),
            )
        } else {
            mul_scalar(p, a[i], b[i])
        };
    }
}

/// `optimized_integer_ops::MulSimpleBroadcast`. The broadcast operand plus its
/// offset is held in an int16 on both paths.
fn mul_scalar_broadcast(p: &MulParams, a: i8, b: &[i8], out: &mut [i8]) {
    let blocks = out.len() / 16 * 16;
    let x = (p.in1_offset + i32::from(a)) as i16;
    #[cfg(target_arch = "x86_64")]
    let done = x86::mul_vector_lanes(
        p,
        x86::Operand::Broadcast(x),
        &b[..blocks],
        &mut out[..blocks],
    );
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (i, (o, &y)) in out.iter_mut().zip(b).enumerate().skip(done) {
        *o = if i < blocks {
            p.finish_vector(x, i16::from(y).wrapping_add(p.in2_offset as i16))
        } else {
            p.finish_scalar(i32::from(x).wrapping_mul(p.in2_offset + i32::from(y)))
        };
    }
}

fn mul_scalar(p: &MulParams, a: i8, b: i8) -> i8 {
    p.finish_scalar((p.in1_offset + i32::from(a)).wrapping_mul(p.in2_offset + i32::from(b)))
}

/// MUL as LiteRT's XNNPACK delegate computes it: the exact int32 product of the
/// centred operands, requantized in f32 by `in1 * in2 / out` (f32, in that order) with
/// round-to-nearest-even ([`requantize_f32`]).
#[derive(Clone, Copy, Debug, PartialEq)]
struct XnnpackMul {
    in1_zero_point: i32,
    in2_zero_point: i32,
    scale: f32,
    out_zero_point: i32,
    act_min: i32,
    act_max: i32,
}

impl ElementFormula for XnnpackMul {
    fn switched(self) -> Self {
        XnnpackMul {
            in1_zero_point: self.in2_zero_point,
            in2_zero_point: self.in1_zero_point,
            ..self
        }
    }

    fn one(&self, a: i8, b: i8) -> i8 {
        // |x - zp| <= 255: the product fits i32.
        let product = (i32::from(a) - self.in1_zero_point) * (i32::from(b) - self.in2_zero_point);
        requantize_f32(
            product,
            self.scale,
            self.out_zero_point,
            self.act_min,
            self.act_max,
        ) as i8
    }
}

/// Prepared int8 MUL (`tflite::ops::builtin::mul`, optimized kernel).
#[derive(Clone, Debug, PartialEq)]
pub struct Mul {
    params: MulParams,
    /// XNNPACK's parameters when the delegate would take this op.
    xnnpack: Option<XnnpackMul>,
    /// Set by [`Mul::with_arithmetic`].
    use_xnnpack: bool,
}

impl Mul {
    pub fn new(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
    ) -> Result<Self, KernelError> {
        check_scale("first input scale", in1)?;
        check_scale("second input scale", in2)?;
        check_scale("output scale", out)?;
        // mul.cc multiplies the scales in float before widening to double.
        let real = f64::from(in1.scale * in2.scale / out.scale);
        if !real.is_finite() || real <= 0.0 {
            return Err(KernelError::params(
                "MUL output multiplier",
                real,
                allowed::POSITIVE,
            ));
        }
        let (act_min, act_max) = fused_activation_range(activation, out);
        // XNNPACK's delegate leaves a MUL whose product scale falls outside
        // [2^-16, 2^8) to LiteRT's builtin kernel.
        let product_scale = in1.scale * in2.scale / out.scale;
        let xnnpack = (1.0 / 65536.0..256.0)
            .contains(&product_scale)
            .then_some(XnnpackMul {
                in1_zero_point: in1.zero_point,
                in2_zero_point: in2.zero_point,
                scale: product_scale,
                out_zero_point: out.zero_point,
                act_min,
                act_max,
            });
        Ok(Mul {
            params: MulParams {
                in1_offset: -in1.zero_point,
                in2_offset: -in2.zero_point,
                out_offset: out.zero_point,
                out: QuantizedMultiplier::from_real(real),
                act_min,
                act_max,
            },
            xnnpack,
            use_xnnpack: false,
        })
    }

    /// Compute like `arithmetic` (LiteRT's builtin kernels unless told otherwise).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.use_xnnpack = arithmetic == Arithmetic::Xnnpack;
        self
    }

    /// `out = a * b` broadcast; `out` has the broadcast shape's element count.
    pub fn run(
        &self,
        a: &[i8],
        a_shape: &[usize],
        b: &[i8],
        b_shape: &[usize],
        out: &mut [i8],
    ) -> Result<(), KernelError> {
        let plan = plan_for(a, a_shape, b, b_shape, out)?;
        if let (true, Some(x)) = (self.use_xnnpack, self.xnnpack) {
            dispatch_formula(&plan, x, a, b, out);
            return Ok(());
        }
        dispatch(
            &plan,
            self.params,
            self.params.switched(),
            a,
            b,
            out,
            mul_elementwise,
            mul_scalar_broadcast,
            mul_scalar,
        );
        Ok(())
    }
}

/// MAXIMUM / MINIMUM, int8 or int16 (16x8). TFLite compares the raw codes on every
/// path, relying on the converter to give inputs and output one set of parameters; this
/// does the same, so it stays bit-exact even for a model that breaks that rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinMax {
    Maximum,
    Minimum,
}

impl MinMax {
    pub fn run<T: QuantizedElement>(
        self,
        a: &[T],
        a_shape: &[usize],
        b: &[T],
        b_shape: &[usize],
        out: &mut [T],
    ) -> Result<(), KernelError> {
        plan_for(a, a_shape, b, b_shape, out)?;
        let pick = match self {
            MinMax::Maximum => std::cmp::max::<T>,
            MinMax::Minimum => std::cmp::min::<T>,
        };
        let out_shape = broadcast_shape(a_shape, b_shape)?;
        let rank = out_shape.len();
        let sa = broadcast_strides(&extend(a_shape, rank), &out_shape);
        let sb = broadcast_strides(&extend(b_shape, rank), &out_shape);
        for_each_broadcast(&out_shape, &sa, &sb, |o, ia, ib| {
            out[o] = pick(a[ia], b[ib])
        });
        Ok(())
    }
}
