"""Binary-mask helpers of :mod:`covidct.lungs.morphology` with known answers."""

from __future__ import annotations

import numpy as np

from covidct.lungs.morphology import hull_pixels


def test_hull_of_three_corners_is_the_triangle_with_its_edges():
    mask = np.zeros((16, 16), bool)
    mask[2, 3] = mask[2, 13] = mask[12, 3] = True
    rows, columns = np.mgrid[:16, :16]
    triangle = (rows >= 2) & (columns >= 3) & ((rows - 2) + (columns - 3) <= 10)
    assert np.array_equal(hull_pixels(mask), triangle)
    assert triangle.sum() == 66


def test_hull_of_two_lungs_holds_the_space_between_them():
    mask = np.zeros((40, 60), bool)
    mask[5:35, 5:25] = mask[5:35, 35:55] = True
    hull = hull_pixels(mask)
    assert hull[5:35, 5:55].all() and hull.sum() == 30 * 50
    coarse = hull_pixels(mask, step=4)  # on every fourth pixel: the same box to within 4 pixels
    assert coarse.shape == mask.shape and coarse[8:32, 8:52].all()
    assert not coarse[:4].any() and not coarse[:, :4].any() and not coarse[40:].any() and not coarse[:, 56:].any()


def test_collinear_or_too_few_pixels_have_no_hull():
    line = np.zeros((10, 10), bool)
    line[4, 1:9] = True
    assert not hull_pixels(line).any()
    assert not hull_pixels(np.eye(10, dtype=bool)).any()
    assert not hull_pixels(np.zeros((10, 10), bool)).any()
