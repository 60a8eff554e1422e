//! qdbg's calibration + quantization parameters against TensorFlow's converter: on the
//! same representative data (each fixture's inputs), every activation of the converter's
//! full-int8 model must get the same scale and zero point from qdbg.

mod common;

use candle_core::Device;
use qdbg::data::{load_dataset, ImageOptions, InputSpec};
use qdbg::exec::Executor;
use qdbg::quant::{calibrate, plan::plan_activations};

fn check(name: &str) -> (usize, Vec<String>) {
    let float_path = common::fixture(&format!("{name}.tflite"));
    let int8_path = common::fixture(&format!("{name}.int8.tflite"));
    let graph = qdbg::tflite::read_model(&float_path).unwrap();
    let tf_int8 = qdbg::tflite::read_model(&int8_path).unwrap();
    let specs = InputSpec::for_graph(&graph);
    let data = load_dataset(
        &common::fixture(&format!("{name}.inputs.npz")),
        &specs,
        &ImageOptions::default(),
    )
    .unwrap();
    let exec = Executor::new(&graph, &Device::Cpu).unwrap();
    let cal = calibrate(&exec, &data, String::new(), &mut |_| {}).unwrap();

    let mut compared = 0;
    let mut mismatches = Vec::new();
    let plan = plan_activations(&graph, &cal);
    for (id, named) in &cal.ranges {
        let Some(tf_id) = tf_int8.tensor_by_name(&named.name) else {
            continue;
        };
        let tf = tf_int8.tensor(tf_id);
        let Some(tq) = &tf.quant else { continue };
        if tf.dtype != qdbg::graph::DType::I8 || tq.is_per_channel() {
            continue;
        }
        let producer = graph
            .nodes
            .iter()
            .find(|n| n.outputs.contains(id))
            .map_or("input", |n| n.op.name());
        let ours = plan[id].clone();
        compared += 1;
        let rel = ((ours.scale[0] - tq.scale[0]) / tq.scale[0]).abs();
        if rel > 1e-5 || ours.zero_point[0] != tq.zero_point[0] {
            mismatches.push(format!(
                "{} ({producer}): ours scale {} zp {} vs TF scale {} zp {} (range {:?})",
                named.name,
                ours.scale[0],
                ours.zero_point[0],
                tq.scale[0],
                tq.zero_point[0],
                named.range
            ));
        }
    }
    // Model inputs: TF quantizes them with a QUANTIZE op whose output has its own name.
    for &input in &graph.inputs {
        let name = &graph.tensor(input).name;
        let Some(tf_in) = tf_int8.tensor_by_name(name) else {
            continue;
        };
        let Some(q) = tf_int8
            .nodes
            .iter()
            .find(|n| n.op == qdbg::graph::Op::Quantize && n.input(0) == Some(tf_in))
        else {
            continue;
        };
        let tq = tf_int8.tensor(q.outputs[0]).quant.clone().unwrap();
        let ours = plan[&input].clone();
        compared += 1;
        if ((ours.scale[0] - tq.scale[0]) / tq.scale[0]).abs() > 1e-5
            || ours.zero_point != tq.zero_point
        {
            mismatches.push(format!("input {name}: ours {ours:?} vs TF {tq:?}"));
        }
    }
    // Model outputs: TF computes them into a renamed int8 tensor that a DEQUANTIZE turns
    // into the float output of the original name.
    for &output in &graph.outputs {
        let name = &graph.tensor(output).name;
        let Some(tf_out) = tf_int8.tensor_by_name(name) else {
            continue;
        };
        let Some(dq) = tf_int8
            .nodes
            .iter()
            .find(|n| n.op == qdbg::graph::Op::Dequantize && n.outputs.contains(&tf_out))
        else {
            continue;
        };
        let Some(tq) = dq.input(0).and_then(|i| tf_int8.tensor(i).quant.clone()) else {
            continue;
        };
        let Some(ours) = plan.get(&output).cloned() else {
            continue;
        };
        compared += 1;
        if ((ours.scale[0] - tq.scale[0]) / tq.scale[0]).abs() > 1e-5
            || ours.zero_point != tq.zero_point
        {
            mismatches.push(format!("output {name}: ours {ours:?} vs TF {tq:?}"));
        }
    }
    (compared, mismatches)
}

fn assert_matches(name: &str, at_least: usize) {
    let (compared, mismatches) = check(name);
    assert!(
        mismatches.is_empty(),
        "{name}: {} of {compared} activations differ from TensorFlow's converter:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        compared >= at_least,
        "{name}: only {compared} activations could be matched by name"
    );
    eprintln!("{name}: {compared} activations equal TensorFlow's");
}

#[test]
fn conv_ops() {
    assert_matches("conv_ops", 8);
}
#[test]
fn dense_ops() {
    assert_matches("dense_ops", 5);
}
#[test]
fn elementwise_ops() {
    assert_matches("elementwise_ops", 13);
}
#[test]
fn reduce_ops() {
    assert_matches("reduce_ops", 10);
}
#[test]
fn activation_ops() {
    assert_matches("activation_ops", 15);
}
#[test]
fn resize_ops() {
    assert_matches("resize_ops", 8);
}
#[test]
fn multi_io() {
    assert_matches("multi_io", 9);
}
#[test]
fn mobilenet_v3_small() {
    assert_matches("mobilenet_v3_small", 110);
}
