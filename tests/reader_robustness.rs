//! Hostile model files: every truncation and thousands of corruptions of a real model
//! must give an error (or a valid graph), never a panic.

mod common;

use std::path::Path;

/// Deterministic xorshift, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn read(bytes: &[u8]) {
    let path = Path::new("mutated.tflite");
    if let Ok(graph) = qdbg::tflite::read_model_bytes(bytes, path) {
        // Whatever reads as valid must also survive building an executor and running it
        // (within this test's memory: the reader itself caps tensors at 2^30 elements).
        if graph.tensors.iter().any(|t| t.num_elements() > 1 << 22) {
            return;
        }
        let Ok(exec) = qdbg::exec::Executor::new(&graph, &candle_core::Device::Cpu) else {
            return;
        };
        let inputs: Vec<_> = graph
            .inputs
            .iter()
            .map(|&id| {
                let t = graph.tensor(id);
                let dtype = qdbg::ops::carrier_dtype(t.dtype).unwrap_or(candle_core::DType::F32);
                candle_core::Tensor::ones(t.shape.as_slice(), dtype, &candle_core::Device::Cpu)
                    .unwrap()
            })
            .collect();
        let _ = exec.run(&inputs);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = std::fs::read(common::fixture("conv_ops.tflite")).unwrap();
    for len in 0..bytes.len() {
        let result = qdbg::tflite::read_model_bytes(&bytes[..len], Path::new("t.tflite"));
        // Constant data sits at the end, so a cut always loses something the model needs.
        assert!(
            result.is_err(),
            "a model cut to {len} of {} bytes was accepted",
            bytes.len()
        );
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    for name in [
        "conv_ops.tflite",
        "shape_ops.tflite",
        "f16_weights.tflite",
        "sparse/sparse_conv.tflite",
        "sparse/handmade_formats.tflite",
    ] {
        let original = std::fs::read(common::fixture(name)).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let mut bytes = original.clone();
            for _ in 0..(1 + rng.next() % 8) {
                let at = (rng.next() % bytes.len() as u64) as usize;
                bytes[at] = rng.next() as u8;
            }
            read(&bytes);
        }
    }
}

/// Crashes found by fuzzing (`scripts/fuzz.sh`), kept as regression tests.
mod fuzz_regressions {
    use std::path::Path;

    fn bytes(name: &str) -> Vec<u8> {
        std::fs::read(super::common::fixture(&format!("fuzz_regressions/{name}"))).unwrap()
    }

    /// A table whose vtable offset is i32::MIN: flatbuffers 2.1.2's verifier negated it
    /// and overflowed (a panic where overflow checks are on, as in dev builds).
    #[test]
    fn vtable_offset_i32_min_is_an_error() {
        let data = bytes("verifier_soffset_i32_min.tflite");
        let err = qdbg::tflite::read_model_bytes(&data, Path::new("f.tflite")).unwrap_err();
        assert!(err.to_string().contains("corrupt or truncated"), "{err}");
    }

    fn run_on_ones(name: &str) -> qdbg::Result<Vec<candle_core::Tensor>> {
        let data = bytes(name);
        run_graph_on_ones(&qdbg::tflite::read_model_bytes(&data, Path::new("f.tflite")).unwrap())
    }

    /// The model `name` run on inputs of ones fails, saying `needle`.
    fn fails_saying(name: &str, needle: &str) {
        let err = run_on_ones(name).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }

    fn run_graph_on_ones(graph: &qdbg::graph::Graph) -> qdbg::Result<Vec<candle_core::Tensor>> {
        let device = candle_core::Device::Cpu;
        let exec = qdbg::exec::Executor::new(graph, &device).unwrap();
        let inputs: Vec<_> = graph
            .inputs
            .iter()
            .map(|&id| {
                let t = graph.tensor(id);
                let dtype = qdbg::ops::carrier_dtype(t.dtype).unwrap();
                candle_core::Tensor::ones(t.shape.as_slice(), dtype, &device).unwrap()
            })
            .collect();
        exec.run(&inputs)
    }

    /// RESIZE_BILINEAR of a tensor patched to 0 pixels wide into a non-empty output: the
    /// float kernel indexed into the empty input.
    #[test]
    fn resizing_an_empty_input_is_an_error() {
        let err = run_on_ones("resize_empty_input.tflite").unwrap_err();
        assert!(err.to_string().contains("nothing to resize from"), "{err}");
    }

