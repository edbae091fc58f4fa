"""The UNet method's lesion rims (:mod:`covidct.lungs.lesion_rims`) on the real CIP CT and its real
whole-lung mask resampled to ~1.4 mm: a consolidation's outer rim goes back into its lung, a rim of
air or bone does not, the intact mask gains under 1 %, and a grid coarser than the rim adds nothing."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TEST_DATA
from scipy import ndimage as ndi

from covidct.lungs.lesion_rims import RIM_MM, extend_lesion_rims

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


def _volume_gained(grown: np.ndarray, labels: np.ndarray) -> float:
    """Volume ``grown`` adds to ``labels``, as a fraction; every voxel of ``labels``' lungs must keep its label."""
    assert (grown[labels > 0] == labels[labels > 0]).all()
    return np.count_nonzero(grown) / np.count_nonzero(labels) - 1.0


@pytest.fixture(scope="module")
def cip_fine(cip):
    """:func:`cip` resampled to a third of its in-plane voxel size (about 1.4 mm, the lung methods'
    working grid for a full-resolution CT): CT linear, labels nearest neighbour."""
    hu, labels, spacing = cip
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing(spacing)
    size = [3 * ct.GetSize()[0], 3 * ct.GetSize()[1], ct.GetSize()[2]]
    fine = [spacing[0] * ct.GetSize()[0] / size[0], spacing[1] * ct.GetSize()[1] / size[1], spacing[2]]
    origin = [-(spacing[i] - fine[i]) / 2.0 for i in range(2)] + [0.0]  # the same field of view
    images = []
    for array, interpolator in ((hu, sitk.sitkLinear), (labels, sitk.sitkNearestNeighbor)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        images.append(sitk.GetArrayFromImage(sitk.Resample(image, size, sitk.Transform(), interpolator, origin, fine)))
    return images[0].astype(np.float32), images[1].astype(np.uint8), tuple(fine)


def test_the_rim_of_a_lesion_at_the_chest_wall_goes_back(cip_fine):
    """A consolidation whose core is inside the mask but whose outer 2.5 mm (against the chest wall) is
    not: the rim goes back into its lung."""
    hu, labels, spacing = cip_fine
    bite = _bite(labels, spacing)
    outside = ndi.distance_transform_edt(labels > 0, sampling=(spacing[2], spacing[1], spacing[0]))
    rim = bite & (outside <= 2.5)
    grown = extend_lesion_rims(np.where(rim, 0, labels).astype(np.uint8), np.where(bite, 20.0, hu), spacing)
    print(f"rim of a consolidation: {100 * (grown[rim] == 1).mean():.1f} % back ({rim.sum()} voxels)")
    assert rim.sum() > 100
    assert (grown[rim] == 1).mean() >= 0.9
    assert not (grown[rim] == 2).any()


@pytest.mark.parametrize("density", [-1000.0, 700.0])
def test_a_rim_of_air_or_bone_stays_out(cip_fine, density):
    """The same bite, its core consolidation but its rim air (outside the lung) or bone: nothing grows there."""
    hu, labels, spacing = cip_fine
    bite = _bite(labels, spacing)
    outside = ndi.distance_transform_edt(labels > 0, sampling=(spacing[2], spacing[1], spacing[0]))
    rim = bite & (outside <= 2.5)
    grown = extend_lesion_rims(
        np.where(rim, 0, labels).astype(np.uint8), np.where(rim, density, np.where(bite, 20.0, hu)), spacing
    )
    assert (grown[rim] == 0).all()


def test_rims_leave_lungs_without_lesions_nearly_alone(cip_fine):
    """Vessels and partial volume at the surface of intact lungs are thinner than a lesion: little grows."""
    hu, labels, spacing = cip_fine
    gained = _volume_gained(extend_lesion_rims(labels, hu, spacing), labels)
    print(f"lesion rims on the intact CIP mask at {spacing[0]:.2f} mm: +{100 * gained:.2f} % volume")
    assert gained < 0.01


def test_rims_need_voxels_finer_than_the_rim(cip):
    """On the 4 mm CIP grid one voxel is wider than :data:`RIM_MM`: nothing is added."""
    hu, labels, spacing = cip
    assert spacing[0] > RIM_MM
    assert np.array_equal(extend_lesion_rims(labels, hu, spacing), labels)
