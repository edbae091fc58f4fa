"""Validation of images in memory: each problem gives its own one-sentence CTInputError.

The images are the real CIP CT (and its real lung mask) changed in one respect each.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_file

from covidct.errors import CTInputError
from covidct.memory import available_memory_bytes
from covidct.validate import check_memory, hu_percentiles, validate_ct

CIP = "cip-copdgene-10002K-ct64"


@pytest.fixture(scope="module")
def ct() -> sitk.Image:
    return sitk.ReadImage(str(shared_file(f"{CIP}/ct-64.nrrd")))


def _with_array(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def _refused(image: sitk.Image, pattern: str) -> str:
    with pytest.raises(CTInputError, match=pattern) as info:
        validate_ct(image, "case")
    message = str(info.value)
    assert "\n" not in message and message.startswith("'case'") and message.endswith(".")
    return message


def test_real_ct_is_accepted(ct):
    validate_ct(ct, "ct-64.nrrd")


def test_label_map_is_refused():
    mask = sitk.ReadImage(str(shared_file(f"{CIP}/wholeLung-64.nrrd")))
    assert "only 2 distinct values" in _refused(mask, "looks like a label map")


def test_multi_label_map_is_refused():
    labels = sitk.ReadImage(str(shared_file(f"{CIP}/lm-64.nrrd")))  # airway/vessel/lung-region codes up to 782
    _refused(labels, "looks like a label map")


def test_mr_like_values_are_refused(ct):
    # an MR-like volume: air 0, tissue about 1800, bright up to 4000 (positive signal intensities)
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    mr = np.clip((hu + 1000) * 1.8, 0, 4000).astype(np.int16)
    _refused(_with_array(mr, ct), "does not hold Hounsfield units")


def test_ct_without_rescale_intercept_is_refused(ct):
    stored = (sitk.GetArrayFromImage(ct).astype(np.int32) + 1024).astype(np.uint16)
    assert "1st percentile 24" in _refused(_with_array(stored, ct), "does not hold Hounsfield units")


def test_nan_and_inf_are_refused(ct):
    values = sitk.GetArrayFromImage(ct).astype(np.float32)
    values[10, 20, 30:33] = np.nan
    values[11, 0, 0] = np.inf
    assert "contains 4 NaN or infinite" in _refused(_with_array(values, ct), "NaN or infinite")


def test_constant_image_is_refused(ct):
    _refused(_with_array(np.full((79, 64, 64), -1024, np.int16), ct), "same value")


def test_2d_image_is_refused(ct):
    _refused(ct[:, :, 40], "is a 2D image")
    _refused(ct[:, :, 40:41], "is a 2D image")  # one slice


def test_4d_image_is_refused(ct):
    _refused(sitk.JoinSeries([ct, ct]), "is a 4D image")


def test_vector_image_is_refused(ct):
    _refused(sitk.Compose(ct, ct, ct), "3 values per voxel")


def test_fewer_than_16_slices_are_refused(ct):
    assert "only 15 slices" in _refused(ct[:, :, :15], "fewer than 16 slices")
    validate_ct(ct[:, :, :16], "case")


def test_too_few_pixels_per_slice_are_refused(ct):
    _refused(ct[:10, :, :], "only 10×64 pixels per slice")


@pytest.mark.parametrize("spacing", [(0.05, 4.17, 3.99), (4.17, 4.17, 25.0), (4.17, float("nan"), 3.99)])
def test_absurd_spacing_is_refused(ct, spacing):
    odd = sitk.Image(ct)
    odd.SetSpacing(spacing)
    _refused(odd, "implausible voxel spacing")


def test_volume_too_large_for_memory_is_refused_with_its_size():
    import re

    available = available_memory_bytes()
    assert available is not None and available > 0  # Linux: MemAvailable, lowered to any cgroup limit
    side = int((1.1 * available / 6) ** (1 / 3)) + 1  # 2 bytes as read + 4 bytes float32 work per voxel
    pattern = rf"needs about [0-9.]+ GB of memory \({side}×{side}×{side} voxels\)"
    with pytest.raises(CTInputError, match=pattern) as info:
        check_memory((side, side, side), 1, 2, "case")
    needed, free = map(float, re.findall(r"([0-9.]+) GB", str(info.value)))
    assert needed > free
    check_memory((512, 512, 148), 1, 2, "case")  # a clinical CT fits


def test_hu_percentiles_match_numpy(ct):
    array = sitk.GetArrayViewFromImage(ct)
    np.testing.assert_allclose(hu_percentiles(ct, [1, 50, 99]), np.percentile(array, [1, 50, 99]))
    sampled = hu_percentiles(ct, [1, 50, 99], max_voxels=20_000)  # every 16th voxel of 323 584
    np.testing.assert_allclose(sampled, np.percentile(array.reshape(-1)[::16], [1, 50, 99]))
