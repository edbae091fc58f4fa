"""The UNet method's lesion rims (:mod:`covidct.lungs.lesion_rims`) on the real CIP CT and its real
whole-lung mask resampled to ~1.4 mm: a consolidation's outer rim goes back into its lung, a rim of
air or bone does not, the intact mask gains under 1 %, and a grid coarser than the rim adds nothing."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TEST_DATA
from scipy import ndimage as ndi

from covidct.lungs.lesion_rims import LESION_RADIUS_MM, RIM_MM, extend_lesion_rims, in_plane_disc
from covidct.lungs.morphology import INPLANE
from covidct.lungs.pleura import lesion_density

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


def test_rims_found_in_sparse_boxes_equal_the_whole_array_computation(cip_fine):
    """The lesions' dilation and the rims' growth run only around the sparse lesions; the labels are those
    of the same morphology over every voxel (several bites, both lungs)."""
    hu, labels, spacing = cip_fine
    hu = hu.copy()
    right_bite = _bite(labels, spacing)
    hu[right_bite | np.flip(right_bite, axis=2)] = 20.0  # consolidation in both lungs
    trimmed = np.where(ndi.binary_erosion(labels > 0, INPLANE, iterations=2), labels, 0).astype(np.uint8)
    steps = int(RIM_MM / min(spacing[:2]))
    disc = in_plane_disc(max(LESION_RADIUS_MM, *spacing[:2]), spacing)
    expected = trimmed.copy()
    for value in (1, 2):
        mask = trimmed == value
        dense = lesion_density(hu)
        lesions = ndi.binary_dilation(ndi.binary_opening(mask & dense, disc), disc)
        seeds = mask & dense & lesions & ~ndi.binary_erosion(mask, INPLANE)
        grown = ndi.binary_dilation(seeds, INPLANE, iterations=steps, mask=seeds | (dense & ~mask))
        expected[grown & (expected == 0)] = value
    ours = extend_lesion_rims(trimmed, hu, spacing)
    assert (ours != trimmed).sum() > 100
    np.testing.assert_array_equal(ours, expected)


def test_the_unet_finishing_box_gives_the_whole_array_labels(cip_fine):
    """The UNet method finishes its mask inside :func:`finishing_box` (the mask's slices and rows, grown by
    the rims' reach; every column): the labels equal those of the finishing steps on the whole array."""
    from covidct.lungs.postprocess import finish_lungs
    from covidct.lungs.unet_infer import finishing_box

    hu, labels, spacing = cip_fine
    bite = _bite(labels, spacing)
    hu = np.where(bite, 20.0, hu)
    lung = (labels > 0) & ~(bite & (ndi.distance_transform_edt(labels > 0) <= 2))  # the bite's rim left out
    whole = finish_lungs(lung, hu, spacing, pleura=False, rims=True, body_below=False)
    box = finishing_box(lung, spacing)
    assert box[2] == slice(0, lung.shape[2]) and box[1].stop - box[1].start < lung.shape[1]
    boxed = np.zeros(lung.shape, np.uint8)
    boxed[box] = finish_lungs(lung[box], hu[box], spacing, pleura=False, rims=True, body_below=box[0].start > 0)
    assert (whole[bite] > 0).mean() > 0.9
    np.testing.assert_array_equal(boxed, whole)
    assert finishing_box(np.zeros_like(lung), spacing) is None
