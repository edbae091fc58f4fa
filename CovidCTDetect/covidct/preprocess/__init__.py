"""Paper-exact model inputs, each with the :class:`~covidct.geometry.ModelGrid` that maps outputs back.

* :mod:`.window` — the HU window both papers' pipelines start from (−1200…600 HU → 0…1).
* :mod:`.decovnet` — CT + lung mask, ``(2, T, 224, 336)`` (DeCoVNet paper, "Preprocessing of DeCoVNet").
* :mod:`.covid19net` — lung-ROI crop, non-lung suppression, z-score, ``(1, 48, 240, 360)``.
* :mod:`.unet` — 2D slices for the lung UNet, 368×368 (DeCoVNet paper, "Preprocessing of 2D UNet").
"""
