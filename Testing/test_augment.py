"""The paper's augmentation: one affine for every slice, binary masks, identity, determinism, ranges; the
mask-edge shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import shared_file

from covidct.data.augment import (
    PAPER_RANGES,
    AugmentParams,
    AugmentRanges,
    affine_theta,
    apply_augmentation,
    random_augmentation,
    random_mask_edge_shift,
    sample_params,
    shift_mask_edge,
)
from covidct.preprocess.window import hu_window


@pytest.fixture(scope="module")
def ct_stack():
    """(2, T, H, W): the real CIP ct-64 windowed to 0..1 and its real lung mask, slices 20..35."""
    folder = "cip-copdgene-10002K-ct64/"
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_file(folder + "ct-64.nrrd"))))[20:36]
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_file(folder + "wholeLung-64.nrrd"))))[20:36]
    return torch.from_numpy(np.stack([hu_window(ct), (lungs > 0).astype(np.float32)]))


def test_identity_parameters_return_the_input(ct_stack):
    out = apply_augmentation(ct_stack, AugmentParams(), image_channels=(0,), mask_channels=(1,), clamp=(0, 1))
    assert torch.allclose(out, ct_stack, atol=1e-5)
    assert torch.equal(out[1], ct_stack[1])


def test_same_transform_on_every_slice(ct_stack):
    params = sample_params(torch.Generator().manual_seed(5))
    out = apply_augmentation(ct_stack, params, image_channels=(0,), mask_channels=(1,), clamp=(0, 1))
    # a stack of one repeated slice stays a stack of identical slices
    repeated = ct_stack[:, 7:8].repeat(1, 4, 1, 1)
    out_repeated = apply_augmentation(repeated, params, image_channels=(0,), mask_channels=(1,), clamp=(0, 1))
    assert all(torch.equal(out_repeated[:, 0], out_repeated[:, t]) for t in range(4))
    # each slice transformed alone equals the same slice transformed within the volume, geometry-wise
    # (the mask has no intensity jitter, so its slices must match exactly)
    alone = apply_augmentation(ct_stack[:, 3:4], params, image_channels=(0,), mask_channels=(1,), clamp=(0, 1))
    assert torch.equal(alone[1, 0], out[1, 3])
    assert not torch.equal(out[1], ct_stack[1])


def test_mask_stays_binary_and_moves_with_the_image(ct_stack):
    params = AugmentParams(rotation_deg=8, translate_x=0.08, translate_y=-0.05, scale=1.15, shear_deg=-7)
    out = apply_augmentation(ct_stack, params, image_channels=(0,), mask_channels=(1,), clamp=(0, 1))
    assert set(torch.unique(out[1]).tolist()) <= {0.0, 1.0}
    # lungs are dark: the windowed CT inside the moved mask stays dark, as before the transform
    before = ct_stack[0][ct_stack[1] > 0].mean()
    after = out[0][out[1] > 0].mean()
    assert abs(float(after - before)) < 0.03
    assert float(out[0][out[1] == 0].mean()) > float(after) + 0.1


def test_translation_and_rotation_geometry():
    image = torch.zeros(1, 1, 40, 60)
    image[0, 0, 20, 30] = 1.0  # pixel (row 20, column 30); centre is (19.5, 29.5)
    moved = apply_augmentation(image, AugmentParams(translate_x=6 / 60, translate_y=-4 / 40))
    assert tuple(torch.nonzero(moved[0, 0] == moved.max())[0].tolist()) == (16, 36)
    rotated = apply_augmentation(
        image.clone()
        .fill_(0)
        .index_put_((torch.tensor([0]), torch.tensor([0]), torch.tensor([19]), torch.tensor([39])), torch.tensor(1.0)),
        AugmentParams(rotation_deg=90),
    )
    # a point 10 px right of the centre row goes 10 px down on a non-square image (rotation, not a squash)
    row, col = torch.nonzero(rotated[0, 0] == rotated.max())[0].tolist()
    assert abs(row - 29) <= 1 and abs(col - 29) <= 1


def test_colour_jitter_brightness_contrast():
    stack = torch.linspace(0.2, 0.6, 2 * 8 * 8).reshape(1, 2, 8, 8)
    bright = apply_augmentation(stack, AugmentParams(brightness=1.5), clamp=(0, 1))
    assert torch.allclose(bright, stack * 1.5, atol=1e-5)
    contrast = apply_augmentation(stack, AugmentParams(contrast=0.7))
    mean = stack.mean()
    assert torch.allclose(contrast, (stack - mean) * 0.7 + mean, atol=1e-5)
    assert float(apply_augmentation(stack, AugmentParams(brightness=3.0), clamp=(0, 1)).max()) == 1.0


def test_sampling_is_deterministic_and_within_the_paper_ranges(ct_stack):
    draws = [sample_params(torch.Generator().manual_seed(s)) for s in range(300)]
    assert sample_params(torch.Generator().manual_seed(7)) == draws[7]
    assert draws[0] != draws[1]
    for name, low, high in [
        ("rotation_deg", -10, 10),
        ("translate_x", -0.1, 0.1),
        ("translate_y", -0.1, 0.1),
        ("scale", 0.8, 1.2),
        ("shear_deg", -10, 10),
        ("brightness", 0.5, 1.5),
        ("contrast", 0.7, 1.3),
    ]:
        values = np.array([getattr(d, name) for d in draws])
        assert values.min() >= low and values.max() <= high
        assert values.max() - values.min() > 0.8 * (high - low), name  # the whole range is used
    a = random_augmentation(ct_stack, torch.Generator().manual_seed(1), image_channels=(0,), mask_channels=(1,))
    b = random_augmentation(ct_stack, torch.Generator().manual_seed(1), image_channels=(0,), mask_channels=(1,))
    assert torch.equal(a, b)
    off = AugmentRanges(0, 0, 0, 0, 0, 0)
    assert sample_params(torch.Generator().manual_seed(2), off) == AugmentParams()
    assert PAPER_RANGES.rotation_deg == 10 and PAPER_RANGES.scale == 0.2


def test_theta_of_shear_shears_the_width_only():
    theta = affine_theta(AugmentParams(shear_deg=10), 100, 100).numpy()
    assert theta[1, 0] == 0 and theta[1, 1] == 1 and abs(theta[0, 1] + math.tan(math.radians(10))) < 1e-12


def test_mask_edge_shift_is_a_fraction_of_a_one_cell_dilation_or_erosion(ct_stack):
    """On the real CIP mask: +1 / -1 cell are scipy's 3 x 3 binary dilation / erosion of each slice, a
    fraction blends towards them, 0 is the identity, and voxels far from the edge never change."""
    from scipy import ndimage

    mask = ct_stack[1]
    square = np.ones((1, 3, 3), bool)
    binary = mask.numpy() > 0.5
    dilated = ndimage.binary_dilation(binary, square)
    eroded = ndimage.binary_erosion(binary, square, border_value=1)
    assert np.array_equal(shift_mask_edge(mask, 1.0).numpy() > 0.5, dilated)
    assert np.array_equal(shift_mask_edge(mask, -1.0).numpy() > 0.5, eroded)
    assert torch.equal(shift_mask_edge(mask, 0.0), mask)
    half = shift_mask_edge(mask, 0.3).numpy()
    assert np.allclose(half, binary + 0.3 * (dilated.astype(np.float32) - binary))
    assert np.allclose(shift_mask_edge(mask, -0.3).numpy(), binary - 0.3 * (binary.astype(np.float32) - eroded))
    edge = dilated & ~eroded  # the only voxels a shift may touch
    assert 0 < edge.sum() < binary.sum()
    for cells in (-1.0, -0.4, 0.7, 1.0):
        assert np.array_equal(shift_mask_edge(mask, cells).numpy()[~edge], binary[~edge])
    with pytest.raises(ValueError, match="in \\[-1, 1\\]"):
        shift_mask_edge(mask, 1.5)


def test_random_mask_edge_shift_moves_only_the_mask_within_its_range(ct_stack):
    """Seeded draws: the same seed gives the same volume; the CT channel never changes; over 40 seeds the
    mask volume spreads between the one-cell erosion and dilation, both ways."""
    volumes = []
    for seed in range(40):
        out = random_mask_edge_shift(ct_stack, torch.Generator().manual_seed(seed), channel=1, max_cells=1.0)
        again = random_mask_edge_shift(ct_stack, torch.Generator().manual_seed(seed), channel=1, max_cells=1.0)
        assert torch.equal(out, again) and torch.equal(out[0], ct_stack[0])
        volumes.append(float(out[1].sum()))
    low, high = float(shift_mask_edge(ct_stack[1], -1.0).sum()), float(shift_mask_edge(ct_stack[1], 1.0).sum())
    original = float(ct_stack[1].sum())
    assert low <= min(volumes) < original < max(volumes) <= high
    assert sum(v < original for v in volumes) >= 10 and sum(v > original for v in volumes) >= 10
