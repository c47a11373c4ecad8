"""Evaluation architectures for cross-architecture evaluation, and the batched forward of all of them.

A distilled set is also tested on networks other than the ConvNet it was distilled with, as
DC-Bench and DD-Ranking do (ConvNet → ResNet-18, VGG-11, AlexNet). These are the 32×32-input
variants of the dataset-distillation literature (Zhao et al.'s DC/DSA networks, which DC-Bench
and MTT evaluate with), written here from their published shapes:

* ``resnet18``: a 3×3 stride-1 stem without max-pool, four stages of two basic blocks (width
  64, 128, 256, 512; stride 2 from the second stage on, a 1×1 convolution + norm on the shortcut
  where the shape changes), global average pooling, a linear head. Convolutions carry no bias.
* ``vgg11``: 3×3 convolutions 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M (M = 2×2
  max-pool), each followed by norm and ReLU, then a linear head.
* ``alexnet``: the small AlexNet of those works: 5×5 convs of 128 and 192 filters, each followed
  by ReLU and 2×2 max-pool, then 3×3 convs of 256, 192, 192 with ReLU and a last max-pool, then
  a linear head. No normalisation.

Normalisation — the facts followed: in DC's ``networks.py`` ``ResNet18`` and ``VGG11`` default
to ``norm='instancenorm'``, written ``nn.GroupNorm(C, C, affine=True)`` (the batch-norm variants
are the separately named ``ResNet18BN`` / ``VGG11BN``), and ``AlexNet`` has no norm layer;
DC-Bench's ``create_network`` maps ``resnet18`` / ``alexnet`` to exactly those, and MTT's
``get_network`` evaluates across architectures with the names ``ResNet18``, ``VGG11``,
``AlexNet``. So ResNet-18 and VGG-11 use instance norm (GroupNorm(C, C), like our ConvNet) and
AlexNet none: no batch statistics, and every model of a batch stays independent.

Other image sizes (checked by :func:`check_image_size`, one clear line otherwise): ResNet-18 ends
in a global average pool (at 32×32 and 28×28 this is DC's 4×4 average pool), so it takes any
side of at least 9; below that its last stage's maps are 1×1, where instance norm (each channel
normalised over its positions) erases the input: 8×8 digits are too small for it. AlexNet's
first convolution pads the side up to a multiple of 8 (DC pads MNIST's 28 to 32 with padding 4):
sides divisible by 4 (8, 28, 32, 64 …). VGG-11 pools five times: sides that are a multiple of
32, or 4 short of one (28 is padded to 32 by the first convolution, as DC does for MNIST): 28,
32, 64 …; 8×8 digits are too small for it. DC applies its padding when the images have one
channel (its only 28×28 data is MNIST); here it follows the side, whatever the channels. Where
the last feature map is larger than 1×1 (64×64 inputs) VGG-11 and AlexNet flatten it into the
head, as our ConvNet does (and as DD-Ranking's 64×64 VGG head, 512·2·2 features, does).

Why a module of its own: :mod:`podd.models` is the ConvNet the distillation engine traces; these
networks serve only the evaluation, together with :func:`grouped_forward`, which runs ``M``
stacked models of ANY of these architectures as one network with ``M`` groups (the ConvNet
included, with exactly its previous operations).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .choices import EVAL_ARCHS
from .models import ConvNet

#: How each architecture is named in printed summaries.
ARCH_LABELS = {"convnet": "ConvNet", "resnet18": "ResNet-18", "vgg11": "VGG-11", "alexnet": "AlexNet"}


def _instance_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(channels, channels, affine=True)  # one group per channel


class GlobalAvgPool(nn.Module):
    """Mean over the spatial positions, kept as a 1×1 map (B, C, 1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class BasicBlock(nn.Module):
    """ResNet's basic block: conv-norm-ReLU-conv-norm, plus the (projected) input, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _instance_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = _instance_norm(channels)
        self.shortcut = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), _instance_norm(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNet18(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 64):
        super().__init__()
        check_image_size("resnet18", image_size)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            _instance_norm(width),
            nn.ReLU(),
        ]
        channels = width
        for stage, out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for block in range(2):
                layers.append(BasicBlock(channels, out, 2 if stage and not block else 1))
                channels = out
        self.features = nn.Sequential(*layers, GlobalAvgPool())
        self.classifier = nn.Linear(channels, num_classes)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


_VGG11 = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")  # multiples of the width; M: max-pool


class VGG11(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 64):
        super().__init__()
        check_image_size("vgg11", image_size)
        pad = (-image_size) % 32 // 2  # 28 → 32, as DC does for MNIST
        layers: list[nn.Module] = []
        channels = in_channels
        for item in _VGG11:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = item * width
            layers += [
                nn.Conv2d(channels, out, 3, padding=1 + (pad if not layers else 0)),
                _instance_norm(out),
                nn.ReLU(),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        side = (image_size + 2 * pad) // 32
        self.classifier = nn.Linear(channels * side * side, num_classes)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class AlexNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 128):
        super().__init__()
        check_image_size("alexnet", image_size)
        pad = (-image_size) % 8 // 2  # 28 → 32 (DC's padding 4 for MNIST)
        c1, c2, c3 = width, width * 3 // 2, 2 * width  # 128, 192, 256 at the standard width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2 + pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c3, c2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c2, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = (image_size + 2 * pad) // 8
        self.classifier = nn.Linear(c2 * side * side, num_classes)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def check_arch(arch: str) -> str:
    if arch not in EVAL_ARCHS:
        raise ValueError(f"unknown evaluation architecture {arch!r}; choose one of {', '.join(EVAL_ARCHS)}")
    return arch


def check_image_size(arch: str, image_size: int) -> None:
    """Raise ValueError (one line, naming the sides that work and the architectures that take
    these images) where ``arch`` cannot take square images of side ``image_size``; arithmetic
    only, so callers check before any work."""
    problem = _size_problem(check_arch(arch), image_size)
    if problem:
        others = " or ".join(a for a in EVAL_ARCHS if a != arch and not _size_problem(a, image_size))
        raise ValueError(f"{problem}; these images are {image_size}×{image_size}: evaluate them with {others}")


def _size_problem(arch: str, side: int) -> str | None:
    if arch == "resnet18" and side < 9:
        return (
            "resnet18 halves the side three times and its instance norm needs at least 2×2 positions "
            "in the last stage, so it takes sides of at least 9 (16, 28, 32, 64, ...)"
        )
    if arch == "vgg11" and (side < 28 or (-side) % 32 not in (0, 4)):
        return (
            "vgg11 pools five times by 2, so it takes sides that are a multiple of 32 or 4 short of "
            "one (28, 32, 64, ...)"
        )
    if arch == "alexnet" and side % 4:
        return (
            "alexnet pads its input to a multiple of 8 and pools three times, so it takes sides "
            "divisible by 4 (8, 28, 32, 64, ...)"
        )
    return None


def build(
    arch: str, in_channels: int, num_classes: int, image_size: int, width: int = 128, depth: int | None = None
) -> nn.Module:
    """The evaluation network ``arch`` (one of :data:`podd.choices.EVAL_ARCHS`) for square
    images of ``image_size`` with ``in_channels``; ``width`` and ``depth`` are the ConvNet's
    (the other architectures have their standard widths)."""
    check_image_size(arch, image_size)
    if arch == "convnet":
        return ConvNet(in_channels, num_classes, image_size, width=width, depth=depth)
    return {"resnet18": ResNet18, "vgg11": VGG11, "alexnet": AlexNet}[arch](in_channels, num_classes, image_size)


# --------------------------------------------------------------------------------------------
# M stacked models as one grouped network


def grouped_forward(
    net: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, shared_input: bool = False
) -> torch.Tensor:
    """Run M stacked models at once as ONE network with M groups; returns logits (B, M, K).

    ``net``: any network of :func:`build` (``features`` then a linear ``classifier``).
    ``params``: its parameters stacked on a leading model axis (M, ...). ``x``: (B, M·c, h, w)
    — model m's batch in channels [m·c, (m+1)·c) — or, with ``shared_input``, (B, c, h, w) seen by
    every model (test time: the first convolution is then a dense one with M·width filters).
    The activations stay in this (B, M·C, H, W) layout throughout: a convolution becomes one grouped
    convolution (groups = M), instance norm one group_norm with M·C groups, ReLU, pooling and the
    residual additions are elementwise or per channel, and the head one batched matmul. No
    transposes between layers — measured faster than ``vmap(functional_call)`` on the CPU for the
    ConvNet (see benchmarks/results/LOG.md) and equal to it (tests).
    """
    num_models = params["classifier.weight"].shape[0]
    h = _grouped_sequence(net.features, "features", params, x, num_models, shared_input)
    features = h.reshape(h.shape[0], num_models, -1)  # per model: flatten(1) order
    logits = torch.einsum("bmf,mkf->bmk", features, params["classifier.weight"])
    return logits + params["classifier.bias"]


def _grouped_sequence(modules: nn.Sequential, prefix: str, params, h, num_models: int, shared: bool):
    for name, module in modules.named_children():
        key = f"{prefix}.{name}"
        if isinstance(module, BasicBlock):
            h = _grouped_block(module, key, params, h, num_models)
        else:
            h = _grouped_layer(module, key, params, h, num_models, shared)
            shared = shared and not isinstance(module, nn.Conv2d)  # only the first conv sees x
    return h


def _grouped_block(block: BasicBlock, key: str, params, h, num_models: int):
    def layer(name, value):
        return _grouped_layer(getattr(block, name), f"{key}.{name}", params, value, num_models)

    out = layer("norm2", layer("conv2", F.relu(layer("norm1", layer("conv1", h)))))
    skip = (
        h
        if block.shortcut is None
        else _grouped_sequence(block.shortcut, f"{key}.shortcut", params, h, num_models, False)
    )
    return F.relu(out + skip)


def _grouped_layer(module: nn.Module, key: str, params, h, num_models: int, shared: bool = False):
    if isinstance(module, nn.Conv2d):
        w = params[f"{key}.weight"]
        w = w.reshape(-1, *w.shape[2:])  # (M·out, in, k, k)
        bias = params.get(f"{key}.bias")
        return F.conv2d(
            h,
            w,
            None if bias is None else bias.reshape(-1),
            module.stride,
            module.padding,
            module.dilation,
            1 if shared else num_models,
        )
    if isinstance(module, nn.GroupNorm):
        return F.group_norm(
            h,
            num_models * module.num_groups,
            params[f"{key}.weight"].reshape(-1),
            params[f"{key}.bias"].reshape(-1),
            module.eps,
        )
    if isinstance(module, nn.ReLU):
        return F.relu(h)
    if isinstance(module, nn.AvgPool2d):
        return F.avg_pool2d(
            h,
            module.kernel_size,
            module.stride,
            module.padding,
            module.ceil_mode,
            module.count_include_pad,
            module.divisor_override,
        )
    if isinstance(module, nn.MaxPool2d):
        return F.max_pool2d(h, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode)
    if isinstance(module, GlobalAvgPool):
        return module(h)
    raise NotImplementedError(f"grouped_forward does not know {type(module).__name__}")
