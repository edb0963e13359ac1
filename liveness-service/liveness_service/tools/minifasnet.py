"""MiniFASNetV2 and MiniFASNetV1SE (Minivision, Apache-2.0) re-implemented in Keras, loading the original weights.

The architecture follows minivision-ai/Silent-Face-Anti-Spoofing ``src/model_lib/MiniFASNet.py``
(see NOTICE). Only used to build the shipped TFLite files (``python -m liveness_service.tools.minifasnet``);
the service runs the TFLite files. The two share one layout; they differ in channel widths (read from the weights)
and V1SE's squeeze-and-excitation module on the last block of each residual stage (present in the weights as
``<block>.se_module.*``).

Input: NHWC float32, BGR 0..255 (no scaling), 80x80, a face box scaled about its centre (2.7x for V2, 4.0x for V1SE).
Output: 3 logits; softmax index 1 is "live".
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

BN_EPSILON = 1e-5


def _conv(tf, x, weights, name, *, stride=1, padding=0, depthwise=False, prelu=True):  # type: ignore[no-untyped-def]
    """Conv (no bias) + BatchNorm (+ PReLU), with PyTorch's symmetric zero padding."""
    kernel = weights[f"{name}.conv.weight"]
    layers = tf.keras.layers
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}.pad")(x)
    if depthwise:
        conv = layers.DepthwiseConv2D(kernel.shape[2:], strides=stride, use_bias=False, name=f"{name}.conv")
        x = conv(x)
        conv.set_weights([kernel.transpose(2, 3, 0, 1)])  # [C,1,kh,kw] -> [kh,kw,C,1]
    else:
        conv = layers.Conv2D(kernel.shape[0], kernel.shape[2:], strides=stride, use_bias=False, name=f"{name}.conv")
        x = conv(x)
        conv.set_weights([kernel.transpose(2, 3, 1, 0)])  # [O,I,kh,kw] -> [kh,kw,I,O]
    x = _batch_norm(tf, x, weights, f"{name}.bn")
    if prelu:
        act = layers.PReLU(shared_axes=[1, 2], name=f"{name}.prelu")
        x = act(x)
        act.set_weights([weights[f"{name}.prelu.weight"].reshape(1, 1, -1)])
    return x


def _batch_norm(tf, x, weights, name):  # type: ignore[no-untyped-def]
    bn = tf.keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)
    x = bn(x)
    bn.set_weights([weights[f"{name}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")])
    return x


def _pointwise(tf, x, weights, name):  # type: ignore[no-untyped-def]
    """A 1x1 convolution without bias (the SE module's fc1/fc2)."""
    kernel = weights[f"{name}.weight"]
    conv = tf.keras.layers.Conv2D(kernel.shape[0], 1, use_bias=False, name=name)
    x = conv(x)
    conv.set_weights([kernel.transpose(2, 3, 1, 0)])
    return x


def _squeeze_excitation(tf, x, weights, name):  # type: ignore[no-untyped-def]
    """SEModule: global average pool -> 1x1 conv -> BN -> ReLU -> 1x1 conv -> BN -> sigmoid, times the input."""
    layers = tf.keras.layers
    gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.pool")(x)
    gate = _pointwise(tf, gate, weights, f"{name}.fc1")
    gate = _batch_norm(tf, gate, weights, f"{name}.bn1")
    gate = layers.ReLU(name=f"{name}.relu")(gate)
    gate = _pointwise(tf, gate, weights, f"{name}.fc2")
    gate = _batch_norm(tf, gate, weights, f"{name}.bn2")
    gate = layers.Activation("sigmoid", name=f"{name}.sigmoid")(gate)
    return layers.Multiply(name=f"{name}.scale")([x, gate])


def _depth_wise(tf, x, weights, name, *, stride, residual):  # type: ignore[no-untyped-def]
    """Depth_Wise, or DepthWiseSE when the weights carry an SE module for this block (applied before the add)."""
    shortcut = x
    x = _conv(tf, x, weights, f"{name}.conv")
    x = _conv(tf, x, weights, f"{name}.conv_dw", stride=stride, padding=1, depthwise=True)
    x = _conv(tf, x, weights, f"{name}.project", prelu=False)
    if f"{name}.se_module.fc1.weight" in weights:
        x = _squeeze_excitation(tf, x, weights, f"{name}.se_module")
    return tf.keras.layers.Add(name=f"{name}.add")([shortcut, x]) if residual else x


