//! End to end: the real `qdbg` binary in a tmux terminal, driven by keys like a person
//! over SSH. Open the bundled demo, set a threshold, write the selective model, evaluate,
//! quit; then check the terminal came back and LiteRT loads and runs the written model.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> Tmux {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("qdbg-e2e-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "100",
                "-y",
                "30",
                "-c",
            ])
            .arg(dir)
            .arg(command)
            .status()
            .expect("tmux is needed for this test (apt-get install tmux; .ci/run installs it)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { session }
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let status = Command::new("tmux")
                .args(["send-keys", "-t", &self.session, k])
                .status()
                .unwrap();
            assert!(status.success());
            // A lone Esc followed at once by a letter reads as Alt+letter in any terminal.
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    /// One key, no pause after it (for timing).
    fn key_now(&self, k: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, k])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn text(&self, text: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The pid of the program the pane's shell started.
    fn child_pid(&self) -> String {
        let out = Command::new("tmux")
            .args(["display", "-p", "-t", &self.session, "#{pane_pid}"])
            .output()
            .unwrap();
        let shell = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let out = Command::new("pgrep").args(["-P", &shell]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("the pane runs a program")
            .trim()
            .to_string()
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool, timeout_s: u64) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(timeout_s),
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

/// The two tests share the machine's cores: one at a time, so timings mean something.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn demo_threshold_write_evaluate_and_litert_runs_the_written_model() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let repo = common::repo();
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    std::fs::create_dir(&demo).unwrap();
    for f in ["model.tflite", "debug.npy", "labels.txt"] {
        std::fs::copy(repo.join("demo").join(f), demo.join(f)).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_qdbg");
    // `qdbg` with no arguments opens the demo; the exit code is printed for the test.
    let tmux = Tmux::start(
        dir.path(),
        &format!(
            "env QDBG_DEMO_DIR={} {bin}; echo qdbg-exit=$?; sleep 60",
            demo.display()
        ),
    );

    let screen = tmux.wait_for(
        "the debugger to finish",
        |s| s.contains("done: 100 samples"),
        180,
    );
    assert!(screen.contains("rmse/s"), "{screen}");

    tmux.keys(&["t", "C-u"]);
    tmux.text("rmse/scale > 0.7");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(
        "the denylist's cost",
        |s| s.contains("float ops") && s.contains("rmse/scale > 0.7") && !s.contains("computing"),
        60,
    );
    assert!(!screen.contains("denylist: 0 layers"), "{screen}");

    tmux.keys(&["w", "C-u"]);
    tmux.text("sel.tflite");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the write", |s| s.contains("wrote sel.tflite"), 60);

    tmux.keys(&["e"]);
    let screen = tmux.wait_for(
        "the evaluation",
        |s| s.contains("sel #1") && !s.contains("running"),
        120,
    );
    assert!(screen.contains("top-1 acc"), "{screen}");

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("qdbg to exit", |s| s.contains("qdbg-exit="), 30);
    assert!(screen.contains("qdbg-exit=0"), "{screen}");
    // The terminal is back: the summary sits on the normal screen, the table is gone.
    assert!(screen.contains("samples debugged"), "{screen}");
    assert!(
        !screen.contains("(Tab)") && !screen.contains("denylist: "),
        "{screen}"
    );

    // The denylist file beside the model holds the rule, with its keyword.
    let list = std::fs::read_to_string(dir.path().join("sel.denylist.txt")).unwrap();
    assert!(
        list.lines().any(|l| l.trim() == "float rmse/scale > 0.7"),
        "{list}"
    );

    // LiteRT loads and runs the written model on the debug set, and classifies the digits
    // within one point of the float model's top-1 on this set (98%, measured with LiteRT by
    // scripts/make_demo.py: demo/expected.json).
    let model = dir.path().join("sel.tflite");
    let graph = qdbg::tflite::read_model(&model).unwrap();
    let inputs = dir.path().join("inputs.npz");
    let debug: ndarray::Array4<f32> = ndarray_npy::read_npy(demo.join("debug.npy")).unwrap();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&inputs).unwrap());
    npz.add_array(graph.tensor(graph.inputs[0]).name.as_str(), &debug)
        .unwrap();
    npz.finish().unwrap();
    let dumped = common::litert_dump(&model, &inputs, dir.path());
    let output = graph.outputs[0];
    let (_, probabilities) = dumped
        .iter()
        .find(|(idx, _)| *idx == output)
        .expect("LiteRT computed the model's output");
    let labels: Vec<usize> = std::fs::read_to_string(demo.join("labels.txt"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("demo/expected.json")).unwrap())
            .unwrap();
    let float_top1 = expected["debug_set"]["float"]["top1"].as_f64().unwrap();
    let probabilities = probabilities
        .to_shape((labels.len(), 10))
        .expect("one row of 10 classes per sample");
    let correct = probabilities
        .outer_iter()
        .zip(&labels)
        .filter(|(row, &label)| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            best == label
        })
        .count();
    let top1 = correct as f64 / labels.len() as f64;
    assert!(
        top1 >= float_top1 - 0.01,
        "LiteRT's top-1 of the written model {top1} vs float {float_top1}"
    );
}

