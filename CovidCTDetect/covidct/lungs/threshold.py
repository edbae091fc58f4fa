"""Unsupervised lung segmentation by thresholding: the DeCoVNet paper's source of training labels.

Steps, on the working grid (:mod:`.grid`, ~1.5 mm in-plane) of the canonical CT:

1. **Air**: voxels below ``AIR_HU`` (−400 HU, midway between aerated lung, about −850, and soft
   tissue; ground-glass opacity, −750…−300, mostly stays in).
2. **Outside air** removed: in-plane air components touching the slice border (air around the
   body, under the table). It is done per slice because the trachea leaves the top of the scan.
3. **Airway tree + lungs**: the largest remaining 3D component (lungs joined through the bronchi);
   bowel gas and small pockets are separate and dropped.
4. **Trachea and main bronchi** removed (:mod:`.airways`), which separates the two lungs.
5. The shared finishing steps (:mod:`.postprocess`): lungs = the two largest components, left/right
   labels by patient side, holes filled slice by slice (vessels, enclosed lesions), consolidation
   touching the costal pleura put back (:mod:`.pleura`).
6. Labels repeated back onto the full CT grid.

Everything after step 3 runs inside the bounding box of the airway tree. Stage timings go to
``progress`` as ``stage("lungs", done, total, step=...)`` events.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import CTInputError
from ..geometry import bounding_box
from . import grid
from .airways import find_airways
from .morphology import largest_components, remove_inplane_border
from .postprocess import finish_lungs

#: voxels below this density (HU) are air
AIR_HU = -400.0
#: an airway tree smaller than this (ml) means the CT shows no lungs
MIN_LUNG_ML = 50.0
#: margin (mm) kept around the airway tree's bounding box for the pleural lesions put back
BOX_MARGIN_MM = 15.0
STEPS = ("threshold", "airways", "finish", "expand")


def threshold_labels(ct: sitk.Image, progress=None) -> np.ndarray:
    """Lung labelmap ``(z, y, x)`` uint8 (0, 1 = right, 2 = left) of a **canonical** CT image (HU).

    ``ct`` must already be in canonical orientation (:func:`covidct.geometry.to_canonical`); the
    result lies on its grid. Raises :class:`CTInputError` when no lungs are found.
    """
    _report(progress, 0)
    factor = grid.shrink_factor(ct.GetSpacing())
    small = grid.shrink(ct, factor)
    spacing = small.GetSpacing()
    hu = sitk.GetArrayViewFromImage(small)
    tree, labels2d = air_tree(hu, spacing)
    margin = tuple(int(np.ceil(BOX_MARGIN_MM / s)) for s in (spacing[2], spacing[1], spacing[0]))
    box = bounding_box(tree, margin)
    tree, labels2d, hu_box = tree[box], labels2d[box], np.asarray(hu[box])
    _report(progress, 1)
    airways = find_airways(tree, labels2d, hu_box, spacing)
    _report(progress, 2)
    labels_box = finish_lungs(tree & ~airways, hu_box, spacing, pleura=True, rims=False, body_below=box[0].start > 0)
    _report(progress, 3)
    labels = np.zeros(hu.shape, np.uint8)
    labels[box] = labels_box
    full = grid.expand(labels, factor, tuple(reversed(ct.GetSize())))
    _report(progress, 4)
    return full


def air_tree(hu: np.ndarray, spacing_xyz) -> tuple[np.ndarray, np.ndarray]:
    """``(tree, labels2d)`` of a working-grid HU array ``(z, y, x)``: the lungs and airways as the largest
    3D component of air (< :data:`AIR_HU`) not connected, within its slice, to the slice border, and the
    in-plane labelling of that air (what :func:`covidct.lungs.airways.find_airways` follows).

    Raises :class:`CTInputError` when that component is smaller than :data:`MIN_LUNG_ML`.
    """
    inner, labels2d, _ = remove_inplane_border(hu < AIR_HU)
    components = largest_components(inner, 1)
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    if not components or components[0].sum() * voxel_ml < MIN_LUNG_ML:
        raise CTInputError(
            "No air-filled lungs were found in this CT; check that it is a chest CT in "
            "Hounsfield units that shows the lungs."
        )
    return components[0], labels2d


def extrapulmonary_airways(hu: np.ndarray, spacing_xyz) -> np.ndarray:
    """Boolean mask of the trachea and main bronchi of a working-grid HU array ``(z, y, x)``
    (:func:`air_tree`, then :func:`covidct.lungs.airways.find_airways` inside the tree's bounding box)."""
    tree, labels2d = air_tree(hu, spacing_xyz)
    box = bounding_box(tree)
    airways = np.zeros(tree.shape, bool)
    airways[box] = find_airways(tree[box], labels2d[box], np.asarray(hu[box]), spacing_xyz)
    return airways


def _report(progress, done: int) -> None:
    if progress is not None:
        progress.stage("lungs", done, len(STEPS), step=STEPS[done] if done < len(STEPS) else "done")
