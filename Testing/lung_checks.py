"""Checks of lung labelmaps on real CTs, shared by the threshold and UNet lung tests.

Everything here is computed from the CT independently of :mod:`covidct.lungs` (its own thresholds
and component rules), so the checks can fail. Arrays are canonical ``(z, y, x)`` (LPS order: x to
the patient's left, z to the head); spacings are ``(x, y, z)`` mm.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from covidct.geometry import to_canonical

SLICE = np.zeros((3, 3, 3), bool)
SLICE[1] = ndi.generate_binary_structure(2, 1)  # in-plane 4-connectivity only


def arrays(ct: sitk.Image, labels: sitk.Image) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Canonical ``(hu, labels, spacing_xyz)`` of a CT and its labelmap."""
    canonical = to_canonical(ct)
    return (sitk.GetArrayFromImage(canonical), sitk.GetArrayFromImage(to_canonical(labels)), canonical.GetSpacing())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def volumes_l(labels: np.ndarray, spacing) -> dict[int, float]:
    """Litres of label 1 (right) and 2 (left)."""
    voxel_l = float(np.prod(spacing)) / 1e6
    return {value: float((labels == value).sum()) * voxel_l for value in (1, 2)}


def body_mask(hu: np.ndarray) -> np.ndarray:
    """The patient's body: the largest 3D component denser than −500 HU, each slice's holes filled
    (so the lungs and airways are inside it)."""
    tissue, count = ndi.label(hu > -500)
    largest = np.argmax(np.bincount(tissue.ravel())[1:]) + 1
    body = tissue == largest
    return np.stack([ndi.binary_fill_holes(plane) for plane in body])


def border_air(hu: np.ndarray) -> np.ndarray:
    """Air (< −300 HU) connected, within its slice, to the slice border: air around the patient."""
    labels, _ = ndi.label(hu < -300, SLICE)
    edge = np.unique(
        np.concatenate([labels[:, 0].ravel(), labels[:, -1].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])
    )
    return np.isin(labels, edge[edge > 0])


def trachea_above_carina(hu: np.ndarray, body: np.ndarray, spacing) -> np.ndarray:
    """The tracheal lumen (< −900 HU) from the top slice down to the carina.

    Start: in the top slice, the lumen component nearest the body's mid-sagittal line (area 0.5–8 cm²,
    within 30 mm of it). Down: the lumen component (≥ 0.3 cm², smaller specks are noise) overlapping
    the previous slice's; it stops where two such components overlap it (the carina) or it grows
    past 8 cm² (it meets the lungs).
    """
    sx, sy, _ = spacing
    area_cm2 = sx * sy / 100.0
    trachea = np.zeros(hu.shape, bool)
    top = hu.shape[0] - 1
    lumen, count = ndi.label((hu[top] < -900) & body[top])
    midline = np.mean(np.nonzero(body[top])[1])
    best, best_distance = None, 30.0
    for label in range(1, count + 1):
        component = lumen == label
        area = component.sum() * area_cm2
        distance = abs(np.mean(np.nonzero(component)[1]) - midline) * sx
        if 0.5 <= area <= 8.0 and distance < best_distance:
            best, best_distance = component, distance
    if best is None:
        return trachea
    current = best
    for z in range(top, -1, -1):
        trachea[z] = current
        if z == 0:
            break
        lumen, _ = ndi.label((hu[z - 1] < -900) & body[z - 1])
        under = [u for u in np.unique(lumen[current & (lumen > 0)]) if (lumen == u).sum() * area_cm2 >= 0.3]
        if len(under) != 1:  # two branches: the carina (or the lumen is lost)
            break
        following = lumen == under[0]
        if following.sum() * area_cm2 > 8.0:
            break
        current = following
    return trachea


def centre_x(mask: np.ndarray) -> float:
    return float(np.mean(np.nonzero(mask)[2]))


def costal_lesions(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing,
    rng: np.random.Generator,
    n: int,
    size_mm=(10.0, 40.0),
    hu_range=(-100.0, 50.0),
    wall_mm: float = 40.0,
    cut: np.ndarray | None = None,
):
    """Dense ellipsoids touching the costal pleura, inside the lung: ``(new hu, lesion mask)``.

    Centres: lung boundary voxels within ``wall_mm`` of the skin (the chest wall side, measured with
    an in-plane distance map of the body), in the middle 70 % of the lungs' height, moved inwards by
    0–0.8 × the smallest semi-axis so each lesion crosses the pleura; diameters uniform in
    ``size_mm`` (semi-axes ×0.7–1.3, random orientation); cut to the lung (or to ``cut``, e.g. its
    aerated voxels); density uniform in ``hu_range`` with 15 HU noise.
    """
    sx, sy, sz = spacing
    lung = lungs > 0
    allowed = lung if cut is None else cut > 0
    body = body_mask(hu)
    skin = np.stack([ndi.distance_transform_edt(plane[::4, ::4], sampling=(4 * sy, 4 * sx)) for plane in body])
    surface = np.argwhere(lung & ~ndi.binary_erosion(lung))
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    low, high = zs[0] + 0.15 * (zs[-1] - zs[0]), zs[0] + 0.85 * (zs[-1] - zs[0])
    keep = (
        (skin[surface[:, 0], surface[:, 1] // 4, surface[:, 2] // 4] <= wall_mm)
        & (surface[:, 0] > low)
        & (surface[:, 0] < high)
    )
    surface = surface[keep]
    centre_yx = np.array([np.mean(np.nonzero(lung.any(axis=0))[0]), np.mean(np.nonzero(lung.any(axis=0))[1])])
    out = hu.astype(np.float32).copy()
    lesions = np.zeros(lung.shape, bool)
    step = np.array([sz, sy, sx])
    for _ in range(n):
        point = surface[rng.integers(len(surface))]
        radii = rng.uniform(*size_mm) / 2.0 * rng.uniform(0.7, 1.3, 3)
        inward = (centre_yx - point[1:]) * step[1:]
        inward /= max(np.linalg.norm(inward), 1e-6)
        centre = point * step + np.concatenate([[0.0], inward * rng.uniform(0.0, 0.8) * radii.min()])
        reach = np.ceil(radii.max() / step).astype(int) + 1
        index = np.rint(centre / step).astype(int)
        box = tuple(slice(max(i - r, 0), min(i + r + 1, n_)) for i, r, n_ in zip(index, reach, lung.shape, strict=True))
        grids = np.meshgrid(*[np.arange(s.start, s.stop) * d for s, d in zip(box, step, strict=True)], indexing="ij")
        rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        local = np.stack([g - c for g, c in zip(grids, centre, strict=True)], axis=-1) @ rotation
        inside = (((local / radii) ** 2).sum(axis=-1) <= 1.0) & allowed[box]
        region = out[box]
        region[inside] = rng.uniform(*hu_range) + 15.0 * rng.standard_normal(int(inside.sum()))
        lesions[box] |= inside
    return out, lesions


def image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """``array`` (canonical, HU) as an image of ``reference``'s pixel type on its canonical grid."""
    canonical = to_canonical(reference)
    dtype = sitk.GetArrayViewFromImage(canonical).dtype
    image = sitk.GetImageFromArray(np.rint(array).astype(dtype) if np.issubdtype(dtype, np.integer) else array)
    image.CopyInformation(canonical)
    return image
