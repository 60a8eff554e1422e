//! Every dashboard screen drawn on ratatui's `TestBackend` and compared with a reviewed
//! snapshot (tests/snapshots/). The statistics are hand-made (tests/common/synthetic.rs);
//! rates and times are redacted, so the screens are the same on every machine.

mod common;

use common::synthetic::{infos, report};
use qdbg::debug::metrics::{ModelMetrics, OutputMetrics, Task};
use qdbg::tui::action::Action;
use qdbg::tui::render::render;
use qdbg::tui::state::{Cost, Panel, State};
use qdbg::tui::update::update;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

fn draw(state: &State, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| render(state, frame)).unwrap();
    terminal
}

fn text(state: &State, width: u16, height: u16) -> String {
    let terminal = draw(state, width, height);
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn cost(denied: usize) -> Cost {
    Cost {
        denylisted_ops: denied,
        float_ops: denied,
        float_islands: denied,
        size_bytes: 107_392,
        unmatched: vec![],
        ..Default::default()
    }
}

/// Half-way through 100 samples, rows in execution order.
fn running() -> State {
    let mut s = State::new("demo/model.tflite".into(), "demo/debug.npy".into(), true);
    s.redact_timings = true;
    update(
        &mut s,
        Action::DebugStarted {
            layers: infos(),
            samples: 100,
            at_s: 1.0,
        },
    );
    update(
        &mut s,
        Action::DebugUpdated {
            done: 50,
            total: 100,
            report: report(50, false),
            at_s: 11.0,
        },
    );
    s
}

/// `rmse/scale > 0.7` applied: layers 0, 4 and 6 (r = 4.0, 0.9, 0.71) denied.
fn with_threshold() -> State {
    let mut s = running();
    update(&mut s, Action::OpenThreshold);
    update(&mut s, Action::PromptSubmit);
    let generation = s.rules_generation;
    let denied = (0..8).map(|k| [0, 4, 6].contains(&k)).collect();
    update(&mut s, Action::Denied { generation, denied });
    update(
        &mut s,
        Action::Costed {
            generation,
            cost: cost(3),
        },
    );
    s
}

#[test]
fn calibrating() {
    let mut s = State::new("demo/model.tflite".into(), "demo/debug.npy".into(), true);
    update(
        &mut s,
        Action::Calibrating {
            done: 37,
            total: 100,
        },
    );
    insta::assert_snapshot!(text(&s, 80, 24));
}

#[test]
fn running_with_charts() {
    insta::assert_snapshot!(text(&running(), 80, 24));
}

#[test]
fn threshold_applied() {
    insta::assert_snapshot!(text(&with_threshold(), 80, 24));
}

#[test]
fn selected_layer_histograms() {
    let mut s = with_threshold();
    s.panel = Panel::Layer;
    insta::assert_snapshot!(text(&s, 80, 24));
}

#[test]
fn experiments_side_by_side() {
    let mut s = with_threshold();
    update(
        &mut s,
        Action::DebugEnded {
            cancelled: false,
            at_s: 21.0,
        },
    );
    update(&mut s, Action::Evaluate);
    let mut selective = report(100, false).model.clone();
    selective.sqnr_db = 26.5;
    selective.outputs[0].sqnr_db = 26.5;
    selective.argmax_agreement = 1.0;
    selective.int8_top1 = Some(0.98);
    selective.int8_top5 = Some(1.0);
    update(
        &mut s,
        Action::Evaluated {
            id: 1,
            result: Ok((cost(3), selective)),
        },
    );
    update(
        &mut s,
        Action::Baseline {
            float_size: 214_240,
            full: Cost {
                size_bytes: 101_888,
                ..cost(0)
            },
        },
    );
    update(&mut s, Action::Evaluate);
    insta::assert_snapshot!(text(&s, 80, 24));
}

#[test]
fn help() {
    let mut s = running();
    update(&mut s, Action::ToggleHelp);
    insta::assert_snapshot!(text(&s, 80, 24));
}

#[test]
fn op_type_picker() {
    let mut s = running();
    update(&mut s, Action::OpenOpTypes);
    update(&mut s, Action::PickerDown);
    update(&mut s, Action::PickerToggle);
    insta::assert_snapshot!(text(&s, 80, 24));
}

#[test]
fn threshold_prompt_with_an_error() {
    let mut s = running();
    update(&mut s, Action::OpenThreshold);
    update(&mut s, Action::PromptInput('x'));
    update(&mut s, Action::PromptSubmit);
    insta::assert_snapshot!(text(&s, 80, 24));
}

#[test]
fn filter_that_matches_nothing() {
    let mut s = running();
    update(&mut s, Action::OpenSearch);
    for c in "no_such_layer".chars() {
        update(&mut s, Action::PromptInput(c));
    }
    update(&mut s, Action::PromptSubmit);
    insta::assert_snapshot!(text(&s, 80, 24));
}

#[test]
fn both_modes_side_by_side_in_a_big_terminal() {
    let mut s = with_threshold();
    update(
        &mut s,
        Action::DebugUpdated {
            done: 100,
            total: 100,
            report: report(100, true),
            at_s: 21.0,
        },
    );
    update(
        &mut s,
        Action::DebugEnded {
            cancelled: false,
            at_s: 21.0,
        },
    );
    insta::assert_snapshot!(text(&s, 140, 40));
}

#[test]
fn cancelled_run_keeps_its_rows() {
    let mut s = running();
    update(
        &mut s,
        Action::DebugEnded {
            cancelled: true,
            at_s: 12.0,
        },
    );
    insta::assert_snapshot!(text(&s, 80, 24));
}

/// A run with XNNPACK's int8 arithmetic says so in the header (its numbers differ from a
/// builtin-kernel run's); the default arithmetic takes no room.
#[test]
fn header_names_a_non_default_arithmetic() {
    let mut s = running();
    let first_line = |s: &State| text(s, 100, 24).lines().next().unwrap().to_string();
    assert!(!first_line(&s).contains("xnnpack"), "{}", first_line(&s));
    let mut report = (*s.report).clone();
    report.arithmetic = qdbg::kernels::int8::Arithmetic::Xnnpack;
    s.report = std::sync::Arc::new(report);
    assert!(
        first_line(&s).contains("int8 as xnnpack"),
        "{}",
        first_line(&s)
    );
}

/// NO_COLOR: the same screens with no colour anywhere (bold and reverse still mark things).
#[test]
fn no_colour_means_no_colour() {
    let mut s = with_threshold();
    s.colors = false;
    for panel in [Panel::Charts, Panel::Layer, Panel::Experiments] {
        s.panel = panel;
        let terminal = draw(&s, 80, 24);
        let buffer = terminal.backend().buffer();
        for cell in buffer.content() {
            assert_eq!(cell.fg, Color::Reset, "a coloured cell under NO_COLOR");
            assert_eq!(cell.bg, Color::Reset, "a coloured cell under NO_COLOR");
        }
    }
    // With colours, the bad rows and values are coloured.
    s.colors = true;
    let terminal = draw(&s, 80, 24);
    assert!(terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|c| c.fg == Color::Red));
}

