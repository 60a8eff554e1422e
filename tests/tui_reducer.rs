//! The dashboard's reducer: Action -> State (and the effects it asks of the engine), on
//! hand-made statistics (tests/common/synthetic.rs), with no terminal.

mod common;

use common::synthetic::{infos, report, LAYERS};
use qdbg::repair::sensitivity::{LayerSensitivity, Sensitivity};
use qdbg::select::Rule;
use qdbg::tui::action::{key_action, Action, Effect};
use qdbg::tui::state::{Column, Cost, EvalStatus, Panel, Phase, Prompt, Side, State};
use qdbg::tui::update::update;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn started() -> State {
    let mut s = State::new("model.tflite".into(), "debug.npy".into(), true);
    update(
        &mut s,
        Action::DebugStarted {
            layers: infos(),
            samples: 100,
            at_s: 1.0,
        },
    );
    s
}

fn with_stats() -> State {
    let mut s = started();
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

fn type_text(s: &mut State, text: &str) {
    for c in text.chars() {
        update(s, Action::PromptInput(c));
    }
}

fn rules_of(effects: &[Effect]) -> Vec<String> {
    match effects {
        [Effect::Recompute { rules, .. }] => rules.iter().map(ToString::to_string).collect(),
        other => panic!("expected one recompute, got {other:?}"),
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn rows_appear_when_the_debugger_starts_and_fill_as_samples_complete() {
    let mut s = State::new("m".into(), "d".into(), false);
    assert!(matches!(s.phase, Phase::Calibrating { .. }));
    update(
        &mut s,
        Action::Calibrating {
            done: 3,
            total: 100,
        },
    );
    assert_eq!(
        s.phase,
        Phase::Calibrating {
            done: 3,
            total: 100
        }
    );
    update(
        &mut s,
        Action::DebugStarted {
            layers: infos(),
            samples: 100,
            at_s: 1.0,
        },
    );
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.layers().len(), LAYERS.len());
    assert!(s.layers().iter().all(|l| l.per_layer.is_none()));
    assert_eq!(s.denied, vec![false; LAYERS.len()]);
    update(
        &mut s,
        Action::DebugUpdated {
            done: 50,
            total: 100,
            report: report(50, false),
            at_s: 11.0,
        },
    );
    // 50 samples in 10 s: 5 samples/s, 50 left -> 10 s.
    let (rate, eta) = s.rate_and_eta().unwrap();
    assert!((rate - 5.0).abs() < 1e-12 && (eta - 10.0).abs() < 1e-12);
    update(
        &mut s,
        Action::DebugEnded {
            cancelled: false,
            at_s: 21.0,
        },
    );
    assert_eq!(s.phase, Phase::Finished);
    assert_eq!(s.run_seconds(), Some(20.0));
    update(&mut s, Action::DebugFailed("out of memory".into()));
    assert_eq!(s.phase, Phase::Failed("out of memory".into()));
}

#[test]
fn sorting_by_rmse_over_scale_puts_the_worst_first() {
    let mut s = with_stats();
    assert_eq!(s.visible_rows(), (0..8).collect::<Vec<_>>());
    // index, op, tensor, scale, zp, range, rmse/scale
    for _ in 0..6 {
        update(&mut s, Action::SortNext);
    }
    assert_eq!(s.sort, Column::RmseScale(Side::PerLayer));
    assert!(s.descending);
    // r = 4.0, 0.9, 0.71, 0.31, 0.29, 0.28, 0.22, 0.1 (synthetic.rs).
    assert_eq!(s.visible_rows(), vec![0, 4, 6, 3, 5, 1, 2, 7]);
    update(&mut s, Action::SortReverse);
    assert_eq!(s.visible_rows(), vec![7, 2, 1, 5, 3, 6, 4, 0]);
    // Whole-model columns exist only when that mode ran.
    assert!(!s.columns().contains(&Column::RmseScale(Side::WholeModel)));
    update(
        &mut s,
        Action::DebugUpdated {
            done: 60,
            total: 100,
            report: report(60, true),
            at_s: 12.0,
        },
    );
    assert!(s.columns().contains(&Column::RmseScale(Side::WholeModel)));
    // Going backwards from the first column wraps to the last.
    update(&mut s, Action::Home);
    s.sort = Column::Index;
    update(&mut s, Action::SortPrevious);
    assert_eq!(s.sort, Column::Denied);
}

#[test]
fn the_cursor_stays_on_its_layer_while_rows_reorder_live() {
    let mut s = started();
    for _ in 0..6 {
        update(&mut s, Action::SortNext);
    }
    update(
        &mut s,
        Action::DebugUpdated {
            done: 1,
            total: 100,
            report: report(1, false),
            at_s: 2.0,
        },
    );
    update(&mut s, Action::Home);
    update(&mut s, Action::Down);
    update(&mut s, Action::Down);
    assert_eq!(s.selected_layer(), Some(6));
    // The next update swaps the order of layers 4 and 6: the cursor follows layer 6.
    let mut next = (*report(2, false)).clone();
    next.layers[6]
        .per_layer
        .as_mut()
        .unwrap()
        .mean_squared_error *= 4.0;
    update(
        &mut s,
        Action::DebugUpdated {
            done: 2,
            total: 100,
            report: std::sync::Arc::new(next),
            at_s: 3.0,
        },
    );
    assert_eq!(s.selected_layer(), Some(6));
    assert_eq!(s.cursor, 1);
}

#[test]
fn cursor_moves_within_the_rows_and_pages_by_the_table_height() {
    let mut s = with_stats();
    update(&mut s, Action::Viewport { table_rows: 3 });
    update(&mut s, Action::Up);
    assert_eq!(s.cursor, 0);
    update(&mut s, Action::PageDown);
    assert_eq!((s.cursor, s.scroll), (3, 1));
    update(&mut s, Action::End);
    assert_eq!((s.cursor, s.scroll), (7, 5));
    update(&mut s, Action::Down);
    assert_eq!(s.cursor, 7);
    update(&mut s, Action::PageUp);
    assert_eq!((s.cursor, s.scroll), (4, 4));
    update(&mut s, Action::Home);
    assert_eq!((s.cursor, s.scroll), (0, 0));
}

#[test]
fn a_threshold_is_typed_checked_and_nudged() {
    let mut s = with_stats();
    update(&mut s, Action::OpenThreshold);
    assert_eq!(
        s.prompt,
        Some(Prompt::Threshold {
            input: "rmse/scale > 0.7".into(),
            error: None
        })
    );
    let effects = update(&mut s, Action::PromptSubmit);
    assert_eq!(rules_of(&effects), vec!["rmse/scale > 0.7"]);
    assert_eq!(s.prompt, None);

    // A mistyped metric keeps the prompt open with the reason.
    update(&mut s, Action::OpenThreshold);
    update(&mut s, Action::ClearSearch); // Ctrl-U in a prompt clears it
    type_text(&mut s, "rmse > 1");
    assert!(update(&mut s, Action::PromptSubmit).is_empty());
    let Some(Prompt::Threshold {
        error: Some(error), ..
    }) = &s.prompt
    else {
        panic!("the prompt should stay with an error: {:?}", s.prompt)
    };
    assert!(error.contains("unknown metric"), "{error}");
    // Something that is a rule but not a comparison is refused too.
    update(&mut s, Action::ClearSearch);
    type_text(&mut s, "op:MEAN");
    update(&mut s, Action::PromptSubmit);
    assert!(matches!(
        &s.prompt,
        Some(Prompt::Threshold { error: Some(e), .. }) if e.contains("compares a metric")
    ));
    update(&mut s, Action::PromptCancel);
    assert_eq!(
        s.denylist
            .threshold
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("rmse/scale > 0.7")
    );

    // 0.7 moves in steps of 0.05 (half a unit of its leading digit).
    assert_eq!(
        rules_of(&update(&mut s, Action::NudgeUp)),
        vec!["rmse/scale > 0.75"]
    );
    update(&mut s, Action::NudgeDown);
    assert_eq!(
        rules_of(&update(&mut s, Action::NudgeDown)),
        vec!["rmse/scale > 0.65"]
    );
    // An expression with `and` is not nudged; the reason is shown.
    s.denylist.threshold = Some("rmse/scale > 0.7 and op == ADD".parse().unwrap());
    assert!(update(&mut s, Action::NudgeUp).is_empty());
    assert!(s.status.contains("single comparison"), "{}", s.status);
    // Clearing: an empty threshold removes the rule.
    update(&mut s, Action::OpenThreshold);
    update(&mut s, Action::ClearSearch);
    assert!(rules_of(&update(&mut s, Action::PromptSubmit)).is_empty());
}

#[test]
fn first_n_op_types_rows_and_regexes_build_the_denylist() {
    let mut s = with_stats();
    update(&mut s, Action::OpenFirstN);
    type_text(&mut s, "x");
    assert!(update(&mut s, Action::PromptSubmit).is_empty());
    update(&mut s, Action::PromptBackspace);
    type_text(&mut s, "2");
    assert_eq!(
        rules_of(&update(&mut s, Action::PromptSubmit)),
        vec!["first:2"]
    );

    update(&mut s, Action::OpenOpTypes);
    // ADD, CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, HARD_SWISH, MEAN, SOFTMAX
    assert_eq!(s.op_types()[5], "MEAN");
    for _ in 0..5 {
        update(&mut s, Action::PickerDown);
    }
    let rules = rules_of(&update(&mut s, Action::PickerToggle));
    assert_eq!(rules, vec!["first:2", "op:MEAN"]);
    update(&mut s, Action::PickerToggle);
    assert!(!s.denylist.ops.contains("MEAN"));
    update(&mut s, Action::PromptCancel);

    // Space on a row the rules do not deny adds its name.
    update(&mut s, Action::End);
    let rules = rules_of(&update(&mut s, Action::ToggleRow));
    assert_eq!(rules, vec!["first:2", "name:Identity"]);
    // Space on a row a rule denies keeps it quantized instead (an exception).
    update(&mut s, Action::Home);
    let mut denied = vec![false; 8];
    denied[0] = true;
    denied[1] = true;
    denied[7] = true;
    let generation = s.rules_generation;
    update(&mut s, Action::Denied { generation, denied });
    let rules = rules_of(&update(&mut s, Action::ToggleRow));
    assert_eq!(
        rules,
        vec![
            "first:2",
            "name:Identity",
            "allow:net_1/stem_bn/add;net_1/stem/conv"
        ]
    );
    // And Space on a row denied by hand takes it out again.
    update(&mut s, Action::End);
    let rules = rules_of(&update(&mut s, Action::ToggleRow));
    assert!(!rules.contains(&"name:Identity".to_string()));

    // `/` filters by name; `d` denies what the filter shows; Esc clears the filter.
    assert!(update(&mut s, Action::DenySearchMatches).is_empty());
    assert!(s.status.contains("filter rows with /"));
    update(&mut s, Action::OpenSearch);
    type_text(&mut s, "b1_(dw|se)");
    update(&mut s, Action::PromptSubmit);
    assert_eq!(s.visible_rows(), vec![2, 4]);
    let rules = rules_of(&update(&mut s, Action::DenySearchMatches));
    assert!(rules.contains(&"re:b1_(dw|se)".to_string()));
    assert_eq!(
        key_action(&s, key(KeyCode::Esc)).map(|a| format!("{a:?}")),
        Some("ClearSearch".into())
    );
    update(&mut s, Action::ClearSearch);
    assert_eq!(s.visible_rows().len(), 8);
    // A bad regex keeps the prompt with the reason.
    update(&mut s, Action::OpenSearch);
    type_text(&mut s, "(");
    update(&mut s, Action::PromptSubmit);
    assert!(
        matches!(&s.prompt, Some(Prompt::Search { error: Some(e), .. }) if e.contains("bad regex"))
    );
    update(&mut s, Action::PromptCancel);

    assert!(rules_of(&update(&mut s, Action::ClearDenylist)).is_empty());
}

#[test]
fn only_the_newest_rules_answer_counts() {
    let mut s = with_stats();
    update(&mut s, Action::OpenFirstN);
    type_text(&mut s, "1");
    update(&mut s, Action::PromptSubmit);
    let old = s.rules_generation;
    update(&mut s, Action::NudgeUp); // no threshold: nothing sent
    update(&mut s, Action::OpenFirstN);
    update(&mut s, Action::ClearSearch);
    type_text(&mut s, "3");
    update(&mut s, Action::PromptSubmit);
    let new = s.rules_generation;
    assert!(new > old);
    let cost = |n| Cost {
        denylisted_ops: n,
        float_ops: n,
        float_islands: 1,
        size_bytes: 1000,
        unmatched: vec![],
        ..Default::default()
    };
    update(
        &mut s,
        Action::Denied {
            generation: new,
            denied: vec![true, true, true, false, false, false, false, false],
        },
    );
    // A late answer for the older rules changes nothing.
    update(
        &mut s,
        Action::Denied {
            generation: old,
            denied: vec![true; 8],
        },
    );
    assert_eq!(s.denied.iter().filter(|&&d| d).count(), 3);
    update(
        &mut s,
        Action::Costed {
            generation: old,
            cost: cost(1),
        },
    );
    assert_eq!(s.cost, None);
    update(
        &mut s,
        Action::Costed {
            generation: new,
            cost: cost(3),
        },
    );
    assert_eq!(s.cost.as_ref().map(|c| c.denylisted_ops), Some(3));
}

#[test]
fn statistics_updates_recompute_only_rules_that_read_them() {
    let mut s = with_stats();
    let next = |s: &mut State| {
        update(
            s,
            Action::DebugUpdated {
                done: 60,
                total: 100,
                report: report(60, false),
                at_s: 12.0,
            },
        )
    };
    s.denylist.first_n = 2;
    assert!(next(&mut s).is_empty());
    s.denylist.threshold = Some("sqnr_db < 20".parse().unwrap());
    assert_eq!(rules_of(&next(&mut s)), vec!["sqnr_db < 20", "first:2"]);
}

#[test]
fn evaluating_keeps_a_history_of_experiments() {
    let mut s = State::new("m".into(), "d".into(), true);
    assert!(update(&mut s, Action::Evaluate).is_empty());
    assert!(s.status.contains("not listed the layers"));
    let mut s = with_stats();
    s.denylist.threshold = Some("rmse/scale > 0.7".parse().unwrap());
    let effects = update(&mut s, Action::Evaluate);
    let [Effect::Evaluate { id: 1, rules, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(rules, &vec![Rule::parse("rmse/scale > 0.7").unwrap()]);
    assert_eq!(s.panel, Panel::Experiments);
    update(
        &mut s,
        Action::EvalProgress {
            id: 1,
            done: 40,
            total: 100,
        },
    );
    assert_eq!(
        s.experiments[0].status,
        EvalStatus::Running {
            done: 40,
            total: 100
        }
    );
    let metrics = report(100, false).model.clone();
    let cost = Cost {
        denylisted_ops: 3,
        float_ops: 3,
        float_islands: 3,
        size_bytes: 107_392,
        unmatched: vec![],
        ..Default::default()
    };
    update(
        &mut s,
        Action::Evaluated {
            id: 1,
            result: Ok((cost.clone(), metrics.clone())),
        },
    );
    assert_eq!(s.experiments[0].status, EvalStatus::Done(metrics));
    assert_eq!(s.experiments[0].cost, Some(cost));
    s.denylist.threshold = None;
    update(&mut s, Action::Evaluate);
    update(
        &mut s,
        Action::Evaluated {
            id: 2,
            result: Err("disk full".into()),
        },
    );
    assert_eq!(s.experiments.len(), 2);
    assert_eq!(
        s.experiments[1].status,
        EvalStatus::Failed("disk full".into())
    );
    assert!(s.experiments[1].rules.is_empty());
}

#[test]
fn writing_asks_for_a_path_and_quitting_cancels_everything() {
    let mut s = with_stats();
    s.denylist.first_n = 1;
    update(&mut s, Action::OpenWriteModel);
    update(&mut s, Action::ClearSearch);
    assert!(update(&mut s, Action::PromptSubmit).is_empty());
    type_text(&mut s, "out/sel.tflite");
    let effects = update(&mut s, Action::PromptSubmit);
    let [Effect::WriteModel { path, rules, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(path, &std::path::PathBuf::from("out/sel.tflite"));
    assert_eq!(rules, &vec![Rule::First(1)]);
    update(&mut s, Action::OpenWriteCsv);
    let effects = update(&mut s, Action::PromptSubmit);
    assert!(
        matches!(effects.as_slice(), [Effect::WriteCsv { path, .. }] if path.ends_with("layers.csv"))
    );
    // `p` stops a running debugger and keeps the dashboard; once it ended, nothing to stop.
    assert!(matches!(
        update(&mut s, Action::StopRun).as_slice(),
        [Effect::StopRun]
    ));
    update(
        &mut s,
        Action::DebugEnded {
            cancelled: true,
            at_s: 5.0,
        },
    );
    assert!(update(&mut s, Action::StopRun).is_empty());
    assert!(!s.quit);
    let effects = update(&mut s, Action::Quit);
    assert!(matches!(effects.as_slice(), [Effect::CancelAll]));
    assert!(s.quit);
}

#[test]
fn keys_map_by_mode() {
    let mut s = with_stats();
    let act = |s: &State, k: KeyEvent| key_action(s, k).map(|a| format!("{a:?}"));
    assert_eq!(act(&s, key(KeyCode::Char('q'))), Some("Quit".into()));
    assert_eq!(act(&s, key(KeyCode::Char('j'))), Some("Down".into()));
    assert_eq!(act(&s, key(KeyCode::Up)), Some("Up".into()));
    assert_eq!(act(&s, key(KeyCode::Char('?'))), Some("ToggleHelp".into()));
    assert_eq!(act(&s, key(KeyCode::Tab)), Some("NextPanel".into()));
    // In a prompt, letters are text, and Ctrl-C still quits.
    update(&mut s, Action::OpenThreshold);
    assert_eq!(
        act(&s, key(KeyCode::Char('q'))),
        Some("PromptInput('q')".into())
    );
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(act(&s, ctrl_c), Some("Quit".into()));
    assert_eq!(act(&s, key(KeyCode::Esc)), Some("PromptCancel".into()));
    update(&mut s, Action::PromptCancel);
    // The help screen closes on ? / Esc / q and ignores the rest.
    update(&mut s, Action::ToggleHelp);
    assert_eq!(act(&s, key(KeyCode::Char('e'))), None);
    assert_eq!(act(&s, key(KeyCode::Esc)), Some("ToggleHelp".into()));
    update(&mut s, Action::ToggleHelp);
    // Tab cycles the bottom panel.
    update(&mut s, Action::NextPanel);
    assert_eq!(s.panel, Panel::Layer);
    update(&mut s, Action::NextPanel);
    update(&mut s, Action::NextPanel);
    assert_eq!(s.panel, Panel::Charts);
}

/// `/` searches the full tensor names, not the shortened ones the table shows: the shared
/// prefix (`net_1/`) and the fused ops after the first `;` (`stem/conv`) match too.
#[test]
fn search_matches_the_full_names_the_table_shortens() {
    let mut s = with_stats();
    update(&mut s, Action::OpenSearch);
    type_text(&mut s, "stem/conv");
    update(&mut s, Action::PromptSubmit);
    assert_eq!(s.visible_rows(), vec![0]);
    update(&mut s, Action::ClearSearch);
    update(&mut s, Action::OpenSearch);
    type_text(&mut s, "^net_1/stem_");
    update(&mut s, Action::PromptSubmit);
    assert_eq!(s.visible_rows(), vec![0, 1]);
}

#[test]
fn the_fix_key_asks_for_a_target_streams_candidates_and_adopts_the_result() {
    let mut s = with_stats();
    // With labels, the prompt offers an accuracy target to edit.
    let fix = key_action(&s, key(KeyCode::Char('f'))).unwrap();
    update(&mut s, fix);
    assert!(
        matches!(&s.prompt, Some(Prompt::Target { input, .. }) if input == "top1 >= float_top1 - 1")
    );
    // A target that cannot be parsed stays in the prompt with the reason.
    for _ in 0.."top1 >= float_top1 - 1".len() {
        update(&mut s, Action::PromptBackspace);
    }
    type_text(&mut s, "sqnr >= 30");
    assert!(update(&mut s, Action::PromptSubmit).is_empty());
    assert!(
        matches!(&s.prompt, Some(Prompt::Target { error: Some(e), .. }) if e.contains("sqnr_db")),
        "{:?}",
        s.prompt
    );
    for _ in 0.."sqnr >= 30".len() {
        update(&mut s, Action::PromptBackspace);
    }
    type_text(&mut s, "sqnr_db >= 30");
    let effects = update(&mut s, Action::PromptSubmit);
    assert!(
        matches!(effects.as_slice(), [Effect::Repair { target }] if target.to_string() == "sqnr_db >= 30"),
        "{effects:?}"
    );
    assert!(s.prompt.is_none());
    assert_eq!(s.panel, Panel::Experiments);
    // Nothing to adopt while it runs; `p` stops it (once the debugger is done: before,
    // `p` stops the debugger).
    update(
        &mut s,
        Action::DebugEnded {
            cancelled: false,
            at_s: 12.0,
        },
    );
    assert!(update(&mut s, Action::AdoptRepair).is_empty());
    assert!(s.status.contains("still running"), "{}", s.status);
    assert!(matches!(
        update(&mut s, Action::StopRun).as_slice(),
        [Effect::StopRepair]
    ));

    let cost = Cost {
        denylisted_ops: 1,
        float_ops: 1,
        float_islands: 1,
        size_bytes: 1000,
        unmatched: vec![],
        ..Default::default()
    };
    let chosen = vec![Rule::parse("conv1/out").unwrap()];
    let metrics = s.report.model.clone();
    update(
        &mut s,
        Action::RepairCandidate {
            rules: chosen.clone(),
            cost: cost.clone(),
            metrics,
            origin: "fix greedy ✓".into(),
        },
    );
    let e = s.experiments.last().unwrap();
    assert_eq!(e.origin.as_deref(), Some("fix greedy ✓"));
    assert_eq!(e.rules, chosen);
    assert_eq!(e.cost.as_ref(), Some(&cost));
    assert!(matches!(e.status, EvalStatus::Done(_)));
    update(
        &mut s,
        Action::RepairEnded {
            chosen: Some(chosen.clone()),
            verdict: "sqnr_db >= 30 met with 1 float op(s)".into(),
            sensitivity: None,
        },
    );
    assert!(s.status.contains("a adopts"), "{}", s.status);
    // Adopting replaces the denylist with the result's rules, which the engine then costs.
    let adopt = key_action(&s, key(KeyCode::Char('a'))).unwrap();
    let effects = update(&mut s, adopt);
    assert_eq!(rules_of(&effects), ["name:conv1/out"]);
    assert_eq!(s.denylist.rules(), chosen);
}

fn layer_sensitivity(position: usize, only_float: f64, only_quantized: f64) -> LayerSensitivity {
    LayerSensitivity {
        position,
        source_index: position,
        op: "CONV_2D".into(),
        tensor: format!("t{position}"),
        only_float,
        only_quantized,
    }
}

#[test]
fn the_sensitivity_key_measures_on_the_fix_metric_and_shows_two_sortable_columns() {
    let mut s = with_stats();
    update(
        &mut s,
        Action::DebugEnded {
            cancelled: false,
            at_s: 12.0,
        },
    );
    assert!(!s.columns().contains(&Column::OnlyFloat));
    // With labels and no fix target: top-1 accuracy, higher is better.
    let m = key_action(&s, key(KeyCode::Char('m'))).unwrap();
    let effects = update(&mut s, m);
    assert!(
        matches!(effects.as_slice(), [Effect::Sensitivity { metric, higher_is_better: true }] if metric == "top1"),
        "{effects:?}"
    );
    // A second press while it runs starts nothing; `p` stops it.
    assert!(update(&mut s, Action::MeasureSensitivity).is_empty());
    update(&mut s, Action::SensitivityProgress { done: 3, total: 18 });
    assert!(s.status.contains("3/18"), "{}", s.status);
    assert!(matches!(
        update(&mut s, Action::StopRun).as_slice(),
        [Effect::StopRepair]
    ));
    // The result lands on the rows by float-graph position (synthetic rows: row k is
    // position k); ops it did not measure (float anyway) show nothing and sort last.
    let sensitivity = Sensitivity {
        metric: "top1".into(),
        higher_is_better: true,
        full_int8: 80.0,
        float: 95.0,
        samples: 100,
        layers: vec![
            layer_sensitivity(1, 82.0, 94.0),
            layer_sensitivity(4, 91.0, 90.0),
            layer_sensitivity(6, 85.0, 95.0),
        ],
    };
    update(
        &mut s,
        Action::SensitivityMeasured(Ok(Box::new(sensitivity))),
    );
    let columns = s.columns();
    let at = |c: Column| columns.iter().position(|&x| x == c).unwrap();
    assert!(at(Column::OnlyFloat) < at(Column::OnlyQuantized));
    assert!(at(Column::OnlyQuantized) < at(Column::Denied));
    let layers = s.layers().to_vec();
    assert_eq!(s.value(4, &layers[4], Column::OnlyFloat), Some(91.0));
    assert_eq!(s.value(6, &layers[6], Column::OnlyQuantized), Some(95.0));
    assert_eq!(s.value(0, &layers[0], Column::OnlyFloat), None);
    while s.sort != Column::OnlyFloat {
        update(&mut s, Action::SortNext);
    }
    // Sorted descending (metric columns start that way): the biggest gain first.
    assert!(s.descending);
    assert_eq!(&s.visible_rows()[..3], &[4, 6, 1]);
    // 'only q' ascending: the op whose quantization alone costs most first.
    update(&mut s, Action::SortNext);
    assert_eq!(s.sort, Column::OnlyQuantized);
    assert!(!s.descending);
    assert_eq!(&s.visible_rows()[..3], &[4, 1, 6]);
    // A later fix search's one-sided ranking does not replace the full measurement.
    update(
        &mut s,
        Action::RepairEnded {
            chosen: None,
            verdict: "stopped".into(),
            sensitivity: Some(Box::new(Sensitivity {
                metric: "sqnr_db".into(),
                higher_is_better: true,
                full_int8: 20.0,
                float: f64::INFINITY,
                samples: 32,
                layers: vec![layer_sensitivity(0, f64::NAN, 25.0)],
            })),
        },
    );
    assert_eq!(s.sensitivity.as_ref().unwrap().metric, "top1");
}

#[test]
fn a_fix_search_fills_the_side_of_the_sensitivity_it_measured() {
    let mut s = with_stats();
    update(
        &mut s,
        Action::RepairEnded {
            chosen: None,
            verdict: "stopped".into(),
            sensitivity: Some(Box::new(Sensitivity {
                metric: "sqnr_db".into(),
                higher_is_better: true,
                full_int8: 20.0,
                float: f64::INFINITY,
                samples: 32,
                layers: vec![layer_sensitivity(2, f64::NAN, 25.0)],
            })),
        },
    );
    assert!(s.columns().contains(&Column::OnlyQuantized));
    assert!(!s.columns().contains(&Column::OnlyFloat));
}

#[test]
fn i_marks_the_selected_row_int16_and_space_moves_it_between_float_and_int16() {
    let mut s = with_stats();
    assert_eq!(
        key_action(&s, key(KeyCode::Char('i'))).map(|a| format!("{a:?}")),
        Some("ToggleInt16Row".into())
    );
    // The last row (Identity): i marks it int16.
    update(&mut s, Action::End);
    let rules = rules_of(&update(&mut s, Action::ToggleInt16Row));
    assert_eq!(rules, vec!["int16 name:Identity"]);
    // The engine's answer marks the row.
    let generation = s.rules_generation;
    let mut int16 = vec![false; 8];
    int16[7] = true;
    update(&mut s, Action::Int16Rows { generation, int16 });
    assert!(s.int16_rows[7]);
    // Space on it makes it float instead: float and int16 of one row do not stack.
    let rules = rules_of(&update(&mut s, Action::ToggleRow));
    assert_eq!(rules, vec!["name:Identity"]);
    // i on the float row makes it int16 again; i once more takes the mark off.
    let rules = rules_of(&update(&mut s, Action::ToggleInt16Row));
    assert_eq!(rules, vec!["int16 name:Identity"]);
    let rules = rules_of(&update(&mut s, Action::ToggleInt16Row));
    assert!(rules.is_empty(), "{rules:?}");
    // A row int16 by a loaded rule gets an exception (it goes back to int8).
    s.denylist.loaded = vec![Rule::parse("int16 op:CONV_2D").unwrap()];
    update(&mut s, Action::Home);
    let generation = s.rules_generation;
    let mut int16 = vec![false; 8];
    int16[0] = true;
    update(&mut s, Action::Int16Rows { generation, int16 });
    let rules = rules_of(&update(&mut s, Action::ToggleInt16Row));
    assert_eq!(
        rules,
        vec![
            "int16 op:CONV_2D",
            "allow:net_1/stem_bn/add;net_1/stem/conv"
        ]
    );
}
