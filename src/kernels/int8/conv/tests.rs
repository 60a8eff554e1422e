//! Hand-computed cases of the reference conv-like kernels.

use super::*;

fn geometry(
    in_hw: (usize, usize),
    in_c: usize,
    out_hw: (usize, usize),
    out_c: usize,
) -> ConvGeometry {
    ConvGeometry {
        batch: 1,
        in_h: in_hw.0,
        in_w: in_hw.1,
        in_c,
        out_h: out_hw.0,
        out_w: out_hw.1,
        out_c,
        k_h: 1,
        k_w: 1,
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: 0,
        pad_left: 0,
        depth_multiplier: 1,
    }
}

#[test]
fn second_rounding_step_breaks_ties_as_told() {
    // 0.125 = 0.5 * 2^-2: multiplier 2^30, shift -2. -20 * 0.125 = -2.5 exactly; the
    // high multiply gives -10 exactly, then -10 / 4 = -2.5 is the tie.
    let m = QuantizedMultiplier::from_real(0.125);
    assert_eq!(requantize(-20, m, Rounding::HalfUp), -2);
    assert_eq!(requantize(-20, m, Rounding::HalfAwayFromZero), -3);
    assert_eq!(requantize(20, m, Rounding::HalfUp), 3);
    assert_eq!(requantize(20, m, Rounding::HalfAwayFromZero), 3);
    // Double rounding: -21 * 0.125 = -2.625, but the high multiply first rounds
    // -10.5 up to -10, and -10 / 4 = -2.5 is a tie again (single rounding: -3).
    assert_eq!(requantize(-21, m, Rounding::HalfUp), -2);
    assert_eq!(requantize(-21, m, Rounding::HalfAwayFromZero), -3);
    // The high multiply's own tie goes up on both paths: 0.5 * -3 = -1.5 -> -1.
    let half = QuantizedMultiplier::from_real(0.5);
    assert_eq!(requantize(-3, half, Rounding::HalfUp), -1);
    assert_eq!(requantize(-3, half, Rounding::HalfAwayFromZero), -1);
    // A multiplier above 1 shifts left first: 3.0 = 0.75 * 2^2.
    assert_eq!(
        requantize(-7, QuantizedMultiplier::from_real(3.0), Rounding::HalfUp),
        -21
    );
}

/// 3x3 input of ones above the zero point, 3x3 filter of ones, SAME: each output
/// counts its in-image taps (corner 4, edge 6, centre 9). Padded taps must add
/// nothing, not (pad - zero point) * w.
#[test]
fn padding_taps_contribute_nothing() {
    let mut g = geometry((3, 3), 1, (3, 3), 1);
    g.k_h = 3;
    g.k_w = 3;
    g.pad_top = 1;
    g.pad_left = 1;
    // input 0.5 * filter 2 / output 1 = 1.0: the accumulator comes out unchanged.
    let op = ConvInt8::new(
        QParams::new(0.5, 10),
        &[2.0],
        QParams::new(1.0, -3),
        FusedActivation::None,
        1,
    )
    .unwrap();
    let input = [11i8; 9];
    let mut out = [0i8; 9];
    op.conv2d(&g, &input, &[1; 9], None, &mut out).unwrap();
    assert_eq!(out, [1, 3, 1, 3, 6, 3, 1, 3, 1]); // counts - 3 (output zero point)
    g.depth_multiplier = 1;
    op.depthwise(&g, &input, &[1; 9], Some(&[100]), &mut out)
        .unwrap();
    assert_eq!(out, [101, 103, 101, 103, 106, 103, 101, 103, 101]);
}

/// One pixel, two input channels, two filters, bias, ReLU6. input scale 0.5, zp 4;
/// filter scales 0.25 / 0.5; output scale 0.25, zp -10, so the factors are 0.5 and 1.
#[test]
fn conv_by_hand() {
    let g = geometry((1, 1), 2, (1, 1), 2);
    let op = ConvInt8::new(
        QParams::new(0.5, 4),
        &[0.25, 0.5],
        QParams::new(0.25, -10),
        FusedActivation::Relu6,
        2,
    )
    .unwrap();
    // ReLU6: 0 -> -10, 6 / 0.25 = 24 -> 14.
    assert_eq!(op.activation_range(), (-10, 14));
    // x - zp = (3, -6). Channel 0: 3*5 + -6*2 + 8 = 11; * 0.5 = 5.5 -> 6; -10 + 6 = -4.
    // Channel 1: 3*-1 + -6*-7 + 0 = 39 -> 39 - 10 = 29 -> clamped to 14.
    let mut out = [0i8; 2];
    op.conv2d(&g, &[7, -2], &[5, 2, -1, -7], Some(&[8, 0]), &mut out)
        .unwrap();
    assert_eq!(out, [-4, 14]);
}

