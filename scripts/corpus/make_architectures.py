#!/usr/bin/env python3
"""Corpus, second source: common architectures built with Keras and converted with
TensorFlow's own converter, each given the same TensorFlow references as the MediaPipe models
(make_corpus.make_model: NAME.tflite, NAME.inputs.npz, NAME.tf_int8.tflite, NAME.tf_debug.csv
and a manifest.json entry).

The MediaPipe wheel covers what MediaPipe ships; these cover what users convert themselves:
keras.applications classifiers (MobileNetV2, MobileNetV3Small with HARD_SWISH), a U-Net with
TRANSPOSE_CONV and skip concatenations, a PReLU landmark regressor with several heads, an
SSD/BlazeFace-style detector whose heads are joined by RESHAPE + CONCATENATION, a small ResNet,
and two converter options: float16 weights (Optimize.DEFAULT + float16) and sparse weights
(Optimize.EXPERIMENTAL_SPARSITY on magnitude-pruned weights, DENSIFY ops in the file).

Nothing is downloaded: the weights are random (fixed seeds; `weights=None` for
keras.applications), drawn here in numpy so that they do not depend on Keras' initializers,
and every BatchNormalization's moving statistics are set from the activations it sees on
image-like data, so that activations stay in a sensible range through the depth of the net
instead of vanishing or saturating (the converter folds them into the convolutions). The
conversion is plain float (no optimizations) except for the float16 and sparse models.

Run through scripts/make_corpus.sh (pinned venv, scripts/fixtures/requirements.txt); model
names all start with "keras_". Deterministic: each model is built in a fresh Keras session
from its own seeds, so `--only NAME` gives the same bytes as a full run.
"""

import argparse
import os
import sys
import warnings
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/corpus/ by the import below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_corpus as corpus  # noqa: E402  (sets up TensorFlow's environment first)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from tensorflow.lite.tools import flatbuffer_utils  # noqa: E402

PREFIX = "keras_"
SEED = 20261208
SCRIPT = "scripts/corpus/make_architectures.py"
# Samples the BatchNormalization statistics are taken from: drawn like the corpus samples,
# from a different seed (the test samples are not the data the weights were fitted to).
BN_SAMPLES = 16
ZERO_ONE = (0.0, 1.0)
SYMMETRIC = (-1.0, 1.0)
# Smallest spread across the samples an output may have, relative to its range over them:
# below it the output is constant for practical purposes and the model tests nothing.
MIN_RELATIVE_STD = 1e-3


class ArchitectureError(corpus.CorpusError):
    pass


def rng_for(*parts):
    """A numpy generator keyed by SEED and a text, the same in every run and for --only."""
    return np.random.default_rng([SEED, zlib.crc32("/".join(parts).encode())])


# ---------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------


