//! Image folders: one sample per png/jpeg file, for a single NHWC input.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::ImageReader;
use ndarray::{ArrayD, IxDyn};

use super::convert::{check_floats, expected_text, Origin};
use super::npy::fmt_shape;
use super::{ChannelOrder, ImageOptions, InputSpec, SampleArray};
use crate::error::{Error, Result};
use crate::graph::DType;

/// Beyond this many elements per sample (a 16k x 16k RGB image) the model's input shape
/// is taken to be wrong rather than a reason to allocate gigabytes per image.
const MAX_SAMPLE_ELEMENTS: usize = 1 << 30;

pub(crate) fn read_image_folder(
    dir: &Path,
    specs: &[InputSpec],
    options: &ImageOptions,
) -> Result<SampleArray> {
    let spec = match specs {
        [spec] => spec,
        _ => {
            let names: Vec<String> = specs.iter().map(|s| format!("'{}'", s.name)).collect();
            return Err(Error::data(
                dir,
                format!(
                    "an image folder feeds a model with exactly one input, but this model has \
                     {} ({}); save the inputs in an .npz with one array per input name",
                    specs.len(),
                    names.join(", ")
                ),
            ));
        }
    };
    let (height, width, channels) = image_geometry(spec, dir)?;
    check_options(options, channels, spec, dir)?;

    let files = list_images(dir)?;
    let per_sample = height
        .checked_mul(width)
        .and_then(|n| n.checked_mul(channels))
        .filter(|&n| n <= MAX_SAMPLE_ELEMENTS);
    let total = per_sample.and_then(|n| n.checked_mul(files.len()));
    let (Some(_), Some(total)) = (per_sample, total) else {
        return Err(Error::data(
            dir,
            format!(
                "model input '{}' of shape {} is too large to fill from {} images",
                spec.name,
                fmt_shape(&spec.shape),
                files.len()
            ),
        ));
    };
    let too_big = |e| {
        Error::data(
            dir,
            format!(
                "{} images of {height}x{width}x{channels} for input '{}' do not fit in memory ({e}); \
                 use fewer images",
                files.len(),
                spec.name
            ),
        )
    };

    let shape = IxDyn(&[files.len(), height, width, channels]);
    let target = (
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
    );
    let array = match spec.dtype {
        DType::F32 => {
            let mut values: Vec<f32> = Vec::new();
            values.try_reserve_exact(total).map_err(too_big)?;
            for file in &files {
                let pixels = decode(file, spec, channels, options.channel_order, target)?;
                values.extend(pixels.iter().zip((0..channels).cycle()).map(|(&p, c)| {
                    // check_options made sure mean/std have 1 or `channels` entries.
                    let mean = options.mean.get(c).or(options.mean.first()).copied();
                    let std = options.std.get(c).or(options.std.first()).copied();
                    (f32::from(p) * options.scale - mean.unwrap_or(0.0)) / std.unwrap_or(1.0)
                }));
            }
            let array = ArrayD::from_shape_vec(shape, values).map_err(|e| internal(dir, e))?;
            check_floats(
                &array,
                spec,
                Origin {
                    path: dir,
                    entry: None,
                },
            )?;
            SampleArray::F32(array)
        }
        DType::U8 => {
            let mut values: Vec<u8> = Vec::new();
            values.try_reserve_exact(total).map_err(too_big)?;
            for file in &files {
                values.extend(decode(file, spec, channels, options.channel_order, target)?);
            }
            SampleArray::U8(ArrayD::from_shape_vec(shape, values).map_err(|e| internal(dir, e))?)
        }
        DType::I8 => {
            let mut values: Vec<i8> = Vec::new();
            values.try_reserve_exact(total).map_err(too_big)?;
            for file in &files {
                let pixels = decode(file, spec, channels, options.channel_order, target)?;
                // The usual int8 image convention: zero point -128, scale 1.
                values.extend(pixels.iter().map(|&p| (i16::from(p) - 128) as i8));
            }
            SampleArray::I8(ArrayD::from_shape_vec(shape, values).map_err(|e| internal(dir, e))?)
        }
        other => {
            return Err(Error::InputMismatch {
                tensor: spec.name.clone(),
                expected: "a float32, uint8 or int8 image input".to_string(),
                actual: format!(
                    "{} {other} (fed from {})",
                    fmt_shape(&spec.shape),
                    dir.display()
                ),
                hint: "; feed this input from an .npy/.npz file instead".to_string(),
            })
        }
    };
    Ok(array)
}

