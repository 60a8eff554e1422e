//! The table of bad inputs (README, "Troubleshooting / bad inputs"): each case drives the
//! real binary and checks that the message names the problem and what to do, that the
//! exit code is 2 (bad input or usage), and that nothing is half-written: an output file
//! that existed keeps its old contents, and no temp file is left behind.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use ndarray::{Array1, Array3};

#[allow(
    clippy::all,
    dead_code,
    unused_imports,
    non_camel_case_types,
    non_snake_case,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes,
    unused_lifetimes
)]
#[rustfmt::skip]
#[path = "../src/tflite/schema_generated.rs"]
mod schema_generated;

use schema_generated::tflite as fb;

const OLD: &[u8] = b"old output, must survive\n";

/// A scratch folder with the dense_ops fixture (input 'features' [1, 6, 8] float32, four
/// ops) and its data, plus an existing output file for every output name a case uses.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            common::fixture("dense_ops.tflite"),
            dir.path().join("model.tflite"),
        )
        .unwrap();
        std::fs::copy(
            common::fixture("dense_ops.inputs.npz"),
            dir.path().join("data.npz"),
        )
        .unwrap();
        for out in ["out.npz", "out.tflite", "out.csv"] {
            std::fs::write(dir.path().join(out), OLD).unwrap();
        }
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.path(name), bytes).unwrap();
        self.p(name)
    }

    fn npy(&self, name: &str, a: &Array3<f32>) -> String {
        ndarray_npy::write_npy(self.path(name), a).unwrap();
        self.p(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        qdbg(args, |_| {})
    }

    /// Exit code 2, every needle in stderr, old outputs intact, no temp files.
    fn expect_refused(&self, out: &Output, needles: &[&str]) {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "stderr:\n{err}");
        let message = err.lines().find(|l| l.starts_with("error: "));
        assert!(message.is_some(), "{err}");
        // With --nocapture: the messages the README's table quotes.
        eprintln!("{}", message.unwrap_or_default());
        for needle in needles {
            assert!(err.contains(needle), "'{needle}' missing from:\n{err}");
        }
        self.expect_nothing_half_written();
    }

    fn expect_nothing_half_written(&self) {
        for out in ["out.npz", "out.tflite", "out.csv"] {
            assert_eq!(std::fs::read(self.path(out)).unwrap(), OLD, "{out} changed");
        }
        let temps: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(temps.is_empty(), "temp files left: {temps:?}");
    }
}

fn qdbg(args: &[&str], setup: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qdbg"));
    cmd.args(args).current_dir(common::repo());
    setup(&mut cmd);
    cmd.output().expect("running qdbg")
}

/// The dense_ops model with `patch` applied to its flatbuffer in place: values change,
/// the structure stays valid, so the reader's checks behind the verifier are reached.
fn patched_model(patch: impl FnOnce(&mut Vec<u8>, &fb::Model<'_>)) -> Vec<u8> {
    let original = std::fs::read(common::fixture("dense_ops.tflite")).unwrap();
    let model = fb::root_as_model(&original).unwrap();
    let mut bytes = original.clone();
    patch(&mut bytes, &model);
    bytes
}

/// Byte offset of an int32 vector's element `i` in `buf`.
fn offset_of(buf: &[u8], v: flatbuffers::Vector<'_, i32>, i: usize) -> usize {
    v.safe_slice()[i..].as_ptr() as usize - buf.as_ptr() as usize
}

fn set_i32(bytes: &mut [u8], at: usize, value: i32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn ops<'a>(
    m: &fb::Model<'a>,
) -> flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::Operator<'a>>> {
    m.subgraphs().unwrap().get(0).operators().unwrap()
}

/// `qdbg run MODEL --data DATA` writing over the scratch folder's existing out.npz.
fn run_with(s: &Scratch, model: &str, data: &str) -> Output {
    s.run(&["run", model, "--data", data, "-o", &s.p("out.npz")])
}