def kernel_fan_in(layer, shape):
    """Inputs each output of the layer sums over (He initialisation's fan-in)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return shape[0] * shape[1]
    if isinstance(layer, keras.layers.Conv2DTranspose):
        # Kernel [kh, kw, out, in]; with stride s each output sees 1/s^2 of the taps.
        stride = layer.strides[0] * layer.strides[1]
        return max(1, shape[0] * shape[1] * shape[3] // stride)
    if isinstance(layer, keras.layers.Conv2D):
        return shape[0] * shape[1] * shape[2]
    if isinstance(layer, keras.layers.Dense):
        return shape[0]
    raise ArchitectureError(f"no fan-in rule for {type(layer).__name__} {layer.name}")


def init_weights(model, rng):
    """Draws every weight in numpy: He-normal kernels, small random biases, BatchNorm scales
    and offsets around 1 and 0 (random, so channels differ), PReLU slopes in [0.05, 0.4].
    Moving statistics are left to `fit_batchnorm`."""
    for layer in model.layers:
        for w in layer.weights:
            shape = tuple(int(d) for d in w.shape)
            if w.name == "kernel":
                std = np.sqrt(2.0 / kernel_fan_in(layer, shape))
                value = rng.standard_normal(shape) * std
            elif w.name == "bias":
                value = rng.normal(0.0, 0.05, shape)
            elif w.name == "gamma":
                value = rng.uniform(0.6, 1.4, shape)
            elif w.name == "beta":
                value = rng.normal(0.0, 0.25, shape)
            elif w.name in ("moving_mean", "moving_variance"):
                continue
            elif w.name == "alpha":
                value = rng.uniform(0.05, 0.4, shape)
            else:
                raise ArchitectureError(f"no rule for weight {w.path} {shape}")
            w.assign(value.astype(np.float32))


def fit_batchnorm(model, images):
    """Sets each BatchNormalization's moving mean and variance to the statistics of its
    input on `images`, in topological order (each layer sees its predecessors already
    normalised). Random weights with the default statistics (0, 1) let activations grow or
    shrink geometrically with depth: deep nets end in saturated softmaxes or all-zero ReLUs,
    which test nothing."""
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        probe = keras.Model(model.inputs, layer.input)
        x = np.asarray(probe(images, training=False), np.float64)
        axes = tuple(range(x.ndim - 1))
        by_name = {w.name: w for w in layer.weights}
        by_name["moving_mean"].assign(x.mean(axis=axes).astype(np.float32))
        by_name["moving_variance"].assign(x.var(axis=axes).astype(np.float32))


def prune(model, zero_fraction):
    """Zeros the `zero_fraction` smallest-magnitude weights of every convolution kernel
    (per layer), as magnitude pruning would leave them; returns {layer: fraction zero}."""
    done = {}
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            continue
        kernel = next(w for w in layer.weights if w.name == "kernel")
        k = np.asarray(kernel)
        cut = int(np.ceil(zero_fraction * k.size))
        order = np.argsort(np.abs(k), axis=None, kind="stable")
        flat = k.reshape(-1).copy()
        flat[order[:cut]] = 0.0
        kernel.assign(flat.reshape(k.shape))
        done[layer.name] = float(np.mean(flat == 0))
    return done


# ---------------------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------------------


def conv_bn(x, filters, kernel, stride=1, name=None, act="relu"):
    """Conv (no bias) + BatchNorm (+ activation): the converter folds the norm into the conv."""
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                            name=name)(x)
    x = keras.layers.BatchNormalization(name=None if name is None else name + "_bn")(x)
    if act == "relu":
        x = keras.layers.ReLU()(x)
    elif act == "prelu":
        x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    return x


def pad_channels(x, channels):
    """BlazeFace's shortcut: the input's channels zero-padded to `channels` (a PAD op)."""
    extra = channels - x.shape[-1]
    return x if extra == 0 else keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])


def blaze_block(x, channels, stride, act, kernel=3):
    """Depthwise conv + 1x1 conv (each with BatchNorm) added to a shortcut, then the
    activation; stride 2 shortcuts are max-pooled and channel-padded, as in BlazeFace."""
    y = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False)(x)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.Conv2D(channels, 1, use_bias=False)(y)
    y = keras.layers.BatchNormalization()(y)
    shortcut = x
    if stride == 2:
        shortcut = keras.layers.MaxPooling2D(2)(shortcut)
    shortcut = pad_channels(shortcut, channels)
    y = keras.layers.Add()([y, shortcut])
    return keras.layers.PReLU(shared_axes=[1, 2])(y) if act == "prelu" else keras.layers.ReLU()(y)


def mobilenet_v2():
    """keras.applications.MobileNetV2, alpha 0.35, 96x96, 16 classes, softmax."""
    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None,
                                          classes=16, classifier_activation="softmax")


def mobilenet_v3_small():
    """keras.applications.MobileNetV3Small, alpha 0.5, 96x96, 16 classes, softmax, HARD_SWISH
    activations and squeeze-excite blocks; without the built-in Rescaling (it expects [0, 255]
    pixels; the samples are in [-1, 1], what that Rescaling would output). Alpha 0.5, not
    0.75: the 1x1 conv to 1024 channels before the classifier does not shrink with alpha and
    at 0.75 the file is 4.2 MB."""
    return keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), alpha=0.5,
                                               minimalistic=False, weights=None, classes=16,
                                               include_preprocessing=False,
                                               classifier_activation="softmax")


def unet():
    """A small U-Net: three encoder levels of 8, 16, 32 channels (two conv-BN-ReLU each, max
    pool), a 64-channel bottleneck, decoder levels with a stride-2 Conv2DTranspose + BN + ReLU
    concatenated with the encoder's skip, a 1x1 conv with sigmoid for a one-channel mask
    (narrow, like MediaPipe's selfie segmentation, to keep the corpus small). 128x128x3 in
    [0, 1]."""
    image = keras.Input((128, 128, 3), batch_size=1, name="image")
    x, skips = image, []
    for filters in (8, 16, 32):
        x = conv_bn(x, filters, 3)
        x = conv_bn(x, filters, 3)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = conv_bn(x, 64, 3)
    x = conv_bn(x, 64, 3)
    for filters, skip in zip((32, 16, 8), reversed(skips)):
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Concatenate()([x, skip])
        x = conv_bn(x, filters, 3)
        x = conv_bn(x, filters, 3)
    mask = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(image, {"mask": mask}, name="unet")


def prelu_landmarks():
    """A face-mesh-style landmark regressor: conv + PReLU stem, BlazeFace blocks (depthwise +
    1x1 conv, residual add, PReLU; max-pooled, channel-padded shortcuts when striding), then
    three heads: 68 3-D landmarks (a 3x3 valid conv to 204 channels, reshaped), a presence
    score (dense + sigmoid) and a head orientation (dense + tanh). 96x96x3 in [0, 1]."""
    image = keras.Input((96, 96, 3), batch_size=1, name="image")
    x = conv_bn(image, 24, 3, stride=2, act="prelu")  # 48
    for channels, stride in ((24, 1), (24, 1), (32, 2), (32, 1), (48, 2), (48, 1),
                             (64, 2), (64, 1), (96, 2), (96, 1)):  # 48 -> 3
        x = blaze_block(x, channels, stride, "prelu")
    lm = keras.layers.Conv2D(204, 3, padding="valid", name="landmarks_conv")(x)
    landmarks = keras.layers.Reshape((204,), name="landmarks")(lm)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    presence = keras.layers.Dense(1, activation="sigmoid", name="presence")(pooled)
    orientation = keras.layers.Dense(3, activation="tanh", name="orientation")(pooled)
    return keras.Model(image, {"landmarks": landmarks, "presence": presence,
                               "orientation": orientation}, name="prelu_landmarks")


def ssd_heads():
    """A BlazeFace-style detector: 5x5 stride-2 stem, BlazeFace blocks (ReLU), feature maps
    16x16x48 (2 anchors per cell) and 8x8x64 (6 anchors); per map a 1x1 conv classifier head
    reshaped to [1, N, 1] and a 1x1 conv box head reshaped to [1, N, 4]; the classifier
    reshapes joined by one CONCATENATION, the box reshapes by another: 896 anchors, as
    BlazeFace's. 128x128x3 in [-1, 1]."""
    image = keras.Input((128, 128, 3), batch_size=1, name="image")
    x = conv_bn(image, 24, 5, stride=2)  # 64
    for channels, stride in ((24, 1), (32, 2), (32, 1), (48, 2), (48, 1)):
        x = blaze_block(x, channels, stride, "relu", kernel=5)
    fine = x  # 16x16
    for channels, stride in ((64, 2), (64, 1), (64, 1)):
        x = blaze_block(x, channels, stride, "relu", kernel=5)
    coarse = x  # 8x8
    scores, boxes = [], []
    for fmap, anchors, tag in ((fine, 2, "16"), (coarse, 6, "8")):
        n = fmap.shape[1] * fmap.shape[2] * anchors
        c = keras.layers.Conv2D(anchors, 1, name=f"classifier_{tag}")(fmap)
        scores.append(keras.layers.Reshape((n, 1))(c))
        b = keras.layers.Conv2D(anchors * 4, 1, name=f"regressor_{tag}")(fmap)
        boxes.append(keras.layers.Reshape((n, 4))(b))
    classificators = keras.layers.Concatenate(axis=1, name="classificators")(scores)
    regressors = keras.layers.Concatenate(axis=1, name="regressors")(boxes)
    return keras.Model(image, {"classificators": classificators, "regressors": regressors},
                       name="ssd_heads")


def resnet_block():
    """A small ResNet: 3x3 stride-2 stem, three stages of two basic blocks (3x3 conv-BN-ReLU,
    3x3 conv-BN, residual add, ReLU; the first block of stages 2 and 3 strides, its shortcut a
    1x1 stride-2 conv + BN), global average pool, dense logits. 96x96x3 in [-1, 1]."""
    image = keras.Input((96, 96, 3), batch_size=1, name="image")
    x = conv_bn(image, 16, 3, stride=2)  # 48
    for filters, first_stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(2):
            stride = first_stride if i == 0 else 1
            y = conv_bn(x, filters, 3, stride=stride)
            y = conv_bn(y, filters, 3, act=None)
            shortcut = x
            if stride != 1 or x.shape[-1] != filters:
                shortcut = conv_bn(x, filters, 1, stride=stride, act=None)
            x = keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(image, {"logits": logits}, name="resnet_block")


# name -> (builder, weights key, input range, conversion, pruned fraction)
# The weights key seeds the weights: keras_unet_fp16 and keras_ssd_sparse are keras_unet and
# keras_ssd_heads (before pruning) with another conversion.
ARCHITECTURES = {
    "keras_mobilenet_v2": (mobilenet_v2, "mobilenet_v2", SYMMETRIC, "float", 0.0),
    "keras_mobilenet_v3_small": (mobilenet_v3_small, "mobilenet_v3_small", SYMMETRIC, "float", 0.0),
    "keras_unet": (unet, "unet", ZERO_ONE, "float", 0.0),
    "keras_prelu_landmarks": (prelu_landmarks, "prelu_landmarks", ZERO_ONE, "float", 0.0),
    "keras_ssd_heads": (ssd_heads, "ssd_heads", SYMMETRIC, "float", 0.0),
    "keras_resnet_block": (resnet_block, "resnet_block", SYMMETRIC, "float", 0.0),
    "keras_unet_fp16": (unet, "unet", ZERO_ONE, "float16", 0.0),
    "keras_ssd_sparse": (ssd_heads, "ssd_heads", SYMMETRIC, "sparse", 0.8),
}

CONVERSIONS = {
    "float": "TFLiteConverter.from_concrete_functions, no optimizations",
    "float16": "TFLiteConverter.from_concrete_functions, optimizations [DEFAULT], "
               "target_spec.supported_types [float16]",
    "sparse": "TFLiteConverter.from_concrete_functions, optimizations [EXPERIMENTAL_SPARSITY]",
}


def build(name):
    """The Keras model `name` with its weights: a fresh session (layer names, and so tensor
    names in the file, do not depend on what was built before), numpy weights from the
    weights key's seed, BatchNorm statistics fitted after any pruning."""
    builder, key, input_range, conversion, zero_fraction = ARCHITECTURES[name]
    keras.utils.clear_session()
    keras.utils.set_random_seed(SEED)
    model = builder()
    init_weights(model, rng_for("weights", key))
    pruned = prune(model, zero_fraction) if zero_fraction else {}
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    images = corpus.smooth_images(rng_for("batchnorm", key), BN_SAMPLES, shape, *input_range)
    fit_batchnorm(model, images.astype(np.float32))
    return model, pruned


def named_outputs(model, x):
    """The model's outputs on x as a dict (keras.applications return one bare tensor: "scores")."""
    out = model(x, training=False)
    return out if isinstance(out, dict) else {"scores": out}


def convert(model, conversion):
    """The model converted by TensorFlow's converter from a concrete function with a batch-1
    signature whose input is named "image" and whose outputs are the model's named outputs."""
    shape = [1] + [int(d) for d in model.inputs[0].shape[1:]]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
    def serve(image):
        return named_outputs(model, image)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], serve)
    if conversion == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif conversion == "sparse":
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return bytes(converter.convert())


