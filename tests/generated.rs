//! Differential testing of qdbg's quantizer against TensorFlow's on generated graphs
//! (issue 20): random float models over the ops qdbg quantizes, with the structures that
//! stress parameter rules (reshape + concatenation heads, in-place residual adds, shared
//! inputs, pooling after activations, pad and pad with a value, split and concatenation of
//! branches of very different ranges, near-zero and all-zero branches, fused activations),
//! each with TensorFlow's own int8 model of it (tests/fixtures/generated, made once by
//! scripts/make_generated.sh with pinned TensorFlow; no TensorFlow here).
//!
//! Per model: qdbg quantizes it (its pre-write checker runs inside), every activation
//! parameter equals TensorFlow's (scale within 1e-6 relative, same zero point), qdbg
//! inserts as many requantizes as TensorFlow, and qdbg's int8 model is no worse than
//! TensorFlow's against float (output SQNR within 0.5 dB), both int8 models run on qdbg's
//! int8 kernels (bit-exact with LiteRT's builtin kernels: tests/int8_oracle.rs).
//!
//! `QDBG_GENERATED_DIR=DIR cargo test --release --test generated -- --nocapture` runs the
//! same comparison on a longer run made with `scripts/make_generated.sh --out DIR`.

mod common;

use std::path::PathBuf;

use common::tf_quantizer::{calibrated, compare_params, outputs, qdbg_int8, requantizes, sqnr_db};

/// Differences not yet explained or fixed (issue 20 stays open for them): the model, and
/// what differs. Both come from a 2,000-model run and are kept here as regression cases with
/// their seeds. The test fails if one of them stops differing, so the list stays true.
const OPEN: &[(&str, &str)] = &[
    (
        "g2468",
        "a STRIDED_SLICE after a TANH: TensorFlow gives it the TANH's fixed parameters (1/128, 0), \
         qdbg its own calibrated range (from a 2,000-model run; not yet analysed)",
    ),
    (
        "g3265",
        "output SQNR 23.8 dB vs TensorFlow's 25.0 dB with equal activation parameters (from a \
         2,000-model run; not yet analysed)",
    ),
];

fn is_about(failure: &str, stem: &str) -> bool {
    failure.starts_with(&format!("{stem}:")) || failure.starts_with(&format!("{stem} "))
}

fn models() -> (PathBuf, Vec<PathBuf>) {
    let dir = std::env::var_os("QDBG_GENERATED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::fixture("generated"));
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".tflite") && !name.ends_with(".tf_int8.tflite")
        })
        .collect();
    models.sort();
    (dir, models)
}

#[test]
fn generated_models_quantize_as_tensorflow_does() {
    let (dir, models) = models();
    assert!(
        models.len() >= 200 || std::env::var_os("QDBG_GENERATED_DIR").is_some(),
        "expected at least 200 generated models in {}, found {}",
        dir.display(),
        models.len()
    );
    let mut failures = Vec::new();
    let (mut tensors, mut requantized, mut tf_left_float) = (0, 0, 0);
    for float in &models {
        let stem = float.file_stem().unwrap().to_string_lossy().into_owned();
        let inputs = dir.join(format!("{stem}.inputs.npz"));
        let tf_path = dir.join(format!("{stem}.tf_int8.tflite"));
        let tf = qdbg::tflite::read_model(&tf_path).unwrap();
        let ours = match std::panic::catch_unwind(|| qdbg_int8(float, &inputs)) {
            Ok((ours, _)) => ours,
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "panic".into());
                failures.push(format!("{stem}: qdbg could not quantize it: {why}"));
                continue;
            }
        };

        let (compared, mismatches) = compare_params(&ours, &tf);
        tensors += compared;
        if !mismatches.is_empty() {
            failures.push(format!(
                "{stem}: {} of {compared} differ: {mismatches:?}",
                mismatches.len()
            ));
        }
        let (ours_rq, tf_rq) = (requantizes(&ours), requantizes(&tf));
        requantized += tf_rq;
        if ours_rq != tf_rq {
            failures.push(format!("{stem}: {ours_rq} requantizes, TensorFlow {tf_rq}"));
        }

        // TensorFlow's driver leaves some ops float in a "full int8" model (it never comes
        // back to a same-scale op it skipped); qdbg quantizes every op on purpose, so its
        // outputs carry more rounding there and the SQNR comparison does not apply.
        if qdbg::graph::ModelKind::of(&tf).float_ops > 0 {
            tf_left_float += 1;
            continue;
        }
        let (graph, data, _) = calibrated(float, &inputs);
        let reference = outputs(&graph, &data);
        let (ours_out, tf_out) = (outputs(&ours, &data), outputs(&tf, &data));
        for (k, r) in reference.iter().enumerate() {
            let (o, t) = (sqnr_db(r, &ours_out[k]), sqnr_db(r, &tf_out[k]));
            if o < t - 0.5 {
                failures.push(format!(
                    "{stem} output {k}: qdbg {o:.2} dB, TensorFlow {t:.2} dB"
                ));
            }
        }
    }
    let (open, unexplained): (Vec<&String>, Vec<&String>) = failures
        .iter()
        .partition(|f| OPEN.iter().any(|(stem, _)| is_about(f, stem)));
    eprintln!(
        "{} generated models: {tensors} activations compared, {requantized} requantizes in \
         TensorFlow's models, {tf_left_float} where TensorFlow left ops float; {} known open differences, {} unexplained",
        models.len(),
        open.len(),
        unexplained.len()
    );
    for f in &open {
        eprintln!("  open: {f}");
    }
    let fixed: Vec<&str> = OPEN
        .iter()
        .filter(|(stem, _)| {
            models
                .iter()
                .any(|m| m.file_stem().is_some_and(|s| s == *stem))
                && !failures.iter().any(|f| is_about(f, stem))
        })
        .map(|(stem, _)| *stem)
        .collect();
    assert!(
        fixed.is_empty(),
        "no longer differ, remove from OPEN: {fixed:?}"
    );
    let unexplained: Vec<&str> = unexplained.iter().map(|s| s.as_str()).collect();
    assert!(unexplained.is_empty(), "{}", unexplained.join("\n"));
}
