"""covidct.geometry on the real CIP CT and lung mask, and on copies with non-identity directions.

A "copy" keeps the voxel values and changes only how they sit in space; reorientation must keep
every voxel at the same physical (LPS) position, and resampling must land on the same positions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import shared_file

from covidct.geometry import (
    ModelGrid,
    area_resize,
    bounding_box,
    from_canonical,
    geometry_from_ijk_to_ras,
    ijk_to_ras_matrix,
    image_from_box,
    lps_to_ras,
    orientation_code,
    ras_to_lps,
    resample_to_reference,
    resize_array,
    set_geometry_from_ijk_to_ras,
    to_canonical,
)

CIP = "cip-copdgene-10002K-ct64"


@pytest.fixture(scope="module")
def ct() -> sitk.Image:
    return sitk.ReadImage(str(shared_file(f"{CIP}/ct-64.nrrd")))


@pytest.fixture(scope="module")
def lungs() -> sitk.Image:
    return sitk.ReadImage(str(shared_file(f"{CIP}/wholeLung-64.nrrd")))


def rotation_z(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def with_direction(image: sitk.Image, direction: np.ndarray) -> sitk.Image:
    """The same voxels placed with another direction matrix (origin kept)."""
    out = sitk.Image(image)
    out.SetDirection(tuple(np.asarray(direction, dtype=float).ravel()))
    return out


def flipped_ras_copy(image: sitk.Image, direction: np.ndarray | None = None) -> sitk.Image:
    """The voxels of ``image`` (given ``direction``, default the identity) stored with x and y reversed, each
    at the same physical point."""
    direction = np.eye(3) if direction is None else direction
    placed = with_direction(image, direction)
    array = sitk.GetArrayFromImage(placed)[:, ::-1, ::-1]
    out = sitk.GetImageFromArray(np.ascontiguousarray(array))
    out.SetSpacing(placed.GetSpacing())
    out.SetDirection(tuple((np.asarray(direction) @ np.diag([-1.0, -1.0, 1.0])).ravel()))
    nx, ny, _ = placed.GetSize()
    out.SetOrigin(placed.TransformIndexToPhysicalPoint((nx - 1, ny - 1, 0)))
    return out


def assert_same_positions(a: sitk.Image, b: sitk.Image, n: int = 200) -> None:
    """Voxels of ``a`` sit exactly on voxels of ``b`` with the same value (random sample)."""
    rng = np.random.default_rng(1)
    array_a, array_b = sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)
    for index in rng.integers(0, a.GetSize(), size=(n, 3)):
        point = a.TransformIndexToPhysicalPoint(tuple(int(v) for v in index))
        continuous = np.array(b.TransformPhysicalPointToContinuousIndex(point))
        nearest = np.rint(continuous).astype(int)
        np.testing.assert_allclose(continuous, nearest, atol=1e-6)
        assert array_a[index[2], index[1], index[0]] == array_b[nearest[2], nearest[1], nearest[0]]


# ---------------------------------------------------------------------------------------------
# resize and the model grid
@pytest.mark.parametrize("shape", [(48, 100, 37), (79, 32, 128), (16, 64, 64)])
def test_resize_array_equals_torch_trilinear_without_corner_alignment(ct, shape):
    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    ours = resize_array(array, shape, order=1)
    theirs = torch.nn.functional.interpolate(
        torch.from_numpy(array)[None, None], size=shape, mode="trilinear", align_corners=False
    )[0, 0].numpy()
    assert ours.dtype == np.float32 and ours.shape == shape
    np.testing.assert_allclose(ours, theirs, atol=1e-2)  # torch computes sample positions in float32


def test_resize_array_nearest_equals_torch_nearest_exact_and_keeps_dtype(lungs):
    mask = sitk.GetArrayFromImage(lungs)
    ours = resize_array(mask, (40, 90, 50), order=0)
    theirs = torch.nn.functional.interpolate(
        torch.from_numpy(mask.astype(np.float32))[None, None], size=(40, 90, 50), mode="nearest-exact"
    )[0, 0].numpy()
    assert ours.dtype == mask.dtype
    np.testing.assert_array_equal(ours, theirs.astype(mask.dtype))


@pytest.mark.parametrize("shape", [(30, 20, 25), (79, 50, 64), (100, 130, 90)])
def test_area_resize_in_slabs_equals_torch_area_of_the_transformed_volume(ct, shape):
    """Windowing and averaging slab by slab, then along z, gives PyTorch's 3D area resize of the whole
    windowed volume (shrinking and growing axes alike, slabs that do not divide the depth)."""
    array = sitk.GetArrayFromImage(ct)  # int16 HU, (79, 64, 64)

    def window(hu):
        return np.clip((hu.astype(np.float32) + 1200.0) / 1800.0, 0.0, 1.0)

    theirs = torch.nn.functional.interpolate(torch.from_numpy(window(array))[None, None], size=shape, mode="area")
    ours = area_resize(array, shape, window, slab=7)
    assert ours.dtype == np.float32 and ours.shape == shape
    np.testing.assert_allclose(ours, theirs[0, 0].numpy(), atol=1e-6)


def test_image_from_box_places_the_box_on_the_reference_grid(ct):
    """The padded box equals a zero array with the box filled in, on the reference image's geometry."""
    reference = sitk.DICOMOrient(ct, "RAS")  # a non-identity direction
    array = sitk.GetArrayFromImage(reference)
    box = (slice(10, 70), slice(5, 60), slice(0, 64))
    image = image_from_box(array[box].astype(np.float32), box, reference)
    expected = np.zeros(array.shape, np.float32)
    expected[box] = array[box]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), expected)
    assert image.GetOrigin() == reference.GetOrigin() and image.GetDirection() == reference.GetDirection()
    assert image.GetSpacing() == reference.GetSpacing()
    with pytest.raises(ValueError, match="does not fit box"):
        image_from_box(array[box], (slice(10, 71), slice(5, 60), slice(0, 64)), reference)
    with pytest.raises(ValueError, match="does not fit box"):
        image_from_box(np.zeros((1, 1, 65)), (slice(0, 1), slice(0, 1), slice(0, 65)), reference)


