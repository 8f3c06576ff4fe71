"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The weights are read straight from dlib's own serialisation of the network, so the torch net
reproduces ``dlib.face_recognition_model_v1.compute_face_descriptor`` (128-d, not normalised)
without the dlib Python module exposing any weights.

Architecture (dlib's ``examples/dnn_face_recognition_ex.cpp``, ``anet_type``), 150 x 150 RGB in:

* input: ``(pixel - mean[c]) / 256`` with means R/G/B = 122.782, 117.001, 104.298 (stored in
  the file; dlib's ``input_rgb_image_sized<150>``), see :func:`preprocess`;
* stem: conv 7x7/2 (32, padding 0) -> affine -> relu -> max-pool 3x3/2 (padding 0): 72 -> 35 px;
* 14 residual blocks, each ``relu(shortcut + affine(conv3x3(relu(affine(conv3x3/s(x))))))``:
  3 x 32 ch (35 px); 4 x 64 (17 px); 3 x 128 (8 px); 3 x 256 (4 px); 1 x 256 (2 px). The first
  block of every stage after the first is a down block: its first conv has stride 2 and no
  padding, and its shortcut is a 2x2/2 average pool of the block input. dlib's ``add_prev``
  adds tensors of different shapes by zero-padding both to the larger one at the end of each
  axis: the shortcut gains zero channels, and at 8 -> 3 (conv) vs 8 -> 4 (pool) px the conv
  branch gains a zero last row and column;
* average over all positions (256) -> ``fc_no_bias`` (256 -> 128) = the descriptor.

dlib convs use padding ``size // 2`` when the stride is 1 and 0 otherwise, with floor output
sizes, i.e. the same arithmetic as ``torch.nn.functional.conv2d``. ``affine`` is dlib's frozen
batch norm: a per-channel ``x * gamma + beta``. Every conv has a bias.

File format (dlib's ``serialize``, read by :func:`load_dlib_face_resnet`): integers are a
control byte (low nibble = number of little-endian bytes that follow, 0x80 = negative);
strings are a length plus bytes; floats/doubles are two integers, mantissa and exponent
(``mantissa * 2**exponent``); bools are the characters ``'0'``/``'1'``; a tensor is version 2,
four integers (n, k, nr, nc) and raw little-endian float32s; an alias tensor (a view's shape)
is version 1 and four integers. A network is written top-down as nested objects: the loss
layer (version 1, ``loss_metric_2`` with margin and distance threshold) then its sub-network;
each ``add_layer`` writes its version (2; 3 for the one on the input), then its sub-network,
then its layer details (``con_4``, ``affine_``, ``relu_``, ``max_pool_2``, ``avg_pool_2``,
``add_prev_``, ``fc_2``: a version string and fields) and its bookkeeping (three bools, three
empty tensors; the input one also a sample-expansion integer). Tag and skip layers write only
a version (1) and their sub-network. So the file is the loss header, the run of versions from
the top layer down, the input layer, and then the layer details from the bottom layer up.
"""

from __future__ import annotations

import bz2
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfr.errors import CheckpointError

INPUT_SIZE = 150
EMBEDDING_DIM = 128
# (channels, blocks, first block is a down block), bottom stage first.
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
# dlib's defaults; the loader replaces them with the means stored in the file.
DLIB_MEANS = (122.782, 117.001, 104.298)


# ----------------------------------------------------------------------------- the network


class Affine(nn.Module):
    """dlib's ``affine`` layer in CONV mode: per-channel ``x * weight + bias``."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: ``a + b`` with both zero-padded (at the end) to the larger shape."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(
            t, (0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2], 0, shape[1] - t.shape[1])
        )

    return pad(a) + pad(b)


class ResBlock(nn.Module):
    """dlib's ``ares`` / ``ares_down``: two 3x3 conv+affine, identity or avg-pool shortcut."""

    def __init__(self, in_channels: int, channels: int, down: bool):
        super().__init__()
        self.down = down
        stride = 2 if down else 1
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 0 if down else 1)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.affine1(self.conv1(x)))
        y = self.affine2(self.conv2(y))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_padded(shortcut, y))


