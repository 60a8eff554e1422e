//! Micro-benchmarks of the hot kernels on MobileNetV3-small shapes, one thread: the int8
//! kernels (scalar reference against the packed kernels at every level this CPU has), the
//! float kernels the calibration and the debugger's float twins run (pointwise, depthwise
//! and direct convolution, at every level), and the debugger's per-layer measurement.
//!
//!   cargo bench --bench kernels [-- FILTER]
//!
//! Medians are in `target/criterion/<group>/<level>/new/estimates.json`
//! (`median.point_estimate`, nanoseconds); `benches/kernel_medians.sh` prints them.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use qdbg::graph::FusedActivation;
use qdbg::kernels::int8::conv::{ConvGeometry, ConvInt8, FullyConnectedInt8};
use qdbg::kernels::int8::QParams;
use qdbg::kernels::simd;
use qdbg::kernels::{conv_f32, depthwise_f32, pointwise_f32};

fn data(n: usize, seed: u32) -> Vec<i8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as i8
        })
        .collect()
}

fn op(channels: usize) -> ConvInt8 {
    let scales: Vec<f32> = (0..channels).map(|c| 0.002 + 1e-5 * c as f32).collect();
    ConvInt8::new(
        QParams::new(0.02, -3),
        &scales,
        QParams::new(0.05, 7),
        FusedActivation::Relu6,
        channels,
    )
    .expect("parameters")
}

/// A SAME-padded square geometry.
fn geometry(
    hw: usize,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    dm: usize,
) -> ConvGeometry {
    let out = hw.div_ceil(stride);
    let needed = ((out - 1) * stride + k).saturating_sub(hw);
    ConvGeometry {
        batch: 1,
        in_h: hw,
        in_w: hw,
        in_c,
        out_h: out,
        out_w: out,
        out_c,
        k_h: k,
        k_w: k,
        stride_h: stride,
        stride_w: stride,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: needed / 2,
        pad_left: needed / 2,
        depth_multiplier: dm,
    }
}

fn conv(c: &mut Criterion, name: &str, g: ConvGeometry) {
    let input = data(g.batch * g.in_h * g.in_w * g.in_c, 1);
    let filter = data(g.out_c * g.k_h * g.k_w * g.in_c, 2);
    let bias: Vec<i32> = (0..g.out_c as i32).map(|i| i * 13 - 500).collect();
    let kernel = op(g.out_c);
    let mut out = vec![0i8; g.out_h * g.out_w * g.out_c];
    let mut group = c.benchmark_group(name);
    group.bench_function("reference", |b| {
        b.iter(|| {
            kernel
                .conv2d(&g, &input, &filter, Some(&bias), &mut out)
                .expect("run")
        })
    });
    for level in simd::available() {
        let packed = kernel
            .pack_conv2d(&filter, Some(&bias), (g.k_h, g.k_w, g.in_c), level)
            .expect("pack");
        group.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
            b.iter(|| packed.run(&g, &input, &mut out).expect("run"))
        });
    }
    group.finish();
}

fn depthwise(c: &mut Criterion, name: &str, g: ConvGeometry) {
    let input = data(g.in_h * g.in_w * g.in_c, 3);
    let filter = data(g.k_h * g.k_w * g.out_c, 4);
    let bias: Vec<i32> = (0..g.out_c as i32).map(|i| i * 7 - 300).collect();
    let kernel = op(g.out_c);
    let mut out = vec![0i8; g.out_h * g.out_w * g.out_c];
    let mut group = c.benchmark_group(name);
    group.bench_function("reference", |b| {
        b.iter(|| {
            kernel
                .depthwise(&g, &input, &filter, Some(&bias), &mut out)
                .expect("run")
        })
    });
    for level in simd::available() {
        let packed = kernel
            .pack_depthwise(&filter, Some(&bias), (g.k_h, g.k_w), level)
            .expect("pack");
        group.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
            b.iter(|| packed.run(&g, &input, &mut out).expect("run"))
        });
    }
    group.finish();
}

