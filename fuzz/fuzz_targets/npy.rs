//! `.npy` bytes into the dataset loaders (the in-memory one and the streaming one that
//! reads samples from the file on demand, against several model input specs) and into
//! the labels loader (as `.npy` and as text).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qdbg::data::{load_dataset, load_dataset_bytes, parse_labels, DatasetFormat, ImageOptions};

mod specs;

/// One scratch file per fuzzing process: the streaming loader only reads from disk.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("qdbg-fuzz-{}.npy", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let all = specs::all();
    let specs = &all[pick as usize % all.len()];
    if let Ok(ds) = load_dataset_bytes(bytes, DatasetFormat::Npy, Path::new("f.npy"), specs) {
        // The debugger walks every sample: indexing must hold for whatever loaded.
        for i in 0..ds.num_samples().min(4) {
            let _ = ds.sample(i);
        }
    }
    // The streamed path (large debug sets) has its own header handling and chunked checks.
    if pick & 0x80 != 0 && std::fs::write(scratch(), bytes).is_ok() {
        if let Ok(ds) = load_dataset(scratch(), specs, &ImageOptions::default()) {
            for i in 0..ds.num_samples().min(4) {
                let _ = ds.sample(i);
            }
            let _ = ds.sample(ds.num_samples());
        }
    }
    let _ = parse_labels(bytes, Path::new("labels.npy"), None);
    let _ = parse_labels(bytes, Path::new("labels.txt"), Some(pick as usize));
});
