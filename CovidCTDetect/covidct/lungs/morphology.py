"""Binary-mask helpers shared by the lung methods: in-plane components, holes, component selection.

Arrays are canonical ``(z, y, x)`` (see :mod:`covidct.geometry`). "In-plane" operations treat every
axial slice on its own (4-connectivity within the slice, no connection between slices); they run as
one vectorised :func:`scipy.ndimage.label` call over the whole volume, not a Python loop over slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

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
