"""Fat trim: thick fat in a lung mask that goes on outside it is mediastinal, pericardial or extrapleural fat.

Lung, even when consolidated or ground glass, is not of fat density in bulk: aerated lung is −950…−700
HU, ground glass −700…−300 HU, consolidation 0…+60 HU, and the band between them at a lesion's edge is a
few millimetres thin. The fat beside the lung is thick: the pericardial fat pad at the cardiophrenic
angle, the fat of the anterior mediastinum and the aortopulmonary window, and the extrapleural fat under
the ribs. A lung UNet at about 2.8 mm per input pixel draws the pleura a pixel or two into such fat,
and more of it where the tissue next to the fat is bright (the heart and vessels of a contrast-enhanced
CT), and it fills the concave corners where the fat pad sits.

The trim takes out of the mask its **thick fat that touches fat outside the mask**. Fat: voxels whose HU,
after an in-plane Gaussian of :data:`FAT_SIGMA_MM`, lies in :data:`FAT_HU`. Thick: covered by a ball of
radius :data:`FAT_RADIUS_MM` (in mm on the grid's own spacing, :func:`ball`) of fat centred inside the
mask. Each 3D connected piece of the mask's thick fat goes when a voxel of it touches fat outside the
mask. A piece of fat density that does not reach the mask's edge (a fat-containing lesion such as a
hamartoma) stays; so does the lung's edge where one voxel of partial volume reads as fat next to the
chest wall's fat (no ball centred inside the mask fits there).

Arrays are canonical ``(z, y, x)`` (z towards the head); ``spacing_xyz`` is the voxel size in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..geometry import bounding_box

#: HU range of fat (adipose tissue), after the in-plane smoothing
FAT_HU = (-190.0, -30.0)
#: in-plane Gaussian sigma (mm) applied before the fat range is tested (noise of a sharp or low-dose CT)
FAT_SIGMA_MM = 1.0
#: radius (mm) of the ball a fat piece must hold (the opening): thicker than a lesion's edge
FAT_RADIUS_MM = 3.0


def ball(radius_mm: float, spacing_xyz) -> np.ndarray:
    """Boolean ``(z, y, x)`` structuring element: the voxel centres within ``radius_mm`` of the centre on a grid
    of voxel size ``spacing_xyz`` (mm); one slice thick where the slices are thicker than ``radius_mm``, and in
    plane at least the centre's four neighbours where the pixels are larger than it (on a coarse grid a
    single voxel of partial volume at the lung's edge is no piece of fat)."""
    spacing_zyx = [float(s) for s in reversed(spacing_xyz)]
    reach = [int(radius_mm / spacing_zyx[0])] + [max(1, int(radius_mm / s)) for s in spacing_zyx[1:]]
    axes = np.ogrid[tuple(slice(-r, r + 1) for r in reach)]
    distance2 = sum((a * s) ** 2 for a, s in zip(axes, spacing_zyx, strict=True))
    return distance2 <= max(radius_mm, *spacing_zyx[1:]) ** 2 * (1.0 + 1e-9)  # the neighbours' own rounding


def outside_fat(mask: np.ndarray, hu: np.ndarray, spacing_xyz) -> np.ndarray:
    """Boolean ``(z, y, x)``: the voxels of the boolean lung ``mask`` that belong to thick fat pieces going on
    outside it (module docstring); ``hu`` in HU on the mask's grid."""
    cut = np.zeros(mask.shape, bool)
    structure = ball(FAT_RADIUS_MM, spacing_xyz)
    box = bounding_box(mask, tuple(r + 1 for r in structure.shape))
    if box is None:
        return cut
    sigma = (0.0, FAT_SIGMA_MM / float(spacing_xyz[1]), FAT_SIGMA_MM / float(spacing_xyz[0]))
    smooth = ndi.gaussian_filter(np.asarray(hu[box], np.float32), sigma)
    fat = (smooth > FAT_HU[0]) & (smooth < FAT_HU[1])
    inside = mask[box]
    thick = ndi.binary_dilation(ndi.binary_erosion(fat, structure) & inside, structure) & inside
    pieces, count = ndi.label(thick)
    if count == 0:
        return cut
    touching = np.unique(pieces[thick & ndi.binary_dilation(fat & ~inside)])
    cut[box] = np.isin(pieces, touching[touching > 0])
    return cut