/// Keys answer while the engine works flat out (calibrating and debugging MobileNetV3 in
/// both modes): Tab switches the bottom panel, and the screen shows it within 50 ms
/// (median of 10 presses, tmux's own round trips included).
#[test]
fn keys_answer_within_50_ms_mid_run() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mobilenet.tflite");
    std::fs::copy(common::fixture("mobilenet_v3_small.tflite"), &model).unwrap();
    // The fixture's 2 samples are debugged in a tenth of a second, before ten key presses
    // are done: 96 copies of them keep the engine busy for a few seconds on one thread.
    let data = dir.path().join("many.npy");
    {
        let mut npz = ndarray_npy::NpzReader::new(
            std::fs::File::open(common::fixture("mobilenet_v3_small.inputs.npz")).unwrap(),
        )
        .unwrap();
        let name = npz.names().unwrap()[0].clone();
        let two: ndarray::ArrayD<f32> = npz.by_name(&name).unwrap();
        let views: Vec<_> = (0..48).map(|_| two.view()).collect();
        let many = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
        ndarray_npy::write_npy(&data, &many).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_qdbg");
    let tmux = Tmux::start(
        dir.path(),
        &format!(
            "{bin} {} --data {} --mode both --recalibrate --threads 1; sleep 60",
            model.display(),
            data.display()
        ),
    );
    let panel_title = |s: &str| {
        s.lines()
            .find(|l| l.contains("(Tab)"))
            .map(|l| l.chars().take(20).collect::<String>())
            .unwrap_or_default()
    };
    tmux.wait_for("the dashboard", |s| s.contains("(Tab)"), 30);
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let before = panel_title(&tmux.screen());
        let start = Instant::now();
        tmux.key_now("Tab");
        tmux.wait_for("the panel to change", |s| panel_title(s) != before, 5);
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let screen = tmux.screen();
    assert!(
        ["preparing the calibration", "calibrating", "debugging"]
            .iter()
            .any(|phase| screen.contains(phase)),
        "the run should still be going, so the keys were answered mid-run:\n{screen}"
    );
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    eprintln!("key-to-screen latency mid-run, ms: {latencies:?}");
    assert!(median < 50.0, "median {median:.1} ms: {latencies:?}");
}

/// SIGTERM mid-run ends the dashboard like `q`: exit code 0, the terminal restored.
#[test]
fn sigterm_mid_run_restores_the_terminal() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mobilenet.tflite");
    std::fs::copy(common::fixture("mobilenet_v3_small.tflite"), &model).unwrap();
    let data = common::fixture("mobilenet_v3_small.inputs.npz");
    let bin = env!("CARGO_BIN_EXE_qdbg");
    let tmux = Tmux::start(
        dir.path(),
        &format!(
            "{bin} {} --data {} --mode both --recalibrate; echo qdbg-exit=$?; sleep 60",
            model.display(),
            data.display()
        ),
    );
    tmux.wait_for("the dashboard", |s| s.contains("(Tab)"), 30);
    let status = Command::new("kill")
        .args(["-TERM", &tmux.child_pid()])
        .status()
        .unwrap();
    assert!(status.success());
    let screen = tmux.wait_for("qdbg to exit", |s| s.contains("qdbg-exit="), 30);
    assert!(screen.contains("qdbg-exit=0"), "{screen}");
    assert!(
        !screen.contains("(Tab)"),
        "the dashboard is still on screen:\n{screen}"
    );
}