/// Nine depthwise channels: the first eight round the 2.5 tie up, the ninth (the
/// scalar tail of LiteRT's requantization loop) away from zero.
#[test]
fn depthwise_tail_channels_round_away_from_zero() {
    let mut g = geometry((1, 1), 9, (1, 1), 9);
    g.depth_multiplier = 1;
    // input 1 * filter 0.125 / output 1 = 0.125; accumulators -20 -> -2.5.
    let op = ConvInt8::new(
        QParams::new(1.0, 0),
        &[0.125],
        QParams::new(1.0, 0),
        FusedActivation::None,
        9,
    )
    .unwrap();
    let mut out = [0i8; 9];
    op.depthwise(&g, &[-4; 9], &[5; 9], None, &mut out).unwrap();
    assert_eq!(out, [-2, -2, -2, -2, -2, -2, -2, -2, -3]);
    // Positive ties round up everywhere.
    op.depthwise(&g, &[4; 9], &[5; 9], None, &mut out).unwrap();
    assert_eq!(out, [3; 9]);
}

/// Depth multiplier 2: output channel 2c + j reads input channel c.
#[test]
fn depth_multiplier_pairs_channels() {
    let mut g = geometry((1, 1), 2, (1, 1), 4);
    g.depth_multiplier = 2;
    let op = ConvInt8::new(
        QParams::new(1.0, 1),
        &[1.0],
        QParams::new(1.0, 0),
        FusedActivation::None,
        4,
    )
    .unwrap();
    let mut out = [0i8; 4];
    // x - zp = (2, -3); filter (1, 2, 3, 4): 2, 4, -9, -12.
    op.depthwise(&g, &[3, -2], &[1, 2, 3, 4], None, &mut out)
        .unwrap();
    assert_eq!(out, [2, 4, -9, -12]);
}

#[test]
fn fully_connected_by_hand() {
    // input 0.5 zp -1, filter 0.5, output 1 zp 3: factor 0.25.
    let fc = FullyConnectedInt8::new(
        QParams::new(0.5, -1),
        &[0.5],
        QParams::new(1.0, 3),
        FusedActivation::Relu,
        2,
    )
    .unwrap();
    let mut out = [0i8; 4];
    // Row 0: x - zp = (2, 4). Unit 0: 2*3 + 4*1 + 2 = 12 -> 3 -> 6.
    //   Unit 1: 2*-5 + 4*-1 - 4 = -18 -> -4.5 -> tie rounds up to -4 -> -1 -> ReLU 3.
    // Row 1: x - zp = (-6, 0). Unit 0: -18 + 2 = -16 -> -4 -> -1 -> 3.
    //   Unit 1: 30 - 4 = 26 -> 6.5 -> 7 -> 10.
    fc.run(
        2,
        2,
        &[1, 3, -7, -1],
        &[3, 1, -5, -1],
        Some(&[2, -4]),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [6, 3, 3, 10]);
    assert_eq!(fc.activation_range(), (3, 127));
}

/// Per-tensor FULLY_CONNECTED multiplies the scales in f32 first; conv (and
/// per-channel FC) in f64. Values from TFLite's formulas, evaluated in numpy:
/// f32(0.1 * 0.3) / 0.7 -> (1472560299, -4); 0.1 * 0.3 / 0.7 in f64 -> (1472560321, -4).
#[test]
fn per_tensor_fully_connected_takes_the_float_product() {
    let (i, o) = (QParams::new(0.1, 0), QParams::new(0.7, 0));
    let fc = FullyConnectedInt8::new(i, &[0.3], o, FusedActivation::None, 3).unwrap();
    let expect_f32 = QuantizedMultiplier {
        multiplier: 1_472_560_299,
        shift: -4,
    };
    let expect_f64 = QuantizedMultiplier {
        multiplier: 1_472_560_321,
        shift: -4,
    };
    assert_eq!(fc.multipliers(), &[expect_f32; 3]);
    let fc = FullyConnectedInt8::new(i, &[0.3, 0.3], o, FusedActivation::None, 2).unwrap();
    assert_eq!(fc.multipliers(), &[expect_f64; 2]);
    let conv = ConvInt8::new(i, &[0.3], o, FusedActivation::None, 2).unwrap();
    assert_eq!(conv.multipliers(), &[expect_f64; 2]);
}

