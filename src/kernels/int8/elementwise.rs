//! int8 ADD, SUB, MUL, MAXIMUM and MINIMUM with numpy broadcasting, bit-exact with
//! LiteRT's optimized builtin kernels as they run on x86.
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
//!
//! Which elements form a vector block depends on how TFLite's
//! `ProcessBroadcastShapes` splits the shapes into its five-fold loop nest, so that
//! split is reproduced exactly ([`BroadcastPlan`]).

use super::{fused_activation_range, requantize_f32, Arithmetic, QParams};
use crate::graph::FusedActivation;
use crate::kernels::fixed_point::{
    rounding_divide_by_pot, saturating_rounding_doubling_high_mul, QuantizedMultiplier,
};

/// Emulations of the NEON intrinsics (as NEON_2_SSE implements them) that LiteRT's
/// int8 kernels use, shared by the kernels in this module's siblings.
pub(crate) mod neon {
    use crate::kernels::fixed_point::saturating_rounding_doubling_high_mul;

    /// `vshlq_s32`: a left shift for non-negative counts, an arithmetic (truncating)
    /// right shift for negative ones; counts past the lane width give 0 or the sign.
    pub fn shl(x: i32, count: i32) -> i32 {
        match count {
            c if c >= 32 => 0,
            c if c >= 0 => x.wrapping_shl(c as u32),
            c if c > -32 => x >> (-c),
            _ => x >> 31,
        }
    }

    /// `vrshlq_s32`: like [`shl`], but a right shift rounds half up (adds half the
    /// divisor first, without overflow), unlike gemmlowp's half-away-from-zero.
    pub fn rounding_shl(x: i32, count: i32) -> i32 {
        if count >= 0 {
            return shl(x, count);
        }
        let n = count.saturating_neg().min(63) as u32;
        ((i64::from(x) + (1i64 << (n - 1))) >> n) as i32
    }

    /// `MultiplyByQuantizedMultiplier4Rows` (double-rounding build): shift left,
    /// `vqrdmulhq_s32`, then a half-up rounding right shift.
    pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
        let left = shift.max(0);
        let right = shift.min(0);
        rounding_shl(
            saturating_rounding_doubling_high_mul(shl(x, left), multiplier),
            right,
        )
    }

    /// `vqmovn_s32`: saturate to int16.
    pub fn saturate_i16(x: i32) -> i16 {
        x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
    }

    /// `vqmovn_s16`: saturate to int8.
    pub fn saturate_i8(x: i16) -> i8 {
        x.clamp(i16::from(i8::MIN), i16::from(i8::MAX)) as i8
    }

    /// `vmaxq_s8(min, vminq_s8(max, x))` with the bounds broadcast as int8
    /// (`vdupq_n_s8` truncates them).
    pub fn clamp_i8(x: i8, lo: i32, hi: i32) -> i8 {
        (lo as i8).max((hi as i8).min(x))
    }
}

/// The broadcast output shape of two shapes under numpy rules (aligned at the
/// trailing axis; each pair of extents equal or one of them 1).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let ext_a = extend(a, rank);
    let ext_b = extend(b, rank);
    ext_a
        .iter()
        .zip(&ext_b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (1, _) => Ok(y),
            (_, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

fn extend(shape: &[usize], rank: usize) -> Vec<usize> {
    let mut v = vec![1; rank - shape.len()];
    v.extend_from_slice(shape);
    v
}

fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has too many elements"))
}

/// How TFLite's `ProcessBroadcastShapes` (reference/process_broadcast_shapes.h)
/// classifies a pair of shapes; this decides which loop, and so which mix of vector
/// and scalar arithmetic, LiteRT applies to each element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BroadcastPlan {
    /// Equal shapes once padded to a common rank: one flat pass over `len` elements.
    Elementwise { len: usize },
    /// The five-fold loop nest of `optimized_ops::BinaryBroadcastFiveFold`. The
    /// "fast-broadcasting" operand, the one iterated as `input1` there, has
    /// `y0*y1*y2*y4` elements and the other `y0*y2*y3*y4`; `swapped` says the
    /// fast-broadcasting operand is the op's second input, whose quantization
    /// parameters then play the first input's role.
    FiveFold { swapped: bool, y: [usize; 5] },
    /// Any other broadcast: the per-element reference loop.
    Generic {
        out_shape: Vec<usize>,
        strides_a: Vec<usize>,
        strides_b: Vec<usize>,
    },
}

