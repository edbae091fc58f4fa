"""Is this a 3D chest CT in Hounsfield units? One :class:`~covidct.errors.CTInputError` sentence per problem.

Two stages, so that a bad or huge file is refused before its voxels are read:

* :func:`check_header` — from the header only (size, spacing, components, bytes per voxel): not 3D,
  a colour/vector image, fewer than :data:`MIN_SLICES` slices, absurd spacing, too large for memory.
* :func:`check_values` — from the voxels: NaN/Inf, a single value, a label map, values that are not
  Hounsfield units (an MR, PET, or a CT saved without its rescale intercept), noise without anatomy.

:func:`validate_ct` runs both on an image already in memory. Value checks use at most
:data:`SAMPLE_VOXELS` voxels (a regular stride through the volume), so they take well under a second.

Lung masks, segmented here or given by the user, are checked too: :func:`check_lung_mask_values`
(a labelmap of 0/1 or 0/1/2, not a heat map or a CT) and :func:`check_lungs` (each lung's volume
plausible: no lungs, a single lung or 12 L of "lung" in noise are refused).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from .errors import CTInputError
from .memory import GB, available_memory_bytes

MIN_SLICES = 16  #: fewest slices (and pixels per row/column) accepted
MIN_SPACING_MM = 0.1  #: smallest plausible voxel spacing on any axis
MAX_SPACING_MM = 20.0  #: largest plausible voxel spacing on any axis
WORK_BYTES_PER_VOXEL = 4  #: one float32 working copy per voxel, on top of the image as read
AIR_MAX_HU = -500.0  #: the 1st percentile of a chest CT (air, lung) lies below this
HIGH_MAX_HU = 4000.0  #: the 99th percentile of a CT (bone at most) lies below this
LABEL_MAX_VALUES = 128  #: integer images with at most this many distinct values are label maps
SAMPLE_VOXELS = 500_000  #: voxels sampled for the value checks
#: a CT's neighbouring voxels differ (median) by far less than its spread of values (interquartile
#: range); above this ratio the image is noise without anatomy (uniform noise: about 0.6; real CTs < 0.05)
MAX_ROUGHNESS = 0.25
ROUGHNESS_SLICES = 4  #: evenly spaced whole slices the roughness is measured in
#: plausible volume of one lung, in litres
LUNG_LITRES = (0.3, 5.0)


def check_header(
    size: Sequence[int], spacing: Sequence[float], components: int, bytes_per_component: int, source: str
) -> None:
    """Refuse, from header facts alone, an image that cannot be a 3D CT or cannot fit in memory.

    ``size`` and ``spacing`` are per axis (x, y, z[, t]) in voxels and millimetres; ``source`` names
    the input in the message.
    """
    size = tuple(int(n) for n in size)
    if len(size) == 2 or (len(size) == 3 and size[2] == 1):
        raise CTInputError(
            f"'{source}' is a 2D image ({size[0]}×{size[1]} pixels); covidct needs a 3D chest CT "
            "volume (a whole DICOM series or a 3D NIfTI, NRRD or MHA file)."
        )
    if len(size) != 3:
        raise CTInputError(
            f"'{source}' is a {len(size)}D image ({'×'.join(map(str, size))}); covidct needs a single "
            "3D CT volume, so extract one time point or channel first."
        )
    if components != 1:
        raise CTInputError(
            f"'{source}' has {components} values per voxel (a colour or vector image); covidct needs "
            "a CT with one Hounsfield value per voxel."
        )
    if size[2] < MIN_SLICES:
        raise CTInputError(
            f"'{source}' has only {size[2]} slices (fewer than {MIN_SLICES} slices, too few for a "
            "chest CT); load the complete CT series or volume."
        )
    if min(size[:2]) < MIN_SLICES:
        raise CTInputError(
            f"'{source}' has only {size[0]}×{size[1]} pixels per slice (fewer than {MIN_SLICES} in "
            "a row or column); load the full-resolution CT."
        )
    spacing = tuple(float(s) for s in spacing[:3])
    if not all(math.isfinite(s) and MIN_SPACING_MM <= s <= MAX_SPACING_MM for s in spacing):
        shown = "×".join(f"{s:.4g}" for s in spacing)
        raise CTInputError(
            f"'{source}' has an implausible voxel spacing of {shown} mm (expected {MIN_SPACING_MM:g} "
            f"to {MAX_SPACING_MM:g} mm on every axis); correct the spacing in the file's header."
        )
    check_memory(size, components, bytes_per_component, source)


def check_memory(size: Sequence[int], components: int, bytes_per_component: int, source: str) -> None:
    """Refuse an image whose voxels (as read, plus a float32 working copy) exceed the available memory."""
    voxels = math.prod(int(n) for n in size) * components
    needed = voxels * (bytes_per_component + WORK_BYTES_PER_VOXEL)
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise CTInputError(
            f"'{source}' needs about {needed / GB:.1f} GB of memory ({'×'.join(map(str, size))} "
            f"voxels) but only {available / GB:.1f} GB is available; crop or downsample it, "
            "or use a machine with more memory."
        )


def check_values(image: sitk.Image, source: str) -> None:
    """Refuse an image whose voxel values are not those of a CT in Hounsfield units."""
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f":
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise CTInputError(
                f"'{source}' contains {bad} NaN or infinite voxel values; replace them "
                "(for example with -1024 HU) and save the CT again."
            )
    sample = _sample(array)
    low, high = sample.min(), sample.max()
    if low == high and array.min() == array.max():
        raise CTInputError(
            f"'{source}' holds the same value ({float(low):g}) in every voxel; it is empty or damaged, not a CT."
        )
    if array.dtype.kind in "iu" or np.array_equal(sample, np.rint(sample)):
        distinct = np.unique(sample)
        if distinct.size <= LABEL_MAX_VALUES and low >= 0:
            raise CTInputError(
                f"'{source}' looks like a label map or segmentation (only {distinct.size} distinct "
                f"values, from {float(low):g} to {float(high):g}), not a CT in Hounsfield units; "
                "load the CT image itself."
            )
    p1, p99 = np.percentile(sample, [1, 99])
    if p1 > AIR_MAX_HU or p99 > HIGH_MAX_HU:
        raise CTInputError(
            f"'{source}' does not hold Hounsfield units (1st percentile {p1:g}, 99th percentile "
            f"{p99:g}, whereas a chest CT has air near -1000 HU and little above 3000 HU), so it "
            "may be an MR or PET image or a CT saved without its rescale intercept; load a CT in HU."
        )
    ratio = roughness(array, sample)
    if ratio > MAX_ROUGHNESS:
        raise CTInputError(
            f"'{source}' looks like noise, not a CT: neighbouring voxels differ by {ratio:.2f} of the image's "
            f"range of values (a CT's organs and air are smooth regions, below {MAX_ROUGHNESS:g}); load the CT "
            "image itself."
        )


def roughness(array: np.ndarray, sample: np.ndarray | None = None) -> float:
    """Median absolute difference of neighbouring voxels along x (in up to :data:`ROUGHNESS_SLICES` whole
    slices) divided by the interquartile range of the values (of ``sample``, default a subsample of
    ``array``); 0 for a constant image. Smooth anatomy gives small values, noise large ones."""
    sample = _sample(array) if sample is None else sample
    q1, q3 = np.percentile(sample, [25, 75])
    if q3 <= q1:
        return 0.0
    ks = np.unique(np.linspace(0, array.shape[0] - 1, min(ROUGHNESS_SLICES, array.shape[0])).astype(int))
    planes = np.asarray(array[ks], dtype=np.float32)
    return float(np.median(np.abs(np.diff(planes, axis=-1)))) / float(q3 - q1)


def check_lung_mask_values(mask: sitk.Image, source: str) -> None:
    """Refuse a lung mask that is not a labelmap of 0/1 (lung) or 0/1/2 (right, left lung): a heat map
    or probability map (fractional values), a CT, a multi-label segmentation, a 2D or vector image."""
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise CTInputError(
            f"The lung mask '{source}' is not a 3D labelmap; give a lung labelmap volume made from this CT "
            "(0 = background, 1 = lung, or 1 = right and 2 = left lung)."
        )
    values = np.unique(sitk.GetArrayViewFromImage(mask))
    if not np.array_equal(values, np.rint(values)):
        raise CTInputError(
            f"The lung mask '{source}' holds fractional values ({values.size} distinct values from "
            f"{float(values.min()):g} to {float(values.max()):g}), so it is a probability or heat map, not a "
            "labelmap; give a labelmap with 0 = background and 1 = lung (or 1 and 2 for the right and left lung)."
        )
    if not set(values.tolist()) <= {0, 1, 2}:
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if values.size > 6 else "")
        raise CTInputError(
            f"The lung mask '{source}' holds the values {shown}, not 0 and 1 (lung) or 0, 1 and 2 (right, left "
            "lung); give a lung labelmap (a CT, or a segmentation with other labels, is not one)."
        )


def check_lungs(labels: sitk.Image, source: str, what: str = "segmented lungs") -> None:
    """Refuse lungs whose volume is implausible.

    ``labels``: a 0/1/2 labelmap (1 = right, 2 = left lung: each lung must hold :data:`LUNG_LITRES`
    litres, so a single lung found is refused too) or a 0/1 mask (both lungs together: twice that
    range). ``source`` names the CT, ``what`` the lungs (``"segmented lungs"`` or ``"given lung
    mask"``) in the one-sentence :class:`CTInputError`.
    """
    array = sitk.GetArrayViewFromImage(labels)
    counts = np.array([0, np.count_nonzero(array == 1), np.count_nonzero(array == 2)])  # no int64 copy
    litres = counts * float(np.prod(labels.GetSpacing())) / 1e6
    low, high = LUNG_LITRES
    advice = (
        "check that it is a chest CT in Hounsfield units with both lungs in view"
        if what == "segmented lungs"
        else "give the lung mask made from this CT"
    )
    if counts[1:].sum() == 0:
        raise CTInputError(f"No lungs were found in '{source}', so there is nothing to analyse; {advice}.")
    if counts[2] == 0:  # one label: both lungs together
        total = float(litres[1])
        if not 2 * low <= total <= 2 * high:
            raise CTInputError(
                f"The {what} of '{source}' hold {total:.2f} L, outside the {2 * low:g}-{2 * high:g} L of two "
                f"real lungs; {advice}."
            )
        return
    for value, side in ((1, "right"), (2, "left")):
        if not low <= litres[value] <= high:
            raise CTInputError(
                f"The {side} lung of the {what} of '{source}' holds {litres[value]:.2f} L, outside the "
                f"{low:g}-{high:g} L of a real lung; {advice}."
            )


def validate_ct(image: sitk.Image, source: str) -> None:
    """Run :func:`check_header` and :func:`check_values` on an image in memory (e.g. from Slicer)."""
    check_header(
        image.GetSize(),
        image.GetSpacing(),
        image.GetNumberOfComponentsPerPixel(),
        bytes_per_component(image.GetPixelID()),
        source,
    )
    check_values(image, source)


def hu_percentiles(image: sitk.Image, percentiles: Sequence[float], max_voxels: int | None = None) -> np.ndarray:
    """Percentiles (linear interpolation) of the voxel values; over a regular subsample of at most
    ``max_voxels`` voxels when given, else over every voxel."""
    array = sitk.GetArrayViewFromImage(image)
    values = _sample(array, max_voxels) if max_voxels else array
    return np.percentile(values, list(percentiles))


def bytes_per_component(pixel_id: int) -> int:
    """Bytes of one voxel component for a SimpleITK pixel type (8 when unknown)."""
    return _PIXEL_BYTES.get(pixel_id, 8)


def _sample(array: np.ndarray, max_voxels: int = SAMPLE_VOXELS) -> np.ndarray:
    flat = array.reshape(-1)
    step = max(1, flat.size // max_voxels)
    return flat[::step]


_PIXEL_BYTES = {
    sitk.sitkUInt8: 1,
    sitk.sitkInt8: 1,
    sitk.sitkUInt16: 2,
    sitk.sitkInt16: 2,
    sitk.sitkUInt32: 4,
    sitk.sitkInt32: 4,
    sitk.sitkUInt64: 8,
    sitk.sitkInt64: 8,
    sitk.sitkFloat32: 4,
    sitk.sitkFloat64: 8,
    sitk.sitkVectorUInt8: 1,
    sitk.sitkVectorInt8: 1,
    sitk.sitkVectorUInt16: 2,
    sitk.sitkVectorInt16: 2,
    sitk.sitkVectorUInt32: 4,
    sitk.sitkVectorInt32: 4,
    sitk.sitkVectorFloat32: 4,
    sitk.sitkVectorFloat64: 8,
    sitk.sitkLabelUInt8: 1,
    sitk.sitkLabelUInt16: 2,
    sitk.sitkLabelUInt32: 4,
}