#[test]
fn truncated_model() {
    let s = Scratch::new();
    let bytes = std::fs::read(s.path("model.tflite")).unwrap();
    let model = s.write("cut.tflite", &bytes[..bytes.len() / 2]);
    let out = run_with(&s, &model, &s.p("data.npz"));
    s.expect_refused(
        &out,
        &[
            "cut.tflite",
            "not a valid TFLite model",
            "truncated",
            "copy it again",
        ],
    );
}

#[test]
fn wrong_file_identifier() {
    let s = Scratch::new();
    let model = s.write(
        "model.onnx",
        b"\x08\x07\x12\x07pytorch-not-a-tflite-flatbuffer",
    );
    let out = run_with(&s, &model, &s.p("data.npz"));
    s.expect_refused(
        &out,
        &["model.onnx", "'TFL3' file identifier", "TFLiteConverter"],
    );
}

#[test]
fn tensor_index_out_of_range() {
    let s = Scratch::new();
    let bytes = patched_model(|b, m| {
        let at = offset_of(m._tab.buf, ops(m).get(0).inputs().unwrap(), 0);
        set_i32(b, at, 9999);
    });
    let model = s.write("bad_index.tflite", &bytes);
    let out = run_with(&s, &model, &s.p("data.npz"));
    s.expect_refused(
        &out,
        &[
            "bad_index.tflite",
            "op #0 input refers to tensor 9999",
            "re-export",
        ],
    );
}

#[test]
fn buffer_index_out_of_range() {
    let s = Scratch::new();
    let bytes = patched_model(|b, m| {
        // The first constant tensor: its buffer field, moved past the buffer table.
        let tensors = m.subgraphs().unwrap().get(0).tensors().unwrap();
        let t = tensors.iter().find(|t| t.buffer() != 0).unwrap();
        let at = t._tab.loc + t._tab.vtable().get(fb::Tensor::VT_BUFFER) as usize;
        set_i32(b, at, 9999);
    });
    let model = s.write("bad_buffer.tflite", &bytes);
    let out = run_with(&s, &model, &s.p("data.npz"));
    s.expect_refused(&out, &["refers to buffer 9999", "re-export"]);
}

#[test]
fn op_reads_a_tensor_produced_later() {
    let s = Scratch::new();
    let bytes = patched_model(|b, m| {
        let ops = ops(m);
        let later = ops.get(ops.len() - 1).outputs().unwrap().get(0);
        let at = offset_of(m._tab.buf, ops.get(0).inputs().unwrap(), 0);
        set_i32(b, at, later);
    });
    let model = s.write("order.tflite", &bytes);
    let out = run_with(&s, &model, &s.p("data.npz"));
    s.expect_refused(
        &out,
        &[
            "op #0",
            "before any op produces it",
            "out of order, or a cycle",
            "re-export",
        ],
    );
}

#[test]
fn op_reading_its_own_output_is_a_cycle() {
    let s = Scratch::new();
    let bytes = patched_model(|b, m| {
        let op = ops(m).get(1);
        let own = op.outputs().unwrap().get(0);
        let at = offset_of(m._tab.buf, op.inputs().unwrap(), 0);
        set_i32(b, at, own);
    });
    let model = s.write("cycle.tflite", &bytes);
    let out = run_with(&s, &model, &s.p("data.npz"));
    s.expect_refused(&out, &["op #1", "out of order, or a cycle"]);
}

