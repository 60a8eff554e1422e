//! Atomic file writes: a temp file in the destination's folder, renamed into place, so
//! readers see the old file or the new one and never half of either.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Runs `write` on a fresh temp file next to `path`, then renames it over `path`. On
/// any failure the temp file is removed and `path` is left as it was.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::result::Result<(), String>,
) -> Result<()> {
    let write_err = |reason: String| Error::Write {
        path: path.to_path_buf(),
        reason,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| write_err("the path names no file".to_string()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };

    let (tmp_path, mut file) = create_temp(dir, file_name).map_err(|e| {
        write_err(format!(
            "cannot create a temp file in {}: {e}",
            dir.display()
        ))
    })?;
    let result = write(&mut file).and_then(|()| {
        drop(file);
        fs::rename(&tmp_path, path).map_err(|e| format!("renaming the temp file into place: {e}"))
    });
    result.map_err(|reason| {
        // Best effort: the write error is the one worth reporting.
        let _ = fs::remove_file(&tmp_path);
        write_err(reason)
    })
}

fn create_temp(dir: &Path, file_name: &std::ffi::OsStr) -> std::io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last_err = None;
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp = dir.join(name);
        match File::options().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free temp file name")))
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    write_atomic(path, |file| {
        file.write_all(bytes).map_err(|e| format!("writing: {e}"))?;
        file.sync_all().map_err(|e| format!("syncing: {e}"))
    })
}
