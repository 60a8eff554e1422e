//! Raw bytes into the TFLite reader: any input must give a graph or an error, never a
//! panic, a hang or an allocation the file chose.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(graph) = qdbg::tflite::read_model_bytes(data, Path::new("fuzz.tflite")) {
        // What `qdbg inspect` does with a graph that read cleanly must hold up too.
        for node in &graph.nodes {
            let _ = node.op.display_name();
        }
        let _ = qdbg::data::InputSpec::for_graph(&graph);
    }
});
