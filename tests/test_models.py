"""The ConvNet (§5.1) and its functional, seeded initialisation."""

import math

import pytest
import torch
from torch import nn

from podd.models import ConvNet, default_depth, forward_with, init_parameters, stacked_parameters


@pytest.mark.parametrize("size, depth", [(8, 2), (28, 2), (32, 3), (64, 4)])
def test_default_depth_follows_image_size(size, depth):
    assert default_depth(size) == depth


@pytest.mark.parametrize("channels, size", [(1, 8), (3, 32)])
def test_output_has_one_logit_per_class(channels, size):
    net = ConvNet(channels, num_classes=7, image_size=size, width=16)
    assert net(torch.randn(5, channels, size, size)).shape == (5, 7)


def test_architecture_is_conv_instancenorm_relu_avgpool_blocks():
    net = ConvNet(3, 10, 32)
    kinds = [type(m) for m in net.features]
    assert kinds == [nn.Conv2d, nn.GroupNorm, nn.ReLU, nn.AvgPool2d] * 3
    conv, norm = net.features[0], net.features[1]
    assert conv.out_channels == 128 and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
    # instance norm = one group per channel, with affine parameters
    assert norm.num_groups == norm.num_channels == 128 and norm.affine
    assert net.classifier.in_features == 128 * 4 * 4


def test_depth_that_cannot_pool_is_rejected():
    with pytest.raises(ValueError, match="depth"):
        ConvNet(1, 10, image_size=8, depth=4)


def test_init_parameters_is_seeded_and_matches_default_init_bounds():
    net = ConvNet(3, 10, 32, width=32)
    a = init_parameters(net, torch.Generator().manual_seed(1))
    b = init_parameters(net, torch.Generator().manual_seed(1))
    c = init_parameters(net, torch.Generator().manual_seed(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])
    fan_in = 3 * 3 * 3
    w = a["features.0.weight"]
    assert w.abs().max() <= 1 / math.sqrt(fan_in)
    # uniform on ±bound has std bound/√3; a wrong bound would be far off
    assert abs(w.std().item() - 1 / math.sqrt(3 * fan_in)) < 0.1 / math.sqrt(fan_in)
    assert torch.equal(a["features.1.weight"], torch.ones(32))
    assert torch.equal(a["features.1.bias"], torch.zeros(32))


def test_forward_with_uses_the_given_parameters_and_is_differentiable():
    net = ConvNet(1, 10, 8, width=8)
    params = {k: v.requires_grad_() for k, v in init_parameters(net, torch.Generator().manual_seed(0)).items()}
    x = torch.randn(3, 1, 8, 8)
    net.load_state_dict({k: v.detach() for k, v in params.items()})
    torch.testing.assert_close(forward_with(net, params, x), net(x))
    forward_with(net, params, x).sum().backward()
    assert all(p.grad is not None for p in params.values())


def test_stacked_parameters_equal_individual_draws_from_the_same_stream():
    net = ConvNet(1, 10, 8, width=4)
    stacked = stacked_parameters(net, 3, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    singles = [init_parameters(net, g) for _ in range(3)]
    for name, value in stacked.items():
        assert value.shape[0] == 3
        for m in range(3):
            assert torch.equal(value[m], singles[m][name])
