//! The op registry (`qdbg::ops::family`), driven table-first over every op.
//!
//! `OpKind` has one value per `Op` variant and `samples` matches it exhaustively, so a new
//! op does not compile here until it has samples, and then each sample goes through every
//! question the registry answers. The expected answers are TFLite's, not qdbg's: builtin
//! names from the schema, the int8 spec's fixed output parameters and weight layouts
//! (<https://www.tensorflow.org/lite/performance/quantization_spec>), and which ops
//! LiteRT's int8 kernels compute versus merely move.

use std::path::Path;

use qdbg::graph::{
    ArgmaxPoolAttrs, BinaryKind, Conv2dAttrs, DType, DepthwiseConv2dAttrs, FullyConnectedAttrs,
    FusedActivation, Graph, Node, Op, OpKind, Padding, Pool2dAttrs, PoolKind, QuantParams,
    ReduceKind, ResizeAttrs, StridedSliceAttrs, Tensor, TransposeConvAttrs, TransposeConvBiasAttrs,
    UnaryKind,
};
use qdbg::ops::WeightSlots;
use qdbg::ops::{family, int8_support, param_rule, weight_slots, Int8Support, ParamRule};
use strum::IntoEnumIterator;

/// The leading int32 fields of a C options struct, as MediaPipe's custom ops store them
/// (`TfLitePadding`: 1 = SAME, 2 = VALID).
fn c_struct(fields: &[i32]) -> Vec<u8> {
    fields.iter().flat_map(|f| f.to_le_bytes()).collect()
}

fn argmax_pool(activation: FusedActivation, activation_code: i32) -> ArgmaxPoolAttrs {
    ArgmaxPoolAttrs {
        padding: Padding::Same,
        stride_w: 2,
        stride_h: 3,
        filter_w: 2,
        filter_h: 3,
        activation,
        custom_options: c_struct(&[1, 2, 3, 2, 3, activation_code]),
    }
}

