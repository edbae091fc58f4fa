"""Putting dense lesions that touch the costal pleura back into a lung mask.

A threshold finds aerated lung only. Consolidation inside the lung is a hole in that mask and is
filled with the other holes, but consolidation *touching the pleura* is open towards the chest wall
and leaves a bite in the mask — the tissue that matters most for COVID-19, whose lesions are
typically peripheral and subpleural.

The lung surface is seen from the thorax's axis (a vertical line through the middle of the lungs'
bounding box) in polar coordinates: for every axial slice ``z`` and direction ``θ``, ``r_out(z, θ)``
is the distance (mm) to the outermost lung voxel — the costal pleura. Healthy costal pleura gives a
smooth map; a lesion touching it makes a **dip** in ``r_out`` (the surface retreats towards the axis).

The surface over a dip is restored with a curvature-limited envelope (:func:`_hull_profile`): the
lowest curve above ``r_out`` whose chords sag by at most ``s_a·s_b / (2·rho_mm)`` — so the natural
curvature of the chest wall is kept, a step (the lung ending) is never extended, and a dip of any
depth between two stretches of surface is filled. This is done along ``θ`` and along ``z``; a dip
bounded along either is filled. The voxels between the observed surface and the restored one
(plus ``margin_mm``: the restored surface lies slightly inside the pleura) are added, if their
density is in ``LESION_HU`` (neither air nor bone) and at most ``max_depth_mm`` deep.

Limits (measured in ``Testing/test_lungs.py``): the mediastinal and diaphragmatic sides
are left alone — there, normal structures (aorta, oesophagus, spine, hilum, liver dome) bulge into
the lung exactly as lesions do, and an unsupervised rule cannot tell them apart; a lesion that takes
the whole thickness of a thin part of the lung (anterior recesses) leaves no surface to restore; and
rays meet the posterior surface obliquely. The UNet method includes lesions on every side (its
network learns it from lesions inserted into clean lungs, and :mod:`covidct.lungs.lesion_rims` puts
back the rims it still misses).

Arrays are canonical ``(z, y, x)``; spacing is ``(x, y, z)`` in mm; labels 1/2 are kept per lung.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError

#: only voxels in this density range (HU) are added: denser than air (the trachea, gas), less dense than bone
LESION_HU = (-400.0, 250.0)


def lesion_density(hu: np.ndarray) -> np.ndarray:
    """Voxels (bool) whose density (HU) lies in :data:`LESION_HU`: neither air nor bone."""
    return (hu > LESION_HU[0]) & (hu < LESION_HU[1])


@dataclass(frozen=True)
class PleuraOptions:
    """Parameters of :func:`fill_pleural_lesions` (lengths in mm)."""

    rho_mm: float = 150.0  # curvature radius allowed for the restored surface
    max_depth_mm: float = 45.0  # deepest fill below the observed surface
    margin_mm: float = 3.0  # fill this far past the restored surface
    tolerance_mm: float = 3.0  # dips shallower than this are left alone
    min_radius_fraction: float = 0.5  # surface points closer to the axis than this × the slice median are ignored
    directions: int = 360  # rays per slice


def fill_pleural_lesions(
    labels: np.ndarray, hu: np.ndarray, spacing_xyz, options: PleuraOptions = PleuraOptions()
) -> np.ndarray:
    """``labels`` (uint8 ``(z, y, x)``, 0/1/2) with costal-pleura lesion bites filled with their lung's label.

    ``hu``: the CT on the same grid (HU); ``spacing_xyz``: voxel size in mm (x, y, z).
    """
    lung = labels > 0
    if not lung.any():
        return labels
    sx, sy, sz = (float(s) for s in spacing_xyz)
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    ys = np.flatnonzero(lung.any(axis=(0, 2)))
    xs = np.flatnonzero(lung.any(axis=(0, 1)))
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    rays = _Rays(labels.shape[1:], ((ys[0] + ys[-1]) / 2.0, (xs[0] + xs[-1]) / 2.0), (sy, sx), options.directions)
    surface = rays.surface(labels[z0:z1][:, rays.y, rays.x] * rays.inside, options.min_radius_fraction)
    arc = rays.arc_step(surface.outer)
    level = np.fmax(
        np.stack(
            [
                _hull_profile(row, side, float(step), options.rho_mm, periodic=True)
                for row, side, step in zip(surface.outer, surface.label, arc, strict=True)
            ]
        ),
        np.stack(
            [
                _hull_profile(column, side, sz, options.rho_mm, periodic=False)
                for column, side in zip(surface.outer.T, surface.label.T, strict=True)
            ],
            axis=1,
        ),
    )
    out = labels.copy()
    _paint(out, hu, z0, rays, surface, level, options)
    return out


class _Surface:
    """Per slice and ray (arrays ``(Z, directions)``): outermost lung radius (mm, NaN where none) and its label."""

    def __init__(self, outer: np.ndarray, label: np.ndarray):
        self.outer = outer
        self.label = label


class _Rays:
    """Rays from ``centre`` (row, column) in every direction of one slice, sampled once per voxel size."""

    def __init__(self, shape, centre, spacing_yx, directions: int):
        sy, sx = spacing_yx
        cy, cx = centre
        self.directions = directions
        theta = np.arange(directions) * (2.0 * np.pi / directions)
        reach = np.hypot(max(cy, shape[0] - cy) * sy, max(cx, shape[1] - cx) * sx)
        self.radii = np.arange(0.0, reach, min(sx, sy))
        y = np.rint(cy + np.outer(np.sin(theta), self.radii) / sy).astype(np.intp)
        x = np.rint(cx + np.outer(np.cos(theta), self.radii) / sx).astype(np.intp)
        self.inside = (y >= 0) & (y < shape[0]) & (x >= 0) & (x < shape[1])
        self.y = np.clip(y, 0, shape[0] - 1)
        self.x = np.clip(x, 0, shape[1] - 1)
        gy, gx = np.mgrid[0 : shape[0], 0 : shape[1]]
        dy, dx = (gy - cy) * sy, (gx - cx) * sx
        #: every voxel's distance (mm) from the axis and the index of its ray
        self.voxel_radius = np.hypot(dy, dx)
        self.voxel_ray = np.rint(np.arctan2(dy, dx) * (directions / (2.0 * np.pi))).astype(np.intp) % directions

    def surface(self, samples: np.ndarray, min_fraction: float) -> _Surface:
        """The outermost lung sample of every ray; ``samples`` is ``(Z, directions, radii)``.

        Rays whose outermost lung lies closer to the axis than ``min_fraction`` × the slice's median
        (the axis itself runs through lung in some slices) count as having no surface.
        """
        hit = samples > 0
        last = hit.shape[-1] - 1 - np.argmax(hit[..., ::-1], axis=-1)
        outer = self.radii[last]
        median = _row_median(outer, hit.any(axis=-1))
        valid = hit.any(axis=-1) & (outer >= min_fraction * median[:, None])
        label = np.take_along_axis(samples, last[..., None], axis=-1)[..., 0]
        return _Surface(np.where(valid, outer, np.nan), np.where(valid, label, 0))

    def arc_step(self, radius: np.ndarray) -> np.ndarray:
        """Arc length (mm) between neighbouring rays at each slice's median surface radius, shape (Z,)."""
        median = _row_median(radius, ~np.isnan(radius))
        return (2.0 * np.pi / self.directions) * np.maximum(median, self.radii[1])