class DlibFaceResNet(nn.Module):
    """dlib's 29-conv face ResNet: N x 3 x 150 x 150 (see :func:`preprocess`) -> N x 128."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine1 = Affine(32)
        blocks, in_channels = [], 32
        for channels, count, down in STAGES:
            for i in range(count):
                blocks.append(ResBlock(in_channels, channels, down and i == 0))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, EMBEDDING_DIM, bias=False)
        self.register_buffer("mean", torch.tensor(DLIB_MEANS, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.affine1(self.conv1(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    def preprocess(self, chips: np.ndarray | list[np.ndarray]) -> torch.Tensor:
        """uint8 RGB chips (N x 150 x 150 x 3) -> the network input, with this net's means."""
        return preprocess(chips, self.mean)

    @torch.no_grad()
    def fold_affines(self) -> None:
        """Multiply every ``affine`` into the conv before it (``w' = w * gamma``, ``b' = b *
        gamma + beta``) and replace it by an identity: the same function, one pass less per
        layer; a folded net is left as it is. For inference
        (:func:`mfr.nets.inference.inference_copy`): the folded net no longer loads dlib's
        weights or checkpoints of the unfolded one."""

        def fold(conv: nn.Conv2d, affine: nn.Module) -> nn.Identity:
            if isinstance(affine, Affine):  # not folded already
                conv.weight.mul_(affine.weight[:, None, None, None])
                conv.bias.copy_(conv.bias * affine.weight + affine.bias)
            return nn.Identity()

        self.affine1 = fold(self.conv1, self.affine1)
        for block in self.blocks:
            block.affine1 = fold(block.conv1, block.affine1)
            block.affine2 = fold(block.conv2, block.affine2)


def preprocess(
    chips: np.ndarray | list[np.ndarray], mean: torch.Tensor | None = None
) -> torch.Tensor:
    """dlib's ``input_rgb_image_sized``: uint8 RGB N x H x W x 3 -> ``(x - mean) / 256`` NCHW.

    Done in float32 like dlib (``pixel - float mean``, then an exact division by 256).
    """
    batch = np.ascontiguousarray(np.stack(chips) if isinstance(chips, list) else chips)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"expected uint8 N x H x W x 3 RGB chips, got {batch.dtype} {batch.shape}")
    if mean is None:
        mean = torch.tensor(DLIB_MEANS, dtype=torch.float32)
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    return ((x - mean.float().cpu()[None, :, None, None]) / 256.0).contiguous()


# ----------------------------------------------------------------------------- the file


class _FormatError(Exception):
    """Raised inside the reader; re-raised as CheckpointError naming the file."""


class _Reader:
    """Sequential reader of dlib's serialisation primitives."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _FormatError(f"truncated at byte {self.pos} (wanted {n} more bytes)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise _FormatError(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def str(self) -> str:
        n = self.int()
        if not 0 <= n <= 1000:
            raise _FormatError(f"implausible string length {n} at byte {self.pos}")
        return self._take(n).decode("latin-1")

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        special = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        return special[exponent] if exponent in special else mantissa * 2.0**exponent

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise _FormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def version(self, expected: int, what: str) -> None:
        v = self.int()
        if v != expected:
            raise _FormatError(f"{what}: version {v}, expected {expected}")

    def tensor(self) -> np.ndarray:
        self.version(2, "tensor")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise _FormatError(f"bad tensor shape {shape}")
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        self.version(1, "alias_tensor")
        return tuple(self.int() for _ in range(4))

    def peek_input_layer(self) -> bool:
        tag = b"input_rgb_image_sized"
        return self.data[self.pos : self.pos + 2 + len(tag)] == bytes([1, len(tag)]) + tag


@dataclass
class _Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    ints: tuple[int, ...] = ()


def _read_details(r: _Reader) -> _Layer:
    """One layer's details (the object a dlib ``add_layer`` wraps)."""
    name = r.str()
    if name in ("con_4", "con_5"):
        params = r.tensor().ravel()
        geometry = tuple(r.int() for _ in range(7))  # filters, nr, nc, sy, sx, py, px
        filters, biases = r.alias(), r.alias()
        for _ in range(4):
            r.float()  # learning-rate and weight-decay multipliers
        if name == "con_5":
            r.bool()  # use_bias
        n_filt = int(np.prod(filters))
        if filters[0] != geometry[0] or params.size != n_filt + int(np.prod(biases)):
            raise _FormatError(f"con layer with inconsistent shapes {filters} {biases}")
        weight = params[:n_filt].reshape(filters)
        bias = params[n_filt:] if biases[1] else np.zeros(filters[0], np.float32)
        return _Layer("con", {"weight": weight, "bias": bias}, geometry)
    if name in ("affine_", "affine_2"):
        params = r.tensor().ravel()
        gamma, beta = r.alias(), r.alias()
        mode = r.int()
        if name == "affine_2" and r.bool():
            raise _FormatError("disabled affine layer")
        n = int(np.prod(gamma))
        if mode != 0 or params.size != n + int(np.prod(beta)):
            raise _FormatError(f"affine layer not in CONV mode or inconsistent ({mode}, {gamma})")
        return _Layer("affine", {"weight": params[:n], "bias": params[n:]})
    if name == "relu_":
        return _Layer("relu")
    if name == "add_prev_":
        return _Layer("add_prev")
    if name in ("max_pool_2", "avg_pool_2"):
        return _Layer(name[:-2], ints=tuple(r.int() for _ in range(6)))
    if name in ("fc_2", "fc_3"):
        num_outputs, num_inputs = r.int(), r.int()
        params = r.tensor().ravel()
        r.alias(), r.alias()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if name == "fc_3":
            r.bool()
        if bias_mode != 1 or params.size != num_inputs * num_outputs:
            raise _FormatError(f"fc layer with bias or {params.size} != {num_inputs}x{num_outputs}")
        return _Layer("fc", {"weight": params.reshape(num_inputs, num_outputs)})
    raise _FormatError(f"unexpected layer {name!r}")


