"""Left/right lung labelling: split lungs that touch, and name each lung by the patient's side.

Arrays are canonical ``(z, y, x)`` (:mod:`covidct.geometry`): x runs towards the patient's **left**,
so the right lung is the one with the smaller x. The labels are :data:`covidct.lungs.RIGHT` = 1 and
:data:`covidct.lungs.LEFT` = 2.

The two lungs often touch in a few slices (the anterior and posterior junction lines are thinner than
the voxels, or the lungs are merged by partial volume in a coarse scan). Then one 3D component holds
both. It is split slice by slice: an in-plane component with a substantial part on each side of the
mask's mid-sagittal line is eroded until it falls apart into two large pieces on opposite sides, and
each of its voxels goes to the nearer piece; an in-plane component that does not fall apart that way
is one lung reaching over the midline and goes to the side holding most of it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..geometry import bounding_box
from . import LEFT, RIGHT
from .morphology import label_inplane

#: a slice component counts as both lungs when at least this fraction of it lies on each side of the midline
CROSSING_FRACTION = 0.1
#: each of the two pieces left by erosion must hold at least this fraction of the component
PIECE_FRACTION = 0.05
#: erode at most this far (mm) when looking for the junction between the lungs
MAX_EROSION_MM = 12.0


def label_sides(lungs: list[np.ndarray], spacing_xyz) -> np.ndarray:
    """UInt8 labelmap (``RIGHT``/``LEFT``) from one or two lung masks.

    ``lungs``: boolean ``(z, y, x)`` masks, largest first: two separate lungs, or one component that
    may hold both (it is split when it does). ``spacing_xyz``: voxel size in mm (x, y, z).
    """
    if not lungs:
        raise ValueError("label_sides needs at least one lung mask")
    parts = list(lungs[:2]) if len(lungs) >= 2 else _split(lungs[0], spacing_xyz)
    labels = np.zeros(lungs[0].shape, np.uint8)
    if len(parts) == 1:  # one lung only: its side relative to the middle of the array (the airway tree's box)
        labels[parts[0]] = RIGHT if _centre_x(parts[0]) < (lungs[0].shape[2] - 1) / 2.0 else LEFT
        return labels
    right_first = _centre_x(parts[0]) <= _centre_x(parts[1])
    labels[parts[0]] = RIGHT if right_first else LEFT
    labels[parts[1] & ~parts[0]] = LEFT if right_first else RIGHT
    return labels


def grow_each_lung(labels: np.ndarray, additions, margin: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """``labels`` (0, :data:`RIGHT`, :data:`LEFT`) with each lung grown by the voxels ``additions`` picks.

    ``additions(mask, box)`` gets one lung's boolean mask inside its bounding box ``box`` (a tuple of
    slices of ``labels``), widened by ``margin`` voxels ``(z, y, x)`` on each side within the array,
    and returns a boolean array of the same shape; those voxels get the lung's label where they are
    still background (the other lung keeps its voxels).
    """
    out = labels.copy()
    for value in (RIGHT, LEFT):
        mask = labels == value
        box = bounding_box(mask, margin)
        if box is None:
            continue
        region = out[box]
        region[additions(mask[box], box) & (region == 0)] = value
    return out


def _centre_x(mask: np.ndarray) -> float:
    """Mean x index of a mask's voxels."""
    return float(np.dot(mask.sum(axis=(0, 1)), np.arange(mask.shape[2])) / max(mask.sum(), 1))


def _split(mask: np.ndarray, spacing_xyz) -> list[np.ndarray]:
    """Split a component holding both lungs into [right, left]; ``[mask]`` when it is one lung."""
    midline = _centre_x(mask)
    right = np.zeros(mask.shape, bool)
    labels, _ = label_inplane(mask)
    max_steps = max(1, int(round(MAX_EROSION_MM / float(spacing_xyz[0]))))
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        component = labels[box] == index
        x = np.arange(box[2].start, box[2].stop)
        columns = component.sum(axis=(0, 1))
        on_right = columns[x < midline].sum()
        total = columns.sum()
        if min(on_right, total - on_right) < CROSSING_FRACTION * total:
            if on_right * 2 >= total:
                right[box] |= component
            continue
        split = _split_component(component[0], x, midline, max_steps)
        if split is not None:
            right[box] |= split[None]
        elif on_right * 2 >= total:
            right[box] |= component
    left = mask & ~right
    if not right.any() or not left.any() or min(right.sum(), left.sum()) < PIECE_FRACTION * mask.sum():
        return [mask]
    return [right, left]


def _split_component(component: np.ndarray, x: np.ndarray, midline: float, max_steps: int) -> np.ndarray | None:
    """The right-lung part of a 2D component holding both lungs, or ``None`` if it does not fall apart."""
    seeds = component
    area = component.sum()
    for _ in range(max_steps):
        seeds = ndi.binary_erosion(seeds)
        pieces, count = ndi.label(seeds)
        if count < 2:
            if count == 0:
                return None
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        first, second = np.argsort(sizes)[::-1][:2] + 1
        if sizes[second - 1] < PIECE_FRACTION * area:
            continue
        cx = [np.mean(x[np.nonzero(pieces == p)[1]]) for p in (first, second)]
        if (cx[0] < midline) == (cx[1] < midline):
            return None
        right_piece, left_piece = (first, second) if cx[0] < cx[1] else (second, first)
        to_right = ndi.distance_transform_edt(pieces != right_piece)
        to_left = ndi.distance_transform_edt(pieces != left_piece)
        return component & (to_right <= to_left)
    return None
