//! `.npz` archives: reading one array per model input, and writing atomically.

use std::fs::File;
use std::io::{BufWriter, Read, Seek};
use std::path::Path;

use ndarray_npy::NpzWriter;
use zip::result::ZipError;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive};

use super::convert::{to_samples, Origin};
use super::npy::parse_npy;
use super::sample::with_array;
use super::{InputSpec, SampleArray};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};

/// One array per spec, in spec order, matched by name.
pub(crate) fn read_npz(path: &Path, specs: &[InputSpec]) -> Result<Vec<(String, SampleArray)>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    read_npz_from(file, path, specs)
}

/// [`read_npz`] on any seekable reader; `path` only labels errors.
pub(crate) fn read_npz_from<R: Read + Seek>(
    reader: R,
    path: &Path,
    specs: &[InputSpec],
) -> Result<Vec<(String, SampleArray)>> {
    let mut archive = ZipArchive::new(reader).map_err(|e| {
        Error::data(
            path,
            format!("not a readable .npz (zip) archive: {e}; save the arrays with numpy.savez"),
        )
    })?;

    // numpy names entries `<key>.npy` but reads keys without the suffix.
    let entries: Vec<(String, String)> = archive
        .file_names()
        .filter(|n| !n.ends_with('/'))
        .map(|n| {
            (
                n.strip_suffix(".npy").unwrap_or(n).to_string(),
                n.to_string(),
            )
        })
        .collect();
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    check_names(path, specs, &keys)?;

    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some((key, entry)) = entries.iter().find(|(k, _)| *k == spec.name) else {
            continue; // unreachable: check_names saw every spec name
        };
        let origin = Origin {
            path,
            entry: Some(key),
        };
        let bytes = read_entry(&mut archive, entry).map_err(|reason| {
            Error::data(
                path,
                format!("array '{key}' for model input '{}': {reason}", spec.name),
            )
        })?;
        let raw = parse_npy(&bytes).map_err(|reason| {
            Error::data(
                path,
                format!("array '{key}' for model input '{}': {reason}", spec.name),
            )
        })?;
        out.push((spec.name.clone(), to_samples(raw, spec, origin)?));
    }

    if let Some((first_name, first)) = out.first() {
        if let Some((name, other)) = out.iter().find(|(_, a)| a.len() != first.len()) {
            return Err(Error::data(
                path,
                format!(
                    "arrays disagree on the number of samples: '{first_name}' has {} and \
                     '{name}' has {}; every input needs one entry per sample",
                    first.len(),
                    other.len()
                ),
            ));
        }
    }
    Ok(out)
}

fn check_names(path: &Path, specs: &[InputSpec], keys: &[&str]) -> Result<()> {
    let quoted = |names: &mut dyn Iterator<Item = &str>| {
        names
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // `x` and `x.npy` both answer to key `x`; reading one would silently drop the other.
    if let Some(dup) = keys
        .iter()
        .enumerate()
        .find_map(|(i, k)| keys.iter().skip(i + 1).find(|other| *other == k))
    {
        return Err(Error::data(
            path,
            format!(
                "the archive holds two arrays for key '{dup}' ('{dup}' and '{dup}.npy'); \
                 keep only one"
            ),
        ));
    }
    let missing: Vec<&str> = specs
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !keys.contains(n))
        .collect();
    let extra: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !specs.iter().any(|s| s.name == *k))
        .collect();
    let rename_hint = match (missing.as_slice(), extra.as_slice()) {
        ([want], [got]) => format!("; rename '{got}' to '{want}'"),
        _ => String::new(),
    };
    if !missing.is_empty() {
        return Err(Error::data(
            path,
            format!(
                "no array for model input(s) {}: the model expects arrays named {} and the \
                 archive holds {}{rename_hint}",
                quoted(&mut missing.iter().copied()),
                quoted(&mut specs.iter().map(|s| s.name.as_str())),
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    quoted(&mut keys.iter().copied())
                },
            ),
        ));
    }
    if !extra.is_empty() {
        return Err(Error::data(
            path,
            format!(
                "array(s) {} match no model input (inputs: {}); remove them so that no \
                 data is silently ignored",
                quoted(&mut extra.iter().copied()),
                quoted(&mut specs.iter().map(|s| s.name.as_str())),
            ),
        ));
    }
    Ok(())
}

/// The entry's bytes, read as they come rather than sized from the zip headers.
fn read_entry<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    entry: &str,
) -> std::result::Result<Vec<u8>, String> {
    let compressed_hint = |e: &ZipError| match e {
        ZipError::UnsupportedArchive(_) => {
            "; qdbg reads uncompressed archives: save with numpy.savez, not numpy.savez_compressed"
        }
        _ => "",
    };
    let mut file = archive
        .by_name(entry)
        .map_err(|e| format!("{e}{}", compressed_hint(&e)))?;
    if file.compression() != CompressionMethod::Stored {
        return Err(format!(
            "compressed with {}; qdbg reads uncompressed archives: save with numpy.savez, \
             not numpy.savez_compressed",
            file.compression()
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it from the archive: {e}"))?;
    Ok(bytes)
}

/// Writes an uncompressed `.npz` (readable by `numpy.load`) via a temp file in the same
/// directory and a rename, so readers never see a half-written file and an existing file
/// survives any failure.
pub fn write_npz_atomic(path: &Path, arrays: &[(String, SampleArray)]) -> Result<()> {
    let write_err = |reason: String| Error::Write {
        path: path.to_path_buf(),
        reason,
    };
    for (i, (name, _)) in arrays.iter().enumerate() {
        if name.is_empty() {
            return Err(write_err(format!("array #{i} has an empty name")));
        }
        if arrays.iter().skip(i + 1).any(|(other, _)| other == name) {
            return Err(write_err(format!(
                "two arrays are named '{name}'; npz keys must be unique"
            )));
        }
    }
    write_atomic(path, |file| {
        let mut npz = NpzWriter::new(BufWriter::new(file));
        for (name, array) in arrays {
            let nbytes = array
                .shape()
                .iter()
                .product::<usize>()
                .saturating_mul(array.dtype().size_bytes().unwrap_or(1));
            // Zip needs its 64-bit extension past 4 GiB, and must know before writing.
            let options = SimpleFileOptions::default()
                .compression_method(CompressionMethod::Stored)
                .large_file(nbytes >= 0xFFFF_0000);
            with_array!(array, a => npz.add_array_with_options(name.as_str(), a, options))
                .map_err(|e| format!("array '{name}': {e}"))?;
        }
        let writer = npz.finish().map_err(|e| e.to_string())?;
        let file = writer
            .into_inner()
            .map_err(|e| format!("flushing: {}", e.error()))?;
        file.sync_all().map_err(|e| format!("syncing: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn failed_write_removes_temp_and_keeps_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.npz");
        fs::write(&path, b"old contents").unwrap();
        let err = write_atomic(&path, |f| {
            f.write_all(b"half of a new file").unwrap();
            Err("disk full".to_string())
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("out.npz") && msg.contains("disk full"),
            "{msg}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"old contents");
        assert_eq!(dir_entries(dir.path()), vec!["out.npz"]);
    }

    #[test]
    fn successful_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        fs::write(&path, b"old").unwrap();
        write_atomic(&path, |f| f.write_all(b"new").map_err(|e| e.to_string())).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(dir_entries(dir.path()), vec!["out.bin"]);
    }
}