def check_conversion(name, data, conversion):
    """The converter did what was asked: a plain float model has no DEQUANTIZE or DENSIFY,
    a float16 one has DEQUANTIZE of float16 constants, a sparse one has tensors with sparsity
    metadata read through DENSIFY. Returns the number of sparse tensors, for the manifest."""
    ops = corpus.op_counts(data)
    m = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    sparse = [t for t in m.subgraphs[0].tensors if t.sparsity is not None]
    if conversion == "float" and ({"DEQUANTIZE", "DENSIFY"} & set(ops) or sparse):
        raise ArchitectureError(f"{name}: float conversion left {ops}, "
                                f"{len(sparse)} sparse tensors")
    if conversion == "float16" and "DEQUANTIZE" not in ops:
        raise ArchitectureError(f"{name}: no float16 weights in the float16 conversion")
    if conversion == "sparse" and (not sparse or "DENSIFY" not in ops):
        raise ArchitectureError(f"{name}: sparse conversion wrote {len(sparse)} sparse tensors, "
                                f"{ops.get('DENSIFY', 0)} DENSIFY")
    return len(sparse)


def output_spread(name, model, data, inputs, tolerance):
    """Runs the file with LiteRT on the samples and pairs each output (in the file's order)
    with the Keras output it computes (same shape, within `tolerance` of the output's range:
    the converter kept the model's arithmetic; the file itself only names them Identity_N).
    Per output: the Keras name, the mean over elements of the standard deviation across the
    samples, its range over all samples, and the largest difference from Keras."""
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    (d_in,) = it.get_input_details()
    got = {d["index"]: [] for d in it.get_output_details()}
    want = {}
    for s in range(corpus.SAMPLES):
        x = inputs[d_in["name"]][s:s + 1].astype(np.float32)
        it.set_tensor(d_in["index"], x)
        it.invoke()
        for i in got:
            got[i].append(it.get_tensor(i).copy())
        for key, v in named_outputs(model, x).items():
            want.setdefault(key, []).append(np.asarray(v))
    spread = []
    for d in it.get_output_details():
        v = np.stack(got[d["index"]]).astype(np.float64)
        if not np.isfinite(v).all():
            raise ArchitectureError(f"{name}: output {d['name']} is not finite")
        span = float(v.max() - v.min())
        errors = {key: float(np.abs(v - np.stack(w)).max()) for key, w in want.items()
                  if np.stack(w).shape == v.shape}
        match = [key for key, e in errors.items() if e <= tolerance * span]
        if len(match) != 1:
            raise ArchitectureError(f"{name}: output {d['name']} matches Keras outputs {match} "
                                    f"(differences {errors}, range {span:.3g})")
        spread.append((match[0], float(v.std(axis=0).mean()), span, errors[match[0]]))
    return spread


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "corpus"))
    ap.add_argument("--only", nargs="*",
                    help="model names to (re)make; the manifest keeps the others")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    tf.config.experimental.enable_op_determinism()
    # Calling a one-input functional model on a bare tensor: Keras warns, the call is fine.
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")

    unknown = [n for n in args.only or [] if n.startswith(PREFIX) and n not in ARCHITECTURES]
    if unknown:
        raise ArchitectureError(f"--only names unknown models {unknown}")
    manifest_path = os.path.join(out, "manifest.json")
    # A full run replaces every entry of this script (named PREFIX...); --only keeps all but
    # the models it remakes; entries from the MediaPipe wheel always stay.
    manifest = corpus.load_manifest(manifest_path,
                                    lambda n, e: bool(args.only) or not n.startswith(PREFIX))
    manifest["architectures"] = {
        "script": SCRIPT, "seed": SEED, "tensorflow": tf.__version__, "keras": keras.__version__,
        "weights": "random, drawn in numpy (He-normal kernels), BatchNorm statistics fitted to "
                   f"{BN_SAMPLES} image-like samples; nothing downloaded",
        "models": list(ARCHITECTURES)}

    for name, (builder, key, input_range, conversion, _) in ARCHITECTURES.items():
        if args.only and name not in args.only:
            continue
        model, pruned = build(name)
        data = convert(model, conversion)
        sparse_tensors = check_conversion(name, data, conversion)
        entry = {"source": f"keras {keras.__version__} / tensorflow {tf.__version__} architecture "
                           f"{key}, random init seed {SEED}, made by {SCRIPT}",
                 "architecture": " ".join(builder.__doc__.split()),
                 "conversion": CONVERSIONS[conversion]}
        if pruned:
            entry["pruned"] = {"zero_fraction": ARCHITECTURES[name][4], "layers": len(pruned),
                               "sparse_tensors": sparse_tensors}
        manifest["models"][name] = entry
        inputs = corpus.make_model(out, name, data, entry, input_range)
        # float16 weights move the U-Net's mask by about 1% of its range (0.5e-3 relative
        # rounding of every weight, through 18 layers); float32 conversions only by rounding.
        spread = output_spread(name, model, data, inputs, 3e-2 if conversion == "float16" else 1e-4)
        entry["outputs"] = [n for n, _, _, _ in spread]
        entry["output_std"] = {n: float(f"{s:.4g}") for n, s, _, _ in spread}
        for n, s, r, e in spread:
            print(f"  {name} output {n}: std across samples {s:.4g}, range {r:.4g}, "
                  f"max difference from Keras {e:.3g}")
            if not s > MIN_RELATIVE_STD * r:
                raise ArchitectureError(f"{name}: output {n} is constant across the samples "
                                        f"(std {s:.3g}, range {r:.3g})")
        del model

    corpus.save_manifest(manifest_path, manifest)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except corpus.CorpusError as e:
        print(f"make_architectures: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
