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
    # Patch-wise inverse (for ZCA-like inverses) agrees with a pixel-wise inverse.
    assert np.array_equal(poster_image(poster, Halve(), patch_hw=(4, 4)), image)
    assert poster_image(torch.randn(3, 1, 10, 12)).shape == (10, 38, 1)
