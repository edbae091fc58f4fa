"""From a binary lung mask to the final labelmap — the steps both lung methods share.

The threshold method feeds the aerated lung (without the airways); the UNet feeds its thresholded
probability. Then: keep the lungs (the two largest components, the second only if it is at least
``SECOND_LUNG_FRACTION`` of the first — a smaller one is gas in the bowel, not a lung), give each
lung its side (:mod:`.sides`), fill each lung's holes slice by slice (vessels, bronchi, lesions
enclosed by lung) but take out the organ caps (the domes of the organs under the diaphragm cut across
by a slice, :mod:`.organ_caps`), put back consolidation that touches the costal pleura (:mod:`.pleura`, the
threshold method) or the outer rims of the lesions the mask holds (:mod:`.lesion_rims`, the UNet
method), then fill holes once more (a bite closed at the pleura can leave a hole behind it).
"""

from __future__ import annotations

import numpy as np

from .lesion_rims import extend_lesion_rims
from .morphology import inplane_holes, largest_components
from .organ_caps import lung_caps
from .pleura import PleuraOptions, fill_pleural_lesions
from .sides import grow_each_lung, label_sides

#: a second component counts as a lung when it is at least this fraction of the largest
SECOND_LUNG_FRACTION = 0.1


def finish_lungs(
    lung: np.ndarray,
    hu: np.ndarray,
    spacing_xyz,
    *,
    pleura: bool,
    rims: bool,
    body_below: bool,
    options: PleuraOptions = PleuraOptions(),
) -> np.ndarray:
    """UInt8 labelmap (0, right lung 1, left lung 2: :mod:`.sides`) from a boolean lung mask.

    ``lung`` and ``hu`` are canonical ``(z, y, x)`` arrays on one grid (HU for ``hu``);
    ``spacing_xyz`` is that grid's voxel size in mm. ``pleura``: the costal lesion fill;
    ``rims``: the lesions' rims (:func:`.lesion_rims.extend_lesion_rims`); ``body_below``: the CT goes on
    below the arrays' first slice (:func:`.organ_caps.lung_caps`). Returns zeros when ``lung`` is empty.
    """
    components = largest_components(lung, 2, SECOND_LUNG_FRACTION)
    if not components:
        return np.zeros(lung.shape, np.uint8)
    labels = label_sides(components, spacing_xyz)
    caps = lung_caps(labels, hu, spacing_xyz, body_below)
    labels = fill_lung_holes(labels, caps)
    if pleura:
        labels = fill_pleural_lesions(labels, hu, spacing_xyz, options)
    if rims:
        labels = extend_lesion_rims(labels, hu, spacing_xyz)
    return fill_lung_holes(labels, caps) if pleura or rims else labels


def fill_lung_holes(labels: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Each lung's in-plane holes filled with its label inside that lung's bounding box (voxels holding
    the other lung keep their label), then the organ caps ``caps`` (boolean, :func:`.organ_caps.lung_caps`
    of the lungs before any filling) set to background. Arrays are ``(z, y, x)`` on one grid."""
    out = grow_each_lung(labels, lambda mask, box: inplane_holes(mask) & ~caps[box])
    out[caps] = 0
    return out
