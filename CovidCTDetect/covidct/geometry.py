"""Image geometry: canonical orientation, resampling, crop boxes, model-grid mapping, LPS/RAS.

Conventions
-----------
* SimpleITK images carry physical geometry in **LPS** millimetres (origin, spacing, direction).
  ``sitk.GetArrayFromImage`` returns arrays indexed ``(z, y, x)`` = ``(k, j, i)``.
* Slicer works in **RAS**: ``RAS = diag(-1, -1, 1) · LPS``. A volume node's ``IJKToRAS`` 4×4 matrix maps
  voxel index ``(i, j, k, 1)`` to RAS millimetres; ``slicer.util.arrayFromVolume`` is also ``(k, j, i)``.
* The **canonical** orientation of this package is LPS axis order: array axis x (i) runs to the
  patient's Left, y (j) to Posterior, z (k) to Superior. Models always see canonical arrays, so a
  file stored as RAS, or flipped, gives the same input once reoriented.
* A :class:`ModelGrid` records how a model's input array was cut and resized from the canonical
  CT array, and maps any model-grid array (a heat map, a mask) back onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

CANONICAL = "LPS"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


# ---------------------------------------------------------------------------------------------
# orientation
def orientation_code(image: sitk.Image) -> str:
    """Three-letter DICOM orientation code of the image axes (i, j, k), e.g. ``"LPS"`` or ``"RAS"``."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def to_canonical(image: sitk.Image) -> sitk.Image:
    """Reorient ``image`` to canonical LPS axis order by permuting/flipping axes (no interpolation).

    Voxel values are unchanged; only their order and the geometry change. An oblique direction
    stays oblique (the closest axis order is chosen).
    """
    if orientation_code(image) == CANONICAL:
        return image
    return sitk.DICOMOrient(image, CANONICAL)


def from_canonical(image: sitk.Image, like: sitk.Image) -> sitk.Image:
    """Inverse of :func:`to_canonical`: bring a canonical ``image`` back to the axis order of ``like``.

    ``image`` must lie on ``to_canonical(like)``'s grid; the result lies exactly on ``like``'s grid
    (same size, origin, spacing and direction), with voxel values only permuted.
    """
    code = orientation_code(like)
    out = image if code == CANONICAL else sitk.DICOMOrient(image, code)
    out.CopyInformation(like)  # removes float round-off in origin/direction from the permutation
    return out


# ---------------------------------------------------------------------------------------------
# resampling and arrays
def resample_to_reference(
    image: sitk.Image, reference: sitk.Image, interpolator: str = "linear", default_value: float = 0.0
) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid (physical space, identity transform).

    ``interpolator`` is ``"linear"`` for intensities or heat maps, ``"nearest"`` for label maps.
    Voxels of the reference that fall outside ``image`` get ``default_value``.
    """
    method = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}[interpolator]
    return sitk.Resample(image, reference, sitk.Transform(), method, default_value, image.GetPixelID())


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when two images share one voxel grid: size, spacing (relative 1e-5), origin (1 µm) and
    direction (1e-5)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-5, atol=1e-6)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-3)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)
    )


def slice_and_pixel_mm(image: sitk.Image) -> tuple[float, float]:
    """``(slice spacing, mean in-plane pixel size)`` in mm: the spacing along the image axis closest to
    the patient's head-foot (z) direction, and the mean of the other two."""
    direction = np.abs(np.array(image.GetDirection(), dtype=float).reshape(3, 3))
    axis = int(np.argmax(direction[2]))
    spacing = np.array(image.GetSpacing(), dtype=float)
    return float(spacing[axis]), float(np.delete(spacing, axis).mean())


