//! `.npy` bytes into the dataset loader (against several model input specs) and into
//! the labels loader (as `.npy` and as text).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use qdbg::data::{load_dataset_bytes, parse_labels, DatasetFormat};

mod specs;

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
    let _ = parse_labels(bytes, Path::new("labels.npy"), None);
    let _ = parse_labels(bytes, Path::new("labels.txt"), Some(pick as usize));
});
