#!/usr/bin/env python3
"""Issue 21's benchmark models, made here (random init, nothing downloaded) with the pinned
fixture environment (TensorFlow 2.21, Keras 3.15): Keras ResNet50 (25.6 M parameters, regular
3x3 and strided convolutions with many channels) and MobileNetV2 (inverted residuals), both
224x224x3, float32 .tflite, with 32 natural-looking samples (make_fixtures' smooth images).

Each model's BatchNormalization statistics are re-estimated from one batch (as the
MobileNetV3 fixture's are), so activations keep a realistic scale through the network and
the int8 model is meaningful.

usage: scale_models.py OUT_DIR [--samples 32] [--only resnet50|mobilenet_v2]
Writes OUT_DIR/NAME.tflite and OUT_DIR/NAME.inputs.npz (input tensor name -> samples);
existing files are kept (delete them to remake). Prints the paths.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))

MODELS = ("resnet50", "mobilenet_v2")


def build(name):
    import make_fixtures as fx
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras
    keras.utils.set_random_seed(fx.SEED)
    if name == "resnet50":
        model = keras.applications.ResNet50(input_shape=(224, 224, 3), weights=None, classes=1000)
    else:
        model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=1000)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in bns:
        layer.momentum = 0.0
    model(fx.smooth_images(fx.rng_for("calib/" + name), 8), training=True)

    spec = [tf.TensorSpec([1, 224, 224, 3], tf.float32, name="image")]

    @tf.function(input_signature=spec)
    def f(image):
        return {"probs": model(image, training=False)}

    tflite = fx.convert(f)
    return tflite, np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--only", choices=MODELS)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    import make_fixtures as fx
    import numpy as np
    for name in (args.only,) if args.only else MODELS:
        model_path = os.path.join(args.out_dir, f"{name}.tflite")
        inputs_path = os.path.join(args.out_dir, f"{name}.inputs.npz")
        if not os.path.exists(model_path):
            tflite, _ = build(name)
            tmp = model_path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(tflite)
            os.replace(tmp, model_path)
        if not os.path.exists(inputs_path):
            images = fx.smooth_images(fx.rng_for("inputs/" + name), args.samples)
            tmp = inputs_path + ".tmp.npz"
            np.savez(tmp, image=images)
            os.replace(tmp, inputs_path)
        print(model_path)
        print(inputs_path)


if __name__ == "__main__":
    main()