def image_from_array(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A SimpleITK image holding ``array`` (indexed z, y, x) with ``like``'s geometry."""
    if tuple(array.shape) != tuple(reversed(like.GetSize())):
        raise ValueError(f"array shape {array.shape} does not match image size {like.GetSize()} (x, y, z)")
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def image_from_box(array: np.ndarray, box: Box, like: sitk.Image) -> sitk.Image:
    """A SimpleITK image with ``like``'s geometry holding ``array`` in ``box`` (``(z, y, x)`` slices of
    ``like``'s array, the shape of ``array``) and 0 elsewhere. ITK pads the box's image to the full size
    (multi-threaded), so no full-size array is made in NumPy (whose large allocations can stall on huge-page
    compaction)."""
    size = tuple(reversed(like.GetSize()))
    outside = any(s.stop > n for s, n in zip(box, size, strict=True))
    if outside or tuple(array.shape) != tuple(s.stop - s.start for s in box):
        raise ValueError(f"array shape {array.shape} does not fit box {box} of an image of size {like.GetSize()}")
    lower = [s.start for s in reversed(box)]
    upper = [n - s.stop for s, n in zip(reversed(box), like.GetSize(), strict=True)]
    image = sitk.ConstantPad(sitk.GetImageFromArray(array), lower, upper, 0.0)
    image.CopyInformation(like)
    return image


def resize_array(array: np.ndarray, shape: tuple[int, ...], order: int = 1) -> np.ndarray:
    """Resize a 3D array ``(z, y, x)`` to ``shape``, voxel edges aligned (no corner alignment).

    ``order=1``: separable trilinear interpolation with edge clamping, identical (to float
    round-off) to ``torch.nn.functional.interpolate(mode="trilinear", align_corners=False)``;
    returns float32. ``order=0``: nearest voxel centre, keeps the dtype (for label maps).
    Output voxel ``o`` along an axis samples input position ``(o + 0.5) * n_in / n_out - 0.5``.
    """
    array = np.asarray(array)
    if array.ndim != 3 or len(shape) != 3:
        raise ValueError("resize_array expects a 3D array and a 3D target shape")
    result = array if order == 0 else array.astype(np.float32, copy=False)
    for axis, n_out in enumerate(shape):
        n_in = result.shape[axis]
        if n_in == n_out:
            continue
        centres = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        if order == 0:
            index = np.clip(np.floor(centres + 0.5).astype(int), 0, n_in - 1)
            result = np.take(result, index, axis=axis)
            continue
        centres = np.clip(centres, 0, n_in - 1)
        lo = np.floor(centres).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        weight_shape = [1, 1, 1]
        weight_shape[axis] = n_out
        w = (centres - lo).astype(np.float32).reshape(weight_shape)
        low = np.take(result, lo, axis=axis)
        result = low + (np.take(result, hi, axis=axis) - low) * w
    return result.copy() if result is array else result


def area_resize(array: np.ndarray, shape: tuple[int, int, int], transform=None, slab: int = 8) -> np.ndarray:
    """Resize a 3D array ``(z, y, x)`` to ``shape`` by averaging the input voxels each output voxel
    covers (PyTorch's ``interpolate(mode="area")``, an adaptive average pooling; an axis that grows
    repeats voxels). Returns float32.

    ``transform``: a voxel-wise function applied first (e.g. an HU window). The average over a box is
    the average over z of in-plane averages, so the work goes ``slab`` slices at a time (transform,
    in-plane average) and then along z: no float32 copy of the whole input is made.
    """
    import torch
    from torch.nn import functional as F

    depth, rows, columns = (int(n) for n in shape)
    planes = np.empty((array.shape[0], rows, columns), np.float32)
    with torch.inference_mode():
        for start in range(0, array.shape[0], slab):
            part = array[start : start + slab]
            part = torch.from_numpy(np.ascontiguousarray(part if transform is None else transform(part), np.float32))
            planes[start : start + slab] = F.adaptive_avg_pool2d(part, (rows, columns)).numpy()
        along_z = torch.from_numpy(planes.reshape(len(planes), -1).T.copy())[None]  # (1, rows * columns, z)
        return F.adaptive_avg_pool1d(along_z, depth)[0].T.reshape(depth, rows, columns).numpy().copy()


# ---------------------------------------------------------------------------------------------
# crop boxes and the model grid
Box = tuple[slice, slice, slice]


def bounding_box(mask: np.ndarray, margin: tuple[int, int, int] = (0, 0, 0)) -> Box | None:
    """Smallest box ``(z, y, x)`` slices holding every non-zero voxel of a 3D array, grown by ``margin``
    voxels and clipped to the array; ``None`` when the mask is empty.

    Found from the mask's projections (two passes over it, no voxel index lists)."""
    present = np.asarray(mask, dtype=bool)
    plane = present.any(axis=0)
    hits = (
        np.flatnonzero(present.any(axis=(1, 2))),
        np.flatnonzero(plane.any(axis=1)),
        np.flatnonzero(plane.any(axis=0)),
    )
    if hits[0].size == 0:
        return None
    return tuple(
        slice(max(int(hit[0]) - m, 0), min(int(hit[-1]) + 1 + m, n))
        for hit, m, n in zip(hits, margin, present.shape, strict=True)
    )


@dataclass(frozen=True)
class ModelGrid:
    """How a model input was made from a canonical CT array, and the way back.

    ``ct_shape``: canonical CT array shape ``(z, y, x)``; ``box``: the ``(z, y, x)`` slices cut from it;
    ``pad``: voxels added before and after the box along each axis, ``((z0, z1), (y0, y1), (x0, x1))``
    (the lung UNet pads small fields of view with air); ``model_shape``: the ``(D, H, W)`` the padded
    box was resized to; ``antialias``: :meth:`to_model` averages the voxels each model cell covers
    (area resize: noise and reconstruction-kernel texture are averaged away alike on every scanner)
    instead of sampling them (trilinear). :meth:`to_model` applies the cut, pad and resize to any
    array on the CT grid; :meth:`to_ct` maps a model-grid array back (trilinear resize to the padded
    box, drop the pad, place in a CT-sized array filled with ``fill``).
    """

    ct_shape: tuple[int, int, int]
    box: Box
    model_shape: tuple[int, int, int]
    pad: tuple[tuple[int, int], ...] = ((0, 0), (0, 0), (0, 0))
    antialias: bool = False

    def __post_init__(self):
        if self.antialias and any(before or after for before, after in self.pad):
            raise ValueError("an antialiased ModelGrid cannot pad its box (the area resize reads the box only)")

    @classmethod
    def full(cls, ct_shape, model_shape, pad=((0, 0), (0, 0), (0, 0))) -> ModelGrid:
        """The whole CT array (padded by ``pad``) resized to ``model_shape``."""
        return cls(
            tuple(ct_shape),
            tuple(slice(0, n) for n in ct_shape),
            tuple(model_shape),
            tuple(tuple(int(v) for v in p) for p in pad),
        )

    @property
    def padded_shape(self) -> tuple[int, int, int]:
        """Shape of the padded box (what is resized to ``model_shape``)."""
        return tuple(s.stop - s.start + before + after for s, (before, after) in zip(self.box, self.pad, strict=True))

    def to_model(self, array: np.ndarray, order: int = 1, fill: float = 0.0, transform=None) -> np.ndarray:
        """Cut the box from a CT-grid array, apply ``transform`` (a voxel-wise function, e.g. an HU window:
        only the box is computed), pad it with ``fill`` and resize it to ``model_shape`` (``order`` 1:
        trilinear, or the area average when :attr:`antialias` (no pad then), float32; 0: nearest)."""
        cut = np.asarray(array)[self.box]
        if self.antialias and order == 1:
            return area_resize(cut, self.model_shape, transform)
        if transform is not None:
            cut = transform(cut)
        if any(before or after for before, after in self.pad):
            cut = np.pad(cut, self.pad, constant_values=fill)
        return resize_array(cut, self.model_shape, order)

    def unpad(self, array: np.ndarray) -> np.ndarray:
        """The box's part of an array on the padded box's grid (the trailing three axes)."""
        inner = tuple(slice(before, n - after) for (before, after), n in zip(self.pad, array.shape[-3:], strict=True))
        return array[(Ellipsis, *inner)]

    def to_box(self, array: np.ndarray, order: int = 1) -> np.ndarray:
        """Map an array that tiles the padded box at any resolution (``model_shape``, or the coarser cells
        of a class-activation map) back onto the box's part of the canonical CT grid (float32, the box's
        shape): resize to the padded box (``order`` 1: PyTorch's trilinear with ``align_corners=False``,
        :func:`resize_array`'s geometry computed about twice as fast; 0: nearest), drop the pad."""
        array = np.asarray(array, dtype=np.float32)
        if order == 0:
            return self.unpad(resize_array(array, self.padded_shape, 0))
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(array))[None, None]
            resized = torch.nn.functional.interpolate(
                tensor, size=self.padded_shape, mode="trilinear", align_corners=False
            )
        return self.unpad(resized[0, 0].numpy())

    def to_ct(self, array: np.ndarray, order: int = 1, fill: float = 0.0) -> np.ndarray:
        """Map a ``model_shape`` array back onto the canonical CT grid (float32, ``fill`` outside the box)."""
        out = np.zeros(self.ct_shape, np.float32) if fill == 0 else np.full(self.ct_shape, fill, np.float32)
        out[self.box] = self.to_box(array, order)
        return out


