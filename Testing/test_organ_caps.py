"""Organ caps (:mod:`covidct.lungs.organ_caps`) in the lungs' hole filling, on a phantom whose answer is
known voxel by voxel: a dome of soft tissue rising into a lung from below is not lung, while a vessel,
a lesion that the lung encloses and the upper part of a lesion whose lower part touches the chest wall
(so that the mask misses it there) are filled in. The same on real CTs: ``Testing/test_real_cts.py``.
The classifiers read the lungs with each lung's holes filled, domes included (:func:`holes_filled`)."""

from __future__ import annotations

import numpy as np
import pytest

from covidct.lungs.morphology import inplane_holes
from covidct.lungs.organ_caps import CAP_MIN_MM2
from covidct.lungs.postprocess import fill_lung_holes, holes_filled

SPACING = (1.5, 1.5, 2.0)  # x, y, z mm
SHAPE = (50, 80, 80)  # z, y, x
AIR, TISSUE = -850.0, 40.0
FLOOR = 5  # the lung's lowest slice
DOME_RADIUS_MM, DOME_HEIGHT_MM = 22.0, 24.0


def _ball(centre_zyx_mm, radius_mm: float) -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    return (
        ((z - FLOOR) * SPACING[2] - centre_zyx_mm[0]) ** 2
        + (y * SPACING[1] - centre_zyx_mm[1]) ** 2
        + (x * SPACING[0] - centre_zyx_mm[2]) ** 2
    ) <= radius_mm**2


def _phantom(dome_top_in_mask: int = 0):
    """``(lung, hu, dome, vessel, lesion, wall_lesion)``, canonical ``(z, y, x)`` (z towards the head): a
    cylinder of lung over soft tissue, a paraboloid dome of that tissue rising into it from below (its
    cross-section an island in the slices above the floor), a vertical vessel and two ball-shaped lesions
    in the lung: one enclosed by lung, one 16 mm from the chest wall (radius 20 mm: its middle slices
    touch the wall, the slices above are islands of more than a cap base's area standing on it).
    ``lung``: the air the lung holds, plus the top ``dome_top_in_mask`` slices of the dome (as the UNet
    labels a dome's top)."""
    z, y, x = np.indices(SHAPE)
    zmm, r = (z - FLOOR) * SPACING[2], np.hypot((y - 40) * SPACING[1], (x - 40) * SPACING[0])
    cylinder = (np.hypot(y - 40, x - 40) < 34) & (z >= FLOOR) & (z < 46)
    dome = cylinder & (zmm < DOME_HEIGHT_MM * (1 - (r / DOME_RADIUS_MM) ** 2))
    vessel = cylinder & (np.hypot(y - 40, x - 64) <= 2) & (z >= 20)
    lesion = cylinder & _ball((46.0, 22 * SPACING[1], 52 * SPACING[0]), 16.0)
    wall_lesion = cylinder & _ball((50.0, 40 * SPACING[1], 40 * SPACING[0] - 34 * SPACING[0] + 16.0), 20.0)
    hu = np.full(SHAPE, TISSUE, np.float32)
    hu[cylinder & ~dome & ~vessel & ~lesion & ~wall_lesion] = AIR
    lung = hu == AIR
    if dome_top_in_mask:
        top = np.flatnonzero(dome.any(axis=(1, 2)))[-dome_top_in_mask:]
        lung[top] |= dome[top]
    return lung, hu, dome, vessel, lesion, wall_lesion


def _caps(labels: np.ndarray, hu: np.ndarray, body_below: bool) -> np.ndarray:
    """The organ caps :func:`fill_lung_holes` finds in a labelmap of the phantom."""
    return fill_lung_holes(labels, hu, SPACING, body_below)[1]


