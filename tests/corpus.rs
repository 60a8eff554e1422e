//! The real-world corpus: the float .tflite models MediaPipe publishes (tests/fixtures/corpus,
//! made by scripts/make_corpus.sh from the pinned PyPI wheel), each checked against its
//! oracles, the conformance table of issue 16:
//!
//! (a) qdbg runs the float model as LiteRT does: every output within 1e-4 of its range;
//! (b) qdbg quantizes it (calibration on NAME.inputs.npz) and LiteRT runs qdbg's and
//!     TensorFlow's int8 models (NAME.tf_int8.tflite): each output's SQNR against the float
//!     model's is at least TensorFlow's - 0.5 dB;
//! (c) qdbg's int8 file is at most 1.02 x TensorFlow's;
//! (b') every parameter of TensorFlow's int8 model (activations, weights, biases, PReLU
//!     alphas) equals qdbg's of the same tensor name: scale within 1e-5, same zero point;
//! (d) qdbg's per-layer debugger (XNNPACK arithmetic, as TensorFlow's debugger runs) agrees
//!     with TensorFlow's `layer_statistics_dump` (NAME.tf_debug.csv): at least 95% of
//!     TensorFlow's rows have a qdbg row of the same tensor name whose mean squared error is
//!     within 5% (or both are float noise, see `mse_agrees`);
//! (e) the same on TensorFlow's own int8 model (`qdbg debug --int8`), after rewriting the
//!     float model as TensorFlow's converter rewrote it (`rewrite`: the op counts of the
//!     int8 model, the float outputs bit for bit unchanged): the kernels, float reference and
//!     pairing alone (`csv_on_tf`).
//!
//! Models where TensorFlow itself fails (manifest.json says why) are checked on (a) only,
//! and their int8 SQNR is printed. What does not hold today is listed in `KNOWN_GAPS`: the
//! test fails on any miss not listed there, and on any listed gap that no longer misses.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use common::tf_debugger::{mse_agrees, per_layer_rows, tf_rows};
use ndarray::ArrayD;
use ndarray_npy::NpzReader;
use qdbg::data::{load_dataset, Dataset, ImageOptions, InputSpec};
use qdbg::exec::{tensor_from_sample, Executor};
use qdbg::graph::Graph;
use qdbg::quant::calibrate;
use qdbg::quant::plan::plan_activations;
use qdbg::quant::quantize::{quantize_graph, QuantizeOptions};

/// The models of the wheel, in table order.
const MODELS: &[&str] = &[
    "face_detection_short_range",
    "face_detection_full_range_sparse",
    "face_landmark",
    "face_landmark_with_attention",
    "hand_landmark_lite",
    "hand_landmark_full",
    "hand_recrop",
    "iris_landmark",
    "palm_detection_lite",
    "palm_detection_full",
    "pose_detection",
    "pose_landmark_full",
    "selfie_segmentation",
    "selfie_segmentation_landscape",
    "keras_mobilenet_v2",
    "keras_mobilenet_v3_small",
    "keras_unet",
    "keras_prelu_landmarks",
    "keras_ssd_heads",
    "keras_resnet_block",
    "keras_unet_fp16",
    "keras_ssd_sparse",
];

