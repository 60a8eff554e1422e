//! Each output's task and the metrics that fit it (issue 22 item 2), end to end on real
//! models of the corpus: the guessed task of every output, class metrics only on classify
//! outputs, and the mask IoU of a segmentation model and the top-K box agreement and box
//! IoU of a detector as computed here from LiteRT's outputs of the float model and of
//! qdbg's int8 model (as `qdbg quantize` writes it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::ArrayD;

fn qdbg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdbg"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("running qdbg")
}

fn qdbg_ok(args: &[&str]) -> Output {
    let out = qdbg(args);
    assert!(
        out.status.success(),
        "qdbg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn corpus(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures/corpus").join(name)
}

/// Each output as LiteRT computes it (an int8 output dequantized), first axis = samples.
fn litert_outputs(model: &Path, inputs: &Path, dir: &Path, resolver: &str) -> Vec<ArrayD<f64>> {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let dump = common::litert_dump_with(model, inputs, dir, resolver);
    graph
        .outputs
        .iter()
        .map(|&id| {
            let tensor = graph.tensor(id);
            let (_, values) = dump.iter().find(|(i, _)| *i == id).unwrap();
            match (&tensor.quant, tensor.dtype.is_float()) {
                (Some(q), false) => {
                    let (scale, zp) = (f64::from(q.scale[0]), q.zero_point[0] as f64);
                    values.mapv(|v| (v - zp) * scale)
                }
                _ => values.clone(),
            }
        })
        .collect()
}

/// Quantizes `name` from the corpus into `dir`, debugs it with `extra` arguments and
/// returns the JSON report's model metrics, with LiteRT's float and int8 outputs (run by
/// LiteRT's `resolver`: see `litert_dump.py`).
fn debugged(
    name: &str,
    dir: &Path,
    extra: &[&str],
    resolver: &str,
) -> (serde_json::Value, Vec<ArrayD<f64>>, Vec<ArrayD<f64>>) {
    let model = dir.join(format!("{name}.tflite"));
    std::fs::copy(corpus(&format!("{name}.tflite")), &model).unwrap();
    let inputs = corpus(&format!("{name}.inputs.npz"));
    let int8 = dir.join(format!("{name}.int8.tflite"));
    let json = dir.join(format!("{name}.json"));
    let (model_s, inputs_s) = (model.to_str().unwrap(), inputs.to_str().unwrap());
    qdbg_ok(&[
        "quantize",
        model_s,
        "--data",
        inputs_s,
        "-o",
        int8.to_str().unwrap(),
    ]);
    let mut args = vec!["debug", model_s, "--data", inputs_s, "--json"];
    args.push(json.to_str().unwrap());
    args.extend_from_slice(extra);
    qdbg_ok(&args);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let float = litert_outputs(&model, &inputs, dir, resolver);
    let quant = litert_outputs(&int8, &inputs, dir, resolver);
    (report["model"].clone(), float, quant)
}

/// Rows of one sample, `width` values each.
fn sample_rows(a: &ArrayD<f64>, sample: usize, width: usize) -> Vec<Vec<f64>> {
    let per_sample = a.len() / a.shape()[0];
    let flat: Vec<f64> = a.iter().copied().collect();
    flat[sample * per_sample..(sample + 1) * per_sample]
        .chunks(width)
        .map(<[f64]>::to_vec)
        .collect()
}

/// Indices of the k largest values (written here independently of qdbg's).
fn largest(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].partial_cmp(&v[a]).unwrap());
    idx.truncate(k);
    idx
}

/// IoU of two [y1, x1, y2, x2] boxes.
fn iou(a: &[f64], b: &[f64]) -> f64 {
    let area = |b: &[f64]| (b[2] - b[0]).abs() * (b[3] - b[1]).abs();
    let h = (a[2].max(a[0]).min(b[2].max(b[0])) - a[0].min(a[2]).max(b[0].min(b[2]))).max(0.0);
    let w = (a[3].max(a[1]).min(b[3].max(b[1])) - a[1].min(a[3]).max(b[1].min(b[3]))).max(0.0);
    let union = area(a) + area(b) - h * w;
    if union > 0.0 {
        h * w / union
    } else {
        1.0
    }
}

fn output(m: &serde_json::Value, k: usize) -> &serde_json::Value {
    &m["outputs"][k]
}