#[test]
fn model_claiming_a_huge_tensor_is_refused_before_allocating() {
    let s = Scratch::new();
    let bytes = patched_model(|b, m| {
        // The input [1, 6, 8] becomes [1, 2^20, 2^20]: 2^40 floats, 4 TiB.
        let sg = m.subgraphs().unwrap().get(0);
        let input = sg
            .tensors()
            .unwrap()
            .get(sg.inputs().unwrap().get(0) as usize);
        let shape = input.shape().unwrap();
        set_i32(b, offset_of(m._tab.buf, shape, 1), 1 << 20);
        set_i32(b, offset_of(m._tab.buf, shape, 2), 1 << 20);
    });
    let model = s.write("huge.tflite", &bytes);
    let out = run_with(&s, &model, &s.p("data.npz"));
    s.expect_refused(&out, &["huge.tflite", "limit of 2^30 elements"]);
    // Refused before any allocation of that size: the child's peak memory stayed small.
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
            0
        );
        // ru_maxrss is in KiB: the largest child of this test process (any test's qdbg).
        assert!(
            usage.ru_maxrss < 1 << 20,
            "a child used {} KiB",
            usage.ru_maxrss
        );
    }
}

#[test]
fn unsupported_op() {
    let s = Scratch::new();
    let out = run_with(
        &s,
        "tests/fixtures/unsupported_op.tflite",
        "tests/fixtures/unsupported_op.inputs.npz",
    );
    s.expect_refused(&out, &["op #1 (FLOOR) is not supported", "qdbg inspect"]);
    // inspect still shows the model, flagging the op.
    let inspect = s.run(&["inspect", "tests/fixtures/unsupported_op.tflite"]);
    assert!(inspect.status.success());
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("not supported by qdbg: #"));
}

