"""The CT and its lung mask as canonical arrays, the common first step of every model input."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import CTInputError
from ..geometry import resample_to_reference, same_grid, to_canonical


def canonical_ct_and_lungs(
    ct: sitk.Image, lungs: sitk.Image, fill_holes: bool = False
) -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    """``(canonical CT image, its array (z, y, x) in HU, lung array (z, y, x) bool)``.

    The CT array is a read-only view of the returned image's voxels (no copy): keep the image
    while the array is used.

    ``lungs`` is any labelmap (non-zero = lung), normally on the CT's grid; a mask on another grid
    is resampled onto the CT (nearest neighbour) first. Both are reoriented to canonical LPS order
    (:func:`covidct.geometry.to_canonical`), so an LPS file and its RAS copy give the same arrays.

    ``fill_holes``: each lung's in-plane holes count as lung (:func:`covidct.lungs.postprocess.holes_filled`),
    as in the masks this package's classifiers are trained with. The organ caps of
    :mod:`covidct.lungs.organ_caps` leave a hole where a dome of the liver, stomach or spleen rises into
    the lung; read as a hole, it drew heat on a normal CT (the bundled DeCoVNet's hottest voxel on
    normal001 0.91 at the liver dome, 0.22 with the hole filled, ``Testing/test_real_cts.py``).
    Raises :class:`CTInputError` when the mask holds no lung voxel.
    """
    if ct.GetDimension() != 3 or lungs.GetDimension() != 3:
        raise CTInputError("The CT and its lung mask must both be 3D images; load a CT volume, not a single slice.")
    if not same_grid(ct, lungs):
        lungs = resample_to_reference(lungs, ct, "nearest")
    canonical = to_canonical(ct)
    canonical_lungs = to_canonical(lungs)  # keep a reference: the array view does not hold the image alive
    if fill_holes:
        from ..lungs.postprocess import holes_filled

        lung_array = holes_filled(sitk.GetArrayViewFromImage(canonical_lungs))
    else:
        lung_array = sitk.GetArrayViewFromImage(canonical_lungs) > 0
    if not lung_array.any():
        raise CTInputError(
            "No lungs found in the lung mask of this CT; check that the image is a chest CT "
            "in Hounsfield units, or supply a lung mask."
        )
    return canonical, sitk.GetArrayViewFromImage(canonical), lung_array
