"""Port dlib's face descriptor (``dlib_face_recognition_resnet_model_v1.dat``) to a TFLite file.

    python -m recognition_service.tools.port_descriptor [--out recognition_service/models/...tflite]

Reads the weights with numpy (``dlib_dat``), rebuilds the network as a Keras model (the layer sequence of
the file is checked against dlib's ``anet_type`` while building), converts it to float32 TFLite with a
dynamic batch, and checks the TFLite output against dlib's ``compute_face_descriptor`` on the face chips of
the repository's test images before writing. Needs TensorFlow (the dev venv has it); serving does not.

Two exact rewrites keep the graph small: the input normalisation ``(x - mean) / 256`` is folded into the
first convolution (which does not pad, so the fold is exact at the borders too), and every ``affine``
(batch-norm folded by dlib) into the convolution before it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from recognition_service.descriptor import DEFAULT_MODEL_PATH, TFLiteDescriptor
from recognition_service.engine import model_paths
from recognition_service.tools.dlib_dat import Affine, Conv, Dense, DlibResNet, Pool, Simple, read_dlib_resnet


def _fold(conv: Conv, affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Keras kernel (rows, cols, in, out) and bias of ``affine(conv(x))``."""
    kernel = np.transpose(conv.filters, (2, 3, 1, 0)) * affine.gamma
    bias = conv.biases * affine.gamma + affine.beta
    return kernel.astype(np.float32), bias.astype(np.float32)


class _Layers:
    """The parsed layers, taken in order with a check of each one's kind."""

    def __init__(self, network: DlibResNet) -> None:
        self._layers = network.layers
        self.position = 0

    def peek(self) -> object:
        return self._layers[self.position] if self.position < len(self._layers) else None

    def take(self, kind: type, simple: str | None = None) -> object:
        layer = self.peek()
        if not isinstance(layer, kind) or (simple is not None and layer.kind != simple):
            expected = simple or kind.__name__
            raise ValueError(f"layer {self.position}: expected {expected}, found {layer!r:.80}")
        self.position += 1
        return layer

    def done(self) -> bool:
        return self.position == len(self._layers)


def expected_wrapper_versions(units: list[bool]) -> list[int]:
    """dlib's wrapper versions (outermost first) for ``anet_type`` with these residual units (True: down).

    Inner to outer: the first convolution's add_layer (3), affine, relu, max_pool (2 each); per unit a tag1 (1),
    the five layers of the block (2), for a down unit tag2 and skip1 (1, 1) and the avg_pool (2), then
    add_prev and relu (2, 2); then avg_pool_everything and the fc layer (2, 2).
    """
    inner_to_outer = [3, 2, 2, 2]
    for down in units:
        inner_to_outer += [1, 2, 2, 2, 2, 2]
        if down:
            inner_to_outer += [1, 1, 2]
        inner_to_outer += [2, 2]
    inner_to_outer += [2, 2]
    return inner_to_outer[::-1]


def build_keras_model(network: DlibResNet):  # -> keras.Model
    import keras

    layers = _Layers(network)
    size = network.input_size
    # Input: an RGB chip, float32 0..255, NHWC (dlib's chip as numpy gives HWC RGB).
    inputs = keras.Input((size, size, 3), dtype="float32", name="chip_rgb")
    first = layers.take(Conv)
    kernel, bias = _fold(first, layers.take(Affine))
    means = np.asarray(network.channel_means, dtype=np.float32)
    # conv(W, (x - m) / 256) = conv(W / 256, x) - sum(W * m) / 256 (no padding: exact everywhere).
    bias = bias - np.einsum("hwio,i->o", kernel, means) / 256.0
    kernel = kernel / 256.0
    x = _conv_layer(keras, kernel, bias, first.stride, first.padding, "conv0")(inputs)
    layers.take(Simple, "relu")
    x = keras.layers.ReLU(name="relu0")(x)
    pool = layers.take(Pool)
    if pool.kind != "max" or pool.padding != 0:
        raise ValueError("the stem is expected to end with an unpadded max pool")
    x = keras.layers.MaxPooling2D(pool.size, pool.stride, padding="valid", name="pool0")(x)

    units: list[bool] = []
    while isinstance(layers.peek(), Conv):
        unit = len(units) + 1
        unit_input = x
        conv_a = layers.take(Conv)
        kernel, bias = _fold(conv_a, layers.take(Affine))
        y = _conv_layer(keras, kernel, bias, conv_a.stride, conv_a.padding, f"unit{unit}_a")(unit_input)
        layers.take(Simple, "relu")
        y = keras.layers.ReLU(name=f"unit{unit}_relu_a")(y)
        conv_b = layers.take(Conv)
        kernel, bias = _fold(conv_b, layers.take(Affine))
        y = _conv_layer(keras, kernel, bias, conv_b.stride, conv_b.padding, f"unit{unit}_b")(y)
        down = isinstance(layers.peek(), Pool)
        shortcut = unit_input
        if down:
            pool = layers.take(Pool)
            if pool.kind != "avg" or pool.padding != 0:
                raise ValueError("a down unit's shortcut is expected to be an unpadded average pool")
            shortcut = keras.layers.AveragePooling2D(pool.size, pool.stride, padding="valid", name=f"unit{unit}_skip")(
                unit_input
            )
        # dlib's add_prev: the larger of the two shapes, each zero-padded at the far end.
        y, shortcut = _pad_to_common_shape(keras, y, shortcut, f"unit{unit}")
        layers.take(Simple, "add_prev")
        x = keras.layers.Add(name=f"unit{unit}_add")([y, shortcut])
        layers.take(Simple, "relu")
        x = keras.layers.ReLU(name=f"unit{unit}_relu")(x)
        units.append(down)

    pool = layers.take(Pool)
    if pool.kind != "avg" or pool.size != 0:
        raise ValueError("the network is expected to end with avg_pool_everything")
    x = keras.layers.GlobalAveragePooling2D(name="pool_all")(x)
    dense = layers.take(Dense)
    embedding = keras.layers.Dense(dense.weights.shape[1], use_bias=False, name="descriptor")
    outputs = embedding(x)
    embedding.set_weights([dense.weights.astype(np.float32)])
    if not layers.done():
        raise ValueError("layers left over after the fc layer")
    expected = expected_wrapper_versions(units)
    if network.wrapper_versions != expected:
        raise ValueError("the file's tag/skip layout is not dlib's anet_type as rebuilt here")
    if units != [False] * 3 + [True] + [False] * 3 + [True] + [False] * 2 + [True] + [False] * 2 + [True]:
        raise ValueError(f"unexpected residual layout {units}")
    return keras.Model(inputs, outputs, name="dlib_face_resnet_v1")