/// Tiny or odd terminals never panic (a window being resized passes through them all).
#[test]
fn any_size_renders() {
    let mut s = with_threshold();
    for panel in [Panel::Charts, Panel::Layer, Panel::Experiments] {
        s.panel = panel;
        for (w, h) in [
            (1, 1),
            (10, 3),
            (20, 5),
            (40, 10),
            (80, 24),
            (79, 23),
            (200, 60),
        ] {
            draw(&s, w, h);
        }
    }
    s.show_help = true;
    draw(&s, 30, 8);
}

/// Names as TensorFlow's converter writes them for a Keras model (MediaPipe's
/// hand_landmark_lite): every layer under `model_1/model/`, fused ops joined with `;`. The
/// rows must read by the layer the user named (`re_lu_1/Relu6`), not by the shared folders.
#[test]
fn real_world_names_read_by_layer() {
    const NAMES: [&str; 8] = [
        "model_1/model/re_lu/Relu6;model_1/model/batch_normalization/FusedBatchNormV3;model_1/model/conv2d/Conv2D",
        "model_1/model/re_lu_1/Relu6;model_1/model/batch_normalization_1/FusedBatchNormV3;model_1/model/depthwise_conv2d/depthwise",
        "model_1/model/batch_normalization_2/FusedBatchNormV3;model_1/model/conv2d_5/Conv2D;model_1/model/conv2d_1/Conv2D",
        "model_1/model/re_lu_2/Relu6;model_1/model/batch_normalization_3/FusedBatchNormV3;model_1/model/conv2d_2/Conv2D",
        "model_1/model/max_pooling2d/MaxPool",
        "model_1/model/re_lu_3/Relu6;model_1/model/batch_normalization_4/FusedBatchNormV3;model_1/model/depthwise_conv2d_1/depthwise",
        "model_1/model/add/add",
        "Identity",
    ];
    let rename = |mut info: qdbg::debug::LayerInfo, k: usize| {
        info.tensor_name = NAMES[k].to_string();
        info
    };
    let mut s = State::new(
        "hand_landmark_lite.tflite".into(),
        "inputs.npz".into(),
        true,
    );
    s.redact_timings = true;
    let layers = infos()
        .into_iter()
        .enumerate()
        .map(|(k, i)| rename(i, k))
        .collect();
    update(
        &mut s,
        Action::DebugStarted {
            layers,
            samples: 100,
            at_s: 1.0,
        },
    );
    let mut full = (*report(100, false)).clone();
    for (k, l) in full.layers.iter_mut().enumerate() {
        l.info = rename(l.info.clone(), k);
    }
    update(
        &mut s,
        Action::DebugUpdated {
            done: 100,
            total: 100,
            report: std::sync::Arc::new(full),
            at_s: 11.0,
        },
    );
    insta::assert_snapshot!(text(&s, 80, 24));
}

