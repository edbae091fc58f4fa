"""Scans that cut the lungs off at the side (:mod:`covidct.coverage`), on real CTs made narrower.

A field of view narrower than the chest at the lungs' level is common in reconstructions of large
patients; whole-lung CTs must not be flagged (``test_real_cts.py`` also asserts that no real CT of
../shared/data gets any detection warning).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_file

from covidct.coverage import slices_cut_at_the_side
from covidct.geometry import to_canonical
from covidct.io import load_ct
from covidct.lungs import METHODS, segment_lungs

#: P001 (512 x 512, 0.748 mm pixels, a 383 mm field of view) cropped by this many pixels on each side: 323 mm,
#: narrower than its chest at the lungs' widest
CROP_PX = 40
#: diameter (mm) of a reconstructed circle, padded outside with PADDING_HU as scanners write it
CIRCLE_MM, PADDING_HU = 300.0, -3024


@functools.cache
def p001() -> sitk.Image:
    return to_canonical(load_ct(shared_file("covid-ct-md-sample/P001.nii.gz")))


def cut_slices(ct: sitk.Image, method: str) -> int:
    lungs = segment_lungs(ct, method=method)
    return slices_cut_at_the_side(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(lungs), ct.GetSpacing())


@pytest.mark.parametrize("method", METHODS)
def test_whole_lungs_reach_no_edge(method):
    assert cut_slices(p001(), method) == 0
    assert cut_slices(to_canonical(load_ct(shared_file("covid-ct-md-sample/normal001.nii.gz"))), method) == 0


@pytest.mark.parametrize("method", METHODS)
def test_a_field_of_view_narrower_than_the_chest_is_found(method):
    """Measured: the crop 24 (UNet) and 15 (threshold) slices, the circle 68 and 6."""
    ct = p001()
    assert cut_slices(ct[CROP_PX:-CROP_PX, :, :], method) >= 5
    array = sitk.GetArrayFromImage(ct)
    rows, columns = np.indices(array.shape[1:]) - (np.array(array.shape[1:])[:, None, None] - 1) / 2
    array[:, np.hypot(rows, columns) * ct.GetSpacing()[0] > CIRCLE_MM / 2] = PADDING_HU
    circle = sitk.GetImageFromArray(array)
    circle.CopyInformation(ct)
    assert cut_slices(circle, method) >= 5
