"""The concavity fill of the lung methods (:mod:`covidct.lungs.concavity`) on the real CIP CT and its
real whole-lung mask: a bite of consolidation taken out of one lung's surface goes back, with that
lung's label; a bite of air or of bone does not; the intact mask gains only a few per cent."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import TEST_DATA
from covidct.lungs.concavity import fill_concavities

CIP = TEST_DATA / "cip-ct64"
BITE_MM = 15.0


@pytest.fixture(scope="module")
def cip():
    """``(hu, labels, spacing_xyz)``: the CIP CT (LPS, identity direction) and its real mask split into
    1 = right lung (x below the midline) and 2 = left lung."""
    ct = sitk.ReadImage(str(CIP / "ct-64.nrrd"))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(CIP / "wholeLung-64.nrrd"))) > 0
    labels = np.where(np.arange(mask.shape[2]) < mask.shape[2] // 2, 1, 2).astype(np.uint8)[None, None] * mask
    return sitk.GetArrayFromImage(ct).astype(np.float32), labels.astype(np.uint8), ct.GetSpacing()


def _bite(labels: np.ndarray, spacing) -> np.ndarray:
    """A ball of radius :data:`BITE_MM` centred 5 mm inside the right lung's lateral surface, mid-height."""
    right = labels == 1
    z = int(np.mean(np.flatnonzero(right.any(axis=(1, 2)))))
    y = int(np.mean(np.flatnonzero(right[z].any(axis=1))))
    x = int(np.flatnonzero(right[z, y])[0]) + int(round(5.0 / spacing[0]))
    zz, yy, xx = np.indices(labels.shape)
    distance = np.sqrt(((zz - z) * spacing[2]) ** 2 + ((yy - y) * spacing[1]) ** 2 + ((xx - x) * spacing[0]) ** 2)
    return (distance <= BITE_MM) & right


def test_a_bite_of_consolidation_goes_back_into_its_lung(cip):
    hu, labels, spacing = cip
    bite = _bite(labels, spacing)
    bitten_hu = np.where(bite, 20.0, hu)
    bitten = np.where(bite, 0, labels).astype(np.uint8)
    filled = fill_concavities(bitten, bitten_hu, spacing)
    assert bite.sum() > 50
    assert (filled[bite] == 1).mean() >= 0.9
    assert not (filled[bite] == 2).any()


@pytest.mark.parametrize("density", [-1000.0, 700.0])
def test_a_bite_of_air_or_bone_stays_out(cip, density):
    hu, labels, spacing = cip
    bite = _bite(labels, spacing)
    filled = fill_concavities(np.where(bite, 0, labels).astype(np.uint8), np.where(bite, density, hu), spacing)
    assert (filled[bite] == 0).all()


def test_the_intact_lungs_gain_only_a_few_percent(cip):
    hu, labels, spacing = cip
    filled = fill_concavities(labels, hu, spacing)
    assert (filled[labels > 0] == labels[labels > 0]).all()
    gained = np.count_nonzero(filled) / np.count_nonzero(labels) - 1.0
    print(f"concavity fill on the intact CIP mask: +{100 * gained:.1f} % volume")
    assert 0.0 <= gained < 0.05
