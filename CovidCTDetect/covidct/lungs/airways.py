"""Trachea and main-bronchi detection in a thresholded CT, so that they can be removed from the lungs.

The trachea is found as the air tube at the top of the airway tree: in the highest axial slice of
the largest inner air component (lungs + airways), the compact in-plane component nearest to the
tree's mid-sagittal line. It is followed downwards slice by slice through the in-plane components
that overlap it; below the carina it splits into the two main bronchi, each followed on its own.
Where the next component is much larger than the branch (the airway touches the lung in that slice
through a thin wall blurred by partial volume, or has joined the parenchyma at the hilum), the
branch is looked for again at a stricter threshold (``STRICT_HU``, the air of the lumen only) inside
that component; a branch ends when even that finds no plausible continuation, and the whole walk
ends ``BELOW_CARINA_MM`` below the carina. What is followed is the extrapulmonary airway (trachea,
main bronchi), which lung masks exclude; bronchi inside the lungs are enclosed by parenchyma and are
filled back with the other holes of the lungs.

Arrays are canonical ``(z, y, x)``, z increasing towards the head (superior).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: plausible in-plane lumen area of the trachea in mm² (adults about 150–300 mm²)
TRACHEA_AREA_MM2 = (30.0, 900.0)
#: the trachea's centre lies within this distance (mm) of the airway tree's mid-sagittal line
MIDLINE_TOLERANCE_MM = 35.0
#: a branch may grow by this factor (plus ``GROWTH_MM2``) from one slice to the next
GROWTH_FACTOR = 2.0
GROWTH_MM2 = 60.0
#: HU below which a voxel is lumen air for the stricter search (lung parenchyma is about −850 HU)
STRICT_HU = -930.0
#: the strict lumen is grown this many voxels inside its component, to take the lumen's partial-volume edge
LUMEN_EDGE_VOXELS = 2
#: how far below the carina (first slice with two branches) the main bronchi are followed, mm
BELOW_CARINA_MM = 40.0


def find_airways(tree: np.ndarray, labels2d: np.ndarray, hu: np.ndarray, spacing_xyz) -> np.ndarray:
    """Boolean mask of the trachea and main bronchi inside ``tree``.

    ``tree``: boolean ``(z, y, x)`` mask of the connected air component holding lungs and airways;
    ``labels2d``: in-plane component labels of an air mask containing ``tree`` (see
    :func:`~covidct.lungs.morphology.label_inplane`); ``hu``: the CT array in HU on the same grid;
    ``spacing_xyz``: voxel size in mm (x, y, z). Returns an empty mask when no trachea-like component
    tops the tree (e.g. a scan of the lung bases only).
    """
    airway = np.zeros(tree.shape, bool)
    slices = np.flatnonzero(tree.any(axis=(1, 2)))
    if slices.size == 0:
        return airway
    sx, sy, sz = (float(s) for s in spacing_xyz)
    pixel_mm2 = sx * sy
    tree_labels = np.where(tree, labels2d, 0)
    areas = np.bincount(tree_labels.ravel()) * pixel_mm2
    z = int(slices[-1])
    current = _trachea(tree_labels[z], areas, tree, sx)
    carina_z = None
    while current is not None and current.any():
        airway[z] = current
        branches, count = ndi.label(current)
        if count > 1 and carina_z is None:
            carina_z = z
        if z == 0 or (carina_z is not None and (carina_z - z) * sz >= BELOW_CARINA_MM):
            break
        current = _follow(branches, count, tree_labels[z - 1], hu[z - 1], areas, pixel_mm2)
        z -= 1
    return airway


def _trachea(slice_labels: np.ndarray, areas: np.ndarray, tree: np.ndarray, sx: float) -> np.ndarray | None:
    """The trachea's in-plane mask in the tree's top slice, or ``None``."""
    midline = np.mean(np.flatnonzero(tree.any(axis=(0, 1)))) * sx
    best, best_distance = None, MIDLINE_TOLERANCE_MM
    for label in np.unique(slice_labels[slice_labels > 0]):
        if not TRACHEA_AREA_MM2[0] <= areas[label] <= TRACHEA_AREA_MM2[1]:
            continue
        distance = abs(np.mean(np.nonzero(slice_labels == label)[1]) * sx - midline)
        if distance <= best_distance:
            best, best_distance = label, distance
    return None if best is None else slice_labels == best


def _follow(
    branches: np.ndarray,
    count: int,
    below_labels: np.ndarray,
    below_hu: np.ndarray,
    areas: np.ndarray,
    pixel_mm2: float,
) -> np.ndarray:
    """The airway's in-plane mask in the next slice down, continuing each branch of ``branches``."""
    following = np.zeros(below_labels.shape, bool)
    for branch in range(1, count + 1):
        footprint = branches == branch
        limit = GROWTH_FACTOR * footprint.sum() * pixel_mm2 + GROWTH_MM2
        under = below_labels[footprint]
        for candidate in np.unique(under[under > 0]):
            region = below_labels == candidate
            if areas[candidate] <= limit:
                following |= region
                continue
            lumen, pieces = ndi.label(region & (below_hu < STRICT_HU))
            for piece in np.unique(lumen[footprint & (lumen > 0)]):
                piece_mask = lumen == piece
                if piece_mask.sum() * pixel_mm2 <= limit:
                    following |= ndi.binary_dilation(piece_mask, iterations=LUMEN_EDGE_VOXELS, mask=region)
    return following