/// Criteria that do not hold today: (model, criterion, measured value, reason).
/// Criteria: "runs" (qdbg runs the model at all), "float", "sqnr", "params", "size", "csv",
/// "rewrite", "csv_on_tf". `QDBG_CORPUS_DETAIL=1` prints every parameter that differs and
/// every CSV row off by more than 5%.
/// A measured value starting with "varies" marks a criterion whose outcome has been seen
/// both ways on this machine (with the default float kernels and with
/// `QDBG_KERNELS=scalar`): either outcome is accepted.
///
/// Sensitivity: the numbers move with the float kernels qdbg calibrates with (candle's and
/// its own, picked by CPU features at run time): `QDBG_KERNELS=scalar` moves SQNRs by up to
/// 0.4 dB (hand_landmark_full's second output by 7 dB) and CSV rows by a point or two, with
/// the same outcomes. (While this test was written, builds from two git worktrees shared one
/// target directory and sometimes ran each other's code: the "early runs" with other bias
/// and near-zero weight scales were main's newer quantizer, which these numbers now use.)
#[rustfmt::skip]
const KNOWN_GAPS: &[(&str, &str, &str, &str)] = &[
    ("face_landmark_with_attention", "runs", "refused",
     "custom ops Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks are not implemented"),
    ("face_detection_short_range", "csv_on_tf", "91%",
     "TensorFlow's int8 model fused its 17 standalone RELUs into the ops before them (one rounding), \
      its debug model did not: the two TensorFlow models compute other values downstream"),
    ("face_landmark", "csv", "varies: 97%, 95% (just under) with scalar kernels", CALIBRATION_NOISE),
    ("hand_landmark_lite", "csv", "92%", CALIBRATION_NOISE),
    ("hand_landmark_full", "csv", "92%", CALIBRATION_NOISE),
    ("hand_recrop", "sqnr", "varies: 35.6/35.6, 35.1/35.6 with scalar kernels", CALIBRATION_NOISE),
    ("pose_landmark_full", "float", "1.8e-3",
     "float32 noise the model amplifies: residual sums grow to 500 and feed RELU6 decoders, \
      per-tensor errors grow from 1e-6 of the range to 3e-2 with depth; LiteRT's own two CPU \
      paths (XNNPACK and builtin) differ by 1.7e-3 and 1.4e-3 on outputs 2 and 3, qdbg is \
      1.8e-3 / 1.3e-3 from builtin and 6.7e-5 / 7.5e-4 from XNNPACK"),
    ("selfie_segmentation", "float", "2.4e-4",
     "every tensor within 2e-5 of its range from LiteRT's XNNPACK run (the only LiteRT path with \
      its custom op) but the last: the transpose convolution's output spans 1,050 (6e-6 of it, \
      6e-3, off) and the LOGISTIC after it turns 1e-3 near 0 into 2.4e-4"),
    ("keras_mobilenet_v2", "csv", "varies: 92%, 95% with scalar kernels", CALIBRATION_NOISE),
    ("keras_mobilenet_v3_small", "csv", "91%", CALIBRATION_NOISE),
    // Since qdbg's XNNPACK arithmetic rounds ADD as XNNPACK does (its residual ADDs; on
    // TensorFlow's own int8 model every row agrees, `csv_on_tf` 100%).
    ("keras_resnet_block", "csv", "91%", CALIBRATION_NOISE),
    ("keras_prelu_landmarks", "sqnr", "varies: third output 21.2/22.2, 22.3/22.2 with scalar kernels",
     CALIBRATION_NOISE),
];

/// The reason of the gaps left where qdbg's int8 model is TensorFlow's op for op: every
/// parameter (activations, weights, biases, PReLU alphas) within 1e-5 relative of
/// TensorFlow's (`params` holds), weights and biases equal but for a few one-step ties,
/// and qdbg's debugger reproduces every row of TensorFlow's on TensorFlow's own int8 model
/// (`csv_on_tf` 100%). What is left is calibration in another float summation order
/// (qdbg's float kernels are within ~1e-6 of LiteRT's, so are the calibrated ranges): it
/// moves a few requantization multipliers by a part in a million, which flips single int8
/// steps downstream. On small late tensors (an FC head of 1-16 values, a softmax, a
/// 1-value presence score) over 8 samples one flipped step moves a layer's MSE past 5%, or
/// an output's SQNR by ~1 dB.
const CALIBRATION_NOISE: &str = "same model op for op (see CALIBRATION_NOISE)";

fn corpus(name: &str) -> PathBuf {
    common::fixture(&format!("corpus/{name}"))
}

