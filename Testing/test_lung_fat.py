"""The fat trim of the lung masks (:mod:`covidct.lungs.fat`) on a chest phantom with known answers.

On the real CTs its effect is guarded where the masks are: ``test_real_cts.py`` (organ limit, the
consolidation of P001 and P002 kept) and ``test_lungs.py`` (CIP Dice, synthetic pleural consolidation kept).
"""

from __future__ import annotations

import numpy as np
import pytest

from covidct.lungs.fat import FAT_RADIUS_MM, ball, outside_fat

SPACING = (1.5, 1.5, 2.0)  # x, y, z in mm: the working grid of a 2 mm CT


def phantom():
    """``(hu, mask)``, ``(z, y, x)`` on :data:`SPACING`: a body of muscle (40 HU) holding one lung of air
    (−850 HU) and the mask that draws it; a fat pad (−100 HU) against the lung, a third of it inside the
    mask; a fat-density lesion (−80 HU) inside the lung; a consolidation (30 HU) at the lung's wall with
    fat (−100 HU) outside the wall behind it."""
    hu = np.full((20, 80, 80), 40.0, np.float32)
    hu[:, 20:60, 20:60] = -850.0
    mask = np.zeros(hu.shape, bool)
    mask[:, 20:60, 20:60] = True
    hu[4:16, 50:66, 50:66] = -100.0  # fat pad: 16 x 16 pixels, 10 x 10 of them inside the mask
    hu[4:16, 30:38, 30:38] = -80.0  # a fat-density lesion wholly inside the lung
    hu[4:16, 25:35, 60:70] = -100.0  # extrapleural fat outside the right wall
    hu[4:16, 25:35, 52:60] = 30.0  # consolidation against that wall, inside the mask
    return hu, mask


def test_fat_pad_that_goes_on_outside_the_mask_is_cut_and_nothing_else():
    hu, mask = phantom()
    cut = outside_fat(mask, hu, SPACING)
    pad = np.zeros(mask.shape, bool)
    pad[4:16, 50:60, 50:60] = True
    assert not (cut & ~mask).any()
    # the pad less its pixel next to the lung's air (the smoothing mixes that one with air), and the
    # ball's rounded corners
    assert cut[4:16, 51:60, 51:60].mean() > 0.9
    assert not cut[:, 30:38, 30:38].any()  # fat inside the lung, not going on outside: kept
    consolidation = np.zeros(mask.shape, bool)
    consolidation[4:16, 25:35, 52:60] = True
    assert not cut[consolidation].any()
    assert not cut[(~pad) & (~consolidation)].any()


def test_thin_fat_does_not_count():
    hu, mask = phantom()
    hu[4:16, 50:66, 50:66] = -850.0
    hu[4:16, 50:66, 50:66][:, :, -8:] = 40.0
    hu[4:16, 50:52, 50:66] = -100.0  # a band 3 mm thick, half inside the mask: thinner than the ball
    assert not outside_fat(mask, hu, SPACING)[:, 45:60, 45:66].any()


def test_noise_of_a_low_dose_ct_does_not_make_lung_or_muscle_fat():
    hu, mask = phantom()
    noisy = hu + np.random.default_rng(0).normal(0.0, 50.0, hu.shape).astype(np.float32)
    assert np.array_equal(outside_fat(mask, noisy, SPACING)[:, 20:45, 20:45], np.zeros((20, 25, 25), bool))
    assert outside_fat(mask, noisy, SPACING)[4:16, 51:60, 51:60].mean() > 0.9


@pytest.mark.parametrize(
    ("spacing", "shape"),
    [((1.5, 1.5, 2.0), (3, 5, 5)), ((0.7, 0.7, 5.0), (1, 9, 9)), ((1.0, 1.0, 1.0), (7, 7, 7))],
)
def test_ball_is_the_voxels_within_the_radius_in_mm(spacing, shape):
    structure = ball(FAT_RADIUS_MM, spacing)
    assert structure.shape == shape
    centre = tuple(n // 2 for n in shape)
    offsets = np.indices(shape) - np.array(centre)[:, None, None, None]
    distances = np.sqrt(sum((o * s) ** 2 for o, s in zip(offsets, reversed(spacing), strict=True)))
    assert np.array_equal(structure, distances <= FAT_RADIUS_MM)


def test_ball_on_pixels_coarser_than_the_radius_is_a_cross():
    """The CIP CT's 4.2 mm pixels: a lone voxel of partial volume at the lung's edge is not thick fat."""
    structure = ball(FAT_RADIUS_MM, (4.171872, 4.171872, 3.9873417721518987))
    assert structure.shape == (1, 3, 3)
    assert np.array_equal(structure[0], np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool))