def _expected_kinds() -> list[str]:
    """Layer kinds of ``anet_type`` from the input up (tags and skips carry no details)."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for _channels, count, down in STAGES:
        for i in range(count):
            kinds += ["con", "affine", "relu", "con", "affine"]
            kinds += ["avg_pool", "add_prev", "relu"] if down and i == 0 else ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


def _expected_versions() -> list[int]:
    """The versions written before the input layer, top layer first (tags/skips are 1)."""
    out = [2, 2]  # fc, avg_pool_everything
    for _channels, count, down in reversed(STAGES):
        for i in reversed(range(count)):
            if down and i == 0:  # relu add_prev2 avg_pool skip1 tag2 [5 layers] tag1
                out += [2, 2, 2, 1, 1] + [2] * 5 + [1]
            else:  # relu add_prev1 [5 layers] tag1
                out += [2, 2] + [2] * 5 + [1]
    return out + [2, 2, 2, 3]  # max_pool relu affine con(on the input)


def _parse(data: bytes) -> tuple[list[_Layer], tuple[float, float, float]]:
    r = _Reader(data)
    r.version(1, "loss layer")
    loss = r.str()
    if loss != "loss_metric_2":
        raise _FormatError(f"loss layer {loss!r}, expected 'loss_metric_2'")
    r.float(), r.float()  # margin, distance threshold
    versions = []
    while not r.peek_input_layer():
        versions.append(r.int())
        if len(versions) > 10_000:
            raise _FormatError("no input layer found")
    if versions != _expected_versions():
        raise _FormatError(f"network structure differs ({len(versions)} nested layers)")
    r.str()
    means = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (INPUT_SIZE, INPUT_SIZE):
        raise _FormatError("input layer is not 150 x 150")
    layers = []
    for i, v in enumerate(reversed([v for v in versions if v != 1])):
        layers.append(_read_details(r))
        for _ in range(3):
            r.bool()  # setup called, gradient stale, output getters disabled
        for _ in range(3):
            r.tensor()  # x_grad, cached output, params/final gradient (empty)
        if i == 0 and v == 3:
            r.int()  # sample expansion factor of the input add_layer
    if r.pos != len(data):
        raise _FormatError(f"{len(data) - r.pos} unread bytes at the end")
    kinds = [layer.kind for layer in layers]
    if kinds != _expected_kinds():
        raise _FormatError("layer sequence differs from dlib_face_recognition_resnet_model_v1")
    return layers, means


def _check_pool(layer: _Layer, size: int, stride: int) -> None:
    if layer.ints != (size, size, stride, stride, 0, 0):
        raise _FormatError(f"{layer.kind} with geometry {layer.ints}")


def _copy_conv(conv: nn.Conv2d, layer: _Layer) -> None:
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    expected = (conv.out_channels, k, k, s, s, p, p)
    if layer.ints != expected or layer.arrays["weight"].shape != tuple(conv.weight.shape):
        raise _FormatError(f"con layer {layer.ints}, expected {expected}")
    conv.weight.copy_(torch.from_numpy(layer.arrays["weight"]))
    conv.bias.copy_(torch.from_numpy(layer.arrays["bias"]))


def _copy_affine(affine: Affine, layer: _Layer) -> None:
    if layer.arrays["weight"].shape != tuple(affine.weight.shape):
        raise _FormatError(f"affine layer with {layer.arrays['weight'].shape[0]} channels")
    affine.weight.copy_(torch.from_numpy(layer.arrays["weight"]))
    affine.bias.copy_(torch.from_numpy(layer.arrays["bias"]))


@torch.no_grad()
def _fill(net: DlibFaceResNet, layers: list[_Layer], means) -> None:
    it = iter(layers)
    _copy_conv(net.conv1, next(it))
    _copy_affine(net.affine1, next(it))
    next(it)  # relu
    _check_pool(next(it), 3, 2)
    for block in net.blocks:
        _copy_conv(block.conv1, next(it))
        _copy_affine(block.affine1, next(it))
        next(it)  # relu
        _copy_conv(block.conv2, next(it))
        _copy_affine(block.affine2, next(it))
        if block.down:
            _check_pool(next(it), 2, 2)
        next(it), next(it)  # add_prev, relu
    _check_pool(next(it), 0, 1)  # avg_pool_everything
    fc = next(it).arrays["weight"]  # num_inputs x num_outputs; out = x @ W
    if fc.shape != (net.fc.in_features, net.fc.out_features):
        raise _FormatError(f"fc weights {fc.shape}")
    net.fc.weight.copy_(torch.from_numpy(fc.T.copy()))
    net.mean.copy_(torch.tensor(means, dtype=torch.float32))


def load_dlib_face_resnet(path: str | Path) -> DlibFaceResNet:
    """Parse dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (or ``.dat.bz2``) into a
    :class:`DlibFaceResNet` in eval mode; :class:`CheckpointError` naming the file otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read dlib model file ({exc.strerror})") from None
    try:
        if data[:3] == b"BZh":
            data = bz2.decompress(data)
        layers, means = _parse(data)
        net = DlibFaceResNet()
        _fill(net, layers, means)
    except (_FormatError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1"
            f".dat): {exc}"
        ) from None
    return net.eval()


