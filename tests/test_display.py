"""Tests for podd.display: the poster as uint8 pixels and as a PNG, undoing the preprocessing."""

from __future__ import annotations

import numpy as np
import torch

from podd.display import poster_image, save_poster_png


class Halve:
    """A stand-in preprocessor: network input = 2·x − 1, so inverse maps back to [0, 1]."""

    def inverse(self, x):
        return (x + 1) / 2


def test_poster_image_and_png(tmp_path):
    from PIL import Image

    poster = torch.linspace(-1, 1, 3 * 10 * 12).view(3, 10, 12)
    image = poster_image(poster, Halve())
    assert image.dtype == np.uint8 and image.shape == (10, 12, 3)
    assert image[0, 0, 0] == 0 and image[-1, -1, -1] == 255
    grey = poster_image(poster[:1], Halve())
    assert grey.shape == (10, 12, 1)
    path = save_poster_png(tmp_path / "p.png", poster[:1], Halve())
    assert np.array_equal(np.asarray(Image.open(path)), grey[:, :, 0])
    assert poster_image(torch.randn(3, 1, 10, 12)).shape == (10, 38, 1)


def _toy_zca(tmp_path):
    from podd.data import Dataset, make_preprocessor

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 2, 6, 6, generator=g) * 255).to(torch.uint8)
    y = torch.zeros(300, dtype=torch.long)
    return make_preprocessor(Dataset("toy", x, y, x[:5], y[:5], ["a"]), zca=True, root=tmp_path)


def test_a_zca_poster_is_unwhitened_as_one_picture(tmp_path):
    """Shifting the poster shifts its picture (away from the borders): no piece of it is treated
    apart from the rest, so there is no seam. Once image-sized pieces were unwhitened and
    stretched one by one, and the picture changed at every piece's edge."""
    pre = _toy_zca(tmp_path)
    g = torch.Generator().manual_seed(1)
    poster = torch.randn(2, 15, 22, generator=g)
    shifted = torch.roll(poster, shifts=-4, dims=2)
    a, b = pre.unwhiten(poster[None])[0], pre.unwhiten(shifted[None])[0]
    assert torch.allclose(b[:, :, 3:-7], a[:, :, 7:-3], atol=1e-5)
    # the picture is that of one stretch, between the 1st and 99th percentiles
    image = poster_image(poster, pre)
    lo, hi = torch.quantile(a.flatten(), torch.tensor([0.01, 0.99]))
    expected = ((a - lo) / (hi - lo)).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)
    assert image.shape == (15, 22, 2) and np.array_equal(image, expected.numpy())
    assert 0.005 < (image == 0).mean() < 0.03 and 0.005 < (image == 255).mean() < 0.03


def test_an_image_sized_zca_poster_is_unwhitened_exactly(tmp_path):
    pre = _toy_zca(tmp_path)
    z = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    exact = (z.reshape(4, -1) @ pre.inverse_matrix).reshape(z.shape)
    assert torch.allclose(pre.unwhiten(z), exact, atol=1e-6)
