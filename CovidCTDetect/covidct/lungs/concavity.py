"""Putting dense lesions that touch the pleura back into a lung mask: each lung's concavities filled.

A lesion that touches the pleura — costal, mediastinal or diaphragmatic — and that a mask left out
is a bite out of that lung's surface: a pocket of non-lung, open towards the chest wall, the heart or
the liver dome. A 3D morphological closing of each lung with a ball of radius :data:`RADIUS_MM`
fills every pocket that the ball cannot enter, whatever the side of the lung it is on; the voxels it
adds are kept when their density is in :data:`covidct.lungs.pleura.LESION_HU` (neither air nor
bone). Normal anatomy is convex towards the lung (chest wall, heart, liver dome) or wide (the
cardiac notch), so it is mostly left alone; what the closing does add in a normal lung is the mouth
of the hilum and thin slivers in the lung's other concave corners.

Used by the UNet method, whose network misses part of the lesions it was trained to include
(``Testing/test_lungs.py``: with the fill, 94–100 % of the voxels of consolidation touching the
pleura of P001 and normal001 inside the mask; the network alone 57–83 %; whole-lung Dice against the
CIP CT's real mask 0.952, without the fill 0.967). The threshold method keeps its costal fill
(:mod:`covidct.lungs.pleura`) alone: with both fills its CIP Dice fell to 0.944 (measured with a
35 mm ball), and the UNet's with both to 0.938.

Limits: a pocket wider than the ball is filled only where the ball cannot reach: at the mouth of a
bite on a convex surface a rim of a few millimetres can stay out; a lesion that takes the whole
thickness of a thin part of the lung (an anterior recess) leaves no pocket to close.

Arrays are canonical ``(z, y, x)``; spacing is ``(x, y, z)`` in mm; labels 1/2 are kept per lung.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..geometry import resize_array
from .pleura import LESION_HU
from .sides import grow_each_lung

#: radius (mm) of the ball that closes each lung
RADIUS_MM = 45.0
#: in-plane voxel size (mm) of the grid the closing is computed on
COARSE_MM = 3.0


def fill_concavities(labels: np.ndarray, hu: np.ndarray, spacing_xyz, radius_mm: float = RADIUS_MM) -> np.ndarray:
    """``labels`` (uint8 ``(z, y, x)``, 0/1/2) with each lung's concavities of lesion density filled with its label.

    ``hu``: the CT on the same grid (HU); ``spacing_xyz``: voxel size in mm (x, y, z);
    ``radius_mm``: the closing ball's radius.
    """
    spacing_zyx = np.array([float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0])])

    def dense_pockets(mask: np.ndarray, box) -> np.ndarray:  # a closing stays inside the lung's bounding box
        density = hu[box]
        return closing_additions(mask, spacing_zyx, radius_mm) & (density > LESION_HU[0]) & (density < LESION_HU[1])

    return grow_each_lung(labels, dense_pockets)


def closing_additions(mask: np.ndarray, spacing_zyx: np.ndarray, radius_mm: float) -> np.ndarray:
    """Voxels (bool, ``mask``'s shape) that closing ``mask`` with a ball of ``radius_mm`` adds
    (``spacing_zyx``: voxel size, mm).

    The closing is ``depth > radius_mm``, where ``depth`` is the distance to the outside of the
    dilated mask (the dilation: distance to the mask ``<= radius_mm``). Both Euclidean distance
    transforms run on a grid coarsened in-plane to about :data:`COARSE_MM` (a block is lung when at
    least half of it is; slices are kept), and ``depth`` comes back to ``mask``'s grid by trilinear
    interpolation, so the closing's surface is placed to better than a block.
    """
    factor = np.array([1, *np.maximum(1, np.rint(COARSE_MM / spacing_zyx[1:])).astype(int)])
    coarse_spacing = spacing_zyx * factor
    margin = np.ceil(radius_mm / coarse_spacing).astype(int) + 1
    fit = [(-n) % f for n, f in zip(mask.shape, factor)]
    blocks = np.pad(mask, [(0, p) for p in fit]).astype(np.float32)
    shape = [n // f for n, f in zip(blocks.shape, factor)]
    coarse = blocks.reshape(shape[0], factor[0], shape[1], factor[1], shape[2], factor[2]).mean(axis=(1, 3, 5)) >= 0.5
    coarse = np.pad(coarse, [(m, m) for m in margin])
    grown = ndi.distance_transform_edt(~coarse, sampling=coarse_spacing) <= radius_mm
    depth = ndi.distance_transform_edt(grown, sampling=coarse_spacing).astype(np.float32)
    depth = depth[tuple(slice(m, -m) for m in margin)]
    fine = resize_array(depth, blocks.shape, order=1)
    closed = fine[: mask.shape[0], : mask.shape[1], : mask.shape[2]] > radius_mm
    return closed & ~mask
