"""The ConvNet of the dataset-distillation literature (§5.1), usable functionally.

``depth`` blocks of 3×3 conv (``width`` filters, padding 1) → instance norm (affine; written
as GroupNorm with one group per channel, as the authors do) → ReLU → 2×2 average pool, then a
linear head. The distillation inner loop and the batched evaluation never train the module's
own parameters: they draw fresh parameter dicts with :func:`init_parameters` (seeded through an
explicit generator) and run the module through :func:`torch.func.functional_call`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def default_depth(image_size: int) -> int:
    """Conv blocks for a square image side: 3 for 32×32, 4 for 64×64, 2 for 8×8 digits."""
    if image_size >= 64:
        return 4
    if image_size >= 32:
        return 3
    return 2 if image_size >= 8 else 1


class ConvNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 128, depth: int | None = None):
        super().__init__()
        depth = default_depth(image_size) if depth is None else depth
        if image_size % (2**depth):
            raise ValueError(
                f"image size {image_size} cannot be pooled {depth} times by 2; "
                f"choose a depth with image_size divisible by 2**depth"
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.GroupNorm(width, width, affine=True),
                nn.ReLU(),
                nn.AvgPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        feature_side = image_size // (2**depth)
        self.classifier = nn.Linear(width * feature_side * feature_side, num_classes)
        self.depth, self.width = depth, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def init_parameters(
    net: nn.Module, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """A freshly initialised parameter dict for ``net`` (PyTorch's default init), seeded.

    Conv and linear weights: Kaiming-uniform with a = √5; biases uniform in ±1/√fan_in;
    norm weights 1 and biases 0 — the same distributions as ``reset_parameters``, but drawn
    from ``generator`` (on the CPU, so a seed gives the same network on any device).
    """
    device = torch.device(device) if device is not None else next(net.parameters()).device
    params: dict[str, torch.Tensor] = {}
    for name, p in net.named_parameters():
        module = net.get_submodule(name.rsplit(".", 1)[0])
        if isinstance(module, nn.GroupNorm):
            value = torch.ones(p.shape) if name.endswith("weight") else torch.zeros(p.shape)
        else:
            weight = module.weight
            fan_in = weight[0].numel()
            if name.endswith("weight"):
                # kaiming_uniform_(a=√5): bound = √(6 / ((1 + a²)·fan_in)) = 1/√fan_in
                bound = math.sqrt(6.0 / ((1 + 5) * fan_in))
            else:
                bound = 1.0 / math.sqrt(fan_in)
            value = (torch.rand(p.shape, generator=generator, dtype=p.dtype) * 2 - 1) * bound
        params[name] = value.to(device=device, dtype=p.dtype)
    return params


def stacked_parameters(
    net: nn.Module, num_models: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """``num_models`` independent initialisations stacked on a leading axis (for vmap)."""
    inits = [init_parameters(net, generator, device) for _ in range(num_models)]
    return {name: torch.stack([p[name] for p in inits]) for name in inits[0]}


def forward_with(net: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Run ``net`` with the given parameters instead of its own (differentiable in both)."""
    return functional_call(net, params, (x,))


def convnet_forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """:class:`ConvNet`'s forward as plain functions of its parameters, given in
    ``named_parameters`` order (per block: conv weight, conv bias, norm weight, norm bias; then
    the linear head's weight and bias).

    The same maths as ``forward_with(ConvNet(...), params, x)`` without the module dispatch of
    :func:`torch.func.functional_call`: the compiled engine (:mod:`podd.engine`) traces this, so
    its graphs hold a few operators per block and nothing else.
    """
    *blocks, head_weight, head_bias = params
    for i in range(0, len(blocks), 4):
        conv_weight, conv_bias, norm_weight, norm_bias = blocks[i : i + 4]
        x = F.conv2d(x, conv_weight, conv_bias, padding=1)
        x = F.group_norm(x, norm_weight.shape[0], norm_weight, norm_bias)  # instance norm
        x = F.avg_pool2d(F.relu(x), 2)
    return F.linear(x.flatten(1), head_weight, head_bias)