fn internal(dir: &Path, e: ndarray::ShapeError) -> Error {
    Error::data(dir, format!("internal error assembling image samples: {e}"))
}

/// `(H, W, C)` of a `[1, H, W, C]` input with C in {1, 3}.
fn image_geometry(spec: &InputSpec, dir: &Path) -> Result<(usize, usize, usize)> {
    match spec.shape.as_slice() {
        [1, h, w, c @ (1 | 3)] if *h > 0 && *w > 0 => Ok((*h, *w, *c)),
        _ => Err(Error::InputMismatch {
            tensor: spec.name.clone(),
            expected: "an NHWC image shape [1, H, W, C] with C = 1 or 3".to_string(),
            actual: format!(
                "{} {} (fed from image folder {})",
                fmt_shape(&spec.shape),
                spec.dtype,
                dir.display()
            ),
            hint: format!(
                "; image folders only feed NHWC image inputs: save preprocessed samples as an \
                 .npy of shape {} instead",
                expected_text(spec)
            ),
        }),
    }
}

fn check_options(
    options: &ImageOptions,
    channels: usize,
    spec: &InputSpec,
    dir: &Path,
) -> Result<()> {
    if spec.dtype != DType::F32 {
        return Ok(()); // integer inputs take raw pixels; normalisation does not apply
    }
    let bad = |what: String| {
        Error::data(
            dir,
            format!(
                "image options for input '{}' ({channels} channels): {what}",
                spec.name
            ),
        )
    };
    if !options.scale.is_finite() {
        return Err(bad(format!(
            "scale {} is not a finite number",
            options.scale
        )));
    }
    for (what, values) in [("mean", &options.mean), ("std", &options.std)] {
        if values.len() != 1 && values.len() != channels {
            return Err(bad(format!(
                "{what} has {} values; give one value or one per channel ({channels})",
                values.len()
            )));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("{what} contains {v}; use finite numbers")));
        }
    }
    if options.std.contains(&0.0) {
        return Err(bad("std contains 0, which would divide by zero".to_string()));
    }
    Ok(())
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::data(
            dir,
            "empty dataset: the folder holds no .png, .jpg or .jpeg images",
        ));
    }
    // read_dir's order is the filesystem's; sample numbers must not depend on it.
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// The image's pixels, HWC, resized to `target` (width, height), in the input's channel order.
fn decode(
    file: &Path,
    spec: &InputSpec,
    channels: usize,
    order: ChannelOrder,
    target: (u32, u32),
) -> Result<Vec<u8>> {
    let corrupt = |e: &dyn std::fmt::Display| {
        Error::data(
            file,
            format!(
                "cannot decode this image for model input '{}': {e}; remove or replace the file",
                spec.name
            ),
        )
    };
    let image = ImageReader::open(file)
        .map_err(|e| Error::io(file, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(file, e))?
        .decode()
        .map_err(|e| corrupt(&e))?;
    let (width, height) = target;
    let resize_needed = (image.width(), image.height()) != target;
    let mut pixels = if channels == 1 {
        let gray = image.to_luma8();
        if resize_needed {
            imageops::resize(&gray, width, height, FilterType::Triangle).into_raw()
        } else {
            gray.into_raw()
        }
    } else {
        let rgb = image.to_rgb8();
        if resize_needed {
            imageops::resize(&rgb, width, height, FilterType::Triangle).into_raw()
        } else {
            rgb.into_raw()
        }
    };
    if channels == 3 && order == ChannelOrder::Bgr {
        for px in pixels.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
    }
    Ok(pixels)
}
