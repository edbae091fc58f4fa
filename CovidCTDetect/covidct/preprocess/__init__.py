"""Paper-exact model inputs, each with the :class:`~covidct.geometry.ModelGrid` that maps outputs back.

* :mod:`.window` — the HU window both papers' pipelines start from (−1200…600 HU → 0…1).
* :mod:`.decovnet` — CT + lung mask, ``(2, T, 224, 336)`` (DeCoVNet paper, "Preprocessing of DeCoVNet").
* :mod:`.covid19net` — lung-ROI crop, non-lung suppression, z-score, ``(1, 48, 240, 360)``.
* :mod:`.unet` — 2D slices for the lung UNet, 368×368 (DeCoVNet paper, "Preprocessing of 2D UNet").
"""

from __future__ import annotations


def model_input(arch: str, ct, lungs):
    """``(float32 array, ModelGrid)`` input of classifier ``arch`` (``decovnet`` or ``covid19net``)
    for a CT (SimpleITK image, HU) and its lung mask; see the per-model modules for shapes."""
    if arch == "decovnet":
        from .decovnet import decovnet_input
        return decovnet_input(ct, lungs)
    if arch == "covid19net":
        from .covid19net import covid19net_input
        return covid19net_input(ct, lungs)
    from ..errors import UsageError
    raise UsageError(f"No whole-CT model input for architecture '{arch}'; use decovnet or covid19net "
                     "(the lung UNet takes 2D slices, see covidct.preprocess.unet).")