/// Ops of `kind` with options that differ from TFLite's defaults where they can, so a
/// field the writer drops or the reader misplaces shows up.
fn samples(kind: OpKind) -> Vec<Op> {
    use FusedActivation as A;
    match kind {
        OpKind::Conv2d => vec![Op::Conv2d(Conv2dAttrs {
            padding: Padding::Valid,
            stride_h: 2,
            stride_w: 3,
            dilation_h: 1,
            dilation_w: 2,
            activation: A::Relu6,
        })],
        OpKind::DepthwiseConv2d => vec![Op::DepthwiseConv2d(DepthwiseConv2dAttrs {
            padding: Padding::Same,
            stride_h: 1,
            stride_w: 2,
            dilation_h: 2,
            dilation_w: 1,
            depth_multiplier: 2,
            activation: A::Relu,
        })],
        OpKind::TransposeConv => vec![Op::TransposeConv(TransposeConvAttrs {
            padding: Padding::Valid,
            stride_h: 2,
            stride_w: 2,
            activation: A::None,
        })],
        OpKind::FullyConnected => vec![Op::FullyConnected(FullyConnectedAttrs {
            activation: A::ReluN1To1,
            keep_num_dims: true,
        })],
        OpKind::BatchMatMul => vec![Op::BatchMatMul {
            adj_x: false,
            adj_y: true,
        }],
        OpKind::Binary => [
            BinaryKind::Add,
            BinaryKind::Sub,
            BinaryKind::Mul,
            BinaryKind::Div,
            BinaryKind::SquaredDifference,
            BinaryKind::Maximum,
            BinaryKind::Minimum,
        ]
        .into_iter()
        .map(|kind| Op::Binary {
            kind,
            // Only ADD, SUB, MUL and DIV carry a fused activation in TFLite's schema.
            activation: match kind {
                BinaryKind::Add | BinaryKind::Sub | BinaryKind::Mul | BinaryKind::Div => A::Relu,
                _ => A::None,
            },
        })
        .collect(),
        OpKind::Pow => vec![Op::Pow],
        OpKind::Unary => [
            UnaryKind::Rsqrt,
            UnaryKind::Sqrt,
            UnaryKind::Relu,
            UnaryKind::Relu6,
            UnaryKind::ReluN1To1,
            UnaryKind::Logistic,
            UnaryKind::Tanh,
            UnaryKind::HardSwish,
            UnaryKind::Gelu { approximate: true },
            UnaryKind::LeakyRelu { alpha: 0.25 },
        ]
        .into_iter()
        .map(Op::Unary)
        .collect(),
        OpKind::Prelu => vec![Op::Prelu],
        OpKind::Reduce => [ReduceKind::Mean, ReduceKind::Sum, ReduceKind::Max]
            .into_iter()
            .map(|kind| Op::Reduce {
                kind,
                keep_dims: true,
            })
            .collect(),
        OpKind::Pool2d => [PoolKind::Average, PoolKind::Max]
            .into_iter()
            .map(|kind| Op::Pool2d {
                kind,
                attrs: Pool2dAttrs {
                    padding: Padding::Valid,
                    stride_h: 2,
                    stride_w: 1,
                    filter_h: 3,
                    filter_w: 2,
                    activation: A::Relu,
                },
            })
            .collect(),
        OpKind::Softmax => vec![Op::Softmax { beta: 0.5 }],
        OpKind::Reshape => vec![Op::Reshape],
        OpKind::Squeeze => vec![Op::Squeeze { axes: vec![0, 2] }],
        OpKind::ExpandDims => vec![Op::ExpandDims],
        OpKind::Transpose => vec![Op::Transpose],
        OpKind::Concatenation => vec![Op::Concatenation {
            axis: -1,
            activation: A::Relu6,
        }],
        OpKind::Split => vec![Op::Split { num_splits: 2 }],
        OpKind::Slice => vec![Op::Slice],
        OpKind::StridedSlice => vec![Op::StridedSlice(StridedSliceAttrs {
            begin_mask: 1,
            end_mask: 2,
            ellipsis_mask: 0,
            new_axis_mask: 0,
            shrink_axis_mask: 4,
            offset: false,
        })],
        OpKind::Gather => vec![Op::Gather {
            axis: 1,
            batch_dims: 0,
        }],
        OpKind::Pad => vec![Op::Pad],
        OpKind::PadV2 => vec![Op::PadV2],
        OpKind::ResizeBilinear => vec![Op::ResizeBilinear(ResizeAttrs {
            align_corners: false,
            half_pixel_centers: true,
        })],
        OpKind::ResizeNearestNeighbor => vec![Op::ResizeNearestNeighbor(ResizeAttrs {
            align_corners: true,
            half_pixel_centers: false,
        })],
        OpKind::DepthToSpace => vec![Op::DepthToSpace { block_size: 2 }],
        OpKind::SpaceToDepth => vec![Op::SpaceToDepth { block_size: 2 }],
        OpKind::Quantize => vec![Op::Quantize],
        OpKind::Dequantize => vec![Op::Dequantize],
        OpKind::Convolution2DTransposeBias => {
            vec![Op::Convolution2DTransposeBias(TransposeConvBiasAttrs {
                padding: Padding::Valid,
                stride_w: 2,
                stride_h: 1,
                custom_options: c_struct(&[2, 2, 1]),
            })]
        }
        OpKind::MaxPoolingWithArgmax2D => vec![Op::MaxPoolingWithArgmax2D(argmax_pool(
            FusedActivation::None,
            0,
        ))],
        OpKind::MaxUnpooling2D => vec![Op::MaxUnpooling2D(argmax_pool(FusedActivation::Relu, 1))],
        OpKind::Unsupported => vec![Op::Unsupported {
            name: "CUMSUM".into(),
        }],
    }
}

fn every_sample() -> Vec<Op> {
    OpKind::iter().flat_map(samples).collect()
}

/// Whether TFLite stores the op as a CUSTOM operator (named by its custom code).
fn is_custom(op: &Op) -> bool {
    matches!(
        op,
        Op::Convolution2DTransposeBias(_) | Op::MaxPoolingWithArgmax2D(_) | Op::MaxUnpooling2D(_)
    )
}

fn tensor(name: String, dtype: DType, quant: Option<QuantParams>) -> Tensor {
    Tensor {
        name,
        shape: vec![1, 4, 4, 4],
        shape_signature: None,
        dtype,
        data: None,
        quant,
    }
}