def _row_median(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median of each row over its valid entries (0 for a row without any)."""
    return np.array([np.median(row[ok]) if ok.any() else 0.0 for row, ok in zip(values, valid, strict=True)])


def _hull_profile(f: np.ndarray, side: np.ndarray, step: float, rho: float, periodic: bool) -> np.ndarray:
    """The lowest curve above ``f`` whose chords sag by at most ``(t - a)(b - t) / (2 rho)``.

    ``f`` is sampled every ``step`` mm with NaN where there is no surface, ``side`` is the lung label
    of each sample; each run of valid samples of one lung is handled on its own, so a dip is restored
    only between two stretches of the same lung's surface — never past the end of one, nor across
    the junction of the two lungs behind the sternum. Subtracting ``t² / (2 rho)`` turns this
    envelope into the upper convex hull, which ``scipy.spatial.ConvexHull`` finds: a chord of
    ``f - t²/(2 rho)`` plus ``t²/(2 rho)`` is the chord of ``f`` minus that sag.
    """
    out = np.full(f.shape, np.nan)
    group = np.where(np.isnan(f), 0, side).astype(np.int64)
    if not group.any():
        return out
    order = np.arange(f.size)
    if periodic:  # start the profile where the group changes, so that no run wraps around
        changes = np.flatnonzero(group != np.roll(group, 1))
        if changes.size:
            order = np.roll(order, -int(changes[0]))
    values, group = f[order], group[order]
    starts = np.flatnonzero(np.diff(np.concatenate([[-1], group])) != 0)
    stops = np.append(starts[1:], group.size)
    for start, stop in zip(starts, stops, strict=True):
        if group[start] == 0:
            continue
        t = np.arange(stop - start) * step
        g = values[start:stop] - t**2 / (2.0 * rho)
        out[order[start:stop]] = _upper_hull(t, g) + t**2 / (2.0 * rho)
    return out


def _upper_hull(t: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The upper convex hull of the points ``(t, g)`` (``t`` increasing), evaluated at ``t``."""
    if t.size < 3:
        return g.copy()
    try:
        hull = ConvexHull(np.column_stack([t, g]))
    except QhullError:  # all points on a line
        return g.copy()
    vertices = hull.vertices  # counter-clockwise
    turn = np.roll(vertices, -int(np.argmax(t[vertices])))  # start at the right-most vertex
    upper = turn[: int(np.flatnonzero(turn == vertices[np.argmin(t[vertices])])[0]) + 1][::-1]
    return np.interp(t, t[upper], g[upper])


def _paint(out, hu, z0, rays: _Rays, surface: _Surface, level, options: PleuraOptions) -> None:
    """Add, ray by ray, the voxels between the surface seen and the restored one to ``out``."""
    with np.errstate(invalid="ignore"):
        dip = level - surface.outer > options.tolerance_mm
    limit = np.fmin(level, surface.outer + options.max_depth_mm) + options.margin_mm
    ray = rays.voxel_ray
    radius = rays.voxel_radius
    for zi in np.flatnonzero(dip.any(axis=1)):
        z = z0 + zi
        band = dip[zi][ray] & (radius > surface.outer[zi][ray]) & (radius <= limit[zi][ray])
        add = band & lesion_density(hu[z]) & (out[z] == 0)
        out[z][add] = surface.label[zi][ray][add]