fn fully_connected(c: &mut Criterion, name: &str, rows: usize, depth: usize, units: usize) {
    let input = data(rows * depth, 5);
    let filter = data(units * depth, 6);
    let bias: Vec<i32> = (0..units as i32).map(|i| i * 3 - 100).collect();
    let scales: Vec<f32> = (0..units).map(|u| 0.003 + 1e-6 * u as f32).collect();
    let kernel = FullyConnectedInt8::new(
        QParams::new(0.02, 5),
        &scales,
        QParams::new(0.1, -2),
        FusedActivation::None,
        units,
    )
    .expect("parameters");
    let mut out = vec![0i8; rows * units];
    let mut group = c.benchmark_group(name);
    group.bench_function("reference", |b| {
        b.iter(|| {
            kernel
                .run(rows, depth, &input, &filter, Some(&bias), &mut out)
                .expect("run")
        })
    });
    for level in simd::available() {
        let packed = kernel
            .pack(&filter, Some(&bias), depth, level)
            .expect("pack");
        group.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
            b.iter(|| packed.run(rows, &input, &mut out).expect("run"))
        });
    }
    group.finish();
}

fn floats(n: usize, seed: u32) -> Vec<f32> {
    data(n, seed)
        .into_iter()
        .map(|v| f32::from(v) / 64.0)
        .collect()
}

/// Float 1x1 convolution (fused bias and RELU6) over `rows` pixels.
fn pointwise(c: &mut Criterion, name: &str, rows: usize, in_c: usize, out_c: usize) {
    let input = floats(rows * in_c, 7);
    let weights = floats(out_c * in_c, 8);
    let bias = floats(out_c, 9);
    let g = pointwise_f32::PointwiseGeometry::dense(rows);
    let mut out = vec![0f32; rows * out_c];
    let mut group = c.benchmark_group(name);
    for level in simd::available() {
        let packed = pointwise_f32::PackedPointwise::for_level(&weights, out_c, in_c, &bias, level)
            .expect("pack");
        group.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
            b.iter(|| packed.run(&input, &g, Some((0.0, 6.0)), &mut out))
        });
    }
    group.finish();
}

/// Float depthwise convolution (fused RELU) over a SAME-padded square input.
fn depthwise_float(c: &mut Criterion, name: &str, g: ConvGeometry) {
    let dg = depthwise_f32::DepthwiseGeometry {
        batch: 1,
        in_h: g.in_h,
        in_w: g.in_w,
        in_c: g.in_c,
        depth_multiplier: 1,
        out_c: g.in_c,
        out_h: g.out_h,
        out_w: g.out_w,
        k_h: g.k_h,
        k_w: g.k_w,
        stride_h: g.stride_h,
        stride_w: g.stride_w,
        dilation_h: 1,
        dilation_w: 1,
        pad_top: g.pad_top,
        pad_left: g.pad_left,
    };
    let input = floats(g.in_h * g.in_w * g.in_c, 10);
    let filter = floats(g.k_h * g.k_w * g.in_c, 11);
    let bias = floats(g.in_c, 12);
    let mut out = vec![0f32; g.out_h * g.out_w * g.in_c];
    let mut group = c.benchmark_group(name);
    for level in simd::available() {
        group.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
            b.iter(|| {
                depthwise_f32::depthwise_conv2d_at(
                    level,
                    &dg,
                    &input,
                    &filter,
                    &bias,
                    Some((0.0, f32::INFINITY)),
                    &mut out,
                )
            })
        });
    }
    group.finish();
}

