"""Does a chest CT look contrast-enhanced? The density of the blood between its lungs.

The bundled classifiers were trained and validated on CTs without intravenous contrast, as COVID-19
CTs mostly are. With contrast the heart and great vessels shine, and the lung UNet takes more of the
tissue beside them into the lungs (on the yardstick's ``contrast`` copies, +150 HU on blood: thick
dense tissue P001 6.1 → 20.2 ml at the thoracic inlet, pyradiomics lung1 4.4 → 16.8 ml on its
pericardial fat pad, where decovnet-demo's heat then goes). Detection therefore says when a CT looks
enhanced and the model card says it was validated without contrast (``validated`` ``"contrast": false``).

Arrays are canonical ``(z, y, x)`` (:mod:`covidct.geometry`), densities in HU.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .lungs.morphology import hull_pixels

#: median HU of the soft tissue between the lungs above which a CT counts as contrast-enhanced. The nine
#: real non-contrast CTs of the yardstick: 31-46 HU; their ``contrast`` copies: 177-192 HU
CONTRAST_BLOOD_HU = 100.0
#: soft tissue and blood, after a 3 x 3 mean: fat below it and cortical bone above it are left out
SOFT_TISSUE_HU = (-20.0, 500.0)
#: pixels of the lung mask's convex hull this close to the lungs (in pixels) are their edge, not mediastinum
LUNG_EDGE_PX = 3
#: the hull is found on every ``HULL_STEP``-th pixel of the mask (a few mm off at most)
HULL_STEP = 4


def mediastinal_blood_hu(hu: np.ndarray, lungs: np.ndarray) -> float | None:
    """Median HU of the soft tissue (:data:`SOFT_TISSUE_HU`) between the lungs: in every second axial
    slice of the middle 40 % of the lungs' height, the pixels inside the lung mask's convex hull that lie
    more than :data:`LUNG_EDGE_PX` pixels outside the mask (heart, great vessels, oesophagus, nodes).
    ``hu``: canonical CT array; ``lungs``: canonical mask of the same shape (non-zero = lung). ``None``
    when no slice holds such tissue."""
    lungs = lungs > 0
    levels = np.flatnonzero(lungs.any(axis=(1, 2)))
    if levels.size == 0:
        return None
    low, high = levels[0], levels[-1]
    values = []
    for z in range(low + int(0.3 * (high - low)), low + int(0.7 * (high - low)) + 1, 2):
        mask = lungs[z]
        if not mask.any():
            continue
        between = hull_pixels(mask, HULL_STEP) & ~ndi.binary_dilation(mask, iterations=LUNG_EDGE_PX)
        plane = ndi.uniform_filter(hu[z].astype(np.float32), 3)[between]
        values.append(plane[(plane > SOFT_TISSUE_HU[0]) & (plane < SOFT_TISSUE_HU[1])])
    values = np.concatenate(values) if values else np.empty(0)
    return float(np.median(values)) if values.size else None


def contrast_warnings(hu: np.ndarray, lungs: np.ndarray, card) -> list[str]:
    """A warning when the CT looks contrast-enhanced (:func:`mediastinal_blood_hu` above
    :data:`CONTRAST_BLOOD_HU`) and the model ``card``'s ``validated`` says ``"contrast": false``."""
    if (getattr(card, "validated", None) or {}).get("contrast", True):
        return []
    blood = mediastinal_blood_hu(hu, lungs)
    if blood is None or blood <= CONTRAST_BLOOD_HU:
        return []
    return [
        f"The CT looks contrast-enhanced (the tissue between the lungs has a median of {blood:.0f} HU), but this "
        f"model ('{card.name}') was validated on CTs without intravenous contrast: the probability may be less "
        "reliable."
    ]
