"""From a binary lung mask to the final labelmap — the steps both lung methods share.

The threshold method feeds the aerated lung (without the airways); the UNet feeds its thresholded
probability. Then: keep the lungs (the two largest components, the second only if it is at least
``SECOND_LUNG_FRACTION`` of the first — a smaller one is gas in the bowel, not a lung), give each
lung its side (:mod:`.sides`), fill each lung's holes slice by slice (vessels, bronchi, lesions
enclosed by lung), and put back consolidation that touches the costal pleura (:mod:`.pleura`),
then fill holes once more (a bite closed at the pleura can leave a hole behind it).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .morphology import fill_holes_inplane, largest_components
from .pleura import PleuraOptions, fill_pleural_lesions
from .sides import LEFT, RIGHT, label_sides

#: a second component counts as a lung when it is at least this fraction of the largest
SECOND_LUNG_FRACTION = 0.1


def finish_lungs(lung: np.ndarray, hu: np.ndarray, spacing_xyz, pleura: bool = True,
                 options: PleuraOptions = PleuraOptions()) -> np.ndarray:
    """UInt8 labelmap (0, :data:`RIGHT`, :data:`LEFT`) from a boolean lung mask.

    ``lung`` and ``hu`` are canonical ``(z, y, x)`` arrays on one grid (HU for ``hu``);
    ``spacing_xyz`` is that grid's voxel size in mm. Returns zeros when ``lung`` is empty.
    """
    components = largest_components(lung, 2, SECOND_LUNG_FRACTION)
    if not components:
        return np.zeros(lung.shape, np.uint8)
    labels = fill_lung_holes(label_sides(components, spacing_xyz))
    if pleura:
        labels = fill_lung_holes(fill_pleural_lesions(labels, hu, spacing_xyz, options))
    return labels


def fill_lung_holes(labels: np.ndarray) -> np.ndarray:
    """Each lung's in-plane holes filled with its label, inside that lung's bounding box (voxels
    already holding the other lung keep their label)."""
    out = labels.copy()
    for value in (RIGHT, LEFT):
        mask = labels == value
        box = ndi.find_objects(mask.astype(np.uint8))
        if not box or box[0] is None:
            continue
        region = out[box[0]]
        region[fill_holes_inplane(mask[box[0]]) & (region == 0)] = value
    return out
