//! One session: what every command that quantizes and the dashboard do before their own
//! work, written once. Read the float model, read its data (and labels), calibrate or reuse
//! the saved calibration, plan, and hand out the pieces built from that: the full-int8
//! model, a [`Debugger`] whose executors are built once with the chosen int8 arithmetic,
//! the debugger as a background job, and the [`Selector`] for denylist experiments.
//!
//! The stages are types, so a caller stops where its command does (`qdbg quantize` needs
//! no debugger, `qdbg debug --int8` no calibration) and can do its own quick checks in
//! between (`qdbg select` checks rule names before reading the data, the dashboard
//! calibrates on its engine thread, after the screen is up).
//!
//! Above `select`, `debug` and `quant`; used by the binary's commands and by `tui`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;

use crate::data::{Dataset, ImageOptions, InputSpec};
use crate::debug::job::{self, DebugJob, JobSettings};
use crate::debug::metrics::{given_tasks, output_names, Task, TaskChoice};
use crate::debug::{Debugger, VerifyMode};
use crate::error::{Error, Result};
use crate::exec::{DeviceChoice, Executor, FloatOutputCache};
use crate::graph::{Graph, ModelKind};
use crate::kernels::int8::Arithmetic;
use crate::quant::division_check::keep_refused_divisions_float;
use crate::quant::int16_plan::whole_model_int16_ops;
use crate::quant::plan::plan_activations;
use crate::quant::quantize::{quantize_graph, QuantizeOptions, QuantizedModel};
use crate::quant::{calibrate_or_load_samples, Calibration, CalibrationSource};
use crate::select::Selector;

/// A float model, read and checked to be one.
pub struct FloatModel {
    pub path: PathBuf,
    /// The file's bytes: the writer carries its metadata and signatures over. `None` once
    /// dropped by a command that writes no model ([`Loaded::without_original`]).
    pub original: Option<Vec<u8>>,
    pub graph: Graph,
}

impl FloatModel {
    /// Reads the float model `command` calibrates, quantizes or debugs: an
    /// already-quantized (or dynamic-range) model is refused here, before any work and
    /// before anything (such as a calibration file) is written beside it.
    pub fn read(path: &Path, command: &str) -> Result<FloatModel> {
        let original = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let graph = crate::tflite::read_model_bytes(&original, path)?;
        ModelKind::of(&graph).require_float(path, command)?;
        Ok(FloatModel {
            path: path.to_path_buf(),
            original: Some(original),
            graph,
        })
    }

    /// Reads the data (and labels, one per sample), checked against the model's inputs,
    /// and opens the device the float model runs on.
    pub fn with_data(
        self,
        data: &Path,
        labels: Option<&Path>,
        images: &ImageOptions,
        device: DeviceChoice,
    ) -> Result<Loaded> {
        let dataset = crate::data::load_dataset(data, &InputSpec::for_graph(&self.graph), images)?;
        let labels = match labels {
            Some(path) => Some(crate::data::load_labels(path, Some(dataset.num_samples()))?),
            None => None,
        };
        let device = crate::exec::parse_device(device)?;
        Ok(Loaded {
            model: self,
            dataset,
            labels,
            device,
            tasks: Vec::new(),
        })
    }
}

/// A model and its data, read and checked (no calibration yet).
pub struct Loaded {
    pub model: FloatModel,
    pub dataset: Dataset,
    pub labels: Option<Vec<i64>>,
    pub device: Device,
    /// Each output's task as given (`--task`; `None`, or no entry: guessed).
    pub tasks: Vec<Option<Task>>,
}

impl Loaded {
    /// Sets the outputs' tasks from `--task` choices, refusing an output the model lacks.
    pub fn with_tasks(mut self, choices: &[TaskChoice]) -> Result<Loaded> {
        self.tasks = given_tasks(&output_names(&self.model.graph), choices)?;
        Ok(self)
    }

    /// Lets the model file's bytes go, for a command that writes no model (`qdbg debug`):
    /// the session would otherwise hold a second copy of the weights.
    pub fn without_original(mut self) -> Loaded {
        self.model.original = None;
        self
    }

    /// Reads the float model and its data: [`FloatModel::read`] then
    /// [`FloatModel::with_data`].
    pub fn read(
        command: &str,
        model: &Path,
        data: &Path,
        labels: Option<&Path>,
        images: &ImageOptions,
        device: DeviceChoice,
    ) -> Result<Loaded> {
        FloatModel::read(model, command)?.with_data(data, labels, images, device)
    }