    /// A float-only op on a tensor whose dtype was patched to int8: candle's float
    /// functions are `todo!()` panics for integers. (Int32 inputs get "needs a float
    /// input" from the op itself: `ops::activation` unit tests.)
    #[test]
    fn float_op_on_an_integer_tensor_is_an_error() {
        fails_saying(
            "float_op_on_int_tensor.tflite",
            "RSQRT on 8-bit integer tensors needs quantization parameters",
        );
    }

    /// The last graph_validator finding (its input, dumped with QDBG_FUZZ_DUMP): an op
    /// whose input dtype was patched to an integer type reaches a float-only candle function
    /// outside the activations (SOFTMAX's exp). An error, not a `todo!()` panic.
    #[test]
    fn softmax_on_an_integer_tensor_is_an_error() {
        fails_saying(
            "softmax_on_int_tensor.tflite",
            "SOFTMAX on 8-bit integer tensors needs quantization parameters",
        );
    }

    /// graph_validator finding: elementwise_ops.int8 with SQUARED_DIFFERENCE's output dtype
    /// patched, so the int8 kernels no longer take the ops after it and the float path
    /// subtracted int8 bit patterns as u8 (an overflow panic with overflow checks on).
    #[test]
    fn arithmetic_on_int8_without_quantization_is_an_error() {
        fails_saying(
            "binary_on_unquantized_int8.tflite",
            "SQUARED_DIFFERENCE on 8-bit integer tensors needs quantization parameters",
        );
    }

    /// graph_validator finding whose input was lost (the panic came from candle's own
    /// worker threads): CONV_2D on int8 tensors without quantization parameters reached
    /// candle's u8 convolution, which overflows. Reproduced by removing the parameters
    /// of the first convolution's output in conv_ops.int8 (so the int8 kernel cannot take
    /// it and the float path sees its int8 input).
    #[test]
    fn convolution_on_int8_without_quantization_is_an_error() {
        let mut graph =
            qdbg::tflite::read_model(&super::common::fixture("conv_ops.int8.tflite")).unwrap();
        let conv = graph
            .nodes
            .iter()
            .position(|n| n.op.name() == "CONV_2D")
            .unwrap();
        let output = graph.nodes[conv].outputs[0];
        graph.tensors[output].quant = None;
        let err = run_graph_on_ones(&graph).unwrap_err().to_string();
        assert!(
            err.contains("CONV_2D on 8-bit integer tensors needs quantization parameters"),
            "{err}"
        );
    }

    /// npy finding: a header with 60 nested `[` kept the Python-literal parser busy for
    /// over 10 s (a hang, for the fuzzer). Refused before parsing, in memory and streamed.
    #[test]
    fn deeply_nested_npy_header_is_refused_at_once() {
        let data = bytes("npy_nested_header.npy");
        let graph = qdbg::tflite::read_model(&super::common::fixture("dense_ops.tflite")).unwrap();
        let specs = qdbg::data::InputSpec::for_graph(&graph);
        let err = qdbg::data::load_dataset_bytes(
            &data,
            qdbg::data::DatasetFormat::Npy,
            Path::new("f.npy"),
            &specs,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("structured/record dtype"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        std::fs::write(&path, &data).unwrap();
        let err = qdbg::data::load_dataset(&path, &specs, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("structured/record dtype"), "{err}");
        // Deep nesting without lists (tuples in tuples) is refused the same way.
        let mut nested = b"\x93NUMPY\x01\x00".to_vec();
        let header = format!(
            "{{'descr': '<f4', 'shape': {}1{}}}",
            "(".repeat(40),
            ")".repeat(40)
        );
        nested.extend_from_slice(&(header.len() as u16).to_le_bytes());
        nested.extend_from_slice(header.as_bytes());
        let err = qdbg::data::load_dataset_bytes(
            &nested,
            qdbg::data::DatasetFormat::Npy,
            Path::new("f.npy"),
            &specs,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nested deeper"), "{err}");
    }

    /// An int8 DIV that the int8 kernels do not take (elementwise_ops.int8 with one byte
    /// changed), whose divisor holds 0: candle's integer division panicked. The float path
    /// now refuses 8-bit integers outright (integer division by zero of int32 tensors is
    /// refused too: `ops::binary` unit tests).
    #[test]
    fn integer_division_by_zero_is_an_error() {
        fails_saying(
            "int_div_by_zero.tflite",
            "DIV on 8-bit integer tensors needs quantization",
        );
    }
}