#[test]
fn segmentation_mask_iou_is_litert_s() {
    let dir = tempfile::tempdir().unwrap();
    // Its custom op (Convolution2DTransposeBias) runs only in LiteRT's default runtime,
    // whose int8 arithmetic is XNNPACK's: qdbg is asked for the same.
    let (m, float, quant) = debugged(
        "selfie_segmentation",
        dir.path(),
        &["--int8-arithmetic", "xnnpack"],
        "default",
    );
    let o = output(&m, 0);
    assert_eq!(o["task"], "segment");
    assert_eq!(o["task_guessed"], true);
    assert!(o.get("classify").is_none(), "{o}");
    assert!(m["classified_output"].is_null());
    // The mask is a sigmoid's: values in [0, 1], cut at 0.5.
    assert!(float[0].iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(o["segment"]["threshold"], 0.5);
    let samples = float[0].shape()[0];
    let per_sample = float[0].len() / samples;
    let (f, q): (Vec<f64>, Vec<f64>) = (
        float[0].iter().copied().collect(),
        quant[0].iter().copied().collect(),
    );
    let mut sum = 0.0;
    for s in 0..samples {
        let range = s * per_sample..(s + 1) * per_sample;
        let (mut both, mut either) = (0, 0);
        for (a, b) in f[range.clone()].iter().zip(&q[range]) {
            both += usize::from(*a > 0.5 && *b > 0.5);
            either += usize::from(*a > 0.5 || *b > 0.5);
        }
        sum += if either == 0 {
            1.0
        } else {
            both as f64 / either as f64
        };
    }
    let want = sum / samples as f64;
    let got = o["segment"]["iou"].as_f64().unwrap();
    // qdbg's float values match LiteRT's to ~1e-6: a pixel at the threshold may flip.
    assert!(
        (got - want).abs() < 1e-3,
        "mask IoU {got} vs LiteRT's {want}"
    );
}

#[test]
fn detector_boxes_agree_as_litert_s() {
    let dir = tempfile::tempdir().unwrap();
    // Identity: scores [1,896,1]; Identity_1: boxes [1,896,4].
    let (m, float, quant) = debugged(
        "keras_ssd_heads",
        dir.path(),
        &[],
        "builtin_without_default_delegates",
    );
    let (scores, boxes) = (output(&m, 0), output(&m, 1));
    for o in [scores, boxes] {
        assert_eq!(o["task"], "detect", "{o}");
        assert!(o.get("classify").is_none(), "{o}");
    }
    assert!(m["classified_output"].is_null());
    assert_eq!(boxes["detect"]["scores_output"], "Identity");
    let samples = float[0].shape()[0];
    let k = 10;
    let (mut agreement, mut box_iou) = (0.0, 0.0);
    for s in 0..samples {
        let score =
            |a: &ArrayD<f64>| -> Vec<f64> { sample_rows(a, s, 1).iter().map(|r| r[0]).collect() };
        let (ft, qt) = (largest(&score(&float[0]), k), largest(&score(&quant[0]), k));
        let matched: Vec<usize> = ft.iter().copied().filter(|i| qt.contains(i)).collect();
        agreement += matched.len() as f64 / k as f64;
        let (fb, qb) = (sample_rows(&float[1], s, 4), sample_rows(&quant[1], s, 4));
        let ious: Vec<f64> = matched.iter().map(|&i| iou(&fb[i], &qb[i])).collect();
        box_iou += ious.iter().sum::<f64>() / ious.len() as f64;
    }
    let (want_agreement, want_iou) = (agreement / samples as f64, box_iou / samples as f64);
    let got = scores["detect"]["top_k_agreement"].as_f64().unwrap();
    // One box swapping places at the edge of the top 10 (float values ~1e-6 apart) moves
    // the agreement by 1/(10 x samples).
    assert!(
        (got - want_agreement).abs() <= 1.0 / (k * samples) as f64 + 1e-12,
        "top-{k} agreement {got} vs LiteRT's {want_agreement}"
    );
    let got = boxes["detect"]["box_iou"].as_f64().unwrap();
    assert!(
        (got - want_iou).abs() < 2e-2,
        "box IoU {got} vs LiteRT's {want_iou}"
    );
}

#[test]
fn guesses_per_output_and_class_metrics_only_where_they_fit() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let run = |name: &str, extra: &[&str]| -> serde_json::Value {
        let (model, inputs, int8) = (
            corpus(&format!("{name}.tflite")),
            corpus(&format!("{name}.inputs.npz")),
            corpus(&format!("{name}.tf_int8.tflite")),
        );
        let mut args = vec![
            "debug",
            model.to_str().unwrap(),
            "--data",
            inputs.to_str().unwrap(),
            "--int8",
            int8.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        qdbg_ok(&args);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        report["model"].clone()
    };
    // Hand landmarks: 63 pixel coordinates, handedness and presence scores (one value
    // each), 63 world coordinates: none is class scores.
    let m = run("hand_landmark_lite", &[]);
    let outputs = m["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 4);
    for o in outputs {
        assert_eq!(o["task"], "regress", "{o}");
        assert!(o.get("classify").is_none(), "{o}");
    }
    assert!(m["classified_output"].is_null());
    // A softmax over 16 classes: classify, with its class metrics.
    let m = run("keras_mobilenet_v3_small", &[]);
    let o = output(&m, 0);
    assert_eq!(o["task"], "classify");
    assert!(o["classify"]["top1_agreement"].is_f64(), "{o}");
    assert_eq!(m["classified_output"], "Identity");
    // --task overrides the guess, by name or by index, and says it was given.
    let m = run(
        "hand_landmark_lite",
        &["--task", "Identity_2=classify", "--task", "3=segment"],
    );
    assert_eq!(output(&m, 2)["task"], "classify");
    assert_eq!(output(&m, 2)["task_guessed"], false);
    assert_eq!(output(&m, 3)["task"], "segment");
    assert_eq!(output(&m, 0)["task_guessed"], true);
}

#[test]
fn unknown_outputs_and_tasks_are_refused_with_the_valid_ones() {
    let (model, inputs) = (
        corpus("hand_landmark_lite.tflite"),
        corpus("hand_landmark_lite.inputs.npz"),
    );
    let (model, inputs) = (model.to_str().unwrap(), inputs.to_str().unwrap());
    let out = qdbg(&["debug", model, "--data", inputs, "--task", "boxes=detect"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no output 'boxes'") && err.contains("0=Identity, 1=Identity_1"),
        "{err}"
    );
    let out = qdbg(&["eval", model, "--data", inputs, "--task", "Identity=box"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("classify, detect, regress, segment"), "{err}");
    let out = qdbg(&["debug", model, "--data", inputs, "--task", "classify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 outputs"));
}
