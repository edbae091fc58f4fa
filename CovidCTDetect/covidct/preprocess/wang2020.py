"""The COVID-19Net authors' own preprocessing (Wang et al. 2020, released code), for their released weights.

Their ``RefineLungBox.extractLungArea`` (``ERSCOVIDTest/lungSegmentation/lungSegNet4seg19Conv.py``)
and their test generator, step by step, on the canonical CT array ``(z, y, x)`` in HU:

1. the first and last slice are dropped (their lung model segments slices 1 … n−2, each with its
   two neighbours as channels), HU below −1024 set to −1024;
2. the lung mask (theirs: an FPN with a DenseNet-121 encoder at 256 × 256; **here the package's lung
   mask stands in for it**, a documented difference) is binarised at 0.5; slices are used where the
   lung area is at least 3 % of the largest slice's, and so are both neighbours (the first and last
   slice need only their one neighbour), from the first such slice to the last;
3. the CT is cropped to those slices and to the mask's in-plane bounding box (over all slices);
4. non-lung suppression: values above the crop's 95th percentile are clipped to it; inside the lung
   (mask > 0.2) the CT is kept, outside it is clipped to the lung's mean ± 4 standard deviations;
5. cubic zoom (``scipy.ndimage.zoom``, order 3) to 48 × 240 × 360, clipped to the crop's range;
6. z-score over the whole volume (their generator: ``(x − mean) / std``).

Orientation: their arrays came from ``.mat`` files whose axis order is not documented; canonical LPS
order (slices inferior → superior, rows anterior → posterior, columns right → left) is assumed.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import CTInputError
from ..geometry import ModelGrid
from .canonical import canonical_ct_and_lungs

#: the network's input (D, H, W)
SHAPE = (48, 240, 360)
#: a slice is used where its lung area is at least this share of the largest slice's
LUNG_AREA_SHARE = 0.03
INPUT = {
    "pipeline": "wang2020",
    "shape": [1, *SHAPE],
    "channels": ["lung-ROI crop of the CT (HU), non-lung suppression, cubic zoom, z-score over the volume"],
    "slices": "the authors' lung-area slice selection (first and last slice dropped, lung area >= 3 % of the largest)",
}


def wang2020_input(ct: sitk.Image, lungs: sitk.Image) -> tuple[np.ndarray, ModelGrid]:
    """``(float32 array (1, 48, 240, 360), ModelGrid)``: the authors' COVID-19Net input for a CT (HU) and
    its lung mask (any labelmap, non-zero = lung), per the module docstring. The grid maps the crop
    box of the canonical CT back (heat maps). Raises :class:`CTInputError` when the lungs are too
    small to crop (their rule: under 3 slices or 60 pixels)."""
    canonical, ct_array, lung_array = canonical_ct_and_lungs(ct, lungs)  # the image holds the array view
    image = np.maximum(ct_array[1:-1].astype(np.float32), -1024.0)
    mask = lung_array[1:-1]
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    share = area / max(float(area.max()), 1.0)
    ok = share >= LUNG_AREA_SHARE
    used = [i for i in range(ok.size) if ok[i] and ok[max(i - 1, 0)] and ok[min(i + 1, ok.size - 1)]]
    ys, xs = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
    if not used or ys.size == 0:
        raise CTInputError("The lungs of this CT are too small for COVID-19Net's lung-area crop; check the lung mask.")
    z0, z1 = used[0], used[-1] + 1
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    if z1 - z0 < 3 or y1 - y0 < 60 or x1 - x0 < 60:
        raise CTInputError("The lungs of this CT are too small for COVID-19Net's lung-area crop; check the lung mask.")
    crop = image[z0:z1, y0:y1, x0:x1]
    lung = mask[z0:z1, y0:y1, x0:x1]
    crop = np.minimum(crop, np.percentile(crop, 95))
    values = crop[lung]
    mean, std = float(values.mean()), float(values.std())
    crop = np.where(lung, crop, np.clip(crop, mean - 4 * std, mean + 4 * std))
    low, high = float(crop.min()), float(crop.max())
    zoomed = ndi.zoom(crop, tuple(t / n for t, n in zip(SHAPE, crop.shape, strict=True)), order=3)
    zoomed = np.clip(zoomed, low, high)
    zoomed = (zoomed - zoomed.mean()) / max(float(zoomed.std()), 1e-6)
    box = (slice(z0 + 1, z1 + 1), slice(y0, y1), slice(x0, x1))
    return zoomed[None].astype(np.float32), ModelGrid(tuple(ct_array.shape), box, SHAPE)
