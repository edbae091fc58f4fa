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
from .organ_caps import organ_caps
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
    below the arrays' first slice (:func:`fill_lung_holes`). Returns zeros when ``lung`` is empty.
    """
    components = largest_components(lung, 2, SECOND_LUNG_FRACTION)
    if not components:
        return np.zeros(lung.shape, np.uint8)
    labels, caps = fill_lung_holes(label_sides(components, spacing_xyz), hu, spacing_xyz, body_below)
    if pleura:
        labels = fill_pleural_lesions(labels, hu, spacing_xyz, options)
    if rims:
        labels = extend_lesion_rims(labels, hu, spacing_xyz)
    return fill_lung_holes(labels, hu, spacing_xyz, body_below, caps)[0] if pleura or rims else labels


def fill_lung_holes(
    labels: np.ndarray, hu: np.ndarray, spacing_xyz, body_below: bool, caps: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, caps)``: each lung's in-plane holes filled with its label inside that lung's bounding box
    (voxels holding the other lung keep their label), and the organ caps set to background.

    ``labels`` (uint8, 0 / right 1 / left 2) and ``hu`` (HU) share one canonical ``(z, y, x)`` grid of voxel
    size ``spacing_xyz`` mm. ``caps``: boolean, those an earlier call found (kept out again once lesions
    were put back); None: found now in each lung and its holes (:func:`.organ_caps.organ_caps`), with the
    body below a lung when its box starts above the arrays' first slice or ``body_below`` (the CT goes on
    below that slice).
    """
    found = np.zeros(labels.shape, bool) if caps is None else caps

    def holes_outside_caps(mask: np.ndarray, box) -> np.ndarray:
        holes = inplane_holes(mask)
        if caps is None:
            found[box] |= organ_caps(mask, holes, hu[box], spacing_xyz, body_below or box[0].start > 0)
        return holes & ~found[box]

    out = grow_each_lung(labels, holes_outside_caps)
    out[found] = 0
    return out, found


def holes_filled(labels: np.ndarray) -> np.ndarray:
    """Boolean ``(z, y, x)``: the lungs of a canonical labelmap with each lung's in-plane holes filled.

    ``labels``: 1 right and 2 left lung (a 0/1 mask is one lung; other non-zero values count as lung,
    unfilled). What fills a hole is the lung that rings it in its slice, so the mediastinum between
    two lungs stays out; an organ cap (:mod:`.organ_caps`) ringed by one lung comes back in. The
    classifiers read their lung input this way (:func:`covidct.preprocess.canonical.canonical_ct_and_lungs`).
    """
    return grow_each_lung(labels, lambda mask, _box: inplane_holes(mask)) > 0