/// The sparse_conv fixture (sparse weights behind DENSIFY ops) with `patch` applied in
/// place, as [`patched_model`] does for dense_ops.
fn patched_sparse_model(patch: impl FnOnce(&mut Vec<u8>, &fb::Model<'_>)) -> Vec<u8> {
    let original = std::fs::read(common::fixture("sparse/sparse_conv.tflite")).unwrap();
    let model = fb::root_as_model(&original).unwrap();
    let mut bytes = original.clone();
    patch(&mut bytes, &model);
    bytes
}

const SPARSE_DATA: &str = "tests/fixtures/sparse/sparse_conv.inputs.npz";

#[test]
fn sparse_weights_with_corrupted_segments() {
    let s = Scratch::new();
    let bytes = patched_sparse_model(|b, m| {
        // Tensor 2, the CONV_2D weight: its sparse level's segment 1 far past the indices.
        let t = m.subgraphs().unwrap().get(0).tensors().unwrap().get(2);
        let meta = t.sparsity().unwrap().dim_metadata().unwrap().get(3);
        let segments = meta
            .array_segments_as_uint_8vector()
            .unwrap()
            .values()
            .unwrap();
        b[segments.as_ptr() as usize - m._tab.buf.as_ptr() as usize + 1] = 250;
    });
    let model = s.write("sparse_segments.tflite", &bytes);
    let out = run_with(&s, &model, SPARSE_DATA);
    s.expect_refused(
        &out,
        &[
            "sparse_segments.tflite",
            "tensor 2 ('functional_1/conv2d_1/Relu;",
            "has invalid sparsity metadata",
            "array_segments[2] = ",
            "is less than array_segments[1] = 250",
            "re-export",
        ],
    );
}

#[test]
fn densify_of_a_computed_tensor() {
    let s = Scratch::new();
    let bytes = patched_sparse_model(|b, m| {
        // Op #0, the first DENSIFY, reading the model input instead of the sparse weight.
        let sg = m.subgraphs().unwrap().get(0);
        let input = sg.inputs().unwrap().get(0);
        let at = offset_of(
            m._tab.buf,
            sg.operators().unwrap().get(0).inputs().unwrap(),
            0,
        );
        set_i32(b, at, input);
    });
    let model = s.write("densify_input.tflite", &bytes);
    let out = run_with(&s, &model, SPARSE_DATA);
    s.expect_refused(
        &out,
        &[
            "op #0 (DENSIFY) is not supported",
            "densifies sparse constant weights when it reads the model",
            "without sparsification",
        ],
    );
}

/// A model whose contents make an op fail when it runs (a fuzzer's finding: int8 tensors
/// whose quantization parameters are gone, fed to SQUARED_DIFFERENCE): bad input, exit 2,
/// naming the op and tensor and what to do.
#[test]
fn op_failing_on_the_models_contents() {
    let s = Scratch::new();
    let out = run_with(
        &s,
        "tests/fixtures/fuzz_regressions/binary_on_unquantized_int8.tflite",
        "tests/fixtures/elementwise_ops.inputs.npz",
    );
    s.expect_refused(
        &out,
        &[
            "op #9 (SQUARED_DIFFERENCE)",
            "tensor 'SquaredDifference'",
            "needs quantization parameters",
            "re-export",
        ],
    );
}

/// An int8 model whose quantization parameters an int8 kernel refuses (FULLY_CONNECTED's
/// output zero point moved outside int8, which TFLite's Prepare refuses too): bad input,
/// exit 2, the message naming the op, its tensor, the refused parameter with its value,
/// and what to do.
#[test]
fn int8_kernel_refusing_the_models_parameters() {
    let s = Scratch::new();
    let original = std::fs::read(common::fixture("dense_ops.int8.tflite")).unwrap();
    let model = fb::root_as_model(&original).unwrap();
    let graph = model.subgraphs().unwrap().get(0);
    let fc = ops(&model).get(1);
    assert_eq!(
        model
            .operator_codes()
            .unwrap()
            .get(fc.opcode_index() as usize)
            .builtin_code(),
        fb::BuiltinOperator::FULLY_CONNECTED
    );
    let output = graph
        .tensors()
        .unwrap()
        .get(fc.outputs().unwrap().get(0) as usize);
    let name = output.name().unwrap().to_string();
    let zero_points = output.quantization().unwrap().zero_point().unwrap();
    let at = zero_points.safe_slice().as_ptr() as usize - original.as_ptr() as usize;
    let mut bytes = original.clone();
    bytes[at..at + 8].copy_from_slice(&300i64.to_le_bytes());
    let model = s.write("bad_zero_point.tflite", &bytes);
    let out = run_with(&s, &model, &s.p("data.npz"));
    s.expect_refused(
        &out,
        &[
            "op #1 (FULLY_CONNECTED)",
            &format!("tensor '{name}'"),
            "output zero point is 300",
            "-128 to 127",
            "keep this op float",
        ],
    );
}

#[test]
fn data_shape_does_not_match_the_model() {
    let s = Scratch::new();
    let data = s.npy("wrong.npy", &Array3::zeros((3, 8, 6)));
    let out = run_with(&s, &s.p("model.tflite"), &data);
    s.expect_refused(
        &out,
        &[
            "model input 'features' expects [N, 6, 8] float32",
            "[3, 8, 6]",
            "transpose",
        ],
    );
}

#[test]
fn data_dtype_does_not_match_the_model() {
    let s = Scratch::new();
    let path = s.path("ints.npy");
    ndarray_npy::write_npy(&path, &ndarray::Array3::<i32>::zeros((2, 6, 8))).unwrap();
    let out = run_with(&s, &s.p("model.tflite"), &s.p("ints.npy"));
    s.expect_refused(
        &out,
        &["expects [N, 6, 8] float32", "int32", "astype(np.float32)"],
    );
}

#[test]
fn nan_in_data() {
    let s = Scratch::new();
    let mut a = Array3::<f32>::zeros((3, 6, 8));
    a[[1, 2, 3]] = f32::NAN;
    let data = s.npy("nan.npy", &a);
    let out = run_with(&s, &s.p("model.tflite"), &data);
    s.expect_refused(&out, &["nan.npy", "sample 1 contains NaN", "fix or drop"]);
}

#[test]
fn inf_in_data() {
    let s = Scratch::new();
    let mut a = Array3::<f32>::zeros((3, 6, 8));
    a[[2, 0, 0]] = f32::NEG_INFINITY;
    let data = s.npy("inf.npy", &a);
    let out = run_with(&s, &s.p("model.tflite"), &data);
    s.expect_refused(&out, &["sample 2 contains Inf", "fix or drop"]);
}

#[test]
fn empty_dataset() {
    let s = Scratch::new();
    let data = s.npy("empty.npy", &Array3::zeros((0, 6, 8)));
    let out = run_with(&s, &s.p("model.tflite"), &data);
    s.expect_refused(&out, &["empty dataset", "needs at least one"]);
}

#[test]
fn labels_count_does_not_match_the_samples() {
    let s = Scratch::new();
    // data.npz holds 3 samples.
    let labels = s.write("labels.txt", b"1\n2\n");
    let out = s.run(&[
        "debug",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "--labels",
        &labels,
        "--csv",
        &s.p("out.csv"),
    ]);
    s.expect_refused(
        &out,
        &[
            "labels.txt",
            "2 labels for 3 samples",
            "exactly one label per sample",
        ],
    );
}

#[test]
fn labels_that_are_not_integers() {
    let s = Scratch::new();
    let path = s.path("labels.npy");
    ndarray_npy::write_npy(&path, &Array1::<f32>::zeros(3)).unwrap();
    let out = s.run(&[
        "debug",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "--labels",
        &s.p("labels.npy"),
        "--csv",
        &s.p("out.csv"),
    ]);
    s.expect_refused(
        &out,
        &["labels.npy", "integer class indices", "astype(np.int64)"],
    );
}

#[test]
fn denylist_name_that_matches_nothing() {
    let s = Scratch::new();
    let out = s.run(&[
        "select",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "--deny",
        "Identiy_1",
        "-o",
        &s.p("out.tflite"),
    ]);
    s.expect_refused(
        &out,
        &[
            "rule 'name:Identiy_1' matches nothing",
            "tensor_name",
            "glob:",
        ],
    );
}

#[test]
fn denylist_that_keeps_everything_float() {
    let s = Scratch::new();
    let out = s.run(&[
        "select",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "--deny",
        "re:.*",
        "-o",
        &s.p("out.tflite"),
    ]);
    s.expect_refused(&out, &["nothing would be quantized"]);
}

#[test]
fn unknown_metric_in_a_denylist_rule() {
    let s = Scratch::new();
    let out = s.run(&[
        "select",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "--deny",
        "rmse > 0.7",
        "-o",
        &s.p("out.tflite"),
    ]);
    s.expect_refused(&out, &["unknown metric", "rmse/scale"]);
}

#[test]
fn output_folder_does_not_exist() {
    let s = Scratch::new();
    let out = s.run(&[
        "run",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "-o",
        &s.p("no/such/folder/out.npz"),
    ]);
    s.expect_refused(&out, &["out.npz", "does not exist", "write elsewhere"]);
}

#[test]
fn output_path_below_a_file() {
    let s = Scratch::new();
    let file = s.write("notes.txt", b"a file, not a folder");
    let target = format!("{file}/out.csv");
    let out = s.run(&[
        "debug",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "--csv",
        &target,
    ]);
    s.expect_refused(&out, &["notes.txt/out.csv", "not a folder"]);
}

#[test]
fn output_path_is_a_folder() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("results")).unwrap();
    let out = s.run(&[
        "quantize",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "-o",
        &s.p("results"),
    ]);
    s.expect_refused(&out, &["results", "is a folder"]);
    assert!(s.path("results").is_dir());
}

