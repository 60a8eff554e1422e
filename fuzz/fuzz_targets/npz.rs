//! `.npz` (zip) bytes into the dataset loader, against several model input specs.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use qdbg::data::{load_dataset_bytes, DatasetFormat};

mod specs;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let all = specs::all();
    let specs = &all[pick as usize % all.len()];
    if let Ok(ds) = load_dataset_bytes(bytes, DatasetFormat::Npz, Path::new("f.npz"), specs) {
        for i in 0..ds.num_samples().min(4) {
            let _ = ds.sample(i);
        }
    }
});