/// Model metrics of a hand landmark model's four outputs (the names MediaPipe's
/// hand_landmark_full gives them; hand-made numbers): the big landmark output looks fine
/// pooled, the small handedness score is the worst.
fn four_outputs(sqnr: [f64; 4]) -> ModelMetrics {
    const NAMES: [&str; 4] = ["Identity", "Identity_1", "Identity_2", "Identity_3"];
    let outputs: Vec<OutputMetrics> = NAMES
        .iter()
        .zip(sqnr)
        .map(|(name, sqnr_db)| OutputMetrics {
            name: name.to_string(),
            mse: 0.01,
            sqnr_db,
            cosine: 0.99,
            // What the guess makes of a hand landmark model's outputs: none is class
            // scores, so no class metric is shown.
            task: Task::Regress,
            task_guessed: true,
            ..Default::default()
        })
        .collect();
    let worst = outputs
        .iter()
        .min_by(|a, b| a.sqnr_db.total_cmp(&b.sqnr_db))
        .map(|o| o.name.clone());
    ModelMetrics {
        samples: 100,
        mse: 0.02,
        sqnr_db: 25.2,
        cosine: 0.998,
        outputs,
        worst_output: worst,
        classified_output: None,
        argmax_agreement: f64::NAN,
        top5_agreement: f64::NAN,
        ..Default::default()
    }
}

/// A four-output model, debugged, then a denylist evaluated that repairs the handedness
/// output and leaves the presence score the worst.
fn several_outputs() -> State {
    let mut s = State::new(
        "hand_landmark_full.tflite".into(),
        "inputs.npz".into(),
        false,
    );
    s.redact_timings = true;
    update(
        &mut s,
        Action::DebugStarted {
            layers: infos(),
            samples: 100,
            at_s: 1.0,
        },
    );
    let mut full = (*report(100, false)).clone();
    full.model = four_outputs([25.3, 6.4, 11.6, 24.8]);
    update(
        &mut s,
        Action::DebugUpdated {
            done: 100,
            total: 100,
            report: std::sync::Arc::new(full),
            at_s: 11.0,
        },
    );
    update(
        &mut s,
        Action::DebugEnded {
            cancelled: false,
            at_s: 11.0,
        },
    );
    update(&mut s, Action::OpenThreshold);
    update(&mut s, Action::PromptSubmit);
    update(&mut s, Action::Evaluate);
    update(
        &mut s,
        Action::Evaluated {
            id: 1,
            result: Ok((cost(3), four_outputs([25.1, 19.7, 11.2, 24.6]))),
        },
    );
    s.panel = Panel::Experiments;
    s
}

/// Several outputs: the header names the worst output's SQNR, the evaluation panel has a
/// row per output, and the history gives each experiment's worst output.
#[test]
fn several_outputs_at_80_columns() {
    insta::assert_snapshot!(text(&several_outputs(), 80, 24));
}

#[test]
fn several_outputs_at_120_columns() {
    insta::assert_snapshot!(text(&several_outputs(), 120, 36));
}