def test_an_antialiased_model_grid_cannot_pad():
    with pytest.raises(ValueError, match="cannot pad"):
        ModelGrid((10, 20, 20), (slice(0, 10),) * 3, (5, 8, 8), pad=((0, 0), (2, 2), (0, 0)), antialias=True)


def test_model_grid_round_trip_of_the_real_lung_mask(lungs):
    mask = sitk.GetArrayFromImage(lungs)
    box = bounding_box(mask, margin=(2, 3, 3))
    assert box is not None and all(s.start >= 0 for s in box)
    grid = ModelGrid(mask.shape, box, (48, 120, 180))
    back = grid.to_ct(grid.to_model(mask, order=0), order=0)
    outside = np.ones(mask.shape, bool)
    outside[box] = False
    assert back.shape == mask.shape and not back[outside].any()
    dice = 2 * np.logical_and(back > 0, mask > 0).sum() / ((back > 0).sum() + (mask > 0).sum())
    assert dice > 0.97


def test_model_grid_is_exact_when_the_model_shape_is_the_box_shape(ct):
    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    box = (slice(10, 70), slice(5, 60), slice(8, 50))
    grid = ModelGrid(array.shape, box, (60, 55, 42))
    back = grid.to_ct(grid.to_model(array), fill=-2000)
    np.testing.assert_array_equal(back[box], array[box])
    assert (back == -2000).sum() == array.size - 60 * 55 * 42


def test_padded_model_grid_puts_the_padding_around_the_box_and_drops_it_on_the_way_back(ct):
    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    pad = ((0, 0), (10, 11), (20, 19))
    grid = ModelGrid.full(array.shape, (array.shape[0], array.shape[1] + 21, array.shape[2] + 39), pad)
    assert grid.padded_shape == grid.model_shape
    model = grid.to_model(array, fill=-1024)
    assert (model[:, :10] == -1024).all() and (model[:, :, -19:] == -1024).all()
    np.testing.assert_array_equal(model[:, 10:-11, 20:-19], array)
    np.testing.assert_array_equal(grid.to_ct(model), array)
    # resized: a mask still comes back where it was
    mask = (array > -400).astype(np.float32)
    small = ModelGrid.full(array.shape, (array.shape[0], 64, 64), pad)
    back = small.to_ct(small.to_model(mask, order=0), order=0)
    assert back.shape == array.shape
    assert 2 * (back * mask).sum() / (back.sum() + mask.sum()) > 0.95


def test_model_grid_maps_a_linear_field_back_exactly_away_from_the_edges():
    z = np.arange(79, dtype=np.float32)[:, None, None] * np.ones((79, 64, 64), np.float32)
    grid = ModelGrid.full(z.shape, (48, 100, 37))
    model = grid.to_model(z)
    back = grid.to_ct(model)
    np.testing.assert_allclose(model[5:-5, 0, 0], (np.arange(5, 43) + 0.5) * 79 / 48 - 0.5, atol=1e-4)
    np.testing.assert_allclose(back[3:-3], z[3:-3], atol=1e-4)


# ---------------------------------------------------------------------------------------------
# canonical orientation
def test_real_ct_is_already_canonical(ct):
    assert orientation_code(ct) == "LPS"
    assert to_canonical(ct) is ct


