"""Hard negatives for the lung UNet: gas-mottled contents in an organ that touches the lung.

Stomach and bowel contents (food and fluid at about −30…+40 HU with gas bubbles of 1–6 mm, often a gas
pocket above an air-fluid level) lie against the lung base under the diaphragm. A network that has
learnt that dense tissue at the pleura can be consolidated lung (the lesion augmentation of
:mod:`covidct.train.unet_task`) takes such contents into the lung mask. :func:`paint_organ_gas`
paints one patch of them into organ tissue beside the lung of an axial training slice; the patch stays
background (organ) in the target.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..lungs.morphology import hull_pixels
from .synth import texture_noise

#: air (HU)
GAS_HU = -1000.0
#: mean density of the contents that replace the organ tissue (HU)
CONTENTS_HU = (-30.0, 40.0)
#: the patch's diameter (mm)
PATCH_MM = (15.0, 50.0)
#: gas bubbles' radius (mm) and number per cm² of patch
BUBBLE_RADIUS_MM = (0.5, 3.0)
BUBBLES_PER_CM2 = (0.3, 3.0)
#: share of patches that also hold a gas pocket above an air-fluid level, and its share of the patch
POCKET = 0.3
POCKET_SHARE = (0.15, 0.5)


def paint_organ_gas(
    hu: np.ndarray, lung: np.ndarray, tissue: np.ndarray, organ: np.ndarray, spacing, rng: np.random.Generator
) -> np.ndarray:
    """Paint gas-mottled contents into ``hu`` in place; return the painted patch (bool, like ``hu``).

    ``hu``: one axial slice (rows anterior → posterior, columns; HU); ``lung``: its lung mask;
    ``tissue``: the dense background pixels, which the patch may cover; ``organ``: those of them near
    the lung, where it may be centred; ``spacing``: (row, column) pixel size in mm. The patch is an
    irregular ellipse of :data:`PATCH_MM` about a random ``organ`` pixel inside the lungs' convex hull
    (heart, mediastinum, the organs under the diaphragm; not the chest wall), limited to ``tissue`` at
    least one pixel away from the lung (the diaphragm or organ wall stays between them). In it the
    tissue is pulled towards :data:`CONTENTS_HU`, gas bubbles are added with their partial-volume blur
    at this pixel size, and for a share :data:`POCKET` of patches the anterior (non-dependent) part is a
    gas pocket. An empty mask when no pixel qualifies.
    """
    spacing = np.asarray(spacing, dtype=float)
    away = tissue & ~ndi.binary_dilation(lung)
    allowed = organ & away & hull_pixels(lung)
    if not allowed.any():
        return np.zeros_like(lung, dtype=bool)
    centre = np.argwhere(allowed)[rng.integers(int(allowed.sum()))]
    radii = rng.uniform(*PATCH_MM) / 2.0 * rng.uniform(0.7, 1.3, 2)
    rows, columns = np.indices(hu.shape, dtype=float)
    offsets = np.stack([(rows - centre[0]) * spacing[0], (columns - centre[1]) * spacing[1]], axis=-1)
    angle = rng.uniform(0.0, np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    level = np.sqrt(np.sum((offsets @ rotation / radii) ** 2, axis=-1))
    bumps = ndi.gaussian_filter(rng.standard_normal(hu.shape), radii.min() / 3.0 / spacing)
    level += 0.25 * bumps / max(float(bumps.std()), 1e-6)
    patch = (level <= 1.0) & away
    if not patch.any():
        return patch
    contents = rng.uniform(*CONTENTS_HU) + 10.0 * texture_noise(hu.shape, rng)
    hu[patch] += rng.uniform(0.5, 1.0) * (contents[patch] - hu[patch])
    gas = np.zeros(hu.shape, dtype=float)
    pixels = np.argwhere(patch)
    area_cm2 = len(pixels) * spacing.prod() / 100.0
    for index in rng.integers(len(pixels), size=rng.poisson(area_cm2 * rng.uniform(*BUBBLES_PER_CM2))):
        gas = 1.0 - (1.0 - gas) * (1.0 - _bubble(offsets, pixels[index], spacing, rng))
    if rng.random() < POCKET:
        patch_rows = np.nonzero(patch.any(axis=1))[0]
        cut = patch_rows[0] + rng.uniform(*POCKET_SHARE) * (patch_rows[-1] - patch_rows[0] + 1)
        gas[patch & (rows < cut)] = 1.0
    gas *= patch
    hu += gas * (GAS_HU - hu)
    return patch


def _bubble(offsets: np.ndarray, at: np.ndarray, spacing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gas fraction (0…1) of each pixel for one bubble of radius :data:`BUBBLE_RADIUS_MM` at pixel ``at``
    (``offsets``: each pixel's (row, column) offset in mm from one fixed point; ``spacing`` in mm): a
    Gaussian with the disc's area, peaking at 1 where the bubble is larger than a pixel (partial volume)."""
    radius = rng.uniform(*BUBBLE_RADIUS_MM)
    sigma = max(radius / np.sqrt(2.0), 0.5 * float(spacing.min()))
    distance2 = np.sum((offsets - offsets[at[0], at[1]]) ** 2, axis=-1)
    return np.minimum(1.0, radius**2 / (2.0 * sigma**2)) * np.exp(-distance2 / (2.0 * sigma**2))