def _conv_layer(keras, kernel: np.ndarray, bias: np.ndarray, stride: int, padding: int, name: str):
    rows = kernel.shape[0]
    if padding == 0:
        mode = "valid"
    elif stride == 1 and padding == rows // 2:
        mode = "same"  # for stride 1 and an odd size, Keras's "same" pads rows // 2 on each side, as dlib
    else:
        raise ValueError(f"{name}: padding {padding} with stride {stride} has no Keras equivalent here")
    layer = keras.layers.Conv2D(kernel.shape[3], rows, strides=stride, padding=mode, name=name)
    layer.build((None, None, None, kernel.shape[2]))
    layer.set_weights([kernel, bias])
    return layer


def _pad_to_common_shape(keras, block, shortcut, name: str):
    block_rows, shortcut_rows = block.shape[1], shortcut.shape[1]
    block_channels, shortcut_channels = block.shape[3], shortcut.shape[3]
    if block.shape[1] != block.shape[2] or shortcut.shape[1] != shortcut.shape[2]:
        raise ValueError("square feature maps are expected")
    if shortcut_rows > block_rows:
        extra = shortcut_rows - block_rows
        block = keras.layers.ZeroPadding2D(((0, extra), (0, extra)), name=f"{name}_pad_block")(block)
    elif block_rows > shortcut_rows:
        raise ValueError("a block larger than its shortcut is not expected")
    if block_channels > shortcut_channels:
        extra = block_channels - shortcut_channels
        shortcut = keras.layers.Lambda(
            lambda t, extra=extra: keras.ops.pad(t, [[0, 0], [0, 0], [0, 0], [0, extra]]),
            name=f"{name}_pad_channels",
        )(shortcut)
    return block, shortcut


def convert_to_tflite(model) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # Float32 as it is: no quantisation (parity with dlib is the point).
    converter.optimizations = []
    return converter.convert()


def reference_chips() -> np.ndarray:
    """150x150 chips (dlib's get_face_chip) of the faces in the repository's test images."""
    from recognition_service.tools.descriptor_chips import chips_from_images, repository_test_images

    return chips_from_images(repository_test_images())[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dat", type=Path, default=model_paths()["encoder"])
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |difference| per component vs dlib")
    args = parser.parse_args(argv)

    import dlib

    network = read_dlib_resnet(args.dat)
    model = build_keras_model(network)
    chips = reference_chips()
    encoder = dlib.face_recognition_model_v1(str(args.dat))
    reference = np.asarray([np.asarray(encoder.compute_face_descriptor(chip)) for chip in chips], dtype=np.float64)
    keras_out = model.predict(chips.astype(np.float32), verbose=0).astype(np.float64)
    flatbuffer = convert_to_tflite(model)
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / "candidate.tflite"
        candidate.write_bytes(flatbuffer)
        tflite_out = TFLiteDescriptor(candidate).compute(chips)
    keras_diff = float(np.max(np.abs(keras_out - reference)))
    tflite_diff = float(np.max(np.abs(tflite_out - reference)))
    print(f"{len(chips)} chips: max |keras - dlib| {keras_diff:.3g}, max |tflite - dlib| {tflite_diff:.3g}")
    if tflite_diff > args.tolerance:
        print(f"not written: the port differs from dlib by more than {args.tolerance}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(flatbuffer)
    print(f"wrote {args.out} ({len(flatbuffer) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
