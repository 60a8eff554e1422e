//! Datasets: `.npy`, `.npz`, image folders and labels.
//!
//! Everything here reads files the user hands us, so a bad file is an [`Error`] that names
//! the file, the model input and what to do, never a panic; and no size read from a file
//! is allocated before the bytes backing it are known to exist.

mod convert;
mod images;
mod labels;
mod lazy;
mod npy;
mod npz;
mod sample;

use std::path::Path;

use crate::error::{Error, Result};
use crate::graph::DType;

pub use labels::{load_labels, parse_labels};
pub use npz::write_npz_atomic;
use sample::Samples;
pub use sample::{Dataset, SampleArray};

/// What a model input expects; built by the caller from the graph (shape includes the
/// batch dim, usually 1).
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

impl InputSpec {
    /// The specs of a graph's inputs, in order.
    pub fn for_graph(graph: &crate::graph::Graph) -> Vec<InputSpec> {
        graph
            .inputs
            .iter()
            .map(|&id| {
                let t = graph.tensor(id);
                InputSpec {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    dtype: t.dtype,
                }
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

/// How image pixels become float32 input values: `(pixel * scale - mean[c]) / std[c]`,
/// with `c` counted in the input's channel order (after any RGB→BGR swap). uint8 inputs
/// take raw pixels and int8 inputs `pixel - 128`; neither is normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOptions {
    pub scale: f32,
    /// One value for every channel, or one per channel.
    pub mean: Vec<f32>,
    /// One value for every channel, or one per channel.
    pub std: Vec<f32>,
    pub channel_order: ChannelOrder,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            scale: 1.0 / 255.0,
            mean: vec![0.0],
            std: vec![1.0],
            channel_order: ChannelOrder::Rgb,
        }
    }
}

/// Loads samples for `inputs` (the model's inputs, in order) from an `.npy` file (one
/// input only), an `.npz` with one array per input name, or a folder of png/jpeg images
/// (one NHWC input only).
pub fn load_dataset(path: &Path, inputs: &[InputSpec], images: &ImageOptions) -> Result<Dataset> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if inputs.is_empty() {
        return Err(Error::data(path, "the model has no inputs to feed"));
    }
    for spec in inputs {
        convert::check_supported_dtype(spec, path)?;
    }

    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let memory = |arrays: Vec<(String, SampleArray)>| {
        arrays
            .into_iter()
            .map(|(name, a)| (name, Samples::Memory(a)))
            .collect::<Vec<_>>()
    };
    let arrays = if metadata.is_dir() {
        let array = images::read_image_folder(path, inputs, images)?;
        memory(vec![(input_name(inputs), array)])
    } else {
        match extension.as_deref() {
            // Streamed: large debug sets are .npy files.
            Some("npy") => {
                let spec = single_spec(path, inputs)?;
                let samples = match lazy::open(path, spec)? {
                    Some(file) => Samples::File(file),
                    None => Samples::Memory(read_single_npy(path, inputs)?),
                };
                vec![(input_name(inputs), samples)]
            }
            Some("npz") => memory(npz::read_npz(path, inputs)?),
            _ => {
                return Err(Error::data(
                    path,
                    "unrecognised dataset: give an .npy file, an .npz file or a folder of \
                     .png/.jpg images",
                ))
            }
        }
    };

    Ok(Dataset {
        source: path.to_path_buf(),
        inputs: arrays,
        input_shapes: inputs.iter().map(|s| s.shape.clone()).collect(),
    })
}

/// The formats [`load_dataset_bytes`] decodes from memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetFormat {
    Npy,
    Npz,
}

/// [`load_dataset`] for an `.npy` or `.npz` already in memory (a download, a pipe, a
/// fuzzer); `label` names the data in error messages. Applies exactly the checks the
/// file loaders apply.
pub fn load_dataset_bytes(
    bytes: &[u8],
    format: DatasetFormat,
    label: &Path,
    inputs: &[InputSpec],
) -> Result<Dataset> {
    if inputs.is_empty() {
        return Err(Error::data(label, "the model has no inputs to feed"));
    }
    for spec in inputs {
        convert::check_supported_dtype(spec, label)?;
    }
    let arrays = match format {
        DatasetFormat::Npy => vec![(input_name(inputs), npy_from_bytes(bytes, label, inputs)?)],
        DatasetFormat::Npz => npz::read_npz_from(std::io::Cursor::new(bytes), label, inputs)?,
    };
    Ok(Dataset::from_arrays(
        label.to_path_buf(),
        arrays,
        inputs.iter().map(|s| s.shape.clone()).collect(),
    ))
}

fn input_name(inputs: &[InputSpec]) -> String {
    inputs.first().map(|s| s.name.clone()).unwrap_or_default()
}

fn read_single_npy(path: &Path, inputs: &[InputSpec]) -> Result<SampleArray> {
    // The input count is checked before reading a possibly large file.
    single_spec(path, inputs)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    npy_from_bytes(&bytes, path, inputs)
}

fn npy_from_bytes(bytes: &[u8], path: &Path, inputs: &[InputSpec]) -> Result<SampleArray> {
    let spec = single_spec(path, inputs)?;
    let raw = npy::parse_npy(bytes)
        .map_err(|reason| Error::data(path, format!("model input '{}': {reason}", spec.name)))?;
    convert::to_samples(raw, spec, convert::Origin { path, entry: None })
}

fn single_spec<'s>(path: &Path, inputs: &'s [InputSpec]) -> Result<&'s InputSpec> {
    let spec = match inputs {
        [spec] => spec,
        _ => {
            let names: Vec<String> = inputs.iter().map(|s| format!("'{}'", s.name)).collect();
            let kwargs: Vec<String> = inputs
                .iter()
                .map(|s| format!("'{}': ...", s.name))
                .collect();
            return Err(Error::data(
                path,
                format!(
                    "an .npy file holds one array, but the model has {} inputs ({}); save one \
                     array per input name in an .npz: np.savez('data.npz', **{{{}}})",
                    inputs.len(),
                    names.join(", "),
                    kwargs.join(", ")
                ),
            ));
        }
    };
    Ok(spec)
}
