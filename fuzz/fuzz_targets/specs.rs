//! Model input specs the dataset targets feed: those of real fixture models (so seeds
//! from their datasets pass the name and shape checks and reach the conversions) and a
//! few synthetic ones for the integer dtypes. Byte 0 of an input picks one.

use std::path::Path;
use std::sync::OnceLock;

use qdbg::data::InputSpec;
use qdbg::graph::DType;

const MODELS: &[&[u8]] = &[
    include_bytes!("../../demo/model.tflite"),
    include_bytes!("../../tests/fixtures/multi_io.tflite"),
    include_bytes!("../../tests/fixtures/dense_ops.tflite"),
    include_bytes!("../../tests/fixtures/quant_dequant.tflite"),
    include_bytes!("../../tests/fixtures/conv_ops.int8.tflite"),
];

pub fn all() -> &'static [Vec<InputSpec>] {
    static CELL: OnceLock<Vec<Vec<InputSpec>>> = OnceLock::new();
    CELL.get_or_init(|| {
        let mut out: Vec<Vec<InputSpec>> = MODELS
            .iter()
            .map(|m| {
                let g = qdbg::tflite::read_model_bytes(m, Path::new("spec.tflite"))
                    .expect("spec models are valid");
                InputSpec::for_graph(&g)
            })
            .collect();
        let spec = |name: &str, shape: &[usize], dtype| InputSpec {
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype,
        };
        out.push(vec![spec("x", &[1, 4], DType::I32)]);
        out.push(vec![spec("x", &[2, 2], DType::U8)]);
        out.push(vec![spec("x", &[3], DType::I8)]);
        out.push(vec![spec("x", &[1, 2, 3], DType::I64)]);
        out.push(vec![spec("x", &[], DType::F32)]);
        out
    })
}
