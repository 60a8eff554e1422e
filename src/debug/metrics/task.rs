//! What each model output is for ([`Task`]), the guess made when the user does not say
//! (`--task`), and the metrics that fit each task beyond MSE/SQNR/cosine: IoU of thresholded
//! masks for segmentation, agreement of the top-scored boxes for detection.
//!
//! Class metrics on a landmark or box output mean nothing (0% "same top-1" on a detector
//! that is fine), so every output gets the metrics of its own task and no others.

use serde::Serialize;

use crate::{Error, Result};

/// What a model output is for; it decides which metrics are computed on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Class scores, probabilities or logits: top-1/top-5 agreement, accuracy with labels.
    Classify,
    /// Box coordinates or box scores: agreement of the top-scored boxes.
    Detect,
    /// Any other numbers (landmarks, embeddings, ...): MSE, SQNR and cosine only.
    #[default]
    Regress,
    /// Masks: IoU of the float and int8 masks thresholded.
    Segment,
}

/// The names `--task` accepts, in [`Task`] order.
pub const TASK_NAMES: [&str; 4] = ["classify", "detect", "regress", "segment"];

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Detect => "detect",
            Task::Regress => "regress",
            Task::Segment => "segment",
        }
    }

    /// A task by its name (`classify`, `detect`, `regress`, `segment`).
    pub fn parse(name: &str) -> Option<Task> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "classify" => Task::Classify,
            "detect" => Task::Detect,
            "regress" => Task::Regress,
            "segment" => Task::Segment,
            _ => return None,
        })
    }
}

/// One `--task` argument: `OUTPUT=TASK` (OUTPUT a name or an index) or `TASK` alone (for a
/// model with a single output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskChoice {
    pub output: Option<String>,
    pub task: Task,
}

impl TaskChoice {
    /// Parses `OUTPUT=TASK` or `TASK`; the error lists the valid tasks.
    pub fn parse(arg: &str) -> std::result::Result<TaskChoice, String> {
        let (output, task) = match arg.rsplit_once('=') {
            Some((output, task)) => (Some(output.trim().to_string()), task),
            None => (None, arg),
        };
        let task = Task::parse(task).ok_or_else(|| {
            format!(
                "unknown task '{}': use one of {}",
                task.trim(),
                TASK_NAMES.join(", ")
            )
        })?;
        Ok(TaskChoice { output, task })
    }
}

