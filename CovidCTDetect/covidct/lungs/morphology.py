"""Binary-mask helpers shared by the lung methods: in-plane components, holes, component selection.

Arrays are canonical ``(z, y, x)`` (see :mod:`covidct.geometry`). "In-plane" operations treat every
axial slice on its own (4-connectivity within the slice, no connection between slices); they run as
one vectorised :func:`scipy.ndimage.label` call over the whole volume, not a Python loop over slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from ..geometry import bounding_box

#: 4-connectivity inside each axial slice, no connectivity between slices.
INPLANE = np.zeros((3, 3, 3), bool)
INPLANE[1] = ndi.generate_binary_structure(2, 1)


def label_inplane(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of each axial slice of ``mask`` (labels unique over the volume), and their count."""
    return ndi.label(mask, INPLANE)


def inplane_border_labels(labels: np.ndarray) -> np.ndarray:
    """The non-zero labels that touch the in-plane border (first/last row or column) of any slice."""
    edges = np.concatenate(
        [labels[:, 0, :].ravel(), labels[:, -1, :].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]
    )
    return np.unique(edges[edges > 0])


def remove_inplane_border(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``mask`` without its in-plane components that touch the slice border.

    Returns the kept mask and the in-plane labelling of ``mask`` (labels, count), which callers
    reuse (e.g. to follow the trachea from slice to slice).
    """
    labels, count = label_inplane(mask)
    keep = np.ones(count + 1, bool)
    keep[0] = False
    keep[inplane_border_labels(labels)] = False
    return keep[labels], labels, count


def inplane_holes(mask: np.ndarray) -> np.ndarray:
    """The background regions of ``mask`` that do not reach the slice border, slice by slice."""
    holes, _, _ = remove_inplane_border(~mask)
    return holes


def component_sizes(labels: np.ndarray, count: int) -> np.ndarray:
    """Voxel count of each label ``1..count`` (index 0 is label 1)."""
    return np.bincount(labels.ravel(), minlength=count + 1)[1:]


def largest_components(
    mask: np.ndarray, n: int, min_fraction: float = 0.0, structure: np.ndarray | None = None
) -> list[np.ndarray]:
    """The ``n`` largest 3D components of ``mask`` (largest first), dropping any smaller than
    ``min_fraction`` of the largest. ``structure``: scipy connectivity (default 6-connectivity).
    Labelled inside the mask's bounding box only; the components are full-size boolean arrays."""
    box = bounding_box(mask)
    if box is None:
        return []
    labels, count = ndi.label(mask[box], structure)
    sizes = component_sizes(labels, count)
    order = np.argsort(sizes)[::-1][:n]
    components = []
    for i in order:
        if sizes[i] >= min_fraction * sizes[order[0]]:
            component = np.zeros(mask.shape, bool)
            component[box] = labels == i + 1
            components.append(component)
    return components


def hull_pixels(mask: np.ndarray, step: int = 1) -> np.ndarray:
    """The pixels inside the convex hull of ``mask``'s pixels, its edges included (2D bool); empty when
    the pixels are collinear or fewer than three. ``step`` > 1 finds the hull on every ``step``-th pixel
    of each axis (``step`` times faster per axis, its edge up to ``step`` pixels off)."""
    if step > 1:
        coarse = hull_pixels(mask[::step, ::step])
        return np.kron(coarse, np.ones((step, step), bool))[: mask.shape[0], : mask.shape[1]]
    points = np.argwhere(mask)
    try:
        corners = points[ConvexHull(points).vertices]  # counter-clockwise in (row, column)
    except (QhullError, ValueError):
        return np.zeros_like(mask, dtype=bool)
    (y0, x0), (y1, x1) = corners.min(axis=0), corners.max(axis=0) + 1
    rows, columns = np.mgrid[y0:y1, x0:x1]
    inside = np.ones(rows.shape, bool)
    for (ay, ax), (by, bx) in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        inside &= (by - ay) * (columns - ax) - (bx - ax) * (rows - ay) >= 0  # left of (or on) each edge
    out = np.zeros_like(mask, dtype=bool)
    out[y0:y1, x0:x1] = inside
    return out