impl BroadcastPlan {
    pub fn new(a: &[usize], b: &[usize]) -> Result<Self, String> {
        let out_shape = broadcast_shape(a, b)?;
        let rank = out_shape.len();
        let (ea, eb) = (extend(a, rank), extend(b, rank));
        element_count(&ea)?;
        element_count(&eb)?;
        let len = element_count(&out_shape)?;
        if ea == eb {
            return Ok(BroadcastPlan::Elementwise { len });
        }
        // The innermost axis where the extents differ decides which input
        // "broadcasts fast"; the other input is the one walked contiguously.
        let first_fast = (0..rank)
            .rev()
            .find(|&i| ea[i] != eb[i])
            .map(|i| ea[i] == 1)
            .unwrap_or(true);
        let (sa, sb) = if first_fast { (&ea, &eb) } else { (&eb, &ea) };
        let mut y = [1usize; 5];
        let mut i = rank as isize - 1;
        let at = |s: &Vec<usize>, i: isize| s[i as usize];
        // Same consolidation order as TFLite: y4 (equal), y3 (a is 1), y2 (equal),
        // y1 (b is 1), y0 (equal). Products cannot overflow: each is bounded by
        // an operand's element count, checked above.
        while i >= 0 && at(sa, i) == at(sb, i) {
            y[4] *= at(sb, i);
            i -= 1;
        }
        while i >= 0 && at(sa, i) == 1 {
            y[3] *= at(sb, i);
            i -= 1;
        }
        while i >= 0 && at(sa, i) == at(sb, i) {
            y[2] *= at(sa, i);
            i -= 1;
        }
        while i >= 0 && at(sb, i) == 1 {
            y[1] *= at(sa, i);
            i -= 1;
        }
        while i >= 0 && at(sa, i) == at(sb, i) {
            y[0] *= at(sb, i);
            i -= 1;
        }
        if i >= 0 {
            return Ok(BroadcastPlan::Generic {
                strides_a: broadcast_strides(&ea, &out_shape),
                strides_b: broadcast_strides(&eb, &out_shape),
                out_shape,
            });
        }
        Ok(BroadcastPlan::FiveFold {
            swapped: !first_fast,
            y,
        })
    }
}

/// Row-major strides of `shape` seen through `out_shape`, 0 on broadcast axes.
fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = if shape[i] == 1 && out_shape[i] != 1 {
            0
        } else {
            s
        };
        s *= shape[i];
    }
    strides
}