/// The tasks given for each output (`None`: to be guessed), from the `--task` choices;
/// `names` are the outputs' names (see [`super::output_names`]). An output named neither
/// by name nor by index, or a bare `TASK` on a model with several outputs, is refused
/// with the list of outputs.
pub fn given_tasks(names: &[String], choices: &[TaskChoice]) -> Result<Vec<Option<Task>>> {
    let mut tasks = vec![None; names.len()];
    let list = || {
        names
            .iter()
            .enumerate()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for choice in choices {
        let index = match &choice.output {
            None if names.len() == 1 => 0,
            None => {
                return Err(Error::usage(
                    "--task",
                    format!(
                        "'{}' names no output, and the model has {} outputs: write \
                         --task OUTPUT={} with OUTPUT one of (index=name): {}",
                        choice.task.name(),
                        names.len(),
                        choice.task.name(),
                        list()
                    ),
                ))
            }
            Some(output) => names
                .iter()
                .position(|n| n == output)
                .or_else(|| output.parse::<usize>().ok().filter(|&k| k < names.len()))
                .ok_or_else(|| {
                    Error::usage(
                        "--task",
                        format!(
                            "'{output}={}': the model has no output '{output}'; its outputs \
                             are (index=name): {}",
                            choice.task.name(),
                            list()
                        ),
                    )
                })?,
        };
        tasks[index] = Some(choice.task);
    }
    Ok(tasks)
}

/// Whether `v` looks like class scores: probabilities (a softmax: every value in [0, 1],
/// summing to 1) or independent scores (sigmoid: every value in [0, 1]), or logits (values of
/// both signs) when their count is not a multiple of 3 (x, y, z landmark triples).
fn looks_like_class_scores(v: &[f64]) -> bool {
    if v.iter().all(|x| (0.0..=1.0).contains(x)) {
        return true;
    }
    let mixed_signs = v.iter().any(|&x| x < 0.0) && v.iter().any(|&x| x > 0.0);
    mixed_signs && !v.len().is_multiple_of(3)
}

/// The guessed task of every output from its shape and the float model's values on the
/// first sample, by these rules, in order:
/// 1. detect: a `[1, N, 4]` output (boxes, N >= 2), and any `[1, N]` or `[1, N, K]` output
///    with the same N beside it (their scores);
/// 2. segment: a `[1, H, W, C]` output with H, W >= 8 and C <= 4 (masks);
/// 3. classify: a `[1, N]` output with N >= 2 whose values look like class scores (see
///    [`looks_like_class_scores`]);
/// 4. regress: anything else.
///
/// A wrong guess is fixed with `--task`.
pub fn guess_tasks(shapes: &[Vec<usize>], first_sample: &[Vec<f64>]) -> Vec<Task> {
    let rows_of_boxes: Vec<usize> = shapes
        .iter()
        .filter_map(|s| match s.as_slice() {
            [1, n, 4] if *n >= 2 => Some(*n),
            _ => None,
        })
        .collect();
    shapes
        .iter()
        .enumerate()
        .map(|(k, shape)| match shape.as_slice() {
            [1, n, 4] if *n >= 2 => Task::Detect,
            [1, n] | [1, n, _] if rows_of_boxes.contains(n) => Task::Detect,
            [1, h, w, c] if *h >= 8 && *w >= 8 && *c <= 4 => Task::Segment,
            [1, n]
                if *n >= 2
                    && first_sample
                        .get(k)
                        .is_some_and(|v| looks_like_class_scores(v)) =>
            {
                Task::Classify
            }
            _ => Task::Regress,
        })
        .collect()
}

/// The fraction of `float_top`'s indices also in `quant_top` (1 when both are empty).
pub fn top_k_agreement(float_top: &[usize], quant_top: &[usize]) -> f64 {
    if float_top.is_empty() {
        return 1.0;
    }
    let shared = float_top.iter().filter(|i| quant_top.contains(i)).count();
    shared as f64 / float_top.len() as f64
}

/// The indices of the `k` largest values, largest first (ties keep the lower index).
pub fn top_k(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

/// The threshold a mask is cut at: 0.5 for values in [0, 1] (probabilities), 0 otherwise
/// (logits, whose sign is the decision).
pub fn mask_threshold(float_values: &[f64]) -> f64 {
    if float_values.iter().all(|x| (0.0..=1.0).contains(x)) {
        0.5
    } else {
        0.0
    }
}

/// Intersection over union of the masks `float > threshold` and `quant > threshold`
/// (1 when both are empty: they agree).
pub fn mask_iou(float: &[f64], quant: &[f64], threshold: f64) -> f64 {
    let (mut both, mut either) = (0usize, 0usize);
    for (f, q) in float.iter().zip(quant) {
        let (f, q) = (*f > threshold, *q > threshold);
        both += usize::from(f && q);
        either += usize::from(f || q);
    }
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

/// Intersection over union of two boxes given as two opposite corners `[y1, x1, y2, x2]`
/// (either order of the corners; 1 for two identical empty boxes, 0 for other empty ones).
pub fn box_iou(a: &[f64], b: &[f64]) -> f64 {
    let span = |b: &[f64]| {
        (
            b[0].min(b[2]),
            b[1].min(b[3]),
            b[0].max(b[2]),
            b[1].max(b[3]),
        )
    };
    let (ay1, ax1, ay2, ax2) = span(a);
    let (by1, bx1, by2, bx2) = span(b);
    let inter = (ay2.min(by2) - ay1.max(by1)).max(0.0) * (ax2.min(bx2) - ax1.max(bx1)).max(0.0);
    let union = (ay2 - ay1) * (ax2 - ax1) + (by2 - by1) * (bx2 - bx1) - inter;
    if union <= 0.0 {
        f64::from(u8::from(a == b))
    } else {
        inter / union
    }
}

#[cfg(test)]
mod task_tests {
    use super::*;

    #[test]
    fn parse_choices_and_refusals() {
        assert_eq!(
            TaskChoice::parse("Identity_1=segment").unwrap(),
            TaskChoice {
                output: Some("Identity_1".into()),
                task: Task::Segment
            }
        );
        assert_eq!(TaskChoice::parse("Classify").unwrap().task, Task::Classify);
        let err = TaskChoice::parse("out=boxes").unwrap_err();
        assert!(
            err.contains("'boxes'") && err.contains("classify, detect, regress, segment"),
            "{err}"
        );
        let names = vec!["boxes".to_string(), "scores".to_string()];
        let given = given_tasks(
            &names,
            &[
                TaskChoice::parse("1=detect").unwrap(),
                TaskChoice::parse("boxes=regress").unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(given, vec![Some(Task::Regress), Some(Task::Detect)]);
        let err = given_tasks(&names, &[TaskChoice::parse("anchors=detect").unwrap()]).unwrap_err();
        assert!(
            err.is_user_error() && err.to_string().contains("0=boxes, 1=scores"),
            "{err}"
        );
        let err = given_tasks(&names, &[TaskChoice::parse("2=detect").unwrap()]).unwrap_err();
        assert!(err.to_string().contains("no output '2'"), "{err}");
        let err = given_tasks(&names, &[TaskChoice::parse("detect").unwrap()]).unwrap_err();
        assert!(err.to_string().contains("2 outputs"), "{err}");
        let one = vec!["logits".to_string()];
        assert_eq!(
            given_tasks(&one, &[TaskChoice::parse("classify").unwrap()]).unwrap(),
            vec![Some(Task::Classify)]
        );
    }

    /// The rules applied by hand to the outputs of models of each kind.
    #[test]
    fn guesses_by_the_rules() {
        // SSD-style detector: [1,10,4] boxes, [1,10] scores, [1] count.
        let shapes = vec![vec![1, 10, 4], vec![1, 10], vec![1]];
        let values = vec![vec![0.5; 40], vec![0.9; 10], vec![10.0]];
        assert_eq!(
            guess_tasks(&shapes, &values),
            vec![Task::Detect, Task::Detect, Task::Regress]
        );
        // MediaPipe face detector: raw boxes [1,896,16] are not 4 wide; scores [1,896,1].
        let shapes = vec![vec![1, 896, 16], vec![1, 896, 1]];
        assert_eq!(
            guess_tasks(&shapes, &[vec![], vec![]]),
            vec![Task::Regress, Task::Regress]
        );
        // selfie segmentation: a [1,256,256,1] mask.
        assert_eq!(
            guess_tasks(&[vec![1, 256, 256, 1]], &[vec![]]),
            vec![Task::Segment]
        );
        // a [1,8,8,64] feature map is no mask.
        assert_eq!(
            guess_tasks(&[vec![1, 8, 8, 64]], &[vec![]]),
            vec![Task::Regress]
        );
        // classifier: softmax [0.7, 0.2, 0.1]; logits of both signs over 10 classes.
        assert_eq!(
            guess_tasks(&[vec![1, 3]], &[vec![0.7, 0.2, 0.1]]),
            vec![Task::Classify]
        );
        let logits: Vec<f64> = (0..10).map(|k| k as f64 - 4.5).collect();
        assert_eq!(guess_tasks(&[vec![1, 10]], &[logits]), vec![Task::Classify]);
        // hand landmarks: 63 pixel coordinates (all > 1), world landmarks (63, mixed signs),
        // handedness and presence [1,1].
        let pixels: Vec<f64> = (0..63).map(|k| 10.0 + k as f64).collect();
        let world: Vec<f64> = (0..63).map(|k| (k as f64 - 31.0) / 100.0).collect();
        let shapes = vec![vec![1, 63], vec![1, 1], vec![1, 1], vec![1, 63]];
        let values = vec![pixels, vec![0.9], vec![0.8], world];
        assert_eq!(guess_tasks(&shapes, &values), vec![Task::Regress; 4]);
    }

    #[test]
    fn iou_and_top_k_by_hand() {
        // masks at 0.5: float {0, 1, 2}, int8 {1, 2, 3}: 2 shared of 4 -> 0.5
        let f = [0.9, 0.6, 0.7, 0.2, 0.1];
        let q = [0.4, 0.8, 0.51, 0.6, 0.0];
        assert_eq!(mask_threshold(&f), 0.5);
        assert_eq!(mask_iou(&f, &q, 0.5), 0.5);
        // logits cut at 0: float {0}, int8 {0, 1}: 1 of 2
        assert_eq!(mask_threshold(&[-1.0, 2.0]), 0.0);
        assert_eq!(mask_iou(&[3.0, -1.0], &[2.0, 0.5], 0.0), 0.5);
        assert_eq!(mask_iou(&[0.1], &[0.2], 0.5), 1.0);
        // boxes [0,0,2,2] and [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7
        assert!((box_iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 1.0, 3.0, 3.0]) - 1.0 / 7.0).abs() < 1e-12);
        assert_eq!(box_iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
        assert_eq!(box_iou(&[2.0, 2.0, 0.0, 0.0], &[0.0, 0.0, 2.0, 2.0]), 1.0);
        // top-3 of float [5,4,3,2,1] = {0,1,2}; of int8 [5,1,3,4,2] = {0,3,2}: 2 of 3
        let ft = top_k(&[5.0, 4.0, 3.0, 2.0, 1.0], 3);
        let qt = top_k(&[5.0, 1.0, 3.0, 4.0, 2.0], 3);
        assert_eq!(ft, vec![0, 1, 2]);
        assert_eq!(qt, vec![0, 3, 2]);
        assert!((top_k_agreement(&ft, &qt) - 2.0 / 3.0).abs() < 1e-12);
    }
}
