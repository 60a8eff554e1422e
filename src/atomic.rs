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
            "cannot create a temp file in {}: {e}{}",
            dir.display(),
            what_to_do(&e)
        ))
    })?;
    let result = write(&mut file).and_then(|()| {
        drop(file);
        fs::rename(&tmp_path, path)
            .map_err(|e| format!("renaming the temp file into place: {e}{}", what_to_do(&e)))
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
    write_atomic(path, |file| write_all_synced(file, bytes))
}

/// Writes and syncs, naming the step that failed and what to do about it.
pub(crate) fn write_all_synced(
    file: &mut (impl std::io::Write + Syncable),
    bytes: &[u8],
) -> std::result::Result<(), String> {
    file.write_all(bytes)
        .map_err(|e| format!("writing: {e}{}", what_to_do(&e)))?;
    file.sync()
        .map_err(|e| format!("syncing: {e}{}", what_to_do(&e)))
}

/// What can be flushed to the disk (a trait so tests can stand in a failing disk).
pub(crate) trait Syncable {
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Syncable for File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_all()
    }
}

/// The advice for the I/O errors a user can fix, appended to the error's text.
pub fn what_to_do(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            "; the disk is full (or a size limit was reached): free some space or write \
             the file elsewhere"
        }
        K::PermissionDenied | K::ReadOnlyFilesystem => {
            "; the folder is not writable: write the file elsewhere or fix its permissions"
        }
        K::NotFound => "; the folder does not exist: create it first or write elsewhere",
        K::NotADirectory => "; part of the path is a file, not a folder: write elsewhere",
        K::IsADirectory => "; the path is a folder: give a file name",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Write};

    /// A disk that takes `room` bytes, then reports ENOSPC, as a full disk does.
    struct FullDisk {
        written: Vec<u8>,
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room - self.written.len());
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Syncable for FullDisk {
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_is_named_with_what_to_do() {
        let mut disk = FullDisk {
            written: Vec::new(),
            room: 10,
        };
        let err = write_all_synced(&mut disk, &[7u8; 100]).unwrap_err();
        assert_eq!(disk.written.len(), 10);
        assert!(err.starts_with("writing: "), "{err}");
        assert!(err.contains("free some space"), "{err}");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        fs::write(&path, b"old contents").unwrap();
        let err = write_atomic(&path, |file| {
            // Half the new contents reach the temp file, then the disk fills up.
            file.write_all(b"new con").map_err(|e| e.to_string())?;
            let full = io::Error::from(io::ErrorKind::StorageFull);
            Err(format!("writing: {full}{}", what_to_do(&full)))
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("out.csv") && text.contains("free some space"),
            "{text}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"old contents");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.csv")]);
    }

    #[test]
    fn a_missing_folder_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_bytes_atomic(&dir.path().join("no/such/out.csv"), b"x").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("does not exist"), "{text}");
    }
}
