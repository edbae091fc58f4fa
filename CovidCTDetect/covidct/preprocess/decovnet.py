"""DeCoVNet's input: the CT and its lung mask, resized in-plane to 224 × 336, every slice kept.

DeCoVNet paper, "Preprocessing of DeCoVNet": "the CT volume was concatenated with the mask volume
to obtain a CT-Mask volume. Finally, the CT-Mask volume was resampled into a fixed spatial
resolution (e.g., 224 × 336) without changing the number of slices". The CT channel is the paper's
HU window (−1200…600 HU → 0…1, :func:`covidct.preprocess.window.hu_window`), the mask channel is
0/1, each lung's in-plane holes filled (:func:`covidct.preprocess.canonical.canonical_ct_and_lungs`:
a hole left by an organ dome reads as a lesion). By default the whole canonical field of view is
used (the paper's text names no crop). With ``crop="lung_box"`` every slice is first cropped
in-plane to the lung mask's bounding box grown by ``MARGIN_MM`` (the authors' released scripts also
cropped to the lungs' box): the network then sees the lungs at a resolution that does not depend on
the scanner's field of view, and less of the body around them. A model card names the crop in its
``input`` spec (``"crop": "lung_box"``).
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from ..errors import UsageError
from ..geometry import ModelGrid, bounding_box
from .canonical import canonical_ct_and_lungs
from .window import HU_WINDOW, hu_window

#: the paper's in-plane size ("resampled into a fixed spatial resolution (e.g., 224 × 336)"), (y, x)
INPUT_HW = (224, 336)
INPUT_SPEC = {
    "shape": [2, "T", INPUT_HW[0], INPUT_HW[1]],
    "channels": ["CT, HU window -1200..600 HU mapped to 0..1", "lung mask 0/1, each lung's in-plane holes filled"],
    "hu_window": list(HU_WINDOW),
    "slices": "every CT slice, canonical LPS order (inferior to superior); no resampling along z",
}
#: in-plane crops :func:`decovnet_input` knows: None (whole field of view) or the lungs' box
CROPS = (None, "lung_box")
#: margin (mm) around the lung mask's in-plane bounding box for ``crop="lung_box"``
MARGIN_MM = 10.0


def decovnet_input(
    ct: sitk.Image,
    lungs: sitk.Image,
    size: tuple[int, int] = INPUT_HW,
    crop: str | None = None,
    slice_mm: float | None = None,
    antialias: bool = False,
) -> tuple[np.ndarray, ModelGrid]:
    """``(float32 array (2, T, 224, 336), ModelGrid)`` for DeCoVNet from a CT (HU) and its lung mask.

    ``size`` is the in-plane ``(H, W)``: the paper's 224 × 336 unless a model card names another
    (a model trained at a smaller size for a CPU, see :func:`covidct.preprocess.model_input`).
    ``crop``: None (the whole field of view) or ``"lung_box"`` (every slice cut to the lungs' in-plane
    bounding box grown by ``MARGIN_MM`` mm, see the module docstring). ``slice_mm``: None keeps every
    slice (the paper), else the volume is resized along z to slices of about ``slice_mm`` mm, so that
    ``T`` depends on the chest's length, not on the scanner's slice spacing. ``antialias``: average
    the voxels each input cell covers (area resize; both channels, so the mask channel holds each
    cell's lung fraction) instead of sampling them (trilinear CT, nearest-neighbour mask).

    ``T`` is the CT's number of slices along the canonical z (inferior→superior) axis (or the
    resampled count); rows run anterior→posterior and columns right→left (canonical LPS). The
    :class:`ModelGrid` maps the whole canonical CT array ``(T, Y, X)`` (or its lung box) to
    ``(T, 224, 336)`` and back (:meth:`ModelGrid.to_ct`), e.g. for heat maps. Raises
    :class:`~covidct.errors.CTInputError` when the mask holds no lung voxel,
    :class:`~covidct.errors.UsageError` for an unknown ``crop``.
    """
    if crop not in CROPS:
        raise UsageError(f"Unknown DeCoVNet input crop '{crop}'; use 'lung_box', or None for the whole field of view.")
    canonical, ct_array, lung_array = canonical_ct_and_lungs(ct, lungs, fill_holes=True)
    depth = ct_array.shape[0]
    if slice_mm:
        depth = max(1, int(round(depth * canonical.GetSpacing()[2] / float(slice_mm))))
    model_shape = (depth, *size)
    if crop == "lung_box":
        spacing_yx = canonical.GetSpacing()[1::-1]
        margin = (0, *(int(math.ceil(MARGIN_MM / s)) for s in spacing_yx))
        _, rows, columns = bounding_box(lung_array, margin)
        box = (slice(0, ct_array.shape[0]), rows, columns)
        grid = ModelGrid(tuple(ct_array.shape), box, model_shape, antialias=bool(antialias))
    else:
        grid = ModelGrid(
            tuple(ct_array.shape), tuple(slice(0, n) for n in ct_array.shape), model_shape, antialias=bool(antialias)
        )
    out = np.empty((2, *grid.model_shape), dtype=np.float32)
    out[0] = grid.to_model(ct_array, transform=hu_window)
    # antialias: each cell's lung fraction (the area resize reads the mask a slab at a time); else nearest
    out[1] = grid.to_model(lung_array, order=1 if antialias else 0)
    return out, grid