/// The float direct convolution (small convolutions: the stem).
fn conv_float(c: &mut Criterion, name: &str, g: ConvGeometry) {
    let input = floats(g.in_h * g.in_w * g.in_c, 13);
    let ohwi = floats(g.out_c * g.k_h * g.k_w * g.in_c, 14);
    let filter = conv_f32::filter_hwio(&ohwi, g.out_c, g.k_h, g.k_w, g.in_c);
    let bias = floats(g.out_c, 15);
    let mut out = vec![0f32; g.out_h * g.out_w * g.out_c];
    let mut group = c.benchmark_group(name);
    for level in simd::available() {
        group.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
            b.iter(|| conv_f32::conv2d_at(level, &g, &input, &filter, &bias, &mut out))
        });
    }
    group.finish();
}

/// The debugger's per-layer measurement of one int8 output against its float twin
/// (the CSV's statistics; with the dashboard's histograms too), at the active level.
fn measurement(c: &mut Criterion, name: &str, n: usize) {
    use qdbg::debug::metrics::LayerSample;
    let raw = data(n, 16);
    let (scale, zero_point) = (0.05f32, -3i64);
    let float: Vec<f32> = raw
        .iter()
        .zip(floats(n, 17))
        .map(|(&q, e)| (f32::from(q) + 3.0) * scale + e * scale / 4.0)
        .collect();
    let mut group = c.benchmark_group(name);
    // TensorFlow's statistics alone (`qdbg debug --csv`), with qdbg's extra metrics
    // (`--metrics`), and with the dashboard's histograms as well.
    for (id, histograms, extras) in [
        ("tensorflow-statistics", false, false),
        ("statistics", false, true),
        ("with-histograms", true, true),
    ] {
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| {
                LayerSample::from_int8_output(
                    scale, zero_point, &float, &raw, histograms, extras, None,
                )
            })
        });
    }
    group.finish();
}

fn kernels(c: &mut Criterion) {
    // The stem: 3x3 stride 2 over the 224x224 RGB input.
    conv(
        c,
        "conv3x3_224x224x3_to_16_s2",
        geometry(224, 3, 16, 3, 2, 1),
    );
    // Pointwise expansions and projections of the inverted residual blocks.
    conv(c, "conv1x1_56x56x16_to_72", geometry(56, 16, 72, 1, 1, 1));
    conv(c, "conv1x1_14x14x40_to_240", geometry(14, 40, 240, 1, 1, 1));
    conv(c, "conv1x1_7x7x96_to_576", geometry(7, 96, 576, 1, 1, 1));
    // Depthwise 3x3 stride 2 (channel tail of 8 at 72) and 5x5.
    depthwise(c, "depthwise3x3_56x56x72_s2", geometry(56, 72, 72, 3, 2, 1));
    depthwise(c, "depthwise5x5_14x14x240", geometry(14, 240, 240, 5, 1, 1));
    // The classifier head as FULLY_CONNECTED (one row) and a batch of 8 rows.
    fully_connected(c, "fc_1x576_to_1024", 1, 576, 1024);
    fully_connected(c, "fc_8x1024_to_1000", 8, 1024, 1000);
    // The same shapes in float (calibration and the debugger's float twins).
    pointwise(c, "float_conv1x1_56x56x16_to_72", 56 * 56, 16, 72);
    pointwise(c, "float_conv1x1_14x14x40_to_240", 14 * 14, 40, 240);
    pointwise(c, "float_conv1x1_7x7x96_to_576", 7 * 7, 96, 576);
    depthwise_float(
        c,
        "float_depthwise3x3_56x56x72_s2",
        geometry(56, 72, 72, 3, 2, 1),
    );
    depthwise_float(
        c,
        "float_depthwise5x5_14x14x240",
        geometry(14, 240, 240, 5, 1, 1),
    );
    conv_float(
        c,
        "float_conv3x3_224x224x3_to_16_s2",
        geometry(224, 3, 16, 3, 2, 1),
    );
    // One layer's output of 56x56x72 (the largest in MobileNetV3-small's stem stages).
    measurement(c, "measure_56x56x72", 56 * 56 * 72);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = kernels
}
criterion_main!(benches);