# ----------------------------------------------------------------------------- as a backbone

# Where dlib's 150 x 150 chip (5 points, padding 0.25) lies in an mfr-aligned 112 x 112 crop:
# centre x, centre y and side in pixels, the mean over 285 LFW training crops
# (benchmarks/dlib_chip_box.py; spread: side ± 5 px, centre ± 1.4 px, angle ± 0.05 rad).
CHIP_BOX_112 = (56.65, 71.25, 99.47)


class DlibChipBackbone(nn.Module):
    """dlib's face ResNet on mfr-aligned crops: ``mfr train --set backbone=dlib-resnet``.

    Takes the usual backbone input (N x 3 x S x S in [-1, 1], any S) and resamples the fixed
    box where dlib would cut its chip (:data:`CHIP_BOX_112`, scaled to S; outside the crop is
    black) to 150 x 150 before the net, so a masked face is framed exactly like its full twin
    instead of by landmarks the mask hides. Outputs the 128-d descriptor.
    """

    head_name = "dlib-chip"
    embedding_dim = EMBEDDING_DIM

    def __init__(self, input_size: int = 112):
        super().__init__()
        self.input_size = input_size
        self.net = DlibFaceResNet()
        cx, cy, side = (v * input_size / 112.0 for v in CHIP_BOX_112)
        # affine_grid works in [-1, 1] units of the input; +0.5: pixel centres (dlib indexes).
        # The grid is fixed, so it is computed once (and ONNX export needs no affine_grid).
        scale = side / input_size
        theta = torch.tensor([[scale, 0.0, 2 * (cx + 0.5) / input_size - 1],
                              [0.0, scale, 2 * (cy + 0.5) / input_size - 1]])  # fmt: skip
        grid = F.affine_grid(theta[None], [1, 3, INPUT_SIZE, INPUT_SIZE], align_corners=False)
        self.register_buffer("grid", grid, persistent=False)

    def load_dlib_weights(self, path: str | Path) -> None:
        """Copy the weights of dlib's model file into this backbone."""
        self.net.load_state_dict(load_dlib_face_resnet(path).state_dict())

    def chips(self, images: torch.Tensor) -> torch.Tensor:
        """The 150 x 150 chips (pixel values 0-255, float) cut from [-1, 1] crops."""
        pixels = (images.float() + 1.0) * 127.5
        grid = self.grid.expand(images.shape[0], -1, -1, -1)
        return F.grid_sample(pixels, grid, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((self.chips(images) - self.net.mean[None, :, None, None]) / 256.0)


def dlib_backbone(
    embedding_dim: int = EMBEDDING_DIM, input_size: int = 112, head=None, dropout: float = 0.0
) -> DlibChipBackbone:
    """The ``dlib-resnet`` backbone; options it cannot honour (another embedding size or
    head, dropout, inputs under 16 px) raise :class:`mfr.errors.ConfigError`."""
    from mfr.errors import ConfigError

    name = "dlib-resnet"
    if embedding_dim != EMBEDDING_DIM:
        raise ConfigError(f"{name} embeds in {EMBEDDING_DIM} dimensions, not {embedding_dim}")
    if head not in (None, DlibChipBackbone.head_name):
        raise ConfigError(f"{name} has its own head ({DlibChipBackbone.head_name}), not {head!r}")
    if dropout:
        raise ConfigError(f"{name} has no dropout option (got {dropout})")
    if input_size < 16:
        raise ConfigError(f"input size {input_size} is too small for {name} (need >= 16)")
    return DlibChipBackbone(input_size)