    /// Calibrates on the data, or reuses the calibration saved beside the model when it
    /// was made from the same model and data (unless `recalibrate`); `progress` gets the
    /// samples done when computing. The float model's outputs seen on the way are kept
    /// for the debugger and every evaluation. `arithmetic` is whose int8 arithmetic the
    /// session's executors reproduce.
    pub fn calibrate(
        self,
        recalibrate: bool,
        arithmetic: Arithmetic,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Session> {
        let all = 0..self.dataset.num_samples();
        self.calibrate_on(all, recalibrate, arithmetic, progress)
    }

    /// The number of samples the data holds.
    pub fn num_samples(&self) -> usize {
        self.dataset.num_samples()
    }

    /// [`Loaded::calibrate`] on `samples` only (a search holding the others out must not
    /// calibrate on them: their ranges would leak into the model it scores them on). A part
    /// of the data is calibrated afresh and not saved; the session still holds every sample.
    pub fn calibrate_on(
        self,
        samples: std::ops::Range<usize>,
        recalibrate: bool,
        arithmetic: Arithmetic,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Session> {
        let Loaded {
            model,
            dataset,
            labels,
            device,
            tasks,
        } = self;
        let float_outputs = Arc::new(FloatOutputCache::new(dataset.num_samples()));
        let (calibration, calibration_source) = {
            // Only for calibrating: the debugger and the selector build their own.
            let executor = Executor::new(&model.graph, &device)?;
            calibrate_or_load_samples(
                &model.path,
                &executor,
                &dataset,
                samples,
                recalibrate,
                Some(&float_outputs),
                progress,
            )?
        };
        let mut plan = plan_activations(&model.graph, &calibration);
        keep_refused_divisions_float(&model.graph, &mut plan, &dataset, &device)?;
        let selector = Selector::new(
            Arc::new(model.graph),
            model.original.map(Arc::new),
            Arc::new(plan),
            Arc::new(dataset),
            labels.map(Arc::new),
            device,
        )
        .with_float_outputs(Arc::clone(&float_outputs))
        .with_arithmetic(arithmetic)
        .with_tasks(tasks)
        .with_calibration(Arc::new(calibration.clone()));
        Ok(Session {
            model_path: model.path,
            calibration,
            calibration_source,
            float_outputs,
            arithmetic,
            selector: Arc::new(selector),
        })
    }
}

/// A calibrated model with its data: everything quantizing, debugging and denylist
/// experiments share.
pub struct Session {
    pub model_path: PathBuf,
    pub calibration: Calibration,
    pub calibration_source: CalibrationSource,
    /// The float model's outputs per sample, shared by calibration, the debugger and the
    /// selector's evaluations (each fills what it computes first).
    pub float_outputs: Arc<FloatOutputCache>,
    pub arithmetic: Arithmetic,
    /// The float graph, the plan, the data, the labels and the device, held for denylist
    /// experiments (and read through the accessors below).
    pub selector: Arc<Selector>,
}

impl Session {
    pub fn graph(&self) -> &Graph {
        &self.selector.graph
    }

    /// The float model file's size in bytes.
    pub fn float_size(&self) -> usize {
        self.selector.original.as_ref().map_or(0, |o| o.len())
    }

    pub fn dataset(&self) -> &Dataset {
        &self.selector.dataset
    }

    pub fn labels(&self) -> Option<&[i64]> {
        self.selector.labels.as_deref().map(Vec::as_slice)
    }

    pub fn device(&self) -> &Device {
        &self.selector.device
    }

    /// The model quantized by the session's plan with `options` (a full-int8 model unless
    /// they keep ops float).
    pub fn quantize(&self, options: &QuantizeOptions) -> Result<QuantizedModel> {
        quantize_graph(self.graph(), &self.selector.plan, options)
    }

    /// The model quantized whole-model 16x8, as TensorFlow's converter makes it with the
    /// 16x8 op set beside `TFLITE_BUILTINS`: every op with a 16x8 kernel computes with
    /// int16 activations, the others stay float (`options.keep_float` stays float too).
    pub fn quantize_16x8(&self, options: &QuantizeOptions) -> Result<QuantizedModel> {
        let graph = self.graph();
        let ops = whole_model_int16_ops(graph);
        let plan =
            self.selector
                .plan
                .as_ref()
                .clone()
                .with_int16_ops(graph, &self.calibration, &ops);
        let options = QuantizeOptions {
            float_unless_int16: true,
            ..options.clone()
        };
        quantize_graph(graph, &plan, &options)
    }

    /// The debugger of `model` (made from this session's graph) against the float model:
    /// executors built once, with the session's arithmetic, the float outputs shared.
    pub fn debugger<'a>(&'a self, model: &'a QuantizedModel) -> Result<Debugger<'a>> {
        Ok(
            Debugger::for_arithmetic(self.graph(), model, self.device(), self.arithmetic)?
                .with_float_outputs(Arc::clone(&self.float_outputs))
                .with_tasks(&self.selector.tasks),
        )
    }

    /// [`Session::debugger`]'s run on its own thread (see [`job::spawn`]).
    pub fn debug_job(&self, model: Arc<QuantizedModel>, mode: VerifyMode) -> DebugJob {
        job::spawn(
            Arc::clone(&self.selector.graph),
            model,
            Arc::clone(&self.selector.dataset),
            self.selector.labels.clone(),
            JobSettings {
                mode,
                device: self.device().clone(),
                float_outputs: Some(Arc::clone(&self.float_outputs)),
                arithmetic: self.arithmetic,
                tasks: self.selector.tasks.clone(),
            },
        )
    }
}
