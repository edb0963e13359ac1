"""Read the weights of dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) with numpy.

The file is dlib's ``serialize(anet_type)``: dlib's own stream format, no dlib code is needed to read it.

- Integers are "packed": one control byte (low 4 bits: how many value bytes follow, bit 7: negative),
  then the value's bytes, little-endian. Strings are a packed length, then the bytes.
- A ``float``/``double`` outside a tensor is two packed integers: mantissa and base-2 exponent.
- ``bool`` is one character, ``'1'`` or ``'0'``.
- A tensor is: version 2, num_samples, k, nr, nc, then num_samples*k*nr*nc float32, little-endian.
  An ``alias_tensor`` (a view into a layer's ``params``) is: version 1, num_samples, k, nr, nc.
- A network is written from the loss end: ``add_loss_layer`` writes its version, the loss details, then its
  sub-network; each ``add_layer`` writes its version (2), its sub-network first, then its layer's details and
  three state bools and three (here empty) tensors (the innermost one, holding the input layer, writes version
  3 and then its sample expansion factor); ``add_tag_layer``/``add_skip_layer`` write only a version
  (1) and their sub-network (the tag ID is a template parameter and is not in the file). So after the
  loss details comes a run of versions, outermost first, then the input layer, then every layer's details
  from the input towards the output.

The network (dlib's examples/dnn_face_recognition_ex.cpp, ``anet_type``)::

    block<N, stride>   = affine(con<N,3x3,1>(relu(affine(con<N,3x3,stride>(x)))))
    ares<N>            = relu(add_prev1(block<N,1>(tag1 x)))                      # x + block(x)
    ares_down<N>       = relu(add_prev2(avg_pool<2x2,2>(skip1(tag2(block<N,2>(tag1 x))))))
                                                                                  # avg_pool(x) + block(x)
    levels             = ares<32>x3 on max_pool<3x3,2>(relu(affine(con<32,7x7,2>(input 150x150 RGB))))
                         then ares_down<64>, ares<64>x3, ares_down<128>, ares<128>x2,
                         ares_down<256>, ares<256>x2, ares_down<256>
    output             = fc_no_bias<128>(avg_pool_everything(levels))

dlib's defaults fill in what the definition leaves out: a convolution or pooling with stride 1 pads by half
its size, with stride 2 it does not pad at all; ``add_prev`` of two tensors of different shapes gives the
larger shape, each input zero-padded at the far end (more channels, or a bigger grid). ``affine`` is the
batch-norm folded for inference: ``gamma * x + beta`` per channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatFormatError(ValueError):
    """The file is not the network this reader knows."""


@dataclass
class Conv:
    filters: np.ndarray  # (out, in, rows, cols), dlib's layout
    biases: np.ndarray  # (out,)
    stride: int
    padding: int


@dataclass
class Affine:
    gamma: np.ndarray  # (channels,)
    beta: np.ndarray


@dataclass
class Pool:
    kind: str  # "max" or "avg"
    size: int  # 0: over the whole grid (avg_pool_everything)
    stride: int
    padding: int


@dataclass
class Dense:
    weights: np.ndarray  # (inputs, outputs): dlib's fc computes x @ weights


@dataclass
class Simple:
    kind: str  # "relu" or "add_prev"


Layer = Conv | Affine | Pool | Dense | Simple


@dataclass
class DlibResNet:
    """The parsed network: input normalisation and the layers from input to output, as in the file."""

    input_size: int
    channel_means: tuple[float, float, float]  # subtracted from R, G, B; the result is divided by 256
    layers: list[Layer] = field(default_factory=list)
    # 2 = a computational layer, 1 = a tag or skip layer, 3 = the first layer (it holds the input layer);
    # outermost (the output end) first.
    wrapper_versions: list[int] = field(default_factory=list)


class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def byte(self) -> int:
        if self.position >= len(self.data):
            raise DatFormatError("the file ends early")
        value = self.data[self.position]
        self.position += 1
        return value

    def take(self, count: int) -> bytes:
        if self.position + count > len(self.data):
            raise DatFormatError("the file ends early")
        chunk = self.data[self.position : self.position + count]
        self.position += count
        return chunk

    def integer(self) -> int:
        control = self.byte()
        size = control & 0x0F
        if size > 8:
            raise DatFormatError(f"bad integer control byte {control:#x} at {self.position - 1}")
        value = int.from_bytes(self.take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        start = self.position
        length = self.integer()
        if not 0 <= length <= 256:
            raise DatFormatError(f"expected a layer name at {start}")
        try:
            return self.take(length).decode("ascii")
        except UnicodeDecodeError:
            raise DatFormatError(f"expected a layer name at {start}") from None

    def boolean(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            raise DatFormatError(f"expected a bool at {self.position - 1}")
        return char == b"1"

    def expect(self, text: str) -> None:
        found = self.string()
        if found != text:
            raise DatFormatError(f"expected {text!r} at {self.position}, found {found!r}")

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise DatFormatError(f"tensor version {version} (expected 2) at {self.position}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise DatFormatError(f"alias_tensor version {version} (expected 1) at {self.position}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


def _layer_state(stream: _Stream) -> None:
    """What add_layer writes after its layer: 3 bools and x_grad, cached_output, params_grad (empty here)."""
    for _ in range(3):
        stream.boolean()
    for _ in range(3):
        if stream.tensor().size:
            raise DatFormatError("a saved network with training state is not expected")


def _conv(stream: _Stream) -> Conv:
    params = stream.tensor().reshape(-1)
    num_filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (stream.integer() for _ in range(7))
    filters_shape = stream.alias()
    biases_shape = stream.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers (training only)
        stream.real()
    if (stride_y, pad_y) != (stride_x, pad_x) or rows != cols:
        raise DatFormatError("only square convolutions with equal strides are expected")
    filters_size = int(np.prod(filters_shape))
    if filters_shape[0] != num_filters or filters_shape[2:] != (rows, cols):
        raise DatFormatError(f"convolution filter shape {filters_shape} does not match its header")
    if int(np.prod(biases_shape)) != num_filters or params.size != filters_size + num_filters:
        raise DatFormatError("convolution parameter count does not match its shapes")
    return Conv(
        filters=params[:filters_size].reshape(filters_shape),
        biases=params[filters_size:].copy(),
        stride=stride_y,
        padding=pad_y,
    )


def _affine(stream: _Stream) -> Affine:
    params = stream.tensor().reshape(-1)
    gamma_shape = stream.alias()
    beta_shape = stream.alias()
    mode = stream.integer()
    channels = int(np.prod(gamma_shape))
    if mode != 0 or int(np.prod(beta_shape)) != channels or params.size != 2 * channels:
        raise DatFormatError("only per-channel (convolution mode) affine layers are expected")
    return Affine(gamma=params[:channels].copy(), beta=params[channels:].copy())


def _pool(stream: _Stream, kind: str) -> Pool:
    rows, cols, stride_y, stride_x, pad_y, pad_x = (stream.integer() for _ in range(6))
    if rows != cols or stride_y != stride_x or pad_y != pad_x:
        raise DatFormatError("only square pooling is expected")
    return Pool(kind=kind, size=rows, stride=stride_y, padding=pad_y)


def _dense(stream: _Stream) -> Dense:
    outputs = stream.integer()
    inputs = stream.integer()
    params = stream.tensor().reshape(-1)
    weights_shape = stream.alias()
    stream.alias()  # biases (empty: fc_no_bias)
    bias_mode = stream.integer()  # 1: FC_NO_BIAS
    for _ in range(4):
        stream.real()
    if bias_mode != 1 or params.size != inputs * outputs or weights_shape[:2] != (inputs, outputs):
        raise DatFormatError("the last layer is expected to be fc_no_bias")
    return Dense(weights=params.reshape(inputs, outputs).copy())


def read_dlib_resnet(path: Path) -> DlibResNet:
    """Parse the file; raises ``DatFormatError`` when it is not a loss_metric ResNet of the known layers."""
    stream = _Stream(Path(path).read_bytes())
    if stream.integer() != 1:
        raise DatFormatError("not a dlib add_loss_layer stream")
    stream.expect("loss_metric_2")
    stream.real()  # margin (training only)
    stream.real()  # distance threshold (training only)
    versions = []
    while True:
        # A run of wrapper versions; the innermost add_layer (the one holding the input layer) writes 3.
        value = stream.integer()
        if value not in (1, 2, 3):
            raise DatFormatError(f"unexpected layer wrapper version {value} at {stream.position}")
        versions.append(value)
        if value == 3:
            break
    stream.expect("input_rgb_image_sized")
    means = (stream.real(), stream.real(), stream.real())
    rows, cols = stream.integer(), stream.integer()
    if rows != cols:
        raise DatFormatError("a square input is expected")
    network = DlibResNet(input_size=rows, channel_means=means, wrapper_versions=versions)
    readers = {
        "con_4": _conv,
        "affine_": _affine,
        "relu_": lambda s: Simple("relu"),
        "add_prev_": lambda s: Simple("add_prev"),
        "max_pool_2": lambda s: _pool(s, "max"),
        "avg_pool_2": lambda s: _pool(s, "avg"),
        "fc_2": _dense,
    }
    while stream.position < len(stream.data):
        name = stream.string()
        reader = readers.get(name)
        if reader is None:
            raise DatFormatError(f"unknown layer {name!r} at {stream.position}")
        network.layers.append(reader(stream))
        _layer_state(stream)
        if len(network.layers) == 1 and stream.integer() != 1:
            # The add_layer that holds the input layer also writes its sample expansion factor.
            raise DatFormatError("a sample expansion factor of 1 is expected")
    computational = sum(1 for version in versions if version in (2, 3))
    if computational != len(network.layers):
        raise DatFormatError(f"{computational} layers announced, {len(network.layers)} read")
    return network