# ---------------------------------------------------------------------------------------------
# LPS <-> RAS and Slicer's IJKToRAS
def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """Convert points ``(..., 3)`` from LPS to RAS millimetres (negate x and y)."""
    return np.asarray(points, dtype=float) * np.array([-1.0, -1.0, 1.0])


def ras_to_lps(points: np.ndarray) -> np.ndarray:
    """Convert points ``(..., 3)`` from RAS to LPS millimetres (negate x and y)."""
    return lps_to_ras(points)


def ijk_to_ras_matrix(image: sitk.Image) -> np.ndarray:
    """Slicer's 4×4 ``IJKToRAS`` matrix for a SimpleITK image's geometry."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = LPS_TO_RAS @ np.array(image.GetOrigin(), dtype=float)
    return matrix


def geometry_from_ijk_to_ras(matrix: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """``(origin, spacing, direction)`` in SimpleITK's LPS convention from an ``IJKToRAS`` matrix.

    Inverse of :func:`ijk_to_ras_matrix`; ``direction`` is the flattened row-major 3×3 matrix.
    """
    matrix = np.asarray(matrix, dtype=float)
    lps = LPS_TO_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / spacing
    origin = LPS_TO_RAS @ matrix[:3, 3]
    return tuple(origin), tuple(spacing), tuple(direction.ravel())


def set_geometry_from_ijk_to_ras(image: sitk.Image, matrix: np.ndarray) -> sitk.Image:
    """Give ``image`` (in place, also returned) the geometry of a Slicer ``IJKToRAS`` matrix."""
    origin, spacing, direction = geometry_from_ijk_to_ras(matrix)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image