/// A one-op graph around `op`, with as many inputs and outputs as TFLite gives it (their
/// contents do not matter: nothing runs).
fn one_op_graph(op: &Op) -> Graph {
    let (inputs, outputs) = match op {
        Op::Conv2d(_) | Op::DepthwiseConv2d(_) | Op::FullyConnected(_) => (3, 1),
        Op::TransposeConv(_) => (4, 1),
        Op::StridedSlice(_) => (4, 1),
        Op::Slice | Op::PadV2 | Op::Convolution2DTransposeBias(_) => (3, 1),
        Op::Split { num_splits } => (2, *num_splits),
        Op::MaxPoolingWithArgmax2D(_) => (1, 2),
        Op::Unary(_) | Op::Softmax { .. } | Op::Quantize | Op::Dequantize => (1, 1),
        Op::Pool2d { .. } | Op::DepthToSpace { .. } | Op::SpaceToDepth { .. } => (1, 1),
        Op::Squeeze { .. } | Op::Reshape => (1, 1),
        _ => (2, 1),
    };
    let int8 = || Some(QuantParams::per_tensor(0.05, -3));
    let (in_type, in_quant) = match op {
        Op::Dequantize => (DType::I8, int8()),
        _ => (DType::F32, None),
    };
    let (out_type, out_quant) = match op {
        Op::Quantize => (DType::I8, int8()),
        _ => (DType::F32, None),
    };
    let mut tensors: Vec<Tensor> = (0..inputs)
        .map(|i| tensor(format!("in{i}"), in_type, in_quant.clone()))
        .collect();
    tensors.extend((0..outputs).map(|i| tensor(format!("out{i}"), out_type, out_quant.clone())));
    Graph {
        tensors,
        nodes: vec![Node {
            op: op.clone(),
            inputs: (0..inputs).map(Some).collect(),
            outputs: (inputs..inputs + outputs).collect(),
            source_index: 0,
        }],
        inputs: (0..inputs).collect(),
        outputs: (inputs..inputs + outputs).collect(),
        ..Graph::default()
    }
}

#[test]
fn every_op_kind_has_samples() {
    for kind in OpKind::iter() {
        assert!(!samples(kind).is_empty(), "{kind:?} has no sample");
    }
}

/// Each op is written with its own builtin code and read back as the same op with the
/// same options, and its operator version is one LiteRT registers (>= 1).
#[test]
fn every_op_round_trips_through_a_tflite_file() {
    for op in every_sample() {
        let graph = one_op_graph(&op);
        let code = family::tflite_code(&op);
        match &op {
            Op::Unsupported { .. } => {
                assert!(code.is_none(), "{op:?} has no code to be written with");
                let err = qdbg::tflite::model_bytes(&graph, None)
                    .expect_err("an op qdbg cannot write must be refused, not dropped");
                assert!(err.to_string().contains("CUMSUM"), "{err}");
                continue;
            }
            _ if is_custom(&op) => {
                assert_eq!(
                    code.map(|c| c.variant_name()),
                    Some(Some("CUSTOM")),
                    "{op:?}"
                )
            }
            _ => assert_eq!(
                code.map(|c| c.variant_name()),
                Some(Some(op.name())),
                "{op:?} is written under another builtin's code"
            ),
        }
        assert!(
            family::tflite_version(&graph, &graph.nodes[0]) >= 1,
            "{op:?}: version"
        );
        let bytes = qdbg::tflite::model_bytes(&graph, None)
            .unwrap_or_else(|e| panic!("{}: writing failed: {e}", op.name()));
        let read = qdbg::tflite::read_model_bytes(&bytes, Path::new("registry.tflite"))
            .unwrap_or_else(|e| panic!("{}: reading back failed: {e:#}", op.name()));
        assert_eq!(read.nodes.len(), 1, "{op:?}");
        assert_eq!(read.nodes[0].op, op, "{} changed on the way", op.name());
    }
}