/// A full disk, simulated with the file-size limit (`ulimit -f`): writes past it fail with
/// EFBIG as they would with ENOSPC, with no root needed.
#[cfg(unix)]
#[test]
fn disk_full_while_writing() {
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    // Calibrate first, so the only write under the limit is the output model.
    let warm = s.run(&[
        "quantize",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "-o",
        &s.p("first.tflite"),
    ]);
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    let size = std::fs::metadata(s.path("first.tflite")).unwrap().len();
    let limit = size / 2;
    let out = qdbg(
        &[
            "quantize",
            &s.p("model.tflite"),
            "--data",
            &s.p("data.npz"),
            "-o",
            &s.p("out.tflite"),
        ],
        |cmd| {
            // SAFETY: between fork and exec only async-signal-safe calls (signal,
            // setrlimit) run.
            unsafe {
                cmd.pre_exec(move || {
                    // The default action of SIGXFSZ kills; ignored, the write fails instead.
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let rl = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    s.expect_refused(&out, &["cannot write", "out.tflite", "free some space"]);
}

#[test]
fn usage_errors() {
    let s = Scratch::new();
    for args in [
        &["frobnicate"][..],
        &["debug", "--data"][..],
        &["run", "model.tflite"][..],
    ] {
        let out = s.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert!(s.run(&["--help"]).status.success());
    assert!(s.run(&["run", "--help"]).status.success());
    let out = s.run(&[
        "debug",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "--metrics",
        "snr",
        "--csv",
        &s.p("out.csv"),
    ]);
    s.expect_refused(&out, &["unknown metric 'snr'", "sqnr_db"]);
}

#[test]
fn missing_files_are_named() {
    let s = Scratch::new();
    let out = run_with(&s, &s.p("nope.tflite"), &s.p("data.npz"));
    s.expect_refused(&out, &["nope.tflite"]);
    let out = run_with(&s, &s.p("model.tflite"), &s.p("nope.npz"));
    s.expect_refused(&out, &["nope.npz"]);
}

/// Already-quantized models where a float model is needed (issue 23): every command that
/// calibrates, quantizes or debugs refuses them before any work, names what the file is
/// and says what to pass instead; nothing (no calibration file) appears beside the model.
fn expect_not_float(s: &Scratch, model: &str, data: &str, kind: &str) {
    let calibration = format!("{model}.qdbg-calibration.json");
    let commands: Vec<Vec<&str>> = vec![
        vec!["debug", model, "--data", data],
        vec!["quantize", model, "--data", data, "-o", "OUT"],
        vec![
            "select", model, "--data", data, "--deny", "first:1", "-o", "OUT",
        ],
        vec![model, "--data", data, "--no-tui"],
    ];
    let out_tflite = s.p("out.tflite");
    for args in commands {
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| if a == "OUT" { out_tflite.as_str() } else { a })
            .collect();
        let out = s.run(&args);
        s.expect_refused(
            &out,
            &[
                model,
                "is not a float model",
                kind,
                "needs the float model",
                "--int8",
            ],
        );
        assert!(
            !std::path::Path::new(&calibration).exists(),
            "{args:?} left a calibration file beside the quantized model"
        );
    }
    // inspect says what it is in its first lines.
    let inspect = s.run(&["inspect", model]);
    assert!(inspect.status.success());
    let text = String::from_utf8_lossy(&inspect.stdout);
    let kind_line = text.lines().nth(1).unwrap_or_default();
    assert!(
        kind_line.starts_with("kind: ") && kind_line.contains(kind),
        "{text}"
    );
}

fn copy_into(s: &Scratch, fixture: &str, name: &str) -> String {
    std::fs::copy(common::fixture(fixture), s.path(name)).unwrap();
    s.p(name)
}

#[test]
fn full_int8_model_where_the_float_one_is_needed() {
    let s = Scratch::new();
    let model = copy_into(&s, "dense_ops.int8.tflite", "int8.tflite");
    expect_not_float(&s, &model, &s.p("data.npz"), "full int8");
}

#[test]
fn int16_model_where_the_float_one_is_needed() {
    let s = Scratch::new();
    let model = copy_into(&s, "conformance/kinds_16x8.tflite", "int16.tflite");
    let data = copy_into(&s, "conformance/detect_heads.inputs.npz", "images.npz");
    expect_not_float(&s, &model, &data, "16x8");
}

#[test]
fn mixed_model_where_the_float_one_is_needed() {
    let s = Scratch::new();
    let selective = s.p("selective.tflite");
    let made = s.run(&[
        "select",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "--deny",
        "first:1",
        "-o",
        &selective,
    ]);
    assert!(made.status.success(), "{made:?}");
    // The selective model's own calibration file is not the point: start clean.
    let _ = std::fs::remove_file(format!("{selective}.qdbg-calibration.json"));
    expect_not_float(&s, &selective, &s.p("data.npz"), "mixed: 1 float op,");
}

/// Dynamic-range models (integer weights, float activations): qdbg runs no hybrid kernels,
/// so every command refuses them, `run` and `eval` included, rather than computing wrong
/// numbers.
#[test]
fn dynamic_range_model_is_refused_everywhere() {
    let s = Scratch::new();
    let model = copy_into(&s, "conformance/kinds_dynamic_range.tflite", "dr.tflite");
    let data = copy_into(&s, "conformance/detect_heads.inputs.npz", "images.npz");
    for args in [
        vec!["debug", model.as_str(), "--data", data.as_str()],
        vec!["run", model.as_str(), "--data", data.as_str(), "-o", "OUT"],
        vec!["eval", model.as_str(), "--data", data.as_str()],
    ] {
        let out_npz = s.p("out.npz");
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| if a == "OUT" { out_npz.as_str() } else { a })
            .collect();
        let out = s.run(&args);
        s.expect_refused(
            &out,
            &[
                "dr.tflite",
                "dynamic-range quantized",
                "no hybrid kernels",
                "float model it was made from",
            ],
        );
    }
    let inspect = s.run(&["inspect", &model]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("kind: dynamic-range quantized")),
        "{text}"
    );
}

/// Float models, float16 weights included, are what the commands want: inspect says so.
#[test]
fn inspect_names_float_and_float16_models() {
    let s = Scratch::new();
    for (fixture, want) in [
        ("dense_ops.tflite", "kind: float"),
        ("f16_weights.tflite", "kind: float (float16 weights)"),
    ] {
        let out = s.run(&["inspect", common::fixture(fixture).to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().nth(1), Some(want), "{text}");
    }
}

/// MediaPipe's encoder-decoder fixture with the int32 field `field` of op `op`'s
/// custom_options (a raw C struct) set to `value`, in place.
fn patched_custom_options(op: usize, field: usize, value: i32) -> Vec<u8> {
    let original =
        std::fs::read(common::fixture("custom_ops/encoder_decoder_same.tflite")).unwrap();
    let model = fb::root_as_model(&original).unwrap();
    let options = ops(&model).get(op).custom_options().unwrap();
    let at = options.as_ptr() as usize - original.as_ptr() as usize + 4 * field;
    let mut bytes = original.clone();
    set_i32(&mut bytes, at, value);
    bytes
}

#[test]
fn custom_op_with_options_cut_short() {
    let s = Scratch::new();
    let out = run_with(
        &s,
        "tests/fixtures/custom_ops/short_options.tflite",
        &s.p("data.npz"),
    );
    s.expect_refused(
        &out,
        &[
            "op #0 (MaxPoolingWithArgmax2D)",
            "custom_options has 12 bytes",
            "TfLitePoolParams",
            "at least 20",
        ],
    );
    // inspect reads the model too, so it refuses the same way.
    let out = s.run(&["inspect", "tests/fixtures/custom_ops/short_options.tflite"]);
    s.expect_refused(&out, &["op #0 (MaxPoolingWithArgmax2D)", "12 bytes"]);
}

/// The encoder-decoder fixture with one custom_options field patched (`(op, field, value)`,
/// see [`patched_custom_options`]), run: refused with every needle in the message.
fn refused_with_patched_options(patch: (usize, usize, i32), needles: &[&str]) {
    let s = Scratch::new();
    let (op, field, value) = patch;
    let model = s.write("patched.tflite", &patched_custom_options(op, field, value));
    let out = run_with(
        &s,
        &model,
        "tests/fixtures/custom_ops/encoder_decoder_same.inputs.npz",
    );
    s.expect_refused(&out, needles);
}

#[test]
fn custom_op_with_an_unknown_padding() {
    // Op #3 is MaxUnpooling2D; field 0 its padding.
    refused_with_patched_options(
        (3, 0, 7),
        &[
            "op #3 (MaxUnpooling2D)",
            "padding field is 7, neither SAME (1) nor VALID (2)",
        ],
    );
}

/// A configuration LiteRT's runtime does not run: refused when the op runs, naming why.
#[test]
fn custom_op_pooling_with_a_stride_other_than_its_window() {
    // Op #1 is MaxPoolingWithArgmax2D; field 1 its stride_width.
    refused_with_patched_options(
        (1, 1, 1),
        &[
            "op #1 (MaxPoolingWithArgmax2D)",
            "stride 2x1 differs from its 2x2 window",
            "LiteRT's runtime (XNNPACK)",
        ],
    );
}

#[test]
fn unknown_custom_op() {
    let s = Scratch::new();
    let model = "tests/fixtures/custom_ops/unknown_custom_op.tflite";
    let out = run_with(
        &s,
        model,
        "tests/fixtures/custom_ops/unknown_custom_op.inputs.npz",
    );
    s.expect_refused(
        &out,
        &[
            "op #0 (CUSTOM(TransformTensorBilinear)) is not supported",
            "Convolution2DTransposeBias, MaxPoolingWithArgmax2D, MaxUnpooling2D",
            "without allow_custom_ops",
        ],
    );
    let inspect = s.run(&["inspect", model]);
    assert!(inspect.status.success());
    assert!(String::from_utf8_lossy(&inspect.stdout)
        .contains("not supported by qdbg: #0 CUSTOM(TransformTensorBilinear)"));
}

/// A CUDA device asked of a build without the `cuda` feature (testable wherever the feature
/// is off, as in CI).
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_device_on_a_build_without_cuda() {
    let s = Scratch::new();
    let out = s.run(&[
        "run",
        &s.p("model.tflite"),
        "--data",
        &s.p("data.npz"),
        "-o",
        &s.p("out.npz"),
        "--device",
        "cuda",
    ]);
    s.expect_refused(&out, &["cuda", "built without CUDA", "--features cuda"]);
}

/// A saved calibration that matches the model and data but lacks a tensor's range (edited
/// by hand, or cut short): it is not reused but computed again, so no op silently stays
/// float for want of a range.
#[test]
fn saved_calibration_without_a_tensors_range_is_recomputed() {
    let s = Scratch::new();
    let (model, data, out) = (s.p("model.tflite"), s.p("data.npz"), s.p("out.tflite"));
    let quantize = || s.run(&["quantize", &model, "--data", &data, "-o", &out]);
    // The notes go to stdout; errors to stderr.
    let stderr = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let first = quantize();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let reused = quantize();
    assert!(stderr(&reused).contains("reused"), "{}", stderr(&reused));

    let saved = s.path("model.tflite.qdbg-calibration.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let ranges = json["ranges"].as_object_mut().unwrap();
    let key = ranges
        .iter()
        .find(|(_, r)| r["name"] != "features")
        .map(|(k, _)| k.clone())
        .unwrap();
    ranges.remove(&key);
    std::fs::write(&saved, serde_json::to_string(&json).unwrap()).unwrap();

    let again = quantize();
    let err = stderr(&again);
    assert_eq!(again.status.code(), Some(0), "{err}");
    assert!(!err.contains("reused") && err.contains("saved to"), "{err}");
    assert!(err.contains("quantized 4 of 4 ops"), "{err}");
}