def build_minifasnet(weights: dict[str, np.ndarray], input_size: int = 80, name: str = "MiniFASNet"):  # type: ignore[no-untyped-def]
    """The Keras model (V2 or V1SE: the weights decide) with the PyTorch-named weights loaded (inference mode)."""
    import tensorflow as tf

    inputs = tf.keras.Input((input_size, input_size, 3), name="bgr")
    x = _conv(tf, inputs, weights, "conv1", stride=2, padding=1)
    x = _conv(tf, x, weights, "conv2_dw", padding=1, depthwise=True)
    x = _depth_wise(tf, x, weights, "conv_23", stride=2, residual=False)
    for stage, transition in (("conv_3", "conv_34"), ("conv_4", "conv_45"), ("conv_5", None)):
        blocks = sorted({int(m.group(1)) for k in weights if (m := re.match(rf"{stage}\.model\.(\d+)\.", k))})
        for index in blocks:
            x = _depth_wise(tf, x, weights, f"{stage}.model.{index}", stride=1, residual=True)
        if transition:
            x = _depth_wise(tf, x, weights, transition, stride=2, residual=False)
    x = _conv(tf, x, weights, "conv_6_sep")
    x = _conv(tf, x, weights, "conv_6_dw", depthwise=True, prelu=False)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    linear = tf.keras.layers.Dense(weights["linear.weight"].shape[0], use_bias=False, name="linear")
    x = linear(x)
    linear.set_weights([weights["linear.weight"].T])
    x = _batch_norm(tf, x, weights, "bn")
    prob = tf.keras.layers.Dense(weights["prob.weight"].shape[0], use_bias=False, name="prob")
    logits = prob(x)
    prob.set_weights([weights["prob.weight"].T])
    return tf.keras.Model(inputs, logits, name=name)


def build_minifasnet_v2(weights: dict[str, np.ndarray], input_size: int = 80):  # type: ignore[no-untyped-def]
    return build_minifasnet(weights, input_size, "MiniFASNetV2")


def live_probability_model(logits_model, live_index: int = 1):  # type: ignore[no-untyped-def]
    """Wrap a logits model so it outputs p(live) = softmax(logits)[:, live_index]."""
    import tensorflow as tf

    probabilities = tf.keras.layers.Softmax(name="softmax")(logits_model.output)
    live = tf.keras.layers.Lambda(lambda p: p[:, live_index], name="live")(probabilities)
    return tf.keras.Model(logits_model.input, live, name=f"{logits_model.name}_live")


def to_tflite(model) -> bytes:  # type: ignore[no-untyped-def]
    """A Keras model (already ending in p(live)) as a float32 TFLite flatbuffer with a dynamic batch."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Port MiniFASNetV2 / MiniFASNetV1SE weights to Keras/TFLite, verify numerically, write the spec"
    )
    parser.add_argument("--weights", required=True, type=Path, help="*.weights.npz (PyTorch names)")
    parser.add_argument("--reference", type=Path, help="*.reference.npz with crops and original logits")
    parser.add_argument("--out", required=True, type=Path, help="output .tflite (the .json spec is written beside it)")
    parser.add_argument("--name", default="MiniFASNetV2", help="model name (MiniFASNetV2, MiniFASNetV1SE)")
    parser.add_argument("--version", required=True, help="the reported version (minifasnet-v2-2.7-80x80/1)")
    parser.add_argument("--box-scale", required=True, type=float, help="context scale of the face box (2.7, 4.0)")
    parser.add_argument("--threshold", required=True, type=float, help="p(live) threshold of the model used alone")
    parser.add_argument("--source", default="", help="where the weights come from (recorded in the spec)")
    args = parser.parse_args(argv)
    weights = dict(np.load(args.weights))
    model = build_minifasnet(weights, name=args.name)
    spec = {
        "name": args.name,
        "version": args.version,
        "input_size": 80,
        "box_scale": args.box_scale,
        "threshold": args.threshold,
        "source": args.source,
    }
    if args.reference:
        ref = np.load(args.reference)
        logits = model(ref["crops_bgr_uint8"].astype(np.float32), training=False).numpy()
        error = float(np.abs(logits - ref["logits"]).max())
        print(f"max |logit difference| Keras vs original on {len(logits)} crops: {error:.2e}")
        if error > 1e-3:
            raise SystemExit("port does not match the original outputs")
        spec["reference_max_abs_logit_difference_keras"] = float(f"{error:.2e}")
    args.out.write_bytes(to_tflite(live_probability_model(model)))
    if args.reference:
        from liveness_service.passive import TFLiteScorer

        ref = np.load(args.reference)
        error = float(np.abs(TFLiteScorer(args.out).score(ref["crops_bgr_uint8"]) - ref["softmax"][:, 1]).max())
        print(f"max |p(live) difference| TFLite vs original: {error:.2e}")
        if error > 1e-4:
            raise SystemExit("the TFLite file does not match the original outputs")
        spec["reference_max_abs_p_live_difference_tflite"] = float(f"{error:.2e}")
    args.out.with_suffix(".json").write_text(json.dumps(spec, indent=2) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
