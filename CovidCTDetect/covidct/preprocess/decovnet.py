"""DeCoVNet's input: the CT and its lung mask, resized in-plane to 224 × 336, every slice kept.

DeCoVNet paper, "Preprocessing of DeCoVNet": "the CT volume was concatenated with the mask volume
to obtain a CT-Mask volume. Finally, the CT-Mask volume was resampled into a fixed spatial
resolution (e.g., 224 × 336) without changing the number of slices". The CT channel is the paper's
HU window (−1200…600 HU → 0…1, :func:`covidct.preprocess.window.hu_window`), the mask channel is
0/1. The whole canonical field of view is used (the paper's text names no crop); the authors'
released scripts also cropped to the lung bounding box, which this function does not do.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..geometry import ModelGrid
from .canonical import canonical_ct_and_lungs
from .window import HU_WINDOW, hu_window

#: the paper's in-plane size ("resampled into a fixed spatial resolution (e.g., 224 × 336)"), (y, x)
INPUT_HW = (224, 336)
INPUT_SPEC = {
    "shape": [2, "T", INPUT_HW[0], INPUT_HW[1]],
    "channels": ["CT, HU window -1200..600 HU mapped to 0..1", "lung mask 0/1"],
    "hu_window": list(HU_WINDOW),
    "slices": "every CT slice, canonical LPS order (inferior to superior); in-plane resize only",
}


def decovnet_input(ct: sitk.Image, lungs: sitk.Image,
                   size: tuple[int, int] = INPUT_HW) -> tuple[np.ndarray, ModelGrid]:
    """``(float32 array (2, T, 224, 336), ModelGrid)`` for DeCoVNet from a CT (HU) and its lung mask.

    ``size`` is the in-plane ``(H, W)``: the paper's 224 × 336 unless a model card names another
    (a model trained at a smaller size for a CPU, see :func:`covidct.preprocess.model_input`).

    ``T`` is the CT's number of slices along the canonical z (inferior→superior) axis; rows run
    anterior→posterior and columns right→left (canonical LPS). The :class:`ModelGrid` maps the whole
    canonical CT array ``(T, Y, X)`` to ``(T, 224, 336)`` and back (:meth:`ModelGrid.to_ct`), e.g. for
    heat maps. Raises :class:`~covidct.errors.CTInputError` when the mask holds no lung voxel.
    """
    _, ct_array, lung_array = canonical_ct_and_lungs(ct, lungs)
    grid = ModelGrid.full(ct_array.shape, (ct_array.shape[0], *size))
    out = np.empty((2, *grid.model_shape), dtype=np.float32)
    out[0] = grid.to_model(hu_window(ct_array))
    out[1] = grid.to_model(lung_array, order=0)
    return out, grid
