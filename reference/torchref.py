"""The p2sbench network and losses written in plain PyTorch: the reference that tests/parity.rs
trains against and that benches/train_step.rs times (bench/torch_step.py).

The network mirrors src/model: conv3x3 (no bias) -> BatchNorm2d -> ReLU -> 2x2 max-pool per stage,
then flatten -> Linear -> BatchNorm1d, and class weights W [C, D] (plus a class bias for softmax).
Module names match p2sbench's variable names without the "backbone." prefix (conv0, bn0, ...,
embedding, embedding_bn), so state can be exchanged by name. Initialisation is PyTorch's module
default (what p2sbench also uses); tests load p2sbench's initial values anyway.

Tensors travel as safetensors files, read and written here with the standard library and torch
alone (8-byte little-endian header length, a JSON header, raw little-endian data).
"""
import ctypes
import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8}


def read_safetensors(path):
    """Every tensor of a safetensors file, by name."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = bytearray(blob[8 + n :])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        t = torch.frombuffer(data[start:end], dtype=dtype) if end > start else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def write_safetensors(path, tensors):
    """Writes named tensors (contiguous, CPU) as a safetensors file."""
    names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.uint8: "U8"}
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        raw = ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


class Net(nn.Module):
    """The backbone and embedding layer of src/model, with the class-weight head."""

    def __init__(self, channels, size, widths, embedding, classes, with_bias):
        super().__init__()
        in_ch, side = channels, size
        self.stages = len(widths)
        for i, w in enumerate(widths):
            setattr(self, f"conv{i}", nn.Conv2d(in_ch, w, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(w))
            in_ch, side = w, side // 2
        self.embedding = nn.Linear(in_ch * side * side, embedding)
        self.embedding_bn = nn.BatchNorm1d(embedding)
        self.weight = nn.Parameter(torch.randn(classes, embedding) / math.sqrt(embedding))
        self.bias = nn.Parameter(torch.zeros(classes)) if with_bias else None

    def embed(self, x):
        for i in range(self.stages):
            x = F.max_pool2d(F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))), 2)
        return self.embedding_bn(self.embedding(x.flatten(1)))

    def p2sbench_names(self):
        """(p2sbench variable name, tensor) for every parameter and batch-norm statistic."""
        out = {}
        for name, t in list(self.named_parameters()) + list(self.named_buffers()):
            if name.endswith("num_batches_tracked"):
                continue
            if name == "weight":
                out["head.weight"] = t
            elif name == "bias":
                out["head.bias"] = t
            else:
                out["backbone." + name] = t
        return out


class _PReLU(nn.PReLU):
    """nn.PReLU (one slope per channel, 0.25 at init)."""

    def __init__(self, channels):
        super().__init__(channels)


class _IBlock(nn.Module):
    """IResNet's residual unit: BN, conv3x3, BN, PReLU, conv3x3 (carrying the stride), BN, plus
    the shortcut (a strided conv1x1 + BN where the shape changes)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.prelu = _PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


IRESNET_LAYERS = {"iresnet18": [2, 2, 2, 2], "iresnet34": [3, 4, 6, 3], "iresnet50": [3, 4, 14, 3],
                  "iresnet100": [3, 13, 30, 3]}


def _fixed_gamma_bn1d(features):
    """BatchNorm1d whose scale stays 1 (not trained), the embedding's last layer."""
    bn = nn.BatchNorm1d(features)
    bn.weight.requires_grad = False
    return bn


class IResNet(nn.Module):
    """ArcFace's IResNet (LResNetxxE-IR): conv3x3(64) + BN + PReLU, four stages of IBlocks at
    64/128/256/512 channels each halving the resolution, then BN -> flatten -> dropout (p = 0)
    -> Linear -> BatchNorm1d with the scale fixed at 1."""

    def __init__(self, name, channels, size, embedding):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = _PReLU(64)
        cin, side = 64, size
        for i, (width, blocks) in enumerate(zip([64, 128, 256, 512], IRESNET_LAYERS[name])):
            layer = [_IBlock(cin, width, 2)] + [_IBlock(width, width, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            cin, side = width, (side + 1) // 2
        self.bn2 = nn.BatchNorm2d(512)
        self.fc = nn.Linear(512 * side * side, embedding)
        self.features = _fixed_gamma_bn1d(embedding)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.bn2(x).flatten(1)))


