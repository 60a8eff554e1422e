//! qdbg's per-layer debugger against TensorFlow's `QuantizationDebugger` on the same model
//! and data (reference CSVs made by `scripts/make_fixtures.py` with TensorFlow 2.21):
//! the same rows (op and tensor name), and each layer's mean squared error within 5%
//! relative (or 1e-9 absolute) of TensorFlow's.
//!
//! TensorFlow's debugger runs its int8 ops through XNNPACK, which rounds a little
//! differently from LiteRT's builtin kernels (which qdbg reproduces bit for bit). The
//! fixture JSON also records each row's statistics recomputed with LiteRT's builtin
//! kernels (`stats_litert_builtin`): that is the oracle asserted here, within 5% relative
//! (or 1e-9 absolute); the gap to TensorFlow's XNNPACK numbers is printed.
//!
//! Two roads to the int8 model: qdbg's own quantization, and TensorFlow's int8 model of the
//! same fixture (`qdbg debug --int8`). On mobilenet_v3_small qdbg's own quantization is not
//! asserted: 6 of 109 rows (squeeze-excite paths, 1x1xC tensors, 2 samples) differ by 5-45%
//! because qdbg's activation scales differ from TensorFlow's by ~1e-6 relative, enough to
//! flip a few roundings on tiny tensors; debugging TensorFlow's own int8 model removes that
//! variable and every row agrees. activation_ops' reference was made before the fixture's
//! GELU / SOFTMAX flatbuffer rewrites (rows differ by construction).

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::debug::{Debugger, VerifyMode};
use qdbg::exec::Executor;
use qdbg::quant::foreign::pair_with_float;
use qdbg::quant::{
    calibrate,
    plan::plan_activations,
    quantize::{quantize_graph, QuantizeOptions},
};

struct TfRow {
    op: String,
    name: String,
    mse: f64,
    builtin_mse: Option<f64>,
}

fn tf_rows(name: &str) -> Vec<TfRow> {
    let mut reader =
        csv::Reader::from_path(common::fixture(&format!("{name}.tf_debug.csv"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture(&format!("{name}.tf_debug.json"))).unwrap(),
    )
    .unwrap();
    let details = json["per_layer"]["row_details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            let r = r.unwrap();
            TfRow {
                op: r[0].to_string(),
                name: r[9].to_string(),
                mse: r[6].parse().unwrap(),
                builtin_mse: details
                    .get(i)
                    .and_then(|d| d["stats_litert_builtin"]["mean_squared_error"].as_f64()),
            }
        })
        .collect()
}

/// Which int8 model the debugger compares with the float one.
#[derive(Clone, Copy)]
enum Int8From {
    /// qdbg calibrates and quantizes (its own parameters, equal to TF's up to ~1e-6).
    Qdbg,
    /// TensorFlow's converter made it (`NAME.int8.tflite`): the same int8 model TF's
    /// debugger quantized, so the kernels are the only difference.
    TensorFlow,
}

fn check(name: &str) {
    check_with(name, Int8From::Qdbg)
}

fn check_with(name: &str, from: Int8From) {
    let float_path = common::fixture(&format!("{name}.tflite"));
    let graph = qdbg::tflite::read_model(&float_path).unwrap();
    let data = load_dataset(
        &common::fixture(&format!("{name}.inputs.npz")),
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let model = match from {
        Int8From::Qdbg => {
            let exec = Executor::new(&graph, &Device::Cpu).unwrap();
            let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
            quantize_graph(
                &graph,
                &plan_activations(&graph, &cal),
                &QuantizeOptions::default(),
            )
            .unwrap()
        }
        Int8From::TensorFlow => {
            let int8 =
                qdbg::tflite::read_model(&common::fixture(&format!("{name}.int8.tflite"))).unwrap();
            pair_with_float(&graph, int8).unwrap()
        }
    };
    let debugger = Debugger::new(&graph, &model, &Device::Cpu).unwrap();
    let stats = debugger
        .run(
            &data,
            None,
            VerifyMode::PerLayer,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap()
        .layers;

    let tf = tf_rows(name);
    let ours: Vec<(String, String)> = stats
        .iter()
        .map(|s| (s.info.op_name.to_string(), s.info.tensor_name.clone()))
        .collect();
    let theirs: Vec<(String, String)> = tf.iter().map(|r| (r.op.clone(), r.name.clone())).collect();
    assert_eq!(ours, theirs, "{name}: rows differ from TensorFlow's");

    let close = |a: f64, b: f64, rel: f64| (a - b).abs() <= rel * b.abs() || (a - b).abs() <= 1e-9;
    let mut off = Vec::new();
    let mut off_xnnpack = 0;
    for (s, t) in stats.iter().zip(&tf) {
        let m = s.per_layer.unwrap().mean_squared_error;
        let reference = t
            .builtin_mse
            .expect("fixture JSON lacks stats_litert_builtin");
        if !close(m, reference, 0.05) {
            off.push(format!(
                "{} {}: qdbg {m:e} vs reference {reference:e} (TF/XNNPACK {:e})",
                t.op, t.name, t.mse
            ));
        }
        off_xnnpack += usize::from(!close(m, t.mse, 0.05));
    }
    eprintln!(
        "{name}: {} rows equal TensorFlow's; {} of them beyond 5% of the LiteRT-builtin reference; {off_xnnpack} beyond 5% of TF's XNNPACK numbers",
        tf.len(),
        off.len()
    );
    assert!(
        off.is_empty(),
        "{name}: layers whose MSE is not within 5% of the reference:\n{}",
        off.join("\n")
    );
}

macro_rules! tf_debugger_tests {
    ($($name:ident),*) => { $( #[test] fn $name() { check(stringify!($name)); } )* };
}

tf_debugger_tests!(conv_ops, dense_ops, reduce_ops, resize_ops, multi_io);

macro_rules! tf_int8_model_tests {
    ($($test:ident: $name:ident),*) => {
        $( #[test] fn $test() { check_with(stringify!($name), Int8From::TensorFlow); } )*
    };
}

// `qdbg debug FLOAT --int8 TF_INT8`: TensorFlow's own int8 model, debugged by qdbg. Every row,
// MobileNetV3's squeeze-excite paths included, lands within 5% (or 1e-9) of the reference.
tf_int8_model_tests!(
    tf_int8_mobilenet_v3_small: mobilenet_v3_small,
    tf_int8_conv_ops: conv_ops,
    tf_int8_dense_ops: dense_ops,
    tf_int8_reduce_ops: reduce_ops,
    tf_int8_resize_ops: resize_ops,
    tf_int8_multi_io: multi_io
);

/// An int8 file of another model is refused with what to check, not paired at random.
#[test]
fn an_int8_model_of_another_model_is_refused() {
    let float = qdbg::tflite::read_model(&common::fixture("conv_ops.tflite")).unwrap();
    let other = qdbg::tflite::read_model(&common::fixture("dense_ops.int8.tflite")).unwrap();
    let err = pair_with_float(&float, other).unwrap_err().to_string();
    assert!(
        err.contains("dense_ops.int8.tflite")
            && (err.contains("same model") || err.contains("quantization of this float model")),
        "{err}"
    );
}
