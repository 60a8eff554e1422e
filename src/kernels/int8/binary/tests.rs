//! Hand-computed cases of the binary kernels.

use super::*;

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