class _ConvUnit(nn.Module):
    """conv (no bias) + BN (+ PReLU unless linear)."""

    def __init__(self, cin, cout, kernel, stride, padding, groups=1, linear=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = None if linear else _PReLU(cout)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class _Bottleneck(nn.Module):
    """MobileNetV2's inverted residual with PReLU: expand 1x1 (t x), depthwise 3x3 (stride),
    linear project 1x1; a residual where stride 1 keeps the channels."""

    def __init__(self, cin, cout, t, stride):
        super().__init__()
        hidden = cin * t
        self.expand = _ConvUnit(cin, hidden, 1, 1, 0)
        self.depthwise = _ConvUnit(hidden, hidden, 3, stride, 1, groups=hidden)
        self.project = _ConvUnit(hidden, cout, 1, 1, 0, linear=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


# (t, c, n, s) of MobileFaceNet's bottleneck rows (Chen et al. 2018, Table 1).
MOBILEFACENET_BOTTLENECKS = [(2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)]


class MobileFaceNet(nn.Module):
    """MobileFaceNet as Table 1 of Chen et al. 2018: conv3x3 s2 (64), depthwise conv3x3 (64), the
    bottlenecks, conv1x1 (512), linear global depthwise conv over the whole map (512), then the
    linear 1x1 conv to the embedding as Linear -> BatchNorm1d (scale fixed at 1)."""

    def __init__(self, channels, size, embedding):
        super().__init__()
        self.conv1 = _ConvUnit(channels, 64, 3, 2, 1)
        self.dw_conv1 = _ConvUnit(64, 64, 3, 1, 1, groups=64)
        blocks, cin, side = [], 64, (size + 1) // 2
        for t, c, n, s in MOBILEFACENET_BOTTLENECKS:
            for i in range(n):
                blocks.append(_Bottleneck(cin, c, t, s if i == 0 else 1))
                cin = c
            side = (side + 1) // 2 if s == 2 else side
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = _ConvUnit(128, 512, 1, 1, 0)
        self.gdconv = _ConvUnit(512, 512, side, 1, 0, groups=512, linear=True)
        self.fc = nn.Linear(512, embedding)
        self.features = _fixed_gamma_bn1d(embedding)

    def forward(self, x):
        x = self.gdconv(self.conv2(self.blocks(self.dw_conv1(self.conv1(x)))))
        return self.features(self.fc(x.flatten(1)))


class _MbfBlock(nn.Module):
    """insightface's mbf unit: 1x1 expansion to `hidden`, depthwise 3x3 at `stride`, linear 1x1
    projection; a residual at stride 1."""

    def __init__(self, cin, cout, hidden, stride):
        super().__init__()
        self.expand = _ConvUnit(cin, hidden, 1, 1, 0)
        self.depthwise = _ConvUnit(hidden, hidden, 3, stride, 1, groups=hidden)
        self.project = _ConvUnit(hidden, cout, 1, 1, 0, linear=True)
        self.residual = stride == 1

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


# (input channels, output channels, hidden channels, stride, repeats) of mbf's units after the stem.
MBF_UNITS = [(128, 128, 128, 2, 1), (128, 128, 128, 1, 4), (128, 256, 256, 2, 1), (256, 256, 256, 1, 6),
             (256, 256, 512, 2, 1), (256, 256, 256, 1, 2)]


class Mbf(nn.Module):
    """insightface's `mbf` (arcface_torch get_mbf: scale 2, blocks (1, 4, 6, 2)): conv3x3 s2 (128),
    a grouped conv3x3 (64 groups), the units, conv1x1 (512), a linear global depthwise conv over
    the map, Linear without bias, BatchNorm1d (scale trained)."""

    def __init__(self, channels, size, embedding):
        super().__init__()
        self.stem = _ConvUnit(channels, 128, 3, 2, 1)
        self.stem_dw = _ConvUnit(128, 128, 3, 1, 1, groups=64)
        blocks, side = [], (size + 1) // 2
        for cin, cout, hidden, stride, count in MBF_UNITS:
            for _ in range(count):
                blocks.append(_MbfBlock(cin, cout, hidden, stride))
                side = (side + 1) // 2 if stride == 2 else side
        self.blocks = nn.Sequential(*blocks)
        self.conv_sep = _ConvUnit(256, 512, 1, 1, 0)
        self.gdc = _ConvUnit(512, 512, side, 1, 0, groups=512, linear=True)
        self.fc = nn.Linear(512, embedding, bias=False)
        self.features = nn.BatchNorm1d(embedding)

    def forward(self, x):
        x = self.gdc(self.conv_sep(self.blocks(self.stem_dw(self.stem(x)))))
        return self.features(self.fc(x.flatten(1)))


def backbone(name, channels, size, embedding):
    """The PyTorch module of p2sbench's `model.backbone = name` (not the CNN: see Net)."""
    if name in IRESNET_LAYERS:
        return IResNet(name, channels, size, embedding)
    if name == "mobilefacenet":
        return MobileFaceNet(channels, size, embedding)
    if name == "mbf":
        return Mbf(channels, size, embedding)
    raise SystemExit(f"torchref.py: backbone {name} is not written here")


def loss_value(name, params, net, x, labels, classes=None):
    """The batch-mean loss of `name` with `params` (dict) on features x, written with torch ops
    in the order p2sbench's losses apply them (see the notes on softmax and ArcFace). With
    `classes` (Partial FC: sorted class indices), over those rows of the class layer only, the
    labels becoming positions among them, as insightface's partial_fc_v2 does."""
    weight, bias = net.weight, getattr(net, "bias", None)
    if classes is not None:
        weight = weight[classes]
        bias = bias[classes] if bias is not None else None
        labels = torch.searchsorted(classes, labels)
    cos = F.linear(F.normalize(x), F.normalize(weight))
    if name == "softmax":
        # p2sbench writes W_j.x + b_j as |x|.|W_j|.cos + b_j so that cos is on the graph (its
        # telemetry reads dL/dcos for every loss). The value is F.linear's up to rounding, but a
        # rounding difference of one step grows through training (to ~1e-4 relative in 30 steps
        # here), so the reference computes the logits the same way; tests/losses.rs checks that
        # this form equals F.linear's logits and gradients to float precision.
        x_norm, w_norm = x.norm(dim=1, keepdim=True), weight.norm(dim=1, keepdim=True)
        cos = (x / x_norm.clamp_min(1e-12)) @ (weight / w_norm.clamp_min(1e-12)).t()
        return F.cross_entropy(cos * x_norm * w_norm.t() + bias, labels)
    one_hot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    if name == "p2sgrad":
        per_class = (cos - one_hot) ** 2
        if params.get("reduction", "paper") == "paper":
            return 0.5 * per_class.sum(1).mean()
        return per_class.mean()
    s = params["s"]
    if name == "normface":
        return F.cross_entropy(s * cos, labels)
    m = params["m"]
    if name == "cosface":
        return F.cross_entropy(s * (cos - m * one_hot), labels)
    if name == "arcface":
        # The additive angular margin on the target column, scattered into the cosines (as
        # src/loss/arcface.rs does; insightface computes it over the whole matrix and selects with
        # the one-hot mask: the same function, rounded differently, which drifts by ~1e-5 in 30
        # steps). Where theta + m > pi the target logit continues as cos - m sin m.
        target = labels[:, None]
        cos_y = cos.gather(1, target)
        c = cos_y.clamp(-1 + 1e-7, 1 - 1e-7)
        shifted = c * math.cos(m) - torch.sqrt(1.0 - c * c) * math.sin(m)
        psi = torch.where(cos_y > math.cos(math.pi - m), shifted, cos_y - m * math.sin(m))
        return F.cross_entropy(cos.scatter(1, target, psi) * s, labels)
    raise SystemExit(f"torchref.py: loss {name} is not written here")