/// Which ops LiteRT's int8 kernels compute, which only move int8 values (and need no
/// arithmetic, or only a rescale/zero-point fill), and which stay float.
#[test]
fn int8_support_follows_litert() {
    for op in every_sample() {
        let want = match &op {
            Op::Concatenation { .. } | Op::Pad | Op::PadV2 | Op::ResizeNearestNeighbor(_) => {
                Int8Support::KernelMovingValues
            }
            Op::Reshape
            | Op::Squeeze { .. }
            | Op::ExpandDims
            | Op::Transpose
            | Op::DepthToSpace { .. }
            | Op::SpaceToDepth { .. }
            | Op::Split { .. }
            | Op::Slice
            | Op::StridedSlice(_)
            | Op::Gather { .. } => Int8Support::MovesValues,
            Op::Quantize | Op::Dequantize => Int8Support::Boundary,
            // MediaPipe's custom ops have float kernels only; LiteRT's POW takes float32
            // and int32 only.
            Op::Pow
            | Op::Convolution2DTransposeBias(_)
            | Op::MaxPoolingWithArgmax2D(_)
            | Op::MaxUnpooling2D(_)
            | Op::Unsupported { .. } => Int8Support::FloatOnly,
            _ => Int8Support::Kernel,
        };
        assert_eq!(int8_support(&op), want, "{op:?}");
        assert_eq!(
            qdbg::ops::has_int8_kernel(&op),
            !matches!(want, Int8Support::Boundary | Int8Support::FloatOnly),
            "{op:?}"
        );
    }
}

/// The int8 spec's fixed output parameters, and the ops whose int8 kernels copy or
/// compare raw values and so need one scale on every float input and output.
#[test]
fn param_rules_follow_the_int8_spec() {
    let fixed =
        |scale: f32, zero_point| ParamRule::FixedOutput(QuantParams::per_tensor(scale, zero_point));
    for op in every_sample() {
        let rule = param_rule(&op);
        match &op {
            Op::Unary(UnaryKind::Logistic) | Op::Softmax { .. } => {
                assert_eq!(rule, fixed(1.0 / 256.0, -128), "{op:?}")
            }
            Op::Unary(UnaryKind::Tanh) => assert_eq!(rule, fixed(1.0 / 128.0, 0), "{op:?}"),
            Op::Pool2d {
                kind: PoolKind::Max,
                ..
            }
            | Op::Reduce {
                kind: ReduceKind::Max,
                ..
            }
            | Op::Reshape
            | Op::Squeeze { .. }
            | Op::ExpandDims
            | Op::Transpose
            | Op::DepthToSpace { .. }
            | Op::SpaceToDepth { .. }
            | Op::Split { .. }
            | Op::Slice
            | Op::StridedSlice(_)
            | Op::Gather { .. }
            | Op::Binary {
                kind: BinaryKind::Maximum | BinaryKind::Minimum,
                ..
            } => assert_eq!(rule, ParamRule::SameScale, "{op:?}"),
            Op::Conv2d(_)
            | Op::DepthwiseConv2d(_)
            | Op::FullyConnected(_)
            | Op::Binary {
                kind: BinaryKind::Add | BinaryKind::Sub | BinaryKind::Mul,
                ..
            } => assert_eq!(rule, ParamRule::Own, "{op:?}"),
            _ => {}
        }
    }
}

/// The int8 spec's weight layouts: per-channel symmetric filters along the output-channel
/// axis (OHWI: 0; depthwise 1HWO: 3), int32 bias scaled by input x filter scale, and
/// PRELU's alpha symmetric per tensor.
#[test]
fn weight_slots_follow_the_int8_spec() {
    for op in every_sample() {
        let want = match &op {
            Op::Conv2d(_) | Op::FullyConnected(_) => Some(WeightSlots::Filter {
                filter: 1,
                channel_axis: 0,
                bias: 2,
                data: 0,
            }),
            Op::DepthwiseConv2d(_) => Some(WeightSlots::Filter {
                filter: 1,
                channel_axis: 3,
                bias: 2,
                data: 0,
            }),
            // TRANSPOSE_CONV's inputs: (output_shape, filter, input, bias).
            Op::TransposeConv(_) => Some(WeightSlots::Filter {
                filter: 1,
                channel_axis: 0,
                bias: 3,
                data: 2,
            }),
            Op::Prelu => Some(WeightSlots::SymmetricPerTensor(1)),
            _ => None,
        };
        assert_eq!(weight_slots(&op), want, "{op:?}");
    }
}
