"""flip_rotate: one op per batch, seeded, exact on known cases, differentiable."""

import torch

from podd.augment import flip_rotate, horizontal_flip, rotate


def test_flip_mask_flips_exactly_the_chosen_samples():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    out = horizontal_flip(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def test_zero_rotation_is_identity_and_quarter_turn_is_rot90():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(rotate(x, torch.zeros(2, dtype=torch.float64)), x)
    quarter = rotate(x, torch.full((2,), 90.0, dtype=torch.float64))
    # +90° maps pixel centres onto pixel centres, so bilinear sampling is exact (clockwise on screen)
    torch.testing.assert_close(quarter, torch.rot90(x, k=-1, dims=(-2, -1)), atol=1e-9, rtol=0)


def test_same_seed_same_augmentation_and_both_ops_occur():
    x = torch.randn(16, 3, 8, 8)
    outs = [flip_rotate(x, torch.Generator().manual_seed(s)) for s in range(12)]
    again = [flip_rotate(x, torch.Generator().manual_seed(s)) for s in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(outs, again))

    def is_flip_only(out):  # every sample either untouched or exactly mirrored
        return all(torch.equal(o, s) or torch.equal(o, s.flip(-1)) for o, s in zip(out, x))

    kinds = {is_flip_only(out) for out in outs}
    assert kinds == {True, False}, "over 12 seeds both flip and rotate batches should appear"


def test_rotation_angles_stay_within_fifteen_degrees():
    # A centred horizontal bar, 3 rows thick, rotated by at most 15°: within ±2 columns of the
    # centre it moves by ≤ tan(15°)·2 ≈ 0.54 rows, so the centre row stays bright; its ends
    # (16 columns out) move by ≤ tan(15°)·16 ≈ 4.3 rows, so rows 8 or more away stay dark.
    x = torch.zeros(64, 1, 33, 33)
    x[:, :, 15:18, :] = 1.0
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        out = flip_rotate(x, g)
        assert (out[:, 0, 16, 14:19] > 0.3).all()
        assert out[:, 0, :8, :].abs().max() < 1e-6 and out[:, 0, 25:, :].abs().max() < 1e-6


def test_flip_rotate_is_differentiable_in_the_pixels():
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    for seed in range(4):  # covers both branches

        def augment(t, seed=seed):
            return flip_rotate(t, torch.Generator().manual_seed(seed))

        assert torch.autograd.gradcheck(augment, (x,))