#[test]
fn bad_parameters_are_errors() {
    let q = QParams::new(0.1, 0);
    let none = FusedActivation::None;
    assert!(ConvInt8::new(q, &[0.1, 0.2], q, none, 3).is_err()); // 2 scales, 3 channels
    assert!(ConvInt8::new(q, &[], q, none, 1).is_err());
    assert!(ConvInt8::new(q, &[0.1], q, none, 0).is_err());
    assert!(ConvInt8::new(QParams::new(0.0, 0), &[0.1], q, none, 1).is_err());
    assert!(ConvInt8::new(q, &[f32::NAN], q, none, 1).is_err());
    assert!(ConvInt8::new(q, &[-0.1], q, none, 1).is_err());
    assert!(ConvInt8::new(q, &[0.1], QParams::new(0.1, 200), none, 1).is_err());
    assert!(ConvInt8::new(
        QParams::new(1e30, 0),
        &[1e30],
        QParams::new(1e-30, 0),
        none,
        1
    )
    .is_err());
    assert!(FullyConnectedInt8::new(q, &[0.1], q, FusedActivation::Tanh, 1).is_err());
    // A tiny output scale must not overflow the activation range computation.
    let tiny = QParams::new(1e-30, 5);
    let op = ConvInt8::new(
        QParams::new(1e-30, 0),
        &[0.1],
        tiny,
        FusedActivation::Relu6,
        1,
    )
    .unwrap();
    assert_eq!(op.activation_range(), (5, 127));
}

#[test]
fn bad_shapes_are_errors() {
    let op = ConvInt8::new(
        QParams::new(1.0, 0),
        &[1.0],
        QParams::new(1.0, 0),
        FusedActivation::None,
        2,
    )
    .unwrap();
    let g = geometry((2, 2), 1, (2, 2), 2);
    let (input, filter, mut out) = ([0i8; 4], [0i8; 2], [0i8; 8]);
    assert!(op.conv2d(&g, &input, &filter, None, &mut out).is_ok());
    assert!(op.conv2d(&g, &input[..3], &filter, None, &mut out).is_err());
    assert!(op.conv2d(&g, &input, &filter[..1], None, &mut out).is_err());
    assert!(op.conv2d(&g, &input, &filter, None, &mut out[..7]).is_err());
    assert!(op
        .conv2d(&g, &input, &filter, Some(&[1]), &mut out)
        .is_err());
    let wrong_channels = geometry((2, 2), 1, (2, 2), 3);
    assert!(op
        .conv2d(&wrong_channels, &input, &[0; 3], None, &mut [0; 12])
        .is_err());
    let mut zero_stride = g;
    zero_stride.stride_h = 0;
    assert!(op
        .conv2d(&zero_stride, &input, &filter, None, &mut out)
        .is_err());
    let mut dm = g;
    dm.depth_multiplier = 2;
    assert!(op.conv2d(&dm, &input, &filter, None, &mut out).is_err());
    // Depthwise with 1 input channel and multiplier 1 cannot have 2 outputs.
    assert!(op.depthwise(&g, &input, &filter, None, &mut out).is_err());
    let mut huge = g;
    huge.stride_w = usize::MAX;
    assert!(op.conv2d(&huge, &input, &filter, None, &mut out).is_err());
    huge = g;
    huge.batch = usize::MAX;
    assert!(op.conv2d(&huge, &input, &filter, None, &mut out).is_err());
    let fc = FullyConnectedInt8::new(
        QParams::new(1.0, 0),
        &[1.0],
        QParams::new(1.0, 0),
        FusedActivation::None,
        2,
    )
    .unwrap();
    assert!(fc.run(2, 3, &[0; 6], &[0; 6], None, &mut [0; 4]).is_ok());
    assert!(fc.run(2, 3, &[0; 5], &[0; 6], None, &mut [0; 4]).is_err());
    assert!(fc
        .run(usize::MAX, 3, &[0; 6], &[0; 6], None, &mut [0; 4])
        .is_err());
    assert!(fc
        .run(2, 3, &[0; 6], &[0; 6], Some(&[0; 3]), &mut [0; 4])
        .is_err());
    // Depth 0: the outputs are the requantized biases.
    let mut out = [0i8; 4];
    fc.run(2, 0, &[], &[], Some(&[-5, 7]), &mut out).unwrap();
    assert_eq!(out, [-5, 7, -5, 7]);
}
