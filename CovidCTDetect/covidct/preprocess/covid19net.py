"""COVID-19Net's input: lung-ROI crop, non-lung suppression, z-score, resized to 48 × 240 × 360.

COVID-19Net paper: "we used the cubic bounding box of the segmented lung mask to crop lung areas in
CT image, and defined this cubic lung area as lung-ROI" (so that inflammatory tissue the lung
segmentation missed along the lung wall stays in), then "a non-lung area suppression operation to
suppress the intensities of non-lung areas inside the lung-ROI (supplementary methods S4).
Finally, the lung-ROI is standardized by z-score normalization, and resized to the size of
48×240×360". Supplementary S4 is not available; this module implements, and documents, its own,
on the lung mask with each lung's in-plane holes filled
(:func:`covidct.preprocess.canonical.canonical_ct_and_lungs`: a hole left by an organ dome reads as a lesion):

1. lung-ROI: the lung mask's bounding box grown by ``margin_mm`` (5 mm) on every side, clipped to
   the CT, with every slice the lungs touch;
2. HU clipped to ``[fill_hu, 600]`` (−1024 … 600: air to bone, the top of the paper's HU window), so
   metal and padding outside the scanner's field of view cannot dominate the z-score;
3. the ROI resized (edge-aligned trilinear; the mask trilinear then ≥ 0.5) to 48 × 240 × 360;
4. suppression: every voxel farther than ``keep_mm`` (10 mm) from the lung mask, measured in mm on
   the resized grid, is set to ``fill_hu`` (−1024 HU, air). The 10 mm shell keeps lesions along the
   pleura that a segmentation can miss (the paper's reason for the ROI); spine, heart and chest wall
   beyond it become uniform air, with no new intermediate values that could look like lesions
   (attenuating tissue towards air would turn muscle into ground-glass-like −500 HU);
5. z-score over the whole resized ROI: ``(x − mean) / std``; or, where a model card names
   ``hu_mean_std`` (the "z-score" read as the training set's statistics), ``(x − hu_mean) / hu_std``
   with those fixed values, so that the input's HU scale does not depend on how much of the box is
   lung, kept tissue or fill (the per-ROI statistics move with the lung mask and the field of view).

Resizing before suppression and z-score (the paper names resizing last) computes the distance map on
4 million voxels instead of the full-resolution ROI; the two orders differ only by interpolation.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..geometry import ModelGrid, bounding_box, resize_array
from .canonical import canonical_ct_and_lungs
from .window import HU_WINDOW

#: the paper's input size ("resized to the size of 48×240×360"), (z, y, x)
INPUT_SHAPE = (48, 240, 360)
MARGIN_MM = 5.0
KEEP_MM = 10.0
FILL_HU = -1024.0
HU_MAX = HU_WINDOW[1]

INPUT_SPEC = {
    "shape": [1, *INPUT_SHAPE],
    "lung_mask": "each lung's in-plane holes filled",
    "roi": "lung mask bounding box grown by roi_margin_mm",
    "roi_margin_mm": MARGIN_MM,
    "hu_clip": [FILL_HU, HU_MAX],
    "suppression": {"beyond_lungs_mm": KEEP_MM, "fill_hu": FILL_HU},
    "normalisation": "z-score over the resized ROI",
}


def covid19net_input(
    ct: sitk.Image,
    lungs: sitk.Image,
    margin_mm: float = MARGIN_MM,
    keep_mm: float = KEEP_MM,
    fill_hu: float = FILL_HU,
    shape: tuple[int, int, int] = INPUT_SHAPE,
    hu_stats: tuple[float, float] | None = None,
) -> tuple[np.ndarray, ModelGrid]:
    """``(float32 array (1, 48, 240, 360), ModelGrid)`` for COVID-19Net from a CT (HU) and its lung mask.

    ``shape`` is the ``(D, H, W)`` the ROI is resized to: the paper's 48 × 240 × 360 unless a model
    card names another. ``hu_stats``: None for the z-score over the ROI, or ``(mean, sd)`` in HU for a
    z-score with those fixed statistics (a card's ``input.hu_mean_std``).

    Steps and parameters as in the module docstring (all distances in mm). The array is in
    canonical LPS order (slices inferior→superior, rows anterior→posterior, columns right→left) and
    has mean 0 and standard deviation 1 (with ``hu_stats``: about 0 and 1 over a training set whose
    inputs those statistics describe). ``ModelGrid.box`` is the lung-ROI on the canonical CT array;
    :meth:`ModelGrid.to_ct` maps a model-grid array back onto it. Raises
    :class:`~covidct.errors.CTInputError` ("No lungs found ...") when the mask holds no lung voxel.
    """
    canonical, ct_array, lung_array = canonical_ct_and_lungs(ct, lungs, fill_holes=True)
    spacing_zyx = np.array(canonical.GetSpacing()[::-1], dtype=float)
    margin = tuple(int(math.ceil(margin_mm / s)) for s in spacing_zyx)
    box = bounding_box(lung_array, margin)
    grid = ModelGrid(tuple(ct_array.shape), box, tuple(shape))

    roi = np.clip(ct_array[box].astype(np.float32), fill_hu, HU_MAX)
    hu = resize_array(roi, grid.model_shape)
    lung = resize_array(lung_array[box].astype(np.float32), grid.model_shape) >= 0.5
    box_mm = np.array([s.stop - s.start for s in box]) * spacing_zyx
    model_spacing = box_mm / np.array(grid.model_shape)
    if lung.any():
        far = ndimage.distance_transform_edt(~lung, sampling=model_spacing) > keep_mm
        hu[far] = fill_hu
    if hu_stats is not None:
        mean, std = hu_stats
    else:
        mean, std = hu.mean(dtype=np.float64), float(hu.std())
    hu -= mean
    hu /= std if std > 1e-6 else 1.0
    return hu[np.newaxis], grid