/// LiteRT's model outputs (tests/oracle/litert_outputs.py), in the model's output order.
fn litert_outputs(model: &Path, inputs: &Path, resolver: &str, dir: &Path) -> Vec<ArrayD<f64>> {
    let graph = qdbg::tflite::read_model(model).unwrap();
    let out = dir.join(format!(
        "out-{}.npz",
        model.file_name().unwrap().to_string_lossy()
    ));
    let result = Command::new(common::oracle_python())
        .arg(common::repo().join("tests/oracle/litert_outputs.py"))
        .arg(model)
        .arg(inputs)
        .arg(&out)
        .arg("--resolver")
        .arg(resolver)
        .output()
        .expect("running the LiteRT oracle");
    assert!(
        result.status.success(),
        "litert_outputs.py failed on {}: {}",
        model.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    let mut npz = NpzReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    graph
        .outputs
        .iter()
        .map(|o| common::read_any(&mut npz, &format!("t{o}.npy")))
        .collect()
}

/// qdbg's float outputs, [output][sample] flattened.
fn qdbg_float(graph: &Graph, data: &Dataset) -> Result<Vec<Vec<Vec<f32>>>, String> {
    let exec = Executor::new(graph, &Device::Cpu).map_err(|e| e.to_string())?;
    let mut outs = vec![Vec::new(); graph.outputs.len()];
    for i in 0..data.num_samples() {
        let inputs: Vec<_> = data
            .sample(i)
            .unwrap()
            .iter()
            .map(|s| tensor_from_sample(s, &Device::Cpu).unwrap())
            .collect();
        let values = exec.run(&inputs).map_err(|e| e.to_string())?;
        for (k, v) in values.iter().enumerate() {
            outs[k].push(v.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
    }
    Ok(outs)
}

/// Worst over outputs of max |qdbg - LiteRT| / range(LiteRT).
fn float_error(ours: &[Vec<Vec<f32>>], litert: &[ArrayD<f64>]) -> f64 {
    ours.iter()
        .zip(litert)
        .map(|(o, l)| {
            let lo = l.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let worst = o
                .iter()
                .flatten()
                .zip(l.iter())
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            assert_eq!(o.iter().map(Vec::len).sum::<usize>(), l.len());
            if std::env::var_os("QDBG_CORPUS_DETAIL").is_some() {
                eprintln!("  float output: max err {worst:e}, LiteRT range {lo}..{hi}");
            }
            worst / (hi - lo).max(1e-12)
        })
        .fold(0.0, f64::max)
}

fn sqnr(reference: &[ArrayD<f64>], got: &[ArrayD<f64>]) -> Vec<f64> {
    reference
        .iter()
        .zip(got)
        .map(|(r, g)| {
            let signal: f64 = r.iter().map(|v| v * v).sum();
            let noise: f64 = r.iter().zip(g.iter()).map(|(a, b)| (a - b).powi(2)).sum();
            if noise == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (signal / noise).log10()
            }
        })
        .collect()
}

#[derive(Default)]
struct Row {
    kind: String,
    /// (criterion, holds, measured value as printed)
    results: Vec<(String, bool, String)>,
    float_err: String,
    sqnr: String,
    size: String,
    csv: String,
    csv_on_tf: String,
}

fn check(name: &str, dir: &Path) -> Row {
    let model = corpus(&format!("{name}.tflite"));
    let inputs = corpus(&format!("{name}.inputs.npz"));
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let mut row = Row {
        kind: qdbg::graph::ModelKind::of(&graph).describe(),
        ..Row::default()
    };
    let custom = row.kind.contains("custom ops");
    let resolver = if custom {
        "default"
    } else {
        "builtin_without_default_delegates"
    };

    // (a) float, against LiteRT.
    if let Err(e) = graph.check_supported() {
        row.results
            .push(("runs".to_string(), false, "refused".to_string()));
        row.float_err = "refused".to_string();
        eprintln!("  {name}: {e}");
        return row;
    }
    let data = load_dataset(
        &inputs,
        &InputSpec::for_graph(&graph),
        &ImageOptions::default(),
    )
    .unwrap();
    let ours = match qdbg_float(&graph, &data) {
        Ok(o) => o,
        Err(e) => {
            row.results
                .push(("runs".to_string(), false, "refused".to_string()));
            row.float_err = format!("refused: {e}");
            return row;
        }
    };
    let float_ref = litert_outputs(&model, &inputs, resolver, dir);
    let err = float_error(&ours, &float_ref);
    row.float_err = format!("{err:.1e}");
    row.results
        .push(("float".to_string(), err <= 1e-4, row.float_err.clone()));

    // (b) quantize.
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();
    let plan = plan_activations(&graph, &cal);
    let q = quantize_graph(&graph, &plan, &QuantizeOptions::default()).unwrap();
    let original = std::fs::read(&model).unwrap();
    let bytes = qdbg::tflite::model_bytes(&q.graph, Some(&original)).unwrap();
    let keep = std::env::var_os("QDBG_CORPUS_KEEP").map(PathBuf::from);
    let ours_path = keep
        .as_deref()
        .unwrap_or(dir)
        .join(format!("{name}.qdbg_int8.tflite"));
    std::fs::write(&ours_path, &bytes).unwrap();
    let our_sqnr = sqnr(
        &float_ref,
        &litert_outputs(&ours_path, &inputs, resolver, dir),
    );

    let tf_path = corpus(&format!("{name}.tf_int8.tflite"));
    if !tf_path.exists() {
        row.sqnr = our_sqnr
            .iter()
            .map(|o| format!("{o:.1}/TF failed"))
            .collect::<Vec<_>>()
            .join(" ");
        row.size = "-".into();
        row.csv = "-".into();
        row.csv_on_tf = "-".into();
        return row;
    }
    let tf_sqnr = sqnr(
        &float_ref,
        &litert_outputs(&tf_path, &inputs, "builtin_without_default_delegates", dir),
    );
    row.sqnr = our_sqnr
        .iter()
        .zip(&tf_sqnr)
        .map(|(o, t)| format!("{o:.1}/{t:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let sqnr_ok = our_sqnr.iter().zip(&tf_sqnr).all(|(o, t)| *o >= t - 0.5);
    row.results
        .push(("sqnr".to_string(), sqnr_ok, row.sqnr.clone()));

    // (b') every quantized tensor of TensorFlow's model, activations and constants (per
    // channel too), against the one of the same name in qdbg's file: the same zero points
    // and scales within 1e-5 (calibrating in another float summation order moves scales by
    // up to ~5e-6 on these models; a rule difference moves them by percents). Names that
    // occur twice (a bias constant several convolutions share, copied per reader) and
    // tensors the converter renamed are left out.
    let ours_graph = qdbg::tflite::read_model(&ours_path).unwrap();
    let tf_graph = qdbg::tflite::read_model(&tf_path).unwrap();
    let (differ, compared) = params_differing(name, &ours_graph, &tf_graph);
    row.results.push((
        "params".to_string(),
        differ == 0,
        format!("{differ} of {compared} differ"),
    ));

    // (c) size.
    let tf_size = std::fs::metadata(&tf_path).unwrap().len() as f64;
    let ratio = bytes.len() as f64 / tf_size;
    row.size = format!("{ratio:.3}");
    row.results
        .push(("size".to_string(), ratio <= 1.02, row.size.clone()));

    // (d) the per-layer debugger against TensorFlow's CSV.
    let stats = per_layer_rows(&graph, &q, &data);
    // TensorFlow's row for each of qdbg's: the same tensor name, else (where TensorFlow's
    // converter renamed the tensor, e.g. fusing a PAD's paddings into a depthwise
    // convolution's name) the row at the same position with the same op.
    let by_name: HashMap<&str, usize> = stats
        .iter()
        .enumerate()
        .map(|(i, s)| (s.info.tensor_name.as_str(), i))
        .collect();
    let tf = tf_rows(&corpus(&format!("{name}.tf_debug.csv")));
    let (mut agree, mut renamed, mut unmatched, mut params_differ) = (0, 0, 0, 0);
    let detail = std::env::var_os("QDBG_CORPUS_DETAIL").is_some();
    for (i, (op, n, t, scale)) in tf.iter().enumerate() {
        let ours = by_name.get(n.as_str()).copied().or_else(|| {
            let same_op = stats.len() == tf.len() && stats[i].info.op_name == op.as_str();
            renamed += usize::from(same_op);
            same_op.then_some(i)
        });
        let Some(k) = ours else {
            unmatched += 1;
            continue;
        };
        let o = stats[k]
            .per_layer
            .map_or(f64::NAN, |m| m.mean_squared_error);
        if mse_agrees(o, *t, *scale) {
            agree += 1;
            continue;
        }
        // Whether qdbg's output parameters differ from TensorFlow's for this tensor.
        let ours_q = (stats[k].info.scale, stats[k].info.zero_point);
        let tf_q = tf_graph
            .tensor_by_name(n)
            .and_then(|id| tf_graph.tensor(id).quant.as_ref())
            .map(|q| (q.scale[0], q.zero_point[0]));
        let differ = tf_q.is_none_or(|(s, z)| ((ours_q.0 - s) / s).abs() > 1e-5 || ours_q.1 != z);
        params_differ += usize::from(differ);
        if detail {
            eprintln!("  {op} {n}: qdbg {o:e} TF {t:e}; params qdbg {ours_q:?} TF {tf_q:?}");
        }
    }
    let pct = 100.0 * agree as f64 / tf.len().max(1) as f64;
    row.csv = format!("{pct:.0}% ({agree}/{})", tf.len());
    if detail {
        let (mut compared, mut differ) = (0, 0);
        for t in &tf_graph.tensors {
            let (Some(tq), Some(id)) = (&t.quant, q.graph.tensor_by_name(&t.name)) else {
                continue;
            };
            if t.is_constant() || tq.is_per_channel() {
                continue;
            }
            compared += 1;
            let same = q.graph.tensor(id).quant.as_ref().is_some_and(|oq| {
                ((oq.scale[0] - tq.scale[0]) / tq.scale[0]).abs() <= 1e-5
                    && oq.zero_point[0] == tq.zero_point[0]
            });
            differ += usize::from(!same);
        }
        eprintln!("  {name}: {differ} of {compared} activation parameters differ from TF's");
        eprintln!(
            "  {name}: {} rows qdbg, {} TF; {renamed} matched by position, {unmatched} unmatched; \
             {params_differ} of the rows off have output parameters other than TF's",
            stats.len(),
            tf.len()
        );
    }
    row.results
        .push(("csv".to_string(), pct >= 95.0, format!("{pct:.0}%")));

    // (e) TensorFlow's own int8 model, debugged by qdbg (`qdbg debug --int8`): first the
    // float model as TensorFlow's converter rewrote it, whose op counts must be the int8
    // model's (borders aside) and whose outputs must be the float model's, bit for bit;
    // then qdbg's per-layer rows on that model against TensorFlow's debugger. The
    // quantizer is out of the picture here: the kernels, the float reference and the
    // pairing are what this checks. TensorFlow's debugger ran its debug model, in which
    // the converter had not yet fused activations or folded PADs: a row of a tensor the
    // int8 model fused away has no qdbg row of the same name and is not compared.
    let (rewritten, on_tf) = qdbg::quant::foreign::pair_with_float(&graph, tf_graph.clone())
        .unwrap_or_else(|e| panic!("{name}: pairing TensorFlow's int8 model: {e}"));
    let counts = |g: &Graph| {
        let mut c: std::collections::BTreeMap<&str, usize> = Default::default();
        for n in &g.nodes {
            if !matches!(n.op.name(), "QUANTIZE" | "DEQUANTIZE") {
                // The converter writes unit-stride STRIDED_SLICEs as SLICE.
                let op = if n.op.name() == "STRIDED_SLICE" {
                    "SLICE"
                } else {
                    n.op.name()
                };
                *c.entry(op).or_default() += 1;
            }
        }
        c
    };
    let same_outputs = qdbg_float(&rewritten, &data).is_ok_and(|o| o == ours);
    let rewrite_ok = counts(&rewritten) == counts(&tf_graph) && same_outputs;
    row.results.push((
        "rewrite".to_string(),
        rewrite_ok,
        format!(
            "{} ops against TF's {}{}",
            rewritten.nodes.len(),
            counts(&tf_graph).values().sum::<usize>(),
            if same_outputs {
                ""
            } else {
                ", float outputs changed"
            }
        ),
    ));
    let stats = per_layer_rows(&rewritten, &on_tf, &data);
    let by_name: HashMap<&str, (&str, f64)> = stats
        .iter()
        .map(|s| {
            let mse = s.per_layer.map_or(f64::NAN, |m| m.mean_squared_error);
            (s.info.tensor_name.as_str(), (s.info.op_name, mse))
        })
        .collect();
    let (mut compared, mut agree) = (0, 0);
    for (op, n, t, scale) in &tf {
        // A fused op carries the name of the activation it absorbed: another op's row.
        let Some(&(_, o)) = by_name
            .get(n.as_str())
            .filter(|(ours, _)| *ours == op || (*ours == "SLICE" && op == "STRIDED_SLICE"))
        else {
            continue;
        };
        compared += 1;
        if mse_agrees(o, *t, *scale) {
            agree += 1;
        } else if detail {
            eprintln!("  on TF's int8 model: {op} {n}: qdbg {o:e} TF {t:e}");
        }
    }
    let pct_tf = 100.0 * agree as f64 / compared.max(1) as f64;
    row.csv_on_tf = format!("{pct_tf:.0}% ({agree}/{compared})");
    row.results.push((
        "csv_on_tf".to_string(),
        pct_tf >= 95.0 && compared * 2 >= tf.len(),
        row.csv_on_tf.clone(),
    ));
    row
}

/// How many of `theirs`' quantized tensors differ from `ours`' of the same name (see the
/// caller), and how many were compared. `QDBG_CORPUS_DETAIL` prints each difference.
fn params_differing(name: &str, ours: &Graph, theirs: &Graph) -> (usize, usize) {
    fn quantized_by_name(g: &Graph) -> HashMap<&str, qdbg::graph::QuantParams> {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for t in &g.tensors {
            *count.entry(t.name.as_str()).or_default() += 1;
        }
        g.tensors
            .iter()
            .filter(|t| t.quant.is_some() && count[t.name.as_str()] == 1)
            .map(|t| (t.name.as_str(), t.quant.clone().unwrap()))
            .collect()
    }
    let (ours, theirs) = (quantized_by_name(ours), quantized_by_name(theirs));
    let detail = std::env::var_os("QDBG_CORPUS_DETAIL").is_some();
    let (mut differ, mut compared) = (0, 0);
    let mut names: Vec<&&str> = theirs.keys().collect();
    names.sort();
    for n in names {
        let Some(o) = ours.get(*n) else { continue };
        let t = &theirs[*n];
        compared += 1;
        let same = o.zero_point == t.zero_point
            && o.scale.len() == t.scale.len()
            && o.scale
                .iter()
                .zip(&t.scale)
                .all(|(a, b)| ((a - b) / b).abs() <= 1e-5);
        if !same {
            differ += 1;
            if detail {
                let head = |q: &qdbg::graph::QuantParams| {
                    format!(
                        "{:?} zp {:?}",
                        &q.scale[..q.scale.len().min(3)],
                        &q.zero_point[..q.zero_point.len().min(3)]
                    )
                };
                eprintln!("  {name}: {n}: qdbg {} TF {}", head(o), head(t));
            }
        }
    }
    (differ, compared)
}

/// Set in the process that checks one model (see [`in_own_process`]).
const CHILD: &str = "QDBG_CORPUS_CHILD";

/// The child's side: check one model, print its row as tab-separated lines on stdout.
fn child(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let row = check(name, dir.path());
    println!(
        "CORPUS-ROW\t{}\t{}\t{}\t{}\t{}\t{}",
        row.kind, row.float_err, row.sqnr, row.size, row.csv, row.csv_on_tf
    );
    for (criterion, holds, measured) in &row.results {
        println!(
            "CORPUS-RESULT\t{criterion}\t{}\t{measured}",
            u8::from(*holds)
        );
    }
}

/// Each model is checked in a process of its own (this test binary, re-run with [`CHILD`]
/// set), as `qdbg` runs one model per process, so no model's result can depend on the
/// models checked before it (see KNOWN_GAPS' comment).
fn in_own_process(name: &str) -> Row {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "published_models_match_their_oracles",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, name)
        .output()
        .expect("re-running the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| l.starts_with("  ")) {
        eprintln!("{line}");
    }
    assert!(
        out.status.success(),
        "{name}: the child process failed:\n{stdout}\n{stderr}"
    );
    let mut row = Row::default();
    // (libtest prints "test NAME ... " before the child's first line.)
    for line in stdout
        .lines()
        .filter_map(|l| l.find("CORPUS-").map(|i| &l[i..]))
    {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["CORPUS-ROW", kind, float_err, sqnr, size, csv, csv_on_tf] => {
                row.kind = kind.to_string();
                row.float_err = float_err.to_string();
                row.sqnr = sqnr.to_string();
                row.size = size.to_string();
                row.csv = csv.to_string();
                row.csv_on_tf = csv_on_tf.to_string();
            }
            ["CORPUS-RESULT", criterion, holds, measured] => {
                row.results
                    .push((criterion.to_string(), *holds == "1", measured.to_string()))
            }
            _ => {}
        }
    }
    assert!(
        !row.kind.is_empty(),
        "{name}: no row from the child:\n{stdout}"
    );
    row
}

#[test]
fn published_models_match_their_oracles() {
    if let Ok(name) = std::env::var(CHILD) {
        return child(&name);
    }
    let mut failures = Vec::new();
    eprintln!(
        "| model | kind | float max err / range | SQNR dB qdbg/TF per output | size qdbg/TF | CSV rows within 5% | on TF's int8 model |"
    );
    eprintln!("|---|---|---|---|---|---|---|");
    // QDBG_CORPUS_ONLY=a,b checks only those models (the gaps of the others are not checked).
    let only = std::env::var("QDBG_CORPUS_ONLY").ok();
    for name in MODELS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|m| m == *name))
        {
            continue;
        }
        // QDBG_CORPUS_ONE_PROCESS=1: all models in this process.
        let row = if std::env::var_os("QDBG_CORPUS_ONE_PROCESS").is_some() {
            check(name, tempfile::tempdir().unwrap().path())
        } else {
            in_own_process(name)
        };
        eprintln!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            row.kind, row.float_err, row.sqnr, row.size, row.csv, row.csv_on_tf
        );
        for (criterion, holds, measured) in &row.results {
            let gap = KNOWN_GAPS
                .iter()
                .find(|(m, c, _, _)| m == name && c == criterion);
            let varies = gap.is_some_and(|(_, _, measured, _)| measured.starts_with("varies"));
            match (holds, gap) {
                (false, None) => failures.push(format!(
                    "{name}: {criterion} misses ({measured}) and is not in KNOWN_GAPS"
                )),
                (true, Some(_)) if !varies => failures.push(format!(
                    "{name}: {criterion} now holds ({measured}): remove it from KNOWN_GAPS"
                )),
                _ => {}
            }
        }
    }
    for (m, c, _, _) in KNOWN_GAPS {
        assert!(
            MODELS.contains(m),
            "KNOWN_GAPS names unknown model {m} ({c})"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
