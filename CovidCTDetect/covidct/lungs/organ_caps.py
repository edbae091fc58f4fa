"""Organ caps: the top of an organ below the lung, cut across by an axial slice, that must not count as lung.

The domes of the liver and of the stomach and spleen under the hemidiaphragms (and, at the hila and
the apex, mediastinal tissue) rise into the lung from below. An axial slice through such a dome shows
an island of soft tissue ringed by aerated lung: in-plane hole filling, which is right for vessels and
lesions enclosed by lung, would call it lung, and the UNet, at about 2.8 mm per input pixel, labels
the top few millimetres of a dome as lung itself.

What sets a cap apart is what lies below it (towards the feet). An *island* is an in-plane connected
region of the lung's enclosed holes together with the dense tissue (over :data:`CAP_DENSE_HU`) the
mask holds next to them. An island is a cap's **base** when it holds an enclosed hole, covers at least
:data:`CAP_MIN_MM2` (a dome cut across is several cm² where the lung first rings it; vessels and
bronchi at the hila stay under 3 cm² on the real CTs of ``../shared/data``) and at least
:data:`CAP_SUPPORT` of it stands on an organ: tissue outside the lung that reaches at least
:data:`CAP_DEPTH_MM` down (not the lower part of a lesion that the mask misses). Its pixels that stand
on the organ are the cap. Higher up, an island that stands on the cap in the slice below, at least
:data:`CAP_SUPPORT` of it on that cap or an organ, continues it with those pixels: the rest of the
dome up to its top, and organ that the UNet labelled lung above it. A lesion beside a dome keeps the
pixels that stand on neither.

What the rule cannot tell apart: consolidation that lies on an organ's top (wrapped round a dome, or on
the stomach under the lung's basal crescent) in the slices where it joins such an island looks like the
organ and goes with it (``Testing/test_lungs.py`` measures what this costs in synthetic lesions).

Arrays are canonical ``(z, y, x)`` (z grows towards the head); spacing is ``(x, y, z)`` in mm.
"""

from __future__ import annotations

import numpy as np

from .morphology import label_inplane

#: smallest area (mm²) of the island that starts a cap
CAP_MIN_MM2 = 500.0
#: share of an island that must stand on an organ (a base) or on the cap below or an organ (higher up)
CAP_SUPPORT = 0.5
#: a cap's base stands on outside tissue that reaches at least this far (mm) down: an organ, not the lower
#: part of a lesion that the mask misses
CAP_DEPTH_MM = 30.0
#: tissue of a lung mask denser than this (HU) can belong to a cap
CAP_DENSE_HU = -300.0


def organ_caps(mask: np.ndarray, holes: np.ndarray, hu: np.ndarray, spacing_xyz, body_below: bool) -> np.ndarray:
    """Boolean ``(z, y, x)``: the organ caps (module docstring) of one lung's boolean ``mask`` on the grid
    of ``hu`` (HU), enclosed holes or mask voxels. ``holes``: the mask's in-plane holes
    (:func:`.morphology.inplane_holes`). ``body_below``: below the first slice lies tissue outside the lung
    all the way down (the array starts at the lung's lowest slice and the CT goes on below it); else, as
    in a scan that cuts the lung bases off, what lies below is unknown and counts as lung."""
    islands, count = label_inplane(holes | (mask & (hu > CAP_DENSE_HU)))
    caps = np.zeros(mask.shape, bool)
    if count == 0:
        return caps
    # on an organ: the voxel below is outside tissue that reaches CAP_DEPTH_MM down
    on_organ = np.full(mask.shape, body_below)
    on_organ[1:] = _outside_depth_mm(mask | holes, float(spacing_xyz[2]), body_below)[:-1] >= CAP_DEPTH_MM
    where = np.flatnonzero(islands)
    labels, on_organ_there = islands.ravel()[where], on_organ.ravel()[where]
    pixels = np.bincount(labels, minlength=count + 1)
    enclosing = np.bincount(labels, weights=holes.ravel()[where], minlength=count + 1) > 0
    area_mm2 = pixels * float(spacing_xyz[0]) * float(spacing_xyz[1])
    base = (
        enclosing
        & (area_mm2 >= CAP_MIN_MM2)
        & (np.bincount(labels, weights=on_organ_there, minlength=count + 1) >= CAP_SUPPORT * pixels)
    )
    base[0] = False
    caps.ravel()[where] = base[labels] & on_organ_there
    for k in range(1, len(caps)):
        if caps[k - 1].any() and islands[k].any():
            caps[k] |= _continued(islands[k], caps[k - 1], caps[k - 1] | on_organ[k])
    return caps


def _continued(islands: np.ndarray, cap_below: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Boolean ``(y, x)``: the islands of one slice (labels, 0 = none) that stand on ``cap_below`` (the cap
    in the slice below) and at least :data:`CAP_SUPPORT` of which stand on ``support`` (that cap, or an
    organ), where they stand on ``support``."""
    first = int(islands[islands > 0].min()) - 1  # each slice's labels are one run (labelled slice after slice)
    local = np.where(islands > 0, islands - first, 0).ravel()
    continued = (np.bincount(local, weights=cap_below.ravel()) > 0) & (
        np.bincount(local, weights=support.ravel()) >= CAP_SUPPORT * np.bincount(local)
    )
    continued[0] = False
    return continued[local].reshape(islands.shape) & support


def _outside_depth_mm(lung_or_hole: np.ndarray, dz_mm: float, body_below: bool) -> np.ndarray:
    """Float ``(z, y, x)``: how far (mm) the tissue outside the lung reaches down from each voxel, itself
    included (0 in the lung or its holes); below the first slice counts as outside all the way down when
    ``body_below``, else as lung."""
    depth = np.empty(lung_or_hole.shape, np.float32)
    run = np.full(lung_or_hole.shape[1:], np.inf if body_below else 0.0, np.float32)
    for k, inside in enumerate(lung_or_hole):
        run = np.where(inside, 0.0, run + dz_mm)
        depth[k] = run
    return depth
