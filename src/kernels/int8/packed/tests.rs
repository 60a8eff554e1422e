//! The packed kernels' vector epilogue against the scalar requantization.

use super::*;
use crate::graph::FusedActivation;
use crate::kernels::int8::conv::{requantize, Rounding};
use crate::kernels::int8::QParams;

/// The lane arithmetic of the vector epilogue, in scalar form, against the
/// reference `requantize` on edge cases: extreme accumulators, shifts, multipliers.
#[test]
fn epilogue_arithmetic_matches_requantize() {
    let accs = [
        0,
        1,
        -1,
        2,
        -2,
        3,
        -20,
        -21,
        20,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
        1 << 30,
        -(1 << 30),
        123_456_789,
        -987_654_321,
    ];
    for real in [
        1e-9, 3e-5, 0.001, 0.0625, 0.125, 0.3, 0.5, 0.999, 1.0, 3.0, 1000.0,
    ] {
        for zp in [-128, -5, 0, 17, 127] {
            let rq = Requant::new(
                QParams::new(1.0, 0),
                &[real],
                QParams::new(1.0, zp),
                FusedActivation::None,
                1,
                super::super::conv::ScaleProduct::Double,
            )
            .unwrap();
            let ep = Epilogue::new(&rq, vec![0], 1);
            for &a in &accs {
                let want = (requantize(a, rq.multipliers[0], Rounding::HalfUp).saturating_add(zp))
                    .clamp(-128, 127) as i8;
                assert_eq!(ep.scalar(a, 0), want, "acc {a} real {real} zp {zp}");
            }
        }
    }
}

/// XNNPACK's f32 epilogue: the scalar form and the AVX2 / AVX-512 lanes equal
/// [`requantize_f32`] on accumulators that overflow int8 many times over, exact ties
/// (`acc * scale` = k + 0.5, both parities) and large magnitudes.
#[test]
fn float_epilogue_matches_requantize_f32() {
    use crate::kernels::int8::{requantize_f32, Arithmetic};
    let accs: [i32; 16] = [
        0,
        1,
        -1,
        5,
        -5,
        7,
        -7,
        3,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
        1 << 24,
        (1 << 24) + 1,
        -(1 << 30),
        123_456_789,
        -987_654_321,
    ];
    for scale in [1e-9f32, 0.5, 0.25, 0.3, 1.0, 3.0, 255.0] {
        for (zp, act) in [
            (-128, FusedActivation::None),
            (17, FusedActivation::Relu),
            (0, FusedActivation::Relu6),
        ] {
            let mut rq = Requant::new(
                QParams::new(scale, 0),
                &[1.0; 16],
                QParams::new(1.0, zp),
                act,
                16,
                super::super::conv::ScaleProduct::Double,
            )
            .unwrap();
            rq.set_arithmetic(Arithmetic::Xnnpack);
            let ep = Epilogue::new(&rq, vec![0; 16], 16);
            let want: Vec<i32> = accs
                .iter()
                .map(|&a| requantize_f32(a, scale, zp, rq.act_min, rq.act_max))
                .collect();
            for (c, &a) in accs.iter().enumerate() {
                assert_eq!(
                    i32::from(ep.scalar(a, c)),
                    want[c],
                    "acc {a} scale {scale} zp {zp}"
                );
            }
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::x86_64::*;
                if simd::detected() >= Level::Avx2 {
                    let mut got = [0i32; 8];
                    for half in 0..2 {
                        // SAFETY: AVX2 was detected; both buffers hold 8 lanes.
                        unsafe {
                            let v = _mm256_loadu_si256(accs[half * 8..].as_ptr().cast());
                            let r = x86::requant8(v, &ep, half * 8);
                            _mm256_storeu_si256(got.as_mut_ptr().cast(), r);
                        }
                        assert_eq!(
                            &got[..],
                            &want[half * 8..][..8],
                            "avx2 scale {scale} zp {zp}"
                        );
                    }
                }
                if simd::detected() >= Level::Avx512 {
                    let mut got = [0i32; 16];
                    // SAFETY: AVX-512 was detected; both buffers hold 16 lanes.
                    unsafe {
                        let v = _mm512_loadu_si512(accs.as_ptr().cast());
                        let r = x86::requant16(v, &ep, 0);
                        _mm512_storeu_si512(got.as_mut_ptr().cast(), r);
                    }
                    assert_eq!(&got[..], &want[..], "avx512 scale {scale} zp {zp}");
                }
            }
        }
    }
}