def test_flipped_ras_copy_becomes_the_original_again(ct):
    ras = flipped_ras_copy(ct)
    assert orientation_code(ras) == "RAS"
    assert_same_positions(ras, ct)
    canonical = to_canonical(ras)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(canonical), sitk.GetArrayViewFromImage(ct))
    np.testing.assert_allclose(canonical.GetOrigin(), ct.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(canonical.GetDirection(), ct.GetDirection(), atol=1e-9)


def test_permuted_axes_copy_becomes_the_original_again(ct):
    sagittal_first = sitk.PermuteAxes(ct, [2, 0, 1])  # i runs superior, j left, k posterior
    assert orientation_code(sagittal_first) == "SLP"
    assert_same_positions(sagittal_first, ct)
    canonical = to_canonical(sagittal_first)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(canonical), sitk.GetArrayViewFromImage(ct))


@pytest.mark.parametrize("flip", [False, True])
def test_rotated_copy_keeps_physical_positions_through_canonical_and_back(ct, flip):
    rotated = with_direction(ct, rotation_z(30))
    image = flipped_ras_copy(ct, rotation_z(30)) if flip else rotated
    canonical = to_canonical(image)
    assert_same_positions(image, canonical)
    assert_same_positions(image, rotated)
    back = from_canonical(canonical, image)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
    assert back.GetOrigin() == image.GetOrigin() and back.GetDirection() == image.GetDirection()


# ---------------------------------------------------------------------------------------------
# LPS / RAS and Slicer's IJKToRAS
def test_ijk_to_ras_matrix_agrees_with_simpleitk_and_round_trips(ct):
    image = flipped_ras_copy(ct, rotation_z(30))
    matrix = ijk_to_ras_matrix(image)
    rng = np.random.default_rng(2)
    for index in rng.integers(0, image.GetSize(), size=(20, 3)):
        lps = image.TransformIndexToPhysicalPoint(tuple(int(v) for v in index))
        np.testing.assert_allclose((matrix @ np.append(index, 1.0))[:3], lps_to_ras(lps), atol=1e-9)
    origin, spacing, direction = geometry_from_ijk_to_ras(matrix)
    np.testing.assert_allclose(origin, image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(spacing, image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(direction, image.GetDirection(), atol=1e-12)
    blank = set_geometry_from_ijk_to_ras(sitk.Image(image.GetSize(), sitk.sitkUInt8), matrix)
    np.testing.assert_allclose(ijk_to_ras_matrix(blank), matrix, atol=1e-9)
    points = rng.normal(size=(5, 3)) * 100
    np.testing.assert_allclose(ras_to_lps(lps_to_ras(points)), points)
    np.testing.assert_allclose(lps_to_ras(points)[:, :2], -points[:, :2])


# ---------------------------------------------------------------------------------------------
# resampling
def rotated_grid(image: sitk.Image, degrees: float) -> sitk.Image:
    """An empty grid like ``image`` but rotated by ``degrees`` about z around the image centre."""
    size, spacing = np.array(image.GetSize()), np.array(image.GetSpacing())
    direction = rotation_z(degrees) @ np.array(image.GetDirection()).reshape(3, 3)
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2.0)))
    origin = centre - direction @ (spacing * (size - 1) / 2.0)
    grid = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    grid.SetSpacing(tuple(spacing))
    grid.SetDirection(tuple(direction.ravel()))
    grid.SetOrigin(tuple(origin))
    return grid


def test_resample_to_a_grid_rotated_90_degrees_is_an_exact_rotation(lungs):
    reference = rotated_grid(lungs, 90)
    resampled = resample_to_reference(lungs, reference, interpolator="nearest")
    mask = sitk.GetArrayFromImage(lungs)
    # reference voxel (i, j) sits on original voxel (x = 63 - j, y = i)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(resampled), np.flip(mask, 2).transpose(0, 2, 1))
    assert resampled.GetPixelID() == lungs.GetPixelID()


def test_resample_to_a_grid_rotated_30_degrees_lands_on_the_same_physical_points(ct):
    from scipy import ndimage

    image = sitk.Cast(ct, sitk.sitkFloat32)
    reference = rotated_grid(image, 30)
    resampled = sitk.GetArrayFromImage(resample_to_reference(image, reference, default_value=-3000))
    # independent expectation: physical point of each reference voxel, mapped into the CT's index space by numpy
    k, j, i = np.meshgrid(*(np.arange(n) for n in resampled.shape), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()]).astype(float)
    d_ref = np.array(reference.GetDirection()).reshape(3, 3) * np.array(reference.GetSpacing())
    points = np.array(reference.GetOrigin())[:, None] + d_ref @ index
    d_ct = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    continuous = np.linalg.solve(d_ct, points - np.array(image.GetOrigin())[:, None])
    inside = np.all((continuous >= 0) & (continuous <= (np.array(image.GetSize()) - 1)[:, None]), axis=0)
    expected = ndimage.map_coordinates(sitk.GetArrayViewFromImage(image), continuous[::-1], order=1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(resampled.ravel()[inside], expected[inside], atol=0.05)
    outside_far = np.any((continuous < -0.5) | (continuous > (np.array(image.GetSize()) - 0.5)[:, None]), axis=0)
    assert np.all(resampled.ravel()[outside_far] == -3000)