/// The worst output of each column is flagged: red with colours, bold without.
#[test]
fn the_worst_output_is_highlighted() {
    let mut s = several_outputs();
    let find = |terminal: &Terminal<TestBackend>, label: &str| -> Vec<ratatui::buffer::Cell> {
        let buffer = terminal.backend().buffer();
        let y = (0..buffer.area.height)
            .find(|&y| {
                let line: String = (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect();
                line.starts_with(label)
            })
            .unwrap_or_else(|| panic!("no row '{label}'"));
        (0..buffer.area.width)
            .map(|x| buffer[(x, y)].clone())
            .collect()
    };
    let value_cell = |row: &[ratatui::buffer::Cell], value: &str| {
        let line: String = row.iter().map(|c| c.symbol()).collect();
        let at = line
            .find(value)
            .unwrap_or_else(|| panic!("no {value} in '{line}'"));
        row[line[..at].chars().count()].clone()
    };
    let terminal = draw(&s, 120, 36);
    // Full int8: Identity_1 (6.4) is the worst; selective: Identity_2 (11.2).
    let handedness = find(&terminal, "sqnr Identity_1");
    assert_eq!(value_cell(&handedness, "6.40").fg, Color::Red);
    assert_eq!(value_cell(&handedness, "19.7").fg, Color::Reset);
    let presence = find(&terminal, "sqnr Identity_2");
    assert_eq!(value_cell(&presence, "11.6").fg, Color::Reset);
    assert_eq!(value_cell(&presence, "11.2").fg, Color::Red);
    s.colors = false;
    let terminal = draw(&s, 120, 36);
    let handedness = find(&terminal, "sqnr Identity_1");
    assert!(value_cell(&handedness, "6.40")
        .modifier
        .contains(ratatui::style::Modifier::BOLD));
}

/// The selected layer's full name on its own lines above the histograms, wrapped rather
/// than cut (the table shows `blaze_block_7/…/depthwise`).
fn long_name_selected() -> State {
    const LONG: &str = "model/blaze_block_7/depthwise_conv2d_3/depthwise;\
model/blaze_block_7/batch_normalization_12/FusedBatchNormV3;model/blaze_block_7/conv2d_9/BiasAdd";
    let mut s = with_threshold();
    let mut report = (*s.report).clone();
    report.layers[0].info.tensor_name = LONG.to_string();
    s.report = std::sync::Arc::new(report);
    s.panel = Panel::Layer;
    s
}

#[test]
fn selected_layer_full_name_at_80_columns() {
    insta::assert_snapshot!(text(&long_name_selected(), 80, 24));
}

#[test]
fn selected_layer_full_name_at_120_columns() {
    insta::assert_snapshot!(text(&long_name_selected(), 120, 30));
}

/// In a terminal too small for the whole name, the name's last row shown ends in `…`: the
/// cut is said, never silent.
#[test]
fn a_name_too_long_for_a_tiny_panel_says_it_was_cut() {
    let screen = text(&long_name_selected(), 80, 16);
    let panel: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.starts_with("#0 CONV_2D"))
        .skip(1)
        .collect();
    assert!(
        panel[0].starts_with("model/blaze_block_7/depthwise_conv2d_3/depthwise;"),
        "{screen}"
    );
    assert!(
        panel
            .iter()
            .any(|l| l.split('│').next().unwrap().ends_with('…')),
        "{screen}"
    );
    assert!(!screen.contains("conv2d_9/BiasAdd"), "{screen}");
}

/// A row marked int16 (`i`): the row shows ◆, the denylist panel the int16 cost and the
/// estimated latency.
#[test]
fn int16_row_and_its_cost() {
    let mut s = running();
    update(&mut s, Action::Down);
    update(&mut s, Action::Down);
    update(&mut s, Action::ToggleInt16Row);
    let generation = s.rules_generation;
    let int16 = (0..8).map(|k| k == 2).collect();
    update(&mut s, Action::Int16Rows { generation, int16 });
    update(
        &mut s,
        Action::Denied {
            generation,
            denied: vec![false; 8],
        },
    );
    update(
        &mut s,
        Action::Costed {
            generation,
            cost: Cost {
                size_bytes: 102_176,
                int16_ops: 1,
                int16_islands: 1,
                int16_activation_bytes: 4096,
                latency_vs_int8: Some(1.8),
                ..cost(0)
            },
        },
    );
    insta::assert_snapshot!(text(&s, 100, 30));
}
