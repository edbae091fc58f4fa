"""Does a chest CT hold the whole lungs? Scans that cut them off, at an end or at the side.

The bundled classifiers were validated on CTs of the whole lungs. A scan can miss part of them in two
ways, and detection warns about each (the probability is still given; what the models see is lungs of
another shape than they were validated on):

* **An end** (:func:`lung_end_warnings`): the first or last slice cuts through the lungs, so the bases or
  the apices are missing.
* **A side** (:func:`lung_side_warnings`): the field of view is narrower than the chest at the lungs'
  level, so the image's edge cuts through a lung. Both lung methods drop in-plane pieces of "lung" that
  touch the slice's border (outside air does), so in the slices where the edge cuts a lung that lung is
  missing from the mask altogether. It is found in the CT: the air (−1100…−400 HU) connected in 3D to
  the lung mask reaches the image's edge. In a whole-lung scan the lungs' air meets no edge: chest wall
  lies between it and the air outside the body. Not found: a lung cut by a reconstructed circle that is
  padded with −1024 HU (air's own value) where the air outside the body is more than twice the lungs'
  (P001 in a 300 mm circle padded so; padded with −3024 HU, as DICOM pixel padding usually is, it is found).

Arrays are canonical ``(z, y, x)`` (:mod:`covidct.geometry`), densities in HU.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: share of the largest axial lung cross-section at or above which lung in a scan's first or last slice
#: means that the scan cuts the lungs off (complete chest CTs of ../shared/data: at most 0.023)
LUNG_CUT_SHARE = 0.15
#: air and lung parenchyma; below it lies the padding some scanners write outside the reconstructed circle
AIR_HU = (-1100.0, -400.0)
#: an air component that touches a slice's corner (air outside the body) still counts as the lungs' when at
#: least this share of it is lung mask: a reconstructed circle padded with air's own value (-1024 HU) that
#: cuts a lung joins the lung to the air outside the body. Outside air joined to the lungs another way (a
#: tracheostomy, a chest drain) is several times the lungs' volume: no warning
LUNG_AIR_SHARE = 0.3
#: in-plane pixel size (mm) the side check reads the CT at (every second pixel of a 0.7 mm CT)
GRID_MM = 1.5


def lung_end_warnings(mask: np.ndarray, model_name: str) -> list[str]:
    """A warning for each end of the scan that cuts the lungs off: lung in the canonical ``mask``'s first
    (inferior) or last (superior) slice covering at least :data:`LUNG_CUT_SHARE` of the largest slice's lung
    area. The classifiers resize the lungs' box to a fixed depth, so a scan that misses the lung bases or
    apices shows them lungs of another shape than the whole lungs they were validated on. ``mask``: a
    non-empty lung labelmap array (any value > 0 is lung)."""
    area = np.count_nonzero(mask, axis=(1, 2))
    warnings = []
    for index, end, part in ((0, "lower", "bases"), (-1, "upper", "apices")):
        share = float(area[index]) / float(area.max())
        if share >= LUNG_CUT_SHARE:
            warnings.append(
                f"The scan's {end} end cuts through the lungs (its {end}most slice holds {100 * share:.0f} % of "
                f"the largest lung cross-section), so the lung {part} may be missing; this model ('{model_name}') "
                "was validated on CTs of the whole lungs: the probability may be less reliable."
            )
    return warnings


def slices_cut_at_the_side(hu: np.ndarray, mask: np.ndarray, spacing_xyz) -> int:
    """How many axial slices of the canonical CT array ``hu`` (HU; voxel size ``spacing_xyz`` mm) have the
    lungs' air reaching the image's in-plane edge (module docstring), within the slices that hold lung of the
    ``mask`` (same shape, > 0 lung). The lungs' air: a 3D component of air (:data:`AIR_HU`) and mask that
    holds mask and either touches no corner of a slice (the air outside the body does) or is at least
    :data:`LUNG_AIR_SHARE` mask. The edge: a slice's first and last row and column, and padding below
    :data:`AIR_HU`. Read on a grid of about :data:`GRID_MM` in plane (every row and column of a coarser CT),
    the first and last row and column kept."""
    levels = np.flatnonzero(np.asarray(mask).any(axis=(1, 2)))
    if levels.size == 0:
        return 0
    step = [max(1, round(GRID_MM / float(s))) for s in (spacing_xyz[1], spacing_xyz[0])]
    rows, columns = (
        np.unique(np.linspace(0, n - 1, (n - 1) // k + 1).round().astype(int))
        for n, k in zip(hu.shape[1:], step, strict=True)
    )
    grid = np.ix_(np.arange(levels[0], levels[-1] + 1), rows, columns)
    values, lung = np.asarray(hu)[grid], np.asarray(mask)[grid] > 0
    pieces, count = ndi.label(((values >= AIR_HU[0]) & (values < AIR_HU[1])) | lung)
    held = np.bincount(pieces[lung], minlength=count + 1)
    at_corner = np.zeros(count + 1, bool)
    at_corner[pieces[:, [0, 0, -1, -1], [0, -1, 0, -1]]] = True
    lungs_air = (held > 0) & (~at_corner | (held >= LUNG_AIR_SHARE * np.bincount(pieces.ravel(), minlength=count + 1)))
    lungs_air[0] = False
    edge = values < AIR_HU[0]
    edge[:, [0, -1], :] = True
    edge[:, :, [0, -1]] = True
    touching = edge & ndi.binary_dilation(lungs_air[pieces], np.ones((1, 3, 3), bool))
    return int(touching.any(axis=(1, 2)).sum())


def lung_side_warnings(hu: np.ndarray, mask: np.ndarray, spacing_xyz, model_name: str) -> list[str]:
    """A warning when the image's edge cuts through the lungs (:func:`slices_cut_at_the_side`); ``hu`` and
    ``mask``: canonical arrays of one CT (voxel size ``spacing_xyz`` mm) and its lung labelmap."""
    cut = slices_cut_at_the_side(hu, mask, spacing_xyz)
    if cut == 0:
        return []
    return [
        f"The image's field of view cuts through the lungs at its side ({cut} slices have lung reaching the "
        "image's edge), so part of the lungs is missing; reconstruct the CT with a field of view that holds the "
        f"whole chest. This model ('{model_name}') was validated on CTs of the whole lungs: the probability may "
        "be less reliable."
    ]
