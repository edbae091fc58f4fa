"""Putting back the outer rim of a dense lesion that a lung mask holds only in part.

The UNet (:mod:`covidct.lungs.unet_infer`) is trained with consolidation inserted at the pleura of
real lungs and holds most of it, but at about 2.8 mm per input pixel (160-pixel slices over at least 450 mm) it can
leave a lesion's outer rim — against the chest wall, the mediastinum or the diaphragm — outside the
mask. :func:`extend_lesion_rims` grows each lung, in-plane, by up to :data:`RIM_MM` into tissue of
lesion density wherever a lesion reaches the mask's surface: a dense region inside the mask that holds
an in-plane disc of radius :data:`LESION_RADIUS_MM` (consolidation; vessels and partial-volume edges
are thinner). A normal lung's surface gains under 1 % (``Testing/test_lesion_rims.py``); on a grid
coarser than :data:`RIM_MM` (the 4 mm CIP CT) nothing is added.

Nothing wider is filled: a fill of each lung's concave corners would also take in the surface of the
heart, liver dome, stomach and spleen that lies there (organ inside "lung" on real normal CTs is
what ``Testing/benchmarks/real_ct_yardstick.py`` measures).

Arrays are canonical ``(z, y, x)``; spacing is ``(x, y, z)`` in mm; labels 1/2 are kept per lung.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..geometry import bounding_box
from .morphology import INPLANE
from .pleura import lesion_density
from .sides import grow_each_lung

#: how far (mm) a lung grows, in-plane, from a lesion at its surface into tissue of lesion density
RIM_MM = 3.0
#: a dense region inside a lung counts as a lesion where it holds an in-plane disc of this radius (mm)
LESION_RADIUS_MM = 3.0


def extend_lesion_rims(labels: np.ndarray, hu: np.ndarray, spacing_xyz, rim_mm: float = RIM_MM) -> np.ndarray:
    """``labels`` (uint8 ``(z, y, x)``, 0/1/2) with each lung grown in-plane by up to ``rim_mm`` into tissue
    of lesion density, starting from the surface voxels of the lesions inside it.

    A lesion is a region of lesion density inside the lung that holds an in-plane disc of radius
    :data:`LESION_RADIUS_MM` (at least one voxel); its voxels on the lung's in-plane surface grow, by
    4-connected steps of one voxel, through background voxels of lesion density. ``rim_mm`` is
    rounded down to whole voxels of the finer in-plane spacing; ``hu``: the CT on the same grid (HU);
    ``spacing_xyz``: voxel size (x, y, z) in mm.
    """
    pixel_mm = min(float(spacing_xyz[0]), float(spacing_xyz[1]))
    steps = int(rim_mm / pixel_mm)
    if steps == 0:
        return labels
    disc = in_plane_disc(max(LESION_RADIUS_MM, float(spacing_xyz[0]), float(spacing_xyz[1])), spacing_xyz)
    reach = (0, disc.shape[1] // 2, disc.shape[2] // 2)

    def rims(mask: np.ndarray, box) -> np.ndarray:
        dense = lesion_density(hu[box])
        cores = ndi.binary_opening(mask & dense, disc)
        lesions = _within_reach(cores, reach, lambda x, _: ndi.binary_dilation(x, disc))
        seeds = mask & dense & lesions & ~ndi.binary_erosion(mask, INPLANE)
        room = seeds | (dense & ~mask)
        grown = _within_reach(
            seeds, (0, steps, steps), lambda x, at: ndi.binary_dilation(x, INPLANE, iterations=steps, mask=room[at])
        )
        return grown & ~mask

    return grow_each_lung(labels, rims, margin=(0, steps, steps))


def _within_reach(mask: np.ndarray, reach, grow) -> np.ndarray:
    """``grow(mask)`` computed inside the bounding box of ``mask`` widened by ``reach`` voxels ``(z, y, x)``
    (how far ``grow`` can spread, so the result is the same as on the whole array; a lesion mask is
    sparse); ``grow`` takes the box's part of the mask and the box (a tuple of slices of ``mask``)."""
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask, reach)
    if box is not None:
        out[box] = grow(mask[box], box)
    return out


def in_plane_disc(radius_mm: float, spacing_xyz) -> np.ndarray:
    """A ``(1, Y, X)`` boolean structuring element: the voxels of one slice within ``radius_mm`` of its centre."""
    sy, sx = float(spacing_xyz[1]), float(spacing_xyz[0])
    ny, nx = int(radius_mm / sy), int(radius_mm / sx)
    rows, columns = np.ogrid[-ny : ny + 1, -nx : nx + 1]
    return ((rows * sy) ** 2 + (columns * sx) ** 2 <= radius_mm**2)[None]
