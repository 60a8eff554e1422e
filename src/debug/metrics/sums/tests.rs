//! The measurement's bins and builds against their plain definitions.

use super::*;

mod fast_bin_tests {
    use super::*;

    /// The libm-free binning equals the plain formulas, halves and edges included.
    #[test]
    fn fast_bins_equal_the_rounding_formulas() {
        let mut values: Vec<f32> = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -2.5,
            0.499_999_97,
            -0.499_999_97,
            127.5,
            -128.5,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            4.125,
            -4.125,
        ];
        let mut state = 12345u64;
        for _ in 0..100_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            values.push((unit - 0.5) * 600.0);
            // Exact halves and quarters, where rounding direction matters.
            values.push(((state >> 20) % 1200) as f32 / 2.0 - 300.0);
            values.push(((state >> 30) % 1200) as f32 / 8.0 - 75.0);
        }
        for &x in &values {
            for zp in [-128i32, -3, 0, 5, 127] {
                let plain = if x.is_finite() {
                    (((x.round() as i64).saturating_add(i64::from(zp))).clamp(-128, 127) + 128)
                        as u8
                } else if x.is_nan() {
                    (zp.clamp(-128, 127) + 128) as u8
                } else if x > 0.0 {
                    255
                } else {
                    0
                };
                assert_eq!(step_bin(x, zp), plain, "x {x} zp {zp}");
            }
            assert_eq!(
                usize::from(error_step_bin(x)),
                error_bin(f64::from(x)),
                "x {x}"
            );
        }
    }
}

mod instruction_set_tests {
    use super::*;
    use crate::kernels::simd::Level;

    /// The AVX2 and AVX-512 builds of the measurement give the scalar build's sums and
    /// histograms bit for bit (same lanes, same order, the same multiply-adds fused), on a
    /// length that leaves a tail in the last block and in the last lane group; with the
    /// dequantized values written alongside, the same values as `dequantize_int8`'s.
    #[test]
    fn every_build_measures_the_same() {
        let n = 3 * BLOCK + 13;
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let float: Vec<f32> = (0..n).map(|_| next() * 20.0).collect();
        let raw: Vec<i8> = float
            .iter()
            .map(|&f| ((f / 0.07).round() + next() * 3.0).clamp(-128.0, 127.0) as i8)
            .collect();
        let params = crate::graph::QuantParams::per_tensor(0.07, -3);
        let expected = crate::ops::dequantize_int8(&raw, &[n], &params).unwrap();
        let measure = |level: Level, write: bool, extras: bool| {
            let (float, quant) = (
                Values::F32(&float),
                Values::Int8 {
                    raw: &raw,
                    scale: 0.07,
                    zero_point: -3,
                },
            );
            let step = Some((f64::from(0.07f32), -3));
            let mut values = vec![MaybeUninit::new(f32::NAN); n];
            let out = write.then_some(&mut values[..]);
            let sample = match level {
                Level::Scalar => measure_body(step, float, quant, 0, out, extras),
                _ => super::measure(level, step, float, quant, 0, out, extras),
            };
            if write {
                // SAFETY: initialised above (and overwritten by the measurement).
                let values: Vec<f32> = values.iter().map(|v| unsafe { v.assume_init() }).collect();
                assert_eq!(values, expected, "level {level:?}");
            }
            sample
        };
        let measure = |level: Level| {
            let sample = measure(level, false, true);
            assert_eq!(
                format!("{:?}", measure(level, true, true)),
                format!("{sample:?}"),
                "level {level:?}"
            );
            // Without the extras: TensorFlow's statistics (and the histograms) the same.
            let tf_only = measure(level, true, false);
            assert_eq!(tf_only.metrics, sample.metrics, "level {level:?}");
            assert_eq!(tf_only.noise_power, sample.noise_power, "level {level:?}");
            assert_eq!(tf_only.hist, sample.hist, "level {level:?}");
            assert!(!tf_only.extras && sample.extras);
            // Reported as not measured, not as zero.
            let mut acc = LayerAccumulator::default();
            acc.add(&tf_only);
            let m = acc.metrics();
            assert_eq!(m.mean_squared_error, sample.metrics.mean_squared_error);
            assert!(m.sqnr_db.is_nan() && m.cosine.is_nan() && m.mean_abs_error.is_nan());
            assert!(m.correlation.is_nan() && m.saturation.is_nan());
            format!("{sample:?}")
        };
        let scalar = measure(Level::Scalar);
        for level in crate::kernels::simd::available() {
            assert_eq!(measure(level), scalar, "{level:?}");
        }
    }

    /// An int8 output measured from its raw values (`from_int8_output`, what the debugger
    /// runs) and from the same values given dequantized in f64 with their raw values
    /// (`from_int8`, the path with user metrics) is the same sample, bit for bit; also with
    /// a zero point beyond the integer sums' reach, where both add f32 values instead.
    #[test]
    fn raw_and_dequantized_int8_measure_the_same() {
        let n = 2 * BLOCK + 37;
        let float: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let raw: Vec<i8> = (0..n)
            .map(|i| ((i * 53 % 256) as i32 - 128) as i8)
            .collect();
        for (scale, zp) in [(0.011f32, -5i64), (0.011, 300)] {
            let params = crate::graph::QuantParams::per_tensor(scale, zp);
            let dequantized = crate::ops::dequantize_int8(&raw, &[n], &params).unwrap();
            let from_raw = LayerSample::from_int8_output(scale, zp, &float, &raw, true, true, None);
            let from_f64 = LayerSample::from_int8(
                (f64::from(scale), zp),
                &float.iter().map(|&f| f64::from(f)).collect::<Vec<_>>(),
                &dequantized
                    .iter()
                    .map(|&q| f64::from(q))
                    .collect::<Vec<_>>(),
                &raw.iter().map(|&r| i64::from(r)).collect::<Vec<_>>(),
            );
            assert_eq!(
                format!("{from_raw:?}"),
                format!("{from_f64:?}"),
                "zero point {zp}"
            );
            // The sums against a hand-written f64 loop: exact (to f64 rounding) from the
            // integer steps; f32 lane sums beyond their reach.
            let tolerance = if STEP_ZERO_POINTS.contains(&zp) {
                1e-12
            } else {
                1e-5
            };
            let steps: Vec<f64> = raw.iter().map(|&r| (i64::from(r) - zp) as f64).collect();
            let scale = f64::from(scale);
            let sum_q: f64 = steps.iter().sum::<f64>() * scale;
            let sum_q2: f64 = steps.iter().map(|s| s * s).sum::<f64>() * scale * scale;
            assert!(
                (from_raw.sum_q - sum_q).abs() <= tolerance * sum_q.abs(),
                "zero point {zp}"
            );
            assert!(
                (from_raw.sum_q2 - sum_q2).abs() <= tolerance * sum_q2,
                "zero point {zp}"
            );
            let saturated = raw.iter().filter(|&&r| r == -128 || r == 127).count();
            assert_eq!(from_raw.saturated, saturated);
        }
    }
}