/// Calls `f(out_index, a_index, b_index)` for every output element, row-major.
fn for_each_broadcast(
    out_shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = out_shape.len();
    let total: usize = out_shape.iter().product();
    let mut idx = vec![0usize; rank];
    let (mut ia, mut ib) = (0usize, 0usize);
    for o in 0..total {
        f(o, ia, ib);
        // Odometer increment, keeping the operand offsets in step.
        for d in (0..rank).rev() {
            idx[d] += 1;
            ia += sa[d];
            ib += sb[d];
            if idx[d] < out_shape[d] {
                break;
            }
            ia -= sa[d] * idx[d];
            ib -= sb[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/// The five-fold loop nest of TFLite's `BinaryBroadcastFiveFold`: `a` is the
/// fast-broadcasting operand. With `y4 > 1` the innermost call is an elementwise
/// pass over `y4` elements; otherwise a scalar of `a` is broadcast over `y3`.
fn five_fold(
    y: [usize; 5],
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
    mut elementwise: impl FnMut(&[i8], &[i8], &mut [i8]),
    mut scalar: impl FnMut(i8, &[i8], &mut [i8]),
) {
    let [y0, y1, y2, y3, y4] = y;
    let (mut pa, mut po, mut b_reset) = (0usize, 0usize, 0usize);
    for _ in 0..y0 {
        let mut pb = b_reset;
        for _ in 0..y1 {
            pb = b_reset;
            for _ in 0..y2 {
                if y4 > 1 {
                    for _ in 0..y3 {
                        elementwise(&a[pa..pa + y4], &b[pb..pb + y4], &mut out[po..po + y4]);
                        pb += y4;
                        po += y4;
                    }
                    pa += y4;
                } else {
                    scalar(a[pa], &b[pb..pb + y3], &mut out[po..po + y3]);
                    pb += y3;
                    po += y3;
                    pa += 1;
                }
            }
        }
        b_reset = pb;
    }
}

/// Checks operand and output lengths against their shapes, returning the plan.
fn plan_for(
    a: &[i8],
    a_shape: &[usize],
    b: &[i8],
    b_shape: &[usize],
    out: &[i8],
) -> Result<BroadcastPlan, String> {
    let plan = BroadcastPlan::new(a_shape, b_shape)?;
    let out_len = element_count(&broadcast_shape(a_shape, b_shape)?)?;
    if a.len() != element_count(a_shape)? || b.len() != element_count(b_shape)? {
        return Err(format!(
            "input lengths {} and {} do not match shapes {a_shape:?} and {b_shape:?}",
            a.len(),
            b.len()
        ));
    }
    if out.len() != out_len {
        return Err(format!(
            "output length {} does not match the broadcast shape ({out_len} elements)",
            out.len()
        ));
    }
    Ok(plan)
}

/// Runs a binary op through LiteRT's dispatch: flat elementwise, five-fold, or the
/// generic per-element loop (`scalar_op`, reference arithmetic, original operand order).
#[allow(clippy::too_many_arguments)]
fn dispatch<P: Copy>(
    plan: &BroadcastPlan,
    params: P,
    switched: P,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
    elementwise: impl Fn(&P, &[i8], &[i8], &mut [i8]),
    scalar_broadcast: impl Fn(&P, i8, &[i8], &mut [i8]),
    scalar_op: impl Fn(&P, i8, i8) -> i8,
) {
    match plan {
        BroadcastPlan::Elementwise { .. } => elementwise(&params, a, b, out),
        BroadcastPlan::FiveFold { swapped, y } => {
            let (p, fa, fb) = if *swapped {
                (switched, b, a)
            } else {
                (params, a, b)
            };
            five_fold(
                *y,
                fa,
                fb,
                out,
                |x, y, o| elementwise(&p, x, y, o),
                |s, y, o| scalar_broadcast(&p, s, y, o),
            );
        }
        BroadcastPlan::Generic {
            out_shape,
            strides_a,
            strides_b,
        } => for_each_broadcast(out_shape, strides_a, strides_b, |o, ia, ib| {
            out[o] = scalar_op(&params, a[ia], b[ib]);
        }),
    }
}

fn check_scale(what: &str, q: QParams) -> Result<(), String> {
    if q.scale.is_finite() && q.scale > 0.0 {
        Ok(())
    } else {
        Err(format!("{what} scale {} is not a positive number", q.scale))
    }
}

/// TFLite's `QuantizeMultiplierSmallerThanOneExp`: the multiplier must lie in (0, 1).
fn multiplier_below_one(what: &str, real: f64) -> Result<QuantizedMultiplier, String> {
    if !(real > 0.0 && real < 1.0) {
        return Err(format!(
            "{what} multiplier {real} is outside (0, 1), which TFLite rejects"
        ));
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
    ) -> Result<Self, String> {
        Self::with_output(in1, in2, out, activation, |real| {
            multiplier_below_one("output", real)
        })
    }

    /// [`AddParams::new`] with the real output multiplier quantized by `output`.
    fn with_output(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
        output: impl FnOnce(f64) -> Result<QuantizedMultiplier, String>,
    ) -> Result<Self, String> {
        check_scale("first input", in1)?;
        check_scale("second input", in2)?;
        check_scale("output", out)?;
        let (act_min, act_max) = fused_activation_range(activation, out);
        let twice_max = 2.0 * f64::from(in1.scale.max(in2.scale));
        Ok(AddParams {
            in1: AddSide {
                offset: -in1.zero_point,
                multiplier: multiplier_below_one("input", f64::from(in1.scale) / twice_max)?,
            },
            in2: AddSide {
                offset: -in2.zero_point,
                multiplier: multiplier_below_one("input", f64::from(in2.scale) / twice_max)?,
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
    let done = simd_x86::add_vector_lanes(p, &a[..blocks], &b[..blocks], &mut out[..blocks]);
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

/// Prepared int8 ADD (`tflite::ops::builtin::add`, optimized kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    params: AddParams,
}

impl Add {
    pub fn new(
        in1: QParams,
        in2: QParams,
        out: QParams,
        activation: FusedActivation,
    ) -> Result<Self, String> {
        Ok(Add {
            params: AddParams::new(in1, in2, out, activation)?,
        })
    }

    /// `out = a + b` broadcast; `out` has the broadcast shape's element count.
    pub fn run(
        &self,
        a: &[i8],
        a_shape: &[usize],
        b: &[i8],
        b_shape: &[usize],
        out: &mut [i8],
    ) -> Result<(), String> {
        let plan = plan_for(a, a_shape, b, b_shape, out)?;
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
fn sub_output_multiplier(real: f64) -> Result<QuantizedMultiplier, String> {
    if real.is_nan() || real <= 1.0 {
        return multiplier_below_one("output", real);
    }
    let m = QuantizedMultiplier::from_real(real);
    if !real.is_finite() || m.shift > SUB_MAX_OUTPUT_SHIFT {
        return Err(format!(
            "output multiplier {real} is 2^31 or more; what LiteRT's SUB computes with it is \
             not modelled"
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
    ) -> Result<Self, String> {
        for (what, q) in [("first input", in1), ("second input", in2), ("output", out)] {
            if !(-128..=127).contains(&q.zero_point) {
                // sub.cc's Prepare rejects these (TF_LITE_ENSURE).
                return Err(format!(
                    "{what} zero point {} is outside int8",
                    q.zero_point
                ));
            }
        }
        check_scale("output", out)?;
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
    ) -> Result<(), String> {
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
fn check_activation_bounds(activation: FusedActivation, out: QParams) -> Result<(), String> {
    let bounds: &[f32] = match activation {
        FusedActivation::Relu6 => &[0.0, 6.0],
        FusedActivation::ReluN1To1 => &[-1.0, 1.0],
        _ => &[],
    };
    for &bound in bounds {
        let q = (bound / out.scale).round();
        // i32::MIN and i32::MAX as f32 are -2^31 and 2^31, as in TFLite's comparison.
        if !(q >= i32::MIN as f32 && q <= i32::MAX as f32) {
            return Err(format!(
                "the fused activation bound {bound} quantizes outside int32 with output scale \
                 {}, which TFLite rejects",
                out.scale
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
    let done = simd_x86::mul_vector_lanes(
        p,
        simd_x86::Operand::Slice(&a[..blocks]),
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
    let done = simd_x86::mul_vector_lanes(
        p,
        simd_x86::Operand::Broadcast(x),
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

impl XnnpackMul {
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
    ) -> Result<Self, String> {
        check_scale("first input", in1)?;
        check_scale("second input", in2)?;
        check_scale("output", out)?;
        // mul.cc multiplies the scales in float before widening to double.
        let real = f64::from(in1.scale * in2.scale / out.scale);
        if !real.is_finite() || real <= 0.0 {
            return Err(format!("MUL output multiplier {real} is not usable"));
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
    ) -> Result<(), String> {
        let plan = plan_for(a, a_shape, b, b_shape, out)?;
        if let (true, Some(x)) = (self.use_xnnpack, self.xnnpack) {
            // One formula for every element: the broadcast paths only differ in
            // which operand repeats.
            dispatch(
                &plan,
                x,
                x.switched(),
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

/// int8 MAXIMUM / MINIMUM. TFLite compares the raw int8 values on every path,
/// relying on the converter to give inputs and output one set of parameters; this
/// does the same, so it stays bit-exact even for a model that breaks that rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinMax {
    Maximum,
    Minimum,
}

impl MinMax {
    pub fn run(
        self,
        a: &[i8],
        a_shape: &[usize],
        b: &[i8],
        b_shape: &[usize],
        out: &mut [i8],
    ) -> Result<(), String> {
        plan_for(a, a_shape, b, b_shape, out)?;
        let pick = match self {
            MinMax::Maximum => std::cmp::max::<i8>,
            MinMax::Minimum => std::cmp::min::<i8>,
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

/// The vector lanes of ADD and MUL with AVX2, computing exactly what the scalar lane
/// functions above compute (`add_vector_lane`, `MulParams::finish_vector`), 8 lanes at a
/// time: every step is an integer operation with the same wrapping / saturation.
#[cfg(target_arch = "x86_64")]
mod simd_x86 {
    use std::arch::x86_64::*;

    use super::{AddParams, AddSide, MulParams, ADD_LEFT_SHIFT};
    use crate::kernels::simd::{self, Level};

    /// The first MUL operand: per lane, or one value for every lane.
    pub(super) enum Operand<'a> {
        Slice(&'a [i8]),
        Broadcast(i16),
    }

    fn enabled() -> bool {
        simd::active() >= Level::Avx2
    }

    /// `neon::shl` by a count shared by all lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn shl(x: __m256i, count: i32) -> __m256i {
        match count {
            c if c >= 32 => _mm256_setzero_si256(),
            c if c >= 0 => _mm256_sll_epi32(x, _mm_cvtsi32_si128(c)),
            c if c > -32 => _mm256_sra_epi32(x, _mm_cvtsi32_si128(-c)),
            _ => _mm256_srai_epi32::<31>(x),
        }
    }

    /// `saturating_rounding_doubling_high_mul(x, m)` for `m >= 0`: `(x * m + 2^30) >> 31`
    /// in 64 bits equals the reference's sign-dependent nudge and truncating division,
    /// and `x == m == i32::MIN` cannot occur.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn srdhm(x: __m256i, m: i32) -> __m256i {
        let mv = _mm256_set1_epi32(m);
        let nudge = _mm256_set1_epi64x(1 << 30);
        let even = _mm256_add_epi64(_mm256_mul_epi32(x, mv), nudge);
        let odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64::<32>(x), mv), nudge);
        _mm256_blend_epi32::<0xAA>(_mm256_srli_epi64::<31>(even), _mm256_slli_epi64::<1>(odd))
    }

    /// `rounding_divide_by_pot(x, e)` (half away from zero) for `0 <= e <= 31`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn rdbpot(x: __m256i, e: i32) -> __m256i {
        let mask = ((1i64 << e) - 1) as i32;
        let remainder = _mm256_and_si256(x, _mm256_set1_epi32(mask));
        // (mask >> 1) + (x < 0): the sign bit shifted down is the 1.
        let threshold = _mm256_add_epi32(_mm256_set1_epi32(mask >> 1), _mm256_srli_epi32::<31>(x));
        let shifted = _mm256_sra_epi32(x, _mm_cvtsi32_si128(e));
        // cmpgt gives -1 where the remainder passes the threshold.
        _mm256_sub_epi32(shifted, _mm256_cmpgt_epi32(remainder, threshold))
    }

    /// 8 int8 values plus an offset in int16 arithmetic (wrapping), as i32 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_offset(p: *const i8, offset: i32) -> __m256i {
        let x = _mm_cvtepi8_epi16(_mm_loadl_epi64(p.cast()));
        _mm256_cvtepi16_epi32(_mm_add_epi16(x, _mm_set1_epi16(offset as i16)))
    }

    /// Saturate 8 i32 lanes to int16, add the offset in int16 (wrapping), saturate to
    /// int8, clamp with int8 bounds, store 8 bytes: the NEON tail of both ops.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish_store(v: __m256i, offset: i32, lo: i32, hi: i32, dst: *mut i8) {
        let v16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let v16 = _mm_add_epi16(v16, _mm_set1_epi16(offset as i16));
        let v8 = _mm_packs_epi16(v16, v16);
        let v8 = _mm_max_epi8(
            _mm_set1_epi8(lo as i8),
            _mm_min_epi8(_mm_set1_epi8(hi as i8), v8),
        );
        _mm_storel_epi64(dst.cast(), v8);
    }

    /// MUL's vector lanes over `b.len() / 8 * 8` elements; returns how many it did (0
    /// when AVX2 is not the active level).
    pub(super) fn mul_vector_lanes(p: &MulParams, a: Operand, b: &[i8], out: &mut [i8]) -> usize {
        let n = b.len().min(out.len()) / 8 * 8;
        if let Operand::Slice(a) = a {
            if a.len() < n {
                return 0;
            }
        }
        if !enabled() || n == 0 {
            return 0;
        }
        // SAFETY: AVX2 is available (the active level); every access is below `n`.
        unsafe { mul_avx2(p, a, b, out, n) };
        n
    }

    #[target_feature(enable = "avx2")]
    unsafe fn mul_avx2(p: &MulParams, a: Operand, b: &[i8], out: &mut [i8], n: usize) {
        let left = p.out.shift.max(0);
        let right = (-p.out.shift).max(0);
        let fixed = match a {
            Operand::Broadcast(x) => _mm256_set1_epi32(i32::from(x)),
            Operand::Slice(_) => _mm256_setzero_si256(),
        };
        let mut i = 0;
        while i < n {
            let x = match a {
                Operand::Slice(a) => load_offset(a.as_ptr().add(i), p.in1_offset),
                Operand::Broadcast(_) => fixed,
            };
            let y = load_offset(b.as_ptr().add(i), p.in2_offset);
            // |x|, |y| <= 2^15: the product is exact in i32.
            let prod = shl(_mm256_mullo_epi32(x, y), left);
            let v = rdbpot(srdhm(prod, p.out.multiplier), right);
            finish_store(
                v,
                p.out_offset,
                p.act_min,
                p.act_max,
                out.as_mut_ptr().add(i),
            );
            i += 8;
        }
    }

    /// ADD's vector lanes (`add_vector_lane`) over `a.len() / 8 * 8` elements.
    pub(super) fn add_vector_lanes(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) -> usize {
        let n = a.len().min(b.len()).min(out.len()) / 8 * 8;
        if !enabled() || n == 0 {
            return 0;
        }
        // SAFETY: as for MUL.
        unsafe { add_avx2(p, a, b, out, n) };
        n
    }

    #[target_feature(enable = "avx2")]
    unsafe fn add_avx2(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8], n: usize) {
        let scale = |side: AddSide, ptr: *const i8| {
            let v = shl(
                load_offset(ptr, side.offset),
                ADD_LEFT_SHIFT + side.multiplier.shift,
            );
            srdhm(v, side.multiplier.multiplier)
        };
        let right = (-p.out.shift).max(0);
        let mut i = 0;
        while i < n {
            let raw = _mm256_add_epi32(
                scale(p.in1, a.as_ptr().add(i)),
                scale(p.in2, b.as_ptr().add(i)),
            );
            let v = rdbpot(srdhm(raw, p.out.multiplier), right);
            // `as i16` truncates: keep the low 16 bits, sign-extended, so the
            // saturating pack in `finish_store` leaves them as they are.
            let v = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(v));
            finish_store(
                v,
                p.out_offset,
                p.act_min,
                p.act_max,
                out.as_mut_ptr().add(i),
            );
            i += 8;
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod simd_tests {
    use super::*;
    use proptest::prelude::*;

    fn activation() -> impl Strategy<Value = FusedActivation> {
        prop_oneof![
            Just(FusedActivation::None),
            Just(FusedActivation::Relu),
            Just(FusedActivation::Relu6),
            Just(FusedActivation::ReluN1To1),
        ]
    }

    fn zero_point() -> impl Strategy<Value = i32> {
        // Mostly int8, sometimes far outside (the int16 offset arithmetic wraps then).
        prop_oneof![9 => -128i32..=127, 1 => -40_000i32..40_000]
    }

    fn qparams() -> impl Strategy<Value = QParams> {
        (1e-4f32..2.0, zero_point()).prop_map(|(s, z)| QParams::new(s, z))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The AVX2 lanes of MUL (element-wise and scalar-broadcast) against the scalar
        /// form of LiteRT's vector lane.
        #[test]
        fn mul_lanes_match_scalar(
            (qa, qb, qo, act) in (qparams(), qparams(), qparams(), activation()),
            a in prop::collection::vec(any::<i8>(), 0..200),
            seed in any::<u64>(),
        ) {
            let Ok(mul) = Mul::new(qa, qb, qo, act) else { return Ok(()) };
            let p = mul.params;
            let b: Vec<i8> = a.iter().enumerate().map(|(i, &x)| (x as u64 ^ seed.rotate_left(i as u32)) as i8).collect();
            let mut got = vec![0i8; a.len()];
            let done = simd_x86::mul_vector_lanes(&p, simd_x86::Operand::Slice(&a), &b, &mut got);
            for i in 0..done {
                let want = p.finish_vector(
                    i16::from(a[i]).wrapping_add(p.in1_offset as i16),
                    i16::from(b[i]).wrapping_add(p.in2_offset as i16),
                );
                prop_assert_eq!(got[i], want, "lane {}", i);
            }
            let x = (p.in1_offset + i32::from(a.first().copied().unwrap_or(3))) as i16;
            let done = simd_x86::mul_vector_lanes(&p, simd_x86::Operand::Broadcast(x), &b, &mut got);
            for i in 0..done {
                let want = p.finish_vector(x, i16::from(b[i]).wrapping_add(p.in2_offset as i16));
                prop_assert_eq!(got[i], want, "broadcast lane {}", i);
            }
        }

        /// The AVX2 lanes of ADD against `add_vector_lane`.
        #[test]
        fn add_lanes_match_scalar(
            (qa, qb, qo, act) in (qparams(), qparams(), qparams(), activation()),
            a in prop::collection::vec(any::<i8>(), 0..200),
            seed in any::<u64>(),
        ) {
            let Ok(add) = Add::new(qa, qb, qo, act) else { return Ok(()) };
            let p = add.params;
            let b: Vec<i8> = a.iter().enumerate().map(|(i, &x)| (x as u64 ^ seed.rotate_left(i as u32)) as i8).collect();
            let mut got = vec![0i8; a.len()];
            let done = simd_x86::add_vector_lanes(&p, &a, &b, &mut got);
            for i in 0..done {
                prop_assert_eq!(got[i], add_vector_lane(&p, a[i], b[i]), "lane {}", i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_plans_follow_tflite() {
        // Squeeze-excite: the second input broadcasts fast -> swapped, y4 = C.
        assert_eq!(
            BroadcastPlan::new(&[1, 7, 7, 40], &[1, 1, 1, 40]).unwrap(),
            BroadcastPlan::FiveFold {
                swapped: true,
                y: [1, 1, 1, 49, 40]
            }
        );
        // Per-pixel scalar: y4 = 1, the scalar-broadcast loop over C.
        assert_eq!(
            BroadcastPlan::new(&[1, 6, 6, 20], &[1, 6, 6, 1]).unwrap(),
            BroadcastPlan::FiveFold {
                swapped: true,
                y: [1, 1, 36, 20, 1]
            }
        );
        assert_eq!(
            BroadcastPlan::new(&[2, 3], &[2, 3]).unwrap(),
            BroadcastPlan::Elementwise { len: 6 }
        );
        // Lower rank operand is padded with leading 1s.
        assert_eq!(
            BroadcastPlan::new(&[5], &[2, 3, 5]).unwrap(),
            BroadcastPlan::FiveFold {
                swapped: false,
                y: [1, 1, 1, 6, 5]
            }
        );
        assert!(matches!(
            BroadcastPlan::new(&[3, 1, 4, 1], &[1, 5, 1, 6]).unwrap(),
            BroadcastPlan::Generic { .. }
        ));
        assert!(BroadcastPlan::new(&[2, 3], &[3, 2]).is_err());
    }

    #[test]
    fn add_by_hand() {
        // Equal scales 0.1, zero points 0, output scale 0.2: twice_max = 0.2, input
        // multipliers 0.5 (2^30, shift 0), output 0.2 / (2^20 * 0.2) = 2^-20.
        let q = QParams::new(0.1, 0);
        let add = Add::new(q, q, QParams::new(0.2, 0), FusedActivation::None).unwrap();
        let a = [10i8, -10, 3, 127];
        let b = [5i8, -6, 0, 127];
        let mut out = [0i8; 4];
        add.run(&a, &[4], &b, &[4], &mut out).unwrap();
        // (10 + 5) * 0.1 / 0.2 = 7.5 -> 8 (half away from zero); -16 * 0.5 = -8;
        // 1.5 -> 2; 254 / 2 = 127.
        assert_eq!(out, [8, -8, 2, 127]);
        // A fused RELU with output zero point 0 clamps at 0.
        let relu = Add::new(q, q, QParams::new(0.2, 0), FusedActivation::Relu).unwrap();
        relu.run(&a, &[4], &b, &[4], &mut out).unwrap();
        assert_eq!(out, [8, 0, 2, 127]);
    }

    #[test]
    fn sub_and_mul_by_hand() {
        let q = QParams::new(0.5, 1);
        let sub = Sub::new(q, q, QParams::new(0.5, -2), FusedActivation::None).unwrap();
        let mut out = [0i8; 2];
        // (9 - 1) - (4 - 1) = 5 -> 5 - 2 = 3; (1-1) - (11-1) = -10 -> -12
        sub.run(&[9, 1], &[2], &[4, 11], &[2], &mut out).unwrap();
        assert_eq!(out, [3, -12]);
        // 0.5 * 0.5 / 0.25 = 1: the product of the offset values.
        let mul = Mul::new(q, q, QParams::new(0.25, 0), FusedActivation::None).unwrap();
        mul.run(&[4, -3], &[2], &[6], &[1], &mut out).unwrap();
        assert_eq!(out, [15, -20]);
    }

    #[test]
    fn sub_above_one_by_hand() {
        // Scales 0.25 and 2^-40: real output multiplier 0.5 / (2^20 * 2^-40) = 2^19,
        // Q31 2^30 with shift 20. A difference of one input step is 2^19 at 2^20
        // resolution; the high multiply halves it to 2^18. Scalar: 2^18 >> 12 = 64,
        // plus 1 for a non-negative value; -2^18 >> 12 = -64. Vector: the sign only.
        let q = QParams::new(0.25, 0);
        let out = QParams::new(2f32.powi(-40), 0);
        let sub = Sub::new(q, q, out, FusedActivation::None).unwrap();
        let (a, b) = ([1i8, 0, 2, 2, 1], [0i8, 1, 2, 2, 0]);
        let mut got = [0i8; 5];
        sub.run(&a, &[5], &b, &[5], &mut got).unwrap();
        // Four lanes through the vectorized loop, the fifth through the scalar tail.
        assert_eq!(got, [1, -1, 1, 1, 65]);
        sub.clone()
            .in_place(true)
            .run(&a, &[5], &b, &[5], &mut got)
            .unwrap();
        assert_eq!(got, [65, -64, 1, 1, 65]);
        // Broadcasting is always scalar.
        let mut two = [0i8; 2];
        sub.run(&[1, 0], &[2], &[0], &[1], &mut two).unwrap();
        assert_eq!(two, [65, 1]);
        // A fused RELU clamps at the zero point.
        let relu = Sub::new(q, q, out, FusedActivation::Relu).unwrap();
        relu.in_place(true)
            .run(&a, &[5], &b, &[5], &mut got)
            .unwrap();
        assert_eq!(got, [65, 0, 1, 1, 65]);

        // Exactly 1 (LiteRT aborts), 2^31 (not modelled), RELU6's bound beyond int32.
        assert!(Sub::new(q, q, QParams::new(2f32.powi(-21), 0), FusedActivation::None).is_err());
        assert!(Sub::new(q, q, QParams::new(2f32.powi(-52), 0), FusedActivation::None).is_err());
        assert!(Sub::new(q, q, out, FusedActivation::Relu6).is_err());
        // ADD keeps refusing anything from 1 up: LiteRT's ADD aborts.
        assert!(Add::new(q, q, out, FusedActivation::None).is_err());
    }

    #[test]
    fn min_max_broadcast() {
        let mut out = [0i8; 4];
        MinMax::Maximum
            .run(&[1, -5], &[2, 1], &[0, 3], &[1, 2], &mut out)
            .unwrap();
        assert_eq!(out, [1, 3, 0, 3]);
        MinMax::Minimum
            .run(&[1, -5], &[2, 1], &[0, 3], &[1, 2], &mut out)
            .unwrap();
        assert_eq!(out, [0, 1, -5, -5]);
    }

    #[test]
    fn inconsistent_inputs_are_errors() {
        let q = QParams::new(0.1, 0);
        let add = Add::new(q, q, q, FusedActivation::None).unwrap();
        let mut out = [0i8; 3];
        assert!(add.run(&[1, 2], &[3], &[1, 2, 3], &[3], &mut out).is_err());
        assert!(add.run(&[1, 2, 3], &[3], &[1, 2], &[2], &mut out).is_err());
        assert!(Add::new(QParams::new(0.0, 0), q, q, FusedActivation::None).is_err());
        // An output scale so small that the output multiplier exceeds 1.
        assert!(Add::new(q, q, QParams::new(1e-9, 0), FusedActivation::None).is_err());
        assert!(Sub::new(QParams::new(0.1, 200), q, q, FusedActivation::None).is_err());
        assert!(Mul::new(q, q, QParams::new(f32::NAN, 0), FusedActivation::None).is_err());
    }

    #[test]
    fn vector_rounding_helpers() {
        assert_eq!(neon::shl(5, 2), 20);
        assert_eq!(neon::shl(-5, -1), -3); // truncating (floor) shift
        assert_eq!(neon::rounding_shl(-5, -1), -2); // -2.5 rounds up to -2
        assert_eq!(neon::rounding_shl(5, -1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // scalar: away from zero
        assert_eq!(neon::clamp_i8(100, -128, 50), 50);
    }
}