def test_phantom_dome_is_an_island_larger_than_a_cap_base_needs():
    lung, _, dome, _, lesion, wall_lesion = _phantom()
    assert dome[FLOOR].sum() * SPACING[0] * SPACING[1] > CAP_MIN_MM2  # the lung encloses it from its floor up
    assert np.flatnonzero(dome.any(axis=(1, 2)))[-1] > FLOOR + 5
    # the lesion is larger in-plane than a cap base must be, so only what lies below it tells them apart
    assert lesion.sum(axis=(1, 2)).max() * SPACING[0] * SPACING[1] > CAP_MIN_MM2
    # the wall lesion's enclosed slices include one of a cap base's area right above a slice touching the wall
    enclosed = wall_lesion & inplane_holes(lung)
    touching = np.flatnonzero((wall_lesion & ~enclosed).any(axis=(1, 2)))
    above = touching[-1] + 1
    assert enclosed[above].sum() * SPACING[0] * SPACING[1] > CAP_MIN_MM2


@pytest.mark.parametrize("dome_top_in_mask", [0, 3])
def test_dome_rising_from_below_stays_out_of_the_lung(dome_top_in_mask):
    lung, hu, dome, vessel, lesion, wall_lesion = _phantom(dome_top_in_mask)
    labels = lung.astype(np.uint8)  # one lung, label 1
    inside = fill_lung_holes(labels, hu, SPACING, body_below=True)[0] > 0
    assert not (inside & dome).any()
    assert inside[vessel].all() and inside[lesion].all()
    assert inside[wall_lesion & inplane_holes(lung)].all()
    assert inside[lung & ~dome].all()


def test_without_caps_the_dome_would_be_filled_in():
    """The cap rule is what keeps the dome out: plain in-plane hole filling takes it in."""
    lung, hu, dome, _, _, _ = _phantom()
    assert (inplane_holes(lung) & dome).sum() > 0.9 * dome.sum()
    np.testing.assert_array_equal(_caps(lung.astype(np.uint8), hu, body_below=True), dome)


def test_a_scan_that_cuts_the_lung_bases_off_takes_nothing_for_a_cap():
    """Where the lung reaches the scan's first slice, what lies below is unknown: no cap unless the caller
    says the body goes on below the arrays (as when they are a box cut from a longer CT)."""
    lung, hu, dome, _, _, _ = _phantom()
    cut = slice(FLOOR + 3, None)  # the scan starts inside the dome
    labels = lung[cut].astype(np.uint8)
    assert dome[cut][0].any()
    assert not _caps(labels, hu[cut], body_below=False).any()
    np.testing.assert_array_equal(_caps(labels, hu[cut], body_below=True), dome[cut])


def test_classifiers_read_the_lung_with_the_dome_filled_in():
    """The hole a cap leaves is lung again in the classifiers' lung input (their training masks held the
    domes; a hole there reads to them as a lesion); nothing else changes."""
    lung, hu, dome, _, _, _ = _phantom()
    labels = fill_lung_holes(lung.astype(np.uint8), hu, SPACING, body_below=True)[0]
    filled = holes_filled(labels)
    assert not (labels[dome] > 0).any()
    np.testing.assert_array_equal(filled, (labels > 0) | inplane_holes(labels > 0))
    assert filled[dome].mean() > 0.9  # the dome's cross-sections ringed by lung; its rim at the floor is not


def test_the_space_between_two_lungs_is_not_filled():
    """Each lung fills only the holes it rings itself: the mediastinum, ringed only by both lungs together
    (they meet in front of it and behind it), stays out."""
    labels = np.zeros((1, 12, 17), np.uint8)
    labels[0, 1:11, 1:8] = 1  # right lung (columns 1-7)
    labels[0, 4:7, 3:6] = 0  # a dome's cross-section, ringed by the right lung
    labels[0, 1:11, 9:16] = 2  # left lung (columns 9-15)
    labels[0, 1, 8], labels[0, 10, 8] = 1, 2  # the lungs meet in front of and behind the mediastinum (column 8)
    filled = holes_filled(labels)
    assert filled[0, 4:7, 3:6].all()
    assert not filled[0, 2:10, 8].any()
    assert inplane_holes(labels > 0)[0, 2:10, 8].all()  # one mask for both lungs would have filled it
